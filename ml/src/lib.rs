//! Incremental learners and progressive metrics for eddy.
//!
//! The pieces and how they fit:
//!
//! * [`FeatureVec`] is the input every learner reads: a borrowed dense prefix plus sparse
//!   `(index, value)` pairs, so a hashed 2^22-wide model pays only for the active entries of an
//!   event.
//! * [`Learner`] is the online-learning trait: `predict_one`, `learn_one` and the
//!   progressive-validation step `predict_learn_one` (predict first, then learn), with batch forms
//!   over `ndarray` views.
//! * [`LinearModel`] implements it for linear regression ([`Loss::Squared`], [`Loss::Huber`],
//!   [`Loss::EpsilonInsensitive`]), logistic regression ([`Loss::Logistic`]) and a linear SVM
//!   ([`Loss::Hinge`]), trained by SGD with a step-size [`Schedule`] and lazily applied L2 decay,
//!   or by AdaGrad, Adam or FTRL-Proximal ([`Optimizer`]), with L1/L2, gradient clipping and event
//!   weights. Its hyperparameters follow linfa: [`LinearModel::params`] returns an [`SgdParams`]
//!   builder, `check()` turns it into [`SgdValidParams`], and only those `build` a model.
//! * [`SoftmaxModel`] is multiclass logistic regression over string labels added as they appear;
//!   each class is a linear predictor updated by the same code as [`LinearModel`].
//! * [`StreamingKMeans`] is online k-means with Spark's forgetting rule (decay factor or
//!   half-life, [`HalfLifeUnit`]), a linfa k-means++ warm start and re-seeding of dying clusters.
//! * [`PerKey`] keeps one model per key, cloned from a template, bounded by LRU expiry.
//! * [`AnyModel`] wraps every learner behind one `predict_learn_one(x, `[`Target`]`, weight)` that
//!   returns a [`Prediction`]; the runtime stores and checkpoints it.
//! * [`ProgressiveMetrics`] scores the predictions made before learning, over the whole stream and
//!   over a window of recent events, for each [`Task`] ([`metrics`] holds the metric name
//!   constants).
//!
//! Everything is `Send + Sync` and serde-serialisable, so a model or its metrics can be snapshotted
//! to an artifact and restored bit for bit. Errors are [`MlError`]; a rejected event never changes
//! a model.
//!
//! ```
//! use eddy_ml::{FeatureVec, Learner, LinearModel, Loss, ProgressiveMetrics, Task};
//! use ndarray::array;
//!
//! let params = LinearModel::params(Loss::Logistic).l2(1e-6).check()?;
//! let mut model = params.build(1 << 22);
//! let mut metrics = ProgressiveMetrics::new(Task::Binary, 1000);
//!
//! // Two dense features plus two hashed ones.
//! let dense = array![0.5, -1.2];
//! let x = FeatureVec::new(dense.view(), &[1_234, 4_000_000], &[1.0, 1.0]);
//! let p = model.predict_learn_one(&x, 1.0, 1.0)?;
//! metrics.update(1.0, p);
//!
//! assert_eq!(model.steps(), 1);
//! assert!(model.predict_one(&x) > p);
//! assert_eq!(metrics.count(), 1);
//! # Ok::<(), eddy_ml::MlError>(())
//! ```

mod any;
mod error;
mod kmeans;
mod learner;
mod linear;
mod loss;
pub mod metrics;
mod optim;
mod pages;
mod perkey;
mod prefetch;
#[cfg(test)]
mod testutil;

pub use any::{linear_prediction, AnyModel, Prediction, Target};
pub use error::{MlError, Result};
pub use kmeans::{HalfLifeUnit, KMeansParams, KMeansValidParams, StreamingKMeans};
pub use learner::{FeatureVec, Learner, PREFETCH_AHEAD};
pub use linear::{
    LinearModel, Loss, Optimizer, Schedule, SgdParams, SgdValidParams, SoftmaxModel, SoftmaxParams,
    SoftmaxValidParams,
};
pub use metrics::{MetricValues, ProgressiveMetrics, Task};
pub use perkey::PerKey;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn key_types_are_send_and_sync() {
        assert_send_sync::<LinearModel>();
        assert_send_sync::<ProgressiveMetrics>();
        assert_send_sync::<SgdValidParams>();
        assert_send_sync::<MlError>();
        assert_send_sync::<FeatureVec<'static>>();
        assert_send_sync::<SoftmaxModel>();
        assert_send_sync::<SoftmaxValidParams>();
        assert_send_sync::<StreamingKMeans>();
        assert_send_sync::<KMeansValidParams>();
        assert_send_sync::<PerKey<AnyModel>>();
        assert_send_sync::<AnyModel>();
        assert_send_sync::<Prediction>();
        assert_send_sync::<Target<'static>>();
        assert_send_sync::<Optimizer>();
    }
}
