//! eddy against a real Kafka-protocol broker (tansu, started per test on a free loopback port):
//! quick mode over a topic, predictions and dead letters written back to topics, SIGKILL and
//! resume with bit-identical results, and a broker that appears only after eddy has started.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::kafka::{free_port, Broker, Outgoing, Read};
use common::{eddy, latest_checkpoint, run_ok, summary, Running};
use eddy_runtime::source::{GeneratorConfig, GeneratorKind};

const PARTITIONS: i32 = 4;
const BASE_MS: i64 = 1_780_000_000_000;

/// `n` JSON messages of a seeded logistic stream, spread over the partitions with increasing
/// timestamps (several messages share a timestamp, so ties are broken by partition, offset).
fn messages(n: u64, seed: u64) -> Result<Vec<Outgoing>> {
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

fn pipeline(
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

#[test]
fn sigkill_and_resume_over_a_topic_is_bit_identical_to_an_unbroken_run() -> Result<()> {
    const EVENTS: u64 = 60_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    for t in [
        "predictions-unbroken",
        "dead-unbroken",
        "predictions-broken",
        "dead-broken",
    ] {
        broker.create_topic(t, 1)?;
    }
    broker.produce("events", &messages(EVENTS, 17)?)?;
    let root = tempfile::tempdir()?;

    let unbroken = root.path().join("unbroken");
    std::fs::create_dir_all(&unbroken)?;
    let p = pipeline(&unbroken, &broker, "unbroken", "")?;
    run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(unbroken.join("summary.json")),
    )?;

    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken)?;
    let p = pipeline(&broken, &broker, "broken", "")?;
    let mut kills = 0;
    for wanted in [6_000u64, 30_000] {
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
            kills += 1;
        }
    }
    let stderr = run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(broken.join("summary.json")),
    )?;
    assert_eq!(kills, 2, "finished before two kills: {stderr}");

    let a = summary(&unbroken.join("summary.json"))?;
    let b = summary(&broken.join("summary.json"))?;
    let resumed_from = b["resumed_from"].as_u64().context("the last run resumed")?;
    assert!((30_000..EVENTS).contains(&resumed_from), "{resumed_from}");
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
    assert_eq!(b["learned"], EVENTS, "every event learned exactly once");
    let ca = latest_checkpoint(&unbroken.join("ckpt"))?;
    let cb = latest_checkpoint(&broken.join("ckpt"))?;
    assert_eq!(ca.model, cb.model, "model state differs after recovery");
    assert_eq!(ca.position, cb.position);

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

