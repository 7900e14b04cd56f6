//! HTTP request counters and latency histograms, registered beside the pipeline's metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::AppState;

pub const HTTP_REQUESTS: &str = "eddy_http_requests";
pub const HTTP_LATENCY: &str = "eddy_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "eddy_http_requests_in_flight";
pub const SERVED_VERSION: &str = "eddy_served_model_version";
pub const SERVED_AGE: &str = "eddy_served_model_age_seconds";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModelLabels {
    pub(crate) model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

/// The server's own metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<PathLabels, Histogram>,
    in_flight: Gauge,
    pub(crate) served_version: Family<ModelLabels, Gauge>,
    pub(crate) served_age: Family<ModelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> HttpMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        // 20 µs .. ~5 s: predictions sit at the low end, a stalled client at the high end.
        let latency: Family<PathLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(2e-5, 2.0, 18)));
        let in_flight = Gauge::default();
        let served_version = Family::<ModelLabels, Gauge>::default();
        let served_age = Family::<ModelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            SERVED_VERSION,
            "Version of the snapshot each model answers from",
            served_version.clone(),
        );
        registry.register(
            SERVED_AGE,
            "Seconds since that snapshot was taken",
            served_age.clone(),
        );
        registry.register(
            HTTP_REQUESTS,
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            HTTP_LATENCY,
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            HTTP_IN_FLIGHT,
            "HTTP requests being answered",
            in_flight.clone(),
        );
        HttpMetrics {
            requests,
            latency,
            in_flight,
            served_version,
            served_age,
        }
    }
}

/// Middleware: counts and times every request by its route template (not the raw path, whose
/// model names would make label cardinality unbounded).
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    // Static label values: no allocation per request, and a bounded label set whatever clients send.
    let path = matched.map_or("unmatched", |m| route_label(m.as_str()));
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    };
    let start = Instant::now();
    state.http.in_flight.inc();
    let response = next.run(request).await;
    state.http.in_flight.dec();
    let status = response.status().as_u16();
    state
        .http
        .requests
        .get_or_create(&RequestLabels {
            path,
            method,
            status,
        })
        .inc();
    state
        .http
        .latency
        .get_or_create(&PathLabels { path })
        .observe(start.elapsed().as_secs_f64());
    response
}

/// The route template as a static label value (every route the router knows).
fn route_label(template: &str) -> &'static str {
    super::ROUTES
        .iter()
        .find(|r| **r == template)
        .copied()
        .unwrap_or("other")
}
