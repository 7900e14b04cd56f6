//! Sinks: predictions and dead letters as JSON Lines, to a file, a standard stream or a Kafka
//! topic.
//!
//! A file sink reports its durable length at each checkpoint and is truncated back to it on
//! resume, so after a crash a file holds each line exactly once. Standard streams cannot be
//! rewound: what was written after the last checkpoint may appear twice there. A Kafka sink
//! (one message per line, idempotent producer) is flushed before each checkpoint, so every
//! line a checkpoint covers is acknowledged by the broker; lines written after the last
//! checkpoint are written again after a crash: at least once. Each Kafka record carries its
//! source `topic`, `partition` and `offset`, which is what consumers deduplicate on.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// What the user writes under `[sinks.predictions]` or `[sinks.dead_letters]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    File {
        path: PathBuf,
    },
    Stdout,
    Stderr,
    Kafka {
        brokers: String,
        topic: String,
        /// Passed to librdkafka as they are (security settings, `compression.type`, ...).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        properties: BTreeMap<String, String>,
    },
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
    File {
        path: PathBuf,
        out: BufWriter<File>,
    },
    Stdout(BufWriter<std::io::Stdout>),
    Stderr(std::io::Stderr),
    Kafka {
        topic: String,
        producer: BaseProducer<Deliveries>,
        /// Messages sent since delivery reports were last served.
        unpolled: u32,
    },
}

/// Counts messages the broker did not take, so a checkpoint never covers a lost line.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

/// How long a checkpoint waits for the broker to acknowledge a sink's messages.
const KAFKA_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting checkpoint says so in the log.
const KAFKA_FLUSH_SLICE: Duration = Duration::from_secs(5);

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
            SinkConfig::Kafka {
                brokers,
                topic,
                properties,
            } => {
                let mut client = ClientConfig::new();
                for (key, value) in properties {
                    client.set(key, value);
                }
                let producer = client
                    .set("bootstrap.servers", brokers)
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "5")
                    .set_log_level(RDKafkaLogLevel::Warning)
                    .create_with_context(Deliveries::default())
                    .map_err(|e| RuntimeError::Kafka {
                        message: format!("creating a producer for {topic}: {e}"),
                    })?;
                (
                    Target::Kafka {
                        topic: topic.clone(),
                        producer,
                        unpolled: 0,
                    },
                    0,
                )
            }
        };
        Ok(LineSink { target, written })
    }
}

impl LineSink {
    /// Appends one line (the newline is added here; a Kafka sink sends it as one message).
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        self.write_keyed(None, line)
    }

    /// Appends one line; a Kafka sink uses `key` as the message key.
    pub fn write_keyed(&mut self, key: Option<&str>, line: &[u8]) -> Result<()> {
        if let Target::Kafka {
            topic,
            producer,
            unpolled,
        } = &mut self.target
        {
            self.written += line.len() as u64 + 1;
            send(producer, topic, key, line)?;
            // Serve delivery reports now and then, not per message (poll takes a lock).
            *unpolled += 1;
            if *unpolled >= 1024 {
                *unpolled = 0;
                producer.poll(Duration::ZERO);
            }
            return Ok(());
        }
        let res = match &mut self.target {
            Target::File { out, .. } => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Target::Stdout(out) => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Target::Stderr(out) => out.write_all(line).and_then(|()| out.write_all(b"\n")),
            Target::Kafka { .. } => unreachable!("sent above"),
        };
        self.written += line.len() as u64 + 1;
        res.map_err(|e| RuntimeError::io("writing", self.name(), e))
    }

    /// Serialises `value` as one line.
    pub fn write_json<T: Serialize>(&mut self, value: &T, scratch: &mut Vec<u8>) -> Result<()> {
        self.write_json_keyed(None, value, scratch)
    }

    /// Serialises `value` as one line with a message key.
    pub fn write_json_keyed<T: Serialize>(
        &mut self,
        key: Option<&str>,
        value: &T,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        scratch.clear();
        serde_json::to_writer(&mut *scratch, value)
            .map_err(|e| RuntimeError::Internal(format!("serialising a sink record: {e}")))?;
        self.write_keyed(key, scratch)
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
            Target::Kafka {
                topic, producer, ..
            } => {
                // Wait in slices so a broker that has gone away shows in the log while the
                // checkpoint waits for it.
                let started = std::time::Instant::now();
                while let Err(e) = producer.flush(KAFKA_FLUSH_SLICE) {
                    let waited = started.elapsed();
                    if waited >= KAFKA_FLUSH_TIMEOUT {
                        return Err(RuntimeError::Kafka {
                            message: format!(
                                "{topic}: messages not acknowledged within {}s: {e}",
                                KAFKA_FLUSH_TIMEOUT.as_secs()
                            ),
                        });
                    }
                    tracing::warn!(
                        target: "kafka",
                        topic = %topic,
                        waiting = producer.in_flight_count(),
                        "the broker has not acknowledged the sink's messages for {}s; the checkpoint waits (up to {}s)",
                        waited.as_secs(),
                        KAFKA_FLUSH_TIMEOUT.as_secs()
                    );
                }
                let deliveries = producer.context();
                let failed = deliveries.failed.load(Ordering::SeqCst);
                if failed > 0 {
                    let last = deliveries.last_error.lock().ok().and_then(|l| l.clone());
                    return Err(RuntimeError::Kafka {
                        message: format!(
                            "{topic}: {failed} messages were not delivered (last error: {})",
                            last.unwrap_or_default()
                        ),
                    });
                }
            }
        }
        Ok(self.written)
    }

    fn name(&self) -> PathBuf {
        match &self.target {
            Target::File { path, .. } => path.clone(),
            Target::Stdout(_) => PathBuf::from("<stdout>"),
            Target::Stderr(_) => PathBuf::from("<stderr>"),
            Target::Kafka { topic, .. } => PathBuf::from(format!("kafka:{topic}")),
        }
    }
}

/// Sends one message, waiting while the producer's queue is full: a slow broker slows the
/// pipeline instead of growing memory.
fn send(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
) -> Result<()> {
    let mut record = BaseRecord::<str, [u8]>::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => {
                return Err(RuntimeError::Kafka {
                    message: format!("sending to {topic}: {e}"),
                })
            }
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
