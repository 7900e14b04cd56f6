//! Sources: where events come from, how far we have read, and how to resume from there.
//!
//! A source decodes records against the pipeline's schema into Arrow micro-batches ([`Chunk`]s).
//! Records it cannot decode become [`DeadLetter`]s in the same chunk, so nothing is lost and the
//! chunk's end [`Position`] always covers every record read. Checkpoints store that position; a
//! restarted source seeks to it and continues with the very next record.

mod columnar;
mod ctr;
mod file;
mod generator;
mod kafka;
mod merge;
mod parse_ahead;
mod quotes;
mod read_ahead;
mod reader;
mod shuffle;
mod video;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use eddy_features::BatchBuilder;
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use columnar::{columnar_schema, is_columnar, ColumnarSource};
pub use file::{
    expand_inputs, FileFormat, FileSource, FileSourceConfig, StdinSource, StdinSourceConfig,
};
pub use generator::{GeneratorConfig, GeneratorKind, GeneratorSource};
pub use kafka::{
    assign_whole_topic, parse_kafka_url, peek_first_message, KafkaSource, KafkaSourceConfig,
    LagGauges, MergeOrder, MessageFormat, StartAt,
};
pub use merge::MergedFile;
pub use quotes::{Quote, QuoteTape, QuotesSource};
pub use video::{VideoSource, VideoSourceConfig};

/// How far a source has read. `records` counts every record consumed since the start of the
/// stream, dead letters included; `location` says where to continue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub records: u64,
    pub location: Location,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// Nothing read yet.
    #[default]
    Start,
    /// Inside file number `index` of the sorted input list, `offset` bytes (of decompressed data)
    /// and `line` lines in.
    File {
        index: usize,
        path: PathBuf,
        offset: u64,
        line: u64,
    },
    /// A generator: `records` alone says where it is.
    Generator,
    /// Standard input cannot seek: a resumed run reads what stdin gives it next.
    Stdin,
    /// A Kafka topic: the next offset to read, by partition, for every partition read so far;
    /// a source of several topics has the others in `more`.
    Kafka {
        topic: String,
        offsets: Vec<(i32, i64)>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        more: Vec<(String, Vec<(i32, i64)>)>,
    },
    /// A video source: `records` frames were consumed; a resumed run reads past that many.
    Video,
    /// Files merged by event time (`merge_by`): how many records each has handed on.
    Merged { files: Vec<MergedFile> },
    /// A shuffled offline run (`shuffle_seed`): `records` were handed on in a random order, so
    /// there is no place in the input to resume from.
    Shuffled,
}

/// Where a record read from Kafka came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coordinates {
    #[serde(serialize_with = "serialize_arc_str")]
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The message timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
}

fn serialize_arc_str<S: serde::Serializer>(
    s: &Arc<str>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(s)
}

/// Commits a durable checkpoint's position back to the source (Kafka offsets to the group).
pub type Committer = Box<dyn FnMut(&Position) + Send>;

/// How a Kafka source tells the trainer that partitions move. Each call blocks until the
/// trainer has handled every chunk handed to it before the call.
pub trait Rebalance: Send + Sync {
    /// Partitions are about to go to another worker: checkpoint and commit what was learned,
    /// and hand the partitions' keyed state over.
    fn revoke(&self, partitions: &[TopicPartition]);

    /// Partitions arrived (`assigned` is the whole assignment now): take their keyed state
    /// over. Returns the offsets that some of them must start at, because the state taken over
    /// holds the events before them.
    fn assign(
        &self,
        partitions: &[TopicPartition],
        assigned: &[TopicPartition],
    ) -> Vec<(TopicPartition, i64)>;
}

impl Location {
    /// A Kafka position's next offsets as `(topic, partition, offset)`, in the order stored.
    pub fn kafka_offsets(&self) -> Vec<(&str, i32, i64)> {
        let Location::Kafka {
            topic,
            offsets,
            more,
        } = self
        else {
            return Vec::new();
        };
        let first = offsets.iter().map(|&(p, o)| (topic.as_str(), p, o));
        let rest = more
            .iter()
            .flat_map(|(t, offsets)| offsets.iter().map(move |&(p, o)| (t.as_str(), p, o)));
        first.chain(rest).collect()
    }
}

