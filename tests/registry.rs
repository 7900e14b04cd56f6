//! Model artifacts and the registry through the real binary: export, list, inspect, serve,
//! promote and roll back over HTTP with a bearer token, and the Open Inference Protocol v2.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{eddy, logistic_file, run_ok, Running};
use serde_json::{json, Value};

fn pipeline(dir: &Path, data: &Path) -> anyhow::Result<std::path::PathBuf> {
    let file = dir.join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[source]
type = "file"
path = "{}"

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
name = "ctr"

[checkpoint]
dir = "{}"

[serve]
enabled = false
"#,
            data.display(),
            dir.join("ckpt").display()
        ),
    )?;
    Ok(file)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn post(base: &str, path: &str, body: &Value, token: Option<&str>) -> anyhow::Result<(u16, Value)> {
    let mut request = agent()
        .post(&format!("{base}{path}"))
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut r = request.send(body.to_string())?;
    let status = r.status().as_u16();
    Ok((
        status,
        serde_json::from_str(&r.body_mut().read_to_string()?)?,
    ))
}

fn get(base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let mut r = agent().get(&format!("{base}{path}")).call()?;
    let status = r.status().as_u16();
    Ok((
        status,
        serde_json::from_str(&r.body_mut().read_to_string()?)?,
    ))
}

fn row(i: usize) -> Value {
    let mut o = serde_json::Map::new();
    for j in 0..10 {
        o.insert(
            format!("x{j}"),
            json!(((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0),
        );
    }
    o.insert("cat".into(), json!(format!("c{}", i % 5)));
    Value::Object(o)
}

#[test]
fn export_serve_promote_rollback_and_v2_infer() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("d.jsonl");
    logistic_file(&data, 20_000, 4)?;
    let file = pipeline(dir.path(), &data)?;
    let registry = dir.path().join("registry");

    // Version 1 after 5,000 events, version 2 after all 20,000.
    run_ok(
        eddy()
            .args(["run", "--quiet", "--max-events", "5000"])
            .arg(&file),
    )?;
    run_ok(
        eddy()
            .args(["model", "export"])
            .arg(&file)
            .arg("--registry")
            .arg(&registry),
    )?;
    run_ok(eddy().args(["run", "--quiet"]).arg(&file))?;
    run_ok(
        eddy()
            .args(["model", "export"])
            .arg(&file)
            .arg("--registry")
            .arg(&registry),
    )?;

    let out = eddy()
        .args(["model", "list", "--registry"])
        .arg(&registry)
        .output()?;
    let list: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(list[0]["name"], "ctr");
    assert_eq!(list[0]["versions"], json!([1, 2]));
    assert_eq!(list[0]["current"], 1);

    let out = eddy()
        .args(["model", "inspect", "--registry"])
        .arg(&registry)
        .args(["--name", "ctr", "--version", "2"])
        .output()?;
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(meta["events_learned"], 20_000);
    assert_eq!(meta["format_version"], 1);
    assert!(meta["metrics"]["logloss"].is_number());

    let mut server = Running::spawn(
        eddy()
            .args(["serve", "--address", "127.0.0.1:0", "--registry"])
            .arg(&registry)
            .env("EDDY_ADMIN_TOKEN", "s3cret"),
    )?;
    let base = server.wait_for_server()?;
    let rows: Vec<Value> = (0..4).map(row).collect();
    let (status, v1) = post(
        &base,
        "/v1/models/ctr/predict",
        &json!({ "instances": rows }),
        None,
    )?;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["model_version"], 1);

    let (status, _) = post(
        &base,
        "/v1/models/ctr/promote",
        &json!({"version": 2}),
        None,
    )?;
    assert_eq!(status, 401, "promote needs the admin token");
    let (status, _) = post(
        &base,
        "/v1/models/ctr/promote",
        &json!({"version": 2}),
        Some("wrong"),
    )?;
    assert_eq!(status, 401);
    let (status, body) = post(
        &base,
        "/v1/models/ctr/promote",
        &json!({"version": 2}),
        Some("s3cret"),
    )?;
    assert_eq!(status, 200, "{body}");
    let (_, v2) = post(
        &base,
        "/v1/models/ctr/predict",
        &json!({ "instances": rows }),
        None,
    )?;
    assert_eq!(v2["model_version"], 2);
    assert_ne!(
        v1["predictions"], v2["predictions"],
        "a model trained longer answers differently"
    );

    // The same rows as named tensors through the v2 protocol give the same numbers.
    let mut inputs = Vec::new();
    for j in 0..10 {
        let name = format!("x{j}");
        let data: Vec<Value> = rows.iter().map(|r| r[&name].clone()).collect();
        inputs.push(json!({"name": name, "shape": [4], "datatype": "FP64", "data": data}));
    }
    let cats: Vec<Value> = rows.iter().map(|r| r["cat"].clone()).collect();
    inputs.push(json!({"name": "cat", "shape": [4, 1], "datatype": "BYTES", "data": cats}));
    let (status, infer) = post(
        &base,
        "/v2/models/ctr/infer",
        &json!({"id": "r1", "inputs": inputs}),
        None,
    )?;
    assert_eq!(status, 200, "{infer}");
    assert_eq!(infer["id"], "r1");
    assert_eq!(infer["model_version"], "2");
    assert_eq!(infer["outputs"][0]["data"], v2["predictions"]);
    let (status, bad) = post(
        &base,
        "/v2/models/ctr/infer",
        &json!({"inputs": [{"name": "x0", "shape": [3], "datatype": "FP64", "data": [1.0]}]}),
        None,
    )?;
    assert_eq!(status, 400);
    assert_eq!(bad["field"], "inputs[0]", "{bad}");

    assert_eq!(get(&base, "/v2/health/live")?.1["live"], true);
    assert_eq!(get(&base, "/v2/health/ready")?.1["ready"], true);
    assert_eq!(get(&base, "/v2/models/ctr/ready")?.1["ready"], true);
    let (_, meta) = get(&base, "/v2/models/ctr")?;
    assert_eq!(meta["inputs"].as_array().map(Vec::len), Some(11), "{meta}");
    assert_eq!(get(&base, "/v2/models/nope")?.0, 404);

    let (status, body) = post(&base, "/v1/models/ctr/rollback", &json!({}), Some("s3cret"))?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["current"], 1);

    // A promotion made outside the server (the CLI) reaches it within a second or two.
    run_ok(
        eddy()
            .args(["model", "promote", "--registry"])
            .arg(&registry)
            .args(["--name", "ctr", "--version", "2"]),
    )?;
    let mut seen = 0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        seen = post(
            &base,
            "/v1/models/ctr/predict",
            &json!({ "instances": [row(1)] }),
            None,
        )?
        .1["model_version"]
            .as_u64()
            .unwrap_or(0);
        if seen == 2 {
            break;
        }
    }
    assert_eq!(seen, 2);
    server.signal(libc::SIGTERM);
    assert!(server.wait(Duration::from_secs(20))?.success());

    // A damaged artifact is refused with a clear message, and never half-loaded.
    let v2_path = registry.join("ctr/v00000002.eddymodel");
    let bytes = std::fs::read(&v2_path)?;
    std::fs::write(&v2_path, &bytes[..bytes.len() - 100])?;
    let out = eddy().args(["model", "inspect"]).arg(&v2_path).output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt or truncated"), "{err}");
    Ok(())
}
