//! Weights stored as `w = scale * v`: O(1) L2 decay, sparse updates in O(active entries).

use ndarray::{Array1, ArrayView1};
use serde::{Deserialize, Serialize};

use crate::error::MlError;
use crate::learner::FeatureVec;

/// Below this the scale is folded back into `v` (scikit-learn's `WSCALE` reset), before `1 / scale`
/// loses precision. Costs one O(dim) pass every ~`ln(1e9) / (eta * l2)` events.
const MIN_SCALE: f64 = 1e-9;

/// Effective weights (and the intercept) saturate at `+-WEIGHT_LIMIT`: far beyond anything a sane
/// stream produces, yet small enough that `w * x` stays finite for `|x|` up to ~1e158, so extreme
/// inputs saturate instead of poisoning the model with infinities.
pub(crate) const WEIGHT_LIMIT: f64 = 1e150;

/// Weights `w_j = scale * v_j`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawScaledWeights")]
pub(crate) struct ScaledWeights {
    v: Vec<f64>,
    scale: f64,
}

impl ScaledWeights {
    pub(crate) fn zeros(dim: usize) -> Self {
        Self {
            v: crate::pages::zeroed_table(dim),
            scale: 1.0,
        }
    }

    pub(crate) fn dim(&self) -> usize {
        self.v.len()
    }

    #[cfg(test)]
    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }

    /// The stored `v` (the weights before the scale), to prefetch.
    #[inline]
    pub(crate) fn values(&self) -> &[f64] {
        &self.v
    }

    /// Effective weight of coordinate `j`.
    pub(crate) fn get(&self, j: usize) -> Option<f64> {
        self.v.get(j).map(|v| self.scale * v)
    }

    /// All effective weights (O(dim), for inspection rather than the hot path).
    /// `self = a * self + b * other`, element-wise on the effective weights; the scale becomes 1.
    pub(crate) fn blend(&mut self, other: &ScaledWeights, a: f64, b: f64) {
        let (sa, sb) = (a * self.scale, b * other.scale);
        for (v, o) in self.v.iter_mut().zip(&other.v) {
            *v = sa * *v + sb * o;
        }
        self.scale = 1.0;
    }

    pub(crate) fn to_array(&self) -> Array1<f64> {
        self.v.iter().map(|v| self.scale * v).collect()
    }

    /// `w . x`, and whether every entry of `x` addressed a coordinate of this vector.
    /// Out-of-range entries contribute nothing.
    ///
    /// The products go into `LANES` partial sums by entry position (dense entries first, then the
    /// sparse ones: entry `e` into lane `e % LANES`), which shortens the floating-point add chain
    /// that bounds a dense event's latency. Because lanes follow entry positions, not storage, a
    /// vector and its sparse spelling (same order) give bit-identical results.
    // always: see `LinearCore::update`
    #[inline(always)]
    pub(crate) fn dot(&self, x: &FeatureVec<'_>) -> (f64, bool) {
        let dense = x.dense_part();
        let (indices, values) = (x.indices(), x.values());
        let mut in_range = dense.len() <= self.v.len() && indices.len() == values.len();
        let mut acc = match dense.to_slice() {
            // a purely sparse (hashed) event skips the chunking
            _ if dense.is_empty() => [0.0; LANES],
            Some(xs) => dense_lanes(&self.v, xs),
            None => strided_lanes(&self.v, dense),
        };
        let mut lane = dense.len() % LANES;
        for (&i, &xi) in indices.iter().zip(values) {
            match self.v.get(i as usize) {
                Some(w) => acc[lane] += w * xi,
                None => in_range = false,
            }
            lane = (lane + 1) % LANES;
        }
        (self.scale * reduce(acc), in_range)
    }

    /// Whether the scale is exactly 1, so `w = v` and the `unit_*` methods apply.
    #[inline]
    pub(crate) fn is_unit(&self) -> bool {
        self.scale == 1.0
    }

    /// [`dot`](Self::dot) for a contiguous dense `xs` no longer than the vector, at scale 1:
    /// bit-identical to it (`1.0 * s == s` for every `s`), minus the checks and the multiply.
    #[inline]
    pub(crate) fn unit_dense_dot(&self, xs: &[f64]) -> f64 {
        debug_assert!(self.is_unit() && xs.len() <= self.v.len());
        reduce(dense_lanes(&self.v, xs))
    }

    /// [`add_scaled`](Self::add_scaled) for a contiguous dense `xs` no longer than the vector, at
    /// scale 1: `1 / scale` and `alpha * inv_scale` are exactly 1 and `alpha`, and `alpha` is
    /// already within `+-f64::MAX` (callers clamp it), so the same arithmetic remains.
    #[inline]
    pub(crate) fn unit_dense_add(&mut self, alpha: f64, xs: &[f64]) {
        debug_assert!(self.is_unit());
        for (v, &xi) in self.v.iter_mut().zip(xs) {
            *v = saturate(*v + alpha * xi, WEIGHT_LIMIT);
        }
    }

    /// Soft-thresholds the active coordinates of `x` towards 0 by `amount` (an L1 proximal step
    /// restricted to the touched coordinates, so it stays O(active entries)).
    #[inline]
    pub(crate) fn shrink_active(&mut self, amount: f64, x: &FeatureVec<'_>) {
        let a = amount / self.scale;
        let shrink = |v: &mut f64| *v = soft_threshold(*v, a);
        let n = x.dense_part().len().min(self.v.len());
        self.v[..n].iter_mut().for_each(shrink);
        for &i in x.indices() {
            if let Some(v) = self.v.get_mut(i as usize) {
                shrink(v);
            }
        }
    }

    /// `w *= factor` in O(1); `factor` must be in (0, 1].
    #[inline]
    pub(crate) fn decay(&mut self, factor: f64) {
        self.scale *= factor;
        if self.scale < MIN_SCALE {
            let s = self.scale;
            self.v.iter_mut().for_each(|v| *v *= s);
            self.scale = 1.0;
        }
    }

    /// `w += alpha * x` over the active entries of `x`, saturating at `+-WEIGHT_LIMIT`. `alpha` may
    /// be huge but not NaN; `x` must be finite. Entries outside the vector are skipped (callers
    /// reject them beforehand).
    #[inline]
    pub(crate) fn add_scaled(&mut self, alpha: f64, x: &FeatureVec<'_>) {
        // 1 / scale does not depend on alpha, so the division runs off the gradient -> update chain
        let inv_scale = 1.0 / self.scale;
        // v absorbs 1 / scale; clamping c keeps `c * 0.0` from turning into NaN when it overflows
        let c = (alpha * inv_scale).clamp(-f64::MAX, f64::MAX);
        let lim = WEIGHT_LIMIT * inv_scale;
        let step = |v: &mut f64, xi: f64| *v = saturate(*v + c * xi, lim);
        let dense = x.dense_part();
        match dense.as_slice() {
            Some(xs) => self.v.iter_mut().zip(xs).for_each(|(v, &xi)| step(v, xi)),
            None => self
                .v
                .iter_mut()
                .zip(dense)
                .for_each(|(v, &xi)| step(v, xi)),
        }
        for (&i, &xi) in x.indices().iter().zip(x.values()) {
            if let Some(v) = self.v.get_mut(i as usize) {
                step(v, xi);
            }
        }
    }
}

