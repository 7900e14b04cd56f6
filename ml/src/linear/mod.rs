//! `LinearModel`: linear regression (squared, Huber, epsilon-insensitive), logistic regression and
//! a linear SVM (hinge), trained by SGD, AdaGrad, Adam or FTRL on dense and sparse input.

mod aligned;
mod core;
mod lanes;
mod params;
pub(crate) mod softmax;

use ndarray::Array1;
use serde::{Deserialize, Serialize};

pub(crate) use self::core::LinearCore;
use crate::error::{MlError, Result};
use crate::learner::{FeatureVec, Learner};
pub use crate::loss::Loss;
pub use crate::optim::{Optimizer, Schedule};
pub use params::{SgdParams, SgdValidParams};
pub use softmax::{SoftmaxModel, SoftmaxParams, SoftmaxValidParams};

/// A linear model `p = link(w . x + b)` updated one event at a time.
///
/// Under [`Optimizer::Sgd`] each accepted event with step size `eta` (from the schedule) does
/// `w <- (1 - eta * l2) * w - eta * weight * clip(dloss/dmargin) * x` and the same step, times
/// `intercept_learning_rate` and without decay, on the intercept. The decay is applied lazily
/// through a shared scale, so an event costs O(active entries) even for a 2^22-wide hashed model.
/// The adaptive optimizers (AdaGrad, Adam, FTRL) update only the active coordinates and their
/// per-coordinate state; see [`Optimizer`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLinearModel")]
pub struct LinearModel {
    params: SgdValidParams,
    core: LinearCore,
    /// Events learned so far; the next event is step `t + 1`.
    t: u64,
}

impl LinearModel {
    /// Default hyperparameters for `loss`, to adjust and `check()`.
    pub fn params(loss: Loss) -> SgdParams {
        SgdParams::new(loss)
    }

    pub(crate) fn from_params(params: SgdValidParams, dim: usize) -> Self {
        Self {
            core: LinearCore::new(dim, params.optimizer()),
            params,
            t: 0,
        }
    }

    /// Model averaging: replaces the parameters (weights, intercept, optimizer state) by the
    /// weighted mean `(w_self * self + w_other * other) / (w_self + w_other)`. Both models must
    /// have the same dimension and optimizer; the step count stays this model's.
    pub fn merge_weighted(&mut self, other: &LinearModel, w_self: f64, w_other: f64) -> Result<()> {
        let total = w_self + w_other;
        if !(w_self >= 0.0 && w_other >= 0.0 && total > 0.0 && total.is_finite()) {
            return Err(MlError::InvalidWeight {
                weight: if w_self >= 0.0 { w_other } else { w_self },
            });
        }
        if self.params.optimizer() != other.params.optimizer() {
            return Err(MlError::Unsupported {
                what: "averaging models with different optimizers",
            });
        }
        if !self
            .core
            .blend(&other.core, w_self / total, w_other / total)
        {
            return Err(MlError::DimensionMismatch {
                len: other.dim(),
                dim: self.dim(),
            });
        }
        Ok(())
    }

    /// `self = a * self + b * other` over the weights, intercept and optimizer state, for any
    /// real `a`, `b`: with `(1, -1)` it gives the change between two states of one model, with
    /// `(1, 1)` it adds such a change (how workers exchange their updates). Same dimension and
    /// optimizer only; the step count stays this model's.
    pub fn combine(&mut self, other: &LinearModel, a: f64, b: f64) -> Result<()> {
        if !(a.is_finite() && b.is_finite()) {
            return Err(MlError::NonFinite {
                what: "combination coefficient",
                value: if a.is_finite() { b } else { a },
            });
        }
        if self.params.optimizer() != other.params.optimizer() {
            return Err(MlError::Unsupported {
                what: "combining models with different optimizers",
            });
        }
        if !self.core.blend(&other.core, a, b) {
            return Err(MlError::DimensionMismatch {
                len: other.dim(),
                dim: self.dim(),
            });
        }
        Ok(())
    }

    /// Effective weights (scale applied); O(dim).
    pub fn weights(&self) -> Array1<f64> {
        self.core.weights_array()
    }

    /// Effective weight of coordinate `j` in O(1), `None` if `j >= dim`.
    pub fn weight(&self, j: usize) -> Option<f64> {
        self.core.weight(j)
    }

    pub fn intercept(&self) -> f64 {
        self.core.intercept
    }

    /// Coordinate updates applied so far: the sum over learned events of their active entries
    /// (dense length + sparse entries). Shows that a sparse event costs only its entries.
    pub fn coordinate_updates(&self) -> u64 {
        self.core.updates()
    }

    /// Number of events learned.
    pub fn steps(&self) -> u64 {
        self.t
    }

    pub fn loss(&self) -> Loss {
        self.params.loss()
    }

    pub fn hyperparams(&self) -> &SgdValidParams {
        &self.params
    }

    /// `w . x + b`, and whether every entry of `x` addressed a coordinate.
    #[inline]
    fn margin(&self, x: &FeatureVec<'_>) -> (f64, bool) {
        self.core.margin(x)
    }

    /// Validates the event, then applies one SGD step. `margin`, `in_range` and `p` must come from
    /// `self.margin(x)` and `predict(margin)`. Every check happens before the first write, so an
    /// `Err` leaves the model untouched.
    #[inline]
    fn step(
        &mut self,
        x: &FeatureVec<'_>,
        y: f64,
        weight: f64,
        (margin, in_range): (f64, bool),
        p: f64,
    ) -> Result<()> {
        self.check_event(x, y, weight, margin, in_range)?;
        let (t, eta, g) = self.gradient(y, margin, p);
        self.core.update(&self.params, t, eta, x, g, weight);
        self.t = t;
        Ok(())
    }

