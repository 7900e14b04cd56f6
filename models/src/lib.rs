//! eddy-models: the unit that training produces and serving answers from.
//!
//! [`TrainedModel`] bundles what a pipeline learns (feature state, learner parameters, progressive
//! metrics) and is what checkpoints persist. [`ModelSpec`] is the fixed part (name, schema, target,
//! task). Training publishes immutable [`ServingSnapshot`]s into a [`ModelHandle`], a lock-free
//! pointer swap, and the HTTP server in [`server`] reads the newest snapshot on every request: a
//! request never waits on training and training never waits on a request. Serving decodes request
//! instances with the same `BatchBuilder` and transforms them with the same `FeatureSet` code as
//! training, so there is no separate serving path to drift from the training one. The same server
//! answers a live dashboard at `/` from the metrics registry, the model handles and the
//! [`RecentDeadLetters`] the trainer fills, and `/v1/models/{name}/latest` from the
//! [`LatestPredictions`] it records.
//!
//! ```
//! use std::sync::Arc;
//! use eddy_features::{FeatureConfig, Field, FieldType, Schema};
//! use eddy_ml::{LinearModel, Loss, Task};
//! use eddy_models::{LearnerParams, ModelHandle, ModelSpec, TrainedModel};
//!
//! let features = vec![FeatureConfig::StandardScaler { fields: vec!["x".into()] }];
//! let learner = LinearModel::params(Loss::Logistic).check().expect("default params are valid");
//! let spec = ModelSpec::new("default", &features, Some("y"), Task::Binary, None).expect("valid spec");
//! let model = TrainedModel::new(&spec, &LearnerParams::Linear(learner), None, 1000).expect("fields resolve");
//! let handle = ModelHandle::new(model.snapshot(Arc::new(spec)));
//! let answer = handle.load().predict_json(&[br#"{"x": 1.5}"#.as_slice()]).expect("valid instance");
//! assert_eq!(answer.len(), 1);
//! ```

pub mod artifact;
mod dead_letters;
mod demand;
mod error;
mod keyed;
mod latest;
mod model;
pub mod registry;
pub mod server;
mod snapshot;
mod spec;

pub use artifact::{Artifact, ArtifactMeta, ArtifactSource};
pub use dead_letters::{RecentDeadLetter, RecentDeadLetters, RECENT_DEAD_LETTERS};
pub use demand::{Demand, InFlight, Pacer};
pub use error::{ModelError, Result};
pub use keyed::KeyedPart;
pub use latest::{LatestPrediction, LatestPredictions, LATEST_KEYS};
pub use model::{prediction_json, LearnerParams, Learners, RowOutcome, TrainedModel};
pub use registry::Registry;
pub use snapshot::{row_json, row_object, InstanceError, ModelHandle, ServingSnapshot};
pub use spec::ModelSpec;