/// Partial sums of the dot product; 4 lanes cover the add latency of current x86 and ARM cores.
const LANES: usize = 4;

/// The dense part of [`ScaledWeights::dot`]: entry `k` into lane `k % LANES`, over fixed-size
/// chunks so the compiler sees no bounds to check. The lanes are returned by value and the tail is
/// matched by length, so they stay in registers: a lane array indexed at run time lives on the
/// stack, and reading it back as vectors stalls on store-to-load forwarding.
#[inline]
fn dense_lanes(v: &[f64], xs: &[f64]) -> [f64; LANES] {
    // equal lengths, so the chunks and the tails line up
    let n = v.len().min(xs.len());
    let (vc, v_tail) = v[..n].as_chunks::<LANES>();
    let (xc, x_tail) = xs[..n].as_chunks::<LANES>();
    let mut acc = [0.0; LANES];
    for (w, x) in vc.iter().zip(xc) {
        for l in 0..LANES {
            acc[l] += w[l] * x[l];
        }
    }
    match (v_tail, x_tail) {
        ([w0], [x0]) => acc[0] += w0 * x0,
        ([w0, w1], [x0, x1]) => {
            acc[0] += w0 * x0;
            acc[1] += w1 * x1;
        }
        ([w0, w1, w2], [x0, x1, x2]) => {
            acc[0] += w0 * x0;
            acc[1] += w1 * x1;
            acc[2] += w2 * x2;
        }
        _ => {}
    }
    acc
}

/// [`dense_lanes`] for a non-contiguous dense prefix.
#[inline]
fn strided_lanes(v: &[f64], dense: ArrayView1<'_, f64>) -> [f64; LANES] {
    let mut acc = [0.0; LANES];
    for (k, (w, xi)) in v.iter().zip(dense).enumerate() {
        acc[k % LANES] += w * xi;
    }
    acc
}

/// The lanes' sum, in the fixed order every dot product uses.
#[inline]
fn reduce([a, b, c, d]: [f64; LANES]) -> f64 {
    (a + b) + (c + d)
}

