//! `KeyMap`: per-key operator state, serialized sorted by key so checkpoints are deterministic.

use hashbrown::HashTable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64;

/// Longest key stored inside the table slot.
pub const INLINE_KEY_BYTES: usize = 22;

/// A key as the table holds it: up to [`INLINE_KEY_BYTES`] bytes inside the slot (24 bytes,
/// zero-padded, so equality is a fixed-size compare), longer ones on the heap. Inline keys save
/// the dependent cache miss of reading a separately allocated key on every lookup.
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    /// Only keys longer than `INLINE_KEY_BYTES`, so each key has one representation.
    Heap(Box<str>),
}

impl Key {
    #[inline(always)]
    fn inline(key: &str) -> Option<Key> {
        let b = key.as_bytes();
        (b.len() <= INLINE_KEY_BYTES).then(|| {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        })
    }

    #[inline]
    fn as_str(&self) -> &str {
        match self {
            Key::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("inline keys are copied from a str whole"),
            Key::Heap(s) => s,
        }
    }

    /// Heap bytes of the key.
    fn allocation(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap(s) => key_allocation(s.len()),
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A key to look up, with its hash computed once: a caller that touches the same key twice
/// (to load its state ahead, then to update it) hashes it once.
#[derive(Clone, Debug)]
pub(crate) struct Probe<'a> {
    key: &'a str,
    /// The slot form of a short key, so matching a slot is a fixed-size compare without a
    /// UTF-8 check of the stored key.
    inline: Option<Key>,
    hash: u64,
}

impl<'a> Probe<'a> {
    // Built straight into the caller's array: a call returns the probe through a temporary,
    // and copying its just-written bytes stalls on store forwarding.
    #[inline(always)]
    pub(crate) fn new(key: &'a str) -> Probe<'a> {
        Probe {
            key,
            inline: Key::inline(key),
            hash: hash(key),
        }
    }

    #[inline]
    fn matches(&self, stored: &Key) -> bool {
        match (&self.inline, stored) {
            (Some(k), stored) => k == stored,
            (None, Key::Heap(s)) => **s == *self.key,
            (None, Key::Inline { .. }) => false,
        }
    }

    #[inline]
    fn to_key(&self) -> Key {
        self.inline
            .clone()
            .unwrap_or_else(|| Key::Heap(self.key.into()))
    }
}

/// xxh3 of the key's bytes, fixed seed: a run is reproducible, and a short key costs one short
/// call (the streaming `Xxh3Default` buffers its input and costs several times more).
#[inline]
fn hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// State per key. Keys up to [`INLINE_KEY_BYTES`] bytes live in the slot, longer ones in a
/// `Box<str>`. A `hashbrown` table rather than `std`'s `HashMap` (the same table inside) takes
/// the hash from the caller, so [`Probe`] hashes a key once however often it is looked up.
#[derive(Clone)]
pub struct KeyMap<S> {
    table: HashTable<(Key, S)>,
}

/// Equal when both hold the same keys with equal states, whatever the insertion order.
impl<S: PartialEq> PartialEq for KeyMap<S> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, s)| other.get(k) == Some(s))
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for KeyMap<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<S> Default for KeyMap<S> {
    fn default() -> Self {
        KeyMap {
            table: HashTable::new(),
        }
    }
}

