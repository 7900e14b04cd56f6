//! Route handlers. Each answers JSON; each refusal names what was wrong.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::snapshot::ServingSnapshot;

pub(crate) fn error(
    status: StatusCode,
    field: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let body = match field {
        Some(field) => json!({ "error": message.into(), "field": field }),
        None => json!({ "error": message.into() }),
    };
    (status, Json(body)).into_response()
}

pub(crate) fn unknown_model(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        None,
        format!("model {name:?} not found"),
    )
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn not_found(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        None,
        format!("no route for {}", uri.path()),
    )
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Version and age are read at scrape time, so they are exact whenever Prometheus looks.
    for (name, handle) in &state.models {
        let snapshot = handle.load();
        let labels = super::metrics::ModelLabels {
            model: name.clone(),
        };
        state
            .http
            .served_version
            .get_or_create(&labels)
            .set(snapshot.version as i64);
        let age = SystemTime::now()
            .duration_since(snapshot.published_at)
            .map_or(0.0, |d| d.as_secs_f64());
        state.http.served_age.get_or_create(&labels).set(age);
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("encoding metrics: {e}"),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn metric_map(values: &[(&'static str, f64)]) -> Map<String, Value> {
    values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

fn summary(snapshot: &ServingSnapshot) -> Value {
    json!({
        "name": snapshot.spec.name,
        "version": snapshot.version,
        "events_learned": snapshot.events_learned,
    })
}

pub(crate) async fn list_models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let models: Vec<Value> = state.models.values().map(|m| summary(&m.load())).collect();
    Json(json!({ "models": models }))
}

pub(crate) async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    let Some(handle) = state.models.get(&name) else {
        return unknown_model(&name);
    };
    let s = handle.load();
    let age = SystemTime::now()
        .duration_since(s.published_at)
        .map_or(0.0, |d| d.as_secs_f64());
    Json(json!({
        "name": s.spec.name,
        "version": s.version,
        "events_learned": s.events_learned,
        "task": s.spec.task,
        "target": s.spec.target,
        "key_field": s.spec.key_field,
        "features": s.features.describe(),
        "dim": s.features.dim(),
        "metrics": metric_map(&s.metrics),
        "window_metrics": metric_map(&s.window_metrics),
        "snapshot_age_seconds": age,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LatestQuery {
    key: Option<String>,
}

/// `GET /v1/models/{name}/latest?key=K`: the prediction the live pipeline made for K's newest
/// event (before learning it), with the model version and the event's fields; without `key`,
/// the newest event of the stream.
pub(crate) async fn latest(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, None, e.body_text()),
    };
    if !state.models.contains_key(&name) {
        return unknown_model(&name);
    }
    let Some(latest) = state.latest.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!(
                "model {name:?} is not trained here: only `eddy run` keeps the latest predictions"
            ),
        );
    };
    let key = query.key.as_deref();
    let Some(found) = latest.get(key) else {
        let message = match key {
            Some(k) => format!("no prediction yet for key {k:?} (or it was retired as idle)"),
            None => "no prediction yet".to_owned(),
        };
        return error(StatusCode::NOT_FOUND, key.map(|_| "key"), message);
    };
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut body = json!({
        "model": name,
        "prediction": found.prediction,
        "model_version": found.model_version,
        "position": found.position,
        "record": found.record,
        "age_seconds": now_ms.saturating_sub(found.at_unix_ms) as f64 / 1000.0,
    });
    if let Some(k) = found.key {
        body["key"] = json!(k);
    }
    Json(body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest<'a> {
    #[serde(borrow)]
    instances: Vec<&'a RawValue>,
    /// For linear models: each feature's contribution to the margin.
    #[serde(default)]
    explain: bool,
}

pub(crate) async fn predict(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(handle) = state.models.get(&name) else {
        return unknown_model(&name);
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), None, rejection.body_text()),
    };
    let request: PredictRequest<'_> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) if e.is_data() => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("instances"),
                format!("invalid request: {e}"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                None,
                format!("malformed json: {e}"),
            )
        }
    };
    if request.instances.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            Some("instances"),
            "instances: expected at least one",
        );
    }
    if request.instances.len() > state.max_instances {
        let msg = format!(
            "instances: at most {} per request, got {}",
            state.max_instances,
            request.instances.len()
        );
        return error(StatusCode::BAD_REQUEST, Some("instances"), msg);
    }
    let raw: Vec<&[u8]> = request
        .instances
        .iter()
        .map(|r| r.get().as_bytes())
        .collect();
    let snapshot = handle.load();
    let predictions = match snapshot.predict_json(&raw) {
        Ok(predictions) => predictions,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some(&e.field_path()),
                e.to_string(),
            )
        }
    };
    let mut body = json!({
        "model": snapshot.spec.name,
        "model_version": snapshot.version,
        "predictions": predictions,
    });
    if request.explain {
        match snapshot.explain_json(&raw) {
            Ok(Some(explanations)) => body["explanations"] = Value::Array(explanations),
            Ok(None) => {
                let message =
                    "explain: only linear models (linear, logistic, svm) can be explained";
                return error(StatusCode::BAD_REQUEST, Some("explain"), message);
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some(&e.field_path()),
                    e.to_string(),
                )
            }
        }
    }
    Json(body).into_response()
}
