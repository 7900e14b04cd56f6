//! The live dashboard in a real browser: `eddy run` serves it, headless Chromium renders it, and
//! what the page shows must match `/metrics`; hostile field names stay text.
//!
//! Chromium is required (`.ci/run` installs it): without it this test fails rather than skips.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::{eddy, Running};

const HOSTILE: &str = "<script>alert(1)</script>";
/// Refused (the field is a number): its dead letter must not carry it onto the page as markup.
const HOSTILE_VALUE: &str = "<img src=x onerror=alert(2)>";
/// As the serialized DOM shows text that contains markup.
const HOSTILE_AS_TEXT: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const GOOD: usize = 300;
const MALFORMED: usize = 3;

/// Reads stdin one record per chunk, so every record written is processed at once and the
/// pipeline then waits, idle and serving, for more: its counters hold still while we compare.
fn pipeline(dir: &Path) -> Result<PathBuf> {
    let file = dir.join("dashboard.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[source]
type = "stdin"
batch_size = 1

[[features]]
type = "standard_scaler"
fields = ["x0", "{}"]

[model]
type = "logistic"
target = "y"
name = "clicks"

[serve]
address = "127.0.0.1:0"
publish_interval_ms = 10
"#,
            HOSTILE.replace('"', "\\\"")
        ),
    )?;
    Ok(file)
}

/// JSON Lines with malformed lines and one record whose hostile field has a hostile string value;
/// it ends with good records, so nothing is left in the source's buffer.
fn records() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..GOOD {
        let x0 = (i % 17) as f64 / 4.0 - 2.0;
        let x1 = (i % 5) as f64 - 2.0;
        let y = u8::from(x0 + 0.5 * x1 > 0.0);
        lines.push(serde_json::json!({"x0": x0, HOSTILE: x1, "y": y}).to_string());
        if i == 100 {
            lines.push(serde_json::json!({"x0": 1.0, HOSTILE: HOSTILE_VALUE, "y": 1}).to_string());
        }
        if i % 90 == 45 {
            lines.push("{this is not json".to_owned());
        }
    }
    assert_eq!(lines.len(), GOOD + MALFORMED + 1);
    lines
}

