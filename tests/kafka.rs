//! eddy against a real Kafka-protocol broker (tansu, started per test on a free loopback port):
//! quick mode over a topic, predictions and dead letters written back to topics, SIGKILL and
//! resume with bit-identical results, a broker that appears only after eddy has started or goes
//! away mid-run, CSV messages with lag in /metrics, and model versions published to a topic.
//! Scale-out across workers is in `kafka_scale.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::kafka::{
    coordinates, free_port, latest_events, messages, pipeline, run_to_end, Broker, Outgoing,
    BASE_MS, PARTITIONS,
};
use common::{eddy, latest_checkpoint, run_ok, summary, Running};

#[test]
fn quick_mode_learns_a_topic_and_writes_predictions_and_dead_letters_to_topics() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    for t in ["preds", "dead"] {
        broker.create_topic(t, 1)?;
    }
    let mut data = messages(5_000, 3)?;
    // Poison: not JSON, the wrong type, too large (over the 1 MiB default).
    data.push((1, None, b"{not json".to_vec(), BASE_MS + 9_000));
    data.push((
        2,
        None,
        br#"{"x0": "high", "y": 1}"#.to_vec(),
        BASE_MS + 9_001,
    ));
    data.push((3, None, vec![b' '; 1_100_000], BASE_MS + 9_002));
    broker.produce("events", &data)?;

    let dir = tempfile::tempdir()?;
    let stderr = run_ok(
        eddy()
            .args(["run", "--quiet", "--target", "y", "--group", "quick"])
            .args(["--input", &broker.url("events")])
            .args(["--idle-timeout", "3"])
            .args(["--predictions", &broker.url("preds")])
            .args(["--dead-letters", &broker.url("dead")])
            .arg("--checkpoint-dir")
            .arg(dir.path().join("ckpt"))
            .arg("--summary-json")
            .arg(dir.path().join("summary.json")),
    )?;
    let s = summary(&dir.path().join("summary.json"))?;
    assert_eq!(s["events"], 5_003, "{stderr}");
    assert_eq!(s["learned"], 5_000);
    assert_eq!(s["dead_lettered"], 3);
    assert!(s["metrics"]["logloss"].as_f64().context("log loss")? < 0.6);

    let predictions = broker.read_all("preds", 5_000, Duration::from_secs(30))?;
    assert_eq!(predictions.len(), 5_000);
    let mut coordinates = BTreeSet::new();
    for (_, _, key, payload) in &predictions {
        let p: serde_json::Value = serde_json::from_slice(payload)?;
        let at = (
            p["partition"].as_i64().context("partition")?,
            p["offset"].as_i64().context("offset")?,
        );
        assert!(coordinates.insert(at), "{at:?} predicted twice");
        assert_eq!(p["topic"], "events");
        assert!(p["latency_ms"].as_i64().is_some());
        assert!(p["timestamp_ms"].as_i64().context("timestamp")? >= BASE_MS);
        assert!(key.is_none(), "quick mode without --key sends no key");
    }

    let dead = broker.read_all("dead", 3, Duration::from_secs(30))?;
    let mut kinds: Vec<(String, i64)> = dead
        .iter()
        .map(|(_, _, _, payload)| {
            let d: serde_json::Value = serde_json::from_slice(payload).expect("dead letter JSON");
            assert_eq!(d["topic"], "events");
            assert!(d["offset"].as_i64().is_some() && d["reason"].as_str().is_some());
            (
                d["kind"].as_str().unwrap_or_default().to_owned(),
                d["partition"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("malformed_json".to_owned(), 1),
            ("too_large".to_owned(), 3),
            ("wrong_type".to_owned(), 2)
        ]
    );
    Ok(())
}

/// Runs a pipeline (written by `pipeline(dir, group)`) to the end unbroken, and again killed
/// with SIGKILL once `kills[0]` and then `kills[1]` events are checkpointed and resumed; checks
/// both runs end with the same counts, metrics, model and position, every event learned once.
/// Creates the runs' sink topics first. Returns the killed run's final checkpoint.
fn killed_twice_equals_unbroken(
    broker: &Broker,
    root: &std::path::Path,
    events: u64,
    kills: [u64; 2],
    pipeline: impl Fn(&std::path::Path, &str) -> Result<std::path::PathBuf>,
) -> Result<eddy_runtime::checkpoint::Checkpoint> {
    for group in ["unbroken", "broken"] {
        broker.create_topic(&format!("predictions-{group}"), 1)?;
        broker.create_topic(&format!("dead-{group}"), 1)?;
    }
    let unbroken = root.join("unbroken");
    std::fs::create_dir_all(&unbroken)?;
    let p = pipeline(&unbroken, "unbroken")?;
    run_to_end(&p, &unbroken.join("summary.json"))?;

    let broken = root.join("broken");
    std::fs::create_dir_all(&broken)?;
    let p = pipeline(&broken, "broken")?;
    let mut killed = 0;
    for wanted in kills {
        let mut running = Running::spawn(eddy().args(["run", "--quiet"]).arg(&p))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while latest_events(&broken) < wanted {
            if running.child.try_wait()?.is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if running.child.try_wait()?.is_none() {
            running.signal(libc::SIGKILL);
            running.wait(Duration::from_secs(10))?;
            killed += 1;
        }
    }
    let stderr = run_to_end(&p, &broken.join("summary.json"))?;
    assert_eq!(killed, 2, "finished before two kills: {stderr}");

    let a = summary(&unbroken.join("summary.json"))?;
    let b = summary(&broken.join("summary.json"))?;
    let resumed_from = b["resumed_from"].as_u64().context("the last run resumed")?;
    assert!((kills[1]..events).contains(&resumed_from), "{resumed_from}");
    for key in [
        "events",
        "learned",
        "dead_lettered",
        "metrics",
        "window_metrics",
        "model_version",
    ] {
        assert_eq!(a[key], b[key], "{key} differs");
    }
    assert_eq!(b["learned"], events, "every event learned exactly once");
    let ca = latest_checkpoint(&unbroken.join("ckpt"))?;
    let cb = latest_checkpoint(&broken.join("ckpt"))?;
    assert_eq!(ca.model, cb.model, "model state differs after recovery");
    assert_eq!(ca.position, cb.position);
    Ok(cb)
}

#[test]
fn sigkill_and_resume_over_a_topic_is_bit_identical_to_an_unbroken_run() -> Result<()> {
    const EVENTS: u64 = 60_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    broker.produce("events", &messages(EVENTS, 17)?)?;
    let root = tempfile::tempdir()?;
    killed_twice_equals_unbroken(
        &broker,
        root.path(),
        EVENTS,
        [6_000, 30_000],
        |dir, group| pipeline(dir, &broker, group, ""),
    )?;

    // Predictions are at least once: deduplicated on (partition, offset), each event once.
    let predictions = broker.read_all(
        "predictions-broken",
        EVENTS as usize * 2,
        Duration::from_secs(20),
    )?;
    let unique = coordinates(&predictions);
    assert_eq!(unique.len() as u64, EVENTS);
    Ok(())
}

#[test]
fn two_topics_are_one_stream_and_resume_bit_identically() -> Result<()> {
    const EACH: u64 = 20_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    broker.create_topic("more", 2)?;
    broker.produce("events", &messages(EACH, 41)?)?;
    let mut more = messages(EACH, 43)?;
    for m in &mut more {
        m.0 %= 2;
    }
    broker.produce("more", &more)?;
    let root = tempfile::tempdir()?;
    let end = killed_twice_equals_unbroken(
        &broker,
        root.path(),
        2 * EACH,
        [5_000, 22_000],
        |dir, group| {
            let p = pipeline(dir, &broker, group, "")?;
            let text = std::fs::read_to_string(&p)?
                .replace("topic = \"events\"", "topics = [\"events\", \"more\"]");
            std::fs::write(&p, text)?;
            Ok(p)
        },
    )?;
    // The position holds every partition of both topics at its end.
    let offsets = end.position.location.kafka_offsets();
    let mut ends = std::collections::BTreeMap::new();
    for (topic, partition, offset) in offsets {
        ends.insert((topic.to_owned(), partition), offset);
    }
    assert_eq!(ends.len(), PARTITIONS as usize + 2, "{ends:?}");
    let total: i64 = ends.values().sum();
    assert_eq!(total as u64, 2 * EACH);
    Ok(())
}

#[test]
fn a_broker_that_comes_up_late_is_waited_for() -> Result<()> {
    let port = free_port()?;
    let dir = tempfile::tempdir()?;
    // The pipeline points at a port where nothing listens yet.
    let placeholder = Broker::not_started(port);
    let p = pipeline(dir.path(), &placeholder, "late", "")?;
    let mut running = Running::spawn(
        eddy()
            .env("EDDY_LOG", "warn")
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(dir.path().join("summary.json")),
    )?;
    let line = running.wait_for_line("retrying", Duration::from_secs(30))?;
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    let broker = Broker::start_on(port)?;
    for t in ["predictions-late", "dead-late"] {
        broker.create_topic(t, 1)?;
    }
    broker.create_topic("events", PARTITIONS)?;
    broker.produce("events", &messages(3_000, 5)?)?;
    let status = running.wait(Duration::from_secs(90))?;
    assert!(status.success(), "{}", running.seen.join("\n"));
    let s = summary(&dir.path().join("summary.json"))?;
    assert_eq!(s["learned"], 3_000);
    Ok(())
}

#[test]
fn a_broker_that_goes_away_for_a_while_is_waited_for() -> Result<()> {
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    for t in ["predictions-outage", "dead-outage"] {
        broker.create_topic(t, 1)?;
    }
    broker.create_topic("events", PARTITIONS)?;
    let all = messages(6_000, 9)?;
    broker.produce("events", &all[..3_000])?;
    // Requests to a frozen broker time out after 3 s instead of librdkafka's 60.
    let p = pipeline(dir.path(), &broker, "outage", "")?;
    let text = std::fs::read_to_string(&p)?
        .replace("idle_timeout_seconds = 4", "idle_timeout_seconds = 20")
        .replace(
            "[source.properties]\n",
            "[source.properties]\n\"socket.timeout.ms\" = \"3000\"\n",
        );
    std::fs::write(&p, text)?;
    let mut running = Running::spawn(
        eddy()
            .env("EDDY_LOG", "warn")
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(dir.path().join("summary.json")),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest_events(dir.path()) < 2_000 {
        if Instant::now() > deadline {
            bail!(
                "nothing checkpointed within 60s: {}",
                running.seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    broker.pause();
    // The client says which broker it lost.
    let port = broker.port.to_string();
    let line = running.wait_for_line(&port, Duration::from_secs(30))?;
    eprintln!("outage: {line}");
    std::thread::sleep(Duration::from_secs(3));
    broker.resume();
    broker.produce("events", &all[3_000..])?;

    let status = running.wait(Duration::from_secs(120))?;
    assert!(status.success(), "{}", running.seen.join("\n"));
    let s = summary(&dir.path().join("summary.json"))?;
    assert_eq!(s["learned"], 6_000, "{s}");
    let predictions = broker.read_all("predictions-outage", 6_000, Duration::from_secs(30))?;
    assert_eq!(
        coordinates(&predictions).len(),
        6_000,
        "every event predicted"
    );
    Ok(())
}

#[test]
fn csv_messages_with_the_key_from_kafka_and_consumer_lag_in_metrics() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic("quotes", 2)?;
    let mut data: Vec<Outgoing> = (0..3_000i64)
        .map(|i| {
            let x0 = (i % 17) as f64 / 17.0 - 0.5;
            let x1 = (i % 5) as f64 - 2.0;
            let y = u8::from(x0 + 0.3 * x1 > 0.0);
            (
                (i % 2) as i32,
                Some(format!("s{}", i % 3)),
                format!("{x0},{x1},{y}").into_bytes(),
                BASE_MS + i,
            )
        })
        .collect();
    data.push((
        1,
        Some("s9".into()),
        b"0.5,high,1".to_vec(),
        BASE_MS + 5_000,
    ));
    broker.produce("quotes", &data)?;
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "quotes"
group = "csv"
format = "csv"
csv_columns = ["x0", "x1", "y"]
key_field = "symbol"
idle_timeout_seconds = 6

[[features]]
type = "standard_scaler"
fields = ["x0", "x1"]

[model]
type = "logistic"
target = "y"
key_field = "symbol"

[serve]
address = "127.0.0.1:0"

[sinks.predictions]
type = "file"
path = "{predictions}"

[sinks.dead_letters]
type = "file"
path = "{dead}"
"#,
            brokers = broker.address(),
            predictions = dir.path().join("p.jsonl").display(),
            dead = dir.path().join("d.jsonl").display(),
        ),
    )?;
    let mut running = Running::spawn(
        eddy()
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(dir.path().join("s.json")),
    )?;
    let base = running.wait_for_server()?;
    // Once everything is read, /metrics shows a lag of 0 on both partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = ureq::get(&format!("{base}/metrics"))
            .call()?
            .body_mut()
            .read_to_string()?;
        let zero = |p: i32| {
            text.lines().any(|l| {
                l.starts_with("eddy_kafka_consumer_lag")
                    && l.contains(&format!("partition=\"{p}\""))
                    && l.contains("topic=\"quotes\"")
                    && l.ends_with(" 0")
            })
        };
        if zero(0) && zero(1) && text.contains("eddy_events_read_total 3001") {
            break text;
        }
        assert!(Instant::now() < deadline, "no zero lag in time:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("# TYPE eddy_kafka_consumer_lag gauge"),
        "{metrics}"
    );
    let status = running.wait(Duration::from_secs(60))?;
    assert!(status.success(), "{}", running.seen.join("\n"));

    let s = summary(&dir.path().join("s.json"))?;
    assert_eq!(s["learned"], 3_000);
    assert_eq!(s["dead_lettered"], 1);
    let predictions = std::fs::read_to_string(dir.path().join("p.jsonl"))?;
    let keys: BTreeSet<String> = predictions
        .lines()
        .map(|l| {
            let p: serde_json::Value = serde_json::from_str(l).expect("JSON");
            p["key"].as_str().unwrap_or("none").to_owned()
        })
        .collect();
    assert_eq!(keys, ["s0", "s1", "s2"].map(String::from).into());
    let dead: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("d.jsonl"))?
            .lines()
            .next()
            .context("a dead letter")?,
    )?;
    assert_eq!(dead["kind"], "wrong_type");
    assert_eq!(dead["field"], "x1");
    assert_eq!(
        (dead["topic"].as_str(), dead["partition"].as_i64()),
        (Some("quotes"), Some(1))
    );
    Ok(())
}

#[test]
fn exported_versions_are_published_to_a_topic_as_artifacts() -> Result<()> {
    let broker = Broker::start()?;
    broker.create_topic("models", 1)?;
    let dir = tempfile::tempdir()?;
    let registry = dir.path().join("registry");
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        format!(
            r#"
[source]
type = "generator"
kind = "logistic"
features = 4
events = 5000
batch_size = 500

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2", "x3"]

[model]
type = "logistic"
name = "clicks"
target = "y"

[serve]
enabled = false

[export]
registry = "{registry}"
interval_events = 2000
promote = true

[export.topic]
brokers = "{brokers}"
topic = "models"
"#,
            registry = registry.display(),
            brokers = broker.address(),
        ),
    )?;
    run_ok(eddy().args(["run", "--quiet"]).arg(&p))?;
    // Versions at 2,000 and 4,000 events and the final one, each a whole artifact keyed by name.
    let published = broker.read_all("models", 3, Duration::from_secs(30))?;
    assert_eq!(published.len(), 3);
    let reg = eddy_models::Registry::open(&registry)?;
    for (i, (_, _, key, payload)) in published.iter().enumerate() {
        assert_eq!(key.as_deref(), Some("clicks"));
        let artifact = eddy_models::Artifact::from_bytes(payload)?;
        assert_eq!(artifact.meta.version, i as u64 + 1);
        let stored = reg.load("clicks", artifact.meta.version)?;
        assert_eq!(payload, &stored.to_bytes()?, "version {}", i + 1);
    }
    Ok(())
}
