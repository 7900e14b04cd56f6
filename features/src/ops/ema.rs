//! Exponential moving average per key.

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};

use super::ew_scaler::alpha;
use super::idle_expiry::IdleExpiry;
use super::key_map::KeyMap;
use super::{column, resolve_columns, skipped};
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// `ema`: per key, `m = x` for the key's first value, then `m += alpha (x - m)` with
/// `alpha = 1 - 2^(-1 / half_life)`, so a value's weight halves every `half_life` events OF
/// THAT KEY (events, not seconds: the feature does not depend on how regular the clock is).
/// Row i is written after its own update. A null value or key writes 0.0 and changes nothing.
/// Serving (`transform`) writes what learning the row would write, without keeping it. With an
/// [`IdleExpiry`], a key idle too long in event time reads as a new key.
///
/// Memory per key: as [`Lag`](super::Lag), at most 76 bytes for keys up to 22 bytes (twice
/// that with idle expiry); see [`Ema::state_bytes`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ema {
    field: String,
    pub(crate) key: String,
    half_life: f64,
    pub(crate) averages: KeyMap<f64>,
    #[serde(default)]
    pub(crate) expiry: Option<IdleExpiry>,
    #[serde(skip)]
    alpha: f64,
    #[serde(skip)]
    columns: [usize; 2],
    #[serde(skip)]
    offset: usize,
}

impl Ema {
    pub(crate) fn new(
        field: String,
        key: String,
        half_life: f64,
        expiry: Option<IdleExpiry>,
    ) -> Self {
        Ema {
            field,
            key,
            half_life,
            averages: KeyMap::default(),
            expiry,
            alpha: alpha(half_life),
            columns: [0; 2],
            offset: 0,
        }
    }

    /// Value field and key field.
    pub fn fields(&self) -> [&str; 2] {
        [&self.field, &self.key]
    }

    /// "ema(price by symbol)".
    pub fn describe(&self) -> Vec<String> {
        vec![format!("ema({} by {})", self.field, self.key)]
    }

    /// The average of each key.
    pub fn state(&self) -> &KeyMap<f64> {
        &self.averages
    }

    /// The idle-key expiry, when configured.
    pub fn expiry(&self) -> Option<&IdleExpiry> {
        self.expiry.as_ref()
    }

    /// Heap bytes held by the per-key state.
    pub fn state_bytes(&self) -> usize {
        self.averages.table_bytes() + self.expiry.as_ref().map_or(0, IdleExpiry::state_bytes)
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        if !(self.half_life.is_finite() && self.half_life > 0.0)
            || self.averages.iter().any(|(_, m)| !m.is_finite())
        {
            return Err(FeatureError::InvalidState(format!(
                "ema state of \"{}\" is not finite",
                self.field
            )));
        }
        let value = resolve_columns(
            schema,
            "ema",
            std::slice::from_ref(&self.field),
            FieldType::Number,
        )?;
        let key = resolve_columns(
            schema,
            "ema",
            std::slice::from_ref(&self.key),
            FieldType::String,
        )?;
        if let Some(e) = &mut self.expiry {
            e.bind(schema, "ema")?;
        }
        self.columns = [value[0], key[0]];
        self.alpha = alpha(self.half_life);
        self.offset = offset;
        Ok(())
    }