/// The value of the first sample line of `name` (with an optional label filter).
fn sample(metrics: &str, name: &str, label: Option<&str>) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .find(|l| label.is_none_or(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn sum_of(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_get(base: &str, path: &str) -> Result<String> {
    let mut r = ureq::get(&format!("{base}{path}"))
        .call()
        .with_context(|| format!("GET {path}"))?;
    Ok(r.body_mut().read_to_string()?)
}

/// The text of the element with `id` (its first text node; tags inside end it).
fn text_of<'a>(dom: &'a str, id: &str) -> Result<&'a str> {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .with_context(|| format!("no element #{id} in the page"))?;
    let open_end = at + dom[at..].find('>').context("unterminated tag")? + 1;
    let len = dom[open_end..].find('<').context("no closing tag")?;
    Ok(&dom[open_end..open_end + len])
}

fn number_of(dom: &str, id: &str) -> Result<f64> {
    let text = text_of(dom, id)?;
    text.replace(',', "")
        .trim()
        .parse()
        .with_context(|| format!("#{id} shows {text:?}, not a number"))
}

/// The `data-points` count of the canvas with `id`: how many values its chart has drawn.
fn points_of(dom: &str, id: &str) -> Result<u64> {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .with_context(|| format!("no canvas #{id}"))?;
    let tag_start = dom[..at].rfind('<').context("no tag")?;
    let tag = &dom[tag_start..at + dom[at..].find('>').context("unterminated tag")?];
    let value = tag
        .split("data-points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| format!("canvas #{id} has no data-points: {tag}"))?;
    Ok(value.parse()?)
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=...`) and lets the
/// page run for `budget` of virtual time (timers fast-forward; requests still take real time).
fn chromium(profile: &Path, url: &str, mode: &str, budget: Duration) -> Result<String> {
    let binary = std::env::var("EDDY_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let mut child = Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {binary:?}: headless Chromium is required for this test \
                 (.ci/run installs it: apt-get install chromium)"
            )
        })?;
    let mut stdout = child.stdout.take().context("chromium stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("chromium reader panicked"))??;
    ensure!(status.success(), "chromium failed ({status})");
    Ok(out)
}

/// Where test artifacts are kept: the Cargo target directory.
fn artifact_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

#[test]
fn the_dashboard_shows_the_live_pipeline_and_keeps_hostile_names_as_text() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = pipeline(dir.path())?;
    let mut command = eddy();
    command
        .args(["run", "--progress-ms", "100"])
        .arg(&file)
        .stdin(Stdio::piped());
    let mut running = Running::spawn(&mut command)?;
    // Held open (not dropped) until the end, so the pipeline keeps serving after the records.
    let mut stdin = running.child.stdin.take().context("eddy's stdin")?;
    let base = running.wait_for_server()?;
    let lines = records();
    let (last, first) = lines.split_last().context("records")?;
    for line in first {
        writeln!(stdin, "{line}")?;
    }
    stdin.flush()?;
    // Snapshots are published at most every publish_interval_ms, when a record arrives: a last
    // record after a pause makes the served snapshot hold everything learned.
    std::thread::sleep(Duration::from_millis(300));
    writeln!(stdin, "{last}")?;
    stdin.flush()?;

    // Wait until every record has been read and the model snapshot holds all it learned.
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let metrics = http_get(&base, "/metrics")?;
        let read = sample(&metrics, "eddy_events_read_total", None);
        let learned = sample(&metrics, "eddy_events_learned_total", None);
        let served = sample(&metrics, "eddy_served_model_version", None);
        if read == Some(lines.len() as f64) && learned.is_some() && served == learned {
            break metrics;
        }
        ensure!(
            Instant::now() < deadline,
            "the pipeline did not settle; last /metrics:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let profile = dir.path().join("chromium-profile");
    let page = format!("{base}/");
    let dom = chromium(&profile, &page, "--dump-dom", Duration::from_secs(6))?;
    let metrics = http_get(&base, "/metrics")?;
    let artifacts = artifact_dir();
    std::fs::write(artifacts.join("dashboard-dom.html"), &dom)?;
    ensure!(
        metrics_stable(&settled, &metrics),
        "the pipeline moved while the page was open:\n{settled}\n---\n{metrics}"
    );

    // The page polled, and its charts have data.
    ensure!(
        text_of(&dom, "connection")? == "live",
        "the page never reached /v1/status: {:?}",
        text_of(&dom, "connection")
    );
    ensure!(
        points_of(&dom, "chart-throughput")? >= 2,
        "throughput chart: {}",
        points_of(&dom, "chart-throughput")?
    );
    ensure!(points_of(&dom, "chart-dead-letters")? >= 2);
    ensure!(
        dom.contains("data-metric=\"auc\""),
        "no chart for the AUC metric"
    );

    // The numbers shown are the ones /metrics gives.
    let expect = |name: &str| sample(&metrics, name, None).context(name.to_owned());
    assert_eq!(
        number_of(&dom, "events-read")?,
        expect("eddy_events_read_total")?
    );
    assert_eq!(
        number_of(&dom, "events-learned")?,
        expect("eddy_events_learned_total")?
    );
    let dead = sum_of(&metrics, "eddy_events_dead_lettered_total");
    assert_eq!(dead, (MALFORMED + 1) as f64, "{metrics}");
    assert_eq!(number_of(&dom, "dead-letters-total")?, dead);
    assert_eq!(
        expect("eddy_events_learned_total")?,
        GOOD as f64,
        "{metrics}"
    );
    // The models table: name, then version as served.
    let row = &dom[dom.find("id=\"models\"").context("models table")?..];
    let cells: Vec<&str> = row
        .split("<td")
        .skip(1)
        .take(2)
        .filter_map(|c| c.split('>').nth(1)?.split('<').next())
        .collect();
    assert_eq!(cells.first().copied(), Some("clicks"));
    let version: f64 = cells
        .get(1)
        .context("version cell")?
        .replace(',', "")
        .parse()?;
    assert_eq!(version, expect("eddy_served_model_version")?);

    // Hostile text from the stream is shown as text: the field name in the prediction form and in
    // the latest dead letter with its reason. None of it (nor the hostile value) became markup.
    ensure!(
        dom.matches(HOSTILE_AS_TEXT).count() >= 2,
        "the hostile field name is not shown as text"
    );
    ensure!(
        !dom.contains(HOSTILE),
        "a <script> element came from the stream"
    );
    ensure!(
        !dom.contains("<img"),
        "an <img> element came from the stream"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script"
    );

    // The screenshot is the test's artifact.
    let shot = artifacts.join("dashboard-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &profile,
        &page,
        &format!("--screenshot={}", shot.display()),
        Duration::from_secs(4),
    )?;
    let png = std::fs::read(&shot).with_context(|| format!("reading {}", shot.display()))?;
    ensure!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a real screenshot"
    );
    eprintln!("dashboard screenshot: {}", shot.display());

    drop(stdin);
    let status = running.wait(Duration::from_secs(30))?;
    ensure!(
        status.success(),
        "eddy failed ({status}):\n{}",
        running.seen.join("\n")
    );
    Ok(())
}

/// The pipeline's counters are the same in both scrapes (only the server's own metrics move).
fn metrics_stable(before: &str, after: &str) -> bool {
    [
        "eddy_events_read_total",
        "eddy_events_learned_total",
        "eddy_served_model_version",
    ]
    .iter()
    .all(|name| sample(before, name, None) == sample(after, name, None))
        && sum_of(before, "eddy_events_dead_lettered_total")
            == sum_of(after, "eddy_events_dead_lettered_total")
}
