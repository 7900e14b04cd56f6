//! Lag features per key: the key's previous value, the difference to it and the return.

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};

use super::idle_expiry::IdleExpiry;
use super::key_map::KeyMap;
use super::{column, finite_or_zero, resolve_columns, skipped};
use crate::config::LagOutput;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// `lag`: for row i with value `x` and key `k`, reads the previous value `p` of `k` (the state
/// BEFORE row i), writes the outputs, then stores `x` as `k`'s previous value. Without a
/// previous value (a new key, or a null key) every output is 0.0; a null value writes 0.0 and
/// leaves the key's state alone. With an [`IdleExpiry`], a key idle too long in event time
/// reads as a new key.
///
/// Memory per key: a slot of a 24-byte key (inline up to 22 bytes) and an `f64` (32 bytes) plus
/// a control byte per bucket, at a load of 7/16 to 7/8: at most 76 bytes for keys up to 22
/// bytes (longer keys add their allocation, 32 bytes up to 24 bytes); with idle expiry, as
/// much again for the key's last event time; see [`Lag::state_bytes`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lag {
    field: String,
    pub(crate) key: String,
    outputs: Vec<LagOutput>,
    pub(crate) previous: KeyMap<f64>,
    #[serde(default)]
    pub(crate) expiry: Option<IdleExpiry>,
    #[serde(skip)]
    columns: [usize; 2],
    #[serde(skip)]
    offset: usize,
}

impl Lag {
    pub(crate) fn new(
        field: String,
        key: String,
        outputs: Vec<LagOutput>,
        expiry: Option<IdleExpiry>,
    ) -> Self {
        Lag {
            field,
            key,
            outputs,
            previous: KeyMap::default(),
            expiry,
            columns: [0; 2],
            offset: 0,
        }
    }

    /// Value field and key field.
    pub fn fields(&self) -> [&str; 2] {
        [&self.field, &self.key]
    }

    /// One dense coordinate per output.
    pub fn width(&self) -> usize {
        self.outputs.len()
    }

