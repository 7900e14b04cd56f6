//! What serving reads: immutable snapshots of a trained model behind a lock-free pointer.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use arrow_array::{Array, Float64Array, StringArray};
use eddy_features::{DecodeError, FeatureBatch, FeatureSet};
use eddy_ml::{AnyModel, FeatureVec, MetricValues};
use serde_json::{json, Value};

use crate::model::{key_of, prediction_json, Learners};
use crate::spec::ModelSpec;

/// The decoded fields of one row as a JSON object: what a dead letter can show of a record
/// refused after decoding (the raw bytes are gone by then).
pub fn row_json(batch: &arrow_array::RecordBatch, row: usize) -> String {
    row_object(batch, row, None).to_string()
}

/// The decoded fields of one row as a JSON object, leaving out column `skip` (e.g. the target).
pub fn row_object(batch: &arrow_array::RecordBatch, row: usize, skip: Option<usize>) -> Value {
    let mut object = serde_json::Map::new();
    let schema = batch.schema();
    for (index, (field, column)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        if Some(index) == skip {
            continue;
        }
        let value = if column.is_null(row) {
            Value::Null
        } else if let Some(numbers) = column.as_any().downcast_ref::<Float64Array>() {
            json!(numbers.value(row))
        } else if let Some(value) = eddy_features::string_value(column.as_ref(), row) {
            // plain or dictionary-encoded (a field only hashers read)
            json!(value)
        } else if *column.data_type() == eddy_features::dictionary_strings() {
            // a null value in the dictionary, as the per-record path reads it
            Value::Null
        } else {
            continue;
        };
        object.insert(field.name().clone(), value);
    }
    Value::Object(object)
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
    pub learner: Learners,
    pub metrics: MetricValues,
    pub window_metrics: MetricValues,
    pub published_at: SystemTime,
}

impl ServingSnapshot {
    /// Decodes and transforms request instances with the training code.
    fn features_of(
        &self,
        instances: &[&[u8]],
    ) -> std::result::Result<(arrow_array::RecordBatch, FeatureBatch), InstanceError> {
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
        Ok((batch, features))
    }

    /// Predictions for raw JSON instances, decoded and transformed by the training code; each
    /// as [`prediction_json`] shows it. A per-key model answers with the instance's key's model.
    pub fn predict_json(
        &self,
        instances: &[&[u8]],
    ) -> std::result::Result<Vec<Value>, InstanceError> {
        let (batch, features) = self.features_of(instances)?;
        let keys = self
            .spec
            .key_index()
            .and_then(|i| batch.column(i).as_any().downcast_ref::<StringArray>());
        Ok((0..features.len())
            .map(|row| {
                let (dense, indices, values) = features.row(row);
                let model = self.learner.for_key(key_of(keys, row));
                prediction_json(
                    model,
                    &model.predict_one(&FeatureVec::new(dense, indices, values)),
                )
            })
            .collect())
    }

    /// For linear models: each instance's margin split into the intercept and one contribution
    /// (weight × value) per named feature; hashed entries are named by their bucket and summed
    /// when they share one. `None` when the model is not linear.
    pub fn explain_json(
        &self,
        instances: &[&[u8]],
    ) -> std::result::Result<Option<Vec<Value>>, InstanceError> {
        let (batch, features) = self.features_of(instances)?;
        let keys = self
            .spec
            .key_index()
            .and_then(|i| batch.column(i).as_any().downcast_ref::<StringArray>());
        let names = self.features.describe();
        let mut out = Vec::with_capacity(features.len());
        for row in 0..features.len() {
            let AnyModel::Linear(model) = self.learner.for_key(key_of(keys, row)) else {
                return Ok(None);
            };
            let (dense, indices, values) = features.row(row);
            let mut contributions = std::collections::BTreeMap::<String, f64>::new();
            for (j, x) in dense.iter().enumerate() {
                let name = names.get(j).cloned().unwrap_or_else(|| format!("x[{j}]"));
                *contributions.entry(name).or_default() += model.weight(j).unwrap_or(0.0) * x;
            }
            for (&i, &x) in indices.iter().zip(values) {
                let i = i as usize;
                let name = self
                    .features
                    .describe_coordinate(i)
                    .unwrap_or_else(|| format!("x[{i}]"));
                *contributions.entry(name).or_default() += model.weight(i).unwrap_or(0.0) * x;
            }
            let margin = model.intercept() + contributions.values().sum::<f64>();
            out.push(json!({
                "intercept": model.intercept(),
                "margin": margin,
                "contributions": contributions,
            }));
        }
        Ok(Some(out))
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
