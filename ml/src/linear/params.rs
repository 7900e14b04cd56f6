//! SGD hyperparameters: the unchecked `SgdParams` builder and the checked `SgdValidParams`.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::linear::LinearModel;
use crate::loss::Loss;
use crate::optim::{Optimizer, Schedule};

/// Default step-size rule per loss, chosen by measuring progressive quality on seeded synthetic
/// streams: 100k events, 10 standard-normal features, known weights (|w| = 3.8, and the same scaled
/// by 0.25), means over three seeds. Reproduce with
/// `cargo run --release -p eddy-ml --example default_schedule`.
///
/// * logistic: `inverse_scaling(power_t = 0.5)` from `0.5`. Progressive log loss 0.3045 (weak
///   signal: 0.6025) against 0.3080 (0.6064) for constant 0.01, 0.3115 (0.6183) for 0.03 and 0.3315
///   (0.6677) for 0.1: the large early steps learn fast, and the 1/sqrt(t) decay removes the noise
///   a constant rate keeps forever.
/// * squared (and the robust regression losses): constant `0.01`, the intercept at ten times that
///   rate. Real targets sit far from zero (River's TrumpApproval near 45, scikit-learn's diabetes
///   near 150) and only the intercept can carry that offset; a decaying rate or an intercept at
///   the weights' rate spends hundreds of events getting there. Progressive MAE on
///   `bench/quality` (TrumpApproval / Friedman 20k / diabetes): 0.853 / 2.150 / 49.5, against
///   3.80 / 2.19 / 81.9 for scikit-learn's `inverse_scaling(0.25)` from 0.01 and 1.93 / 2.13 /
///   59.4 for constant 0.01 with the intercept at 1x (River's `LinearRegression` default gets
///   1.31 / 2.18 / 53.9). The weights' step stays at 0.01 because squared-loss SGD diverges
///   while `eta * |x|^2 > 2`: 0.01 is stable up to about 200 standardised features.
fn default_step(loss: Loss) -> (f64, Schedule) {
    match loss {
        // the hinge gradient is bounded like the logistic one; not separately measured
        Loss::Logistic | Loss::Hinge => (0.5, Schedule::InverseScaling { power_t: 0.5 }),
        // robust regression losses have gradients bounded by the squared loss's; same stability
        // argument
        Loss::Squared | Loss::Huber { .. } | Loss::EpsilonInsensitive { .. } => {
            (0.01, Schedule::Constant)
        }
    }
}

/// The intercept's rate as a multiple of the weights' rate, per loss (see [`default_step`]).
fn default_intercept_rate(loss: Loss) -> f64 {
    match loss {
        Loss::Logistic | Loss::Hinge => 1.0,
        Loss::Squared | Loss::Huber { .. } | Loss::EpsilonInsensitive { .. } => 10.0,
    }
}

/// Checked hyperparameters of [`LinearModel`]; only these build a model. Deserialising re-runs the
/// checks, so a config or artifact cannot smuggle in an invalid value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSgdParams", into = "RawSgdParams")]
pub struct SgdValidParams {
    loss: Loss,
    learning_rate: f64,
    schedule: Schedule,
    l2: f64,
    fit_intercept: bool,
    intercept_learning_rate: f64,
    clip_gradient: f64,
    optimizer: Optimizer,
    l1: f64,
    /// Derived from `l2` by `check()`, so not serialised.
    optimal_t0: f64,
}

impl SgdValidParams {
    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// Base step size `eta0` (unused by [`Schedule::Optimal`]).
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    pub fn l2(&self) -> f64 {
        self.l2
    }

    pub fn fit_intercept(&self) -> bool {
        self.fit_intercept
    }

    pub fn intercept_learning_rate(&self) -> f64 {
        self.intercept_learning_rate
    }

    pub fn clip_gradient(&self) -> f64 {
        self.clip_gradient
    }

    pub fn optimizer(&self) -> Optimizer {
        self.optimizer
    }

    pub fn l1(&self) -> f64 {
        self.l1
    }

    /// A fresh model with `dim` zero weights and a zero intercept.
    pub fn build(&self, dim: usize) -> LinearModel {
        LinearModel::from_params(self.clone(), dim)
    }

    /// Step size of event `t >= 1`.
    #[inline]
    pub(crate) fn eta(&self, t: u64) -> f64 {
        self.schedule
            .eta(self.learning_rate, self.l2, self.optimal_t0, t)
    }
}

/// Consuming builder for [`SgdValidParams`], linfa style: `LinearModel::params(loss)` gives the
/// defaults, each setter replaces one value, and [`check`](Self::check) validates them all.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdParams(SgdValidParams);

