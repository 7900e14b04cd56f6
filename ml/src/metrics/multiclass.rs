//! Multiclass sums: accuracy, log loss, macro F1 and the confusion matrix, over the stream and a
//! window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{mean, MetricValues, ACCURACY, LOGLOSS, MACRO_F1};
use crate::loss::LOG_LOSS_EPS;

/// Counts over a set of events: `confusion[true][predicted]` (square, grown as classes appear).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClassCounts {
    n: u64,
    correct: u64,
    log_loss_sum: f64,
    confusion: Vec<Vec<u64>>,
}

impl ClassCounts {
    fn grow(&mut self, k: usize) {
        let size = self.confusion.len().max(k);
        self.confusion.resize_with(size, Vec::new);
        for row in &mut self.confusion {
            row.resize(size, 0);
        }
    }

    fn add(&mut self, e: &ClassEvent) {
        self.grow(e.truth.max(e.predicted) + 1);
        self.n += 1;
        self.correct += u64::from(e.truth == e.predicted);
        self.log_loss_sum += e.log_loss;
        self.confusion[e.truth][e.predicted] += 1;
    }

    fn remove(&mut self, e: &ClassEvent) {
        self.n = self.n.saturating_sub(1);
        self.correct = self
            .correct
            .saturating_sub(u64::from(e.truth == e.predicted));
        self.log_loss_sum -= e.log_loss;
        if let Some(c) = self
            .confusion
            .get_mut(e.truth)
            .and_then(|r| r.get_mut(e.predicted))
        {
            *c = c.saturating_sub(1);
        }
    }

    /// Mean over classes that occur (as truth or prediction) of `2 tp / (2 tp + fp + fn)`.
    fn macro_f1(&self) -> f64 {
        let k = self.confusion.len();
        let (mut sum, mut classes) = (0.0, 0u64);
        for c in 0..k {
            let tp = self.confusion[c][c];
            let fn_: u64 = self.confusion[c].iter().sum::<u64>() - tp;
            let fp: u64 = self.confusion.iter().map(|r| r[c]).sum::<u64>() - tp;
            let den = 2 * tp + fp + fn_;
            if den > 0 {
                sum += 2.0 * tp as f64 / den as f64;
                classes += 1;
            }
        }
        mean(sum, classes)
    }

    fn values(&self) -> MetricValues {
        vec![
            (ACCURACY, mean(self.correct as f64, self.n)),
            (LOGLOSS, mean(self.log_loss_sum.max(0.0), self.n)),
            (MACRO_F1, self.macro_f1()),
        ]
    }
}

/// One scored event: true class, predicted class, log loss of the true class's probability.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClassEvent {
    truth: usize,
    predicted: usize,
    log_loss: f64,
}

/// Stream and window counts, and the label -> index map (first-seen order, which is the order in
/// which a `SoftmaxModel` fed the same labelled stream adds its classes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MulticlassTracker {
    labels: Vec<String>,
    total: ClassCounts,
    window: ClassCounts,
    ring: VecDeque<ClassEvent>,
    capacity: usize,
    since_rebuild: usize,
}

impl MulticlassTracker {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            labels: Vec::new(),
            total: ClassCounts::default(),
            window: ClassCounts::default(),
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            since_rebuild: 0,
        }
    }

    fn label_index(&mut self, label: &str) -> usize {
        match self.labels.iter().position(|l| l == label) {
            Some(k) => k,
            None => {
                self.labels.push(label.to_owned());
                self.labels.len() - 1
            }
        }
    }

    /// Scores the prediction (`predicted` index, probabilities over the model's classes) of an
    /// event whose true label is `label`. A probability missing for the true class (a class the
    /// model had not seen yet) counts as 0, clipped to 1e-15 as in the binary log loss.
    pub(crate) fn update(&mut self, label: &str, predicted: usize, probabilities: &[f64]) {
        let truth = self.label_index(label);
        let p = probabilities
            .get(truth)
            .copied()
            .filter(|p| p.is_finite())
            .unwrap_or(0.0)
            .clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        let e = ClassEvent {
            truth,
            predicted,
            log_loss: -p.ln(),
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
            self.window.log_loss_sum = self.ring.iter().map(|e| e.log_loss).sum();
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.total.n
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn values(&self) -> MetricValues {
        self.total.values()
    }

    pub(crate) fn window_values(&self) -> MetricValues {
        self.window.values()
    }

    /// Labels (by index) and the whole-stream confusion matrix, rows = true class, columns =
    /// predicted class index, padded to square over every index seen.
    pub(crate) fn confusion_matrix(&self) -> (&[String], Vec<Vec<u64>>) {
        let k = self.labels.len().max(self.total.confusion.len());
        let mut m = vec![vec![0; k]; k];
        for (r, row) in self.total.confusion.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                m[r][c] = v;
            }
        }
        (&self.labels, m)
    }
}
