//! Progressive (prequential) metrics over the whole stream and a window of recent events.
//!
//! Each prediction is scored before the learner learns from its event.
//!
//! Binary: [`ACCURACY`] (threshold 0.5: `p >= 0.5` predicts class 1), [`LOGLOSS`] (p clipped to
//! `[1e-15, 1 - 1e-15]`), [`AUC`] (whole stream: exact pairwise ROC AUC, O(log distinct scores)
//! per event and O(distinct scores) memory, 48 bytes each; window: from a 10 000-bin histogram of
//! `p`, see [`AUC_BINS`]),
//! [`PRECISION`], [`RECALL`], [`F1`] (of class 1 at the 0.5 threshold).
//! Regression: [`MAE`], [`RMSE`], [`R2`].
//! Multiclass: [`ACCURACY`], [`LOGLOSS`] (of the true class's probability), [`MACRO_F1`] (mean F1
//! over the classes that occurred), plus [`ProgressiveMetrics::confusion_matrix`].
//! Clustering: [`INERTIA`] (mean squared distance to the assigned centre), [`SILHOUETTE`] (on a
//! seeded reservoir sample of [`SILHOUETTE_SAMPLE`] points, or the most recent ones for the
//! window; needs [`ProgressiveMetrics::update_point`]), [`ARI`] (adjusted Rand index against the
//! `Target::Label` of labelled events).
//!
//! Values are never NaN. Where a metric is undefined it reports a documented default: every metric
//! is 0.0 before the first event, AUC is 0.5 while only one class has been seen, and R² is 0.0
//! while the target has zero variance.

mod binary;
mod clustering;
mod exact_auc;
mod multiclass;
mod regression;
mod window;

use serde::{Deserialize, Serialize};

use binary::BinaryAcc;
use clustering::ClusteringTracker;
use exact_auc::ExactAuc;
use multiclass::MulticlassTracker;
use regression::RegressionAcc;
use window::Window;

use crate::any::{number_label, parse_binary, Prediction, Target};
use crate::learner::FeatureVec;

pub use binary::AUC_BINS;
pub use clustering::SILHOUETTE_SAMPLE;

pub const ACCURACY: &str = "accuracy";
pub const LOGLOSS: &str = "logloss";
pub const AUC: &str = "auc";
pub const MAE: &str = "mae";
pub const RMSE: &str = "rmse";
pub const R2: &str = "r2";
pub const PRECISION: &str = "precision";
pub const RECALL: &str = "recall";
pub const F1: &str = "f1";
pub const MACRO_F1: &str = "macro_f1";
pub const INERTIA: &str = "inertia";
pub const SILHOUETTE: &str = "silhouette";
pub const ARI: &str = "ari";

/// What the predictions are: class-1 probabilities, real values, class distributions or cluster
/// assignments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Binary,
    Regression,
    Multiclass,
    Clustering,
}

/// Ordered `(name, value)` pairs, names from the constants of this module.
pub type MetricValues = Vec<(&'static str, f64)>;

/// Running sums for one task that can take events in and (for the window) out again.
pub(crate) trait Accumulator: Default {
    /// Per-event contribution, computed once and shared by the stream and window sums; the
    /// window keeps it until the event leaves.
    type Term: Clone + std::fmt::Debug + PartialEq;
    /// Maps a raw `(y, p)` into the accumulator's domain, or `None` if it cannot be scored (not
    /// finite).
    fn normalize(y: f64, p: f64) -> Option<(f64, f64)>;
    fn term(y: f64, p: f64) -> Self::Term;
    fn add(&mut self, t: &Self::Term);
    fn remove(&mut self, t: &Self::Term);
    /// Recomputes the floating-point sums from exactly these events' terms (oldest first),
    /// discarding the rounding drift that repeated add/remove accumulates.
    fn rebuild<'t>(&mut self, terms: impl Iterator<Item = &'t Self::Term>)
    where
        Self::Term: 't;
    fn count(&self) -> u64;
    fn values(&self) -> MetricValues;
}

/// Stream and window accumulators for one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Accumulator + Deserialize<'de>"))]
struct Progressive<A: Accumulator> {
    total: A,
    window: Window<A>,
}

impl<A: Accumulator> Progressive<A> {
    fn new(window: usize) -> Self {
        Self {
            total: A::default(),
            window: Window::new(window),
        }
    }

