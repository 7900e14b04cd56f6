//! The pipeline file: what the user writes (serde structs, unknown keys refused) and the checked
//! form the runtime runs ([`ValidConfig`]). `eddy validate` runs exactly [`load`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_features::FeatureConfig;
use eddy_models::{LearnerParams, ModelSpec};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Result, RuntimeError};
use crate::sink::SinksConfig;
use crate::source::SourceConfig;

/// The whole pipeline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub source: SourceConfig,
    #[serde(default)]
    pub features: Vec<FeatureConfig>,
    pub model: ModelConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointConfig>,
    #[serde(default)]
    pub serve: ServeConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::export::ExportConfig>,
    /// Average the model with the other workers of a consumer group (see `sync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::sync::SyncConfig>,
}

pub use crate::model_config::{
    HalfLifeUnitConfig, ModelConfig, ModelKind, OptimizerConfig, RegressionLoss, ScheduleKind,
};

fn default_keep() -> usize {
    3
}

/// `[checkpoint]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_events: Option<u64>,
    /// Defaults to 10 when neither interval is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// How many checkpoint files to keep.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Kafka: a directory all workers of the group share, where each checkpoint also writes
    /// the keyed state of every partition the worker holds, so that state moves with its
    /// partition in a rebalance (see `docs/kafka.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}
fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_trainer_nice() -> i32 {
    10
}
fn default_body() -> usize {
    1 << 20
}
fn default_instances() -> usize {
    10_000
}
fn default_publish() -> u64 {
    200
}

/// `[serve]`: the live model over HTTP while it trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_instances")]
    pub max_instances: usize,
    /// How often training publishes fresh parameters to the server.
    #[serde(default = "default_publish")]
    pub publish_interval_ms: u64,
    /// Nice value (0 to 19) of the source and trainer threads while serving, so requests run
    /// first on a busy machine; 0 keeps training at the server's priority.
    #[serde(default = "default_trainer_nice")]
    pub trainer_nice: i32,
    /// Runs the source and trainer threads in Linux's SCHED_IDLE class while serving instead
    /// (`trainer_nice` then does not apply): requests never wait behind training, and a
    /// saturated server can starve it.
    #[serde(default)]
    pub trainer_idle: bool,
    /// Serving strictly first: before each chunk, training waits until no prediction request
    /// has been in flight for this many milliseconds, for at most `max_training_pause_ms`.
    /// 0, the default, never waits: training then only yields through `trainer_nice` or
    /// `trainer_idle`, which on a small machine does not keep the tail latency low.
    #[serde(default)]
    pub pause_training_ms: u64,
    /// The longest training waits for a quiet moment before it learns one chunk anyway, so a
    /// saturated server slows training without stopping it (and a Kafka source keeps polling).
    /// Longer: a lower tail latency under load, less training.
    #[serde(default = "default_max_pause")]
    pub max_training_pause_ms: u64,
    /// While predictions are being served (one within the last 100 ms), training learns for at
    /// most this many microseconds and then rests for `training_rest_us`, so its CPU goes idle
    /// now and then; 0, the default, never rests. On a virtual machine whose host takes busy
    /// virtual CPUs away for milliseconds, this keeps the tail latency low at a small cost in
    /// training (see `models/src/demand.rs`).
    #[serde(default)]
    pub training_slice_us: u64,
    /// The rest after each `training_slice_us` of learning, in microseconds.
    #[serde(default = "default_training_rest")]
    pub training_rest_us: u64,
    /// Requests answered at once; more get 503 with Retry-After.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// Keys whose newest prediction `GET /v1/models/{name}/latest?key=K` answers (at least the
    /// most recent half of them are kept); 0 turns the endpoint's recording off.
    #[serde(default = "default_latest_keys")]
    pub latest_keys: usize,
    /// Bearer token for learn/promote/rollback; else the EDDY_ADMIN_TOKEN environment variable;
    /// with neither, those routes are closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Bearer token required on predict/infer; else EDDY_PREDICT_TOKEN; with neither, open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predict_token: Option<String>,
    /// HTTPS: PEM certificate chain and private key (both or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl ServeConfig {
    /// The server options, tokens resolved from the environment where the file names none.
    pub fn server_options(&self) -> eddy_models::server::ServerOptions {
        let env = |name: &str| std::env::var(name).ok().filter(|t| !t.is_empty());
        eddy_models::server::ServerOptions {
            addr: self.address,
            max_body_bytes: self.max_body_bytes,
            max_instances: self.max_instances,
            max_in_flight: self.max_in_flight,
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
            admin_token: self.admin_token.clone().or_else(|| env("EDDY_ADMIN_TOKEN")),
            predict_token: self
                .predict_token
                .clone()
                .or_else(|| env("EDDY_PREDICT_TOKEN")),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(eddy_models::server::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        }
    }
}

