//! `eddy bench --kafka HOST:PORT`: eddy consuming a topic, learning and writing predictions back,
//! against a real broker.
//!
//! 1. Throughput: a fresh topic is filled with the benchmark stream (JSON, 10 numeric features),
//!    then the benchmark pipeline (scaler → logistic, checkpoints on) reads it with a Kafka
//!    source and writes every prediction to a second topic. The rate is measured between the
//!    first and the last progress report that saw events, so joining the group and the idle
//!    timeout at the end are not counted.
//! 2. Latency: with a pipeline already consuming, messages are produced at a steady rate; the
//!    latency of an event is the broker timestamp of its prediction on the output topic minus
//!    the timestamp of the input message.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use eddy_runtime::sink::SinkConfig;
use eddy_runtime::source::{assign_whole_topic, KafkaSourceConfig, SourceConfig};
use eddy_runtime::{presets, RunOptions, StopHandle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;

pub struct KafkaBench {
    pub brokers: String,
    pub events: u64,
    pub partitions: i32,
    pub batch_size: usize,
    pub dir: std::path::PathBuf,
    /// Events per second of the latency phase, and its length.
    pub latency_rate: f64,
    pub latency_seconds: f64,
    /// Merge partitions by timestamp (deterministic) or take messages as they arrive.
    pub arrival_order: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?
    {
        if let Err((name, code)) = result {
            bail!("creating topic {name}: {code}");
        }
    }
    Ok(())
}

fn producer(brokers: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

fn send(producer: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) -> Result<()> {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(payload)
        .timestamp(now_ms());
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(_), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// The benchmark stream as JSON lines, one per message.
fn lines(events: u64) -> Result<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    presets::bench_stream().write_jsonl(events, &mut buf)?;
    Ok(buf
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn pipeline(
    bench: &KafkaBench,
    topic: &str,
    group: &str,
    output: &str,
    checkpoints: &std::path::Path,
) -> Result<eddy_runtime::ValidConfig> {
    let mut config = presets::bench(checkpoints, checkpoints, bench.batch_size);
    let mut source = KafkaSourceConfig::new(&bench.brokers, topic, group);
    source.batch_size = bench.batch_size;
    source.idle_timeout_seconds = Some(3.0);
    if bench.arrival_order {
        source.order = eddy_runtime::source::MergeOrder::Arrival;
    }
    config.source = SourceConfig::Kafka(source);
    config.sinks.predictions = Some(SinkConfig::Kafka {
        brokers: bench.brokers.clone(),
        topic: output.to_owned(),
        properties: Default::default(),
    });
    config
        .check()
        .map_err(|problems| anyhow::anyhow!("bench pipeline: {}", problems.join("; ")))
}

pub async fn run(bench: KafkaBench) -> Result<serde_json::Value> {
    let stamp = now_ms();
    let topic = format!("eddy-bench-{stamp}");
    let output = format!("{topic}-predictions");
    create_topics(
        &bench.brokers,
        &[(&topic, bench.partitions), (&output, bench.partitions)],
    )
    .await?;

    // Fill the input topic.
    let data = lines(bench.events)?;
    let started = Instant::now();
    let p = producer(&bench.brokers)?;
    for (i, line) in data.iter().enumerate() {
        send(&p, &topic, (i % bench.partitions as usize) as i32, line)?;
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120))?;
    let produce_rate = data.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "eddy bench kafka: produced {} messages to {topic} at {produce_rate:.0}/s",
        data.len()
    );

    // Throughput.
    let checkpoints = bench.dir.join(format!("kafka-checkpoints-{stamp}"));
    let valid = pipeline(&bench, &topic, "eddy-bench", &output, &checkpoints)?;
    let seen: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let options = RunOptions {
        progress_every: Duration::from_millis(100),
        on_progress: Some(Box::new(move |progress| {
            if let Ok(mut seen) = record.lock() {
                seen.push((Instant::now(), progress.counters.events));
            }
        })),
        ..RunOptions::default()
    };
    let summary = eddy_runtime::run(valid, options).await?;
    let seen = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let first = seen.iter().find(|(_, e)| *e > 0).copied();
    let last = seen.iter().find(|(_, e)| *e == summary.events).copied();
    let rate = match (first, last) {
        (Some((t0, e0)), Some((t1, e1))) if t1 > t0 => (e1 - e0) as f64 / (t1 - t0).as_secs_f64(),
        _ => summary.events_per_sec,
    };
    eprintln!(
        "eddy bench kafka: consumed, learned and produced {} events at {rate:.0} events/s",
        summary.events
    );
    let _ = std::fs::remove_dir_all(&checkpoints);

    let latency = latency(&bench, stamp).await?;
    Ok(serde_json::json!({
        "benchmark": "kafka_json_10f_scaler_logistic_predictions_to_topic",
        "brokers": bench.brokers,
        "partitions": bench.partitions,
        "events": summary.events,
        "batch_size": bench.batch_size,
        "order": if bench.arrival_order { "arrival" } else { "timestamp" },
        "produce_events_per_sec": produce_rate,
        "events_per_sec": rate,
        "metrics": summary.metrics,
        "latency": latency,
    }))
}

/// Steady-rate phase: p50/p99 from input timestamp to the prediction's broker timestamp.
async fn latency(bench: &KafkaBench, stamp: i64) -> Result<serde_json::Value> {
    let topic = format!("eddy-bench-{stamp}-steady");
    let output = format!("{topic}-predictions");
    create_topics(
        &bench.brokers,
        &[(&topic, bench.partitions), (&output, bench.partitions)],
    )
    .await?;
    let checkpoints = bench.dir.join(format!("kafka-latency-{stamp}"));
    let valid = pipeline(bench, &topic, "eddy-bench-latency", &output, &checkpoints)?;
    let stop = StopHandle::default();
    let events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = Arc::clone(&events);
    let options = RunOptions {
        stop: stop.clone(),
        progress_every: Duration::from_millis(50),
        on_progress: Some(Box::new(move |progress| {
            seen.store(
                progress.counters.events,
                std::sync::atomic::Ordering::SeqCst,
            );
        })),
        ..RunOptions::default()
    };
    let running = tokio::spawn(eddy_runtime::run(valid, options));
    // Warm up: one message per partition, and wait until the consumer has learned them, so
    // joining the group is not counted as latency.
    let total = (bench.latency_rate * bench.latency_seconds) as usize;
    let mut data = lines(total as u64 + bench.partitions as u64)?;
    let warm: Vec<Vec<u8>> = data.drain(..bench.partitions as usize).collect();
    {
        let p = producer(&bench.brokers)?;
        for (i, line) in warm.iter().enumerate() {
            send(&p, &topic, i as i32, line)?;
        }
        p.flush(Duration::from_secs(30))?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while events.load(std::sync::atomic::Ordering::SeqCst) < warm.len() as u64 {
        if Instant::now() > deadline || running.is_finished() {
            bail!("the latency pipeline did not consume its warm-up messages within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let steady_from = now_ms();
    let brokers = bench.brokers.clone();
    let partitions = bench.partitions;
    let rate = bench.latency_rate;
    let produce_topic = topic.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let p = producer(&brokers)?;
        let started = Instant::now();
        for (i, line) in data.iter().enumerate() {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            send(&p, &produce_topic, (i % partitions as usize) as i32, line)?;
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(60))?;
        Ok(())
    })
    .await??;
    let summary = running.await??;
    stop.stop();
    let _ = std::fs::remove_dir_all(&checkpoints);

    let latencies = read_latencies(&bench.brokers, &output, total + warm.len(), steady_from)?;
    if latencies.is_empty() {
        bail!("no predictions arrived on {output}");
    }
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "eddy bench kafka: at {} events/s, timestamp to prediction on the output topic: p50 {} ms, p99 {} ms ({} events)",
        bench.latency_rate,
        pick(0.5),
        pick(0.99),
        latencies.len()
    );
    Ok(serde_json::json!({
        "rate_events_per_sec": bench.latency_rate,
        "events": summary.events,
        "measured": latencies.len(),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": latencies.last(),
    }))
}

fn read_latencies(brokers: &str, topic: &str, expected: usize, from_ms: i64) -> Result<Vec<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "eddy-bench-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    assign_whole_topic(&consumer, topic, Offset::Beginning, Duration::from_secs(10))?;
    let mut out = Vec::with_capacity(expected);
    let mut series: Vec<(i64, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
            let at = m.timestamp().to_millis().context("prediction timestamp")?;
            let prediction: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default())?;
            let from = prediction["timestamp_ms"]
                .as_i64()
                .context("prediction without timestamp_ms")?;
            if from >= from_ms {
                out.push(at - from);
                series.push((from, at - from));
            }
        }
    }
    series.sort_unstable();
    for chunk in series.chunks(series.len().div_ceil(10).max(1)) {
        let mut l: Vec<i64> = chunk.iter().map(|(_, l)| *l).collect();
        l.sort_unstable();
        eprintln!(
            "eddy bench kafka: latency p50 {} ms over {} events from t={} ms",
            l[l.len() / 2],
            l.len(),
            chunk[0].0 - series[0].0
        );
    }
    out.sort_unstable();
    Ok(out)
}
