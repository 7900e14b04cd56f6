//! `SoftmaxModel`: multiclass logistic regression, one `LinearCore` per class, with class labels
//! added as they appear.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::learner::FeatureVec;
use crate::linear::{LinearCore, Loss, Optimizer, Schedule, SgdParams, SgdValidParams};

/// Checked hyperparameters of [`SoftmaxModel`]: the same step sizes, optimizers and penalties as
/// [`SgdValidParams`] (its loss is always the logistic one, whose default schedule
/// `0.5 / sqrt(t)` the softmax shares). Serialises as an `SgdValidParams` with `loss = "logistic"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SgdValidParams", into = "SgdValidParams")]
pub struct SoftmaxValidParams(SgdValidParams);

impl SoftmaxValidParams {
    /// The shared linear hyperparameters.
    pub fn linear(&self) -> &SgdValidParams {
        &self.0
    }

    /// A model over `dim` input coordinates that knows no class yet.
    pub fn build(&self, dim: usize) -> SoftmaxModel {
        SoftmaxModel {
            params: self.clone(),
            dim,
            classes: Vec::new(),
            cores: Vec::new(),
            t: 0,
        }
    }
}

impl TryFrom<SgdValidParams> for SoftmaxValidParams {
    type Error = MlError;

    fn try_from(p: SgdValidParams) -> Result<Self> {
        if p.loss() != Loss::Logistic {
            return Err(MlError::InvalidState {
                what: "softmax params must use the logistic loss",
                value: 0.0,
            });
        }
        Ok(Self(p))
    }
}

impl From<SoftmaxValidParams> for SgdValidParams {
    fn from(p: SoftmaxValidParams) -> Self {
        p.0
    }
}

/// Consuming builder for [`SoftmaxValidParams`]; each setter means what it does on
/// [`SgdParams`].
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxParams(SgdParams);

impl From<SgdParams> for SoftmaxParams {
    /// Every option of a linear builder (its loss must be logistic) for a softmax model.
    fn from(linear: SgdParams) -> Self {
        SoftmaxParams(linear)
    }
}

impl SoftmaxParams {
    pub fn learning_rate(self, eta0: f64) -> Self {
        Self(self.0.learning_rate(eta0))
    }
    pub fn schedule(self, s: Schedule) -> Self {
        Self(self.0.schedule(s))
    }
    pub fn optimizer(self, o: Optimizer) -> Self {
        Self(self.0.optimizer(o))
    }
    pub fn l1(self, l1: f64) -> Self {
        Self(self.0.l1(l1))
    }
    pub fn l2(self, l2: f64) -> Self {
        Self(self.0.l2(l2))
    }
    pub fn fit_intercept(self, yes: bool) -> Self {
        Self(self.0.fit_intercept(yes))
    }
    pub fn intercept_learning_rate(self, f: f64) -> Self {
        Self(self.0.intercept_learning_rate(f))
    }
    pub fn clip_gradient(self, c: f64) -> Self {
        Self(self.0.clip_gradient(c))
    }
    /// Validates every value, as [`SgdParams::check`].
    pub fn check(self) -> Result<SoftmaxValidParams> {
        self.0.check().map(SoftmaxValidParams)
    }
}

/// Softmax (multinomial logistic) regression: `P(k | x) = exp(m_k) / sum_j exp(m_j)` with one
/// linear margin `m_k = w_k . x + b_k` per class.
///
/// Classes are strings (integers are given as their decimal string) and are added on first sight
/// by [`class_index`](Self::class_index); a new class starts with zero weights. Each event's
/// gradient `p_k - [k = y]` goes through the same update code as [`LinearModel`](crate::LinearModel),
/// once per class. Probabilities use log-sum-exp, so no margin overflows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSoftmax")]
pub struct SoftmaxModel {
    params: SoftmaxValidParams,
    dim: usize,
    classes: Vec<String>,
    cores: Vec<LinearCore>,
    t: u64,
}

impl SoftmaxModel {
    /// Default hyperparameters (those of logistic regression), to adjust and `check()`.
    pub fn params() -> SoftmaxParams {
        SoftmaxParams(SgdParams::new(Loss::Logistic))
    }

    /// Index of `label`, adding it as a new class (zero weights) if unseen. O(classes).
    pub fn class_index(&mut self, label: &str) -> usize {
        if let Some(k) = self.find_class(label) {
            return k;
        }
        self.classes.push(label.to_owned());
        self.cores
            .push(LinearCore::new(self.dim, self.params.0.optimizer()));
        self.classes.len() - 1
    }

