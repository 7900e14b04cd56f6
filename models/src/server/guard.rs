//! Request guards: bearer tokens, a bound on requests in flight, and a per-request timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::handlers::error;
use super::AppState;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Open,
    Predict,
    Admin,
}

fn access(method: &Method, path: &str) -> Access {
    // The latest predictions are predictions: the predict token guards them too.
    if path.ends_with("/latest") {
        return Access::Predict;
    }
    if *method != Method::POST {
        return Access::Open;
    }
    if path.ends_with("/learn") || path.ends_with("/promote") || path.ends_with("/rollback") {
        Access::Admin
    } else if path.ends_with("/predict") || path.ends_with("/infer") {
        Access::Predict
    } else {
        Access::Open
    }
}

/// Compares in time that depends only on the lengths, so a wrong token leaks nothing of the
/// right one but its length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorised(request: &Request, token: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn unauthorised() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        Some("authorization"),
        "a valid bearer token is required",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let access = access(request.method(), request.uri().path());
    let needed = match access {
        Access::Open => None,
        Access::Predict => state.limits.predict_token.as_deref(),
        Access::Admin => Some(state.limits.admin_token.as_deref().unwrap_or("")),
    };
    if let Some(token) = needed {
        // An admin route with no token configured is closed, not open.
        if token.is_empty() || !authorised(&request, token) {
            return unauthorised();
        }
    }
    // A prediction is demand from the moment it is accepted, refused for load or not.
    let _demand = match (access, &state.demand) {
        (Access::Predict, Some(demand)) => Some(demand.begin()),
        _ => None,
    };
    let Ok(_permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!(
                "more than {} requests in flight; retry shortly",
                state.limits.max_in_flight
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => timed_out(state.limits.request_timeout),
    }
}

fn timed_out(after: Duration) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        format!("the request took longer than {} ms", after.as_millis()),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn routes_map_to_their_access() {
        assert_eq!(access(&Method::POST, "/v1/models/m/learn"), Access::Admin);
        assert_eq!(access(&Method::POST, "/v1/models/m/promote"), Access::Admin);
        assert_eq!(
            access(&Method::POST, "/v1/models/m/predict"),
            Access::Predict
        );
        assert_eq!(access(&Method::POST, "/v2/models/m/infer"), Access::Predict);
        assert_eq!(access(&Method::GET, "/v1/models/m"), Access::Open);
        assert_eq!(access(&Method::GET, "/v1/models/m/latest"), Access::Predict);
    }
}
