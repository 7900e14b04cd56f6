//! Atomic, checksummed checkpoints of a whole pipeline: source position, sink lengths, feature
//! state, learner parameters, metric state and counters.
//!
//! File layout: `EDDYCKPT` magic, format version (u32 LE), payload length (u64 LE), xxh3-64 of
//! the payload (u64 LE), payload (MessagePack of [`Checkpoint`]). A file is written to a temporary
//! name, fsynced, renamed, and the directory fsynced, so a crash leaves either the old set or the
//! new one. A newest file that fails its checksum is set aside (`.corrupt`) and the previous one used.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use eddy_models::TrainedModel;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Result, RuntimeError};
use crate::source::Position;

const MAGIC: &[u8; 8] = b"EDDYCKPT";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 8;
const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".eddy";

/// Totals since the start of the stream (not of this process).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub events: u64,
    pub learned: u64,
    pub dead_lettered: u64,
}

/// Everything needed to continue a pipeline exactly where it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Hash of the pipeline's features and model sections: a checkpoint only resumes the pipeline that wrote it.
    pub fingerprint: u64,
    pub created_unix_ms: u64,
    pub position: Position,
    pub predictions_len: Option<u64>,
    pub dead_letters_len: Option<u64>,
    pub counters: Counters,
    /// Events handled before this source began (a run continued from another pipeline's
    /// checkpoint with `--resume-from`); `counters.events` = this + the source's own records.
    #[serde(default)]
    pub events_base: u64,
    pub model: TrainedModel,
    /// With `checkpoint.shared_dir`: which partitions' keyed state this worker holds.
    #[serde(default)]
    pub handover: Option<crate::handover::HandoverState>,
}

/// Loads a checkpoint from a file or the newest in a directory.
pub fn load_from(path: &Path) -> Result<Checkpoint> {
    if path.is_dir() {
        let store = CheckpointStore::open(path, usize::MAX)?;
        match store.load_latest()? {
            Some((_, checkpoint)) => Ok(checkpoint),
            None => Err(RuntimeError::Checkpoint {
                path: path.to_path_buf(),
                message: "holds no checkpoint".into(),
            }),
        }
    } else {
        read_checkpoint(path)
    }
}

/// A directory of numbered checkpoint files.
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointStore {
    pub fn open(dir: &Path, keep: usize) -> Result<CheckpointStore> {
        fs::create_dir_all(dir)
            .map_err(|e| RuntimeError::io("creating checkpoint directory", dir, e))?;
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint files by number, oldest first.
    fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(|e| RuntimeError::io("listing", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((n, entry.path()));
        }
        found.sort();
        Ok(found)
    }

    /// Writes `checkpoint` atomically as the newest one and drops the oldest beyond `keep`.
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<PathBuf> {
        let existing = self.list()?;
        let n = existing.last().map_or(1, |(n, _)| n + 1);
        let payload = rmp_serde::to_vec_named(checkpoint)
            .map_err(|e| RuntimeError::Internal(format!("encoding a checkpoint: {e}")))?;
        let path = self.dir.join(format!("{PREFIX}{n:010}{SUFFIX}"));
        let tmp = self.dir.join(format!(".{PREFIX}{n:010}.tmp"));
        write_framed(MAGIC, &payload, &tmp, &path)?;

        let total = existing.len() + 1;
        for (_, old) in existing.iter().take(total.saturating_sub(self.keep)) {
            if let Err(e) = fs::remove_file(old) {
                tracing::warn!(path = %old.display(), error = %e, "could not remove an old checkpoint");
            }
        }
        Ok(path)
    }

    /// The newest checkpoint that passes its checks, if any.
    pub fn load_latest(&self) -> Result<Option<(PathBuf, Checkpoint)>> {
        for (_, path) in self.list()?.into_iter().rev() {
            match read_checkpoint(&path) {
                Ok(checkpoint) => return Ok(Some((path, checkpoint))),
                Err(e) => {
                    let aside = path.with_extension("corrupt");
                    tracing::warn!(
                        path = %path.display(), error = %e, moved_to = %aside.display(),
                        "checkpoint is damaged; using the previous one"
                    );
                    fs::rename(&path, &aside)
                        .map_err(|e| RuntimeError::io("setting aside", &path, e))?;
                }
            }
        }
        Ok(None)
    }
}

/// Reads and verifies one checkpoint file.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = read_framed(MAGIC, "an eddy checkpoint", path)?;
    rmp_serde::from_slice(&bytes).map_err(|e| RuntimeError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("decoding: {e}"),
    })
}

