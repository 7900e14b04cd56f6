//! `AnyModel`: the one learner type the runtime stores, with `Target` in and `Prediction` out.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::learner::{FeatureVec, Learner};
use crate::linear::softmax::argmax;
use crate::metrics::Task;
use crate::{LinearModel, SoftmaxModel, StreamingKMeans};

/// What an event says about its outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target<'a> {
    /// A numeric target: a regression value, a binary label 0/1, or an integer class.
    Number(f64),
    /// A class label (multiclass), a binary label ("0"/"1"/"false"/"true"), or a reference cluster
    /// label for clustering metrics.
    Label(&'a str),
    /// No target: the model predicts only (clustering learns anyway).
    Unlabelled,
}

/// What a model says about an event.
///
/// Serde: externally tagged, snake_case (`{"probability":0.7}`,
/// `{"cluster":{"id":2,"distance":0.5}}`), which works in JSON and in binary formats alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// A regression value.
    Value(f64),
    /// Probability of class 1 (logistic); for the hinge loss `sigmoid(margin)`, a monotone score
    /// that is >= 0.5 exactly when the SVM predicts class 1 but is not calibrated.
    Probability(f64),
    /// Most probable class and the probabilities over the model's classes (in
    /// `SoftmaxModel::classes` order; empty before the first class).
    Class {
        index: usize,
        probabilities: Vec<f64>,
    },
    /// Nearest cluster and the Euclidean distance to its centre.
    Cluster { id: usize, distance: f64 },
}

/// Every learner the runtime can host. Checkpoint it with serde (postcard or rmp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AnyModel {
    Linear(LinearModel),
    Softmax(SoftmaxModel),
    KMeans(StreamingKMeans),
}

impl AnyModel {
    /// Model averaging with another worker's copy (see [`LinearModel::merge_weighted`]); linear
    /// models only for now.
    pub fn merge_weighted(&mut self, other: &AnyModel, w_self: f64, w_other: f64) -> Result<()> {
        match (self, other) {
            (AnyModel::Linear(a), AnyModel::Linear(b)) => a.merge_weighted(b, w_self, w_other),
            _ => Err(MlError::Unsupported {
                what: "averaging anything but linear models (linear, logistic, svm)",
            }),
        }
    }

    /// `self = a * self + b * other` (see [`LinearModel::combine`]); linear models only.
    pub fn combine(&mut self, other: &AnyModel, a: f64, b: f64) -> Result<()> {
        match (self, other) {
            (AnyModel::Linear(m), AnyModel::Linear(o)) => m.combine(o, a, b),
            _ => Err(MlError::Unsupported {
                what: "combining anything but linear models (linear, logistic, svm)",
            }),
        }
    }

    pub fn predict_one(&self, x: &FeatureVec<'_>) -> Prediction {
        match self {
            AnyModel::Linear(m) => linear_prediction(m, m.predict_one(x)),
            AnyModel::Softmax(m) => class_prediction(m.predict_proba(x)),
            AnyModel::KMeans(m) => {
                let (id, distance) = m.predict_one(x);
                Prediction::Cluster { id, distance }
            }
        }
    }

    /// A hint that `x` will be learned soon, so a loop over a batch can overlap the cache misses
    /// of upcoming events; see [`Learner::prefetch`]. Changes nothing. Hinting
    /// [`PREFETCH_AHEAD`](crate::PREFETCH_AHEAD) events ahead of the one being learned is what
    /// [`Learner::predict_learn_each`] does.
    #[inline]
    pub fn prefetch(&self, x: &FeatureVec<'_>) {
        match self {
            AnyModel::Linear(m) => m.prefetch(x),
            AnyModel::Softmax(m) => m.prefetch(x),
            // k centres of the dense dimension: small, and read whole by every event
            AnyModel::KMeans(_) => {}
        }
    }