/// The distinct (partition, offset) source coordinates of prediction messages.
fn coordinates(predictions: &[Read]) -> BTreeSet<(i64, i64)> {
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

fn latest_events(dir: &Path) -> u64 {
    latest_checkpoint(&dir.join("ckpt")).map_or(0, |c| c.counters.events)
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

/// Waits until a worker logs an assignment of exactly `n` partitions.
fn wait_for_partitions(worker: &mut Running, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = worker.wait_for_line(
            "partitions assigned",
            deadline.saturating_duration_since(Instant::now()),
        )?;
        let inside = line
            .rsplit_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map_or("", |(set, _)| set);
        if inside.split(',').filter(|p| !p.trim().is_empty()).count() == n {
            return Ok(());
        }
    }
}

fn worker(dir: &Path, broker: &Broker, group: &str, extra: &str) -> Result<Running> {
    std::fs::create_dir_all(dir)?;
    let p = pipeline(dir, broker, group, "")?;
    let mut text = std::fs::read_to_string(&p)?;
    text.push_str(extra);
    text = text.replace("idle_timeout_seconds = 4", "idle_timeout_seconds = 12");
    std::fs::write(&p, text)?;
    Running::spawn(
        eddy()
            .env("EDDY_LOG", "warn,eddy_runtime::source=info")
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(dir.join("summary.json")),
    )
}

#[test]
fn two_workers_split_the_partitions_and_average_into_one_model() -> Result<()> {
    const EVENTS: u64 = 60_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    for t in [
        "predictions-single",
        "dead-single",
        "predictions-pair",
        "dead-pair",
        "sync",
    ] {
        broker.create_topic(t, 1)?;
    }
    let root = tempfile::tempdir()?;
    let sync = format!(
        "\n[sync]\nbrokers = \"{}\"\ntopic = \"sync\"\nevery_events = 500\n",
        broker.address()
    );
    // Both workers join before any data exists, so the data is split between them.
    let mut a = worker(&root.path().join("a"), &broker, "pair", &sync)?;
    wait_for_partitions(&mut a, 4)?;
    let mut b = worker(&root.path().join("b"), &broker, "pair", &sync)?;
    wait_for_partitions(&mut b, 2)?;
    wait_for_partitions(&mut a, 2)?;
    // A live stream (10,000 events/s), so the workers learn at the rate data arrives and their
    // parameter exchange keeps up, as it would in production.
    let data = messages(EVENTS, 23)?;
    for part in data.chunks(1_000) {
        broker.produce("events", part)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in [&mut a, &mut b] {
        let status = w.wait(Duration::from_secs(120))?;
        assert!(status.success(), "{}", w.seen.join("\n"));
    }

    let single = root.path().join("single");
    std::fs::create_dir_all(&single)?;
    let p = pipeline(&single, &broker, "single", "")?;
    run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&p)
            .arg("--summary-json")
            .arg(single.join("summary.json")),
    )?;

    let sa = summary(&root.path().join("a/summary.json"))?;
    let sb = summary(&root.path().join("b/summary.json"))?;
    let s1 = summary(&single.join("summary.json"))?;
    let (na, nb) = (
        sa["learned"].as_u64().context("a")?,
        sb["learned"].as_u64().context("b")?,
    );
    assert_eq!(na + nb, EVENTS, "each event learned by one worker");
    assert!(na > EVENTS / 4 && nb > EVENTS / 4, "split {na} / {nb}");
    for s in [&sa, &sb] {
        assert!(s["sync_merges"].as_u64().context("merges")? > 0, "{s}");
    }
    let loss = |s: &serde_json::Value| s["metrics"]["logloss"].as_f64().context("logloss");
    let pair = (loss(&sa)? * na as f64 + loss(&sb)? * nb as f64) / EVENTS as f64;
    let one = loss(&s1)?;
    eprintln!("progressive log loss: two workers {pair:.5}, one worker {one:.5}");
    assert!(
        (pair - one).abs() / one < 0.01,
        "two workers {pair:.5} against one {one:.5}"
    );
    // One model: the two workers' final weights agree closely.
    let wa = common::linear(&latest_checkpoint(&root.path().join("a/ckpt"))?.model).weights();
    let wb = common::linear(&latest_checkpoint(&root.path().join("b/ckpt"))?.model).weights();
    let gap = (&wa - &wb).mapv(f64::abs).sum() / wa.mapv(f64::abs).sum();
    eprintln!("final weights of the two workers: relative L1 gap {gap:.4}");
    assert!(
        gap < 0.05,
        "the workers' weights differ by {gap:.3} (relative L1)"
    );
    Ok(())
}

#[test]
fn a_killed_worker_s_partitions_are_taken_over_with_nothing_lost() -> Result<()> {
    const HALF: u64 = 20_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    for t in ["predictions-takeover", "dead-takeover"] {
        broker.create_topic(t, 1)?;
    }
    let root = tempfile::tempdir()?;
    let mut a = worker(&root.path().join("a"), &broker, "takeover", "")?;
    wait_for_partitions(&mut a, 4)?;
    let mut b = worker(&root.path().join("b"), &broker, "takeover", "")?;
    wait_for_partitions(&mut b, 2)?;
    wait_for_partitions(&mut a, 2)?;
    let data = messages(2 * HALF, 29)?;
    broker.produce("events", &data[..HALF as usize])?;
    // Kill A once it has checkpointed some of its share.
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest_events(&root.path().join("a")) == 0 {
        assert!(Instant::now() < deadline, "worker A never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.signal(libc::SIGKILL);
    a.wait(Duration::from_secs(10))?;
    broker.produce("events", &data[HALF as usize..])?;
    // B takes A's partitions once the group notices (session timeout), from A's commits.
    wait_for_partitions(&mut b, 4)?;
    let status = b.wait(Duration::from_secs(120))?;
    assert!(status.success(), "{}", b.seen.join("\n"));

    // Every partition's committed offset is its end: nothing left unread.
    let mut ends = [0i64; PARTITIONS as usize];
    for (p, ..) in &data {
        ends[*p as usize] += 1;
    }
    assert_eq!(
        broker.committed("takeover", "events", PARTITIONS)?,
        ends.to_vec()
    );
    // Every event has a prediction (at least once; deduplicated on its coordinates).
    let predictions = broker.read_all(
        "predictions-takeover",
        3 * HALF as usize,
        Duration::from_secs(20),
    )?;
    let unique = coordinates(&predictions);
    assert_eq!(unique.len() as u64, 2 * HALF);
    // B's model holds its own share and everything after A's last checkpoint.
    let a_done = latest_checkpoint(&root.path().join("a/ckpt"))?
        .counters
        .learned;
    let b_done = summary(&root.path().join("b/summary.json"))?["learned"]
        .as_u64()
        .context("b learned")?;
    assert!(a_done + b_done >= 2 * HALF, "A {a_done} + B {b_done}");
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
