//! The trained model, its fixed spec, and the immutable snapshots that serving reads.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use arrow_array::{Array, Float64Array};
use eddy_features::{
    BatchBuilder, DecodeError, DecodeErrorKind, FeatureBatch, FeatureConfig, FeatureSet, Field,
    FieldType, Schema,
};
use eddy_ml::{
    FeatureVec, Learner, LinearModel, MetricValues, MlError, ProgressiveMetrics, SgdValidParams,
    Task,
};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The fixed description of a model: what it reads, what it predicts, under which name it is served.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub target: String,
    pub task: Task,
    pub key_field: Option<String>,
    pub feature_configs: Vec<FeatureConfig>,
    /// Training schema: feature fields, then the target (required), then the key (optional).
    pub schema: Arc<Schema>,
    /// The same fields in the same order, with the target optional: requests carry no label.
    pub serving_schema: Arc<Schema>,
}

impl ModelSpec {
    /// Resolves the fields that features, target and key need into one schema.
    pub fn new(
        name: &str,
        features: &[FeatureConfig],
        target: &str,
        task: Task,
        key_field: Option<&str>,
    ) -> Result<ModelSpec> {
        let feature_fields: Vec<Field> = features.iter().flat_map(FeatureConfig::fields).collect();
        if feature_fields.iter().any(|f| f.name == target) {
            return Err(ModelError::TargetIsFeature {
                field: target.to_owned(),
            });
        }
        let mut fields = feature_fields;
        fields.push(Field {
            name: target.to_owned(),
            ty: FieldType::Number,
            required: true,
        });
        if let Some(key) = key_field {
            fields.push(Field {
                name: key.to_owned(),
                ty: FieldType::String,
                required: false,
            });
        }
        let schema = Schema::merge(fields)?;
        let serving_fields = schema
            .fields()
            .iter()
            .map(|f| Field {
                required: f.required && f.name != target,
                ..f.clone()
            })
            .collect();
        let serving_schema = Schema::new(serving_fields)?;
        Ok(ModelSpec {
            name: name.to_owned(),
            target: target.to_owned(),
            task,
            key_field: key_field.map(str::to_owned),
            feature_configs: features.to_vec(),
            schema: Arc::new(schema),
            serving_schema: Arc::new(serving_schema),
        })
    }

    /// Index of the target column in [`ModelSpec::schema`].
    pub fn target_index(&self) -> usize {
        self.schema
            .index_of(&self.target)
            .expect("the target is always part of the schema")
    }

    /// Index of the key column, if the model has a key.
    pub fn key_index(&self) -> Option<usize> {
        self.key_field
            .as_deref()
            .and_then(|k| self.schema.index_of(k))
    }

    /// A batch builder for the training schema. A binary task's target must be 0 or 1 (or
    /// true/false): anything else is refused at decoding, so it never reaches feature state.
    pub fn batch_builder(&self) -> BatchBuilder {
        self.builder_for(Arc::clone(&self.schema))
    }

    /// A batch builder for requests: the same fields and checks, the target optional.
    pub fn serving_builder(&self) -> BatchBuilder {
        self.builder_for(Arc::clone(&self.serving_schema))
    }

    fn builder_for(&self, schema: Arc<Schema>) -> BatchBuilder {
        let mut builder = BatchBuilder::new(schema);
        if self.task == Task::Binary {
            builder.require_binary(self.target_index());
        }
        builder
    }
}

/// Everything a pipeline learns. Checkpoints persist exactly this, so a restored run continues
/// with bit-identical state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    pub features: FeatureSet,
    pub learner: LinearModel,
    pub metrics: ProgressiveMetrics,
    pub events_learned: u64,
}

impl TrainedModel {
    /// A fresh model for `spec`, with metrics over the whole stream and the last `window` events.
    pub fn new(spec: &ModelSpec, learner: &SgdValidParams, window: usize) -> Result<TrainedModel> {
        let features = FeatureSet::new(&spec.feature_configs, &spec.schema)?;
        let learner = learner.build(features.dim());
        Ok(TrainedModel {
            features,
            learner,
            metrics: ProgressiveMetrics::new(spec.task, window),
            events_learned: 0,
        })
    }

