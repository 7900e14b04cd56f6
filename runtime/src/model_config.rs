//! `[model]`: which learner, its optimizer and hyper-parameters, the target, per-key models.

use eddy_ml::{
    HalfLifeUnit, LinearModel, Loss, Optimizer, Schedule, SgdParams, StreamingKMeans, Task,
};
use eddy_models::LearnerParams;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression for a 0/1 target.
    Logistic,
    /// Linear regression (squared, Huber or epsilon-insensitive loss) for a numeric target.
    Linear,
    /// Softmax regression for class labels (strings or integers; unseen ones are added).
    Softmax,
    /// A linear SVM (hinge loss) for a 0/1 target.
    Svm,
    /// Streaming k-means; needs no target.
    Kmeans,
}

impl ModelKind {
    pub fn task(self) -> Task {
        match self {
            ModelKind::Logistic | ModelKind::Svm => Task::Binary,
            ModelKind::Linear => Task::Regression,
            ModelKind::Softmax => Task::Multiclass,
            ModelKind::Kmeans => Task::Clustering,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    InverseScaling,
    Optimal,
}

/// `[model.optimizer]`. Unset values take the learner's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learning_rate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<ScheduleKind>,
        /// Exponent of the inverse-scaling schedule (default 0.5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        power_t: Option<f64>,
    },
    Adagrad {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learning_rate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eps: Option<f64>,
    },
    Adam {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learning_rate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beta1: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beta2: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eps: Option<f64>,
    },
    /// FTRL-Proximal; regularise with the model's `l1` and `l2`.
    Ftrl {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alpha: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        beta: Option<f64>,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Sgd {
            learning_rate: None,
            schedule: None,
            power_t: None,
        }
    }
}

impl OptimizerConfig {
    /// The optimizer by its command-line name.
    pub fn named(name: &str, learning_rate: Option<f64>) -> Option<OptimizerConfig> {
        Some(match name {
            "sgd" => OptimizerConfig::Sgd {
                learning_rate,
                schedule: None,
                power_t: None,
            },
            "adagrad" => OptimizerConfig::Adagrad {
                learning_rate,
                eps: None,
            },
            "adam" => OptimizerConfig::Adam {
                learning_rate,
                beta1: None,
                beta2: None,
                eps: None,
            },
            "ftrl" => OptimizerConfig::Ftrl {
                alpha: learning_rate,
                beta: None,
            },
            _ => return None,
        })
    }
}

/// `[model] loss` for linear regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    Squared,
    Huber,
    EpsilonInsensitive,
}

/// Adaptive optimizers scale each coordinate's step themselves and take a constant base rate:
/// 0.1 for AdaGrad (River's default); 0.01 for Adam, where the logistic SGD default of 0.5 made
/// the click test in `tests/learners.rs` diverge to a log loss of 1.8.
const ADAGRAD_LEARNING_RATE: f64 = 0.1;
const ADAM_LEARNING_RATE: f64 = 0.01;

fn default_model_name() -> String {
    "default".to_owned()
}
fn default_window() -> usize {
    1000
}
fn default_max_models() -> usize {
    10_000
}

/// `[model]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(rename = "type")]
    pub kind: ModelKind,
    /// The field to predict; for k-means an optional reference label scored by the adjusted Rand
    /// index (never a feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The name the model is served under.
    #[serde(default = "default_model_name")]
    pub name: String,
    /// A string field copied into each prediction as its key; with `per_key`, which model learns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// One model per `key_field` value, created on the key's first event.
    #[serde(default)]
    pub per_key: bool,
    /// With `per_key`: the least recently used models past this many expire.
    #[serde(default = "default_max_models")]
    pub max_models: usize,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Linear regression's loss (default squared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<RegressionLoss>,
    /// Huber's threshold or the epsilon-insensitive margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_gradient: Option<f64>,
    /// Multiplier of the learning rate for the intercept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept_learning_rate: Option<f64>,
    /// k-means: number of clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// k-means: forget old points with this half-life (in `half_life_unit`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life: Option<f64>,
    /// k-means: `events` (default) or `batches` (Spark's unit; then results depend on the
    /// micro-batch size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_unit: Option<HalfLifeUnitConfig>,
    /// k-means: warm-start the centres with linfa's k-means++ on the first N events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<usize>,
    /// k-means: re-seed a cluster that received no point for this many events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseed_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Events in the recent window of the progressive metrics.
    #[serde(default = "default_window")]
    pub metrics_window: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HalfLifeUnitConfig {
    Events,
    Batches,
}

