//! Reading a topic outside any consumer group: addresses, whole-topic assignment, and the first
//! message (quick mode).

use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Result, RuntimeError};

/// A `kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]` address: (brokers, topics as written).
pub fn parse_kafka_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("kafka://")?;
    let (brokers, topic) = rest.split_once('/')?;
    (!brokers.is_empty() && !topic.is_empty() && !topic.contains('/'))
        .then(|| (brokers.to_owned(), topic.to_owned()))
}

/// The first message of a topic (its lowest offset over all partitions), read without joining
/// any group or committing anything: quick mode reads its fields from it.
pub fn peek_first_message(brokers: &str, topic: &str, timeout: Duration) -> Result<Vec<u8>> {
    let kafka_error = |message: String| RuntimeError::Kafka { message };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "eddy-quick-peek")
        .set("enable.auto.commit", "false")
        .set_log_level(RDKafkaLogLevel::Error)
        .create()
        .map_err(|e| kafka_error(format!("creating a consumer: {e}")))?;
    let partitions = assign_whole_topic(&consumer, topic, Offset::Beginning, timeout)?;
    if partitions == 0 {
        return Err(kafka_error(format!(
            "topic {topic} does not exist on {brokers}"
        )));
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => return Ok(message.payload().unwrap_or_default().to_vec()),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::warn!(target: "kafka", error = %e, "peeking"),
        }
    }
    Err(kafka_error(format!(
        "no message on {topic} within {}s: quick mode reads the fields of the first message; \
         write a pipeline file to start on an empty topic",
        timeout.as_secs()
    )))
}

/// Assigns every partition of `topic` to `consumer` at `offset`, outside any group; returns how
/// many partitions the topic has (0: it does not exist).
pub fn assign_whole_topic<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    offset: Offset,
    timeout: Duration,
) -> Result<usize> {
    let kafka_error = |message: String| RuntimeError::Kafka { message };
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kafka_error(format!("reading the metadata of {topic}: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
    {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), offset)
                .map_err(|e| kafka_error(e.to_string()))?;
        }
    }
    if tpl.count() > 0 {
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_error(format!("assigning {topic}: {e}")))?;
    }
    Ok(tpl.count())
}
