//! The `Learner` trait and `FeatureVec`, the dense-prefix-plus-sparse input every learner reads.

use ndarray::{Array1, ArrayView1, ArrayView2};

use crate::error::{MlError, Result};

/// A feature vector view: a dense prefix (coordinates `0..dense.len()`) plus sparse
/// `(index, value)` pairs whose indices are absolute coordinates `>= dense.len()`. A hashed
/// 2^22-wide model pays only for the active entries.
///
/// Repeated sparse indices (or a sparse index inside the dense prefix) are not an error: their
/// values add up, both in the prediction and in the update, exactly as if the vector held their
/// sum.
#[derive(Clone, Copy, Debug)]
pub struct FeatureVec<'a> {
    dense: ArrayView1<'a, f64>,
    indices: &'a [u32],
    values: &'a [f64],
}

impl<'a> FeatureVec<'a> {
    /// A vector with both a dense prefix and sparse entries. `indices` and `values` must have the
    /// same length (checked in debug builds here, and by every `learn_one`, which rejects a
    /// mismatch with an error).
    pub fn new(dense: ArrayView1<'a, f64>, indices: &'a [u32], values: &'a [f64]) -> Self {
        debug_assert_eq!(
            indices.len(),
            values.len(),
            "sparse indices and values differ in length"
        );
        Self {
            dense,
            indices,
            values,
        }
    }

    /// Skips the debug assertion, to test how learners reject mismatched sparse lengths in release
    /// builds.
    #[cfg(test)]
    pub(crate) fn unchecked(
        dense: ArrayView1<'a, f64>,
        indices: &'a [u32],
        values: &'a [f64],
    ) -> Self {
        Self {
            dense,
            indices,
            values,
        }
    }

    /// A purely dense vector.
    pub fn dense(dense: ArrayView1<'a, f64>) -> Self {
        Self::new(dense, &[], &[])
    }

    /// A purely sparse vector (empty dense prefix).
    pub fn sparse(indices: &'a [u32], values: &'a [f64]) -> Self {
        Self::new(ArrayView1::from(&[][..]), indices, values)
    }

    /// The dense prefix.
    pub fn dense_part(&self) -> ArrayView1<'a, f64> {
        self.dense
    }

    /// Absolute coordinates of the sparse entries.
    pub fn indices(&self) -> &'a [u32] {
        self.indices
    }

    /// Values of the sparse entries, parallel to [`indices`](Self::indices).
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    /// Rejects a vector that cannot be applied to a `dim`-wide model: a too long dense prefix,
    /// mismatched sparse lengths or an index `>= dim`. The index scan is the cold path: learners
    /// call it only after their own single pass over the entries noticed something wrong.
    pub(crate) fn check_shape(&self, dim: usize) -> Result<()> {
        if self.dense.len() > dim {
            return Err(MlError::DimensionMismatch {
                len: self.dense.len(),
                dim,
            });
        }
        if self.indices.len() != self.values.len() {
            return Err(MlError::SparseLengthMismatch {
                indices: self.indices.len(),
                values: self.values.len(),
            });
        }
        match self.indices.iter().find(|&&i| i as usize >= dim) {
            Some(&index) => Err(MlError::IndexOutOfRange { index, dim }),
            None => Ok(()),
        }
    }
}

/// How many events ahead batch loops [`prefetch`](Learner::prefetch). An event costs ~100-300
/// cycles once its parameters are cached and a miss to memory several hundred, so the hint must
/// lead by a few events to land in time, and not by so many that the misses in flight exceed what
/// the core can track. Measured with criterion on hashed events with 8 active entries into a
/// 2^22-wide model on 2 MiB pages, at 1, 2, 3, 4 and 8 events ahead:
/// `predict_learn_many/hashed_width_8_active/*/2^22` (the working set stays cached) FTRL 8.44,
/// 8.43, 8.31, 7.73, 7.34 M events/s, SGD 16.5, 17.1, 17.1, 16.7, 17.0;
/// `predict_learn_many/hashed_2^22_out_of_cache` at 2, 4 and 8 ahead FTRL 6.77, 6.91, 6.78, SGD
/// 10.6, 13.7, 12.9. Four ahead gave up ~8% when the table is cached for ~30% when it is not.
/// Re-measured in a quiet hour (2 against 4 ahead): cached FTRL 11.06 / 11.84, SGD 22.71 / 22.68;
/// out of cache FTRL 8.66 / 11.66, SGD 12.77 / 18.25 M events/s, so four stays.
pub const PREFETCH_AHEAD: usize = 4;

/// An incremental (online) learner: it sees one event at a time and can predict at any point.
///
/// ```
/// use eddy_ml::{FeatureVec, Learner, LinearModel, Loss};
/// use ndarray::array;
///
/// let mut model = LinearModel::params(Loss::Logistic).check()?.build(3);
/// let x = array![1.0, 0.0, -1.0];
/// // Progressive validation: score the event first, then learn from it.
/// let p = model.predict_learn_one(&FeatureVec::dense(x.view()), 1.0, 1.0)?;
/// assert_eq!(p, 0.5); // an untrained model knows nothing
/// assert!(model.predict_one(&FeatureVec::dense(x.view())) > 0.5);
/// # Ok::<(), eddy_ml::MlError>(())
/// ```
pub trait Learner {
    /// Number of input coordinates (dense prefix + hashed space).
    fn dim(&self) -> usize;

