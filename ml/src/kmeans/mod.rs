//! `StreamingKMeans`: online k-means with forgetting (Spark's StreamingKMeans rule, one event at a
//! time), warm-started by linfa's batch k-means.

mod params;

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::learner::FeatureVec;

pub use params::{HalfLifeUnit, KMeansParams, KMeansValidParams};

/// Coordinates must stay within `+-INPUT_LIMIT`, so squared distances (at most `dim * 4e200`)
/// cannot overflow and centres, as convex combinations of inputs, stay finite.
pub const INPUT_LIMIT: f64 = 1e100;

/// Streaming k-means over dense points.
///
/// Each event goes to its nearest centre `i` (Euclidean). With decay factor `a` per time unit,
/// every cluster weight is multiplied by `a` at the start of each unit (before each event, or
/// before the first event of each batch, batches being closed by [`end_batch`](Self::end_batch)
/// with [`HalfLifeUnit::Batches`]); then `n_i += 1` and `c_i += (x - c_i) / n_i`, so `1 / n_i`
/// is the cluster's learning rate. For a batch this gives Spark's update
/// `c_i' = (c_i n_i a + sum x) / (n_i a + m_i)` exactly when the batch's points are assigned alike
/// (Spark assigns a whole batch against the old centres; here each event sees the centres the
/// previous ones left, so batch and one-at-a-time forms are identical).
///
/// Seeding: with `warm_start = 0` the first `k` distinct points become the centres; otherwise the
/// first `warm_start` points are buffered and linfa's `KMeans` (k-means++, seeded by `seed`) picks
/// the centres, weighted by how many buffered points each attracts. A cluster that has received no
/// point for `reseed_after` events is replaced by half of the heaviest cluster, whose centre is
/// split by `+-1e-14 * max(|c_j|, 1)` (Spark's rule for dying clusters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawKMeans")]
pub struct StreamingKMeans {
    params: KMeansValidParams,
    dim: usize,
    /// Row-major `live x dim`, `live <= k`.
    centres: Vec<f64>,
    weights: Vec<f64>,
    /// Event count at each cluster's last assignment.
    last_seen: Vec<u64>,
    /// Warm-start points waiting for linfa (row-major).
    buffer: Vec<f64>,
    /// Events learned.
    events: u64,
    reseeds: u64,
    /// With `HalfLifeUnit::Batches`: whether the current batch has started (and so has already
    /// discounted the weights).
    batch_open: bool,
}

impl StreamingKMeans {
    /// Default hyperparameters for `k` clusters, to adjust and `check()`.
    pub fn params(k: usize) -> KMeansParams {
        KMeansParams::new(k)
    }

