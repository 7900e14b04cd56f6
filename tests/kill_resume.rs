//! SIGKILL in the middle of a file stream, resume, and compare with an uninterrupted run: the
//! final parameters, metrics, counts and prediction file must be bit-identical.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{checkpoint_count, eddy, latest_checkpoint, logistic_file, run_ok, summary, Running};

const EVENTS: u64 = 300_000;

fn quick(data: &Path, dir: &Path) -> std::process::Command {
    let mut cmd = eddy();
    cmd.args(["run", "--quiet", "--batch-size", "512", "--input"])
        .arg(data)
        .args(["--target", "y"])
        .arg("--checkpoint-dir")
        .arg(dir.join("ckpt"))
        .arg("--predictions")
        .arg(dir.join("predictions.jsonl"))
        .arg("--summary-json")
        .arg(dir.join("summary.json"));
    cmd
}

/// Checkpoint every 5,000 events so kills land between checkpoints.
fn write_pipeline(dir: &Path, data: &Path) -> anyhow::Result<std::path::PathBuf> {
    let file = dir.join("p.toml");
    let toml = format!(
        r#"
[source]
type = "file"
path = "{}"
batch_size = 512

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"]

[[features]]
type = "hash"
fields = ["cat"]
bits = 8

[model]
type = "logistic"
target = "y"

[checkpoint]
dir = "{}"
interval_events = 5000

[serve]
enabled = false

[sinks.predictions]
type = "file"
path = "{}"
"#,
        data.display(),
        dir.join("ckpt").display(),
        dir.join("predictions.jsonl").display()
    );
    std::fs::write(&file, toml)?;
    Ok(file)
}

#[test]
fn sigkill_and_resume_is_bit_identical_to_an_unbroken_run() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("stream.jsonl");
    logistic_file(&data, EVENTS, 11)?;

    let unbroken = root.path().join("unbroken");
    std::fs::create_dir_all(&unbroken)?;
    let pipeline = write_pipeline(&unbroken, &data)?;
    run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&pipeline)
            .arg("--summary-json")
            .arg(unbroken.join("summary.json")),
    )?;

    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken)?;
    let pipeline = write_pipeline(&broken, &data)?;
    let mut kills = 0;
    // Kill twice, each time once a new checkpoint has appeared, i.e. mid-stream.
    for wanted in [2usize, 6] {
        let mut running = Running::spawn(eddy().args(["run", "--quiet"]).arg(&pipeline))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while checkpoint_count(&broken.join("ckpt")) < wanted.min(3)
            || latest_events(&broken) < wanted as u64 * 5000
        {
            if running.child.try_wait()?.is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if running.child.try_wait()?.is_none() {
            running.signal(libc::SIGKILL);
            running.wait(Duration::from_secs(10))?;
            kills += 1;
        }
    }
    run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&pipeline)
            .arg("--summary-json")
            .arg(broken.join("summary.json")),
    )?;
    assert_eq!(
        kills, 2,
        "the run finished before it could be killed twice; make the stream longer"
    );

    let a = summary(&unbroken.join("summary.json"))?;
    let b = summary(&broken.join("summary.json"))?;
    let resumed_from = b["resumed_from"].as_u64().expect("the last run resumed");
    assert!(
        resumed_from > 0 && resumed_from < EVENTS,
        "resumed from {resumed_from}"
    );
    for key in [
        "events",
        "learned",
        "dead_lettered",
        "metrics",
        "window_metrics",
        "model_version",
    ] {
        assert_eq!(a[key], b[key], "{key} differs");
    }
    assert_eq!(b["learned"], EVENTS, "every event learned exactly once");

    let ca = latest_checkpoint(&unbroken.join("ckpt"))?;
    let cb = latest_checkpoint(&broken.join("ckpt"))?;
    assert_eq!(ca.model, cb.model, "model state differs after recovery");
    assert_eq!(ca.counters, cb.counters);
    let wa: Vec<u64> = common::linear(&ca.model)
        .weights()
        .iter()
        .map(|w| w.to_bits())
        .collect();
    let wb: Vec<u64> = common::linear(&cb.model)
        .weights()
        .iter()
        .map(|w| w.to_bits())
        .collect();
    assert_eq!(wa, wb);

    // The prediction file was cut back to each checkpoint, so each event appears exactly once.
    let pa = std::fs::read(unbroken.join("predictions.jsonl"))?;
    let pb = std::fs::read(broken.join("predictions.jsonl"))?;
    assert_eq!(pa.len(), pb.len());
    assert!(pa == pb, "prediction files differ");
    Ok(())
}

fn latest_events(dir: &Path) -> u64 {
    latest_checkpoint(&dir.join("ckpt")).map_or(0, |c| c.counters.events)
}

#[test]
fn quick_mode_resumes_from_its_checkpoint_dir() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("s.jsonl");
    logistic_file(&data, 30_000, 5)?;
    let full = root.path().join("full");
    run_ok(&mut quick(&data, &full))?;
    let parts = root.path().join("parts");
    // Two runs of at most 12,000 records, then one to the end: the same as one run.
    for _ in 0..2 {
        run_ok(quick(&data, &parts).args(["--max-events", "12000"]))?;
    }
    run_ok(&mut quick(&data, &parts))?;
    let a = summary(&full.join("summary.json"))?;
    let b = summary(&parts.join("summary.json"))?;
    assert_eq!(b["resumed_from"], 24_000);
    assert_eq!(a["metrics"], b["metrics"]);
    assert_eq!(a["learned"], b["learned"]);
    assert_eq!(
        std::fs::read(full.join("predictions.jsonl"))?,
        std::fs::read(parts.join("predictions.jsonl"))?
    );
    Ok(())
}