    /// Progressive validation: the prediction before learning, then learn from `y` with
    /// `weight` (clustering ignores `y` and `weight` for learning). `Target::Unlabelled` only
    /// predicts for supervised models. A softmax model adds an unseen label after predicting, so
    /// the returned probabilities do not cover it.
    pub fn predict_learn_one(
        &mut self,
        x: &FeatureVec<'_>,
        y: Target<'_>,
        weight: f64,
    ) -> Result<Prediction> {
        match self {
            AnyModel::Linear(m) => {
                let y = match y {
                    Target::Unlabelled => return Ok(linear_prediction(m, m.predict_one(x))),
                    Target::Number(v) => v,
                    Target::Label(s) => parse_binary(s)?,
                };
                let p = m.predict_learn_one(x, y, weight)?;
                Ok(linear_prediction(m, p))
            }
            AnyModel::Softmax(m) => {
                let label = match y {
                    Target::Unlabelled => return Ok(class_prediction(m.predict_proba(x))),
                    Target::Label(s) => s.to_owned(),
                    Target::Number(v) => number_label(v)?,
                };
                match m.find_class(&label) {
                    Some(k) => Ok(class_prediction(m.predict_learn_one(x, k, weight)?)),
                    None => {
                        let p = m.predict_proba(x);
                        // validate before adding the class, so a rejected event changes nothing
                        x.check_shape(m.dim())?;
                        check_weight(weight)?;
                        if let Some(&v) = x
                            .dense_part()
                            .iter()
                            .chain(x.values())
                            .find(|v| !v.is_finite())
                        {
                            return Err(MlError::NonFinite {
                                what: "x",
                                value: v,
                            });
                        }
                        let k = m.class_index(&label);
                        m.learn_one(x, k, weight)?;
                        Ok(class_prediction(p))
                    }
                }
            }
            AnyModel::KMeans(m) => {
                let (id, distance) = m.learn_one(x)?;
                Ok(Prediction::Cluster { id, distance })
            }
        }
    }

    /// One prediction per dense row of `x`.
    pub fn predict_many(&self, x: ArrayView2<'_, f64>) -> Vec<Prediction> {
        x.rows()
            .into_iter()
            .map(|row| self.predict_one(&FeatureVec::dense(row)))
            .collect()
    }

    /// The `predict_learn_one` loop over the dense rows of `x` with targets `y` and unit weights;
    /// stops at the first rejected event (the events before it stay learned).
    pub fn predict_learn_many(
        &mut self,
        x: ArrayView2<'_, f64>,
        y: &[Target<'_>],
    ) -> Result<Vec<Prediction>> {
        if x.nrows() != y.len() {
            return Err(MlError::ShapeMismatch {
                rows: x.nrows(),
                len: y.len(),
            });
        }
        x.rows()
            .into_iter()
            .zip(y)
            .map(|(row, y)| self.predict_learn_one(&FeatureVec::dense(row), *y, 1.0))
            .collect()
    }

    pub fn task(&self) -> Task {
        match self {
            AnyModel::Linear(m) if m.loss().is_classifier() => Task::Binary,
            AnyModel::Linear(_) => Task::Regression,
            AnyModel::Softmax(_) => Task::Multiclass,
            AnyModel::KMeans(_) => Task::Clustering,
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            AnyModel::Linear(m) => m.dim(),
            AnyModel::Softmax(m) => m.dim(),
            AnyModel::KMeans(m) => m.dim(),
        }
    }
}

impl From<LinearModel> for AnyModel {
    fn from(m: LinearModel) -> Self {
        AnyModel::Linear(m)
    }
}

impl From<SoftmaxModel> for AnyModel {
    fn from(m: SoftmaxModel) -> Self {
        AnyModel::Softmax(m)
    }
}

impl From<StreamingKMeans> for AnyModel {
    fn from(m: StreamingKMeans) -> Self {
        AnyModel::KMeans(m)
    }
}

/// What a linear model's `predict_learn_one` value `p` means as a prediction.
pub fn linear_prediction(m: &LinearModel, p: f64) -> Prediction {
    match m.loss() {
        crate::Loss::Logistic => Prediction::Probability(p),
        crate::Loss::Hinge => Prediction::Probability(crate::Loss::Logistic.predict(p)),
        _ => Prediction::Value(p),
    }
}

fn class_prediction(probabilities: Vec<f64>) -> Prediction {
    Prediction::Class {
        index: argmax(&probabilities).unwrap_or(0),
        probabilities,
    }
}

fn check_weight(weight: f64) -> Result<()> {
    if !weight.is_finite() {
        return Err(MlError::NonFinite {
            what: "weight",
            value: weight,
        });
    }
    if weight < 0.0 {
        return Err(MlError::InvalidWeight { weight });
    }
    Ok(())
}

/// A binary label given as text: "1"/"true" is class 1, "0"/"false" class 0, else a number.
pub(crate) fn parse_binary(s: &str) -> Result<f64> {
    match s.trim() {
        "true" | "True" | "TRUE" => Ok(1.0),
        "false" | "False" | "FALSE" => Ok(0.0),
        t => t.parse::<f64>().map_err(|_| MlError::Unsupported {
            what: "binary label must be 0, 1, true, false or a number",
        }),
    }
}

/// The class label of an integer target: its decimal string ("3" for 3.0). Non-integers and
/// values beyond +-2^53 are rejected.
pub(crate) fn number_label(v: f64) -> Result<String> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 {
        Ok(format!("{}", v as i64))
    } else {
        Err(MlError::InvalidLabel { y: v })
    }
}

#[cfg(test)]
#[path = "any_tests.rs"]
mod tests;
