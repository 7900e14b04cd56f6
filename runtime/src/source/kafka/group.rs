//! The consumer-group side of the Kafka source: what the source and its consumers' callbacks
//! share, and the callbacks themselves (client log and statistics, rebalances with their
//! start offsets and the trainer's side of a hand-over).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::source::{Rebalance, TopicPartition};

/// A partition: the topic's index in the source's topic list, and its number.
pub(super) type Tp = (usize, i32);

/// What the rebalance callbacks and the source share.
#[derive(Default)]
pub(super) struct Shared {
    /// Topic names, by index.
    pub(super) names: Vec<String>,
    /// Checkpointed next offsets, by partition: where an assigned partition resumes.
    pub(super) resume: Mutex<HashMap<Tp, i64>>,
    /// Offsets that newly assigned partitions start at exactly, because the keyed state taken
    /// over with them holds the events before; the source moves its own position there too.
    pub(super) starts: Mutex<Vec<(Tp, i64)>>,
    /// Partitions currently assigned, and a counter bumped at each change.
    pub(super) assigned: Mutex<BTreeSet<Tp>>,
    /// Topics whose consumer holds an assignment (perhaps empty) of the group's current
    /// generation: the merge waits for all, so no topic's events go ahead of another's
    /// because its consumer joined first.
    pub(super) ready: Mutex<BTreeSet<usize>>,
    pub(super) generation: AtomicU64,
    /// High watermarks from the client's statistics, by partition.
    pub(super) high: Mutex<HashMap<Tp, i64>>,
}

impl Shared {
    pub(super) fn named(&self, partitions: impl IntoIterator<Item = Tp>) -> Vec<TopicPartition> {
        partitions
            .into_iter()
            .map(|(t, p)| (self.names[t].clone(), p))
            .collect()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One topic's consumer's callbacks.
pub(super) struct Context {
    pub(super) shared: Arc<Shared>,
    /// The topic's index and name.
    pub(super) index: usize,
    pub(super) topic: String,
    /// The trainer's side of a rebalance: checkpoint before partitions go, take their keyed
    /// state over when they come.
    pub(super) rebalance: Option<Arc<dyn Rebalance>>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection failures also arrive through `error`, which says that they are retried.
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "kafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning if fac != "PARTEOF" => {
                tracing::warn!(target: "kafka", "{fac}: {message}")
            }
            _ => tracing::debug!(target: "kafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            return;
        }
        // Connection trouble is retried by the client with backoff.
        tracing::warn!(target: "kafka", %error, "{reason} (retrying with backoff)");
    }

    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            let mut high = lock(&self.shared.high);
            for (&p, partition) in &topic.partitions {
                if p >= 0 && partition.hi_offset >= 0 {
                    high.insert((self.index, p), partition.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| (self.index, e.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The whole assignment after this one: other topics' partitions stay.
                let mut now = lock(&self.shared.assigned).clone();
                if !cooperative {
                    now.retain(|(t, _)| *t != self.index);
                }
                now.extend(&partitions);
                let starts: Vec<(Tp, i64)> = match &self.rebalance {
                    Some(r) => r
                        .assign(
                            &self.shared.named(partitions.clone()),
                            &self.shared.named(now),
                        )
                        .into_iter()
                        .filter(|((topic, _), _)| *topic == self.topic)
                        .map(|((_, p), start)| ((self.index, p), start))
                        .collect(),
                    None => Vec::new(),
                };
                self.start_offsets(consumer, tpl, &starts);
                lock(&self.shared.starts).extend(starts);
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    tracing::error!(target: "kafka", error = %e, "assigning partitions failed");
                }
                let mut assigned = lock(&self.shared.assigned);
                if !cooperative {
                    assigned.retain(|(t, _)| *t != self.index);
                }
                assigned.extend(&partitions);
                let mine: BTreeSet<i32> = assigned
                    .iter()
                    .filter(|(t, _)| *t == self.index)
                    .map(|&(_, p)| p)
                    .collect();
                lock(&self.shared.ready).insert(self.index);
                tracing::info!(topic = %self.topic, partitions = ?mine, "partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Before the partitions go to another worker: checkpoint what was learned from
                // them and commit its offsets, so the new owner starts exactly there.
                if let Some(r) = &self.rebalance {
                    r.revoke(&self.shared.named(partitions.clone()));
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(target: "kafka", error = %e, "revoking partitions failed");
                }
                let mut assigned = lock(&self.shared.assigned);
                for p in &partitions {
                    assigned.remove(p);
                }
                if !cooperative {
                    lock(&self.shared.ready).remove(&self.index);
                }
                let revoked: Vec<i32> = partitions.iter().map(|&(_, p)| p).collect();
                tracing::info!(topic = %self.topic, ?revoked, "partitions revoked");
            }
            other => {
                tracing::error!(target: "kafka", error = ?other, "rebalance failed");
                let _ = consumer.unassign();
                lock(&self.shared.assigned).retain(|(t, _)| *t != self.index);
                lock(&self.shared.ready).remove(&self.index);
            }
        }
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Context {
    /// Sets each assigned partition's start: where its handed-over keyed state says
    /// (`starts`), or else the later of the group's committed offset and this worker's
    /// checkpointed one (another worker may have owned the partition since).
    fn start_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        starts: &[(Tp, i64)],
    ) {
        for &((_, partition), start) in starts {
            if let Err(e) = tpl.set_partition_offset(&self.topic, partition, Offset::Offset(start))
            {
                tracing::warn!(target: "kafka", error = %e, partition, "setting a start offset");
            }
        }
        let resume = lock(&self.shared.resume).clone();
        if resume.is_empty() {
            return;
        }
        let committed = consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .map_err(|e| tracing::warn!(target: "kafka", error = %e, "reading committed offsets"))
            .ok();
        for partition in tpl
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect::<Vec<_>>()
        {
            if starts.iter().any(|&((_, p), _)| p == partition) {
                continue;
            }
            let Some(&ours) = resume.get(&(self.index, partition)) else {
                continue;
            };
            let theirs = committed
                .as_ref()
                .and_then(|c| c.find_partition(&self.topic, partition))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let start = theirs.map_or(ours, |t| t.max(ours));
            if let Err(e) = tpl.set_partition_offset(&self.topic, partition, Offset::Offset(start))
            {
                tracing::warn!(target: "kafka", error = %e, partition, "setting a start offset");
            }
        }
    }
}