/// `sign(v) * max(|v| - a, 0)`.
#[inline]
pub(crate) fn soft_threshold(v: f64, a: f64) -> f64 {
    if v > a {
        v - a
    } else if v < -a {
        v + a
    } else {
        0.0
    }
}

/// Clamps to `[-lim, lim]` with plain comparisons, which vectorise to min/max instructions (the
/// value is never NaN here).
#[inline]
pub(crate) fn saturate(v: f64, lim: f64) -> f64 {
    let v = if v > lim { lim } else { v };
    if v < -lim {
        -lim
    } else {
        v
    }
}

/// What a serialised `ScaledWeights` looks like before its invariants are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaledWeights {
    v: Vec<f64>,
    scale: f64,
}

impl TryFrom<RawScaledWeights> for ScaledWeights {
    type Error = MlError;

    fn try_from(raw: RawScaledWeights) -> Result<Self, MlError> {
        if !(raw.scale > 0.0 && raw.scale <= 1.0) {
            return Err(MlError::InvalidState {
                what: "weight scale must be in (0, 1]",
                value: raw.scale,
            });
        }
        if let Some(&bad) = raw.v.iter().find(|v| !v.is_finite()) {
            return Err(MlError::InvalidState {
                what: "weights must be finite",
                value: bad,
            });
        }
        Ok(Self {
            v: crate::pages::into_table(raw.v),
            scale: raw.scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn decay_and_update_match_dense_arithmetic() {
        let mut w = ScaledWeights::zeros(4);
        let x = array![1.0, -2.0, 0.5, 3.0];
        w.add_scaled(0.5, &FeatureVec::dense(x.view()));
        w.decay(0.5);
        w.add_scaled(1.0, &FeatureVec::sparse(&[1, 3], &[1.0, -1.0]));
        // (0.5 x) * 0.5 + e1 - e3
        assert_eq!(w.to_array(), array![0.25, 0.5, 0.125, -0.25]);
        let (d, ok) = w.dot(&FeatureVec::dense(array![1.0, 1.0, 0.0, 4.0].view()));
        assert!(ok);
        assert_eq!(d, 0.25 + 0.5 - 1.0);
    }

    #[test]
    fn renormalises_before_the_scale_underflows() {
        let mut w = ScaledWeights::zeros(2);
        w.add_scaled(1.0, &FeatureVec::dense(array![1.0, 2.0].view()));
        for _ in 0..40 {
            w.decay(0.5);
            assert!(w.scale >= MIN_SCALE);
        }
        let expect = 0.5f64.powi(40);
        let got = w.to_array();
        assert!((got[0] / expect - 1.0).abs() < 1e-12);
        assert!((got[1] / (2.0 * expect) - 1.0).abs() < 1e-12);
        // 0.5^30 < 1e-9 triggered one renormalisation, ten halvings ago
        assert_eq!(w.scale, 0.5f64.powi(10));
    }

    #[test]
    fn out_of_range_entries_are_reported_and_ignored() {
        let w = ScaledWeights::zeros(3);
        assert!(!w.dot(&FeatureVec::sparse(&[3], &[1.0])).1);
        assert!(
            !w.dot(&FeatureVec::dense(array![1.0, 1.0, 1.0, 1.0].view()))
                .1
        );
        assert!(w.dot(&FeatureVec::sparse(&[2], &[1.0])).1);
    }

    #[test]
    fn huge_steps_saturate() {
        let mut w = ScaledWeights::zeros(2);
        w.decay(0.25);
        w.add_scaled(f64::MAX, &FeatureVec::dense(array![f64::MAX, 0.0].view()));
        w.add_scaled(-f64::MAX, &FeatureVec::dense(array![0.0, 1e300].view()));
        let got = w.to_array();
        assert!((got[0] / WEIGHT_LIMIT - 1.0).abs() < 1e-12, "{got}");
        assert!((got[1] / -WEIGHT_LIMIT - 1.0).abs() < 1e-12, "{got}");
    }

    #[test]
    fn corrupted_state_is_rejected_on_load() {
        let mut w = ScaledWeights::zeros(2);
        w.add_scaled(1.0, &FeatureVec::dense(array![1.0, 2.0].view()));
        let bytes = postcard::to_stdvec(&w).unwrap();
        assert_eq!(postcard::from_bytes::<ScaledWeights>(&bytes).unwrap(), w);
        let bad = ScaledWeights {
            v: vec![f64::NAN],
            scale: 1.0,
        };
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<ScaledWeights>(&bytes).is_err());
        let bad = ScaledWeights {
            v: vec![1.0],
            scale: 0.0,
        };
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<ScaledWeights>(&bytes).is_err());
    }
}
