//! `LinearCore`: one weight vector, its intercept and optimizer state, and the one update rule
//! every linear learner (binary, regression, each softmax class) shares.

use serde::{Deserialize, Serialize};

use super::aligned::AlignedF64s;
use super::lanes::{ftrl_active, FtrlConsts};
use crate::error::{MlError, Result};
use crate::learner::FeatureVec;
use crate::linear::SgdValidParams;
use crate::optim::{saturate, soft_threshold, Optimizer, ScaledWeights, WEIGHT_LIMIT};
use crate::prefetch::prefetch_line;

/// Per-coordinate gradients are clipped to this magnitude, so their squares (at most 1e200) can be
/// summed for ~1e108 events before an accumulator saturates at `f64::MAX`.
pub(super) const GRAD_LIMIT: f64 = 1e100;

/// FTRL's `z` saturates here, far inside `f64` range.
pub(super) const Z_LIMIT: f64 = 1e300;

/// Tables shorter than this (256 KiB of `f64`) fit in the L2 cache of current server cores, so
/// [`LinearCore::prefetch`] leaves them alone.
const PREFETCH_MIN_LEN: usize = 1 << 15;

/// Weights, intercept and optimizer state of one linear predictor.
///
/// SGD keeps its weights in `weights` (with the lazy L2 scale). The adaptive optimizers keep each
/// coordinate's weight and state together in `state`, `stride` numbers per coordinate, so one
/// cache line serves a coordinate's prediction and update: `[w, sum g^2]` for AdaGrad,
/// `[w, m, v, -]` for Adam, `[w, z, sqrt(n), -]` for FTRL (the root is stored because the update
/// needs it, which saves a square root per coordinate; the padding and the 32-byte aligned start
/// of [`AlignedF64s`] keep every coordinate within one cache line). `bias` holds the intercept's
/// state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCore")]
pub(crate) struct LinearCore {
    dim: usize,
    stride: usize,
    pub(crate) weights: ScaledWeights,
    pub(crate) intercept: f64,
    state: AlignedF64s,
    bias: [f64; 2],
    /// Coordinate updates applied (active entries summed over learned events), which is the work an
    /// event costs; tests use it to show sparse events touch only their entries.
    updates: u64,
}

impl LinearCore {
    pub(crate) fn new(dim: usize, optimizer: Optimizer) -> Self {
        let stride = stride(optimizer);
        Self {
            dim,
            stride,
            weights: ScaledWeights::zeros(if stride == 0 { dim } else { 0 }),
            intercept: 0.0,
            state: AlignedF64s::zeros(dim * stride),
            bias: [0.0; 2],
            updates: 0,
        }
    }