/// A Kafka topic and partition.
pub type TopicPartition = (String, i32);

/// A record that could not be used, with enough context to find and fix it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Sequence number of the record in the stream (0-based, dead letters included).
    #[serde(rename = "position")]
    pub seq: u64,
    /// Stable machine-readable reason, e.g. `wrong_type`.
    pub kind: &'static str,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Human-readable reason naming the value.
    pub reason: String,
    /// Where it came from, e.g. `data/day1.jsonl:17`.
    pub origin: String,
    /// The record as read (lossy UTF-8).
    pub raw: String,
    /// Topic, partition, offset and timestamp, for records read from Kafka.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub coordinates: Option<Coordinates>,
}

/// One micro-batch: decoded rows, the dead letters met while reading them, and the position
/// after the last record.
#[derive(Debug)]
pub struct Chunk {
    pub batch: RecordBatch,
    /// The stream sequence number of each row of `batch`.
    pub seqs: Vec<u64>,
    /// Where each row of `batch` came from, for Kafka sources; empty otherwise.
    pub origins: Vec<Coordinates>,
    pub dead: Vec<DeadLetter>,
    pub end: Position,
}

/// A running source.
pub trait Source: Send {
    /// Reads at most `max` records (valid or not). `None` means the stream has ended.
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>>;

    /// Where the next record will be read from.
    fn position(&self) -> Position;

    /// What to call once a checkpoint holding a position is durable (Kafka commits offsets).
    fn committer(&self) -> Option<Committer> {
        None
    }
}

/// How much of a finite input (files) has been read, in bytes on disk, for progress and ETA.
/// Sources of unknown length leave the total at zero.
#[derive(Debug, Default)]
pub struct InputMeter {
    read: AtomicU64,
    total: AtomicU64,
}

impl InputMeter {
    /// Bytes read so far (skipped bytes of a resumed input included).
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The input's size, when it has one.
    pub fn total(&self) -> Option<u64> {
        Some(self.total.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub(crate) fn add_read(&self, bytes: u64) {
        self.read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_total(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Adds the sizes of `files` to the total.
    pub(crate) fn add_files(&self, files: &[PathBuf]) {
        self.add_total(total_size(files));
    }

    /// Counts `files` as read: the ones a resumed source has passed already.
    pub(crate) fn skip_files(&self, files: &[PathBuf]) {
        self.add_read(total_size(files));
    }
}

fn total_size(files: &[PathBuf]) -> u64 {
    files.iter().map(|f| file_size(f)).sum()
}

/// A file's size on disk; 0 when it cannot be read (opening it will say why).
pub(crate) fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A reader that counts the bytes it reads into an [`InputMeter`].
pub(crate) struct Metered<R> {
    pub(crate) inner: R,
    pub(crate) meter: Arc<InputMeter>,
}

impl<R: std::io::Read> std::io::Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add_read(n as u64);
        Ok(n)
    }
}

/// What a source config needs to build a running source.
pub struct BuildContext {
    /// A fresh builder for the pipeline's training schema (with its target checks).
    pub builder: BatchBuilder,
    /// Where to continue, when resuming from a checkpoint.
    pub resume: Option<Position>,
    /// Consumer lag gauges, for sources that have a lag.
    pub kafka_lag: Option<LagGauges>,
    /// Told when Kafka partitions move (the trainer's side of a rebalance).
    pub rebalance: Option<Arc<dyn Rebalance>>,
    /// Where file sources count the bytes they read.
    pub meter: Arc<InputMeter>,
    /// String fields that only hashers read (`FeatureSet::hash_only_fields`, less the key and
    /// the target): a columnar file's dictionary-encoded columns for them stay encoded.
    pub dictionary_fields: Vec<String>,
}

impl BuildContext {
    /// A context without Kafka lag gauges or rebalance calls, with a meter of its own.
    pub fn new(builder: BatchBuilder, resume: Option<Position>) -> BuildContext {
        BuildContext {
            builder,
            resume,
            kafka_lag: None,
            rebalance: None,
            meter: Arc::default(),
            dictionary_fields: Vec::new(),
        }
    }
}

/// What the user writes under `[source]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    File(FileSourceConfig),
    Stdin(StdinSourceConfig),
    Generator(GeneratorConfig),
    Kafka(KafkaSourceConfig),
    Video(VideoSourceConfig),
}

impl SourceConfig {
    /// Records per micro-batch.
    pub fn batch_size(&self) -> usize {
        match self {
            SourceConfig::File(c) => c.batch_size,
            SourceConfig::Stdin(c) => c.batch_size,
            SourceConfig::Generator(c) => c.batch_size,
            SourceConfig::Kafka(c) => c.batch_size,
            SourceConfig::Video(c) => c.batch_size,
        }
    }