impl SgdParams {
    /// Defaults for `loss`: see the step-size table at the top of this file; `l2 = 0`, the
    /// intercept's rate per [`default_intercept_rate`], and gradients clipped at `1e6`.
    pub fn new(loss: Loss) -> Self {
        let (learning_rate, schedule) = default_step(loss);
        Self(SgdValidParams {
            loss,
            learning_rate,
            schedule,
            l2: 0.0,
            fit_intercept: true,
            intercept_learning_rate: default_intercept_rate(loss),
            clip_gradient: 1e6,
            optimizer: Optimizer::Sgd,
            l1: 0.0,
            optimal_t0: 0.0,
        })
    }

    /// How gradients become weight changes (default [`Optimizer::Sgd`]).
    pub fn optimizer(mut self, o: Optimizer) -> Self {
        self.0.optimizer = o;
        self
    }

    /// L1 penalty `l1 * |w|_1` on the weights; finite and >= 0, default 0. SGD, AdaGrad and Adam
    /// apply it as a proximal (soft-threshold) step on the active coordinates; FTRL uses it as
    /// lambda_1, which yields exact zeros.
    pub fn l1(mut self, l1: f64) -> Self {
        self.0.l1 = l1;
        self
    }

    /// Base step size `eta0`; finite and > 0.
    pub fn learning_rate(mut self, eta0: f64) -> Self {
        self.0.learning_rate = eta0;
        self
    }

    /// How the step size decays with the step count.
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.0.schedule = s;
        self
    }

    /// L2 penalty `l2 / 2 * |w|^2` on the weights (not the intercept); finite and >= 0, and
    /// `l2 * eta < 1` at the first (largest) step so the decay factor `1 - eta * l2` stays
    /// positive.
    pub fn l2(mut self, l2: f64) -> Self {
        self.0.l2 = l2;
        self
    }

    /// Whether to learn an intercept (default true).
    pub fn fit_intercept(mut self, yes: bool) -> Self {
        self.0.fit_intercept = yes;
        self
    }

    /// Multiplier of eta for the intercept; finite and >= 0, default 1.0.
    pub fn intercept_learning_rate(mut self, factor: f64) -> Self {
        self.0.intercept_learning_rate = factor;
        self
    }

    /// `|d loss / d margin|` is clipped to `c`; finite and > 0, default 1e6. Bounds the damage of
    /// an outlier target under the squared loss (the logistic gradient is already within [-1, 1]).
    pub fn clip_gradient(mut self, c: f64) -> Self {
        self.0.clip_gradient = c;
        self
    }

    /// Validates every value; the first violation is returned as a typed error naming it.
    pub fn check(self) -> Result<SgdValidParams> {
        let mut p = self.0;
        p.loss.check()?;
        p.optimizer.check()?;
        if !(p.l1.is_finite() && p.l1 >= 0.0) {
            return Err(invalid("l1", "finite and >= 0", p.l1));
        }
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0) {
            return Err(invalid("learning_rate", "finite and > 0", p.learning_rate));
        }
        if let Schedule::InverseScaling { power_t } = p.schedule {
            if !(power_t.is_finite() && power_t >= 0.0) {
                return Err(invalid("power_t", "finite and >= 0", power_t));
            }
        }
        if !(p.l2.is_finite() && p.l2 >= 0.0) {
            return Err(invalid("l2", "finite and >= 0", p.l2));
        }
        if p.schedule == Schedule::Optimal {
            if p.l2 <= 0.0 {
                return Err(invalid("l2", "> 0 with the optimal schedule", p.l2));
            }
            p.optimal_t0 = Schedule::optimal_t0(p.l2);
        }
        // Every schedule is non-increasing in t, so the first step is the largest. Computing it
        // exactly as the model will means floating-point rounding cannot sneak a non-positive decay
        // factor past this check.
        let first_eta = p.eta(1);
        // only SGD decays every weight by 1 - eta * l2; the adaptive optimizers add l2 * w to the
        // gradient of active coordinates instead
        let decays = p.optimizer == Optimizer::Sgd;
        if !first_eta.is_finite() || (decays && first_eta * p.l2 >= 1.0) {
            return Err(MlError::L2TooLarge {
                l2: p.l2,
                eta: first_eta,
            });
        }
        if !(p.intercept_learning_rate.is_finite() && p.intercept_learning_rate >= 0.0) {
            return Err(invalid(
                "intercept_learning_rate",
                "finite and >= 0",
                p.intercept_learning_rate,
            ));
        }
        if !(p.clip_gradient.is_finite() && p.clip_gradient > 0.0) {
            return Err(invalid("clip_gradient", "finite and > 0", p.clip_gradient));
        }
        Ok(p)
    }
}

impl From<SgdValidParams> for SgdParams {
    fn from(p: SgdValidParams) -> Self {
        Self(p)
    }
}

fn invalid(name: &'static str, expected: &'static str, value: f64) -> MlError {
    MlError::InvalidParam {
        name,
        expected,
        value,
    }
}

