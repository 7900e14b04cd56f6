//! `KeyMap`: per-key operator state, serialized sorted by key so checkpoints are deterministic.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// State per key. Keys are `Box<str>` (16 bytes, no spare capacity) and the hasher is xxh3 with
/// a fixed seed: a run is reproducible, and lookups cost one short hash.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyMap<S> {
    map: HashMap<Box<str>, S, Xxh3DefaultBuilder>,
}

impl<S> Default for KeyMap<S> {
    fn default() -> Self {
        KeyMap {
            map: HashMap::with_hasher(Xxh3DefaultBuilder::new()),
        }
    }
}

impl<S> KeyMap<S> {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The state of `key`.
    pub fn get(&self, key: &str) -> Option<&S> {
        self.map.get(key)
    }

    /// The state of `key`, created with `fresh` if absent.
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, key: &str, fresh: impl FnOnce() -> S) -> &mut S {
        // Look up before inserting: the entry API would allocate the key on every call.
        if !self.map.contains_key(key) {
            self.map.insert(key.into(), fresh());
        }
        self.map.get_mut(key).expect("inserted above")
    }

    /// Keeps only the keys for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&S) -> bool) {
        self.map.retain(|_, s| keep(s));
    }

    /// Every key and state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &S)> {
        self.map.iter().map(|(k, s)| (&**k, s))
    }

    /// Estimated heap bytes of the table and the keys, not counting heap owned by the states:
    /// `8/7 * capacity` buckets (hashbrown's maximum load is 7/8) of a `(Box<str>, S)` slot
    /// plus one control byte each, and per key one allocation of its bytes as glibc sizes it
    /// (bytes + 8, rounded up to 16, at least 32).
    pub fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Box<str>, S)>() + 1;
        let buckets = (self.map.capacity() * 8).div_ceil(7);
        let keys: usize = self.map.keys().map(|k| key_allocation(k.len())).sum();
        buckets * slot + keys
    }
}

/// Bytes glibc's malloc takes for a `len`-byte allocation.
pub fn key_allocation(len: usize) -> usize {
    ((len + 8).div_ceil(16) * 16).max(32)
}

impl<S: Serialize> Serialize for KeyMap<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut entries: Vec<(&str, &S)> = self.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        serializer.collect_seq(entries)
    }
}

impl<'de, S: DeserializeOwned> Deserialize<'de> for KeyMap<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<(Box<str>, S)>::deserialize(deserializer)?;
        let mut map = HashMap::with_capacity_and_hasher(entries.len(), Xxh3DefaultBuilder::new());
        for (key, state) in entries {
            if map.insert(key, state).is_some() {
                return Err(serde::de::Error::custom("duplicate key in per-key state"));
            }
        }
        Ok(KeyMap { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_sorted_and_refuses_duplicates() {
        let mut a = KeyMap::default();
        let mut b = KeyMap::default();
        for k in ["z", "a", "m", "b"] {
            *a.get_or_insert_with(k, || 0u32) += 1;
        }
        for k in ["b", "m", "a", "z"] {
            *b.get_or_insert_with(k, || 0u32) += 1;
        }
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&b).unwrap());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"[["a",1],["b",1],["m",1],["z",1]]"#
        );
        let back: KeyMap<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, a);
        assert!(serde_json::from_str::<KeyMap<u32>>(r#"[["a",1],["a",2]]"#).is_err());
        a.retain(|&v| v > 5);
        assert!(a.is_empty());
    }
}