    /// Index of `label` if it has been seen.
    pub fn find_class(&self, label: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == label)
    }

    /// Class labels in index order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Events learned.
    pub fn steps(&self) -> u64 {
        self.t
    }

    pub fn hyperparams(&self) -> &SoftmaxValidParams {
        &self.params
    }

    /// Effective weight of coordinate `j` for class `k`.
    pub fn weight(&self, k: usize, j: usize) -> Option<f64> {
        self.cores.get(k).and_then(|c| c.weight(j))
    }

    /// Intercept of class `k`.
    pub fn intercept(&self, k: usize) -> Option<f64> {
        self.cores.get(k).map(|c| c.intercept)
    }

    /// Coordinate updates applied, summed over classes.
    pub fn coordinate_updates(&self) -> u64 {
        self.cores.iter().map(LinearCore::updates).sum()
    }

    /// A hint that `x` will be learned soon: starts loading the weights of its sparse entries in
    /// every class (see [`Learner::prefetch`](crate::Learner::prefetch)). Changes nothing.
    #[inline]
    pub fn prefetch(&self, x: &FeatureVec<'_>) {
        for core in &self.cores {
            core.prefetch(x);
        }
    }

    /// `P(class k | x)` over [`classes`](Self::classes); empty before the first class. Entries
    /// outside the model contribute nothing; a non-finite margin gives the uniform distribution.
    pub fn predict_proba(&self, x: &FeatureVec<'_>) -> Vec<f64> {
        let mut m: Vec<f64> = self.cores.iter().map(|c| c.margin(x).0).collect();
        if m.iter().all(|v| v.is_finite()) {
            softmax_in_place(&mut m);
        } else {
            let u = 1.0 / m.len() as f64;
            m.iter_mut().for_each(|v| *v = u);
        }
        m
    }

    /// The most probable class index (the first on ties); `None` before the first class.
    pub fn predict_class(&self, x: &FeatureVec<'_>) -> Option<usize> {
        argmax(&self.predict_proba(x))
    }

    /// Learns one weighted event of class index `class` (from [`class_index`](Self::class_index)).
    /// Rejects an unknown class, a bad weight, an out-of-range entry or a non-finite margin without
    /// changing the model.
    pub fn learn_one(&mut self, x: &FeatureVec<'_>, class: usize, weight: f64) -> Result<()> {
        self.predict_learn_one(x, class, weight).map(|_| ())
    }

    /// The probabilities before learning (progressive validation), then learns. Bit-identical to
    /// `predict_proba` followed by `learn_one`.
    pub fn predict_learn_one(
        &mut self,
        x: &FeatureVec<'_>,
        class: usize,
        weight: f64,
    ) -> Result<Vec<f64>> {
        if class >= self.classes.len() {
            return Err(MlError::InvalidLabel { y: class as f64 });
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
        x.check_shape(self.dim)?;
        let mut p = Vec::with_capacity(self.cores.len());
        for c in &self.cores {
            let m = c.margin(x).0;
            if !m.is_finite() {
                return Err(MlError::NonFinite {
                    what: "margin",
                    value: m,
                });
            }
            p.push(m);
        }
        softmax_in_place(&mut p);
        let params = &self.params.0;
        let t = self.t + 1;
        let eta = params.eta(t);
        let clip = params.clip_gradient();
        for (k, (core, &pk)) in self.cores.iter_mut().zip(&p).enumerate() {
            let y = if k == class { 1.0 } else { 0.0 };
            let g = (pk - y).clamp(-clip, clip);
            core.update(params, t, eta, x, g, weight);
        }
        self.t = t;
        Ok(p)
    }

    /// Class probabilities for each dense row; columns follow [`classes`](Self::classes).
    pub fn predict_proba_many(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        let k = self.classes.len();
        let mut out = Array2::zeros((x.nrows(), k));
        for (row, mut o) in x.rows().into_iter().zip(out.rows_mut()) {
            let p = self.predict_proba(&FeatureVec::dense(row));
            o.iter_mut().zip(p).for_each(|(o, p)| *o = p);
        }
        out
    }

    /// Learns the dense rows in order with unit weights and string labels (unseen ones added), the
    /// same as the `class_index` + `learn_one` loop; stops at the first rejected event.
    pub fn learn_many(&mut self, x: ArrayView2<'_, f64>, labels: &[&str]) -> Result<()> {
        if x.nrows() != labels.len() {
            return Err(MlError::ShapeMismatch {
                rows: x.nrows(),
                len: labels.len(),
            });
        }
        for (row, label) in x.rows().into_iter().zip(labels) {
            let k = self.class_index(label);
            self.learn_one(&FeatureVec::dense(row), k, 1.0)?;
        }
        Ok(())
    }
}

/// Turns finite margins into probabilities by log-sum-exp: `exp(m_k - max) / sum exp(m_j - max)`.
pub(crate) fn softmax_in_place(m: &mut [f64]) {
    let max = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in m.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    // the max term is exp(0) = 1, so sum >= 1
    m.iter_mut().for_each(|v| *v /= sum);
}

pub(crate) fn argmax(p: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (k, &v) in p.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((k, v));
        }
    }
    best.map(|(k, _)| k)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftmax {
    params: SoftmaxValidParams,
    dim: usize,
    classes: Vec<String>,
    cores: Vec<LinearCore>,
    t: u64,
}

impl TryFrom<RawSoftmax> for SoftmaxModel {
    type Error = MlError;

    fn try_from(r: RawSoftmax) -> Result<Self> {
        if r.classes.len() != r.cores.len() {
            return Err(MlError::InvalidState {
                what: "softmax needs one weight vector per class",
                value: r.cores.len() as f64,
            });
        }
        for c in &r.cores {
            if c.dim() != r.dim {
                return Err(MlError::InvalidState {
                    what: "softmax class weights must match the model dimension",
                    value: c.dim() as f64,
                });
            }
            c.check_optimizer(r.params.0.optimizer())?;
        }
        Ok(Self {
            params: r.params,
            dim: r.dim,
            classes: r.classes,
            cores: r.cores,
            t: r.t,
        })
    }
}

#[cfg(test)]
#[path = "softmax_tests.rs"]
mod tests;
