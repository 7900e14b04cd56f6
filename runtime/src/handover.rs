//! Keyed state that moves with its Kafka partition (`checkpoint.shared_dir`).
//!
//! Per-key state (lags, averages, windows, a model per key) belongs to the partition whose
//! events built it. The workers of a group share a directory; at every checkpoint each worker
//! writes, for every partition it holds, one file with that partition's keyed state and the
//! partition's next offset (the state holds exactly the events before it), atomically.
//!
//! - Giving a partition up (a rebalance revokes it): the worker checkpoints, which writes the
//!   partition's file, then drops the partition's keys.
//! - Gaining a partition: before any of its events is read, the worker reads the partition's
//!   file. Written by another worker (or by an earlier run of this one that no longer holds the
//!   partition), it replaces this worker's state for the partition's keys, and the partition
//!   starts at the file's offset. Written by this worker while it still holds the partition,
//!   its own checkpoint is as new or newer, and stays. No file: the partition starts afresh.
//! - A worker killed between checkpoints loses what it learned since its last one; the worker
//!   that gains its partitions starts them from that checkpoint's files, so their keyed state
//!   holds every event once.
//!
//! Which partition a key belongs to is learned from the events: the partition of the key's
//! newest event (`owners`), kept in this worker's checkpoint and pruned to the keys that still
//! have state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use eddy_models::{KeyedPart, ModelSpec, TrainedModel};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_framed, write_framed};
use crate::error::{Result, RuntimeError};
use crate::source::{Coordinates, Position, TopicPartition};

const MAGIC: &[u8; 8] = b"EDDYPART";

/// What a worker's checkpoint keeps of the hand-over: who it is, the partitions whose keyed
/// state it holds, and the partition of each key (by key field), in sorted order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoverState {
    pub worker: u64,
    pub held: BTreeSet<TopicPartition>,
    pub owners: BTreeMap<String, BTreeMap<String, TopicPartition>>,
}

/// One partition's keyed state in the shared directory.
#[derive(Debug, Serialize, Deserialize)]
struct PartitionFile {
    worker: u64,
    topic: String,
    partition: i32,
    /// The next offset to read: the state holds every event of the partition before it.
    offset: i64,
    /// The partition's keys, by key field.
    keys: BTreeMap<String, Vec<String>>,
    state: KeyedPart,
}

/// The partition of a key's newest event, and the sweep that last found the key in the state.
struct Owner {
    topic: Arc<str>,
    partition: i32,
    seen: u64,
}

/// The hand-over of keyed state for one Kafka source.
pub(crate) struct Handover {
    /// `SHARED_DIR/GROUP`; each topic has a directory inside.
    dir: PathBuf,
    worker: u64,
    held: BTreeSet<TopicPartition>,
    /// key field -> key -> owner.
    owners: HashMap<String, HashMap<Box<str>, Owner>>,
    /// Key fields and their columns in the training schema.
    columns: Vec<(String, usize)>,
    sweep: u64,
}

