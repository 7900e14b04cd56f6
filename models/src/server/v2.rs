//! The Open Inference Protocol v2 (KServe / Triton REST): health, model metadata, readiness and
//! `infer` with named input tensors, one tensor per input field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use eddy_features::FieldType;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::handlers::{error, unknown_model};
use super::AppState;

pub(crate) async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "ready": !state.models.is_empty() }))
}

fn datatype(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Number => "FP64",
        FieldType::String => "BYTES",
    }
}

pub(crate) async fn metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    let Some(handle) = state.models.get(&name) else {
        return unknown_model(&name);
    };
    let s = handle.load();
    let inputs: Vec<Value> = s
        .spec
        .serving_schema
        .fields()
        .iter()
        .filter(|f| Some(&f.name) != s.spec.target.as_ref())
        .map(|f| json!({ "name": f.name, "datatype": datatype(f.ty), "shape": [-1], "optional": !f.required }))
        .collect();
    Json(json!({
        "name": s.spec.name,
        "versions": [s.version.to_string()],
        "platform": "eddy",
        "inputs": inputs,
        "outputs": [{ "name": "prediction", "datatype": "FP64", "shape": [-1] }],
    }))
    .into_response()
}

pub(crate) async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Response {
    match state.models.get(&name) {
        Some(_) => Json(json!({ "name": name, "ready": true })).into_response(),
        None => unknown_model(&name),
    }
}

#[derive(Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Vec<Value>,
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<Tensor>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    outputs: Option<Value>,
}

/// Rows of a request: each input tensor is one field, `shape` [N] or [N, 1].
fn rows_of(request: &InferRequest) -> Result<Vec<Map<String, Value>>, (String, String)> {
    let mut rows: Option<usize> = None;
    for (i, t) in request.inputs.iter().enumerate() {
        let field = format!("inputs[{i}]");
        let n = match t.shape.as_slice() {
            [n] | [n, 1] if *n >= 0 => *n as usize,
            other => return Err((field, format!("shape must be [N] or [N, 1], got {other:?}"))),
        };
        if t.data.len() != n {
            return Err((
                field,
                format!("shape says {n} values, data has {}", t.data.len()),
            ));
        }
        if !matches!(
            t.datatype.as_str(),
            "FP64" | "FP32" | "INT64" | "INT32" | "BOOL" | "BYTES"
        ) {
            return Err((field, format!("unsupported datatype {:?}", t.datatype)));
        }
        match rows {
            None => rows = Some(n),
            Some(m) if m != n => {
                return Err((field, format!("{n} rows, but earlier inputs have {m}")))
            }
            Some(_) => {}
        }
    }
    let n = rows.unwrap_or(0);
    let mut out = vec![Map::new(); n];
    for t in &request.inputs {
        for (row, value) in out.iter_mut().zip(&t.data) {
            row.insert(t.name.clone(), value.clone());
        }
    }
    Ok(out)
}

pub(crate) async fn infer(
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
    let request: InferRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("inputs"),
                format!("invalid infer request: {e}"),
            )
        }
    };
    let rows = match rows_of(&request) {
        Ok(rows) => rows,
        Err((field, message)) => return error(StatusCode::BAD_REQUEST, Some(&field), message),
    };
    if rows.is_empty() || rows.len() > state.max_instances {
        let message = format!(
            "between 1 and {} rows per request, got {}",
            state.max_instances,
            rows.len()
        );
        return error(StatusCode::BAD_REQUEST, Some("inputs"), message);
    }
    let raw: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap_or_default())
        .collect();
    let raw: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
    let snapshot = handle.load();
    match snapshot.predict_json(&raw) {
        Ok(predictions) => {
            // Numbers travel as FP64; class and cluster answers as their JSON text (BYTES).
            let numeric = predictions.iter().all(Value::is_number);
            let (datatype, data): (&str, Vec<Value>) = if numeric {
                ("FP64", predictions)
            } else {
                (
                    "BYTES",
                    predictions
                        .iter()
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                )
            };
            Json(json!({
                "model_name": snapshot.spec.name,
                "model_version": snapshot.version.to_string(),
                "id": request.id,
                "outputs": [{
                    "name": "prediction",
                    "datatype": datatype,
                    "shape": [data.len()],
                    "data": data,
                }],
            }))
            .into_response()
        }
        Err(e) => {
            let field = match &e.error.field {
                Some(f) => format!("inputs.{f}[{}]", e.index),
                None => format!("inputs[*][{}]", e.index),
            };
            error(StatusCode::BAD_REQUEST, Some(&field), e.to_string())
        }
    }
}