/// Writes `magic`, the format version, the payload's length and checksum, then the payload,
/// to `tmp`; fsyncs it, renames it to `path` and fsyncs the directory: a crash leaves either
/// the old file or the whole new one.
pub(crate) fn write_framed(magic: &[u8; 8], payload: &[u8], tmp: &Path, path: &Path) -> Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    let mut file = File::create(tmp).map_err(|e| RuntimeError::io("creating", tmp, e))?;
    file.write_all(&bytes)
        .map_err(|e| RuntimeError::io("writing", tmp, e))?;
    file.sync_all()
        .map_err(|e| RuntimeError::io("syncing", tmp, e))?;
    drop(file);
    fs::rename(tmp, path).map_err(|e| RuntimeError::io("renaming", tmp, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RuntimeError::io("syncing directory", dir, e))
}

/// Reads a file written by [`write_framed`] with `magic` and returns its payload, after
/// checking the magic, version, length and checksum. `what` names the kind in errors.
pub(crate) fn read_framed(magic: &[u8; 8], what: &str, path: &Path) -> Result<Vec<u8>> {
    let fail = |message: String| RuntimeError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| RuntimeError::io("reading", path, e))?;
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Err(fail(format!("not {what} (bad magic or too short)")));
    }
    let word = |at: usize, len: usize| -> u64 {
        let mut buf = [0u8; 8];
        buf[..len].copy_from_slice(&bytes[at..at + len]);
        u64::from_le_bytes(buf)
    };
    let version = word(8, 4);
    if version != u64::from(FORMAT_VERSION) {
        return Err(fail(format!(
            "format version {version}, this eddy reads {FORMAT_VERSION}"
        )));
    }
    let len = word(12, 8);
    let sum = word(20, 8);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(fail(format!(
            "truncated: header says {len} payload bytes, file has {}",
            payload.len()
        )));
    }
    if xxh3_64(payload) != sum {
        return Err(fail("checksum mismatch: the file is corrupt".into()));
    }
    bytes.drain(..HEADER_LEN);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_features::FeatureConfig;
    use eddy_ml::{LinearModel, Loss, Task};
    use eddy_models::ModelSpec;

    fn checkpoint(records: u64) -> Checkpoint {
        let features = vec![FeatureConfig::StandardScaler {
            fields: vec!["a".into()],
        }];
        let spec = ModelSpec::new("m", &features, Some("y"), Task::Binary, None).expect("spec");
        let params = LinearModel::params(Loss::Logistic).check().expect("params");
        Checkpoint {
            fingerprint: 7,
            created_unix_ms: 1,
            position: Position {
                records,
                location: crate::source::Location::Generator,
            },
            predictions_len: Some(10),
            dead_letters_len: None,
            counters: Counters {
                events: records,
                learned: records,
                dead_lettered: 0,
            },
            events_base: 0,
            handover: None,
            model: TrainedModel::new(
                &spec,
                &eddy_models::LearnerParams::Linear(params.clone()),
                None,
                5,
            )
            .expect("model"),
        }
    }

    #[test]
    fn round_trip_and_keep_only_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path(), 2).expect("store");
        for r in 1..=4 {
            store.write(&checkpoint(r)).expect("write");
        }
        assert_eq!(store.list().expect("list").len(), 2);
        let (_, latest) = store.load_latest().expect("load").expect("some");
        assert_eq!(latest, checkpoint(4));
    }

    #[test]
    fn a_corrupt_newest_checkpoint_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path(), 3).expect("store");
        store.write(&checkpoint(1)).expect("write");
        let newest = store.write(&checkpoint(2)).expect("write");
        let mut bytes = fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newest, &bytes).expect("corrupt it");
        let (_, loaded) = store.load_latest().expect("load").expect("some");
        assert_eq!(loaded.position.records, 1);
        assert!(newest.with_extension("corrupt").exists());
    }

    #[test]
    fn a_truncated_checkpoint_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path(), 3).expect("store");
        let path = store.write(&checkpoint(1)).expect("write");
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        let err = read_checkpoint(&path).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