    fn from_params(params: KMeansValidParams, dim: usize) -> Self {
        Self {
            params,
            dim,
            centres: Vec::new(),
            weights: Vec::new(),
            last_seen: Vec::new(),
            buffer: Vec::new(),
            events: 0,
            reseeds: 0,
            batch_open: false,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn hyperparams(&self) -> &KMeansValidParams {
        &self.params
    }

    /// Centres so far, one per row (fewer than `k` rows while seeding).
    pub fn centres(&self) -> Array2<f64> {
        let rows = self.weights.len();
        Array2::from_shape_vec((rows, self.dim), self.centres.clone())
            .expect("centres hold rows * dim values")
    }

    /// Current (decayed) cluster weights.
    pub fn cluster_weights(&self) -> &[f64] {
        &self.weights
    }

    /// Events learned (including buffered warm-start events).
    pub fn steps(&self) -> u64 {
        self.events
    }

    /// How many dying clusters have been re-seeded.
    pub fn reseeds(&self) -> u64 {
        self.reseeds
    }

    /// Nearest centre and the Euclidean distance to it (usable as an anomaly score). Reads the
    /// dense part only; coordinates past `dim` are ignored and missing ones count as 0. Before the
    /// first centre exists it returns `(0, 0.0)`.
    pub fn predict_one(&self, x: &FeatureVec<'_>) -> (usize, f64) {
        let (i, d2) = self.nearest(x.dense_part());
        (i, d2.sqrt())
    }

    /// Nearest centre by squared distance; `(0, 0.0)` with no centre.
    #[inline]
    fn nearest(&self, x: ArrayView1<'_, f64>) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        let xs = x.as_slice();
        for (i, c) in self.centres.chunks_exact(self.dim.max(1)).enumerate() {
            let d2 = match xs {
                Some(xs) => sq_dist(c, xs),
                None => c
                    .iter()
                    .zip(x.iter().chain(std::iter::repeat(&0.0)))
                    .map(|(c, x)| (c - x) * (c - x))
                    .sum(),
            };
            if d2 < best.1 {
                best = (i, d2);
            }
        }
        if best.1.is_finite() {
            best
        } else {
            (0, 0.0)
        }
    }

    /// Learns one point and returns the assignment made before its centre moved. Rejects sparse
    /// entries, a dense part of the wrong length, and coordinates that are not finite or beyond
    /// `+-INPUT_LIMIT`, without changing the model. While seeding, a point that becomes a centre
    /// returns `(its index, 0.0)`, and a buffered warm-start point returns `(0, 0.0)`.
    pub fn learn_one(&mut self, x: &FeatureVec<'_>) -> Result<(usize, f64)> {
        if !x.indices().is_empty() {
            return Err(MlError::Unsupported {
                what: "sparse entries in streaming k-means",
            });
        }
        let x = x.dense_part();
        if x.len() != self.dim {
            return Err(MlError::DimensionMismatch {
                len: x.len(),
                dim: self.dim,
            });
        }
        if let Some(&v) = x.iter().find(|v| !v.is_finite()) {
            return Err(MlError::NonFinite {
                what: "x",
                value: v,
            });
        }
        if let Some(&v) = x.iter().find(|v| v.abs() > INPUT_LIMIT) {
            return Err(MlError::OutOfRange {
                what: "x",
                value: v,
                limit: INPUT_LIMIT,
            });
        }
        self.events += 1;
        // Spark discounts the old weights once per batch (by a) or once per point (by a^m)
        // before adding the new points
        let a = self.params.decay_factor();
        let discount = match self.params.time_unit() {
            HalfLifeUnit::Events => a < 1.0,
            HalfLifeUnit::Batches => !std::mem::replace(&mut self.batch_open, true) && a < 1.0,
        };
        if discount {
            self.weights.iter_mut().for_each(|w| *w *= a);
        }
        let k = self.params.k();
        if self.weights.len() < k {
            if self.params.warm_start() > 0 {
                self.buffer.extend(x.iter());
                if self.buffer.len() >= self.params.warm_start() * self.dim.max(1) {
                    self.warm_start();
                }
                return Ok((0, 0.0));
            }
            let (i, d2) = self.nearest(x);
            if self.weights.is_empty() || d2 > 0.0 {
                self.centres.extend(x.iter());
                self.weights.push(1.0);
                self.last_seen.push(self.events);
                return Ok((self.weights.len() - 1, 0.0));
            }
            // a duplicate of a seeded centre joins it
            self.assign(i, x);
            return Ok((i, 0.0));
        }
        let (i, d2) = self.nearest(x);
        self.assign(i, x);
        self.reseed_dying();
        Ok((i, d2.sqrt()))
    }

    /// Prediction before learning (progressive validation); identical to `predict_one` followed
    /// by `learn_one` except while seeding, where it returns what `learn_one` returns.
    pub fn predict_learn_one(&mut self, x: &FeatureVec<'_>) -> Result<(usize, f64)> {
        self.learn_one(x)
    }

    /// Ends a batch: with [`HalfLifeUnit::Batches`] the next event starts a new batch, which first
    /// multiplies every cluster weight by the decay factor (as Spark discounts before adding a
    /// batch). A no-op with `Events`.
    pub fn end_batch(&mut self) {
        self.batch_open = false;
    }

    /// Learns the rows of `x` in order (the `learn_one` loop, stopping at the first rejected row),
    /// returning each row's assignment. Does not end a batch.
    pub fn learn_many(&mut self, x: ArrayView2<'_, f64>) -> Result<Vec<(usize, f64)>> {
        x.rows()
            .into_iter()
            .map(|row| self.learn_one(&FeatureVec::dense(row)))
            .collect()
    }

    /// Cluster and distance for each row of `x`.
    pub fn predict_many(&self, x: ArrayView2<'_, f64>) -> (Array1<usize>, Array1<f64>) {
        let (ids, ds): (Vec<usize>, Vec<f64>) = x
            .rows()
            .into_iter()
            .map(|row| self.predict_one(&FeatureVec::dense(row)))
            .unzip();
        (Array1::from(ids), Array1::from(ds))
    }

    #[inline]
    fn assign(&mut self, i: usize, x: ArrayView1<'_, f64>) {
        let w = &mut self.weights[i];
        *w += 1.0;
        let rate = 1.0 / *w;
        let c = &mut self.centres[i * self.dim..(i + 1) * self.dim];
        match x.as_slice() {
            Some(xs) => c
                .iter_mut()
                .zip(xs)
                .for_each(|(c, x)| *c += rate * (x - *c)),
            None => c
                .iter_mut()
                .zip(x.iter())
                .for_each(|(c, x)| *c += rate * (x - *c)),
        }
        self.last_seen[i] = self.events;
    }

    /// Replaces clusters idle for more than `reseed_after` events by splitting the heaviest one.
    fn reseed_dying(&mut self) {
        let limit = self.params.reseed_after();
        if limit == 0 || self.weights.len() < 2 {
            return;
        }
        for dying in 0..self.weights.len() {
            if self.events - self.last_seen[dying] <= limit {
                continue;
            }
            let big = (0..self.weights.len())
                .max_by(|&a, &b| self.weights[a].total_cmp(&self.weights[b]))
                .expect("at least two clusters");
            if big == dying {
                continue;
            }
            let half = self.weights[big] / 2.0;
            self.weights[big] = half;
            self.weights[dying] = half;
            let d = self.dim;
            for j in 0..d {
                let c = self.centres[big * d + j];
                let eps = 1e-14 * c.abs().max(1.0);
                self.centres[big * d + j] = c + eps;
                self.centres[dying * d + j] = c - eps;
            }
            self.last_seen[dying] = self.events;
            self.last_seen[big] = self.events;
            self.reseeds += 1;
        }
    }

    /// Starts the centres from linfa's k-means on the buffered points; falls back to the first k
    /// distinct points if linfa cannot fit (e.g. fewer distinct points than k).
    fn warm_start(&mut self) {
        let k = self.params.k();
        let buffer = std::mem::take(&mut self.buffer);
        let n = buffer.len() / self.dim.max(1);
        let fitted = Array2::from_shape_vec((n, self.dim), buffer.clone())
            .ok()
            .and_then(|records| {
                let rng = Xoshiro256Plus::seed_from_u64(self.params.seed());
                KMeans::params_with_rng(k, rng)
                    .fit(&DatasetBase::from(records))
                    .ok()
            });
        match fitted {
            Some(model) => {
                let c = model.centroids();
                if c.iter().all(|v| v.is_finite()) && c.nrows() == k {
                    self.centres = c.iter().copied().collect();
                    self.weights = vec![0.0; k];
                    self.last_seen = vec![self.events; k];
                    for row in buffer.chunks_exact(self.dim.max(1)) {
                        let (i, _) = self.nearest(ArrayView1::from(row));
                        self.weights[i] += 1.0;
                    }
                    return;
                }
                self.seed_distinct(&buffer);
            }
            None => self.seed_distinct(&buffer),
        }
    }

    /// Seeds centres from the first distinct points of `rows`, counting duplicates as weight.
    fn seed_distinct(&mut self, rows: &[f64]) {
        for row in rows.chunks_exact(self.dim.max(1)) {
            let x = ArrayView1::from(row);
            let (i, d2) = self.nearest(x);
            if self.weights.len() < self.params.k() && (self.weights.is_empty() || d2 > 0.0) {
                self.centres.extend(row);
                self.weights.push(1.0);
                self.last_seen.push(self.events);
            } else {
                self.assign(i, x);
            }
        }
    }
}

/// Squared Euclidean distance over equal-length slices, in four partial sums.
#[inline]
fn sq_dist(c: &[f64], x: &[f64]) -> f64 {
    let n = c.len().min(x.len());
    let (cc, ct) = c[..n].as_chunks::<4>();
    let (xc, xt) = x[..n].as_chunks::<4>();
    let mut acc = [0.0; 4];
    for (c, x) in cc.iter().zip(xc) {
        for l in 0..4 {
            let d = c[l] - x[l];
            acc[l] += d * d;
        }
    }
    for (c, x) in ct.iter().zip(xt) {
        acc[0] += (c - x) * (c - x);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKMeans {
    params: KMeansValidParams,
    dim: usize,
    centres: Vec<f64>,
    weights: Vec<f64>,
    last_seen: Vec<u64>,
    buffer: Vec<f64>,
    events: u64,
    reseeds: u64,
    batch_open: bool,
}

impl TryFrom<RawKMeans> for StreamingKMeans {
    type Error = MlError;

    fn try_from(r: RawKMeans) -> Result<Self> {
        let bad = |what, value: f64| Err(MlError::InvalidState { what, value });
        let live = r.weights.len();
        if live > r.params.k() || r.last_seen.len() != live || r.centres.len() != live * r.dim {
            return bad("k-means state shapes disagree", live as f64);
        }
        if !r.buffer.len().is_multiple_of(r.dim.max(1)) {
            return bad("k-means buffer is not whole rows", r.buffer.len() as f64);
        }
        for v in r.centres.iter().chain(&r.weights).chain(&r.buffer) {
            if !v.is_finite() {
                return bad("k-means state must be finite", *v);
            }
        }
        Ok(Self {
            params: r.params,
            dim: r.dim,
            centres: r.centres,
            weights: r.weights,
            last_seen: r.last_seen,
            buffer: r.buffer,
            events: r.events,
            reseeds: r.reseeds,
            batch_open: r.batch_open,
        })
    }
}

#[cfg(test)]
mod tests;
