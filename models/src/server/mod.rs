//! The HTTP inference server: JSON prediction API, model metadata, health and Prometheus metrics.
//!
//! Every handler reads the newest snapshot through [`ModelHandle::load`], so answers never wait on
//! training. Bodies are bounded, every refusal is a JSON error naming the offending field. The
//! live dashboard (`/`, polling `/v1/status`) is in [`dashboard`].

mod admin;
pub mod dashboard;
mod guard;
mod handlers;
mod metrics;
mod samples;
mod v2;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::net::TcpListener;

use crate::dead_letters::RecentDeadLetters;
use crate::error::{ModelError, Result};
use crate::latest::LatestPredictions;
use crate::snapshot::ModelHandle;

pub use admin::{LearnReply, LearnRequest, LearnSender};
pub use metrics::HttpMetrics;

/// Limits and address of the server. Binds loopback unless told otherwise.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub addr: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most instances in one prediction request; more get 400.
    pub max_instances: usize,
    /// Requests answered at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    /// A request that takes longer gets 503.
    pub request_timeout: Duration,
    /// Required as `Authorization: Bearer ...` on learn, promote and rollback (closed when unset).
    pub admin_token: Option<String>,
    /// Required on predict and infer when set.
    pub predict_token: Option<String>,
    /// Serve HTTPS (rustls) with this PEM certificate chain and private key.
    pub tls: Option<TlsFiles>,
}

/// PEM files for HTTPS.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            max_instances: 10_000,
            max_in_flight: 1024,
            request_timeout: Duration::from_secs(10),
            admin_token: None,
            predict_token: None,
            tls: None,
        }
    }
}

/// What the server answers for, beyond the options.
#[derive(Default)]
pub struct Served {
    pub models: Vec<ModelHandle>,
    /// Live trainers that accept `POST /v1/models/{name}/learn`, by model name.
    pub learn: BTreeMap<String, LearnSender>,
    /// The registry promote and rollback act on (`eddy serve --registry`).
    pub registry: Option<crate::Registry>,
    /// The newest dead letters of the trainer, shown on the dashboard.
    pub dead_letters: Option<RecentDeadLetters>,
    /// The newest prediction per key of live trainers, by model name (`/v1/models/{name}/latest`).
    pub latest: BTreeMap<String, LatestPredictions>,
    /// Records prediction requests for a trainer that pauses while they arrive.
    pub demand: Option<crate::Demand>,
}

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) models: BTreeMap<String, ModelHandle>,
    pub(crate) learn: BTreeMap<String, LearnSender>,
    pub(crate) registry: Option<crate::Registry>,
    pub(crate) metrics: MetricsRegistry,
    pub(crate) http: HttpMetrics,
    pub(crate) max_instances: usize,
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    pub(crate) limits: ServerOptions,
    pub(crate) dead_letters: Option<RecentDeadLetters>,
    pub(crate) latest: BTreeMap<String, LatestPredictions>,
    pub(crate) demand: Option<crate::Demand>,
    /// When the server was bound: the dashboard's clock.
    pub(crate) started: Instant,
}

/// A server whose socket is bound (so its address is known) but which does not answer yet.
pub struct BoundServer {
    listener: TcpListener,
    router: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

impl BoundServer {
    /// Binds `options.addr` and prepares the routes for `models`. Pipeline metrics already in
    /// `registry` are exported on `/metrics` beside the server's own.
    pub async fn bind(
        options: &ServerOptions,
        served: Served,
        mut registry: MetricsRegistry,
    ) -> Result<BoundServer> {
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| ModelError::Bind {
                    addr: options.addr.to_string(),
                    source,
                })?;
        let http = HttpMetrics::register(&mut registry);
        let state = Arc::new(AppState {
            models: served
                .models
                .into_iter()
                .map(|m| (m.name().to_owned(), m))
                .collect(),
            learn: served.learn,
            registry: served.registry,
            metrics: registry,
            http,
            max_instances: options.max_instances,
            in_flight: Arc::new(tokio::sync::Semaphore::new(options.max_in_flight.max(1))),
            limits: options.clone(),
            dead_letters: served.dead_letters,
            latest: served.latest,
            demand: served.demand,
            started: Instant::now(),
        });
        // Certificates are read at bind time, so a bad file fails the start, not the first request.
        let tls = match &options.tls {
            Some(files) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| ModelError::Io {
                        path: files.cert.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(BoundServer {
            listener,
            router: router(state, options.max_body_bytes),
            tls,
        })
    }

    /// The bound address (the real port when the configured one was 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(ModelError::Serve)
    }

    /// Answers requests until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Some(tls) = self.tls else {
            return axum::serve(self.listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ModelError::Serve);
        };
        let listener = self.listener.into_std().map_err(ModelError::Serve)?;
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(Duration::from_secs(5)));
        });
        axum_server::from_tcp_rustls(listener, tls)
            .map_err(ModelError::Serve)?
            .handle(handle)
            .serve(self.router.into_make_service())
            .await
            .map_err(ModelError::Serve)
    }
}

/// Every route template, in the order the router declares them (also the metric label values).
pub(crate) const ROUTES: &[&str] = &[
    "/",
    "/dashboard.js",
    "/dashboard.css",
    "/v1/status",
    "/healthz",
    "/metrics",
    "/v1/models",
    "/v1/models/{name}",
    "/v1/models/{name}/predict",
    "/v1/models/{name}/latest",
    "/v1/models/{name}/learn",
    "/v1/models/{name}/promote",
    "/v1/models/{name}/rollback",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/infer",
];

fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/v1/status", get(dashboard::status_json))
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{name}", get(handlers::model_metadata))
        .route("/v1/models/{name}/predict", post(handlers::predict))
        .route("/v1/models/{name}/latest", get(handlers::latest))
        .route("/v1/models/{name}/learn", post(admin::learn))
        .route("/v1/models/{name}/promote", post(admin::promote))
        .route("/v1/models/{name}/rollback", post(admin::rollback))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/{name}", get(v2::metadata))
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/infer", post(v2::infer))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
