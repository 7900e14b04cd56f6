//! Clustering sums: inertia (mean squared distance to the assigned centre) and the adjusted Rand
//! index against reference labels, over the stream and a window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{mean, MetricValues, ARI, INERTIA, SILHOUETTE};

/// Points kept for the silhouette: a seeded reservoir sample of the stream, and the most recent
/// ones for the window. Computing it costs O(SILHOUETTE_SAMPLE^2 * dim) per `values()` call.
pub const SILHOUETTE_SAMPLE: usize = 256;

/// SplitMix64: a tiny seeded generator whose whole state is one serialisable `u64`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Mean silhouette of sampled `(point, cluster)` pairs: for each point, `a` is its mean distance
/// to the other points of its cluster and `b` the smallest mean distance to another cluster's
/// points; `s = (b - a) / max(a, b)`, 0 for a point alone in its cluster. 0 with fewer than two
/// clusters in the sample (undefined there).
pub(crate) fn silhouette<'a>(points: impl Iterator<Item = (&'a [f64], usize)> + Clone) -> f64 {
    let pts: Vec<(&[f64], usize)> = points.collect();
    let clusters: std::collections::BTreeSet<usize> = pts.iter().map(|p| p.1).collect();
    if clusters.len() < 2 {
        return 0.0;
    }
    let mut total = 0.0;
    for (i, &(x, ci)) in pts.iter().enumerate() {
        // per-cluster (distance sum, count)
        let mut sums: std::collections::BTreeMap<usize, (f64, u64)> = Default::default();
        for (j, &(y, cj)) in pts.iter().enumerate() {
            if i == j {
                continue;
            }
            let d: f64 = x
                .iter()
                .zip(y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            let e = sums.entry(cj).or_insert((0.0, 0));
            e.0 += d;
            e.1 += 1;
        }
        let a = match sums.get(&ci) {
            Some(&(s, n)) if n > 0 => s / n as f64,
            _ => continue, // alone in its cluster: s = 0
        };
        let b = sums
            .iter()
            .filter(|(c, _)| **c != ci)
            .map(|(_, &(s, n))| s / n as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        if m > 0.0 && m.is_finite() {
            total += (b - a) / m;
        }
    }
    total / pts.len() as f64
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterCounts {
    n: u64,
    sq_dist_sum: f64,
    /// `contingency[label][cluster]` over labelled events.
    contingency: Vec<Vec<u64>>,
    labelled: u64,
}

/// `n choose 2` as f64 (exact below 2^53 pairs, ample for a contingency table's cells).
fn pairs(n: u64) -> f64 {
    let n = n as f64;
    n * (n - 1.0) / 2.0
}

impl ClusterCounts {
    fn add(&mut self, e: &ClusterEvent) {
        self.n += 1;
        self.sq_dist_sum += e.sq_dist;
        if let Some(l) = e.label {
            if self.contingency.len() <= l {
                self.contingency.resize_with(l + 1, Vec::new);
            }
            let row = &mut self.contingency[l];
            if row.len() <= e.cluster {
                row.resize(e.cluster + 1, 0);
            }
            row[e.cluster] += 1;
            self.labelled += 1;
        }
    }

    fn remove(&mut self, e: &ClusterEvent) {
        self.n = self.n.saturating_sub(1);
        self.sq_dist_sum -= e.sq_dist;
        if let Some(l) = e.label {
            if let Some(c) = self
                .contingency
                .get_mut(l)
                .and_then(|r| r.get_mut(e.cluster))
            {
                *c = c.saturating_sub(1);
                self.labelled = self.labelled.saturating_sub(1);
            }
        }
    }

    /// Hubert and Arabie's adjusted Rand index of the labelled events; 0 with fewer than two, and
    /// 1 when both partitions are trivial alike (as scikit-learn).
    pub(crate) fn ari(&self) -> f64 {
        if self.labelled < 2 {
            return 0.0;
        }
        let width = self.contingency.iter().map(Vec::len).max().unwrap_or(0);
        let mut cols = vec![0u64; width];
        let (mut index, mut rows) = (0.0, 0.0);
        for row in &self.contingency {
            rows += pairs(row.iter().sum());
            for (j, &c) in row.iter().enumerate() {
                index += pairs(c);
                cols[j] += c;
            }
        }
        let cols: f64 = cols.iter().map(|&c| pairs(c)).sum();
        let expected = rows * cols / pairs(self.labelled);
        let max = 0.5 * (rows + cols);
        if max == expected {
            return 1.0;
        }
        (index - expected) / (max - expected)
    }

    /// Inertia, and the ARI once any event came with a reference label (without labels there
    /// is nothing to compare with, and a 0 would read as a measured score).
    fn values(&self) -> MetricValues {
        let mut values = vec![(INERTIA, mean(self.sq_dist_sum.max(0.0), self.n))];
        if self.labelled > 0 {
            values.push((ARI, self.ari()));
        }
        values
    }
}

/// Sampled points for the silhouette: a reservoir over the stream and the most recent points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PointSample {
    rng: SplitMix,
    seen: u64,
    reservoir: Vec<(Vec<f64>, usize)>,
    recent: VecDeque<(Vec<f64>, usize)>,
    recent_cap: usize,
}

impl PointSample {
    fn new(window: usize, seed: u64) -> Self {
        Self {
            rng: SplitMix(seed),
            seen: 0,
            reservoir: Vec::new(),
            recent: VecDeque::new(),
            recent_cap: window.clamp(1, SILHOUETTE_SAMPLE),
        }
    }

    /// Algorithm R: the i-th point replaces a random slot with probability SAMPLE / i.
    fn add(&mut self, x: &[f64], cluster: usize) {
        self.seen += 1;
        if self.reservoir.len() < SILHOUETTE_SAMPLE {
            self.reservoir.push((x.to_vec(), cluster));
        } else {
            let j = self.rng.next() % self.seen;
            if let Some(slot) = self.reservoir.get_mut(j as usize) {
                *slot = (x.to_vec(), cluster);
            }
        }
        if self.recent.len() == self.recent_cap {
            self.recent.pop_front();
        }
        self.recent.push_back((x.to_vec(), cluster));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterEvent {
    cluster: usize,
    sq_dist: f64,
    label: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusteringTracker {
    labels: Vec<String>,
    total: ClusterCounts,
    window: ClusterCounts,
    ring: VecDeque<ClusterEvent>,
    capacity: usize,
    since_rebuild: usize,
    sample: PointSample,
}

/// Seed of the silhouette's reservoir sample (fixed, so runs are reproducible).
const SAMPLE_SEED: u64 = 0x5eed;

impl ClusteringTracker {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            labels: Vec::new(),
            total: ClusterCounts::default(),
            window: ClusterCounts::default(),
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            since_rebuild: 0,
            sample: PointSample::new(capacity, SAMPLE_SEED),
        }
    }

    /// Adds a point to the silhouette samples (finite points only; call with the event's dense
    /// features and its assigned cluster).
    pub(crate) fn add_point(&mut self, x: &[f64], cluster: usize) {
        if x.iter().all(|v| v.is_finite() && v.abs() <= 1e100) {
            self.sample.add(x, cluster);
        }
    }

    /// Scores an assignment to `cluster` at Euclidean `distance`, with an optional reference
    /// label. Non-finite distances are ignored.
    pub(crate) fn update(&mut self, cluster: usize, distance: f64, label: Option<&str>) {
        if !distance.is_finite() {
            return;
        }
        let label = label.map(|l| match self.labels.iter().position(|x| x == l) {
            Some(i) => i,
            None => {
                self.labels.push(l.to_owned());
                self.labels.len() - 1
            }
        });
        let d = distance.min(1e150);
        let e = ClusterEvent {
            cluster,
            sq_dist: d * d,
            label,
        };
        self.total.add(&e);
        if self.ring.len() == self.capacity {
            if let Some(old) = self.ring.pop_front() {
                self.window.remove(&old);
            }
        }
        self.ring.push_back(e);
        self.window.add(&e);
        self.since_rebuild += 1;
        if self.since_rebuild >= self.capacity {
            self.since_rebuild = 0;
            self.window.sq_dist_sum = self.ring.iter().map(|e| e.sq_dist).sum();
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.total.n
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn values(&self) -> MetricValues {
        let s = silhouette(
            self.sample
                .reservoir
                .iter()
                .map(|(x, c)| (x.as_slice(), *c)),
        );
        let mut v = self.total.values();
        v.insert(1, (SILHOUETTE, s));
        v
    }

    pub(crate) fn window_values(&self) -> MetricValues {
        let s = silhouette(self.sample.recent.iter().map(|(x, c)| (x.as_slice(), *c)));
        let mut v = self.window.values();
        v.insert(1, (SILHOUETTE, s));
        v
    }
}