impl ModelConfig {
    pub fn new(kind: ModelKind, target: Option<&str>) -> ModelConfig {
        ModelConfig {
            kind,
            target: target.map(str::to_owned),
            name: default_model_name(),
            key_field: None,
            per_key: false,
            max_models: default_max_models(),
            optimizer: OptimizerConfig::default(),
            loss: None,
            epsilon: None,
            l1: None,
            l2: None,
            clip_gradient: None,
            intercept_learning_rate: None,
            k: None,
            half_life: None,
            half_life_unit: None,
            warm_start: None,
            reseed_after: None,
            seed: None,
            metrics_window: default_window(),
        }
    }

    fn loss(&self) -> Result<Loss, String> {
        let epsilon = self.epsilon;
        Ok(match (self.kind, self.loss) {
            (ModelKind::Logistic | ModelKind::Softmax, None) => Loss::Logistic,
            (ModelKind::Svm, None) => Loss::Hinge,
            (ModelKind::Linear, None | Some(RegressionLoss::Squared)) => Loss::Squared,
            (ModelKind::Linear, Some(RegressionLoss::Huber)) => Loss::Huber {
                delta: epsilon.unwrap_or(1.0),
            },
            (ModelKind::Linear, Some(RegressionLoss::EpsilonInsensitive)) => {
                Loss::EpsilonInsensitive {
                    epsilon: epsilon.unwrap_or(0.1),
                }
            }
            (kind, Some(loss)) => {
                return Err(format!(
                    "model.loss: {loss:?} applies to type = \"linear\", not {kind:?}"
                ))
            }
            (ModelKind::Kmeans, None) => Loss::Squared,
        })
    }

    /// The linear-family builder with every configured option applied.
    fn sgd(&self) -> Result<SgdParams, String> {
        let mut p = LinearModel::params(self.loss()?);
        match &self.optimizer {
            OptimizerConfig::Sgd {
                learning_rate,
                schedule,
                power_t,
            } => {
                if let Some(eta) = learning_rate {
                    p = p.learning_rate(*eta);
                }
                match schedule {
                    Some(ScheduleKind::Constant) => p = p.schedule(Schedule::Constant),
                    Some(ScheduleKind::Optimal) => p = p.schedule(Schedule::Optimal),
                    Some(ScheduleKind::InverseScaling) => {
                        p = p.schedule(Schedule::InverseScaling {
                            power_t: power_t.unwrap_or(0.5),
                        })
                    }
                    None if power_t.is_some() => {
                        return Err(
                            "model.optimizer.power_t: only with schedule = \"inverse_scaling\""
                                .into(),
                        )
                    }
                    None => {}
                }
            }
            OptimizerConfig::Adagrad { learning_rate, eps } => {
                let Optimizer::AdaGrad { eps: default_eps } = Optimizer::adagrad() else {
                    unreachable!()
                };
                p = p
                    .optimizer(Optimizer::AdaGrad {
                        eps: eps.unwrap_or(default_eps),
                    })
                    .schedule(Schedule::Constant)
                    .learning_rate(learning_rate.unwrap_or(ADAGRAD_LEARNING_RATE));
            }
            OptimizerConfig::Adam {
                learning_rate,
                beta1,
                beta2,
                eps,
            } => {
                let Optimizer::Adam {
                    beta1: b1,
                    beta2: b2,
                    eps: e,
                } = Optimizer::adam()
                else {
                    unreachable!()
                };
                p = p
                    .optimizer(Optimizer::Adam {
                        beta1: beta1.unwrap_or(b1),
                        beta2: beta2.unwrap_or(b2),
                        eps: eps.unwrap_or(e),
                    })
                    .schedule(Schedule::Constant)
                    .learning_rate(learning_rate.unwrap_or(ADAM_LEARNING_RATE));
            }
            OptimizerConfig::Ftrl { alpha, beta } => {
                let Optimizer::Ftrl { alpha: a, beta: b } = Optimizer::ftrl() else {
                    unreachable!()
                };
                p = p.optimizer(Optimizer::Ftrl {
                    alpha: alpha.unwrap_or(a),
                    beta: beta.unwrap_or(b),
                });
            }
        }
        if let Some(l1) = self.l1 {
            p = p.l1(l1);
        }
        if let Some(l2) = self.l2 {
            p = p.l2(l2);
        }
        if let Some(c) = self.clip_gradient {
            p = p.clip_gradient(c);
        }
        if let Some(f) = self.intercept_learning_rate {
            p = p.intercept_learning_rate(f);
        }
        Ok(p)
    }

