//! Admin routes: feed labelled events to the live learner, promote and roll back registry versions.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::handlers::{error, unknown_model};
use super::AppState;
use crate::snapshot::InstanceError;

/// Labelled records for the live learner, and where to send its answer.
pub struct LearnRequest {
    /// Raw JSON objects, each with the target field.
    pub records: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<LearnReply, InstanceError>>,
}

/// What the trainer answers: the predictions made before learning each record.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnReply {
    pub predictions: Vec<serde_json::Value>,
    pub model_version: u64,
}

/// The live trainer's inbox for HTTP-fed events.
pub type LearnSender = mpsc::Sender<LearnRequest>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Instances<'a> {
    #[serde(borrow)]
    instances: Vec<&'a RawValue>,
}

pub(crate) async fn learn(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !state.models.contains_key(&name) {
        return unknown_model(&name);
    }
    let Some(sender) = state.learn.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            format!("model {name:?} is not training here"),
        );
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), None, rejection.body_text()),
    };
    let request: Instances<'_> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("instances"),
                format!("invalid request: {e}"),
            )
        }
    };
    if request.instances.is_empty() || request.instances.len() > state.max_instances {
        let message = format!(
            "between 1 and {} instances, got {}",
            state.max_instances,
            request.instances.len()
        );
        return error(StatusCode::BAD_REQUEST, Some("instances"), message);
    }
    let (reply, answer) = oneshot::channel();
    let records = request
        .instances
        .iter()
        .map(|r| r.get().as_bytes().to_vec())
        .collect();
    if sender.send(LearnRequest { records, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, None, "training has ended");
    }
    match answer.await {
        Ok(Ok(done)) => Json(json!({
            "model": name,
            "learned": done.predictions.len(),
            "model_version": done.model_version,
            "predictions": done.predictions,
        }))
        .into_response(),
        Ok(Err(e)) => error(
            StatusCode::BAD_REQUEST,
            Some(&e.field_path()),
            e.to_string(),
        ),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, None, "training has ended"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    version: u64,
}

/// Why an admin action was refused: status and message, turned into a JSON error by the caller.
type Refusal = (StatusCode, String);

fn refuse((status, message): Refusal) -> Response {
    error(status, None, message)
}

fn registry_of(state: &AppState) -> Result<&crate::Registry, Refusal> {
    state.registry.as_ref().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "this server does not serve from a registry".to_owned(),
        )
    })
}

/// Loads the registry's current version of `name` into its handle.
fn republish(state: &AppState, name: &str) -> Result<u64, Refusal> {
    let internal = |e: crate::ModelError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let registry = registry_of(state)?;
    let handle = state
        .models
        .get(name)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("model {name:?} not found")))?;
    let artifact = registry
        .load_current(name)
        .map_err(internal)?
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("model {name:?} has no current version"),
            )
        })?;
    let spec = artifact.spec().map_err(internal)?;
    let version = artifact.meta.version;
    handle.publish(artifact.model.snapshot_as(Arc::new(spec), version));
    Ok(version)
}

pub(crate) async fn promote(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let registry = match registry_of(&state) {
        Ok(r) => r,
        Err(refusal) => return refuse(refusal),
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), None, rejection.body_text()),
    };
    let request: Promote = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("version"),
                format!("invalid request: {e}"),
            )
        }
    };
    if let Err(e) = registry.promote(&name, request.version) {
        return error(StatusCode::BAD_REQUEST, Some("version"), e.to_string());
    }
    match republish(&state, &name) {
        Ok(version) => Json(json!({ "model": name, "current": version })).into_response(),
        Err(refusal) => refuse(refusal),
    }
}

pub(crate) async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    let registry = match registry_of(&state) {
        Ok(r) => r,
        Err(refusal) => return refuse(refusal),
    };
    if let Err(e) = registry.rollback(&name) {
        return error(StatusCode::CONFLICT, None, e.to_string());
    }
    match republish(&state, &name) {
        Ok(version) => Json(json!({ "model": name, "current": version })).into_response(),
        Err(refusal) => refuse(refusal),
    }
}