    #[inline]
    fn update(&mut self, y: f64, p: f64) {
        let Some((y, p)) = A::normalize(y, p) else {
            return;
        };
        let term = A::term(y, p);
        self.total.add(&term);
        self.window.push(y, p, &term);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Tracker {
    /// The whole stream's AUC comes from the exact structure; the window's from the histogram.
    Binary(Progressive<BinaryAcc>, ExactAuc),
    Regression(Progressive<RegressionAcc>),
    Multiclass(MulticlassTracker),
    Clustering(ClusteringTracker),
}

/// Progressive validation metrics over the whole stream and over the last `window` events.
///
/// Feed it the prediction a learner made *before* learning each event (see
/// `Learner::predict_learn_one`). Events with a non-finite `y` or `p` are ignored, so one bad
/// prediction cannot poison the stream's metrics. Binary labels are read as class 1 iff `y >= 0.5`
/// and probabilities are clamped to [0, 1]; regression targets and predictions are clamped to
/// `+-1e100` so squared sums cannot overflow.
///
/// An update is O(1). Window sums are maintained incrementally and recomputed from the window's
/// events every `window` updates, which bounds floating-point drift without changing the amortised
/// cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SavedMetrics")]
pub struct ProgressiveMetrics {
    tracker: Tracker,
}

/// [`ProgressiveMetrics`] as saved. Versions before 2026-11-27 also kept an AUC histogram for
/// the whole stream (unused: that AUC is exact); loading drops it, so a resumed model is as
/// fast as a fresh one.
#[derive(Deserialize)]
struct SavedMetrics {
    tracker: Tracker,
}

impl From<SavedMetrics> for ProgressiveMetrics {
    fn from(saved: SavedMetrics) -> Self {
        let mut tracker = saved.tracker;
        if let Tracker::Binary(t, _) = &mut tracker {
            t.total.without_auc();
        }
        ProgressiveMetrics { tracker }
    }
}

impl ProgressiveMetrics {
    /// Metrics for `task`, with a recent window of `window` events (a window of 0 is treated as 1).
    pub fn new(task: Task, window: usize) -> Self {
        let tracker = match task {
            Task::Binary => {
                let mut binary: Progressive<BinaryAcc> = Progressive::new(window);
                binary.total.without_auc(); // its AUC is exact
                Tracker::Binary(binary, ExactAuc::new())
            }
            Task::Regression => Tracker::Regression(Progressive::new(window)),
            Task::Multiclass => Tracker::Multiclass(MulticlassTracker::new(window)),
            Task::Clustering => Tracker::Clustering(ClusteringTracker::new(window)),
        };
        Self { tracker }
    }

    /// Scores a [`Prediction`] against its [`Target`], for every task. Pairs that do not fit the
    /// task (a cluster for a binary tracker, an unlabelled event for a supervised one, an
    /// unparsable binary label) are ignored. Clustering scores every event (inertia) and uses a
    /// `Target::Label` for the ARI; the silhouette needs the point, see
    /// [`update_point`](Self::update_point). Multiclass maps labels to indices in first-seen
    /// order, the order in which a `SoftmaxModel` fed the same labelled stream adds its classes
    /// (integers are read as their decimal string, as the model does).
    pub fn update_prediction(&mut self, y: &Target<'_>, p: &Prediction) {
        if let Some((y, p)) = self.scored_pair(y, p) {
            return self.update(y, p);
        }
        match (&mut self.tracker, p) {
            (
                Tracker::Multiclass(t),
                Prediction::Class {
                    index,
                    probabilities,
                },
            ) => match *y {
                Target::Label(s) => t.update(s, *index, probabilities),
                Target::Number(v) => {
                    if let Ok(s) = number_label(v) {
                        t.update(&s, *index, probabilities);
                    }
                }
                Target::Unlabelled => {}
            },
            (Tracker::Clustering(t), Prediction::Cluster { id, distance }) => {
                let label = match *y {
                    Target::Label(s) => Some(s),
                    _ => None,
                };
                t.update(*id, *distance, label);
            }
            _ => {}
        }
    }

    /// What [`update_prediction`](Self::update_prediction) hands a binary or regression tracker
    /// for this pair, as [`update`](Self::update) takes it; `None` for a pair it ignores and for
    /// the other tasks. Scoring the pairs later, in order, with `update` gives the same metrics.
    #[inline]
    pub fn scored_pair(&self, y: &Target<'_>, p: &Prediction) -> Option<(f64, f64)> {
        match (&self.tracker, p) {
            (Tracker::Binary(..), Prediction::Probability(q) | Prediction::Value(q)) => {
                let y = match *y {
                    Target::Number(v) => v,
                    Target::Label(s) => parse_binary(s).ok()?,
                    Target::Unlabelled => return None,
                };
                Some((y, *q))
            }
            (Tracker::Regression(_), Prediction::Value(q) | Prediction::Probability(q)) => match *y
            {
                Target::Number(v) => Some((v, *q)),
                _ => None,
            },
            _ => None,
        }
    }

    /// [`update_prediction`](Self::update_prediction), and for clustering also adds the event's
    /// dense features to the silhouette samples.
    pub fn update_point(&mut self, x: &FeatureVec<'_>, y: &Target<'_>, p: &Prediction) {
        self.update_prediction(y, p);
        if let (Tracker::Clustering(t), Prediction::Cluster { id, distance }) =
            (&mut self.tracker, p)
        {
            if distance.is_finite() {
                let dense = x.dense_part();
                match dense.as_slice() {
                    Some(xs) => t.add_point(xs, *id),
                    None => t.add_point(&dense.to_vec(), *id),
                }
            }
        }
    }

    /// Multiclass only: the labels by index and the whole-stream confusion matrix (rows = true
    /// class, columns = predicted class index).
    pub fn confusion_matrix(&self) -> Option<(&[String], Vec<Vec<u64>>)> {
        match &self.tracker {
            Tracker::Multiclass(t) => Some(t.confusion_matrix()),
            _ => None,
        }
    }

    /// Scores one prediction `p` against the target `y`. Binary: `y` in {0, 1} and `p` a
    /// probability of class 1. Multiclass and clustering trackers ignore it (use
    /// [`update_prediction`](Self::update_prediction)).
    #[inline]
    pub fn update(&mut self, y: f64, p: f64) {
        match &mut self.tracker {
            Tracker::Binary(t, exact) => {
                if let Some((y, p)) = BinaryAcc::normalize(y, p) {
                    exact.add(p, y == 1.0);
                }
                t.update(y, p)
            }
            Tracker::Regression(t) => t.update(y, p),
            Tracker::Multiclass(_) | Tracker::Clustering(_) => {}
        }
    }

    /// Number of events scored over the whole stream.
    pub fn count(&self) -> u64 {
        match &self.tracker {
            Tracker::Binary(t, _) => t.total.count(),
            Tracker::Regression(t) => t.total.count(),
            Tracker::Multiclass(t) => t.count(),
            Tracker::Clustering(t) => t.count(),
        }
    }

    /// Metrics over the whole stream: binary -> accuracy, logloss, auc, precision, recall, f1;
    /// regression -> mae, rmse, r2; multiclass -> accuracy, logloss, macro_f1; clustering ->
    /// inertia, silhouette, ari.
    pub fn values(&self) -> MetricValues {
        match &self.tracker {
            Tracker::Binary(t, exact) => {
                let mut v = t.total.values();
                if let Some(auc) = v.iter_mut().find(|e| e.0 == AUC) {
                    auc.1 = exact.auc();
                }
                v
            }
            Tracker::Regression(t) => t.total.values(),
            Tracker::Multiclass(t) => t.values(),
            Tracker::Clustering(t) => t.values(),
        }
    }

    /// The same metrics over the last `window` events.
    pub fn window_values(&self) -> MetricValues {
        match &self.tracker {
            Tracker::Binary(t, _) => t.window.values(),
            Tracker::Regression(t) => t.window.values(),
            Tracker::Multiclass(t) => t.window_values(),
            Tracker::Clustering(t) => t.window_values(),
        }
    }

    /// The metric to optimise, over the whole stream: log loss for binary and multiclass, RMSE
    /// for regression, inertia for clustering.
    pub fn primary(&self) -> (&'static str, f64) {
        let (name, values) = match &self.tracker {
            Tracker::Binary(t, _) => (LOGLOSS, t.total.values()),
            Tracker::Regression(t) => (RMSE, t.total.values()),
            Tracker::Multiclass(t) => (LOGLOSS, t.values()),
            Tracker::Clustering(t) => (INERTIA, t.values()),
        };
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |&(_, v)| v);
        (name, value)
    }

    pub fn task(&self) -> Task {
        match &self.tracker {
            Tracker::Binary(..) => Task::Binary,
            Tracker::Regression(_) => Task::Regression,
            Tracker::Multiclass(_) => Task::Multiclass,
            Tracker::Clustering(_) => Task::Clustering,
        }
    }

    /// Size of the recent window in events.
    pub fn window(&self) -> usize {
        match &self.tracker {
            Tracker::Binary(t, _) => t.window.capacity(),
            Tracker::Regression(t) => t.window.capacity(),
            Tracker::Multiclass(t) => t.capacity(),
            Tracker::Clustering(t) => t.capacity(),
        }
    }
}

/// `num / den`, or 0.0 for an empty denominator, so no metric divides 0 by 0.
#[inline]
pub(crate) fn mean(sum: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod task_tests;
#[cfg(test)]
mod tests;