    /// Rejects a loaded core whose state does not fit `optimizer` (a corrupted artifact).
    pub(crate) fn check_optimizer(&self, optimizer: Optimizer) -> Result<()> {
        let (dim, s) = (self.dim, stride(optimizer));
        let sgd_dim = if s == 0 { dim } else { 0 };
        if self.stride == s && self.state.len() == dim * s && self.weights.dim() == sgd_dim {
            Ok(())
        } else {
            Err(MlError::InvalidState {
                what: "optimizer state does not match the optimizer",
                value: self.state.len() as f64,
            })
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Effective weight of coordinate `j`.
    pub(crate) fn weight(&self, j: usize) -> Option<f64> {
        if self.stride == 0 {
            self.weights.get(j)
        } else {
            self.state.get(j * self.stride).copied()
        }
    }

    /// All effective weights, O(dim).
    pub(crate) fn weights_array(&self) -> ndarray::Array1<f64> {
        if self.stride == 0 {
            self.weights.to_array()
        } else {
            self.state.iter().step_by(self.stride).copied().collect()
        }
    }

    /// `self = a * self + b * other` over the weights, the intercept and the optimizer state
    /// (AdaGrad and Adam accumulators, FTRL's z and n), for model averaging. Same layout only.
    pub(crate) fn blend(&mut self, other: &LinearCore, a: f64, b: f64) -> bool {
        if self.dim != other.dim
            || self.stride != other.stride
            || self.weights.dim() != other.weights.dim()
        {
            return false;
        }
        self.weights.blend(&other.weights, a, b);
        self.intercept = a * self.intercept + b * other.intercept;
        for (s, o) in self.state.iter_mut().zip(other.state.iter()) {
            *s = a * *s + b * o;
        }
        for (s, o) in self.bias.iter_mut().zip(&other.bias) {
            *s = a * *s + b * o;
        }
        true
    }

    pub(crate) fn updates(&self) -> u64 {
        self.updates
    }

    /// `w . x + b`, and whether every entry of `x` addressed a coordinate.
    #[inline]
    pub(crate) fn margin(&self, x: &FeatureVec<'_>) -> (f64, bool) {
        let (dot, in_range) = if self.stride == 0 {
            self.weights.dot(x)
        } else {
            self.strided_dot(x)
        };
        (dot + self.intercept, in_range)
    }

    /// `w . x` over the interleaved weights of the adaptive optimizers.
    #[inline]
    fn strided_dot(&self, x: &FeatureVec<'_>) -> (f64, bool) {
        match self.stride {
            2 => chunked_dot(self.state.as_chunks::<2>().0, self.dim, x),
            _ => chunked_dot(self.state.as_chunks::<4>().0, self.dim, x),
        }
    }

    /// Starts loading the cache lines that an event with `x`'s sparse entries will read and write
    /// (see [`Learner::prefetch`](crate::Learner::prefetch)). The dense prefix is left to the
    /// hardware prefetcher, which follows a sequential walk by itself, and so is a table small
    /// enough to stay cached, where the hints would cost ~5% for nothing.
    #[inline]
    pub(crate) fn prefetch(&self, x: &FeatureVec<'_>) {
        let (table, s) = if self.stride == 0 {
            (self.weights.values(), 1)
        } else {
            (&self.state[..], self.stride)
        };
        if table.len() < PREFETCH_MIN_LEN {
            return;
        }
        for &i in x.indices() {
            let j = i as usize * s;
            // the state is 32-byte aligned, so one line holds a whole coordinate
            if let Some(first) = table.get(j) {
                prefetch_line(first);
            }
        }
    }

    /// One update of event `t` (1-based) whose loss has derivative `g` in the margin (clipped,
    /// finite) and whose event weight is `weight` (finite, >= 0). `eta` is the schedule's step for
    /// `t`. `x` must have been validated against `dim()`.
    // always: once the general learn path moved out of line, LLVM stopped inlining this (and
    // `ScaledWeights::dot`) into it, which cost hashed SGD events ~3% more instructions (callgrind)
    #[inline(always)]
    pub(crate) fn update(
        &mut self,
        params: &SgdValidParams,
        t: u64,
        eta: f64,
        x: &FeatureVec<'_>,
        g: f64,
        weight: f64,
    ) {
        match params.optimizer() {
            Optimizer::Sgd => self.sgd(params, eta, x, g, weight),
            opt => {
                // both finite, so the product is never NaN; inf is clamped away
                let g = (weight * g).clamp(-f64::MAX, f64::MAX);
                self.adaptive(opt, params, t, eta, x, g)
            }
        }
        self.updates += (x.dense_part().len() + x.indices().len()) as u64;
    }

    /// Plain SGD with the lazy L2 scale, bit-identical to the original `LinearModel` step.
    #[inline]
    fn sgd(&mut self, params: &SgdValidParams, eta: f64, x: &FeatureVec<'_>, g: f64, weight: f64) {
        if params.l2() > 0.0 {
            self.weights.decay(1.0 - eta * params.l2());
        }
        // weight * g first: both finite, so the product is never NaN; inf is clamped away
        let step = (weight * g * eta).clamp(-f64::MAX, f64::MAX);
        self.weights.add_scaled(-step, x);
        if params.l1() > 0.0 {
            self.weights.shrink_active(eta * params.l1(), x);
        }
        self.sgd_intercept(params, step);
    }

    /// The intercept's share of an SGD step (`step` as in [`sgd`](Self::sgd)).
    #[inline]
    fn sgd_intercept(&mut self, params: &SgdValidParams, step: f64) {
        if params.fit_intercept() {
            let b = self.intercept - step * params.intercept_learning_rate();
            self.intercept = b.clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT);
        }
    }

    /// `x`'s dense prefix when the event can take the plain dense SGD path: SGD without L1 or L2
    /// (so the weight scale never moves off 1), a weight scale of exactly 1, no sparse entries, and
    /// a contiguous dense prefix that fits. Those are the defaults and the common dense case;
    /// [`plain_dense_margin`](Self::plain_dense_margin) and
    /// [`plain_dense_sgd`](Self::plain_dense_sgd) then give the same bits as
    /// [`margin`](Self::margin) and [`update`](Self::update) with fewer instructions.
    #[inline]
    pub(crate) fn plain_dense<'x>(
        &self,
        params: &SgdValidParams,
        x: &FeatureVec<'x>,
    ) -> Option<&'x [f64]> {
        // sparse entries first: a hashed event leaves after one comparison
        let plain = x.indices().is_empty()
            && x.values().is_empty()
            && matches!(params.optimizer(), Optimizer::Sgd)
            && params.l1() == 0.0
            && params.l2() == 0.0
            && self.weights.is_unit();
        if !plain {
            return None;
        }
        x.dense_part()
            .to_slice()
            .filter(|xs| xs.len() <= self.weights.dim())
    }

    /// [`margin`](Self::margin) of a [`plain_dense`](Self::plain_dense) event (always in range).
    #[inline]
    pub(crate) fn plain_dense_margin(&self, xs: &[f64]) -> f64 {
        self.weights.unit_dense_dot(xs) + self.intercept
    }

    /// [`update`](Self::update) of a [`plain_dense`](Self::plain_dense) event: the SGD step
    /// without the decay and L1 branches it cannot take.
    #[inline]
    pub(crate) fn plain_dense_sgd(
        &mut self,
        params: &SgdValidParams,
        eta: f64,
        xs: &[f64],
        g: f64,
        weight: f64,
    ) {
        // the same expression as in `sgd`, so the same bits
        let step = (weight * g * eta).clamp(-f64::MAX, f64::MAX);
        self.weights.unit_dense_add(-step, xs);
        self.sgd_intercept(params, step);
        self.updates += xs.len() as u64;
    }

    /// AdaGrad, Adam or FTRL over the active coordinates only. Kept out of line so the SGD path
    /// that `update` inlines stays as small as before the adaptive optimizers existed.
    #[inline(never)]
    fn adaptive(
        &mut self,
        opt: Optimizer,
        params: &SgdValidParams,
        t: u64,
        eta: f64,
        x: &FeatureVec<'_>,
        g: f64,
    ) {
        let (l1, l2) = (params.l1(), params.l2());
        let rule = Rule::new(opt, t, eta);
        let state = &mut self.state[..];
        // One loop per kind of rule (each arm instantiates `touch_active` anew), so the step of
        // a known kind inlines into it and successive coordinates' roots and divisions overlap;
        // FTRL, the optimizer of hashed models, takes its coordinates two at a time (lanes.rs).
        match rule {
            Rule::AdaGrad { eta, eps } => {
                touch_active(state.as_chunks_mut::<2>().0, x, g, |w, gj, st| {
                    adagrad_step(eta, eps, w, gj, st, l1, l2)
                });
            }
            Rule::Adam(adam) => {
                touch_active(state.as_chunks_mut::<4>().0, x, g, |w, gj, st| {
                    adam_step(adam, w, gj, st, l1, l2)
                });
            }
            Rule::Ftrl { inv_alpha, beta } => {
                let k = FtrlConsts {
                    inv_alpha,
                    beta,
                    l1,
                    l2,
                };
                ftrl_active(state.as_chunks_mut::<4>().0, x, g, k);
            }
            Rule::Keep => {}
        }
        if params.fit_intercept() && params.intercept_learning_rate() > 0.0 {
            // the intercept is a coordinate with x = 1, its own state and no penalty; its rate is
            // scaled by intercept_learning_rate
            let rule = rule.scaled(params.intercept_learning_rate());
            let gb = g.clamp(-GRAD_LIMIT, GRAD_LIMIT);
            self.intercept = rule.step(self.intercept, gb, &mut self.bias, 0.0, 0.0);
        }
    }
}

