//! Progressive (prequential) metrics over the whole stream and a window of recent events.
//!
//! Each prediction is scored before the learner learns from its event.
//!
//! Binary: [`ACCURACY`] (threshold 0.5: `p >= 0.5` predicts class 1), [`LOGLOSS`] (p clipped to
//! `[1e-15, 1 - 1e-15]`), [`AUC`] (ROC AUC from a 10 000-bin histogram of `p`, see [`AUC_BINS`]).
//! Regression: [`MAE`], [`RMSE`], [`R2`].
//!
//! Values are never NaN. Where a metric is undefined it reports a documented default: every metric
//! is 0.0 before the first event, AUC is 0.5 while only one class has been seen, and R² is 0.0
//! while the target has zero variance.

mod binary;
mod regression;
mod window;

use serde::{Deserialize, Serialize};

use binary::BinaryAcc;
use regression::RegressionAcc;
use window::Window;

pub use binary::AUC_BINS;

pub const ACCURACY: &str = "accuracy";
pub const LOGLOSS: &str = "logloss";
pub const AUC: &str = "auc";
pub const MAE: &str = "mae";
pub const RMSE: &str = "rmse";
pub const R2: &str = "r2";

/// What the predictions are: class-1 probabilities or real values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Binary,
    Regression,
}

/// Ordered `(name, value)` pairs, names from the constants of this module.
pub type MetricValues = Vec<(&'static str, f64)>;

/// Running sums for one task that can take events in and (for the window) out again.
pub(crate) trait Accumulator: Default {
    /// Per-event contribution, computed once and shared by the stream and window sums.
    type Term;
    /// Maps a raw `(y, p)` into the accumulator's domain, or `None` if it cannot be scored (not
    /// finite).
    fn normalize(y: f64, p: f64) -> Option<(f64, f64)>;
    fn term(y: f64, p: f64) -> Self::Term;
    fn add(&mut self, t: &Self::Term);
    fn remove(&mut self, t: &Self::Term);
    /// Recomputes the floating-point sums from exactly these events (oldest first), discarding the
    /// rounding drift that repeated add/remove accumulates.
    fn rebuild(&mut self, events: impl Iterator<Item = (f64, f64)>);
    fn count(&self) -> u64;
    fn values(&self) -> MetricValues;
}

/// Stream and window accumulators for one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Accumulator + Deserialize<'de>"))]
struct Progressive<A> {
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
    Binary(Progressive<BinaryAcc>),
    Regression(Progressive<RegressionAcc>),
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
pub struct ProgressiveMetrics {
    tracker: Tracker,
}

impl ProgressiveMetrics {
    /// Metrics for `task`, with a recent window of `window` events (a window of 0 is treated as 1).
    pub fn new(task: Task, window: usize) -> Self {
        let tracker = match task {
            Task::Binary => Tracker::Binary(Progressive::new(window)),
            Task::Regression => Tracker::Regression(Progressive::new(window)),
        };
        Self { tracker }
    }

    /// Scores one prediction `p` against the target `y`. Binary: `y` in {0, 1} and `p` a
    /// probability of class 1.
    #[inline]
    pub fn update(&mut self, y: f64, p: f64) {
        match &mut self.tracker {
            Tracker::Binary(t) => t.update(y, p),
            Tracker::Regression(t) => t.update(y, p),
        }
    }

    /// Number of events scored over the whole stream.
    pub fn count(&self) -> u64 {
        match &self.tracker {
            Tracker::Binary(t) => t.total.count(),
            Tracker::Regression(t) => t.total.count(),
        }
    }

    /// Metrics over the whole stream: binary -> accuracy, logloss, auc; regression -> mae, rmse,
    /// r2.
    pub fn values(&self) -> MetricValues {
        match &self.tracker {
            Tracker::Binary(t) => t.total.values(),
            Tracker::Regression(t) => t.total.values(),
        }
    }

    /// The same metrics over the last `window` events.
    pub fn window_values(&self) -> MetricValues {
        match &self.tracker {
            Tracker::Binary(t) => t.window.values(),
            Tracker::Regression(t) => t.window.values(),
        }
    }

    /// The metric to optimise, over the whole stream: log loss for binary, RMSE for regression.
    pub fn primary(&self) -> (&'static str, f64) {
        let (name, values) = match &self.tracker {
            Tracker::Binary(t) => (LOGLOSS, t.total.values()),
            Tracker::Regression(t) => (RMSE, t.total.values()),
        };
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |&(_, v)| v);
        (name, value)
    }

    pub fn task(&self) -> Task {
        match &self.tracker {
            Tracker::Binary(_) => Task::Binary,
            Tracker::Regression(_) => Task::Regression,
        }
    }

    /// Size of the recent window in events.
    pub fn window(&self) -> usize {
        match &self.tracker {
            Tracker::Binary(t) => t.window.capacity(),
            Tracker::Regression(t) => t.window.capacity(),
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
mod tests;