fn default_latest_keys() -> usize {
    eddy_models::LATEST_KEYS
}
fn default_max_pause() -> u64 {
    1000
}
fn default_training_rest() -> u64 {
    50
}
fn default_in_flight() -> usize {
    1024
}
fn default_timeout() -> u64 {
    10_000
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            enabled: true,
            address: default_address(),
            max_body_bytes: default_body(),
            max_instances: default_instances(),
            publish_interval_ms: default_publish(),
            trainer_nice: default_trainer_nice(),
            trainer_idle: false,
            pause_training_ms: 0,
            max_training_pause_ms: default_max_pause(),
            training_slice_us: 0,
            training_rest_us: default_training_rest(),
            latest_keys: default_latest_keys(),
            max_in_flight: default_in_flight(),
            request_timeout_ms: default_timeout(),
            admin_token: None,
            predict_token: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// A pipeline that passed every check.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    pub config: PipelineConfig,
    pub spec: Arc<ModelSpec>,
    pub learner: LearnerParams,
    /// Identifies the features + model sections; a checkpoint resumes only a matching pipeline.
    pub fingerprint: u64,
}

impl PipelineConfig {
    /// Every problem, each prefixed with its key path; the checked config when there is none.
    pub fn check(self) -> std::result::Result<ValidConfig, Vec<String>> {
        let mut problems = self.source.validate();
        for (i, f) in self.features.iter().enumerate() {
            problems.extend(f.validate(i));
        }
        let model_problems = self.model.validate();
        let learner_ok = model_problems.is_empty();
        problems.extend(model_problems);
        if let Some(c) = &self.checkpoint {
            if c.dir.as_os_str().is_empty() {
                problems.push("checkpoint.dir: empty".into());
            }
            if c.interval_events == Some(0) {
                problems.push("checkpoint.interval_events: must be >= 1, got 0".into());
            }
            if let Some(s) = c.interval_seconds {
                if !(s.is_finite() && s > 0.0) {
                    problems.push(format!(
                        "checkpoint.interval_seconds: must be finite and > 0, got {s}"
                    ));
                }
            }
            if c.keep == 0 {
                problems.push("checkpoint.keep: must be >= 1, got 0".into());
            }
            let kafka = matches!(self.source, SourceConfig::Kafka(_));
            if c.shared_dir.is_some() && !kafka {
                problems.push(
                    "checkpoint.shared_dir: only a Kafka source hands partitions over; remove it"
                        .into(),
                );
            }
        }
        if self.serve.max_body_bytes == 0 {
            problems.push("serve.max_body_bytes: must be >= 1, got 0".into());
        }
        if self.serve.max_instances == 0 {
            problems.push("serve.max_instances: must be >= 1, got 0".into());
        }
        if let Some(e) = &self.export {
            if e.registry.as_os_str().is_empty() {
                problems.push("export.registry: empty".into());
            }
            if e.interval_events == Some(0) {
                problems.push("export.interval_events: must be >= 1, got 0".into());
            }
            if let Some(s) = e.interval_seconds {
                if !(s.is_finite() && s > 0.0) {
                    problems.push(format!(
                        "export.interval_seconds: must be finite and > 0, got {s}"
                    ));
                }
            }
        }
        if let Some(sync) = &self.sync {
            problems.extend(sync.validate(&self.model));
        }
        if self.serve.tls_cert.is_some() != self.serve.tls_key.is_some() {
            problems.push("serve.tls_cert, serve.tls_key: give both or neither".into());
        }
        if self.serve.pause_training_ms > 1000 {
            problems.push(format!(
                "serve.pause_training_ms: must be at most 1000, got {}",
                self.serve.pause_training_ms
            ));
        }
        if !(1..=60_000).contains(&self.serve.max_training_pause_ms) {
            problems.push(format!(
                "serve.max_training_pause_ms: must be 1 to 60000, got {}",
                self.serve.max_training_pause_ms
            ));
        }
        let slice = self.serve.training_slice_us;
        if slice != 0 && !(20..=1_000_000).contains(&slice) {
            problems.push(format!(
                "serve.training_slice_us: must be 0 (off) or 20 to 1000000, got {slice}"
            ));
        }
        if !(10..=100_000).contains(&self.serve.training_rest_us) {
            problems.push(format!(
                "serve.training_rest_us: must be 10 to 100000, got {}",
                self.serve.training_rest_us
            ));
        }
        if self.serve.max_in_flight == 0 {
            problems.push("serve.max_in_flight: must be >= 1, got 0".into());
        }
        if self.serve.request_timeout_ms == 0 {
            problems.push("serve.request_timeout_ms: must be >= 1, got 0".into());
        }
        if self.serve.publish_interval_ms == 0 {
            problems.push("serve.publish_interval_ms: must be >= 1, got 0".into());
        }
        if !(0..=19).contains(&self.serve.trainer_nice) {
            problems.push(format!(
                "serve.trainer_nice: must be 0 to 19, got {}",
                self.serve.trainer_nice
            ));
        }
        let learner = learner_ok
            .then(|| self.model.learner_params().ok())
            .flatten();
        let spec = ModelSpec::new(
            &self.model.name,
            &self.features,
            self.model.target.as_deref(),
            self.model.kind.task(),
            self.model.key_field.as_deref(),
        )
        .map_err(|e| problems.push(format!("features/model: {e}")))
        .ok();
        match (spec, learner) {
            (Some(spec), Some(learner)) if problems.is_empty() => {
                let identity = serde_json::to_vec(&(&self.features, &self.model))
                    .expect("config structs always serialise to JSON");
                Ok(ValidConfig {
                    fingerprint: xxh3_64(&identity),
                    spec: Arc::new(spec),
                    learner,
                    config: self,
                })
            }
            _ => Err(problems),
        }
    }