/// Keeps a group or topic name to characters that are safe in a file name.
fn path_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Handover {
    /// The hand-over for the topics `group` reads, under `shared_dir`; `restored` is what the
    /// checkpoint this run resumes kept (a fresh worker identity otherwise).
    pub(crate) fn open(
        shared_dir: &Path,
        group: &str,
        spec: &ModelSpec,
        model: &TrainedModel,
        restored: Option<HandoverState>,
    ) -> Result<Handover> {
        let dir = shared_dir.join(path_part(group));
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::io("creating the shared checkpoint directory", &dir, e))?;
        let restored = restored.unwrap_or_else(|| HandoverState {
            worker: rand::random::<u64>() | 1,
            ..HandoverState::default()
        });
        let columns = model
            .key_fields(spec)
            .into_iter()
            .filter_map(|f| spec.schema.index_of(f).map(|i| (f.to_owned(), i)))
            .collect();
        let owners = restored
            .owners
            .into_iter()
            .map(|(field, keys)| {
                let keys = keys
                    .into_iter()
                    .map(|(k, (topic, partition))| {
                        let topic = Arc::from(topic.as_str());
                        (
                            k.into(),
                            Owner {
                                topic,
                                partition,
                                seen: 0,
                            },
                        )
                    })
                    .collect();
                (field, keys)
            })
            .collect();
        Ok(Handover {
            dir,
            worker: restored.worker,
            held: restored.held,
            owners,
            columns,
            sweep: 0,
        })
    }

    /// What the checkpoint keeps.
    pub(crate) fn state(&self) -> HandoverState {
        HandoverState {
            worker: self.worker,
            held: self.held.clone(),
            owners: self
                .owners
                .iter()
                .map(|(field, keys)| {
                    let keys = keys
                        .iter()
                        .map(|(k, o)| (k.to_string(), (o.topic.to_string(), o.partition)))
                        .collect();
                    (field.clone(), keys)
                })
                .collect(),
        }
    }

    fn file(&self, (topic, partition): &TopicPartition) -> PathBuf {
        self.dir
            .join(path_part(topic))
            .join(format!("partition-{partition}.eddy"))
    }

    /// Notes the partition of each row as the owner of the row's keys.
    pub(crate) fn note(&mut self, batch: &RecordBatch, origins: &[Coordinates]) {
        if origins.len() != batch.num_rows() {
            return;
        }
        for (field, column) in &self.columns {
            let Some(keys) = batch.column(*column).as_any().downcast_ref::<StringArray>() else {
                continue;
            };
            let owners = self.owners.entry(field.clone()).or_default();
            for (row, origin) in origins.iter().enumerate() {
                if !keys.is_valid(row) {
                    continue;
                }
                let key = keys.value(row);
                match owners.get_mut(key) {
                    Some(owner) => {
                        if owner.partition != origin.partition
                            || !Arc::ptr_eq(&owner.topic, &origin.topic)
                        {
                            owner.topic = Arc::clone(&origin.topic);
                            owner.partition = origin.partition;
                        }
                    }
                    None => {
                        let owner = Owner {
                            topic: Arc::clone(&origin.topic),
                            partition: origin.partition,
                            seen: self.sweep,
                        };
                        owners.insert(key.into(), owner);
                    }
                }
            }
        }
    }

    /// Writes the file of every held partition at `position` (called with each checkpoint,
    /// after it is durable), and forgets the owners of keys that no longer have state.
    pub(crate) fn publish(
        &mut self,
        spec: &ModelSpec,
        model: &TrainedModel,
        position: &Position,
    ) -> Result<()> {
        self.sweep += 1;
        let sweep = self.sweep;
        let held: Vec<&TopicPartition> = self.held.iter().collect();
        let part_of = |owner: &Owner| {
            held.iter()
                .position(|(t, p)| *p == owner.partition && **t == *owner.topic)
        };
        let owners = &mut self.owners;
        let mut keys: BTreeMap<usize, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut parts = model.keyed_parts(spec, |field, key| {
            let owner = owners.get_mut(field)?.get_mut(key)?;
            owner.seen = sweep;
            let part = part_of(owner)?;
            let list = keys
                .entry(part)
                .or_default()
                .entry(field.to_owned())
                .or_default();
            list.push(key.to_owned());
            Some(part as u32)
        });
        for (topic, partition, offset) in position.location.kafka_offsets() {
            let Some(part) = held.iter().position(|(t, p)| *p == partition && t == topic) else {
                continue;
            };
            let file = PartitionFile {
                worker: self.worker,
                topic: topic.to_owned(),
                partition,
                offset,
                keys: keys.remove(&part).unwrap_or_default(),
                state: parts.remove(&(part as u32)).unwrap_or_default(),
            };
            let payload = rmp_serde::to_vec_named(&file).map_err(|e| {
                RuntimeError::Internal(format!("encoding {topic}/{partition}'s keyed state: {e}"))
            })?;
            let path = self.file(held[part]);
            let dir = path.parent().expect("a file inside the topic's directory");
            std::fs::create_dir_all(dir).map_err(|e| {
                RuntimeError::io("creating the shared checkpoint directory", dir, e)
            })?;
            let tmp = dir.join(format!(".partition-{partition}.{:016x}.tmp", self.worker));
            write_framed(MAGIC, &payload, &tmp, &path)?;
        }
        for keys in self.owners.values_mut() {
            keys.retain(|_, o| o.seen == sweep);
        }
        Ok(())
    }

    /// Gives partitions up: drops the state of their keys.
    pub(crate) fn release(
        &mut self,
        spec: &ModelSpec,
        model: &mut TrainedModel,
        gone: &[TopicPartition],
    ) {
        if gone.is_empty() {
            return;
        }
        let among = |o: &Owner| {
            gone.iter()
                .any(|(t, p)| *p == o.partition && **t == *o.topic)
        };
        let owners = &self.owners;
        model.remove_keys(spec, |field, key| {
            owners
                .get(field)
                .and_then(|keys| keys.get(key))
                .is_some_and(among)
        });
        for keys in self.owners.values_mut() {
            keys.retain(|_, o| !among(o));
        }
        for tp in gone {
            self.held.remove(tp);
        }
        tracing::info!(partitions = ?gone, "keyed state of partitions released");
    }

    /// Takes `partitions` over (`assigned` is the whole assignment now): partitions held but no
    /// longer assigned are released, and each new partition's handed-over state is put in.
    /// Returns the offsets that adopted partitions start at.
    pub(crate) fn adopt(
        &mut self,
        spec: &ModelSpec,
        model: &mut TrainedModel,
        partitions: &[TopicPartition],
        assigned: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>> {
        let stale: Vec<TopicPartition> = self
            .held
            .iter()
            .filter(|tp| !assigned.contains(tp) && !partitions.contains(tp))
            .cloned()
            .collect();
        self.release(spec, model, &stale);
        let mut starts = Vec::new();
        for tp in partitions {
            let path = self.file(tp);
            if !path.exists() {
                self.held.insert(tp.clone());
                continue;
            }
            let file: PartitionFile =
                rmp_serde::from_slice(&read_framed(MAGIC, "an eddy partition state file", &path)?)
                    .map_err(|e| RuntimeError::Checkpoint {
                        path: path.clone(),
                        message: format!("decoding: {e}"),
                    })?;
            let (topic, partition) = tp;
            if file.topic != *topic || file.partition != *partition || file.offset < 0 {
                return Err(RuntimeError::Checkpoint {
                    path,
                    message: format!(
                        "holds partition {} of {:?} at offset {}, not partition {partition} of {topic:?}",
                        file.partition, file.topic, file.offset
                    ),
                });
            }
            if file.worker == self.worker && self.held.contains(tp) {
                // Written by this worker, which has held the partition since: its own state
                // is as new (or one checkpoint newer, when it stopped between the two writes).
                continue;
            }
            self.release(spec, model, std::slice::from_ref(tp));
            let entries = file.state.len();
            model.put_keys(file.state)?;
            let topic_arc: Arc<str> = Arc::from(topic.as_str());
            for (field, keys) in file.keys {
                let owners = self.owners.entry(field).or_default();
                for key in keys {
                    let owner = Owner {
                        topic: Arc::clone(&topic_arc),
                        partition: *partition,
                        seen: self.sweep,
                    };
                    owners.insert(key.into(), owner);
                }
            }
            self.held.insert(tp.clone());
            starts.push((tp.clone(), file.offset));
            tracing::info!(
                topic,
                partition,
                offset = file.offset,
                entries,
                from_worker = format_args!("{:016x}", file.worker),
                "took over the keyed state of a partition"
            );
        }
        Ok(starts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eddy_features::{FeatureBatch, FeatureConfig};
    use eddy_ml::{LinearModel, Loss, Task};
    use eddy_models::LearnerParams;

    use super::*;
    use crate::source::Location;

    fn tp(partition: i32) -> TopicPartition {
        ("t".to_owned(), partition)
    }

    fn spec() -> ModelSpec {
        let features: Vec<FeatureConfig> = serde_json::from_str(
            r#"[{"type": "lag", "field": "x", "key": "k"},
                {"type": "ema", "field": "x", "key": "k", "half_life": 2}]"#,
        )
        .expect("configs");
        ModelSpec::new("m", &features, Some("y"), Task::Binary, Some("k")).expect("spec")
    }

    fn model(spec: &ModelSpec) -> TrainedModel {
        let params = LinearModel::params(Loss::Logistic).check().expect("params");
        TrainedModel::new(spec, &LearnerParams::Linear(params), Some(100), 10).expect("model")
    }

    /// Learns `n` events of keys k0..k5, key `k{j}` on partition `j % 2`; the next offsets.
    fn learn(
        spec: &ModelSpec,
        model: &mut TrainedModel,
        handover: &mut Handover,
        n: usize,
    ) -> Position {
        let mut builder = spec.batch_builder();
        let mut origins = Vec::new();
        let mut next = [0i64; 2];
        for i in 0..n {
            let j = i % 6;
            let record = format!(r#"{{"k": "k{j}", "x": {}, "y": {}}}"#, i % 7, i % 2);
            builder.push_json(record.as_bytes()).expect("decodes");
            let partition = (j % 2) as i32;
            origins.push(Coordinates {
                topic: Arc::from("t"),
                partition,
                offset: next[j % 2],
                timestamp_ms: 0,
            });
            next[j % 2] += 1;
        }
        let batch = builder.finish();
        handover.note(&batch, &origins);
        model
            .learn_batch(spec, &batch, &mut FeatureBatch::new(), |_, _| {})
            .expect("learns");
        Position {
            records: n as u64,
            location: Location::Kafka {
                topic: "t".into(),
                offsets: vec![(0, next[0]), (1, next[1])],
                more: Vec::new(),
            },
        }
    }

    fn keys(spec: &ModelSpec, model: &TrainedModel) -> BTreeMap<u32, KeyedPart> {
        model.keyed_parts(spec, |_, key| {
            Some(u32::from(key.ends_with(['1', '3', '5'])))
        })
    }

    #[test]
    fn a_partition_s_keys_move_to_the_worker_that_gains_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec();
        let (mut one, mut two) = (model(&spec), model(&spec));
        let mut first = Handover::open(dir.path(), "g", &spec, &one, None).expect("open");
        assert!(first
            .adopt(&spec, &mut one, &[tp(0), tp(1)], &[tp(0), tp(1)])
            .expect("adopt")
            .is_empty());
        let position = learn(&spec, &mut one, &mut first, 60);
        first.publish(&spec, &one, &position).expect("publish");
        let before = keys(&spec, &one);

        // The first worker gives partition 1 up; a second takes it from the shared directory.
        first.release(&spec, &mut one, &[tp(1)]);
        assert_eq!(keys(&spec, &one).get(&0), before.get(&0));
        assert!(
            !keys(&spec, &one).contains_key(&1),
            "partition 1's keys are gone"
        );
        let mut second = Handover::open(dir.path(), "g", &spec, &two, None).expect("open");
        let starts = second
            .adopt(&spec, &mut two, &[tp(1)], &[tp(1)])
            .expect("adopt");
        assert_eq!(starts, [(tp(1), 30)]);
        assert_eq!(keys(&spec, &two).get(&1), before.get(&1));
        assert!(!keys(&spec, &two).contains_key(&0));
        assert_eq!(second.state().owners["k"].len(), 3);

        // A worker that still holds a partition it wrote keeps its own state.
        let restored = first.state();
        let mut again = Handover::open(dir.path(), "g", &spec, &one, Some(restored)).expect("open");
        let kept = one.clone();
        assert!(again
            .adopt(&spec, &mut one, &[tp(0)], &[tp(0)])
            .expect("adopt")
            .is_empty());
        assert_eq!(one, kept);
    }

    #[test]
    fn a_damaged_partition_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec();
        let mut one = model(&spec);
        let mut first = Handover::open(dir.path(), "g", &spec, &one, None).expect("open");
        first
            .adopt(&spec, &mut one, &[tp(0), tp(1)], &[tp(0), tp(1)])
            .expect("adopt");
        let position = learn(&spec, &mut one, &mut first, 12);
        first.publish(&spec, &one, &position).expect("publish");
        let path = first.file(&tp(1));
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&path, bytes).expect("damage");
        let mut two = model(&spec);
        let mut second = Handover::open(dir.path(), "g", &spec, &two, None).expect("open");
        let err = second
            .adopt(&spec, &mut two, &[tp(1)], &[tp(1)])
            .expect_err("damaged");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
