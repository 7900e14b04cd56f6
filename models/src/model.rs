//! The trained model: features, learner(s) and progressive metrics, learned batch by batch.

use std::sync::Arc;
use std::time::SystemTime;

use arrow_array::{Array, Float64Array, StringArray};
use eddy_features::{DecodeError, DecodeErrorKind, FeatureBatch, FeatureSet, Prepared, Preparer};
use eddy_ml::{
    AnyModel, FeatureVec, KMeansValidParams, Learner, LinearModel, MlError, PerKey, Prediction,
    ProgressiveMetrics, SgdValidParams, SoftmaxValidParams, Target, Task,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
#[cfg(test)]
use crate::snapshot::ModelHandle;
use crate::snapshot::ServingSnapshot;
use crate::spec::ModelSpec;

/// Checked parameters of any learner a pipeline can name.
#[derive(Clone, Debug, PartialEq)]
pub enum LearnerParams {
    /// Linear and logistic regression, linear SVM (by the loss).
    Linear(SgdValidParams),
    Softmax(SoftmaxValidParams),
    KMeans(KMeansValidParams),
}

impl LearnerParams {
    pub fn build(&self, dim: usize) -> AnyModel {
        match self {
            LearnerParams::Linear(p) => AnyModel::Linear(p.build(dim)),
            LearnerParams::Softmax(p) => AnyModel::Softmax(p.build(dim)),
            LearnerParams::KMeans(p) => AnyModel::KMeans(p.build(dim)),
        }
    }
}

/// One model, or one model per key (per stock symbol, per station), created from a template on
/// the key's first event and expired least-recently-used past a bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Learners {
    One(AnyModel),
    PerKey(PerKey<AnyModel>),
}

impl Learners {
    /// The model for `key` (the template's fresh copy for an unknown key when per key).
    pub(crate) fn for_key(&self, key: Option<&str>) -> &AnyModel {
        match self {
            Learners::One(m) => m,
            Learners::PerKey(p) => key.and_then(|k| p.get(k)).unwrap_or(p.template()),
        }
    }

    fn for_key_mut(&mut self, key: Option<&str>) -> &mut AnyModel {
        match self {
            Learners::One(m) => m,
            Learners::PerKey(p) => p.get_or_create(key.unwrap_or("")),
        }
    }

