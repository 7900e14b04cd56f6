//! The Kafka source: one topic, or several, read through a consumer group, with eddy's
//! checkpoint, not the group, as the authority on where each partition stands.
//!
//! - Each topic has its own consumer in the group (the group spreads each topic's partitions
//!   over the workers on its own), so every event of the client, end of partition included,
//!   names its topic. Partitions of all topics are merged as one stream.
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
mod group;
mod topic;

pub use config::{KafkaSourceConfig, MergeOrder, MessageFormat, StartAt};
pub use topic::{assign_whole_topic, parse_kafka_url, peek_first_message};

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BuildContext, Chunk, ChunkParts, Coordinates, DeadLetter, Location, Position, Source};
use crate::error::{Result, RuntimeError};
use crate::metrics::PartitionLabels;
use decode::{push_ipc, read_csv_line};
use eddy_features::{BatchBuilder, CsvHeader, DecodeError, DecodeErrorKind, FieldType, Fill};
use group::{lock, Context, Shared, Tp};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

const RAW_KEEP_BYTES: usize = 4096;

/// Consumer lag per partition, as `/metrics` shows it.
pub type LagGauges = Family<PartitionLabels, Gauge>;

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
    /// One consumer per topic, in the order of the topic list.
    consumers: Vec<Arc<BaseConsumer<Context>>>,
    shared: Arc<Shared>,
    config: KafkaSourceConfig,
    /// Topic names, by index, as the coordinates of records carry them.
    topics: Vec<Arc<str>>,
    builder: BatchBuilder,
    decoder: Decoder,
    key_field: Option<usize>,
    timestamp_field: Option<usize>,
    /// Merge state of the assigned partitions.
    partitions: BTreeMap<Tp, PartitionState>,
    seen_generation: u64,
    /// Every topic's consumer holds an assignment (see `Shared::ready`).
    all_ready: bool,
    /// Records consumed since the start of the stream.
    records: u64,
    /// Next offset to read, by partition (every partition ever read, for the checkpoint).
    next: BTreeMap<Tp, i64>,
    last_message: Instant,
    lag: Option<LagGauges>,
    last_lag: Instant,
    csv_row: csv::ByteRecord,
}

