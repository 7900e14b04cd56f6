//! The live model over real HTTP on an ephemeral loopback port, while it trains.

mod common;

use std::time::Duration;

use common::{eddy, latest_checkpoint, Running};
use serde_json::{json, Value};

fn pipeline(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let file = dir.join("serve.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[source]
type = "generator"
kind = "logistic"
features = 4
categories = 3
rate_per_sec = 20000.0

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2", "x3"]

[[features]]
type = "hash"
fields = ["cat"]
bits = 6

[model]
type = "logistic"
target = "y"
name = "clicks"

[checkpoint]
dir = "{}"
interval_seconds = 60.0

[serve]
address = "127.0.0.1:0"
max_body_bytes = 4096
max_instances = 5
publish_interval_ms = 50
"#,
            dir.join("ckpt").display()
        ),
    )?;
    Ok(file)
}

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(base: String) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Client { base, agent }
    }

    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut r = self.agent.get(&format!("{}{path}", self.base)).call()?;
        Ok((r.status().as_u16(), r.body_mut().read_to_string()?))
    }

    fn post(&self, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn instance(x0: f64) -> Value {
    json!({"x0": x0, "x1": 0.5, "x2": -1.0, "x3": 2.0, "cat": "c1"})
}

#[test]
fn serves_validates_and_hot_swaps_the_live_model() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = pipeline(dir.path())?;
    let mut running = Running::spawn(eddy().args(["run", "--progress-ms", "200"]).arg(&file))?;
    let client = Client::new(running.wait_for_server()?);

    let (status, body) = client.get("/healthz")?;
    assert_eq!(status, 200, "{body}");

    let (status, body) = client.get("/v1/models")?;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body)?;
    assert_eq!(list["models"][0]["name"], "clicks");

    let predict = "/v1/models/clicks/predict";
    let request = json!({"instances": [instance(1.0), instance(-1.0)]}).to_string();
    let (status, first) = client.post(predict, &request)?;
    assert_eq!(status, 200, "{first}");
    let predictions = first["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), 2);
    for p in predictions {
        let p = p.as_f64().expect("a number");
        assert!((0.0..=1.0).contains(&p), "{p}");
    }
    let v1 = first["model_version"].as_u64().expect("version");

    // Training goes on: a later answer comes from a newer model.
    let mut v2 = v1;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        let (_, again) = client.post(predict, &request)?;
        v2 = again["model_version"].as_u64().expect("version");
        if v2 > v1 {
            break;
        }
    }
    assert!(v2 > v1, "the served version never moved past {v1}");

    let (status, meta) = client.get("/v1/models/clicks")?;
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_str(&meta)?;
    assert!(meta["events_learned"].as_u64().expect("events") > 0);
    assert!(meta["metrics"]["logloss"].is_number(), "{meta}");

    // Refusals: each a JSON error naming what was wrong.
    let missing = json!({"instances": [{"x0": 1.0, "x1": 0.5, "x2": -1.0}]}).to_string();
    let (status, err) = client.post(predict, &missing)?;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["field"], "instances[0].x3", "{err}");

    let wrong =
        json!({"instances": [instance(1.0), {"x0": "high", "x1": 0.5, "x2": -1.0, "x3": 2.0}]})
            .to_string();
    let (status, err) = client.post(predict, &wrong)?;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "instances[1].x0", "{err}");

    let (status, err) = client.post(predict, "{\"instances\": [")?;
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap_or("").contains("malformed"),
        "{err}"
    );

    let (status, err) = client.post(predict, "{\"rows\": []}")?;
    assert_eq!(status, 400);
    assert_eq!(err["field"], "instances", "{err}");

    let many = json!({"instances": vec![instance(0.0); 6]}).to_string();
    let (status, err) = client.post(predict, &many)?;
    assert_eq!(status, 400, "{err}");

    let huge = format!(
        "{{\"instances\": [{{\"pad\": \"{}\"}}]}}",
        "x".repeat(10_000)
    );
    let (status, _) = client.post(predict, &huge)?;
    assert_eq!(status, 413);

    let (status, err) = client.post("/v1/models/nope/predict", &request)?;
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap_or("").contains("nope"),
        "{err}"
    );

    let (status, text) = client.get("/metrics")?;
    assert_eq!(status, 200);
    for needle in [
        "eddy_events_read_total",
        "eddy_events_learned_total",
        "eddy_model_metric",
        "eddy_http_requests_total",
        "eddy_http_request_duration_seconds_bucket",
        "status=\"413\"",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }

    // SIGTERM: a clean stop with a final checkpoint.
    running.signal(libc::SIGTERM);
    let status = running.wait(Duration::from_secs(30))?;
    assert!(
        status.success(),
        "exit {status}: {}",
        running.seen.join("\n")
    );
    let checkpoint = latest_checkpoint(&dir.path().join("ckpt"))?;
    assert!(checkpoint.counters.learned >= v2);
    Ok(())
}

#[test]
fn the_demo_prints_a_curl_line_that_works() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut running = Running::spawn(
        eddy()
            .args([
                "demo",
                "--address",
                "127.0.0.1:0",
                "--rate",
                "5000",
                "--dir",
            ])
            .arg(dir.path()),
    )?;
    let base = running.wait_for_server()?;
    let curl = running.wait_for_line("curl -s", Duration::from_secs(30))?;
    assert!(curl.contains(&base), "{curl}");
    // Send exactly the body the printed line sends.
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|s| s.strip_suffix('\''))
        .expect("a -d body");
    let client = Client::new(base);
    let (status, answer) = client.post("/v1/models/default/predict", body)?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(1));
    running.signal(libc::SIGINT);
    assert!(running.wait(Duration::from_secs(30))?.success());
    assert!(common::checkpoint_count(&dir.path().join("checkpoints")) > 0);
    Ok(())
}
