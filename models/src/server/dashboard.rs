//! The live dashboard: the page at `/`, its script and style, and the `/v1/status` JSON it polls.
//!
//! Everything the page shows comes from the stream (field names, dead-letter reasons, lag topics),
//! so none of it is trusted: the script inserts text only through `textContent`, and the page is
//! sent with a Content-Security-Policy that allows nothing but same-origin script, style and
//! requests (no inline script or style, no frames, no other hosts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::samples::{self, Sample};
use super::AppState;
use crate::dead_letters::RecentDeadLetter;
use crate::snapshot::ModelHandle;

const PAGE: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// Sent with every dashboard resource. `form-action` and `connect-src` keep the prediction form
/// and the polling on this server; `frame-ancestors` stops the page being framed (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

// The names runtime/src/metrics.rs registers (counters get `_total` in the exposition). Kept as
// text because the pipeline registers them; this crate only reads them back.
const EVENTS_READ: &str = "eddy_events_read_total";
const EVENTS_LEARNED: &str = "eddy_events_learned_total";
const EVENTS_DEAD_LETTERED: &str = "eddy_events_dead_lettered_total";
const CHECKPOINTS_WRITTEN: &str = "eddy_checkpoints_written_total";
const THROUGHPUT: &str = "eddy_throughput_events_per_second";
const MODEL_METRIC: &str = "eddy_model_metric";
/// Registered by the Kafka source, per assigned partition.
const CONSUMER_LAG: &str = "eddy_kafka_consumer_lag";

