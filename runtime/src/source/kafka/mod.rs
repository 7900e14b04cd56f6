//! The Kafka source: one topic read through a consumer group, with eddy's checkpoint, not the
//! group, as the authority on where each partition stands.
//!
//! - Auto-commit is off. The position of a chunk is the next offset of every partition read so
//!   far; a checkpoint stores it, and only once the checkpoint is durable are those offsets
//!   committed to the group (see [`KafkaSource::committer`]). When a partition is assigned, it
//!   starts at the later of the group's committed offset and this worker's checkpointed one, so
//!   a crash between a checkpoint and its commit replays nothing twice.
//! - Partitions are merged in timestamp order (`order = "timestamp"`, the default): a message
//!   is emitted only when every assigned partition has a message waiting or has reached its end,
//!   and the smallest `(timestamp, partition, offset)` goes first. Over a topic whose messages
//!   are all written, that is one total order whatever the fetch timing, so a resumed run learns
//!   exactly the events, in exactly the order, that an unbroken run would have. `order =
//!   "arrival"` takes messages as the client delivers them (lower latency, no such guarantee).
//! - Memory is bounded: a partition whose queue is full is paused at the client until the merge
//!   has drained it, so a slow trainer slows the fetches instead of growing the heap.

mod config;
mod decode;
mod topic;

pub use config::{KafkaSourceConfig, MergeOrder, MessageFormat, StartAt};
pub use topic::{assign_whole_topic, parse_kafka_url, peek_first_message};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{BuildContext, Chunk, ChunkParts, Coordinates, DeadLetter, Location, Position, Source};
use crate::error::{Result, RuntimeError};
use crate::metrics::PartitionLabels;
use decode::{push_ipc, read_csv_line};
use eddy_features::{BatchBuilder, CsvHeader, DecodeError, DecodeErrorKind, FieldType, Fill};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const RAW_KEEP_BYTES: usize = 4096;

/// Consumer lag per partition, as `/metrics` shows it.
pub type LagGauges = Family<PartitionLabels, Gauge>;

