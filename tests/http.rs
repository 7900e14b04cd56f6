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

    // explain: each feature's share of the margin, adding up to the prediction.
    let explain = json!({"instances": [instance(1.0)], "explain": true}).to_string();
    let (status, explained) = client.post(predict, &explain)?;
    assert_eq!(status, 200, "{explained}");
    let e = &explained["explanations"][0];
    let margin = e["margin"].as_f64().expect("margin");
    let p = explained["predictions"][0].as_f64().expect("prediction");
    assert!(
        (1.0 / (1.0 + (-margin).exp()) - p).abs() < 1e-9,
        "{explained}"
    );
    assert!(e["contributions"]["x0"].is_number(), "{explained}");

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

fn limited_pipeline(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let file = dir.join("limited.toml");
    std::fs::write(
        &file,
        r#"
[source]
type = "generator"
kind = "logistic"
features = 4
rate_per_sec = 2000.0

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2", "x3"]

[model]
type = "logistic"
target = "y"

[serve]
address = "127.0.0.1:0"
max_in_flight = 1
request_timeout_ms = 400
admin_token = "adm1n"
predict_token = "pr3d"
"#,
    )?;
    Ok(file)
}

fn post_with(client: &Client, path: &str, body: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    let mut r = client
        .agent
        .post(&format!("{}{path}", client.base))
        .header("content-type", "application/json")
        .header("authorization", &format!("Bearer {token}"))
        .send(body)?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[test]
fn learn_endpoint_tokens_in_flight_bound_and_timeout() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir()?;
    let file = limited_pipeline(dir.path())?;
    let mut running = Running::spawn(eddy().args(["run", "--quiet"]).arg(&file))?;
    let client = Client::new(running.wait_for_server()?);
    let x = json!({"x0": 0.1, "x1": 0.2, "x2": 0.3, "x3": 0.4});

    // Tokens: predict needs the predict token, learn the admin token.
    let predict = json!({"instances": [x]}).to_string();
    assert_eq!(client.post("/v1/models/default/predict", &predict)?.0, 401);
    let (status, body) = post_with(&client, "/v1/models/default/predict", &predict, "pr3d")?;
    assert_eq!(status, 200, "{body}");
    // The newest stream prediction is a prediction too: the same token guards it.
    assert_eq!(client.get("/v1/models/default/latest")?.0, 401);
    // (404 "no prediction yet" until the paced stream's first chunk is learned.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let latest = loop {
        let mut r = client
            .agent
            .get(&format!("{}/v1/models/default/latest", client.base))
            .header("authorization", "Bearer pr3d")
            .call()?;
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        match r.status().as_u16() {
            200 => break body,
            404 if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            status => panic!("{status}: {body}"),
        }
    };
    assert!(
        latest["position"].is_u64() && latest["prediction"].is_f64(),
        "{latest}"
    );
    assert!(latest["record"].get("y").is_none(), "{latest}");
    let mut labelled = x.clone();
    labelled["y"] = json!(1);
    let learn = json!({"instances": [labelled.clone(), labelled]}).to_string();
    assert_eq!(
        post_with(&client, "/v1/models/default/learn", &learn, "pr3d")?.0,
        401
    );
    let (status, body) = post_with(&client, "/v1/models/default/learn", &learn, "adm1n")?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["learned"], 2);
    assert_eq!(body["predictions"].as_array().map(Vec::len), Some(2));
    let unlabelled = json!({"instances": [x]}).to_string();
    let (status, body) = post_with(&client, "/v1/models/default/learn", &unlabelled, "adm1n")?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "instances[0].y");

    // One slow request (its body never completes) holds the only in-flight slot...
    let addr = client.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr)?;
    write!(
        slow,
        "POST /v1/models/default/predict HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer pr3d\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"instances\""
    )?;
    slow.flush()?;
    std::thread::sleep(Duration::from_millis(100));
    // ...so another gets 503 with Retry-After,
    let mut r = client
        .agent
        .get(&format!("{}/healthz", client.base))
        .call()?;
    assert_eq!(
        r.status().as_u16(),
        503,
        "{}",
        r.body_mut().read_to_string()?
    );
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // ...and the slow one is cut off at the timeout with 503.
    slow.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut answer = vec![0u8; 512];
    let n = slow.read(&mut answer)?;
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.contains("400 ms"), "{head}");
    // After it, requests flow again.
    assert_eq!(client.get("/healthz")?.0, 200);

    running.signal(libc::SIGTERM);
    assert!(running.wait(Duration::from_secs(30))?.success());
    Ok(())
}

