//! Sinks: predictions and dead letters as JSON Lines, to a file or a standard stream.
//!
//! A file sink reports its durable length at each checkpoint and is truncated back to it on
//! resume, so after a crash a file holds each line exactly once. Standard streams cannot be
//! rewound: what was written after the last checkpoint may appear twice there.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// What the user writes under `[sinks.predictions]` or `[sinks.dead_letters]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    File { path: PathBuf },
    Stdout,
    Stderr,
}

/// `[sinks]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<SinkConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<SinkConfig>,
}

enum Target {
    File { path: PathBuf, out: BufWriter<File> },
    Stdout(BufWriter<std::io::Stdout>),
    Stderr(std::io::Stderr),
}

/// A JSON Lines writer.
pub struct LineSink {
    target: Target,
    written: u64,
}

impl SinkConfig {
    /// Opens the sink. `resume_len` is the durable length a checkpoint recorded: the file is cut
    /// back to it; without one the file starts empty.
    pub fn open(&self, resume_len: Option<u64>) -> Result<LineSink> {
        let (target, written) = match self {
            SinkConfig::File { path } => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| RuntimeError::io("creating", parent, e))?;
                }
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| RuntimeError::io("opening", path, e))?;
                let len = resume_len.unwrap_or(0);
                file.set_len(len)
                    .map_err(|e| RuntimeError::io("truncating", path, e))?;
                file.seek(SeekFrom::Start(len))
                    .map_err(|e| RuntimeError::io("seeking", path, e))?;
                (
                    Target::File {
                        path: path.clone(),
                        out: BufWriter::with_capacity(256 * 1024, file),
                    },
                    len,
                )
            }
            SinkConfig::Stdout => (Target::Stdout(BufWriter::new(std::io::stdout())), 0),
            SinkConfig::Stderr => (Target::Stderr(std::io::stderr()), 0),
        };
        Ok(LineSink { target, written })
    }
}

impl LineSink {
    /// Appends one line (the newline is added here).
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let res = match &mut self.target {
            Target::File { out, .. } => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Target::Stdout(out) => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Target::Stderr(out) => out.write_all(line).and_then(|()| out.write_all(b"\n")),
        };
        self.written += line.len() as u64 + 1;
        res.map_err(|e| RuntimeError::io("writing", self.name(), e))
    }

    /// Serialises `value` as one line.
    pub fn write_json<T: Serialize>(&mut self, value: &T, scratch: &mut Vec<u8>) -> Result<()> {
        scratch.clear();
        serde_json::to_writer(&mut *scratch, value)
            .map_err(|e| RuntimeError::Internal(format!("serialising a sink record: {e}")))?;
        self.write_line(scratch)
    }

    /// Flushes and, for files, fsyncs; returns the durable length a checkpoint should record.
    pub fn commit(&mut self) -> Result<u64> {
        let name = self.name();
        match &mut self.target {
            Target::File { out, .. } => {
                out.flush()
                    .map_err(|e| RuntimeError::io("flushing", &name, e))?;
                out.get_ref()
                    .sync_data()
                    .map_err(|e| RuntimeError::io("syncing", &name, e))?;
            }
            Target::Stdout(out) => out
                .flush()
                .map_err(|e| RuntimeError::io("flushing", &name, e))?,
            Target::Stderr(_) => {}
        }
        Ok(self.written)
    }

    fn name(&self) -> PathBuf {
        match &self.target {
            Target::File { path, .. } => path.clone(),
            Target::Stdout(_) => PathBuf::from("<stdout>"),
            Target::Stderr(_) => PathBuf::from("<stderr>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_file_sink_drops_what_followed_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SinkConfig::File {
            path: dir.path().join("out/p.jsonl"),
        };
        let mut sink = config.open(None).expect("open");
        sink.write_line(b"one").expect("write");
        let durable = sink.commit().expect("commit");
        sink.write_line(b"two").expect("write");
        sink.commit().expect("commit");
        drop(sink);

        let mut sink = config.open(Some(durable)).expect("reopen");
        sink.write_line(b"three").expect("write");
        sink.commit().expect("commit");
        let text = std::fs::read_to_string(dir.path().join("out/p.jsonl")).expect("read");
        assert_eq!(text, "one\nthree\n");
    }
}