    /// Prediction for `x`: a probability of class 1 for logistic, a value for linear regression.
    ///
    /// Coordinates `>= dim()` cannot be rejected here (there is no `Result`); they contribute
    /// nothing.
    fn predict_one(&self, x: &FeatureVec<'_>) -> f64;

    /// Learn one weighted event. Returns `Err(MlError::NonFinite{..})` and leaves the state
    /// unchanged if `y`, `weight` or the margin is not finite, and
    /// `Err(MlError::IndexOutOfRange{..})` if an index is `>= dim()`. Parameters never become NaN
    /// or infinite.
    fn learn_one(&mut self, x: &FeatureVec<'_>, y: f64, weight: f64) -> Result<()>;

    /// Progressive validation step: the prediction made *before* learning, then learn.
    ///
    /// Implementations may override this to share work, but must return bit-identical results.
    fn predict_learn_one(&mut self, x: &FeatureVec<'_>, y: f64, weight: f64) -> Result<f64> {
        let p = self.predict_one(x);
        self.learn_one(x, y, weight)?;
        Ok(p)
    }

    /// A hint that `x` will be learned soon. A learner whose parameters live in a table too large
    /// for the caches starts loading the entries `x` addresses, so that a loop over a batch can
    /// overlap the cache misses of upcoming events instead of waiting for each one alone. It
    /// reads nothing that matters and changes nothing; the default does nothing.
    #[inline]
    fn prefetch(&self, _x: &FeatureVec<'_>) {}

    /// [`predict_learn_one`](Self::predict_learn_one) over the events of a batch, in order:
    /// event `i` is `xs[i]` with target `ys[i]` and weight `weight`, and `on_event` gets its
    /// prediction or why it was rejected. A rejected event changes nothing and the next ones are
    /// still learned, so every prediction and every parameter is bit for bit that of the
    /// `predict_learn_one` loop; the batch only lets the learner [`prefetch`](Self::prefetch)
    /// [`PREFETCH_AHEAD`] events ahead. Fails, having learned nothing, if `xs` and `ys` differ in
    /// length.
    fn predict_learn_each(
        &mut self,
        xs: &[FeatureVec<'_>],
        ys: &[f64],
        weight: f64,
        mut on_event: impl FnMut(usize, Result<f64>),
    ) -> Result<()>
    where
        Self: Sized,
    {
        if xs.len() != ys.len() {
            return Err(MlError::ShapeMismatch {
                rows: xs.len(),
                len: ys.len(),
            });
        }
        for (i, (x, &y)) in xs.iter().zip(ys).enumerate() {
            if let Some(ahead) = xs.get(i + PREFETCH_AHEAD) {
                self.prefetch(ahead);
            }
            on_event(i, self.predict_learn_one(x, y, weight));
        }
        Ok(())
    }

    /// One prediction per row of `x` (dense rows).
    fn predict_many(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        x.rows()
            .into_iter()
            .map(|row| self.predict_one(&FeatureVec::dense(row)))
            .collect()
    }

    /// Learn the rows of `x` in order with unit weights. Stops at the first rejected event and
    /// returns its error; the events before it stay learned (the same as the equivalent `learn_one`
    /// loop).
    fn learn_many(&mut self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<()> {
        if x.nrows() != y.len() {
            return Err(MlError::ShapeMismatch {
                rows: x.nrows(),
                len: y.len(),
            });
        }
        for (row, &target) in x.rows().into_iter().zip(y.iter()) {
            self.learn_one(&FeatureVec::dense(row), target, 1.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn accessors_return_the_parts() {
        let d = array![1.0, 2.0];
        let idx = [5u32, 9];
        let val = [0.5, -1.0];
        let x = FeatureVec::new(d.view(), &idx, &val);
        assert_eq!(x.dense_part(), d.view());
        assert_eq!(x.indices(), &idx);
        assert_eq!(x.values(), &val);
        let s = FeatureVec::sparse(&idx, &val);
        assert_eq!(s.dense_part().len(), 0);
        assert_eq!(FeatureVec::dense(d.view()).indices().len(), 0);
    }

    #[test]
    fn check_shape_names_the_bad_part() {
        let d = array![1.0, 2.0, 3.0];
        assert_eq!(
            FeatureVec::dense(d.view()).check_shape(2),
            Err(MlError::DimensionMismatch { len: 3, dim: 2 })
        );
        assert_eq!(
            FeatureVec::sparse(&[1, 10, 20], &[1.0, 1.0, 1.0]).check_shape(10),
            Err(MlError::IndexOutOfRange { index: 10, dim: 10 })
        );
        assert!(FeatureVec::sparse(&[9], &[1.0]).check_shape(10).is_ok());
    }

    #[test]
    #[should_panic(expected = "differ in length")]
    #[cfg(debug_assertions)]
    fn new_asserts_equal_sparse_lengths_in_debug() {
        let _ = FeatureVec::sparse(&[1, 2], &[1.0]);
    }
}
