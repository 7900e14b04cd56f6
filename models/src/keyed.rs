//! The per-key state of a [`TrainedModel`] split by part: what moves with a Kafka partition.

use std::collections::BTreeMap;

use eddy_features::KeyedState;
use eddy_ml::AnyModel;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Learners, TrainedModel};
use crate::spec::ModelSpec;

/// Some keys' state: their per-key feature state and, with a model per key, their models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyedPart {
    pub features: KeyedState,
    /// `(key, model)` in key order.
    pub models: Vec<(String, AnyModel)>,
}

impl KeyedPart {
    /// Keyed entries held (a key counts once per keyed operator and once for its model).
    pub fn len(&self) -> usize {
        self.features.len() + self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TrainedModel {
    /// The fields that key state: the features' key fields and, with a model per key, the
    /// model's key field; each once, sorted.
    pub fn key_fields<'a>(&'a self, spec: &'a ModelSpec) -> Vec<&'a str> {
        let mut fields = self.features.key_fields();
        if let (Learners::PerKey(_), Some(key)) = (&self.learner, spec.key_field.as_deref()) {
            fields.push(key);
        }
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// Copies the per-key state into parts: `part_of(key_field, key)` names each key's part,
    /// or `None` to leave it out.
    pub fn keyed_parts(
        &self,
        spec: &ModelSpec,
        mut part_of: impl FnMut(&str, &str) -> Option<u32>,
    ) -> BTreeMap<u32, KeyedPart> {
        let mut parts: BTreeMap<u32, KeyedPart> = self
            .features
            .keyed_parts(&mut part_of)
            .into_iter()
            .map(|(part, features)| {
                let models = Vec::new();
                (part, KeyedPart { features, models })
            })
            .collect();
        if let (Learners::PerKey(models), Some(field)) = (&self.learner, spec.key_field.as_deref())
        {
            for (key, model) in models.iter() {
                if let Some(part) = part_of(field, key) {
                    let entry = parts.entry(part).or_default();
                    entry.models.push((key.to_owned(), model.clone()));
                }
            }
        }
        parts
    }

    /// Drops the per-key state of every key for which `remove(key_field, key)` is true.
    pub fn remove_keys(&mut self, spec: &ModelSpec, mut remove: impl FnMut(&str, &str) -> bool) {
        self.features.remove_keys(&mut remove);
        if let (Learners::PerKey(models), Some(field)) =
            (&mut self.learner, spec.key_field.as_deref())
        {
            let gone: Vec<String> = models
                .iter()
                .filter(|(key, _)| remove(field, key))
                .map(|(key, _)| key.to_owned())
                .collect();
            for key in gone {
                models.remove(&key);
            }
        }
    }

    /// Puts handed-over per-key state in, replacing the state of the same keys. Fails,
    /// changing nothing, when the part came from a pipeline with other operators or from one
    /// with a single model where this has one per key (or the reverse).
    pub fn put_keys(&mut self, part: KeyedPart) -> Result<()> {
        if !part.models.is_empty() && !matches!(self.learner, Learners::PerKey(_)) {
            return Err(crate::ModelError::Incompatible(
                "handed-over per-key models, but this pipeline has one model".into(),
            ));
        }
        self.features.put_keys(part.features)?;
        if let Learners::PerKey(models) = &mut self.learner {
            for (key, model) in part.models {
                models.insert(&key, model);
            }
        }
        Ok(())
    }
}