    /// Models kept, for metadata.
    pub fn len(&self) -> usize {
        match self {
            Learners::One(_) => 1,
            Learners::PerKey(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The single model, or the per-key template.
    pub fn primary(&self) -> &AnyModel {
        match self {
            Learners::One(m) => m,
            Learners::PerKey(p) => p.template(),
        }
    }
}

/// A prediction as JSON: a number for regression and binary models, `{"label", "probabilities"}`
/// for classes, `{"cluster", "distance"}` for clusters.
pub fn prediction_json(model: &AnyModel, prediction: &Prediction) -> Value {
    match prediction {
        Prediction::Value(v) | Prediction::Probability(v) => json!(v),
        Prediction::Class {
            index,
            probabilities,
        } => {
            let classes: &[String] = match model {
                AnyModel::Softmax(m) => m.classes(),
                _ => &[],
            };
            let label = classes.get(*index).cloned();
            let by_label: serde_json::Map<String, Value> = classes
                .iter()
                .zip(probabilities)
                .map(|(c, p)| (c.clone(), json!(p)))
                .collect();
            json!({ "label": label, "probabilities": by_label })
        }
        Prediction::Cluster { id, distance } => json!({ "cluster": id, "distance": distance }),
    }
}

/// Everything a pipeline learns. Checkpoints persist exactly this, so a restored run continues
/// with bit-identical state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    pub features: FeatureSet,
    pub learner: Learners,
    pub metrics: ProgressiveMetrics,
    pub events_learned: u64,
    /// Set by [`defer_scoring`](Self::defer_scoring): each learned event's `(label, prediction)`
    /// waits here, in event order, instead of entering `metrics`.
    #[serde(skip)]
    pub scored: Option<Vec<(f64, f64)>>,
}

/// What became of one row of a batch in [`TrainedModel::learn_batch`].
#[derive(Clone, Debug, PartialEq)]
pub enum RowOutcome {
    /// Predicted by the model at `version` (events learned), then learned. `json` is the
    /// prediction as sinks and the server show it, when it was asked for.
    Learned {
        prediction: Prediction,
        json: Option<Value>,
        version: u64,
    },
    /// Refused without changing any state.
    Refused(DecodeError),
}

/// [`TrainedModel::learn_batch_prepared`]'s loop for its commonest case: one linear model, a
/// numeric target, the scored pairs left for another thread and no JSON wanted. The outcomes,
/// pairs and model are those of the general loop; what goes is its per-row dispatch on the kind
/// of learner, of target and of metrics (the trainer stage ran ~15% faster per event without
/// it). `version` is the number of events learned before the batch; returns how many it learned.
fn learn_linear_rows(
    model: &mut LinearModel,
    ys: &Float64Array,
    scratch: &FeatureBatch,
    scored: &mut Vec<(f64, f64)>,
    mut version: u64,
    mut on_row: impl FnMut(usize, RowOutcome),
) -> u64 {
    let first = version;
    let mut refused = scratch.rejected().iter().peekable();
    for row in 0..scratch.len() {
        if let Some((_, error)) = refused.next_if(|(r, _)| *r == row) {
            on_row(row, RowOutcome::Refused(error.clone()));
            continue;
        }
        if !ys.is_valid(row) {
            continue; // unlabelled
        }
        let y = ys.value(row);
        if let Some(x) = row_ahead(scratch, row) {
            model.prefetch(&x);
        }
        let (dense, indices, values) = scratch.row(row);
        match model.predict_learn_one(&FeatureVec::new(dense, indices, values), y, 1.0) {
            Ok(p) => {
                let prediction = eddy_ml::linear_prediction(model, p);
                if let Prediction::Probability(q) | Prediction::Value(q) = prediction {
                    scored.push((y, q));
                }
                on_row(
                    row,
                    RowOutcome::Learned {
                        prediction,
                        json: None,
                        version,
                    },
                );
                version += 1;
            }
            Err(e) => on_row(row, RowOutcome::Refused(learner_refusal(&e))),
        }
    }
    version - first
}

/// The sparse part of the row [`eddy_ml::PREFETCH_AHEAD`] rows after `row`, if the batch has
/// it: what a learner's prefetch asks the cache for while `row` is learned.
#[inline]
fn row_ahead(scratch: &FeatureBatch, row: usize) -> Option<FeatureVec<'_>> {
    let ahead = row + eddy_ml::PREFETCH_AHEAD;
    (ahead < scratch.len()).then(|| {
        let (indices, values) = scratch.sparse_row(ahead);
        FeatureVec::sparse(indices, values)
    })
}

fn learner_refusal(e: &MlError) -> DecodeError {
    DecodeError::record(
        DecodeErrorKind::OutOfRange,
        format!("the learner refused the event: {e}"),
    )
}

/// A batch's target column, its type resolved once.
#[derive(Clone, Copy)]
enum TargetColumn<'a> {
    Absent,
    Numbers(&'a Float64Array),
    Labels(&'a StringArray),
}

impl<'a> TargetColumn<'a> {
    fn of(column: Option<&'a dyn Array>) -> Self {
        let Some(column) = column else {
            return TargetColumn::Absent;
        };
        if let Some(numbers) = column.as_any().downcast_ref::<Float64Array>() {
            TargetColumn::Numbers(numbers)
        } else if let Some(labels) = column.as_any().downcast_ref::<StringArray>() {
            TargetColumn::Labels(labels)
        } else {
            TargetColumn::Absent
        }
    }

    /// The target of `row` as the learner takes it.
    #[inline]
    fn at(self, row: usize) -> Target<'a> {
        match self {
            TargetColumn::Numbers(a) if a.is_valid(row) => Target::Number(a.value(row)),
            TargetColumn::Labels(a) if a.is_valid(row) => Target::Label(a.value(row)),
            _ => Target::Unlabelled,
        }
    }
}

pub(crate) fn key_of(column: Option<&StringArray>, row: usize) -> Option<&str> {
    column.filter(|k| k.is_valid(row)).map(|k| k.value(row))
}

impl TrainedModel {
    /// A fresh model for `spec`; with `per_key = Some(max)`, one model per key value, at most
    /// `max` of them. Metrics cover the whole stream and the last `window` events.
    pub fn new(
        spec: &ModelSpec,
        learner: &LearnerParams,
        per_key: Option<usize>,
        window: usize,
    ) -> Result<TrainedModel> {
        let features = FeatureSet::new(&spec.feature_configs, &spec.schema)?;
        let model = learner.build(features.dim());
        let learner = match per_key {
            Some(max) => Learners::PerKey(PerKey::new(model, max)?),
            None => Learners::One(model),
        };
        Ok(TrainedModel {
            features,
            learner,
            metrics: ProgressiveMetrics::new(spec.task, window),
            scored: None,
            events_learned: 0,
        })
    }

    /// Progressive validation over one decoded batch: each row is predicted, then learned.
    /// `on_row` gets each row's outcome: the prediction made before learning it and the model
    /// version (events learned) that made it, or why the row was refused (a late event, a bad
    /// timestamp, a learner refusal); a refused row changed nothing. Supervised rows without a
    /// target are skipped.
    pub fn learn_batch(
        &mut self,
        spec: &ModelSpec,
        batch: &arrow_array::RecordBatch,
        scratch: &mut FeatureBatch,
        on_row: impl FnMut(usize, RowOutcome),
    ) -> Result<()> {
        self.learn_batch_prepared(spec, batch, None, scratch, true, on_row)
    }

