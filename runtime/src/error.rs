//! Runtime errors: each says whose fault it is and whether retrying may help.

use std::path::PathBuf;

use thiserror::Error;

/// Who has to act when an error happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The configuration or the input is wrong: fix it, retrying will not help.
    User,
    /// Something outside eddy failed (disk, network): retrying may help.
    External,
    /// A bug in eddy.
    Internal,
}

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{path}: {problems}", problems = .problems.join("\n  "))]
    Config { path: String, problems: Vec<String> },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no input files match {0:?}")]
    NoInput(String),
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Features(#[from] eddy_features::FeatureError),
    #[error(transparent)]
    Model(#[from] eddy_models::ModelError),
    #[error(transparent)]
    Ml(#[from] eddy_ml::MlError),
    #[error("kafka: {message}")]
    Kafka { message: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            RuntimeError::Io { .. }
            | RuntimeError::Kafka { .. }
            | RuntimeError::Model(eddy_models::ModelError::Serve(_)) => Fault::External,
            RuntimeError::Internal(_) => Fault::Internal,
            _ => Fault::User,
        }
    }

    /// Whether running the same thing again may succeed.
    pub fn retryable(&self) -> bool {
        self.fault() == Fault::External
    }
}

/// Result with [`RuntimeError`].
pub type Result<T> = std::result::Result<T, RuntimeError>;