/// `eddy_training_paused_seconds_total` from the Prometheus text.
fn seconds_paused(client: &Client) -> anyhow::Result<f64> {
    let (status, text) = client.get("/metrics")?;
    anyhow::ensure!(status == 200, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("eddy_training_paused_seconds_total "))
        .ok_or_else(|| anyhow::anyhow!("no pause counter in {text}"))?;
    Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
}

/// Runs the serving pipeline with `serve` added to its `[serve]` table and checks that training
/// yields to predictions: listing models does not make it wait or rest, 1.5 s of back-to-back
/// predictions make it wait or rest more than 0.2 s (`eddy_training_paused_seconds_total`).
fn training_yields_to_predictions(serve: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = pipeline(dir.path())?;
    let text = std::fs::read_to_string(&file)?.replace("[serve]\n", &format!("[serve]\n{serve}"));
    std::fs::write(&file, text)?;
    let mut running = Running::spawn(eddy().args(["run", "--progress-ms", "100"]).arg(&file))?;
    let client = Client::new(running.wait_for_server()?);

    // Reading metrics and listing models is not prediction demand: training does not yield.
    for _ in 0..20 {
        assert_eq!(client.get("/v1/models")?.0, 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seconds_paused(&client)?, 0.0);

    let request = json!({"instances": [instance(0.5)]}).to_string();
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let (status, body) = client.post("/v1/models/clicks/predict", &request)?;
        assert_eq!(status, 200, "{body}");
    }
    let paused = seconds_paused(&client)?;
    assert!(paused > 0.2, "training yielded {paused} s");

    running.signal(libc::SIGTERM);
    assert!(running.wait(Duration::from_secs(30))?.success());
    Ok(())
}

#[test]
fn training_waits_for_a_gap_between_predictions_when_asked() -> anyhow::Result<()> {
    // Back-to-back predictions leave no 50 ms gap: training waits, 200 ms at a time.
    training_yields_to_predictions("pause_training_ms = 50\nmax_training_pause_ms = 200\n")
}

#[test]
fn training_rests_between_slices_while_predictions_are_served() -> anyhow::Result<()> {
    // The generator's 20,000 events/s come 64 rows per 20 us slice at most, each slice
    // followed by a 2 ms rest: more than half of each second is rest while predictions go on.
    training_yields_to_predictions("training_slice_us = 20\ntraining_rest_us = 2000\n")
}

#[test]
fn https_with_a_configured_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.key_pair.serialize_pem())?;
    let file = dir.path().join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "[source]\ntype = \"generator\"\nkind = \"logistic\"\nfeatures = 2\nrate_per_sec = 1000.0\n\n\
             [[features]]\ntype = \"standard_scaler\"\nfields = [\"x0\", \"x1\"]\n\n\
             [model]\ntype = \"logistic\"\ntarget = \"y\"\n\n\
             [serve]\naddress = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )?;
    let mut running = Running::spawn(eddy().args(["run", "--quiet"]).arg(&file))?;
    let line = running.wait_for_line("serving model", Duration::from_secs(60))?;
    assert!(line.contains("https://"), "{line}");
    let port = port_of(&line)?;
    let root = ureq::tls::Certificate::from_der(certified.cert.der()).to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
            root,
        ])))
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut r = agent
        .get(&format!("https://localhost:{port}/healthz"))
        .call()?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_string()?.contains("ok"));
    // Plain HTTP on the TLS port gets no answer.
    let plain = Client::new(format!("http://127.0.0.1:{port}"));
    assert!(plain.get("/healthz").map(|(s, _)| s != 200).unwrap_or(true));
    running.signal(libc::SIGTERM);
    assert!(running.wait(Duration::from_secs(30))?.success());
    Ok(())
}

/// The port of the `scheme://127.0.0.1:PORT/...` URL in a serving line.
fn port_of(line: &str) -> anyhow::Result<u16> {
    let after = line
        .split("127.0.0.1:")
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no address in {line:?}"))?;
    Ok(after.split('/').next().unwrap_or_default().parse()?)
}