/// `w . x` over coordinates of `N` numbers each, the weight first; only the first `dim` are
/// addressable (the table may be padded).
#[inline(always)]
fn chunked_dot<const N: usize>(coords: &[[f64; N]], dim: usize, x: &FeatureVec<'_>) -> (f64, bool) {
    let coords = &coords[..dim.min(coords.len())];
    let dense = x.dense_part();
    let (indices, values) = (x.indices(), x.values());
    let mut in_range = dense.len() <= coords.len() && indices.len() == values.len();
    let mut acc = 0.0;
    // a contiguous dense part (every batch row is one) runs over plain slices; the same sum in
    // the same order either way
    match dense.as_slice() {
        Some(xs) => {
            for (c, xj) in coords.iter().zip(xs) {
                acc += c[0] * xj;
            }
        }
        None => {
            for (c, xj) in coords.iter().zip(dense.iter()) {
                acc += c[0] * xj;
            }
        }
    }
    for (&i, &xi) in indices.iter().zip(values) {
        match coords.get(i as usize) {
            Some(c) => acc += c[0] * xi,
            None => in_range = false,
        }
    }
    (acc, in_range)
}

/// Applies `step` to the weight and slots of each active coordinate of `x` (each coordinate
/// `[w, slots..]` in `coords`), with that coordinate's clipped gradient `g * x_j`.
#[inline(always)]
fn touch_active<const N: usize>(
    coords: &mut [[f64; N]],
    x: &FeatureVec<'_>,
    g: f64,
    mut step: impl FnMut(f64, f64, &mut [f64]) -> f64,
) {
    let dense = x.dense_part();
    match dense.as_slice() {
        Some(xs) => {
            for (c, &xj) in coords.iter_mut().zip(xs) {
                touch_one(c, g * xj, &mut step);
            }
        }
        None => {
            for (c, &xj) in coords.iter_mut().zip(dense.iter()) {
                touch_one(c, g * xj, &mut step);
            }
        }
    }
    for (&i, &xi) in x.indices().iter().zip(x.values()) {
        if let Some(c) = coords.get_mut(i as usize) {
            touch_one(c, g * xi, &mut step);
        }
    }
}