    /// Progressive validation over one decoded batch: each row is predicted, then learned.
    /// `on_row` gets each row's outcome: the prediction made before learning it and the model
    /// version (events learned) that made it, or why the row was refused (a late event, a bad
    /// timestamp, a learner refusal); a refused row changed nothing. Rows with a null target are
    /// skipped.
    pub fn learn_batch(
        &mut self,
        spec: &ModelSpec,
        batch: &arrow_array::RecordBatch,
        scratch: &mut FeatureBatch,
        mut on_row: impl FnMut(usize, RowOutcome),
    ) -> Result<()> {
        self.features.transform(batch, true, scratch)?;
        let target = batch
            .column(spec.target_index())
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("number fields decode to Float64 columns");
        let mut refused = scratch.rejected().iter().peekable();
        for row in 0..scratch.len() {
            if let Some((_, error)) = refused.next_if(|(r, _)| *r == row) {
                on_row(row, RowOutcome::Refused(error.clone()));
                continue;
            }
            if target.is_null(row) {
                continue;
            }
            let (dense, indices, values) = scratch.row(row);
            let x = FeatureVec::new(dense, indices, values);
            let y = target.value(row);
            let version = self.events_learned;
            match self.learner.predict_learn_one(&x, y, 1.0) {
                Ok(prediction) => {
                    self.metrics.update(y, prediction);
                    self.events_learned += 1;
                    on_row(
                        row,
                        RowOutcome::Learned {
                            prediction,
                            version,
                        },
                    );
                }
                Err(e) => on_row(row, RowOutcome::Refused(learner_refusal(&e))),
            }
        }
        Ok(())
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

/// What became of one row of a batch in [`TrainedModel::learn_batch`].
#[derive(Clone, Debug, PartialEq)]
pub enum RowOutcome {
    /// Predicted by the model at `version` (events learned), then learned.
    Learned { prediction: f64, version: u64 },
    /// Refused without changing any state.
    Refused(DecodeError),
}

fn learner_refusal(e: &MlError) -> DecodeError {
    DecodeError::record(
        DecodeErrorKind::OutOfRange,
        format!("the learner refused the event: {e}"),
    )
}

/// The decoded fields of one row as a JSON object: what a dead letter can show of a record
/// refused after decoding (the raw bytes are gone by then).
pub fn row_json(batch: &arrow_array::RecordBatch, row: usize) -> String {
    let mut object = serde_json::Map::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let value = if column.is_null(row) {
            serde_json::Value::Null
        } else if let Some(numbers) = column.as_any().downcast_ref::<Float64Array>() {
            serde_json::json!(numbers.value(row))
        } else if let Some(strings) = column.as_any().downcast_ref::<arrow_array::StringArray>() {
            serde_json::json!(strings.value(row))
        } else {
            continue;
        };
        object.insert(field.name().clone(), value);
    }
    serde_json::Value::Object(object).to_string()
}

/// Why one instance of a prediction request was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceError {
    pub index: usize,
    pub error: DecodeError,
}

impl InstanceError {
    /// The offending field as a JSON path into the request, e.g. `instances[2].x3`.
    pub fn field_path(&self) -> String {
        match &self.error.field {
            Some(field) => format!("instances[{}].{field}", self.index),
            None => format!("instances[{}]", self.index),
        }
    }
}

impl std::fmt::Display for InstanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "instances[{}]: {}", self.index, self.error)
    }
}

impl std::error::Error for InstanceError {}

/// A frozen copy of a model at one version; what the HTTP server answers from.
#[derive(Clone, Debug)]
pub struct ServingSnapshot {
    pub spec: Arc<ModelSpec>,
    /// The version answers carry: events learned for a live model, the registry version for a
    /// model served from a registry.
    pub version: u64,
    pub events_learned: u64,
    pub features: FeatureSet,
    pub learner: LinearModel,
    pub metrics: MetricValues,
    pub window_metrics: MetricValues,
    pub published_at: SystemTime,
}

impl ServingSnapshot {
    /// Predictions for raw JSON instances, decoded and transformed by the training code.
    pub fn predict_json(
        &self,
        instances: &[&[u8]],
    ) -> std::result::Result<Vec<f64>, InstanceError> {
        let mut builder = self.spec.serving_builder();
        for (index, raw) in instances.iter().enumerate() {
            builder
                .push_json(raw)
                .map_err(|error| InstanceError { index, error })?;
        }
        let batch = builder.finish();
        let mut features = FeatureBatch::new();
        self.features
            .transform_frozen(&batch, &mut features)
            .expect("a batch built from the serving schema always matches the feature set");
        if let Some((index, error)) = features.rejected().first() {
            return Err(InstanceError {
                index: *index,
                error: error.clone(),
            });
        }
        Ok((0..features.len())
            .map(|row| {
                let (dense, indices, values) = features.row(row);
                self.learner
                    .predict_one(&FeatureVec::new(dense, indices, values))
            })
            .collect())
    }
}

