//! `IdleExpiry`: event-time expiry of idle keys for the per-key operators `lag` and `ema`.

use arrow_array::RecordBatch;

use super::event_time::TimeColumn;
use super::key_map::KeyMap;
use crate::config::{time_field_type, TimeUnit};
use crate::error::{FeatureError, Result};
use crate::schema::Schema;

const MS: i64 = 1000;

/// Expires a key whose newest event time is more than `idle_expiry_seconds` before the largest
/// event time seen so far (both read from records, never the clock): it reads as a key never
/// seen. Time advances row by row with every row the set accepts (also rows with a null value
/// or key), so expiry does not depend on batching. Expired keys are dropped by a sweep every
/// `idle_expiry_seconds` of event-time progress.
///
/// Memory per key: a `KeyMap<i64>` entry, as the operator's own (`lag`'s) table.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleExpiry {
    time_field: String,
    unit: Option<TimeUnit>,
    idle_expiry_seconds: u64,
    /// Largest event time seen (ms).
    pub(crate) max_time: Option<i64>,
    /// `max_time` at which the next sweep runs.
    next_sweep: Option<i64>,
    /// Newest event time of each key (ms).
    pub(crate) last_times: KeyMap<i64>,
    #[serde(skip)]
    column: usize,
}

impl IdleExpiry {
    pub(crate) fn new(
        time_field: String,
        unit: Option<TimeUnit>,
        idle_expiry_seconds: u64,
    ) -> Self {
        IdleExpiry {
            time_field,
            unit,
            idle_expiry_seconds,
            max_time: None,
            next_sweep: None,
            last_times: KeyMap::default(),
            column: 0,
        }
    }

    /// The event-time field.
    pub fn field(&self) -> &str {
        &self.time_field
    }

    /// The newest event time (ms) of each key.
    pub fn last_times(&self) -> &KeyMap<i64> {
        &self.last_times
    }

    /// The largest event time seen (ms).
    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    /// Heap bytes of the per-key event times.
    pub fn state_bytes(&self) -> usize {
        self.last_times.table_bytes()
    }

    fn expiry_ms(&self) -> i64 {
        self.idle_expiry_seconds as i64 * MS
    }

    /// Resolves the time column and checks restored state.
    pub(crate) fn bind(&mut self, schema: &Schema, operator: &'static str) -> Result<()> {
        let valid = (1..=crate::config::MAX_SECONDS).contains(&self.idle_expiry_seconds)
            && !self.time_field.is_empty()
            && self
                .last_times
                .iter()
                .all(|(_, &t)| self.max_time.is_some_and(|m| t <= m));
        if !valid {
            return Err(FeatureError::InvalidState(format!(
                "idle expiry state of {operator} on \"{}\" is inconsistent",
                self.time_field
            )));
        }
        self.column = super::resolve_columns(
            schema,
            operator,
            std::slice::from_ref(&self.time_field),
            time_field_type(self.unit),
        )?[0];
        Ok(())
    }

    /// The event-time column of `batch`.
    pub(crate) fn times<'b>(&self, batch: &'b RecordBatch) -> Result<TimeColumn<'b>> {
        TimeColumn::new(batch, self.column, self.unit)
    }

    /// Advances time to an accepted row's event time `t`.
    #[inline]
    pub(crate) fn advance(&mut self, t: i64) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }

    /// Records an event of `key` at `t` (after [`IdleExpiry::advance`]); true when the key's
    /// state must start afresh (new or expired).
    #[inline]
    pub(crate) fn see(&mut self, key: &str, t: i64) -> bool {
        let cutoff = self.cutoff(self.max_time);
        let last = self.last_times.get_or_insert_with(key, || i64::MIN);
        let fresh = *last < cutoff;
        *last = if fresh { t } else { (*last).max(t) };
        fresh
    }

    /// Whether serving a row of `key` at `t` finds the key new or expired: as learning that
    /// row next would, without keeping anything.
    pub(crate) fn is_fresh(&self, key: &str, t: i64) -> bool {
        let max = Some(self.max_time.map_or(t, |m| m.max(t)));
        self.last_times
            .get(key)
            .is_none_or(|&last| last < self.cutoff(max))
    }

    /// Event times before this expire a key when the largest time is `max`.
    fn cutoff(&self, max: Option<i64>) -> i64 {
        max.map_or(i64::MIN, |m| m.saturating_sub(self.expiry_ms()))
    }

    /// Drops the keys expired by now from `state` and from the event times, once every
    /// `idle_expiry_seconds` of event-time progress.
    pub(crate) fn sweep<S>(&mut self, state: &mut KeyMap<S>) {
        let Some(max) = self.max_time else {
            return;
        };
        if self.next_sweep.is_some_and(|n| max < n) {
            return;
        }
        let cutoff = self.cutoff(Some(max));
        let last_times = &self.last_times;
        state.retain(|k, _| last_times.get(k).is_some_and(|&t| t >= cutoff));
        self.last_times.retain(|_, &t| t >= cutoff);
        self.next_sweep = Some(max.saturating_add(self.expiry_ms()));
    }
}