/// What `GET /v1/status` answers: one object with everything the dashboard draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// Seconds since the server started; the page times its charts by this, not its own clock.
    pub uptime_seconds: f64,
    /// The pipeline's counters; `null` when nothing trains in this process (`eddy serve`).
    pub events_read: Option<u64>,
    pub events_learned: Option<u64>,
    pub checkpoints_written: Option<u64>,
    /// Records per second over the pipeline's last progress interval.
    pub throughput_events_per_second: Option<f64>,
    /// Progressive validation metrics of the training pipeline, by name and scope.
    pub metrics: Vec<MetricStatus>,
    pub dead_letters: DeadLetterStatus,
    pub models: Vec<ModelStatus>,
    /// Consumer lag by topic and partition; empty when the source has none.
    pub lag: Vec<LagStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricStatus {
    pub metric: String,
    /// `stream` (since the start) or `window` (the recent window).
    pub scope: String,
    /// `null` while undefined (NaN, e.g. AUC before both classes were seen).
    pub value: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetterStatus {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// The newest first; empty when no trainer shares its dead letters with the server.
    pub latest: Vec<RecentDeadLetter>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub version: u64,
    pub events_learned: u64,
    pub task: eddy_ml::Task,
    pub target: Option<String>,
    /// The fields a prediction request may carry (the serving schema without the target).
    pub fields: Vec<FieldStatus>,
    pub metrics: BTreeMap<String, Option<f64>>,
    pub snapshot_age_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldStatus {
    pub name: String,
    /// `number` or `string`.
    #[serde(rename = "type")]
    pub ty: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LagStatus {
    pub topic: String,
    pub partition: String,
    pub lag: f64,
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn counter(samples: &[Sample], name: &str) -> Option<u64> {
    samples
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.value.max(0.0) as u64)
}

fn model_status(handle: &ModelHandle) -> ModelStatus {
    let s = handle.load();
    let target = s.spec.target.clone();
    let fields = s
        .spec
        .serving_schema
        .fields()
        .iter()
        .filter(|f| Some(&f.name) != target.as_ref())
        .map(|f| FieldStatus {
            name: f.name.clone(),
            ty: f.ty.to_string(),
        })
        .collect();
    ModelStatus {
        name: s.spec.name.clone(),
        version: s.version,
        events_learned: s.events_learned,
        task: s.spec.task,
        target,
        fields,
        metrics: s
            .metrics
            .iter()
            .map(|(k, v)| ((*k).to_owned(), finite(*v)))
            .collect(),
        snapshot_age_seconds: SystemTime::now()
            .duration_since(s.published_at)
            .map_or(0.0, |d| d.as_secs_f64()),
    }
}

/// Builds the status from the registry's samples, the served models and the latest dead letters.
pub(crate) fn status(
    uptime_seconds: f64,
    samples: &[Sample],
    models: &BTreeMap<String, ModelHandle>,
    latest: Vec<RecentDeadLetter>,
) -> Status {
    let mut by_reason = BTreeMap::new();
    let mut metrics = Vec::new();
    let mut lag = Vec::new();
    for sample in samples {
        match sample.name.as_str() {
            EVENTS_DEAD_LETTERED => {
                let reason = sample.label("reason").unwrap_or("unknown").to_owned();
                *by_reason.entry(reason).or_insert(0) += sample.value.max(0.0) as u64;
            }
            MODEL_METRIC => metrics.push(MetricStatus {
                metric: sample.label("metric").unwrap_or("").to_owned(),
                scope: sample.label("scope").unwrap_or("").to_owned(),
                value: finite(sample.value),
            }),
            CONSUMER_LAG => lag.push(LagStatus {
                topic: sample.label("topic").unwrap_or("").to_owned(),
                partition: sample.label("partition").unwrap_or("").to_owned(),
                lag: sample.value,
            }),
            _ => {}
        }
    }
    // Label sets come out of the registry in hash order: sort, so the page and the JSON are
    // stable from one poll to the next.
    metrics.sort_by(|a, b| (&a.metric, &a.scope).cmp(&(&b.metric, &b.scope)));
    lag.sort_by(|a, b| {
        let number = |p: &str| p.parse::<i64>().unwrap_or(i64::MAX);
        (&a.topic, number(&a.partition)).cmp(&(&b.topic, number(&b.partition)))
    });
    Status {
        uptime_seconds,
        events_read: counter(samples, EVENTS_READ),
        events_learned: counter(samples, EVENTS_LEARNED),
        checkpoints_written: counter(samples, CHECKPOINTS_WRITTEN),
        throughput_events_per_second: samples
            .iter()
            .find(|s| s.name == THROUGHPUT)
            .and_then(|s| finite(s.value)),
        metrics,
        dead_letters: DeadLetterStatus {
            total: by_reason.values().sum(),
            by_reason,
            latest,
        },
        models: models.values().map(model_status).collect(),
        lag,
    }
}

pub(crate) async fn status_json(State(state): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        return super::handlers::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("encoding metrics: {e}"),
        );
    }
    let latest = state
        .dead_letters
        .as_ref()
        .map(|d| d.snapshot())
        .unwrap_or_default();
    let body = status(
        state.started.elapsed().as_secs_f64(),
        &samples::parse(&text),
        &state.models,
        latest,
    );
    with_security_headers(Json(body).into_response())
}

/// The headers every dashboard resource carries.
fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    with_security_headers(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use eddy_features::FeatureConfig;
    use eddy_ml::{LinearModel, Loss, Task};
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    use serde_json::{json, Value};

    use super::*;
    use crate::dead_letters::RecentDeadLetters;
    use crate::server::{BoundServer, Served, ServerOptions};
    use crate::{LearnerParams, ModelSpec, TrainedModel};

    const HOSTILE: &str = "<script>alert(1)</script>";

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Reason {
        reason: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Scoped {
        metric: String,
        scope: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Partition {
        topic: String,
        partition: String,
    }

    fn handle() -> ModelHandle {
        let features = vec![FeatureConfig::StandardScaler {
            fields: vec![HOSTILE.into(), "x".into()],
        }];
        let learner = LinearModel::params(Loss::Logistic)
            .check()
            .expect("default params are valid");
        let spec =
            ModelSpec::new("clicks", &features, Some("y"), Task::Binary, None).expect("valid spec");
        let model = TrainedModel::new(&spec, &LearnerParams::Linear(learner), None, 100)
            .expect("fields resolve");
        ModelHandle::new(model.snapshot(Arc::new(spec)))
    }

    /// A registry holding what a pipeline registers (names as in runtime/src/metrics.rs).
    fn pipeline_registry(lag: bool) -> Registry {
        let mut registry = Registry::default();
        let read = Counter::<u64>::default();
        read.inc_by(1000);
        registry.register("eddy_events_read", "", read);
        let learned = Counter::<u64>::default();
        learned.inc_by(990);
        registry.register("eddy_events_learned", "", learned);
        let checkpoints = Counter::<u64>::default();
        checkpoints.inc_by(2);
        registry.register("eddy_checkpoints_written", "", checkpoints);
        let throughput = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        throughput.set(1234.5);
        registry.register("eddy_throughput_events_per_second", "", throughput);
        let dead = Family::<Reason, Counter>::default();
        dead.get_or_create(&Reason {
            reason: "malformed".into(),
        })
        .inc_by(7);
        dead.get_or_create(&Reason {
            reason: "wrong_type".into(),
        })
        .inc_by(3);
        registry.register("eddy_events_dead_lettered", "", dead);
        let metric = Family::<Scoped, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        metric
            .get_or_create(&Scoped {
                metric: "auc".into(),
                scope: "stream".into(),
            })
            .set(0.75);
        metric
            .get_or_create(&Scoped {
                metric: "auc".into(),
                scope: "window".into(),
            })
            .set(f64::NAN);
        registry.register("eddy_model_metric", "", metric);
        if lag {
            let lag = Family::<Partition, Gauge>::default();
            lag.get_or_create(&Partition {
                topic: HOSTILE.into(),
                partition: "0".into(),
            })
            .set(42);
            registry.register("eddy_kafka_consumer_lag", "", lag);
        }
        registry
    }

    fn status_of(registry: &Registry, latest: Vec<RecentDeadLetter>) -> Value {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
        let models = [("clicks".to_owned(), handle())].into_iter().collect();
        let status = status(3.5, &samples::parse(&text), &models, latest);
        serde_json::to_value(status).expect("serializes")
    }

    #[test]
    fn status_reads_the_pipeline_metrics() {
        let recent = RecentDeadLetters::default();
        recent.push(
            "malformed",
            None,
            "expected value at line 1",
            "data.jsonl:3",
        );
        let s = status_of(&pipeline_registry(false), recent.snapshot());
        assert_eq!(s["uptime_seconds"], 3.5);
        assert_eq!(s["events_read"], 1000);
        assert_eq!(s["events_learned"], 990);
        assert_eq!(s["checkpoints_written"], 2);
        assert_eq!(s["throughput_events_per_second"], 1234.5);
        assert_eq!(
            s["dead_letters"]["by_reason"],
            json!({"malformed": 7, "wrong_type": 3})
        );
        assert_eq!(s["dead_letters"]["total"], 10);
        assert_eq!(s["dead_letters"]["latest"][0]["origin"], "data.jsonl:3");
        assert_eq!(
            s["metrics"],
            json!([
                {"metric": "auc", "scope": "stream", "value": 0.75},
                {"metric": "auc", "scope": "window", "value": null},
            ])
        );
        assert_eq!(s["lag"], json!([]));
        let model = &s["models"][0];
        assert_eq!(model["name"], "clicks");
        assert_eq!(model["version"], 0);
        assert_eq!(model["task"], json!(Task::Binary));
        assert_eq!(model["target"], "y");
        // The target is not a form field.
        assert_eq!(
            model["fields"],
            json!([{"name": HOSTILE, "type": "number"}, {"name": "x", "type": "number"}])
        );
    }

    #[test]
    fn status_without_a_pipeline_has_no_counters() {
        let s = status_of(&Registry::default(), Vec::new());
        assert_eq!(s["events_read"], Value::Null);
        assert_eq!(s["throughput_events_per_second"], Value::Null);
        assert_eq!(s["dead_letters"]["total"], 0);
        assert_eq!(s["models"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn lag_appears_when_a_source_registers_it() {
        let s = status_of(&pipeline_registry(true), Vec::new());
        assert_eq!(
            s["lag"],
            json!([{"topic": HOSTILE, "partition": "0", "lag": 42.0}])
        );
    }

    #[test]
    fn hostile_names_and_reasons_stay_data_in_the_json() {
        let recent = RecentDeadLetters::default();
        let reason = format!("{HOSTILE}: expected a number, got \"</script><img src=x>\"");
        recent.push("wrong_type", Some(HOSTILE), &reason, "<b>origin</b>");
        let s = status_of(&pipeline_registry(false), recent.snapshot());
        let text = s.to_string();
        // Round-trips exactly: the page gets the text, and it is the page's job to show it as text.
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        let letter = &back["dead_letters"]["latest"][0];
        assert_eq!(letter["field"], HOSTILE);
        assert_eq!(letter["reason"], reason.as_str());
        assert_eq!(letter["origin"], "<b>origin</b>");
        assert_eq!(back["models"][0]["fields"][0]["name"], HOSTILE);
    }

    #[test]
    fn the_script_never_parses_html() {
        // Untrusted text must reach the DOM through textContent; these sinks parse markup.
        let code: String = SCRIPT
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!code.contains(sink), "dashboard.js uses {sink}");
        }
        // No inline script or style for the CSP to refuse.
        assert!(!PAGE.contains("style="));
        assert!(!PAGE.contains("<style"));
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert!(PAGE.contains(r#"<script src="/dashboard.js" defer></script>"#));
    }

    struct Answer {
        status: u16,
        content_type: String,
        csp: String,
        nosniff: String,
        body: String,
    }

    fn get(agent: &ureq::Agent, addr: SocketAddr, path: &str) -> Answer {
        let mut r = agent
            .get(&format!("http://{addr}{path}"))
            .call()
            .expect("request");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (content_type, csp, nosniff) = (
            header("content-type"),
            header("content-security-policy"),
            header("x-content-type-options"),
        );
        Answer {
            status: r.status().as_u16(),
            content_type,
            csp,
            nosniff,
            body: r.body_mut().read_to_string().expect("body"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_page_assets_and_status_with_a_strict_policy() {
        let options = ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerOptions::default()
        };
        let recent = RecentDeadLetters::default();
        recent.push("wrong_type", Some(HOSTILE), "bad", "stdin:1");
        let served = Served {
            models: vec![handle()],
            dead_letters: Some(recent),
            ..Served::default()
        };
        let server = BoundServer::bind(&options, served, pipeline_registry(true))
            .await
            .expect("binds");
        let addr = server.local_addr().expect("address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stop_rx.await;
        }));

        let answers = tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent();
            ["/", "/dashboard.js", "/dashboard.css", "/v1/status"]
                .map(|path| get(&agent, addr, path))
        })
        .await
        .expect("client thread");
        let _ = stop_tx.send(());
        task.await.expect("server task").expect("server");

        let [page, script, style, status] = answers;
        for (answer, kind) in [
            (&page, "text/html"),
            (&script, "text/javascript"),
            (&style, "text/css"),
            (&status, "application/json"),
        ] {
            assert_eq!(answer.status, 200);
            assert!(
                answer.content_type.starts_with(kind),
                "{}",
                answer.content_type
            );
            assert_eq!(answer.csp, CONTENT_SECURITY_POLICY);
            assert_eq!(answer.nosniff, "nosniff");
        }
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        assert_eq!(page.body, PAGE);
        assert_eq!(script.body, SCRIPT);
        assert_eq!(style.body, STYLE);
        let status: Value = serde_json::from_str(&status.body).expect("JSON");
        assert_eq!(status["events_read"], 1000);
        assert_eq!(status["dead_letters"]["latest"][0]["field"], HOSTILE);
        assert_eq!(status["lag"][0]["lag"], 42.0);
    }
}