/// [`touch_active`]'s work on one coordinate, written as a function that is always inlined (a
/// closure here was compiled out of line, one call per coordinate).
#[inline(always)]
fn touch_one<const N: usize>(
    c: &mut [f64; N],
    gj: f64,
    step: &mut impl FnMut(f64, f64, &mut [f64]) -> f64,
) {
    if let Some((wj, st)) = c.split_first_mut() {
        *wj = step(*wj, gj.clamp(-GRAD_LIMIT, GRAD_LIMIT), st);
    }
}

/// Numbers per coordinate in `state`: the weight, the optimizer's slots, padding to a power of 2.
fn stride(optimizer: Optimizer) -> usize {
    match optimizer {
        Optimizer::Sgd => 0,
        Optimizer::AdaGrad { .. } => 2,
        Optimizer::Adam { .. } | Optimizer::Ftrl { .. } => 4,
    }
}

/// One event's per-coordinate update rule, with its event-level constants computed once.
#[derive(Clone, Copy)]
enum Rule {
    AdaGrad {
        eta: f64,
        eps: f64,
    },
    /// `[eta, beta1, beta2, eps, 1 - beta1^t, 1 - beta2^t]`.
    Adam([f64; 6]),
    Ftrl {
        inv_alpha: f64,
        beta: f64,
    },
    /// Never reached (SGD has its own path); a no-op keeps the match total.
    Keep,
}

impl Rule {
    fn new(opt: Optimizer, t: u64, eta: f64) -> Self {
        match opt {
            Optimizer::Sgd => Rule::Keep,
            Optimizer::AdaGrad { eps } => Rule::AdaGrad { eta, eps },
            Optimizer::Adam { beta1, beta2, eps } => {
                let t = t as f64;
                Rule::Adam([
                    eta,
                    beta1,
                    beta2,
                    eps,
                    1.0 - beta1.powf(t),
                    1.0 - beta2.powf(t),
                ])
            }
            Optimizer::Ftrl { alpha, beta } => Rule::Ftrl {
                inv_alpha: 1.0 / alpha,
                beta,
            },
        }
    }

    /// The same rule with its learning rate multiplied by `f`.
    fn scaled(self, f: f64) -> Self {
        match self {
            Rule::AdaGrad { eta, eps } => Rule::AdaGrad { eta: eta * f, eps },
            Rule::Adam(mut adam) => {
                adam[0] *= f;
                Rule::Adam(adam)
            }
            Rule::Ftrl { inv_alpha, beta } => Rule::Ftrl {
                inv_alpha: inv_alpha / f,
                beta,
            },
            Rule::Keep => Rule::Keep,
        }
    }

    /// New value of a weight `w` whose loss gradient is `g` (finite, `|g| <= GRAD_LIMIT`), given
    /// its state slots. Every intermediate is kept finite, so the result and the state are finite.
    #[inline(always)]
    fn step(self, w: f64, g: f64, st: &mut [f64], l1: f64, l2: f64) -> f64 {
        match self {
            Rule::AdaGrad { eta, eps } => adagrad_step(eta, eps, w, g, st, l1, l2),
            Rule::Adam(adam) => adam_step(adam, w, g, st, l1, l2),
            Rule::Ftrl { inv_alpha, beta } => ftrl_step(inv_alpha, beta, w, g, st, l1, l2),
            Rule::Keep => w,
        }
    }
}