/// What the rebalance callback and the source share.
#[derive(Default)]
struct Shared {
    /// Checkpointed next offsets, by partition: where an assigned partition resumes.
    resume: Mutex<HashMap<i32, i64>>,
    /// Offsets that newly assigned partitions start at exactly, because the keyed state taken
    /// over with them holds the events before; the source moves its own position there too.
    starts: Mutex<Vec<(i32, i64)>>,
    /// Partitions currently assigned, and a counter bumped at each change.
    assigned: Mutex<BTreeSet<i32>>,
    generation: AtomicU64,
    /// High watermarks from the client's statistics, by partition.
    high: Mutex<HashMap<i32, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Context {
    shared: Arc<Shared>,
    topic: String,
    /// The trainer's side of a rebalance: checkpoint before partitions go, take their keyed
    /// state over when they come.
    rebalance: Option<Arc<dyn super::Rebalance>>,
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
                    high.insert(p, partition.hi_offset);
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
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut now: BTreeSet<i32> = if cooperative {
                    lock(&self.shared.assigned).clone()
                } else {
                    BTreeSet::new()
                };
                now.extend(&partitions);
                let now: Vec<i32> = now.into_iter().collect();
                let starts = match &self.rebalance {
                    Some(r) => r.assign(&partitions, &now),
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
                    assigned.clear();
                }
                assigned.extend(&partitions);
                tracing::info!(topic = %self.topic, partitions = ?assigned, "partitions assigned");
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Before the partitions go to another worker: checkpoint what was learned from
                // them and commit its offsets, so the new owner starts exactly there.
                if let Some(r) = &self.rebalance {
                    r.revoke(&partitions);
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
                tracing::info!(topic = %self.topic, revoked = ?partitions, "partitions revoked");
            }
            other => {
                tracing::error!(target: "kafka", error = ?other, "rebalance failed");
                let _ = consumer.unassign();
                lock(&self.shared.assigned).clear();
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
        starts: &[(i32, i64)],
    ) {
        for &(partition, start) in starts {
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
            if starts.iter().any(|&(p, _)| p == partition) {
                continue;
            }
            let Some(&ours) = resume.get(&partition) else {
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

/// A message waiting in its partition's queue for the merge.
struct Pending {
    offset: i64,
    timestamp: i64,
    key: Option<Box<str>>,
    payload: Box<[u8]>,
}

#[derive(Default)]
struct PartitionState {
    queue: VecDeque<Pending>,
    /// Reached the end of what the partition held at the last fetch.
    at_end: bool,
    paused: bool,
}

enum Decoder {
    Json,
    Csv(CsvHeader),
    ArrowIpc,
}

/// A running Kafka source.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<Context>>,
    shared: Arc<Shared>,
    config: KafkaSourceConfig,
    topic: Arc<str>,
    builder: BatchBuilder,
    decoder: Decoder,
    key_field: Option<usize>,
    timestamp_field: Option<usize>,
    /// Merge state of the assigned partitions.
    partitions: BTreeMap<i32, PartitionState>,
    seen_generation: u64,
    /// Records consumed since the start of the stream.
    records: u64,
    /// Next offset to read, by partition (every partition ever read, for the checkpoint).
    next: BTreeMap<i32, i64>,
    last_message: Instant,
    lag: Option<LagGauges>,
    last_lag: Instant,
    csv_row: csv::ByteRecord,
}

impl KafkaSource {
    pub(crate) fn open(config: &KafkaSourceConfig, cx: BuildContext) -> Result<KafkaSource> {
        let kafka_error = |message: String| RuntimeError::Kafka { message };
        let shared = Arc::new(Shared::default());
        let mut next = BTreeMap::new();
        let mut records = 0;
        if let Some(position) = cx.resume {
            records = position.records;
            match position.location {
                Location::Kafka { topic, offsets } if topic == config.topic => {
                    next.extend(offsets.iter().copied());
                }
                Location::Start => {}
                other => {
                    return Err(kafka_error(format!(
                        "the checkpoint was written by another source ({other:?}); point \
                         checkpoint.dir elsewhere to start afresh"
                    )))
                }
            }
        }
        lock(&shared.resume).extend(next.iter().map(|(&p, &o)| (p, o)));

        let mut client = ClientConfig::new();
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "auto.offset.reset",
                match config.start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            )
            .set("statistics.interval.ms", "1000")
            .set_log_level(RDKafkaLogLevel::Warning);
        // Faster failover than librdkafka's 45 s default: a worker that dies hands its
        // partitions on within 10 s. A pipeline may set its own.
        if !config.properties.contains_key("session.timeout.ms") {
            client.set("session.timeout.ms", "10000");
        }
        // librdkafka waits this long before refilling a partition's prefetch queue once it was
        // full (1 s by default since 2.2): at our rates the queue drains in a fraction of that,
        // and the wait halved throughput. A pipeline may set its own.
        if !config.properties.contains_key("fetch.queue.backoff.ms") {
            client.set("fetch.queue.backoff.ms", "10");
        }
        if !config.properties.contains_key("fetch.message.max.bytes") {
            client.set(
                "fetch.message.max.bytes",
                (config.max_message_bytes.max(1 << 20) + 4096).to_string(),
            );
        }
        let context = Context {
            shared: Arc::clone(&shared),
            topic: config.topic.clone(),
            rebalance: cx.rebalance.clone(),
        };
        let consumer: BaseConsumer<Context> = client
            .create_with_context(context)
            .map_err(|e| kafka_error(format!("creating the consumer: {e}")))?;
        consumer
            .subscribe(&[config.topic.as_str()])
            .map_err(|e| kafka_error(format!("subscribing to {}: {e}", config.topic)))?;

        let builder = cx.builder;
        let schema = Arc::clone(builder.schema());
        let field = |name: &Option<String>, ty: FieldType, key: &str| -> Result<Option<usize>> {
            let Some(name) = name else { return Ok(None) };
            match schema.index_of(name) {
                Some(i) if schema.fields()[i].ty == ty => Ok(Some(i)),
                Some(_) => Err(kafka_error(format!(
                    "source.{key}: field {name:?} has the wrong type (the key fills a String \
                     field, the timestamp a Number field)"
                ))),
                None => Err(kafka_error(format!(
                    "source.{key}: no field {name:?} in the pipeline's schema"
                ))),
            }
        };
        let key_field = field(&config.key_field, FieldType::String, "key_field")?;
        let timestamp_field = field(
            &config.timestamp_field,
            FieldType::Number,
            "timestamp_field",
        )?;
        let decoder = match config.format {
            MessageFormat::Json => Decoder::Json,
            MessageFormat::ArrowIpc => Decoder::ArrowIpc,
            MessageFormat::Csv => {
                let names: Vec<String> = match &config.csv_columns {
                    Some(c) => c.clone(),
                    None => schema.fields().iter().map(|f| f.name.clone()).collect(),
                };
                let header = csv::ByteRecord::from(names);
                Decoder::Csv(
                    CsvHeader::new(&header, &schema)
                        .map_err(|e| kafka_error(format!("source.csv_columns: {e}")))?,
                )
            }
        };
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            shared,
            topic: Arc::from(config.topic.as_str()),
            config: config.clone(),
            builder,
            decoder,
            key_field,
            timestamp_field,
            partitions: BTreeMap::new(),
            seen_generation: u64::MAX,
            records,
            next,
            last_message: Instant::now(),
            lag: cx.kafka_lag,
            last_lag: Instant::now(),
            csv_row: csv::ByteRecord::new(),
        })
    }

    /// Commits the offsets of a durable checkpoint to the group, for the partitions this worker
    /// still owns. Called by the trainer after each checkpoint.
    pub fn committer(&self) -> super::Committer {
        // Weak: the consumer closes (and leaves the group) when the source is dropped, on the
        // source's thread, not when the trainer lets go of its committer.
        let consumer = Arc::downgrade(&self.consumer);
        let shared = Arc::clone(&self.shared);
        let topic = self.config.topic.clone();
        Box::new(move |position: &Position| {
            let Location::Kafka { offsets, .. } = &position.location else {
                return;
            };
            let owned = lock(&shared.assigned).clone();
            let mut tpl = TopicPartitionList::new();
            for &(partition, offset) in offsets {
                if owned.contains(&partition) {
                    if let Err(e) =
                        tpl.add_partition_offset(&topic, partition, Offset::Offset(offset))
                    {
                        tracing::warn!(target: "kafka", error = %e, "building the commit");
                    }
                }
            }
            let Some(consumer) = consumer.upgrade() else {
                return;
            };
            if tpl.count() == 0 {
                return;
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                // The checkpoint holds the offsets; the next commit (or the resume rule) covers it.
                tracing::warn!(target: "kafka", error = %e, "committing offsets to the group");
            }
        })
    }

    /// Brings the merge state in line with the current assignment.
    fn sync_assignment(&mut self) {
        let generation = self.shared.generation.load(Ordering::SeqCst);
        if generation == self.seen_generation {
            return;
        }
        self.seen_generation = generation;
        // The idle clock starts when partitions are first (or newly) assigned: joining a group
        // takes a few seconds and is not idleness.
        self.last_message = Instant::now();
        // Partitions taken over with keyed state start where that state ends.
        for (partition, start) in lock(&self.shared.starts).drain(..) {
            self.next.insert(partition, start);
        }
        let assigned = lock(&self.shared.assigned).clone();
        // Revoked partitions: what was buffered and not emitted is the new owner's to read.
        self.partitions.retain(|p, _| assigned.contains(p));
        for p in assigned {
            self.partitions.entry(p).or_default();
        }
    }

    /// Takes one message or event from the client into the partition queues.
    fn poll_once(&mut self, timeout: Duration) -> Result<bool> {
        let consumer = Arc::clone(&self.consumer);
        let Some(result) = consumer.poll(timeout) else {
            return Ok(false);
        };
        self.sync_assignment();
        match result {
            Ok(message) => {
                self.last_message = Instant::now();
                let partition = message.partition();
                if !self.partitions.contains_key(&partition) {
                    // Fetched before the partition was revoked: its new owner reads it.
                    return Ok(true);
                }
                let expected = self.next.get(&partition).copied().unwrap_or(i64::MIN);
                if message.offset() < expected {
                    // Already learned (a replay after a rebalance); skip it.
                    return Ok(true);
                }
                let pending = pending(&message);
                let queue_cap = self.config.partition_queue;
                let state = self.partitions.entry(partition).or_default();
                state.at_end = false;
                state.queue.push_back(pending);
                if state.queue.len() >= queue_cap && !state.paused {
                    state.paused = true;
                    self.set_paused(partition, true);
                }
                Ok(true)
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                if let Some(state) = self.partitions.get_mut(&partition) {
                    state.at_end = true;
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(target: "kafka", error = %e, "consuming (the client retries)");
                Ok(false)
            }
        }
    }

    fn set_paused(&self, partition: i32, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.config.topic, partition);
        let result = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::warn!(target: "kafka", error = %e, partition, paused, "pausing a partition");
        }
    }