    /// The pipeline as TOML, as `--print-config` shows it.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config structs always serialise to TOML")
    }
}

/// Parses TOML text; errors name the key path and what was expected.
pub fn parse(text: &str, origin: &str) -> Result<PipelineConfig> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.trim().replace('\n', "\n  ");
        let problem = if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        };
        RuntimeError::Config {
            path: origin.to_owned(),
            problems: vec![problem],
        }
    })
}

/// Reads, parses and checks a pipeline file.
pub fn load(path: &Path) -> Result<ValidConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io("reading", path, e))?;
    let origin = path.display().to_string();
    parse(&text, &origin)?
        .check()
        .map_err(|problems| RuntimeError::Config {
            path: origin,
            problems,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[source]
type = "generator"
kind = "logistic"
features = 3
events = 100

[[features]]
type = "standard_scaler"
fields = ["x0", "x1", "x2"]

[model]
type = "logistic"
target = "y"

[model.optimizer]
type = "sgd"
learning_rate = 0.05
schedule = "inverse_scaling"

[checkpoint]
dir = "ckpt"
interval_events = 50

[serve]
address = "127.0.0.1:0"
"#;

    #[test]
    fn a_good_file_checks() {
        let config = parse(GOOD, "good.toml").expect("parses");
        let valid = config.check().expect("valid");
        assert_eq!(valid.spec.target.as_deref(), Some("y"));
        assert_eq!(valid.config.serve.address.port(), 0);
    }

    #[test]
    fn kafka_topics_and_the_shared_dir_are_checked() {
        let kafka = |topics: &str| {
            let source = format!(
                "[source]\ntype = \"kafka\"\nbrokers = \"b:9092\"\ngroup = \"g\"\n{topics}\n"
            );
            let text = GOOD.replace(
                "[source]\ntype = \"generator\"\nkind = \"logistic\"\nfeatures = 3\nevents = 100\n",
                &source,
            );
            parse(&text, "k.toml").expect("parses").check()
        };
        let valid = kafka("topics = [\"a\", \"b\"]").expect("a topic list");
        let SourceConfig::Kafka(k) = &valid.config.source else {
            panic!("a Kafka source");
        };
        assert_eq!(k.topic_list(), ["a", "b"]);
        for (topics, problem) in [
            ("", "source.topic: empty"),
            ("topic = \"a\"\ntopics = [\"b\"]", "either topic or topics"),
            ("topics = [\"a\", \"a\"]", "listed twice"),
        ] {
            let problems = kafka(topics).expect_err("refused");
            assert!(problems.iter().any(|p| p.contains(problem)), "{problems:?}");
        }
        let text = GOOD.replace(
            "interval_events = 50",
            "interval_events = 50\nshared_dir = \"s\"",
        );
        let problems = parse(&text, "s.toml")
            .expect("parses")
            .check()
            .expect_err("refused");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("checkpoint.shared_dir")),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let text = GOOD.replace(
            "interval_events = 50",
            "interval_events = 50\ninterval_evnts = 3",
        );
        let err = parse(&text, "bad.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(err.starts_with("bad.toml: checkpoint"), "{err}");
        assert!(err.contains("interval_evnts"), "{err}");
    }

    #[test]
    fn wrong_types_name_what_was_expected() {
        let text = GOOD.replace("learning_rate = 0.05", "learning_rate = \"fast\"");
        let err = parse(&text, "bad.toml")
            .expect_err("wrong type")
            .to_string();
        assert!(err.contains("model.optimizer"), "{err}");
        assert!(
            err.contains("learning_rate") || err.contains("f64"),
            "{err}"
        );
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let text = GOOD
            .replace("learning_rate = 0.05", "learning_rate = -1.0")
            .replace("interval_events = 50", "interval_events = 0")
            .replace("target = \"y\"", "target = \"x0\"");
        let problems = parse(&text, "bad.toml")
            .expect("parses")
            .check()
            .expect_err("invalid");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("checkpoint.interval_events")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("learning_rate")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("x0")), "{problems:?}");
    }

    #[test]
    fn training_pauses_are_bounded() {
        let text = GOOD.replace(
            "[serve]\n",
            "[serve]\npause_training_ms = 5000\nmax_training_pause_ms = 0\n\
             training_slice_us = 5\ntraining_rest_us = 0\n",
        );
        let problems = parse(&text, "bad.toml")
            .expect("parses")
            .check()
            .expect_err("invalid");
        for key in [
            "serve.pause_training_ms",
            "serve.max_training_pause_ms",
            "serve.training_slice_us",
            "serve.training_rest_us",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(key)), "{problems:?}");
        }
        let text = GOOD.replace(
            "[serve]\n",
            "[serve]\npause_training_ms = 2\nmax_training_pause_ms = 50\n\
             training_slice_us = 200\n",
        );
        let config = parse(&text, "good.toml").expect("parses");
        let serve = &config.serve;
        assert_eq!(
            (
                serve.pause_training_ms,
                serve.max_training_pause_ms,
                serve.training_slice_us,
                serve.training_rest_us
            ),
            (2, 50, 200, 50)
        );
        config.check().expect("valid");
    }

    #[test]
    fn printed_config_parses_back_to_the_same() {
        let config = parse(GOOD, "good.toml").expect("parses");
        let again = parse(&config.to_toml(), "printed").expect("printed config parses");
        assert_eq!(config, again);
    }

    #[test]
    fn shipped_example_pipelines_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("examples dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read");
                parse(&text, &path.display().to_string())
                    .expect("parses")
                    .check()
                    .unwrap_or_else(|p| panic!("{}: {p:?}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no example pipelines found in {}", dir.display());
    }
}
