//! `FeatureBatch`: transformed rows as a dense prefix plus a CSR sparse part.

use ndarray::{ArrayView1, ArrayView2};

use crate::error::DecodeError;

/// Transformed rows ready for a learner.
///
/// Row `i` has `dense_width` dense values (coordinates `0..dense_width`) and a sparse part in
/// CSR form: sorted, distinct absolute coordinates (all `>= dense_width`) with their values.
/// The buffers are kept between batches so a reused `FeatureBatch` does not allocate.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureBatch {
    rows: usize,
    dense_width: usize,
    /// Row-major `rows x dense_width`.
    dense: Vec<f64>,
    /// `rows + 1` offsets into `indices`/`values`.
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
    /// Rows an operator refused (late event, bad timestamp), in row order.
    rejected: Vec<(usize, DecodeError)>,
}

impl Default for FeatureBatch {
    fn default() -> Self {
        FeatureBatch {
            rows: 0,
            dense_width: 0,
            dense: Vec::new(),
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl FeatureBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of dense coordinates per row.
    pub fn dense_width(&self) -> usize {
        self.dense_width
    }

    /// Row `i`: its dense values, then its sparse coordinates and values.
    ///
    /// # Panics
    /// When `i >= self.len()`, like slice indexing.
    pub fn row(&self, i: usize) -> (ArrayView1<'_, f64>, &[u32], &[f64]) {
        assert!(i < self.rows, "row {i} out of range for {} rows", self.rows);
        let w = self.dense_width;
        let (indices, values) = self.sparse_row(i);
        (
            ArrayView1::from(&self.dense[i * w..(i + 1) * w]),
            indices,
            values,
        )
    }

    /// Row `i`'s sparse coordinates and values alone (what a prefetch of its weights needs).
    ///
    /// # Panics
    /// When `i >= self.len()`, like slice indexing.
    #[inline]
    pub fn sparse_row(&self, i: usize) -> (&[u32], &[f64]) {
        let (start, end) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[start..end], &self.values[start..end])
    }

    /// Every row in order, as [`FeatureBatch::row`] gives them.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (ArrayView1<'_, f64>, &[u32], &[f64])> {
        (0..self.rows).map(|i| self.row(i))
    }

    /// The dense part as a `rows x dense_width` matrix.
    pub fn dense(&self) -> ArrayView2<'_, f64> {
        ArrayView2::from_shape((self.rows, self.dense_width), &self.dense)
            .expect("dense holds rows * dense_width values")
    }

    /// CSR row offsets (`len() + 1` of them).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Sparse coordinates of all rows, row after row.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Sparse values, parallel to [`FeatureBatch::indices`].
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Rows refused by an operator, ascending, each with its reason (kind `late` or
    /// `bad_timestamp`, or `missing_field` for a serving request without an event time). A
    /// refused row is present but empty (dense zeros, no sparse entries) and changed no state:
    /// skip it and dead-letter it.
    pub fn rejected(&self) -> &[(usize, DecodeError)] {
        &self.rejected
    }

    /// True when row `i` was refused (see [`FeatureBatch::rejected`]).
    pub fn is_rejected(&self, i: usize) -> bool {
        self.rejected
            .binary_search_by_key(&i, |(row, _)| *row)
            .is_ok()
    }

    /// Number of stored sparse entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Removes all rows, keeping the allocations.
    pub fn clear(&mut self) {
        self.rows = 0;
        self.dense.clear();
        self.indptr.clear();
        self.indptr.push(0);
        self.indices.clear();
        self.values.clear();
        self.rejected.clear();
    }

    /// Appends one row (handy to feed a learner in tests or from another source). The first row
    /// of an empty batch sets the dense width.
    ///
    /// # Panics
    /// When `dense` does not have the batch's dense width, or `indices` and `values` differ in
    /// length.
    pub fn push_row(&mut self, dense: &[f64], indices: &[u32], values: &[f64]) {
        if self.rows == 0 {
            self.dense_width = dense.len();
        }
        assert_eq!(dense.len(), self.dense_width, "dense width of a pushed row");
        assert_eq!(indices.len(), values.len(), "sparse indices and values");
        self.dense.extend_from_slice(dense);
        self.indices.extend_from_slice(indices);
        self.values.extend_from_slice(values);
        self.indptr.push(self.indices.len());
        self.rows += 1;
    }

    /// Starts a fill: `rows` rows of zeroed dense values, no sparse entries yet.
    pub(crate) fn reset(&mut self, rows: usize, dense_width: usize) {
        self.clear();
        self.rows = rows;
        self.dense_width = dense_width;
        self.dense.resize(rows * dense_width, 0.0);
        self.indptr.reserve(rows);
    }

    /// Records that `row` was refused; rows must be recorded in ascending order.
    pub(crate) fn reject(&mut self, row: usize, reason: DecodeError) {
        self.rejected.push((row, reason));
    }

    /// The dense buffer being filled (row-major).
    pub(crate) fn dense_mut(&mut self) -> &mut [f64] {
        &mut self.dense
    }

    /// Sparse buffers being filled: indptr, indices, values.
    pub(crate) fn sparse_mut(&mut self) -> (&mut Vec<usize>, &mut Vec<u32>, &mut Vec<f64>) {
        (&mut self.indptr, &mut self.indices, &mut self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_row_and_views() {
        let mut b = FeatureBatch::new();
        assert!(b.is_empty());
        assert_eq!(b.indptr(), &[0]);
        b.push_row(&[1.0, 2.0], &[5, 9], &[1.0, 2.0]);
        b.push_row(&[3.0, 4.0], &[], &[]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.dense_width(), 2);
        let (d, i, v) = b.row(0);
        assert_eq!(
            (d.to_vec(), i, v),
            (vec![1.0, 2.0], &[5u32, 9][..], &[1.0, 2.0][..])
        );
        let (d, i, _) = b.row(1);
        assert_eq!((d.to_vec(), i.len()), (vec![3.0, 4.0], 0));
        assert_eq!(b.dense()[[1, 0]], 3.0);
        assert_eq!(b.indptr(), &[0, 2, 2]);
        assert_eq!(b.rows().count(), 2);
        assert_eq!(b.nnz(), 2);
        b.clear();
        assert_eq!((b.len(), b.nnz(), b.indptr()), (0, 0, &[0usize][..]));
    }

    #[test]
    #[should_panic(expected = "row 0 out of range")]
    fn row_out_of_range_panics() {
        FeatureBatch::new().row(0);
    }

    #[test]
    fn reset_zeroes_dense() {
        let mut b = FeatureBatch::new();
        b.push_row(&[7.0], &[3], &[1.0]);
        b.reset(3, 2);
        assert_eq!(b.len(), 3);
        assert!(b.dense().iter().all(|&x| x == 0.0));
        assert_eq!(b.nnz(), 0);
    }
}
