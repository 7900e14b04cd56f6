//! `[source] type = "kafka"`: what a pipeline says about its topic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[source] type = "kafka"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic to read; or `topics`, a list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topic: String,
    /// Several topics read as one stream (merged like the partitions of one topic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The consumer group; workers of one group split the topics' partitions.
    pub group: String,
    /// Where a partition with neither a checkpointed nor a committed offset starts.
    #[serde(default)]
    pub start: StartAt,
    #[serde(default)]
    pub format: MessageFormat,
    /// Column names of CSV messages (one CSV line per message, no header); defaults to the
    /// schema's fields in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_columns: Option<Vec<String>>,
    /// A String field that takes the message key when the record does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// A Number field that takes the message timestamp (ms since the epoch) when the record
    /// does not carry it: event time from Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_field: Option<String>,
    #[serde(default)]
    pub order: MergeOrder,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// End the run after this many seconds without a new message (backfills and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<f64>,
    /// Messages larger than this are dead-lettered unread.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Messages buffered per partition before it is paused.
    #[serde(default = "default_partition_queue")]
    pub partition_queue: usize,
    /// Passed to librdkafka as they are: `security.protocol`, `sasl.mechanisms`,
    /// `sasl.username`, `ssl.ca.location`, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Earliest,
    Latest,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    /// One JSON object per message.
    #[default]
    Json,
    /// One CSV line per message.
    Csv,
    /// An Arrow IPC stream per message (one or more record batches).
    ArrowIpc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOrder {
    #[default]
    Timestamp,
    Arrival,
}

fn default_batch_size() -> usize {
    4096
}
fn default_max_message_bytes() -> usize {
    1 << 20
}
fn default_partition_queue() -> usize {
    50_000
}

impl KafkaSourceConfig {
    /// A config with the defaults for everything but the essentials (quick mode).
    pub fn new(brokers: &str, topic: &str, group: &str) -> KafkaSourceConfig {
        KafkaSourceConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            topics: Vec::new(),
            group: group.to_owned(),
            start: StartAt::default(),
            format: MessageFormat::default(),
            csv_columns: None,
            key_field: None,
            timestamp_field: None,
            order: MergeOrder::default(),
            batch_size: default_batch_size(),
            idle_timeout_seconds: None,
            max_message_bytes: default_max_message_bytes(),
            partition_queue: default_partition_queue(),
            properties: BTreeMap::new(),
        }
    }

    /// The topics read: `topics`, or the one `topic`.
    pub fn topic_list(&self) -> Vec<String> {
        if self.topics.is_empty() {
            vec![self.topic.clone()]
        } else {
            self.topics.clone()
        }
    }

    pub(crate) fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [("brokers", &self.brokers), ("group", &self.group)] {
            if value.trim().is_empty() {
                problems.push(format!("source.{key}: empty"));
            }
        }
        match (self.topic.trim().is_empty(), self.topics.is_empty()) {
            (true, true) => problems.push("source.topic: empty (or give source.topics)".into()),
            (false, false) => {
                problems.push("source.topics: give either topic or topics, not both".into())
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.topics {
            if t.trim().is_empty() || !seen.insert(t) {
                problems.push(format!("source.topics: {t:?} is empty or listed twice"));
            }
        }
        if let Some(s) = self.idle_timeout_seconds {
            if !(s.is_finite() && s > 0.0) {
                problems.push(format!(
                    "source.idle_timeout_seconds: must be finite and > 0, got {s}"
                ));
            }
        }
        if self.partition_queue == 0 {
            problems.push("source.partition_queue: must be >= 1, got 0".into());
        }
        for key in self.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                problems.push(format!(
                    "source.properties.{key}: set by eddy (offsets are committed after each \
                     durable checkpoint); remove it"
                ));
            }
        }
        problems
    }
}

/// librdkafka settings eddy relies on and does not let a pipeline override.
const OWNED_PROPERTIES: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "group.id",
    "bootstrap.servers",
];