/// The serialised form of [`SgdValidParams`]: what a user may write, before `check()`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSgdParams {
    loss: Loss,
    learning_rate: f64,
    schedule: Schedule,
    l2: f64,
    fit_intercept: bool,
    intercept_learning_rate: f64,
    clip_gradient: f64,
    #[serde(default = "sgd")]
    optimizer: Optimizer,
    #[serde(default)]
    l1: f64,
}

fn sgd() -> Optimizer {
    Optimizer::Sgd
}

impl TryFrom<RawSgdParams> for SgdValidParams {
    type Error = MlError;

    fn try_from(r: RawSgdParams) -> Result<Self> {
        SgdParams::new(r.loss)
            .learning_rate(r.learning_rate)
            .schedule(r.schedule)
            .l2(r.l2)
            .fit_intercept(r.fit_intercept)
            .intercept_learning_rate(r.intercept_learning_rate)
            .clip_gradient(r.clip_gradient)
            .optimizer(r.optimizer)
            .l1(r.l1)
            .check()
    }
}

impl From<SgdValidParams> for RawSgdParams {
    fn from(p: SgdValidParams) -> Self {
        Self {
            loss: p.loss,
            learning_rate: p.learning_rate,
            schedule: p.schedule,
            l2: p.l2,
            fit_intercept: p.fit_intercept,
            intercept_learning_rate: p.intercept_learning_rate,
            clip_gradient: p.clip_gradient,
            optimizer: p.optimizer,
            l1: p.l1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: SgdParams) -> String {
        p.check().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        for loss in [Loss::Logistic, Loss::Squared] {
            let p = SgdParams::new(loss).check().unwrap();
            assert_eq!(p.loss(), loss);
            assert_eq!(p.l2(), 0.0);
            assert!(p.fit_intercept());
            assert_eq!(p.clip_gradient(), 1e6);
        }
    }

    #[test]
    fn every_violation_names_the_value() {
        let p = || SgdParams::new(Loss::Logistic);
        assert_eq!(
            err(p().learning_rate(-0.5)),
            "learning_rate must be finite and > 0, got -0.5"
        );
        assert_eq!(
            err(p().learning_rate(f64::NAN)),
            "learning_rate must be finite and > 0, got NaN"
        );
        assert_eq!(err(p().l2(-1.0)), "l2 must be finite and >= 0, got -1");
        assert_eq!(
            err(p().schedule(Schedule::InverseScaling { power_t: -1.0 })),
            "power_t must be finite and >= 0, got -1"
        );
        assert_eq!(
            err(p().schedule(Schedule::Optimal)),
            "l2 must be > 0 with the optimal schedule, got 0"
        );
        assert!(matches!(
            p().schedule(Schedule::Constant).learning_rate(0.1).l2(10.0).check(),
            Err(MlError::L2TooLarge { l2, eta }) if l2 == 10.0 && eta == 0.1
        ));
        assert!(p()
            .schedule(Schedule::Constant)
            .learning_rate(0.1)
            .l2(9.99)
            .check()
            .is_ok());
        assert!(matches!(
            p().schedule(Schedule::Optimal).l2(1.0).check(),
            Err(MlError::L2TooLarge { .. })
        ));
        assert!(p().schedule(Schedule::Optimal).l2(0.5).check().is_ok());
        assert_eq!(
            err(p().intercept_learning_rate(-1.0)),
            "intercept_learning_rate must be finite and >= 0, got -1"
        );
        assert_eq!(
            err(p().clip_gradient(0.0)),
            "clip_gradient must be finite and > 0, got 0"
        );
        assert_eq!(
            err(p().clip_gradient(f64::INFINITY)),
            "clip_gradient must be finite and > 0, got inf"
        );
    }

    #[test]
    fn deserialising_re_runs_the_checks() {
        let p = SgdParams::new(Loss::Squared)
            .schedule(Schedule::Optimal)
            .l2(1e-4)
            .check()
            .unwrap();
        let bytes = postcard::to_stdvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<SgdValidParams>(&bytes).unwrap(), p);

        let json = r#"{"loss":"logistic","learning_rate":-1.0,"schedule":{"type":"constant"},"l2":0.0,
            "fit_intercept":true,"intercept_learning_rate":1.0,"clip_gradient":1.0}"#;
        let e = serde_json::from_str::<SgdValidParams>(json).unwrap_err();
        assert!(
            e.to_string()
                .contains("learning_rate must be finite and > 0, got -1"),
            "{e}"
        );
        let unknown = json
            .replace("-1.0", "1.0")
            .replace("\"l2\"", "\"l3\":0.0,\"l2\"");
        assert!(serde_json::from_str::<SgdValidParams>(&unknown).is_err());
    }
}