    /// The checked learner parameters.
    pub fn learner_params(&self) -> Result<LearnerParams, String> {
        let model = |e: eddy_ml::MlError| format!("model: {e}");
        match self.kind {
            ModelKind::Logistic | ModelKind::Linear | ModelKind::Svm => {
                Ok(LearnerParams::Linear(self.sgd()?.check().map_err(model)?))
            }
            ModelKind::Softmax => {
                let softmax = eddy_ml::SoftmaxParams::from(self.sgd()?);
                Ok(LearnerParams::Softmax(softmax.check().map_err(model)?))
            }
            ModelKind::Kmeans => {
                let k = self
                    .k
                    .ok_or("model.k: k-means needs the number of clusters")?;
                let mut p = StreamingKMeans::params(k);
                if let Some(h) = self.half_life {
                    let unit = match self.half_life_unit {
                        Some(HalfLifeUnitConfig::Batches) => HalfLifeUnit::Batches,
                        _ => HalfLifeUnit::Events,
                    };
                    p = p.half_life(h, unit);
                }
                if let Some(n) = self.warm_start {
                    p = p.warm_start(n);
                }
                if let Some(n) = self.reseed_after {
                    p = p.reseed_after(n);
                }
                if let Some(seed) = self.seed {
                    p = p.seed(seed);
                }
                Ok(LearnerParams::KMeans(p.check().map_err(model)?))
            }
        }
    }

    /// Problems beyond what the learner's own checks find.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.target, self.kind) {
            (None, kind) if kind != ModelKind::Kmeans => {
                problems.push("model.target: required for this model type".into())
            }
            (Some(t), _) if t.trim().is_empty() => problems.push("model.target: empty".into()),
            _ => {}
        }
        if self.name.trim().is_empty() || self.name.contains('/') {
            problems.push(format!(
                "model.name: must be non-empty without '/', got {:?}",
                self.name
            ));
        }
        if self.metrics_window == 0 {
            problems.push("model.metrics_window: must be >= 1, got 0".into());
        }
        if self.per_key && self.key_field.is_none() {
            problems.push("model.per_key: needs model.key_field".into());
        }
        if self.per_key && self.max_models == 0 {
            problems.push("model.max_models: must be >= 1, got 0".into());
        }
        if self.kind != ModelKind::Kmeans {
            for (key, set) in [
                ("k", self.k.is_some()),
                ("half_life", self.half_life.is_some()),
                ("warm_start", self.warm_start.is_some()),
                ("reseed_after", self.reseed_after.is_some()),
            ] {
                if set {
                    problems.push(format!("model.{key}: only for type = \"kmeans\""));
                }
            }
        }
        if let Err(p) = self.learner_params() {
            problems.push(p);
        }
        problems
    }
}
