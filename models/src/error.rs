//! Errors of the models crate.

use thiserror::Error;

/// What can go wrong while building, restoring or serving a model.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Features(#[from] eddy_features::FeatureError),
    #[error(transparent)]
    Ml(#[from] eddy_ml::MlError),
    #[error(
        "target field {field:?} is also used as a feature; a model must not see its own label"
    )]
    TargetIsFeature { field: String },
    #[error("model: a target field is required for this learner (only k-means can do without)")]
    MissingTarget,
    #[error("binding the HTTP server to {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("model artifact: {0}")]
    Artifact(String),
    #[error("handed-over per-key state: {0}")]
    Incompatible(String),
    #[error("model registry: {0}")]
    Registry(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