impl<S> KeyMap<S> {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no key has state.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The state of `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&S> {
        self.probe(&Probe::new(key))
    }

    /// The state of a key hashed ahead.
    #[inline]
    pub(crate) fn probe(&self, probe: &Probe<'_>) -> Option<&S> {
        self.table
            .find(probe.hash, |(k, _)| probe.matches(k))
            .map(|(_, s)| s)
    }

    /// The state of `key`, created with `fresh` if absent.
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, key: &str, fresh: impl FnOnce() -> S) -> &mut S {
        self.probe_or_insert_with(&Probe::new(key), fresh)
    }

    /// The state of a key hashed ahead, created with `fresh` if absent.
    #[inline]
    pub(crate) fn probe_or_insert_with(
        &mut self,
        probe: &Probe<'_>,
        fresh: impl FnOnce() -> S,
    ) -> &mut S {
        // The key is built (and a long one allocated) only when it is new.
        let entry = self.table.entry(
            probe.hash,
            |(k, _)| probe.matches(k),
            |(k, _)| hash(k.as_str()),
        );
        let (_, state) = entry
            .or_insert_with(|| (probe.to_key(), fresh()))
            .into_mut();
        state
    }

    /// Sets the state of `key`, replacing any it had.
    pub(crate) fn insert(&mut self, key: &str, state: S) {
        let probe = Probe::new(key);
        let mut state = Some(state);
        let slot = self.probe_or_insert_with(&probe, || state.take().expect("taken once"));
        if let Some(state) = state {
            *slot = state;
        }
    }

    /// Keeps only the keys for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &S) -> bool) {
        self.table.retain(|(k, s)| keep(k.as_str(), s));
    }

    /// Every key and state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &S)> {
        self.table.iter().map(|(k, s)| (k.as_str(), s))
    }

    /// Estimated heap bytes of the table and the keys, not counting heap owned by the states:
    /// `8/7 * capacity` buckets (hashbrown's maximum load is 7/8) of a slot (a 24-byte key and
    /// `S`) plus one control byte each, and per key longer than [`INLINE_KEY_BYTES`] one
    /// allocation of its bytes as glibc sizes it (bytes + 8, rounded up to 16, at least 32).
    pub fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Key, S)>() + 1;
        let buckets = (self.table.capacity() * 8).div_ceil(7);
        let keys: usize = self.table.iter().map(|(k, _)| k.allocation()).sum();
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
        let mut map = KeyMap {
            table: HashTable::with_capacity(entries.len()),
        };
        for (key, state) in entries {
            let probe = Probe::new(&key);
            let mut fresh = false;
            map.probe_or_insert_with(&probe, || {
                fresh = true;
                state
            });
            if !fresh {
                return Err(serde::de::Error::custom("duplicate key in per-key state"));
            }
        }
        Ok(map)
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
        a.retain(|_, &v| v > 5);
        assert!(a.is_empty());
    }

    impl Key {
        fn new(key: &str) -> Key {
            Key::inline(key).unwrap_or_else(|| Key::Heap(key.into()))
        }
    }

    #[test]
    fn short_keys_live_in_the_slot_and_long_ones_on_the_heap() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let long = "k".repeat(INLINE_KEY_BYTES + 1);
        let edge = "é".repeat(INLINE_KEY_BYTES / 2);
        let mut m = KeyMap::default();
        for k in ["", "a", edge.as_str(), long.as_str()] {
            *m.get_or_insert_with(k, || 0u32) += 1;
            *m.get_or_insert_with(k, || 0u32) += 1;
        }
        assert_eq!(m.len(), 4);
        for k in ["", "a", edge.as_str(), long.as_str()] {
            assert_eq!(m.get(k), Some(&2), "{k}");
        }
        assert_eq!(m.get("b"), None);
        let slots = (m.table.capacity() * 8).div_ceil(7) * (24 + 4 + 4 + 1);
        assert_eq!(m.table_bytes(), slots + key_allocation(long.len()));
        let back: KeyMap<u32> = postcard::from_bytes(&postcard::to_allocvec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let stored = |k: &str| {
            let probe = Probe::new(k);
            back.table
                .find(probe.hash, |(s, _)| probe.matches(s))
                .map(|(s, _)| s.clone())
        };
        assert!(matches!(stored(&long), Some(Key::Heap(_))));
        assert!(matches!(stored("a"), Some(Key::Inline { .. })));
        assert_eq!(stored(&long), Some(Key::new(&long)));
    }

    #[test]
    fn keys_are_found_after_the_table_grows() {
        // Growing rehashes every stored key, short and long, with the hash of its lookups.
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("{i}-{}", "x".repeat(i % 40)))
            .collect();
        let mut m = KeyMap::default();
        for (i, k) in keys.iter().enumerate() {
            *m.get_or_insert_with(k, || i) += 0;
        }
        assert_eq!(m.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k), Some(&i), "{k}");
            assert_eq!(m.probe(&Probe::new(k)), Some(&i));
        }
        m.retain(|k, _| k.len() % 2 == 0);
        for (i, k) in keys.iter().enumerate() {
            let kept = (k.len() % 2 == 0).then_some(&i);
            assert_eq!(m.get(k), kept, "{k}");
        }
    }
}
