//! The pipelines under `examples/`, each run shortened by the real binary, with its headline
//! figure checked.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use common::{eddy, run_ok, summary, Running};
use eddy_runtime::source::SourceConfig;
use serde_json::{json, Value};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("pipeline.toml")
}

/// A copy of the example in `dir`, serving on an ephemeral port instead of 8080 so tests can run
/// side by side; its relative `eddy-data/` paths land in `dir` when run from there.
fn ephemeral_copy(name: &str, dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let text = std::fs::read_to_string(example(name))?;
    if !text.contains("127.0.0.1:8080") {
        bail!("examples/{name}/pipeline.toml no longer serves on 127.0.0.1:8080");
    }
    let text = text.replace("127.0.0.1:8080", "127.0.0.1:0");
    let file = dir.join("pipeline.toml");
    std::fs::write(&file, &text)?;
    Ok((file, text))
}

/// The first `events` records of the example's seeded generator, as JSON.
fn generated(text: &str, events: u64) -> anyhow::Result<Vec<Value>> {
    let config = eddy_runtime::config::parse(text, "examples/ctr/pipeline.toml")?;
    let SourceConfig::Generator(generator) = config.source else {
        bail!("the ctr example no longer reads a generator");
    };
    let mut out = Vec::new();
    generator.write_jsonl(events, &mut out)?;
    String::from_utf8(out)?
        .lines()
        .map(|l| serde_json::from_str(l).context("a generated line"))
        .collect()
}

/// Log loss of always predicting the empirical click rate `p`: the bar any model must clear.
fn constant_log_loss(p: f64) -> f64 {
    -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
}

#[test]
fn ctr_beats_the_constant_predictor_and_scores_an_impression_over_http() -> anyhow::Result<()> {
    const EVENTS: u64 = 100_000;
    let dir = tempfile::tempdir()?;
    let (file, text) = ephemeral_copy("ctr", dir.path())?;
    run_ok(
        eddy()
            .current_dir(dir.path())
            .args(["run", "--quiet", "--max-events", &EVENTS.to_string()])
            .arg(&file)
            .args(["--summary-json", "summary.json"]),
    )?;
    let s = summary(&dir.path().join("summary.json"))?;
    assert_eq!(s["learned"].as_u64(), Some(EVENTS), "{s}");
    let log_loss = s["metrics"]["logloss"].as_f64().context("logloss")?;
    let auc = s["metrics"]["auc"].as_f64().context("auc")?;

    let records = generated(&text, EVENTS)?;
    let clicks: f64 = records.iter().filter_map(|r| r["click"].as_f64()).sum();
    let rate = clicks / EVENTS as f64;
    let constant = constant_log_loss(rate);
    eprintln!("ctr: click rate {rate:.4}, constant log loss {constant:.4}, progressive log loss {log_loss:.4}, auc {auc:.4}");
    assert!(
        (0.08..0.25).contains(&rate),
        "click rate {rate} out of the CTR-like range"
    );
    // Progressive: every prediction was made before its event was learned, so this is held-out
    // skill; a model that learned nothing would sit at or above the constant.
    assert!(
        log_loss < constant - 0.01,
        "log loss {log_loss} does not beat the constant predictor's {constant}"
    );
    assert!(auc > 0.65, "auc {auc}");

    // The run exported its model; serve it and score one ad impression from the stream.
    let registry = dir.path().join("eddy-data/ctr/registry");
    let mut server = Running::spawn(
        eddy()
            .args(["serve", "--address", "127.0.0.1:0", "--registry"])
            .arg(&registry),
    )?;
    let base = server.wait_for_server()?;
    let mut impression = records[0].clone();
    impression
        .as_object_mut()
        .context("a record is an object")?
        .remove("click");
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut answer = agent
        .post(&format!("{base}/v1/models/ctr/predict"))
        .header("content-type", "application/json")
        .send(json!({ "instances": [impression] }).to_string())?;
    let status = answer.status().as_u16();
    let body: Value = serde_json::from_str(&answer.body_mut().read_to_string()?)?;
    assert_eq!(status, 200, "{body}");
    let p = body["predictions"][0].as_f64().context("a prediction")?;
    assert!(p > 0.0 && p < 1.0, "{body}");
    assert_eq!(body["model_version"].as_u64(), Some(1), "{body}");
    Ok(())
}