    /// The checks of [`step`](Self::step), as one predictable branch on the hot path.
    #[inline]
    fn check_event(
        &self,
        x: &FeatureVec<'_>,
        y: f64,
        weight: f64,
        margin: f64,
        in_range: bool,
    ) -> Result<()> {
        // A finite margin also proves every active x_j is finite (inf * w or 0 * inf would have
        // leaked into it). `0 <= weight <= f64::MAX` is "finite and >= 0" (NaN fails both).
        let ok = y.is_finite()
            & (0.0..=f64::MAX).contains(&weight)
            & self.params.loss().accepts_label(y)
            & in_range
            & margin.is_finite();
        if ok {
            Ok(())
        } else {
            self.reject(x, y, weight, margin, in_range)
        }
    }

    /// The first failed check of an event, in the documented order.
    #[cold]
    #[inline(never)]
    fn reject(
        &self,
        x: &FeatureVec<'_>,
        y: f64,
        weight: f64,
        margin: f64,
        in_range: bool,
    ) -> Result<()> {
        if !y.is_finite() {
            return Err(MlError::NonFinite {
                what: "y",
                value: y,
            });
        }
        if !weight.is_finite() {
            return Err(MlError::NonFinite {
                what: "weight",
                value: weight,
            });
        }
        if weight < 0.0 {
            return Err(MlError::InvalidWeight { weight });
        }
        if !self.params.loss().accepts_label(y) {
            return Err(MlError::InvalidLabel { y });
        }
        if !in_range {
            x.check_shape(self.core.dim())?;
        }
        if !margin.is_finite() {
            return Err(MlError::NonFinite {
                what: "margin",
                value: margin,
            });
        }
        Ok(())
    }

    /// Step number, step size and clipped margin gradient of the next (validated) event.
    #[inline]
    fn gradient(&self, y: f64, margin: f64, p: f64) -> (u64, f64, f64) {
        let params = &self.params;
        let t = self.t + 1;
        // eta depends only on t, so it is computed off the margin -> gradient -> update dependency
        // chain that bounds the event rate
        let eta = params.eta(t);
        let clip = params.clip_gradient();
        let g = params
            .loss()
            .gradient_given(margin, p, y)
            .clamp(-clip, clip);
        (t, eta, g)
    }

    /// [`predict_learn_one`](Learner::predict_learn_one) on the general path: any optimizer,
    /// penalty and input shape. Out of line, so the plain dense path inlines into callers.
    #[inline(never)]
    fn predict_learn_general(&mut self, x: &FeatureVec<'_>, y: f64, weight: f64) -> Result<f64> {
        let m = self.margin(x);
        let p = self.params.loss().predict(m.0);
        self.step(x, y, weight, m, p)?;
        Ok(p)
    }

    /// [`predict_learn_one`](Learner::predict_learn_one) of a
    /// [`plain_dense`](LinearCore::plain_dense) event: the same arithmetic as the general path,
    /// minus the branches and multiplications by 1 it cannot need.
    #[inline]
    fn predict_learn_plain(
        &mut self,
        x: &FeatureVec<'_>,
        xs: &[f64],
        y: f64,
        weight: f64,
    ) -> Result<f64> {
        let margin = self.core.plain_dense_margin(xs);
        let p = self.params.loss().predict(margin);
        self.check_event(x, y, weight, margin, true)?;
        let (t, eta, g) = self.gradient(y, margin, p);
        self.core.plain_dense_sgd(&self.params, eta, xs, g, weight);
        self.t = t;
        Ok(p)
    }
}

impl Learner for LinearModel {
    fn dim(&self) -> usize {
        self.core.dim()
    }

    #[inline]
    fn predict_one(&self, x: &FeatureVec<'_>) -> f64 {
        self.params.loss().predict(self.margin(x).0)
    }

    #[inline]
    fn learn_one(&mut self, x: &FeatureVec<'_>, y: f64, weight: f64) -> Result<()> {
        // the prediction is part of the update (the gradient needs it), so this is no extra work
        self.predict_learn_one(x, y, weight).map(|_| ())
    }

    /// Hints the weights (and optimizer state) of `x`'s sparse entries; see
    /// [`Learner::prefetch`].
    #[inline]
    fn prefetch(&self, x: &FeatureVec<'_>) {
        self.core.prefetch(x);
    }

    /// Computes the margin once for both the prediction and the update.
    #[inline]
    fn predict_learn_one(&mut self, x: &FeatureVec<'_>, y: f64, weight: f64) -> Result<f64> {
        match self.core.plain_dense(&self.params, x) {
            Some(xs) => self.predict_learn_plain(x, xs, y, weight),
            None => self.predict_learn_general(x, y, weight),
        }
    }
}

/// The serialised form of [`LinearModel`], checked on load (params and the core check
/// themselves).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinearModel {
    params: SgdValidParams,
    core: LinearCore,
    t: u64,
}

impl TryFrom<RawLinearModel> for LinearModel {
    type Error = MlError;

    fn try_from(r: RawLinearModel) -> Result<Self> {
        r.core.check_optimizer(r.params.optimizer())?;
        Ok(Self {
            params: r.params,
            core: r.core,
            t: r.t,
        })
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
pub(crate) mod optimizer_tests;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod plain_tests;
#[cfg(test)]
mod tests;
