//! The latest dead letters with their reasons, shared between the trainer and the dashboard.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many dead letters [`RecentDeadLetters::default`] keeps.
pub const RECENT_DEAD_LETTERS: usize = 10;

/// One refused record as the dashboard shows it (without the record itself, which may be large).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecentDeadLetter {
    /// Stable machine-readable reason, e.g. `wrong_type`.
    pub kind: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// Human-readable reason naming the value.
    pub reason: String,
    /// Where it came from, e.g. `data/day1.jsonl:17`.
    pub origin: String,
    /// When it was refused (wall clock, for display only).
    pub at_unix_ms: u64,
}

/// A bounded, shared list of the newest dead letters; cheap to clone (clones share the list).
///
/// The trainer pushes, the server reads a copy. Pushes only happen for refused records and hold
/// the lock for one `VecDeque` push, so training never waits on a reader for long.
#[derive(Clone, Debug)]
pub struct RecentDeadLetters {
    inner: Arc<Mutex<VecDeque<RecentDeadLetter>>>,
    capacity: usize,
}

impl Default for RecentDeadLetters {
    fn default() -> Self {
        RecentDeadLetters::with_capacity(RECENT_DEAD_LETTERS)
    }
}

impl RecentDeadLetters {
    /// Keeps the newest `capacity` dead letters (at least one).
    pub fn with_capacity(capacity: usize) -> RecentDeadLetters {
        let capacity = capacity.max(1);
        RecentDeadLetters {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    /// Records a dead letter, dropping the oldest one when full.
    pub fn push(&self, kind: &str, field: Option<&str>, reason: &str, origin: &str) {
        let letter = RecentDeadLetter {
            kind: kind.to_owned(),
            field: field.map(str::to_owned),
            reason: reason.to_owned(),
            origin: origin.to_owned(),
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        // A panic elsewhere while holding the lock leaves a list that is still valid: keep going.
        let mut list = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if list.len() == self.capacity {
            list.pop_front();
        }
        list.push_back(letter);
    }

    /// A copy of the kept dead letters, newest first.
    pub fn snapshot(&self) -> Vec<RecentDeadLetter> {
        let list = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_shares_between_clones() {
        let recent = RecentDeadLetters::with_capacity(2);
        let writer = recent.clone();
        writer.push("malformed", None, "bad json", "a.jsonl:1");
        writer.push("wrong_type", Some("x"), "x: expected a number", "a.jsonl:2");
        writer.push("missing", Some("y"), "y: missing", "a.jsonl:3");
        let kept = recent.snapshot();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].origin, "a.jsonl:3");
        assert_eq!(kept[0].field.as_deref(), Some("y"));
        assert_eq!(kept[1].kind, "wrong_type");
    }

    #[test]
    fn capacity_is_at_least_one() {
        let recent = RecentDeadLetters::with_capacity(0);
        recent.push("a", None, "r", "o");
        recent.push("b", None, "r", "o");
        assert_eq!(recent.snapshot().len(), 1);
        assert_eq!(recent.snapshot()[0].kind, "b");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RecentDeadLetters>();
    }
}