    /// The partition whose head goes next, if the merge may emit now.
    fn next_partition(&self) -> Option<i32> {
        let mut best: Option<(i64, i32, i64)> = None;
        for (&p, state) in &self.partitions {
            match state.queue.front() {
                Some(m) => {
                    let key = match self.config.order {
                        MergeOrder::Timestamp => (m.timestamp, p, m.offset),
                        // Arrival: any waiting head goes; partitions in turn.
                        MergeOrder::Arrival => (0, p, m.offset),
                    };
                    if best.is_none_or(|b| key < b) {
                        best = Some(key);
                    }
                }
                None if self.config.order == MergeOrder::Timestamp && !state.at_end => return None,
                None => {}
            }
        }
        best.map(|(_, p, _)| p)
    }

    fn decode(&mut self, parts: &mut ChunkParts, message: Pending, partition: i32) {
        let coordinates = Coordinates {
            topic: Arc::clone(&self.topic),
            partition,
            offset: message.offset,
            timestamp_ms: message.timestamp,
        };
        let mut fill: [(usize, Fill<'_>); 2] = [(usize::MAX, Fill::Number(0.0)); 2];
        if let (Some(i), Some(key)) = (self.key_field, message.key.as_deref()) {
            fill[0] = (i, Fill::Text(key));
        }
        if let Some(i) = self.timestamp_field {
            fill[1] = (i, Fill::Number(message.timestamp as f64));
        }
        let result: std::result::Result<usize, DecodeError> = if message.payload.len()
            > self.config.max_message_bytes
        {
            Err(DecodeError::record(
                DecodeErrorKind::TooLarge,
                format!(
                    "message of {} bytes is over source.max_message_bytes ({})",
                    message.payload.len(),
                    self.config.max_message_bytes
                ),
            ))
        } else {
            match &self.decoder {
                Decoder::Json => self
                    .builder
                    .push_json_filled(&message.payload, &fill)
                    .map(|()| 1),
                Decoder::Csv(header) => {
                    let row = &mut self.csv_row;
                    read_csv_line(&message.payload, row)
                        .and_then(|()| self.builder.push_csv_filled(header, row, &fill).map(|()| 1))
                }
                Decoder::ArrowIpc => push_ipc(&mut self.builder, &message.payload, &fill),
            }
        };
        match result {
            Ok(rows) => {
                for _ in 0..rows {
                    parts.seqs.push(self.records);
                    parts.origins.push(coordinates.clone());
                    self.records += 1;
                }
            }
            Err(err) => {
                let keep = &message.payload[..message.payload.len().min(RAW_KEEP_BYTES)];
                parts.dead.push(DeadLetter {
                    seq: self.records,
                    kind: err.kind.as_str(),
                    field: err.field.clone(),
                    reason: err.to_string(),
                    origin: format!("{}/{}@{}", self.topic, partition, message.offset),
                    raw: String::from_utf8_lossy(keep).into_owned(),
                    coordinates: Some(coordinates),
                });
                self.records += 1;
            }
        }
        self.next.insert(partition, message.offset + 1);
    }

    fn report_lag(&mut self) {
        let Some(lag) = &self.lag else { return };
        if self.last_lag.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_lag = Instant::now();
        let high = lock(&self.shared.high).clone();
        for &p in self.partitions.keys() {
            let Some(&hi) = high.get(&p) else { continue };
            let next = self.next.get(&p).copied().unwrap_or(0);
            lag.get_or_create(&PartitionLabels {
                topic: self.config.topic.clone(),
                partition: p.to_string(),
            })
            .set((hi - next).max(0));
        }
    }
}

fn pending(message: &BorrowedMessage<'_>) -> Pending {
    Pending {
        offset: message.offset(),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned().into_boxed_str()),
        payload: message.payload().unwrap_or_default().into(),
    }
}

impl Source for KafkaSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let started = Instant::now();
        let idle = self
            .config
            .idle_timeout_seconds
            .map(Duration::from_secs_f64);
        let mut parts = ChunkParts::new();
        loop {
            self.sync_assignment();
            // Emit what the merge allows.
            while parts.records() < max {
                let Some(p) = self.next_partition() else {
                    break;
                };
                let state = self.partitions.get_mut(&p).expect("chosen among assigned");
                let message = state.queue.pop_front().expect("chosen for its head");
                let resume = state.paused && state.queue.len() <= self.config.partition_queue / 2;
                if resume {
                    state.paused = false;
                    self.set_paused(p, false);
                }
                self.decode(&mut parts, message, p);
            }
            self.report_lag();
            // Hand the records on before polling again: rebalance callbacks run inside poll,
            // and by then every emitted record must have reached the trainer (see `Rebalance`).
            if parts.records() > 0 {
                break;
            }
            let waited = self.last_message.elapsed();
            if idle.is_some_and(|d| waited >= d)
                && !self.partitions.is_empty()
                && self.partitions.values().all(|s| s.queue.is_empty())
            {
                return Ok(None);
            }
            // Hand back an empty chunk now and then, so a quiet stream still checkpoints and
            // notices a stop request.
            if started.elapsed() >= Duration::from_millis(200) {
                break;
            }
            self.poll_once(Duration::from_millis(10))?;
            // Take what is already fetched without waiting.
            for _ in 0..max {
                if !self.poll_once(Duration::ZERO)? {
                    break;
                }
            }
        }
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        Position {
            records: self.records,
            location: Location::Kafka {
                topic: self.config.topic.clone(),
                offsets: self.next.iter().map(|(&p, &o)| (p, o)).collect(),
            },
        }
    }

    fn committer(&self) -> Option<super::Committer> {
        Some(KafkaSource::committer(self))
    }
}