    #[inline]
    fn step(alpha: f64, m: Option<f64>, x: f64) -> f64 {
        match m {
            Some(m) => m + alpha * (x - m),
            None => x,
        }
    }

    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &[i64],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let values = column::<Float64Array>(batch, self.columns[0])?;
        let keys = column::<StringArray>(batch, self.columns[1])?;
        for i in 0..batch.num_rows() {
            if skipped(skip, i) {
                continue;
            }
            // Event times are read only for an expiry (else `times` is empty).
            let t = times.get(i).copied().unwrap_or_default();
            if let Some(e) = &mut self.expiry {
                e.advance(t);
            }
            if values.is_null(i) || keys.is_null(i) {
                continue;
            }
            let (x, key) = (values.value(i), keys.value(i));
            let fresh = self.expiry.as_mut().is_some_and(|e| e.see(key, t));
            let m = self.averages.get_or_insert_with(key, || f64::NAN);
            *m = Self::step(self.alpha, (!fresh && !m.is_nan()).then_some(*m), x);
            dense[i * width + self.offset] = *m;
            if let Some(e) = &mut self.expiry {
                e.sweep(&mut self.averages);
            }
        }
        Ok(())
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &[i64],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let values = column::<Float64Array>(batch, self.columns[0])?;
        let keys = column::<StringArray>(batch, self.columns[1])?;
        for i in 0..batch.num_rows() {
            if skipped(skip, i) || values.is_null(i) || keys.is_null(i) {
                continue;
            }
            let (key, t) = (keys.value(i), times.get(i).copied().unwrap_or_default());
            let fresh = self.expiry.as_ref().is_some_and(|e| e.is_fresh(key, t));
            let m = self.averages.get(key).copied().filter(|_| !fresh);
            dense[i * width + self.offset] = Self::step(self.alpha, m, values.value(i));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::run::{close, learn_checked, serve};
    use crate::ops::testing::testgen::values;

    #[test]
    fn matches_explicit_weights_per_key() {
        let xs = values(300, 10);
        let records: Vec<String> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| format!(r#"{{"p": {x}, "sym": "s{}"}}"#, i % 3))
            .collect();
        let run = learn_checked(
            r#"[{"type": "ema", "field": "p", "key": "sym", "half_life": 4}]"#,
            &records,
        );
        let a = alpha(4.0);
        for (i, row) in run.rows.iter().enumerate() {
            let mine: Vec<f64> = (0..=i).filter(|j| j % 3 == i % 3).map(|j| xs[j]).collect();
            let n = mine.len() - 1;
            let expected: f64 = mine
                .iter()
                .enumerate()
                .map(|(j, x)| {
                    let decay = (1.0 - a).powi((n - j) as i32);
                    x * if j == 0 { decay } else { a * decay }
                })
                .sum();
            assert!(
                close(row.0[0], expected),
                "row {i}: {} vs {expected}",
                row.0[0]
            );
        }
        // Serving writes what learning the row would, without keeping it.
        let last = run.rows[299].0[0];
        let served = serve(&run.set, &[r#"{"p": 10, "sym": "s2"}"#.into()]);
        assert!(close(served[0].0[0], last + a * (10.0 - last)));
        assert_eq!(
            serve(&run.set, &[r#"{"p": 10, "sym": "zz"}"#.into()])[0].0[0],
            10.0
        );
    }

    #[test]
    fn idle_keys_expire_on_event_time_as_computed_directly() {
        use crate::ops::lag::tests::{fresh_rows, idle_events, idle_records};
        let events = idle_events();
        let run = learn_checked(
            r#"[{"type": "ema", "field": "p", "key": "sym", "half_life": 3,
                "time_field": "ts", "unit": "s", "idle_expiry_seconds": 100}]"#,
            &idle_records(&events),
        );
        let fresh = fresh_rows(&events, 100);
        let a = alpha(3.0);
        let mut averages: std::collections::HashMap<&str, f64> = Default::default();
        let mut restarts = 0;
        for (i, ((k, _, x), row)) in events.iter().zip(&run.rows).enumerate() {
            let (Some(x), Some(fresh)) = (x, fresh[i]) else {
                assert_eq!(row.0[0], 0.0, "row {i} is empty");
                continue;
            };
            let m = match averages.get(k.as_str()) {
                Some(m) if !fresh => m + a * (x - m),
                _ => *x,
            };
            restarts += usize::from(fresh && averages.contains_key(k.as_str()));
            averages.insert(k, m);
            assert!(close(row.0[0], m), "row {i}: {} vs {m}", row.0[0]);
        }
        assert!(restarts >= 5, "the rare key restarts: {restarts}");
        let served = serve(
            &run.set,
            &[
                r#"{"p": 10, "sym": "rare", "ts": 1700001200}"#.into(),
                r#"{"p": 10, "sym": "k2", "ts": 1700001200}"#.into(),
            ],
        );
        assert_eq!(served[0].0[0], 10.0);
        let m = averages["k2"];
        assert!(close(served[1].0[0], m + a * (10.0 - m)));
    }
}