    /// "lag_previous(price by symbol)"...
    pub fn describe(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|o| format!("lag_{}({} by {})", o.as_str(), self.field, self.key))
            .collect()
    }

    /// The previous value of each key.
    pub fn state(&self) -> &KeyMap<f64> {
        &self.previous
    }

    /// The idle-key expiry, when configured.
    pub fn expiry(&self) -> Option<&IdleExpiry> {
        self.expiry.as_ref()
    }

    /// Heap bytes held by the per-key state.
    pub fn state_bytes(&self) -> usize {
        self.previous.table_bytes() + self.expiry.as_ref().map_or(0, IdleExpiry::state_bytes)
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        if self.previous.iter().any(|(_, p)| !p.is_finite()) {
            return Err(FeatureError::InvalidState(format!(
                "lag state of \"{}\" is not finite",
                self.field
            )));
        }
        let [value] = resolve_columns(
            schema,
            "lag",
            std::slice::from_ref(&self.field),
            FieldType::Number,
        )?[..] else {
            unreachable!("one field resolves to one column")
        };
        let [key] = resolve_columns(
            schema,
            "lag",
            std::slice::from_ref(&self.key),
            FieldType::String,
        )?[..] else {
            unreachable!("one field resolves to one column")
        };
        if let Some(e) = &mut self.expiry {
            e.bind(schema, "lag")?;
        }
        self.columns = [value, key];
        self.offset = offset;
        Ok(())
    }

    fn write(&self, x: f64, previous: Option<f64>, row: &mut [f64]) {
        let Some(p) = previous else {
            return;
        };
        for (o, output) in row.iter_mut().zip(&self.outputs) {
            *o = finite_or_zero(match output {
                LagOutput::Previous => p,
                LagOutput::Difference => x - p,
                LagOutput::Return if p != 0.0 => (x - p) / p.abs(),
                LagOutput::Return => 0.0,
            });
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
        let w = self.width();
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
            let slot = self.previous.get_or_insert_with(key, || f64::NAN);
            let previous = (!fresh && !slot.is_nan()).then_some(*slot);
            *slot = x;
            let at = i * width + self.offset;
            self.write(x, previous, &mut dense[at..at + w]);
            if let Some(e) = &mut self.expiry {
                e.sweep(&mut self.previous);
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
        let w = self.width();
        for i in 0..batch.num_rows() {
            if skipped(skip, i) || values.is_null(i) || keys.is_null(i) {
                continue;
            }
            let (key, t) = (keys.value(i), times.get(i).copied().unwrap_or_default());
            if self.expiry.as_ref().is_some_and(|e| e.is_fresh(key, t)) {
                continue;
            }
            let previous = self.previous.get(key).copied();
            let at = i * width + self.offset;
            self.write(values.value(i), previous, &mut dense[at..at + w]);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use crate::ops::testing::run::{learn_checked, serve};
    use crate::ops::testing::testgen::values;

    #[test]
    fn matches_previous_value_per_key() {
        let xs = values(300, 9);
        let records: Vec<String> = xs
            .iter()
            .enumerate()
            .map(|(i, x)| format!(r#"{{"p": {x}, "sym": "s{}"}}"#, (i * 7) % 5))
            .collect();
        let run = learn_checked(r#"[{"type": "lag", "field": "p", "key": "sym"}]"#, &records);
        let mut previous: HashMap<usize, f64> = HashMap::new();
        for (i, (row, &x)) in run.rows.iter().zip(&xs).enumerate() {
            let expected = match previous.insert((i * 7) % 5, x) {
                None => vec![0.0, 0.0, 0.0],
                Some(p) => vec![p, x - p, if p == 0.0 { 0.0 } else { (x - p) / p.abs() }],
            };
            assert_eq!(row.0, expected, "row {i}");
        }
        let served = serve(&run.set, &[r#"{"p": 5, "sym": "s0"}"#.into()]);
        let p = previous[&0];
        assert_eq!(served[0].0[..2], [p, 5.0 - p]);
        assert_eq!(
            run.set.describe(),
            vec![
                "lag_previous(p by sym)",
                "lag_difference(p by sym)",
                "lag_return(p by sym)"
            ]
        );
    }

    const EXPIRING: &str = r#"[{"type": "lag", "field": "p", "key": "sym", "time_field": "ts",
        "unit": "s", "idle_expiry_seconds": 100}]"#;

    /// Out-of-order events of 4 busy keys and one rare key (it idles past the expiry), one with
    /// a bad timestamp: (key, time, value).
    pub(crate) fn idle_events() -> Vec<(String, i64, Option<f64>)> {
        let xs = values(600, 11);
        let jitter = values(600, 12);
        (0..600)
            .map(|i| {
                let key = if i % 100 == 7 {
                    "rare".to_owned()
                } else {
                    format!("k{}", i % 4)
                };
                let t = 1_700_000_000 + i as i64 * 2 - (jitter[i].abs() / 4.0) as i64;
                let t = if i == 300 { 1_000_000_000_000_000 } else { t };
                (key, t, Some(xs[i]))
            })
            .collect()
    }

    pub(crate) fn idle_records(events: &[(String, i64, Option<f64>)]) -> Vec<String> {
        events
            .iter()
            .map(|(k, t, x)| match x {
                Some(x) => format!(r#"{{"p": {x}, "sym": "{k}", "ts": {t}}}"#),
                None => format!(r#"{{"sym": "{k}", "ts": {t}}}"#),
            })
            .collect()
    }

    /// Which rows find their key fresh (new or idle over `expiry` seconds behind the largest
    /// time seen), computed directly; `None` for refused rows and rows without a value.
    pub(crate) fn fresh_rows(
        events: &[(String, i64, Option<f64>)],
        expiry: i64,
    ) -> Vec<Option<bool>> {
        let mut max_t = i64::MIN;
        let mut last: HashMap<&str, i64> = HashMap::new();
        events
            .iter()
            .map(|(k, t, x)| {
                if *t > 253_402_300_799 {
                    return None;
                }
                max_t = max_t.max(*t);
                x.as_ref()?;
                let fresh = last.get(k.as_str()).is_none_or(|&l| l < max_t - expiry);
                let l = last.entry(k).or_insert(*t);
                *l = if fresh { *t } else { (*l).max(*t) };
                Some(fresh)
            })
            .collect()
    }

    #[test]
    fn idle_keys_expire_on_event_time_as_computed_directly() {
        let events = idle_events();
        let run = learn_checked(EXPIRING, &idle_records(&events));
        assert_eq!(
            run.rejected,
            vec![(300, crate::error::DecodeErrorKind::BadTimestamp)]
        );
        let fresh = fresh_rows(&events, 100);
        let mut previous: HashMap<&str, f64> = HashMap::new();
        let mut expired = 0;
        for (i, ((k, _, x), row)) in events.iter().zip(&run.rows).enumerate() {
            let (Some(x), Some(fresh)) = (x, fresh[i]) else {
                assert_eq!(row.0, vec![0.0; 3], "row {i} is empty");
                continue;
            };
            if previous.contains_key(k.as_str()) {
                // Every rare row restarts its key; the busy keys never idle that long.
                assert_eq!(fresh, k == "rare", "row {i}");
                expired += usize::from(fresh);
            }
            let p = previous.insert(k, *x).filter(|_| !fresh);
            let expected = match p {
                None => vec![0.0, 0.0, 0.0],
                Some(p) => vec![p, x - p, if p == 0.0 { 0.0 } else { (x - p) / p.abs() }],
            };
            assert_eq!(row.0, expected, "row {i}");
        }
        assert_eq!(expired, 5);
        // Serving: a busy key reads its previous value; the rare key, idle, reads as new.
        let served = serve(
            &run.set,
            &[
                r#"{"p": 5, "sym": "k1", "ts": 1700001200}"#.into(),
                r#"{"p": 5, "sym": "rare", "ts": 1700001200}"#.into(),
            ],
        );
        let p = previous["k1"];
        assert_eq!(served[0].0[..2], [p, 5.0 - p]);
        assert_eq!(served[1].0, vec![0.0; 3]);
        // Without expiry, the rare key keeps its value.
        let kept = learn_checked(
            r#"[{"type": "lag", "field": "p", "key": "sym"}]"#,
            &idle_records(&events[..299]),
        );
        let last_rare = events[..299]
            .iter()
            .rev()
            .find_map(|e| (e.0 == "rare").then_some(e.2));
        let served = serve(&kept.set, &[r#"{"p": 5, "sym": "rare"}"#.into()]);
        assert_eq!(served[0].0[0], last_rare.flatten().unwrap());
    }

    #[test]
    fn expired_keys_are_swept_from_state() {
        // One new key per second, expiry after 10 s: the state keeps about 10 to 20 keys.
        let records: Vec<String> = (0..1000)
            .map(|i| {
                format!(
                    r#"{{"p": {i}, "sym": "key{i}", "ts": {}}}"#,
                    1_700_000_000 + i
                )
            })
            .collect();
        let run = learn_checked(
            r#"[{"type": "lag", "field": "p", "key": "sym", "time_field": "ts", "unit": "s",
                "idle_expiry_seconds": 10}]"#,
            &records,
        );
        let crate::ops::FeatureOp::Lag(lag) = &run.set.operators()[0] else {
            unreachable!()
        };
        let expiry = lag.expiry().unwrap();
        assert!(
            (11..=21).contains(&lag.state().len()),
            "{}",
            lag.state().len()
        );
        assert_eq!(expiry.last_times().len(), lag.state().len());
        assert_eq!(expiry.max_time(), Some(1_700_000_999_000));
        assert!(lag.state().get("key999").is_some() && lag.state().get("key0").is_none());
    }

    #[test]
    fn a_million_keys_fit_the_stated_bound() {
        let records: Vec<String> = (0..1_000_000)
            .map(|i| format!(r#"{{"p": {i}, "sym": "key{i:07}"}}"#))
            .collect();
        let configs = crate::ops::testing::run::configs(
            r#"[{"type": "lag", "field": "p", "key": "sym", "outputs": ["previous"]}]"#,
        );
        let run = crate::ops::testing::run::learn(&configs, &records, 100_000);
        let per_key = run.set.state_bytes() as f64 / 1e6;
        // Bounds of the former layout (a 24-byte slot, a 32-byte key allocation); the 10-byte
        // keys now live in a 32-byte slot: 2.1 * 33 = 69 bytes at this load, inside them.
        let bound = 25.0 * 16.0 / 7.0 + 32.0;
        assert!(
            (25.0 * 8.0 / 7.0 + 32.0..=bound).contains(&per_key),
            "{per_key}"
        );
    }
}
