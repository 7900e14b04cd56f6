//! `PerKey`: one model per key, created from a template on the key's first event, with the least
//! recently used models expiring beyond a bound.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};

/// A model per key (user, device, ...), cloned from `template` on the key's first event.
///
/// At most `max_models` models are live: creating one more expires the least recently used,
/// where "used" means returned by [`get_or_create`](Self::get_or_create) (reads through
/// [`get`](Self::get) do not count). Every live model is serialised, so a checkpoint holds them
/// all; maps are `BTreeMap`s, so the serialised form is deterministic. Operations are
/// O(log live models).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "RawPerKey<M>",
    bound(serialize = "M: Serialize", deserialize = "M: Deserialize<'de>")
)]
pub struct PerKey<M> {
    template: M,
    max_models: usize,
    /// key -> (last use tick, model)
    models: BTreeMap<String, (u64, M)>,
    /// Derived from `models`: last use tick -> key, oldest first.
    #[serde(skip)]
    order: BTreeMap<u64, String>,
    tick: u64,
    expired: u64,
}

impl<M: Clone> PerKey<M> {
    /// An empty map whose models start as clones of `template`; `max_models` must be >= 1.
    pub fn new(template: M, max_models: usize) -> Result<Self> {
        if max_models == 0 {
            return Err(MlError::InvalidParam {
                name: "max_models",
                expected: ">= 1",
                value: 0.0,
            });
        }
        Ok(Self {
            template,
            max_models,
            models: BTreeMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            expired: 0,
        })
    }

    /// The model of `key`, created from the template if absent (expiring the least recently used
    /// model when full), and marked most recently used.
    pub fn get_or_create(&mut self, key: &str) -> &mut M {
        self.tick += 1;
        let tick = self.tick;
        if let Some((used, _)) = self.models.get(key) {
            self.order.remove(used);
        } else {
            if self.models.len() >= self.max_models {
                if let Some((_, oldest)) = self.order.pop_first() {
                    self.models.remove(&oldest);
                    self.expired += 1;
                }
            }
            self.models
                .insert(key.to_owned(), (tick, self.template.clone()));
        }
        self.order.insert(tick, key.to_owned());
        let entry = self
            .models
            .get_mut(key)
            .expect("the key was just inserted or found");
        entry.0 = tick;
        &mut entry.1
    }

    /// Sets `key`'s model (a model handed over from another worker), as the most recently
    /// used, expiring the least recently used one when full.
    pub fn insert(&mut self, key: &str, model: M) {
        *self.get_or_create(key) = model;
    }
}

impl<M> PerKey<M> {
    /// The model of `key` if live; does not change recency.
    pub fn get(&self, key: &str) -> Option<&M> {
        self.models.get(key).map(|(_, m)| m)
    }

    /// Live models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn max_models(&self) -> usize {
        self.max_models
    }

    /// Models expired so far to respect `max_models`.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    pub fn template(&self) -> &M {
        &self.template
    }

    /// Live keys from least to most recently used.
    pub fn keys_by_recency(&self) -> impl Iterator<Item = &str> {
        self.order.values().map(String::as_str)
    }

    /// Live `(key, model)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &M)> {
        self.models.iter().map(|(k, (_, m))| (k.as_str(), m))
    }

    /// Removes `key`'s model, returning it.
    pub fn remove(&mut self, key: &str) -> Option<M> {
        let (used, m) = self.models.remove(key)?;
        self.order.remove(&used);
        Some(m)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerKey<M> {
    template: M,
    max_models: usize,
    models: BTreeMap<String, (u64, M)>,
    tick: u64,
    expired: u64,
}

impl<M> TryFrom<RawPerKey<M>> for PerKey<M> {
    type Error = MlError;

    fn try_from(r: RawPerKey<M>) -> Result<Self> {
        let bad = |what, value: f64| Err(MlError::InvalidState { what, value });
        if r.max_models == 0 || r.models.len() > r.max_models {
            return bad("per-key models exceed max_models", r.models.len() as f64);
        }
        let mut order = BTreeMap::new();
        for (k, (used, _)) in &r.models {
            if *used > r.tick || order.insert(*used, k.clone()).is_some() {
                return bad(
                    "per-key recency ticks must be distinct and <= tick",
                    *used as f64,
                );
            }
        }
        Ok(Self {
            template: r.template,
            max_models: r.max_models,
            models: r.models,
            order,
            tick: r.tick,
            expired: r.expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureVec, Learner, LinearModel, Loss};
    use ndarray::array;

    #[test]
    fn least_recently_used_models_expire_first() {
        let mut pk = PerKey::new(0u32, 3).unwrap();
        *pk.get_or_create("a") += 1;
        *pk.get_or_create("b") += 1;
        *pk.get_or_create("c") += 1;
        // touching a makes b the oldest
        *pk.get_or_create("a") += 1;
        assert_eq!(pk.keys_by_recency().collect::<Vec<_>>(), ["b", "c", "a"]);
        *pk.get_or_create("d") += 1;
        assert_eq!(pk.len(), 3);
        assert!(pk.get("b").is_none(), "b was least recently used");
        assert_eq!(pk.get("a"), Some(&2));
        // get does not refresh: c is now the oldest
        assert_eq!(pk.get("c"), Some(&1));
        *pk.get_or_create("e") += 1;
        assert!(pk.get("c").is_none());
        assert_eq!(pk.keys_by_recency().collect::<Vec<_>>(), ["a", "d", "e"]);
        assert_eq!(pk.expired(), 2);
        // an expired key comes back fresh from the template
        assert_eq!(*pk.get_or_create("b"), 0);
        assert!(PerKey::new(0u8, 0).is_err());
    }

    #[test]
    fn models_are_created_from_the_template_and_checkpointed() {
        let template = LinearModel::params(Loss::Squared).check().unwrap().build(2);
        let mut pk = PerKey::new(template, 10).unwrap();
        let x = array![1.0, 2.0];
        for (key, y) in [("u1", 1.0), ("u2", -1.0), ("u1", 1.0)] {
            pk.get_or_create(key)
                .learn_one(&FeatureVec::dense(x.view()), y, 1.0)
                .unwrap();
        }
        assert_eq!(pk.get("u1").unwrap().steps(), 2);
        assert_eq!(pk.get("u2").unwrap().steps(), 1);
        assert_eq!(pk.template().steps(), 0);
        let bytes = postcard::to_stdvec(&pk).unwrap();
        let back: PerKey<LinearModel> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, pk);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bytes = rmp_serde::to_vec_named(&pk).unwrap();
        let back: PerKey<LinearModel> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, pk);
        assert_eq!(
            back.keys_by_recency().collect::<Vec<_>>(),
            pk.keys_by_recency().collect::<Vec<_>>()
        );
    }
}