    /// [`TrainedModel::learn_batch`] with the stateless features of `batch` computed ahead
    /// (by [`TrainedModel::preparer`], possibly on another thread), and each learned row's
    /// JSON only when `json` asks for it; the same learning either way.
    pub fn learn_batch_prepared(
        &mut self,
        spec: &ModelSpec,
        batch: &arrow_array::RecordBatch,
        prepared: Option<&mut Prepared>,
        scratch: &mut FeatureBatch,
        json: bool,
        mut on_row: impl FnMut(usize, RowOutcome),
    ) -> Result<()> {
        self.features.transform_prepared(batch, prepared, scratch)?;
        let target = TargetColumn::of(spec.target_index().map(|i| batch.column(i).as_ref()));
        let keys = spec
            .key_index()
            .and_then(|i| batch.column(i).as_any().downcast_ref::<StringArray>());
        let clustering = spec.task == Task::Clustering;
        if let (
            Learners::One(AnyModel::Linear(model)),
            TargetColumn::Numbers(ys),
            Some(scored),
            false,
        ) = (&mut self.learner, target, self.scored.as_mut(), json)
        {
            let learned =
                learn_linear_rows(model, ys, scratch, scored, self.events_learned, on_row);
            self.events_learned += learned;
            return Ok(());
        }
        let mut refused = scratch.rejected().iter().peekable();
        for row in 0..scratch.len() {
            if let Some((_, error)) = refused.next_if(|(r, _)| *r == row) {
                on_row(row, RowOutcome::Refused(error.clone()));
                continue;
            }
            let y = target.at(row);
            if !clustering && y == Target::Unlabelled {
                continue;
            }
            // A hashed model's coordinates are cache misses into a table of megabytes: asking
            // for those of a row a few ahead lets them load while this one is learned. (Per-key
            // models are small and found by key, so they go without.)
            if let (Learners::One(model), Some(x)) = (&self.learner, row_ahead(scratch, row)) {
                model.prefetch(&x);
            }
            let (dense, indices, values) = scratch.row(row);
            let x = FeatureVec::new(dense, indices, values);
            let version = self.events_learned;
            let model = self.learner.for_key_mut(key_of(keys, row));
            match model.predict_learn_one(&x, y, 1.0) {
                Ok(prediction) => {
                    let json = json.then(|| prediction_json(model, &prediction));
                    if clustering {
                        self.metrics.update_point(&x, &y, &prediction);
                    } else if let Some(scored) = self.scored.as_mut() {
                        scored.extend(self.metrics.scored_pair(&y, &prediction));
                    } else {
                        self.metrics.update_prediction(&y, &prediction);
                    }
                    self.events_learned += 1;
                    on_row(
                        row,
                        RowOutcome::Learned {
                            prediction,
                            json,
                            version,
                        },
                    );
                }
                Err(e) => on_row(row, RowOutcome::Refused(learner_refusal(&e))),
            }
        }
        Ok(())
    }

    /// From now on, learned events leave their `(label, prediction)` pairs in
    /// [`scored`](Self::scored) instead of scoring them, so that another thread can: applying
    /// the pairs in order with [`ProgressiveMetrics::update`] gives `metrics` exactly what
    /// scoring them here would have. Binary and regression models only (false otherwise, and
    /// nothing changes).
    pub fn defer_scoring(&mut self) -> bool {
        let deferrable = matches!(
            self.metrics.task(),
            eddy_ml::Task::Binary | eddy_ml::Task::Regression
        );
        if deferrable && self.scored.is_none() {
            self.scored = Some(Vec::new());
        }
        deferrable
    }

    /// What can compute this model's stateless features ahead of learning, if it has any.
    pub fn preparer(&self) -> Option<Preparer> {
        Preparer::of(&self.features)
    }

    /// An immutable copy for serving; its version is the number of events learned.
    pub fn snapshot(&self, spec: Arc<ModelSpec>) -> ServingSnapshot {
        self.snapshot_as(spec, self.events_learned)
    }

    /// An immutable copy for serving under an explicit version (a registry version).
    pub fn snapshot_as(&self, spec: Arc<ModelSpec>, version: u64) -> ServingSnapshot {
        ServingSnapshot {
            spec,
            version,
            events_learned: self.events_learned,
            features: self.features.clone(),
            learner: self.learner.clone(),
            metrics: self.metrics.values(),
            window_metrics: self.metrics.window_values(),
            published_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
