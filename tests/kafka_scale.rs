//! Scale-out against a real Kafka-protocol broker (tansu, one per test on a free loopback
//! port): two workers of one group split a topic's partitions and merge their models, and a
//! killed worker's partitions are taken over with nothing lost.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use common::kafka::{
    coordinates, latest_events, messages, pipeline, run_to_end, Broker, PARTITIONS,
};
use common::{eddy, latest_checkpoint, summary, Running};

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

/// Waits (up to 60 s) until the worker writing under `dir` has checkpointed at least `events`.
fn wait_for_checkpoint(dir: &Path, events: u64, worker: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest_events(dir) < events {
        assert!(
            Instant::now() < deadline,
            "worker {worker} never checkpointed {events} events"
        );
        std::thread::sleep(Duration::from_millis(20));
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
        "\n[sync]\nbrokers = \"{}\"\ntopic = \"sync\"\nevery_events = 500\nevery_ms = 100\n",
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
    run_to_end(&p, &single.join("summary.json"))?;

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
    wait_for_checkpoint(&root.path().join("a"), 1, "A");
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

/// 16 keys, key `k{j}` always on partition `j % 4`; `x` a seeded walk per key, `y` whether it
/// went up.
fn keyed_messages(n: usize) -> Vec<common::kafka::Outgoing> {
    let mut level = [0.0f64; 16];
    (0..n)
        .map(|i| {
            let j = i % 16;
            let step = (((i as u64).wrapping_mul(2_654_435_761) >> 11) % 1000) as f64 / 500.0 - 1.0;
            level[j] += step;
            let payload = format!(
                r#"{{"k": "k{j}", "x": {:.6}, "y": {}}}"#,
                level[j],
                u8::from(step > 0.0)
            );
            (
                (j % 4) as i32,
                Some(format!("k{j}")),
                payload.into_bytes(),
                common::kafka::BASE_MS + i as i64,
            )
        })
        .collect()
}

fn keyed_pipeline(
    dir: &Path,
    broker: &Broker,
    group: &str,
    shared: Option<&Path>,
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("p.toml");
    let shared = shared.map_or(String::new(), |s| {
        format!("shared_dir = \"{}\"", s.display())
    });
    std::fs::write(
        &file,
        format!(
            r#"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "events"
group = "{group}"
batch_size = 200
idle_timeout_seconds = 12

[source.properties]
"session.timeout.ms" = "6000"
"topic.metadata.refresh.interval.ms" = "1000"

[[features]]
type = "clip"
fields = ["x"]
min = -50.0
max = 50.0

[[features]]
type = "lag"
field = "x"
key = "k"
outputs = ["previous", "difference"]

[[features]]
type = "ema"
field = "x"
key = "k"
half_life = 5

[model]
type = "logistic"
target = "y"
key_field = "k"
per_key = true

[checkpoint]
dir = "{ckpt}"
interval_events = 500
{shared}

[serve]
enabled = false
"#,
            brokers = broker.address(),
            ckpt = dir.join("ckpt").display(),
        ),
    )?;
    Ok(file)
}

/// Per key: the lag's previous value, the average, and the key's model.
type KeyedView =
    std::collections::BTreeMap<String, (Option<u64>, Option<u64>, Option<eddy_ml::AnyModel>)>;

fn keyed_view(model: &eddy_models::TrainedModel) -> KeyedView {
    use eddy_features::ops::FeatureOp;
    let mut view = KeyedView::new();
    for op in model.features.operators() {
        match op {
            FeatureOp::Lag(l) => {
                for (k, v) in l.state().iter() {
                    view.entry(k.to_owned()).or_default().0 = Some(v.to_bits());
                }
            }
            FeatureOp::Ema(e) => {
                for (k, v) in e.state().iter() {
                    view.entry(k.to_owned()).or_default().1 = Some(v.to_bits());
                }
            }
            _ => {}
        }
    }
    if let eddy_models::Learners::PerKey(models) = &model.learner {
        for (k, m) in models.iter() {
            view.entry(k.to_owned()).or_default().2 = Some(m.clone());
        }
    }
    view
}

#[test]
fn keyed_state_moves_with_its_partition_through_a_rebalance_and_a_kill() -> Result<()> {
    const EVENTS: usize = 18_000;
    let broker = Broker::start()?;
    broker.create_topic("events", PARTITIONS)?;
    let root = tempfile::tempdir()?;
    let shared = root.path().join("shared");
    let spawn = |name: &str| -> Result<Running> {
        let dir = root.path().join(name);
        let p = keyed_pipeline(&dir, &broker, "moving", Some(&shared))?;
        Running::spawn(
            eddy()
                .env(
                    "EDDY_LOG",
                    "warn,eddy_runtime::source=info,eddy_runtime::handover=info",
                )
                .args(["run", "--quiet"])
                .arg(&p)
                .arg("--summary-json")
                .arg(dir.join("summary.json")),
        )
    };
    let data = keyed_messages(EVENTS);
    let third = EVENTS / 3;

    // A alone learns the first third.
    let mut a = spawn("a")?;
    wait_for_partitions(&mut a, 4)?;
    broker.produce("events", &data[..third])?;
    wait_for_checkpoint(&root.path().join("a"), third as u64 - 500, "A");
    // B joins: two partitions, with their keys' state, move from A to B.
    let mut b = spawn("b")?;
    wait_for_partitions(&mut b, 2)?;
    wait_for_partitions(&mut a, 2)?;
    broker.produce("events", &data[third..2 * third])?;
    wait_for_checkpoint(&root.path().join("b"), 1, "B");
    // A dies without a word; B takes its partitions from A's last checkpoint.
    a.signal(libc::SIGKILL);
    a.wait(Duration::from_secs(10))?;
    wait_for_partitions(&mut b, 4)?;
    broker.produce("events", &data[2 * third..])?;
    let status = b.wait(Duration::from_secs(120))?;
    assert!(status.success(), "{}", b.seen.join("\n"));
    let took_over = b
        .seen
        .iter()
        .filter(|l| l.contains("took over the keyed state of a partition"))
        .count();
    assert!(
        took_over >= 4,
        "B took over {took_over} partitions:\n{}",
        b.seen.join("\n")
    );

    // One worker over the whole topic, without any hand-over.
    let single = root.path().join("single");
    let p = keyed_pipeline(&single, &broker, "single-keyed", None)?;
    run_to_end(&p, &single.join("summary.json"))?;

    let reference = keyed_view(&latest_checkpoint(&single.join("ckpt"))?.model);
    let moved = keyed_view(&latest_checkpoint(&root.path().join("b/ckpt"))?.model);
    assert_eq!(reference.len(), 16);
    for (key, expected) in &reference {
        let got = moved.get(key);
        assert!(got.is_some(), "B lacks key {key}");
        assert!(
            got == Some(expected),
            "key {key}: B's state differs from one worker's (lag {:?} / {:?}, ema {:?} / {:?})",
            got.and_then(|g| g.0),
            expected.0,
            got.and_then(|g| g.1),
            expected.1
        );
    }
    assert_eq!(moved.len(), 16);
    Ok(())
}
