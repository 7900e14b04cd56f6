//! The crate's error type: every rejected input or parameter names the offending value.

/// Errors returned by `eddy-ml`. Marked `#[non_exhaustive]` because later learners and optimizers
/// add variants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// A hyperparameter is outside its documented domain, e.g. "learning_rate must be finite and >
    /// 0, got -0.5".
    #[error("{name} must be {expected}, got {value}")]
    InvalidParam {
        name: &'static str,
        expected: &'static str,
        value: f64,
    },
    /// The L2 decay factor `1 - eta * l2` would not stay positive at the largest step size of the
    /// schedule.
    #[error("l2 * step size must be < 1 so the decay factor stays positive, got l2 = {l2} with a first step size of {eta}")]
    L2TooLarge { l2: f64, eta: f64 },
    /// An input (`y`, `weight`) or a derived quantity (`margin`) is NaN or infinite; the model was
    /// not changed.
    #[error("{what} must be finite, got {value}")]
    NonFinite { what: &'static str, value: f64 },
    /// A sparse index does not address a model coordinate; the model was not changed.
    #[error("feature index {index} is out of range for a model of dimension {dim}")]
    IndexOutOfRange { index: u32, dim: usize },
    /// The dense prefix has more coordinates than the model.
    #[error("dense part has {len} coordinates but the model has dimension {dim}")]
    DimensionMismatch { len: usize, dim: usize },
    /// A sparse vector with a different number of indices and values.
    #[error("sparse part has {indices} indices but {values} values")]
    SparseLengthMismatch { indices: usize, values: usize },
    /// A batch whose target length differs from its number of rows.
    #[error("x has {rows} rows but y has {len} values")]
    ShapeMismatch { rows: usize, len: usize },
    /// A label outside the loss's domain, e.g. y = -1 for the logistic loss (which expects y in [0,
    /// 1]).
    #[error("label y must be in the loss's domain ([0, 1] for logistic, 0 or 1 for hinge, a known class for softmax), got {y}")]
    InvalidLabel { y: f64 },
    /// A negative event weight would turn a descent step into an ascent step.
    #[error("event weight must be finite and >= 0, got {weight}")]
    InvalidWeight { weight: f64 },
    /// An input coordinate beyond the range a learner accepts (k-means bounds `|x_j|` so squared
    /// distances cannot overflow); the model was not changed.
    #[error("{what} must be within +-{limit}, got {value}")]
    OutOfRange {
        what: &'static str,
        value: f64,
        limit: f64,
    },
    /// An input form this learner cannot use, e.g. sparse entries for k-means.
    #[error("unsupported input: {what}")]
    Unsupported { what: &'static str },
    /// A deserialised model or parameter set whose state breaks an invariant (e.g. a corrupted
    /// artifact).
    #[error("invalid state: {what}, got {value}")]
    InvalidState { what: &'static str, value: f64 },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, MlError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_and_name_the_value() {
        let e = MlError::InvalidParam {
            name: "learning_rate",
            expected: "finite and > 0",
            value: -0.5,
        };
        assert_eq!(
            e.to_string(),
            "learning_rate must be finite and > 0, got -0.5"
        );
        let e = MlError::NonFinite {
            what: "y",
            value: f64::NAN,
        };
        assert_eq!(e.to_string(), "y must be finite, got NaN");
        let e = MlError::IndexOutOfRange { index: 7, dim: 4 };
        assert_eq!(
            e.to_string(),
            "feature index 7 is out of range for a model of dimension 4"
        );
    }
}