    /// Every problem with this config, each prefixed by its key path.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.batch_size() == 0 {
            problems.push("source.batch_size: must be >= 1, got 0".to_owned());
        }
        match self {
            SourceConfig::File(c) => problems.extend(c.validate()),
            SourceConfig::Generator(c) => problems.extend(c.validate()),
            SourceConfig::Kafka(c) => problems.extend(c.validate()),
            SourceConfig::Video(c) => problems.extend(c.validate()),
            _ => {}
        }
        problems
    }

    /// Starts the source, positioned at `cx.resume` if given.
    pub fn build(&self, cx: BuildContext) -> Result<Box<dyn Source>> {
        Ok(match self {
            SourceConfig::File(c) => {
                let seed = c.shuffle_seed;
                if seed.is_some() && cx.resume.is_some() {
                    return Err(crate::error::RuntimeError::Input {
                        path: c.path.clone().into(),
                        message: "a shuffled run cannot resume from a checkpoint: remove the \
                                  checkpoint directory, or continue its model with --resume-from \
                                  in a run that is not shuffled"
                            .into(),
                    });
                }
                if let Some(field) = &c.merge_by {
                    let files = expand_inputs(&c.path)?;
                    return Ok(Box::new(merge::Merged::open(
                        files,
                        c.format,
                        c.batch_size,
                        field,
                        cx,
                    )?));
                }
                let files = c.inputs()?;
                let columnar = files
                    .iter()
                    .filter(|f| columnar::Columnar::of(f).is_some())
                    .count();
                let source: Box<dyn Source> = match columnar {
                    0 => Box::new(FileSource::open(c, cx)?),
                    n if n == files.len() => Box::new(columnar::ColumnarSource::open(files, cx)?),
                    _ => return Err(crate::error::RuntimeError::Input {
                        path: c.path.clone().into(),
                        message:
                            "mixes columnar (Parquet, Arrow IPC) and line (JSON Lines, CSV) files; \
                                      give one kind per source"
                                .into(),
                    }),
                };
                match seed {
                    Some(seed) => Box::new(shuffle::Shuffled::new(source, seed, c.shuffle_buffer)),
                    None => source,
                }
            }
            SourceConfig::Stdin(c) => Box::new(StdinSource::open(c, cx)?),
            SourceConfig::Generator(c) if c.kind == GeneratorKind::Quotes => {
                Box::new(quotes::QuotesSource::new(c, cx))
            }
            SourceConfig::Generator(c) => Box::new(GeneratorSource::new(c, cx)),
            SourceConfig::Kafka(c) => Box::new(KafkaSource::open(c, cx)?),
            SourceConfig::Video(c) => Box::new(VideoSource::open(c, cx)?),
        })
    }
}

/// Shared by sources: collects rows and dead letters of one chunk.
pub(crate) struct ChunkParts {
    pub(crate) seqs: Vec<u64>,
    pub(crate) origins: Vec<Coordinates>,
    pub(crate) dead: Vec<DeadLetter>,
}

impl ChunkParts {
    pub(crate) fn new() -> Self {
        ChunkParts {
            seqs: Vec::new(),
            origins: Vec::new(),
            dead: Vec::new(),
        }
    }

    pub(crate) fn records(&self) -> usize {
        self.seqs.len() + self.dead.len()
    }

    pub(crate) fn finish(self, builder: &mut BatchBuilder, end: Position) -> Chunk {
        Chunk {
            batch: builder.finish(),
            seqs: self.seqs,
            origins: self.origins,
            dead: self.dead,
            end,
        }
    }
}

/// The schema of a builder, for sources that map their own columns onto it.
pub(crate) fn schema_of(builder: &BatchBuilder) -> Arc<eddy_features::Schema> {
    Arc::clone(builder.schema())
}