impl KafkaSource {
    pub(crate) fn open(config: &KafkaSourceConfig, cx: BuildContext) -> Result<KafkaSource> {
        let kafka_error = |message: String| RuntimeError::Kafka { message };
        let names = config.topic_list();
        let shared = Arc::new(Shared {
            names: names.clone(),
            ..Shared::default()
        });
        let mut next = BTreeMap::new();
        let mut records = 0;
        if let Some(position) = cx.resume {
            records = position.records;
            match &position.location {
                Location::Kafka { .. } => {
                    let offsets = position.location.kafka_offsets();
                    for &(topic, partition, offset) in &offsets {
                        match names.iter().position(|n| n == topic) {
                            Some(t) => {
                                next.insert((t, partition), offset);
                            }
                            None => {
                                tracing::warn!(
                                topic, partition, offset,
                                "the checkpoint has offsets of a topic this source no longer reads"
                            )
                            }
                        }
                    }
                    if next.is_empty() && !offsets.is_empty() {
                        return Err(kafka_error(format!(
                            "the checkpoint was written by a source of other topics \
                             ({:?}); point checkpoint.dir elsewhere to start afresh",
                            position.location
                        )));
                    }
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
        lock(&shared.resume).extend(next.iter().map(|(&tp, &o)| (tp, o)));

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
        let mut consumers = Vec::with_capacity(names.len());
        for (index, topic) in names.iter().enumerate() {
            let context = Context {
                shared: Arc::clone(&shared),
                index,
                topic: topic.clone(),
                rebalance: cx.rebalance.clone(),
            };
            let consumer: BaseConsumer<Context> = client
                .create_with_context(context)
                .map_err(|e| kafka_error(format!("creating the consumer: {e}")))?;
            consumer
                .subscribe(&[topic.as_str()])
                .map_err(|e| kafka_error(format!("subscribing to {topic}: {e}")))?;
            consumers.push(Arc::new(consumer));
        }

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
            consumers,
            shared,
            topics: names.iter().map(|n| Arc::from(n.as_str())).collect(),
            config: config.clone(),
            builder,
            decoder,
            key_field,
            timestamp_field,
            partitions: BTreeMap::new(),
            seen_generation: u64::MAX,
            all_ready: false,
            records,
            next,
            last_message: Instant::now(),
            lag: cx.kafka_lag,
            last_lag: Instant::now(),
            csv_row: csv::ByteRecord::new(),
        })
    }

    /// Commits the offsets of a durable checkpoint to the group, for the partitions this worker
    /// still owns (each topic's through its consumer). Called by the trainer after each
    /// checkpoint.
    pub fn committer(&self) -> super::Committer {
        // Weak: the consumers close (and leave the group) when the source is dropped, on the
        // source's thread, not when the trainer lets go of its committer.
        let consumers: Vec<_> = self.consumers.iter().map(Arc::downgrade).collect();
        let shared = Arc::clone(&self.shared);
        Box::new(move |position: &Position| {
            let owned = lock(&shared.assigned).clone();
            let mut lists: Vec<TopicPartitionList> = consumers
                .iter()
                .map(|_| TopicPartitionList::new())
                .collect();
            for (topic, partition, offset) in position.location.kafka_offsets() {
                let Some(t) = shared.names.iter().position(|n| n == topic) else {
                    continue;
                };
                if owned.contains(&(t, partition)) {
                    if let Err(e) =
                        lists[t].add_partition_offset(topic, partition, Offset::Offset(offset))
                    {
                        tracing::warn!(target: "kafka", error = %e, "building the commit");
                    }
                }
            }
            for (consumer, tpl) in consumers.iter().zip(&lists) {
                let Some(consumer) = consumer.upgrade() else {
                    continue;
                };
                if tpl.count() == 0 {
                    continue;
                }
                if let Err(e) = consumer.commit(tpl, CommitMode::Sync) {
                    // The checkpoint holds the offsets; the next commit (or the resume rule)
                    // covers it.
                    tracing::warn!(target: "kafka", error = %e, "committing offsets to the group");
                }
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
        self.all_ready = lock(&self.shared.ready).len() == self.consumers.len();
        let assigned = lock(&self.shared.assigned).clone();
        // Revoked partitions: what was buffered and not emitted is the new owner's to read.
        self.partitions.retain(|p, _| assigned.contains(p));
        for p in assigned {
            self.partitions.entry(p).or_default();
        }
    }

    /// Takes at most one message or event from each topic's client into the partition queues,
    /// waiting up to `timeout` on the first; true when any gave one.
    fn poll_once(&mut self, timeout: Duration) -> Result<bool> {
        let mut any = false;
        for t in 0..self.consumers.len() {
            let wait = if t == 0 { timeout } else { Duration::ZERO };
            any |= self.poll_topic(t, wait)?;
        }
        Ok(any)
    }

    fn poll_topic(&mut self, t: usize, timeout: Duration) -> Result<bool> {
        let consumer = Arc::clone(&self.consumers[t]);
        let Some(result) = consumer.poll(timeout) else {
            return Ok(false);
        };
        self.sync_assignment();
        match result {
            Ok(message) => {
                self.last_message = Instant::now();
                let tp = (t, message.partition());
                if !self.partitions.contains_key(&tp) {
                    // Fetched before the partition was revoked: its new owner reads it.
                    return Ok(true);
                }
                let expected = self.next.get(&tp).copied().unwrap_or(i64::MIN);
                if message.offset() < expected {
                    // Already learned (a replay after a rebalance); skip it.
                    return Ok(true);
                }
                let pending = pending(&message);
                let queue_cap = self.config.partition_queue;
                let state = self.partitions.entry(tp).or_default();
                state.at_end = false;
                state.queue.push_back(pending);
                if state.queue.len() >= queue_cap && !state.paused {
                    state.paused = true;
                    self.set_paused(tp, true);
                }
                Ok(true)
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                if let Some(state) = self.partitions.get_mut(&(t, partition)) {
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

    fn set_paused(&self, (t, partition): Tp, paused: bool) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.shared.names[t], partition);
        let consumer = &self.consumers[t];
        let result = if paused {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::warn!(target: "kafka", error = %e, partition, paused, "pausing a partition");
        }
    }

    /// The partition whose head goes next, if the merge may emit now.
    fn next_partition(&self) -> Option<Tp> {
        if !self.all_ready {
            return None;
        }
        let mut best: Option<(i64, Tp, i64)> = None;
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

    fn decode(&mut self, parts: &mut ChunkParts, message: Pending, (t, partition): Tp) {
        let coordinates = Coordinates {
            topic: Arc::clone(&self.topics[t]),
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
                    origin: format!("{}/{}@{}", self.topics[t], partition, message.offset),
                    raw: String::from_utf8_lossy(keep).into_owned(),
                    coordinates: Some(coordinates),
                });
                self.records += 1;
            }
        }
        self.next.insert((t, partition), message.offset + 1);
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
                topic: self.shared.names[p.0].clone(),
                partition: p.1.to_string(),
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
        let offsets = |t: usize| -> Vec<(i32, i64)> {
            self.next
                .range((t, i32::MIN)..=(t, i32::MAX))
                .map(|(&(_, p), &o)| (p, o))
                .collect()
        };
        let names = &self.shared.names;
        Position {
            records: self.records,
            location: Location::Kafka {
                topic: names[0].clone(),
                offsets: offsets(0),
                more: (1..names.len())
                    .map(|t| (names[t].clone(), offsets(t)))
                    .filter(|(_, o)| !o.is_empty())
                    .collect(),
            },
        }
    }

    fn committer(&self) -> Option<super::Committer> {
        Some(KafkaSource::committer(self))
    }
}