/// A lock-free, swappable pointer to the newest [`ServingSnapshot`] of one model.
#[derive(Clone, Debug)]
pub struct ModelHandle {
    name: Arc<str>,
    current: Arc<ArcSwap<ServingSnapshot>>,
}

impl ModelHandle {
    pub fn new(snapshot: ServingSnapshot) -> ModelHandle {
        ModelHandle {
            name: Arc::from(snapshot.spec.name.as_str()),
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest snapshot. Never blocks, whatever training is doing.
    pub fn load(&self) -> Arc<ServingSnapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` the one new requests see.
    pub fn publish(&self, snapshot: ServingSnapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_ml::Loss;

    fn spec() -> ModelSpec {
        let features = vec![
            FeatureConfig::StandardScaler {
                fields: vec!["a".into(), "b".into()],
            },
            FeatureConfig::Hash {
                fields: vec!["c".into()],
                bits: 4,
                seed: 0,
            },
        ];
        ModelSpec::new("m", &features, "y", Task::Binary, Some("k")).expect("valid spec")
    }

    #[test]
    fn target_may_not_be_a_feature() {
        let features = vec![FeatureConfig::StandardScaler {
            fields: vec!["y".into()],
        }];
        let err = ModelSpec::new("m", &features, "y", Task::Binary, None).expect_err("must refuse");
        assert!(err.to_string().contains("\"y\""), "{err}");
    }

    #[test]
    fn serving_schema_keeps_order_and_frees_only_the_target() {
        let spec = spec();
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&spec.schema), names(&spec.serving_schema));
        let target = &spec.serving_schema.fields()[spec.target_index()];
        assert!(!target.required);
        let a = &spec.serving_schema.fields()[spec.serving_schema.index_of("a").expect("a")];
        assert!(a.required, "features stay required when serving");
    }

    #[test]
    fn binary_targets_are_checked_at_decoding() {
        let spec = spec();
        let mut builder = spec.batch_builder();
        builder
            .push_json(br#"{"a": 1, "b": 2, "y": 1}"#)
            .expect("1 is a class");
        builder
            .push_json(br#"{"a": 1, "b": 2, "y": 0}"#)
            .expect("0 is a class");
        let err = builder
            .push_json(br#"{"a": 1, "b": 2, "y": 2}"#)
            .expect_err("2 is not a class");
        assert_eq!(err.field.as_deref(), Some("y"));
        assert_eq!(builder.len(), 2);
    }

    #[test]
    fn serving_predicts_what_training_would_predict() {
        let spec = Arc::new(spec());
        let params = LinearModel::params(Loss::Logistic).check().expect("valid");
        let mut model = TrainedModel::new(&spec, &params, 10).expect("model");
        let mut builder = spec.batch_builder();
        for i in 0..50 {
            let line = format!(
                r#"{{"a": {}, "b": {}, "c": "v{}", "y": {}}}"#,
                i,
                i % 7,
                i % 3,
                i % 2
            );
            builder.push_json(line.as_bytes()).expect("valid record");
        }
        let batch = builder.finish();
        let mut scratch = FeatureBatch::new();
        let mut seen = 0;
        model
            .learn_batch(&spec, &batch, &mut scratch, |_, outcome| {
                assert!(matches!(outcome, RowOutcome::Learned { .. }), "{outcome:?}");
                seen += 1;
            })
            .expect("learns");
        assert_eq!(seen, 50);
        assert_eq!(model.events_learned, 50);

        let handle = ModelHandle::new(model.snapshot(Arc::clone(&spec)));
        let raw = br#"{"a": 3, "b": 1, "c": "v1"}"#;
        let served = handle
            .load()
            .predict_json(&[raw.as_slice()])
            .expect("valid")[0];

        let mut frozen_input = spec.serving_builder();
        frozen_input.push_json(raw).expect("valid");
        let mut fb = FeatureBatch::new();
        model
            .features
            .transform(&frozen_input.finish(), false, &mut fb)
            .expect("transform");
        let (d, i, v) = fb.row(0);
        let direct = model.learner.predict_one(&FeatureVec::new(d, i, v));
        assert_eq!(served.to_bits(), direct.to_bits());
        assert_eq!(handle.load().version, 50);
    }

    #[test]
    fn bad_instances_name_their_field() {
        let spec = Arc::new(spec());
        let params = LinearModel::params(Loss::Logistic).check().expect("valid");
        let model = TrainedModel::new(&spec, &params, 10).expect("model");
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
