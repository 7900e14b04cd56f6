//! The newest prediction per key, shared between the trainer and the server: what
//! `GET /v1/models/{name}/latest?key=K` answers ("what does the stream say about this symbol,
//! station or camera right now"), without the caller having to send the key's features.
//!
//! The trainer records, for every learned event, the prediction it made before learning it
//! (progressive validation), the model version and the record's fields. Queries read a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// How many keys [`LatestPredictions`] keeps unless configured (`[serve] latest_keys`).
pub const LATEST_KEYS: usize = 100_000;

/// One event's prediction as the trainer made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatestPrediction {
    /// The event's key; `None` for a model without a key field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The prediction made before the event was learned, as the predictions sink writes it.
    pub prediction: serde_json::Value,
    pub model_version: u64,
    /// The event's position in the stream (its sequence number).
    pub position: u64,
    /// The event's decoded fields, without the target.
    pub record: serde_json::Value,
    /// When the trainer recorded it (wall clock, for display and age only).
    pub at_unix_ms: u64,
}

/// The newest prediction of each key (and of the stream as a whole); cheap to clone.
///
/// Memory is bounded by two generations of at most `capacity / 2` keys each: a new key that
/// finds the current generation full retires it (the previous one is dropped). So every key
/// updated within the last `capacity / 2` distinct keys is kept, and never more than `capacity`
/// keys are held. Inserting and looking up are O(1); the trainer takes the lock once per chunk.
#[derive(Clone, Debug)]
pub struct LatestPredictions {
    inner: Arc<Mutex<Generations>>,
    half: usize,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<String, Arc<LatestPrediction>>,
    previous: HashMap<String, Arc<LatestPrediction>>,
    newest: Option<Arc<LatestPrediction>>,
}

impl Default for LatestPredictions {
    fn default() -> Self {
        LatestPredictions::with_capacity(LATEST_KEYS)
    }
}

impl LatestPredictions {
    /// Keeps at most `capacity` keys (at least two), and the newest event whatever its key.
    pub fn with_capacity(capacity: usize) -> LatestPredictions {
        LatestPredictions {
            inner: Arc::default(),
            half: (capacity / 2).max(1),
        }
    }

    /// Records events in stream order: a later event of a key replaces an earlier one.
    pub fn record(&self, events: impl IntoIterator<Item = LatestPrediction>) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            let event = Arc::new(event);
            if let Some(key) = &event.key {
                if let Some(slot) = g.current.get_mut(key.as_str()) {
                    *slot = Arc::clone(&event);
                } else {
                    if g.current.len() >= self.half {
                        g.previous = std::mem::take(&mut g.current);
                    }
                    g.current.insert(key.clone(), Arc::clone(&event));
                }
            }
            g.newest = Some(event);
        }
    }

    /// The newest prediction for `key`, or for the stream as a whole when `key` is `None`.
    pub fn get(&self, key: Option<&str>) -> Option<LatestPrediction> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let found = match key {
            None => g.newest.as_ref(),
            Some(k) => g.current.get(k).or_else(|| g.previous.get(k)),
        };
        found.map(|p| LatestPrediction::clone(p))
    }

    /// Keys currently held (both generations; a key in both counts twice).
    pub fn keys_held(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.current.len() + g.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(key: Option<&str>, position: u64) -> LatestPrediction {
        LatestPrediction {
            key: key.map(str::to_owned),
            prediction: json!(position as f64 / 10.0),
            model_version: position,
            position,
            record: json!({ "x": position }),
            at_unix_ms: 0,
        }
    }

    #[test]
    fn later_events_of_a_key_replace_earlier_ones() {
        let latest = LatestPredictions::with_capacity(10);
        latest.record([
            event(Some("a"), 1),
            event(Some("b"), 2),
            event(Some("a"), 3),
        ]);
        assert_eq!(latest.get(Some("a")).map(|p| p.position), Some(3));
        assert_eq!(latest.get(Some("b")).map(|p| p.position), Some(2));
        assert_eq!(latest.get(None).map(|p| p.position), Some(3));
        assert_eq!(latest.get(Some("c")), None);
    }

    #[test]
    fn unkeyed_events_only_move_the_newest() {
        let latest = LatestPredictions::default();
        assert_eq!(latest.get(None), None);
        latest.record([event(None, 1), event(None, 2)]);
        assert_eq!(latest.get(None).map(|p| p.position), Some(2));
        assert_eq!(latest.keys_held(), 0);
    }

    #[test]
    fn memory_is_bounded_and_recent_keys_survive() {
        let latest = LatestPredictions::with_capacity(100);
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            latest.record([event(Some(k), i as u64)]);
            assert!(
                latest.keys_held() <= 100,
                "{} keys after {i}",
                latest.keys_held()
            );
        }
        // The newest half of the capacity is always there, with its own newest event.
        for (i, k) in keys.iter().enumerate().skip(950) {
            assert_eq!(
                latest.get(Some(k)).map(|p| p.position),
                Some(i as u64),
                "{k}"
            );
        }
        assert_eq!(latest.get(Some("k0")), None);
    }

    #[test]
    fn a_key_kept_busy_is_never_retired() {
        let latest = LatestPredictions::with_capacity(4);
        for i in 0..100u64 {
            latest.record([
                event(Some("hot"), 2 * i),
                event(Some(&format!("cold{i}")), 2 * i + 1),
            ]);
            assert_eq!(latest.get(Some("hot")).map(|p| p.position), Some(2 * i));
        }
    }
}
