//! Shared helpers for end-to-end tests: run the real `eddy` binary, make data, read results.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod kafka;

use anyhow::{bail, Context, Result};
use eddy_runtime::checkpoint::{read_checkpoint, Checkpoint};
use eddy_runtime::source::{GeneratorConfig, GeneratorKind};

pub fn eddy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.env("EDDY_LOG", "warn");
    cmd
}

/// Writes `events` records of a seeded logistic stream with 10 numeric fields as JSON Lines.
pub fn logistic_file(path: &Path, events: u64, seed: u64) -> Result<()> {
    let mut g = GeneratorConfig::new(GeneratorKind::Logistic);
    g.seed = seed;
    g.categories = 5;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    g.write_jsonl(events, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Runs `eddy` to completion; fails with its stderr when it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().context("starting eddy")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("eddy failed ({}):\n{stderr}", out.status);
    }
    Ok(stderr)
}

pub fn summary(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The newest checkpoint in `dir`.
pub fn latest_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eddy"))
        .collect();
    files.sort();
    let newest = files
        .last()
        .with_context(|| format!("no checkpoint in {}", dir.display()))?;
    Ok(read_checkpoint(newest)?)
}

pub fn checkpoint_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eddy"))
                .count()
        })
        .unwrap_or(0)
}

/// A running `eddy` whose stderr is read on a thread; killed when dropped.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Result<Running> {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning eddy")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "no line with {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The http://ADDR base URL the server announced.
    pub fn wait_for_server(&mut self) -> Result<String> {
        let line = self.wait_for_line("serving model", Duration::from_secs(60))?;
        let start = line.find("http://").context("no URL in the serving line")?;
        let rest = &line[start..];
        let end = rest["http://".len()..]
            .find('/')
            .map_or(rest.len(), |i| i + "http://".len());
        Ok(rest[..end].to_owned())
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY-free: libc::kill is a plain syscall wrapper.
        let pid = self.child.id() as i32;
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, signal);
        }
    }

    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("eddy did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The linear model inside a checkpointed single-model pipeline.
pub fn linear(model: &eddy_models::TrainedModel) -> &eddy_ml::LinearModel {
    match &model.learner {
        eddy_models::Learners::One(eddy_ml::AnyModel::Linear(m)) => m,
        other => panic!("expected one linear model, got {other:?}"),
    }
}