/// An HTTP client that reports error statuses instead of failing on them.
fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn get_json(agent: &ureq::Agent, url: &str) -> anyhow::Result<(u16, Value)> {
    let mut answer = agent.get(url).call()?;
    let status = answer.status().as_u16();
    Ok((
        status,
        serde_json::from_str(&answer.body_mut().read_to_string()?)?,
    ))
}

/// The weather example's stream, prepared once per target directory by the example's own
/// script (which fetches the pinned vega-datasets wheel with pip).
fn weather_readings() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weather-data");
    let readings = dir.join("readings.jsonl");
    if !readings.exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/weather/prepare.py");
        let status = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .status()
            .context("running python3 examples/weather/prepare.py")?;
        if !status.success() {
            bail!("examples/weather/prepare.py failed: {status}");
        }
    }
    Ok(readings)
}

#[test]
fn weather_beats_the_naive_forecast_and_serves_each_stations_latest_forecast() -> anyhow::Result<()>
{
    let readings = weather_readings()?;
    let text = std::fs::read_to_string(&readings)?;
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).context("a reading"))
        .collect::<anyhow::Result<_>>()?;
    assert!(records.len() > 17_000, "{} readings", records.len());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("eddy-data/weather");
    std::fs::create_dir_all(&data)?;
    std::fs::copy(&readings, data.join("readings.jsonl"))?;
    let (file, _) = ephemeral_copy("weather", dir.path())?;

    let mut run = Running::spawn(
        eddy()
            .current_dir(dir.path())
            .args(["run", "--linger", "--progress-ms", "100000"])
            .arg(&file)
            .args(["--summary-json", "summary.json"]),
    )?;
    let base = run.wait_for_server()?;
    run.wait_for_line("still serving", Duration::from_secs(120))?;

    // Each station's newest forecast is the one made from its last reading of the year.
    let agent = http();
    for station in ["seattle", "san_francisco"] {
        let last = records
            .iter()
            .rev()
            .find(|r| r["station"] == station)
            .context("a reading of the station")?;
        let url = format!("{base}/v1/models/weather/latest?key={station}");
        let (status, body) = get_json(&agent, &url)?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"], station, "{body}");
        assert_eq!(body["record"]["time"], last["time"], "{body}");
        assert_eq!(body["record"]["temp"], last["temp"], "{body}");
        assert!(
            body["record"].get("next_temp").is_none(),
            "the label leaked: {body}"
        );
        let forecast = body["prediction"].as_f64().context("a forecast")?;
        let now = last["temp"].as_f64().context("temp")?;
        assert!(
            (forecast - now).abs() < 3.0,
            "forecast {forecast} from {now}: {body}"
        );
    }
    let (status, body) = get_json(&agent, &format!("{base}/v1/models/weather/latest?key=oslo"))?;
    assert_eq!(
        (status, body["field"].as_str()),
        (404, Some("key")),
        "{body}"
    );

    run.signal(libc::SIGTERM);
    let status = run.wait(Duration::from_secs(30))?;
    assert!(status.success(), "{status}: {}", run.seen.join("\n"));
    let s = summary(&dir.path().join("summary.json"))?;
    assert_eq!(s["learned"].as_u64(), Some(records.len() as u64), "{s}");
    let mae = s["metrics"]["mae"].as_f64().context("mae")?;

    // The naive forecast "the next hour is like this one", over the same events.
    let naive = records
        .iter()
        .map(|r| {
            (r["next_temp"].as_f64().unwrap_or(f64::NAN) - r["temp"].as_f64().unwrap_or(0.0)).abs()
        })
        .sum::<f64>()
        / records.len() as f64;
    eprintln!("weather: progressive MAE {mae:.3} F against the naive forecast's {naive:.3} F");
    assert!(naive.is_finite() && naive > 0.5, "naive MAE {naive}");
    assert!(
        mae < 0.6 * naive,
        "MAE {mae} does not clearly beat the naive {naive}"
    );
    Ok(())
}
