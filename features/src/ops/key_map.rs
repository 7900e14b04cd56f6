//! `KeyMap`: per-key operator state, serialized sorted by key so checkpoints are deterministic.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64_with_seed;

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
    #[inline]
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

// Hash and Borrow agree with `str` (whose `Hash` writes its bytes, then 0xff), so a long key
// is looked up with a plain `&str`; hashing the bytes skips `as_str`'s UTF-8 check.
impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let bytes = match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(s) => s.as_bytes(),
        };
        state.write(bytes);
        state.write_u8(0xff);
    }
}

impl Borrow<str> for Key {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// Hashes a key with one call of one-shot xxh3 over its bytes. The streaming `Xxh3Default`
/// buffers its input and costs several times more for a short key, and a lookup is mostly
/// hashing plus one or two cache misses: the fewer instructions a lookup takes, the more of the
/// next rows' lookups the CPU overlaps with a miss.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    /// Only the terminator `str` hashes after its bytes: the same for every key, so it needs
    /// no mixing, just to keep `Key` and `str` equal.
    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.0 ^= u64::from(byte);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// State per key. Keys up to [`INLINE_KEY_BYTES`] bytes live in the slot, longer ones in a
/// `Box<str>`; the hasher is xxh3 with a fixed seed: a run is reproducible, and lookups cost
/// one short hash.
#[derive(Clone, Debug)]
pub struct KeyMap<S> {
    map: HashMap<Key, S, KeyHash>,
}

/// Equal when both hold the same keys with equal states, whatever the insertion order.
impl<S: PartialEq> PartialEq for KeyMap<S> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<S> Default for KeyMap<S> {
    fn default() -> Self {
        KeyMap {
            map: HashMap::with_hasher(KeyHash::default()),
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
    #[inline]
    pub fn get(&self, key: &str) -> Option<&S> {
        match Key::inline(key) {
            // Compares fixed-size keys, without a UTF-8 check of the stored one.
            Some(k) => self.map.get(&k),
            None => self.map.get(key),
        }
    }

    /// The state of `key`, created with `fresh` if absent.
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, key: &str, fresh: impl FnOnce() -> S) -> &mut S {
        match Key::inline(key) {
            // An inline key costs no allocation, so the entry API probes once.
            Some(k) => self.map.entry(k).or_insert_with(fresh),
            None => {
                // Look up before inserting: the entry API would allocate the key on every call.
                if !self.map.contains_key(key) {
                    self.map.insert(Key::Heap(key.into()), fresh());
                }
                self.map.get_mut(key).expect("inserted above")
            }
        }
    }

    /// Keeps only the keys for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &S) -> bool) {
        self.map.retain(|k, s| keep(k.as_str(), s));
    }

    /// Every key and state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &S)> {
        self.map.iter().map(|(k, s)| (k.as_str(), s))
    }

    /// Estimated heap bytes of the table and the keys, not counting heap owned by the states:
    /// `8/7 * capacity` buckets (hashbrown's maximum load is 7/8) of a slot (a 24-byte key and
    /// `S`) plus one control byte each, and per key longer than [`INLINE_KEY_BYTES`] one
    /// allocation of its bytes as glibc sizes it (bytes + 8, rounded up to 16, at least 32).
    pub fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Key, S)>() + 1;
        let buckets = (self.map.capacity() * 8).div_ceil(7);
        let keys: usize = self.map.keys().map(Key::allocation).sum();
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
        let mut map = HashMap::with_capacity_and_hasher(entries.len(), KeyHash::default());
        for (key, state) in entries {
            let key = match Key::inline(&key) {
                Some(k) => k,
                None => Key::Heap(key),
            };
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
        use std::hash::BuildHasher;
        let hasher = KeyHash::default();
        for k in ["a", long.as_str()] {
            assert_eq!(hasher.hash_one(Key::new(k)), hasher.hash_one(k));
        }
        let slots = (m.map.capacity() * 8).div_ceil(7) * (24 + 4 + 4 + 1);
        assert_eq!(m.table_bytes(), slots + key_allocation(long.len()));
        let back: KeyMap<u32> = postcard::from_bytes(&postcard::to_allocvec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert!(matches!(
            back.map.get_key_value(long.as_str()),
            Some((Key::Heap(_), _))
        ));
        assert!(matches!(
            back.map.get_key_value("a"),
            Some((Key::Inline { .. }, _))
        ));
    }
}
