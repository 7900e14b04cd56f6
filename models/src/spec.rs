//! `ModelSpec`: the fixed description of a model (name, task, target, key, feature configs)
//! and the training and serving schemas it derives.

use std::sync::Arc;

use eddy_features::{BatchBuilder, FeatureConfig, Field, FieldType, Schema};
use eddy_ml::Task;

use crate::error::{ModelError, Result};

/// The fixed description of a model: what it reads, what it predicts, under which name it is served.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    /// The outcome field: the value to predict (supervised tasks) or, for clustering, an optional
    /// reference label scored by the adjusted Rand index. Never a feature.
    pub target: Option<String>,
    pub task: Task,
    pub key_field: Option<String>,
    pub feature_configs: Vec<FeatureConfig>,
    /// Training schema: feature fields, then the target, then the key (optional).
    pub schema: Arc<Schema>,
    /// The same fields in the same order, with the target optional: requests carry no label.
    pub serving_schema: Arc<Schema>,
}

impl ModelSpec {
    /// Resolves the fields that features, target and key need into one schema. Binary and
    /// regression targets are numbers; class labels and cluster reference labels are strings
    /// (integers read as their decimal text).
    pub fn new(
        name: &str,
        features: &[FeatureConfig],
        target: Option<&str>,
        task: Task,
        key_field: Option<&str>,
    ) -> Result<ModelSpec> {
        let feature_fields: Vec<Field> = features.iter().flat_map(FeatureConfig::fields).collect();
        let mut fields = feature_fields;
        if let Some(target) = target {
            if fields.iter().any(|f| f.name == target) {
                return Err(ModelError::TargetIsFeature {
                    field: target.to_owned(),
                });
            }
            let (ty, required) = match task {
                Task::Binary | Task::Regression => (FieldType::Number, true),
                Task::Multiclass => (FieldType::String, true),
                Task::Clustering => (FieldType::String, false),
            };
            fields.push(Field {
                name: target.to_owned(),
                ty,
                required,
            });
        } else if task != Task::Clustering {
            return Err(ModelError::MissingTarget);
        }
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
                required: f.required && Some(f.name.as_str()) != target,
                ..f.clone()
            })
            .collect();
        let serving_schema = Schema::new(serving_fields)?;
        Ok(ModelSpec {
            name: name.to_owned(),
            target: target.map(str::to_owned),
            task,
            key_field: key_field.map(str::to_owned),
            feature_configs: features.to_vec(),
            schema: Arc::new(schema),
            serving_schema: Arc::new(serving_schema),
        })
    }

    /// Index of the target column in [`ModelSpec::schema`], if the model has one.
    pub fn target_index(&self) -> Option<usize> {
        self.target.as_deref().and_then(|t| self.schema.index_of(t))
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
        if let (Task::Binary, Some(i)) = (self.task, self.target_index()) {
            builder.require_binary(i);
        }
        builder
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn features() -> Vec<FeatureConfig> {
        vec![
            FeatureConfig::StandardScaler {
                fields: vec!["a".into(), "b".into()],
            },
            FeatureConfig::Hash {
                fields: vec!["c".into()],
                bits: 4,
                seed: 0,
            },
        ]
    }

    pub(crate) fn spec() -> ModelSpec {
        ModelSpec::new("m", &features(), Some("y"), Task::Binary, Some("k")).expect("valid spec")
    }

    #[test]
    fn target_may_not_be_a_feature() {
        let features = vec![FeatureConfig::StandardScaler {
            fields: vec!["y".into()],
        }];
        let err =
            ModelSpec::new("m", &features, Some("y"), Task::Binary, None).expect_err("must refuse");
        assert!(err.to_string().contains("\"y\""), "{err}");
        let err =
            ModelSpec::new("m", &features, None, Task::Regression, None).expect_err("no target");
        assert!(matches!(err, ModelError::MissingTarget));
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
        let target = &spec.serving_schema.fields()[spec.target_index().expect("target")];
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
}
