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
        // the general loop's prefetch of a row a few ahead
        let ahead = row + eddy_ml::PREFETCH_AHEAD;
        if ahead < scratch.len() {
            let (indices, values) = scratch.sparse_row(ahead);
            model.prefetch(&FeatureVec::sparse(indices, values));
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
        prepared: Option<Prepared>,
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
            let ahead = row + eddy_ml::PREFETCH_AHEAD;
            if let (Learners::One(model), true) = (&self.learner, ahead < scratch.len()) {
                let (indices, values) = scratch.sparse_row(ahead);
                model.prefetch(&FeatureVec::sparse(indices, values));
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
mod tests {
    use super::*;
    use crate::spec::tests::{features, spec};
    use eddy_features::FeatureConfig;
    use eddy_ml::{LinearModel, Loss, SoftmaxModel, StreamingKMeans};

    fn logistic() -> LearnerParams {
        LearnerParams::Linear(LinearModel::params(Loss::Logistic).check().expect("valid"))
    }

    fn learn(model: &mut TrainedModel, spec: &ModelSpec, lines: &[String]) -> Vec<RowOutcome> {
        let mut builder = spec.batch_builder();
        for line in lines {
            builder.push_json(line.as_bytes()).expect("valid record");
        }
        let mut outcomes = Vec::new();
        model
            .learn_batch(spec, &builder.finish(), &mut FeatureBatch::new(), |_, o| {
                outcomes.push(o)
            })
            .expect("learns");
        outcomes
    }

    #[test]
    fn the_linear_loop_learns_as_the_general_one() {
        // a window that refuses late events (a learner refuses nothing a valid batch can hold)
        let features: Vec<FeatureConfig> = serde_json::from_str(
            r#"[
                {"type": "standard_scaler", "fields": ["a", "b"]},
                {"type": "hash", "fields": ["c"], "bits": 4, "seed": 0},
                {"type": "window", "field": "a", "key": "c", "time_field": "ts", "unit": "s",
                 "size_seconds": 60, "slide_seconds": 20, "aggregates": ["mean"],
                 "max_out_of_orderness_seconds": 0, "allowed_lateness_seconds": 0}
            ]"#,
        )
        .expect("configs parse");
        let lines: Vec<String> = (0..120)
            .map(|i: u64| {
                let ts = if i % 9 == 8 { 3 } else { 1_000 + i * 5 };
                let y = (i * 7 % 5) % 2;
                format!(
                    r#"{{"a": {}, "b": {}, "c": "v{}", "ts": {ts}, "y": {y}}}"#,
                    i as f64 * 0.3 - 9.0,
                    (i % 7) as f64,
                    i % 5
                )
            })
            .collect();
        for (loss, task) in [
            (Loss::Logistic, Task::Binary),
            (Loss::Hinge, Task::Binary),
            (Loss::Squared, Task::Regression),
        ] {
            let spec = ModelSpec::new("m", &features, Some("y"), task, None).expect("spec");
            let params = LearnerParams::Linear(LinearModel::params(loss).check().expect("valid"));
            let mut general = TrainedModel::new(&spec, &params, None, 10).expect("model");
            let mut linear = general.clone();
            assert!(linear.defer_scoring());
            let mut seen = [0; 2]; // learned, refused
            for chunk in lines.chunks(25) {
                let mut builder = spec.batch_builder();
                for line in chunk {
                    builder.push_json(line.as_bytes()).expect("valid record");
                }
                let batch = builder.finish();
                let mut outcomes = [Vec::new(), Vec::new()];
                for (model, out) in [&mut general, &mut linear].into_iter().zip(&mut outcomes) {
                    model
                        .learn_batch_prepared(
                            &spec,
                            &batch,
                            None,
                            &mut FeatureBatch::new(),
                            false,
                            |row, o| out.push((row, o)),
                        )
                        .expect("learns");
                }
                assert_eq!(outcomes[0], outcomes[1], "{loss:?}");
                for (_, o) in &outcomes[0] {
                    seen[usize::from(matches!(o, RowOutcome::Refused(_)))] += 1;
                }
                for (y, p) in linear.scored.as_mut().expect("deferred").drain(..) {
                    linear.metrics.update(y, p);
                }
            }
            assert!(
                seen.iter().all(|&n| n > 0) || loss == Loss::Squared,
                "{seen:?}"
            );
            assert!(seen[0] > 50 && seen[1] > 5, "{seen:?}");
            linear.scored = None;
            assert_eq!(linear, general, "{loss:?}");
        }
    }

    #[test]
    fn serving_predicts_what_training_would_predict() {
        let spec = Arc::new(spec());
        let mut model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
        let lines: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    r#"{{"a": {}, "b": {}, "c": "v{}", "y": {}}}"#,
                    i,
                    i % 7,
                    i % 3,
                    i % 2
                )
            })
            .collect();
        let outcomes = learn(&mut model, &spec, &lines);
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, RowOutcome::Learned { .. })));
        assert_eq!(model.events_learned, 50);

        let handle = ModelHandle::new(model.snapshot(Arc::clone(&spec)));
        let raw = br#"{"a": 3, "b": 1, "c": "v1"}"#;
        let served = handle
            .load()
            .predict_json(&[raw.as_slice()])
            .expect("valid")[0]
            .as_f64()
            .expect("number");

        let mut frozen_input = spec.serving_builder();
        frozen_input.push_json(raw).expect("valid");
        let mut fb = FeatureBatch::new();
        model
            .features
            .transform(&frozen_input.finish(), false, &mut fb)
            .expect("transform");
        let (d, i, v) = fb.row(0);
        let direct = match model
            .learner
            .primary()
            .predict_one(&FeatureVec::new(d, i, v))
        {
            Prediction::Probability(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(served.to_bits(), direct.to_bits());
        assert_eq!(handle.load().version, 50);
    }

    #[test]
    fn explanations_add_up_to_the_margin() {
        let spec = Arc::new(spec());
        let mut model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
        let lines: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    r#"{{"a": {}, "b": {}, "c": "v{}", "y": {}}}"#,
                    i,
                    i % 7,
                    i % 3,
                    i % 2
                )
            })
            .collect();
        learn(&mut model, &spec, &lines);
        let snapshot = model.snapshot(Arc::clone(&spec));
        let raw = br#"{"a": 3, "b": 1, "c": "v1"}"#.as_slice();
        let explained = snapshot
            .explain_json(&[raw])
            .expect("valid")
            .expect("linear");
        let p = snapshot.predict_json(&[raw]).expect("valid")[0]
            .as_f64()
            .expect("number");
        let margin = explained[0]["margin"].as_f64().expect("margin");
        assert!(
            (1.0 / (1.0 + (-margin).exp()) - p).abs() < 1e-12,
            "{explained:?} vs {p}"
        );
        let names: Vec<&String> = explained[0]["contributions"]
            .as_object()
            .expect("map")
            .keys()
            .collect();
        assert!(names.iter().any(|n| n.as_str() == "a"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("hash(c)")), "{names:?}");
    }

    #[test]
    fn per_key_models_learn_and_answer_per_key() {
        let spec = Arc::new(spec());
        let mut model = TrainedModel::new(&spec, &logistic(), Some(2), 10).expect("model");
        // Key "p" always clicks, key "n" never does.
        let lines: Vec<String> = (0..200)
            .map(|i| {
                let (k, y) = if i % 2 == 0 { ("p", 1) } else { ("n", 0) };
                format!(r#"{{"a": 1, "b": 2, "c": "v", "k": "{k}", "y": {y}}}"#)
            })
            .collect();
        learn(&mut model, &spec, &lines);
        assert_eq!(model.learner.len(), 2);
        let snapshot = model.snapshot(Arc::clone(&spec));
        let ask = |k: &str| {
            let raw = format!(r#"{{"a": 1, "b": 2, "c": "v", "k": "{k}"}}"#);
            snapshot.predict_json(&[raw.as_bytes()]).expect("valid")[0]
                .as_f64()
                .expect("number")
        };
        assert!(ask("p") > 0.9, "{}", ask("p"));
        assert!(ask("n") < 0.1, "{}", ask("n"));
        assert!(
            (ask("new") - 0.5).abs() < 1e-12,
            "an unknown key gets the untrained template"
        );
    }

    #[test]
    fn softmax_labels_may_be_strings_or_integers() {
        let spec = Arc::new(
            ModelSpec::new("m", &features(), Some("y"), Task::Multiclass, None).expect("spec"),
        );
        let params = LearnerParams::Softmax(SoftmaxModel::params().check().expect("valid"));
        let mut model = TrainedModel::new(&spec, &params, None, 10).expect("model");
        let lines: Vec<String> = (0..300)
            .map(|i| match i % 3 {
                0 => format!(r#"{{"a": {}, "b": 0, "c": "u", "y": "cat"}}"#, 5 + i % 2),
                1 => format!(r#"{{"a": {}, "b": 0, "c": "v", "y": 7}}"#, -5 - i % 2),
                _ => format!(r#"{{"a": 0, "b": {}, "c": "w", "y": "7"}}"#, -5 - i % 2),
            })
            .collect();
        learn(&mut model, &spec, &lines);
        let snapshot = model.snapshot(Arc::clone(&spec));
        let answer = snapshot
            .predict_json(&[br#"{"a": 5, "b": 0, "c": "u"}"#.as_slice()])
            .expect("valid");
        assert_eq!(answer[0]["label"], "cat", "{answer:?}");
        assert_eq!(
            answer[0]["probabilities"].as_object().map(|o| o.len()),
            Some(2),
            "7 and \"7\" are one class"
        );
        assert!(model.metrics.values().iter().any(|(n, _)| *n == "macro_f1"));
    }

    #[test]
    fn kmeans_needs_no_target_and_scores_a_reference_label() {
        let features = vec![FeatureConfig::StandardScaler {
            fields: vec!["a".into(), "b".into()],
        }];
        let spec = Arc::new(
            ModelSpec::new("m", &features, Some("blob"), Task::Clustering, None).expect("spec"),
        );
        let params = LearnerParams::KMeans(StreamingKMeans::params(2).check().expect("valid"));
        let mut model = TrainedModel::new(&spec, &params, None, 50).expect("model");
        let lines: Vec<String> = (0..400)
            .map(|i| {
                let (c, blob) = if i % 2 == 0 {
                    (10.0, "x")
                } else {
                    (-10.0, "z")
                };
                let jitter = ((i * 37) % 11) as f64 / 10.0;
                format!(
                    r#"{{"a": {}, "b": {}, "blob": "{blob}"}}"#,
                    c + jitter,
                    c - jitter
                )
            })
            .collect();
        let outcomes = learn(&mut model, &spec, &lines);
        assert_eq!(outcomes.len(), 400);
        let values: std::collections::BTreeMap<_, _> =
            model.metrics.window_values().into_iter().collect();
        assert!(values["ari"] > 0.99, "{values:?}");
        assert!(values.contains_key("inertia"));
        let unlabelled = Arc::new(
            ModelSpec::new("m", &features, None, Task::Clustering, None).expect("no label needed"),
        );
        assert!(unlabelled.target_index().is_none());
    }

    #[test]
    fn bad_instances_name_their_field() {
        let spec = Arc::new(spec());
        let model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
        let snapshot = model.snapshot(spec);
        let good = br#"{"a": 1, "b": 2}"#.as_slice();
        let bad = br#"{"a": "one", "b": 2}"#.as_slice();
        let err = snapshot
            .predict_json(&[good, bad])
            .expect_err("bad instance");
        assert_eq!(err.index, 1);
        assert_eq!(err.field_path(), "instances[1].a");
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ModelHandle>();
        assert_send_sync::<ServingSnapshot>();
        assert_send_sync::<TrainedModel>();
    }
}