/// [`Rule::step`] for AdaGrad (`st = [sum g^2, ..]`).
#[inline(always)]
fn adagrad_step(eta: f64, eps: f64, w: f64, g: f64, st: &mut [f64], l1: f64, l2: f64) -> f64 {
    let [sum_g2, ..] = st else {
        return w;
    };
    let g = g + l2 * w;
    *sum_g2 = (*sum_g2 + g * g).min(f64::MAX);
    let d = sum_g2.sqrt() + eps;
    let w = w - (eta * g / d).clamp(-f64::MAX, f64::MAX);
    let w = if l1 > 0.0 {
        soft_threshold(w, (eta * l1 / d).min(f64::MAX))
    } else {
        w
    };
    saturate(w, WEIGHT_LIMIT)
}

/// [`Rule::step`] for Adam (`rule = [eta, beta1, beta2, eps, 1 - beta1^t, 1 - beta2^t]`,
/// `st = [m, v, ..]`).
#[inline(always)]
fn adam_step(rule: [f64; 6], w: f64, g: f64, st: &mut [f64], l1: f64, l2: f64) -> f64 {
    let [eta, b1, b2, eps, bc1, bc2] = rule;
    let [m, v, ..] = st else {
        return w;
    };
    let g = g + l2 * w;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = (b2 * *v + (1.0 - b2) * g * g).min(f64::MAX);
    let m_hat = *m / bc1;
    let v_hat = *v / bc2;
    let w = w - (eta * m_hat / (v_hat.sqrt() + eps)).clamp(-f64::MAX, f64::MAX);
    let w = if l1 > 0.0 {
        soft_threshold(w, eta * l1)
    } else {
        w
    };
    saturate(w, WEIGHT_LIMIT)
}

/// [`Rule::step`] for FTRL-Proximal (`st = [z, sqrt(n), ..]`).
#[inline(always)]
pub(super) fn ftrl_step(
    inv_alpha: f64,
    beta: f64,
    w: f64,
    g: f64,
    st: &mut [f64],
    l1: f64,
    l2: f64,
) -> f64 {
    let [z, sqrt_n, ..] = st else {
        return w;
    };
    let n_new = (*sqrt_n * *sqrt_n + g * g).min(f64::MAX);
    let sqrt_new = n_new.sqrt();
    let sigma = ((sqrt_new - *sqrt_n) * inv_alpha).min(f64::MAX);
    // sigma * w cannot be NaN: sigma is finite and >= 0, and so is w finite
    *z = (*z + g - sigma * w).clamp(-Z_LIMIT, Z_LIMIT);
    *sqrt_n = sqrt_new;
    saturate(
        ftrl_weight(*z, sqrt_new, inv_alpha, beta, l1, l2),
        WEIGHT_LIMIT,
    )
}

/// McMahan et al.'s closed form: 0 when `|z| <= l1`, else
/// `-(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)`; takes `sqrt(n)` and `1 / alpha`.
#[inline]
fn ftrl_weight(z: f64, sqrt_n: f64, inv_alpha: f64, beta: f64, l1: f64, l2: f64) -> f64 {
    if z.abs() <= l1 {
        return 0.0;
    }
    let num = -(z - l1.copysign(z));
    let den = (beta + sqrt_n) * inv_alpha + l2;
    // den = 0 (beta = l2 = 0 before any squared gradient registered) gives +-inf, saturated by the
    // caller, never NaN since num != 0 here
    num / den
}

/// The serialised form of [`LinearCore`], checked on load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCore {
    dim: usize,
    stride: usize,
    weights: ScaledWeights,
    intercept: f64,
    state: Vec<f64>,
    bias: [f64; 2],
    updates: u64,
}

impl TryFrom<RawCore> for LinearCore {
    type Error = MlError;

    fn try_from(r: RawCore) -> Result<Self> {
        let bad = |what, value| Err(MlError::InvalidState { what, value });
        if !r.intercept.is_finite() {
            return bad("intercept must be finite", r.intercept);
        }
        // the state's length is checked against the optimizer by `check_optimizer`
        if let Some(&v) = r.state.iter().find(|v| !v.is_finite()) {
            return bad("optimizer state must be finite", v);
        }
        if let Some(&v) = r.bias.iter().find(|v| !v.is_finite()) {
            return bad("optimizer state must be finite", v);
        }
        if r.stride > 4 || r.state.len() != r.dim * r.stride {
            return bad(
                "optimizer state must match the dimension",
                r.state.len() as f64,
            );
        }
        if r.state
            .iter()
            .step_by(r.stride.max(1))
            .any(|w| w.abs() > WEIGHT_LIMIT)
        {
            return bad("weights must be within +-1e150", r.dim as f64);
        }
        Ok(Self {
            dim: r.dim,
            stride: r.stride,
            weights: r.weights,
            intercept: r.intercept,
            state: AlignedF64s::from_vec(r.state),
            bias: r.bias,
            updates: r.updates,
        })
    }
}
