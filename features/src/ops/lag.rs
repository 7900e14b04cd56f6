//! Lag features per key: the key's previous value, the difference to it and the return.

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};

use super::key_map::KeyMap;
use super::{column, finite_or_zero, resolve_columns, skipped};
use crate::config::LagOutput;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// `lag`: for row i with value `x` and key `k`, reads the previous value `p` of `k` (the state
/// BEFORE row i), writes the outputs, then stores `x` as `k`'s previous value. Without a
/// previous value (a new key, or a null key) every output is 0.0; a null value writes 0.0 and
/// leaves the key's state alone.
///
/// Memory per key: a `(Box<str>, f64)` slot (24 bytes) plus a control byte per bucket, at a
/// load of 7/16 to 7/8, so at most 57 bytes, plus the key's allocation (32 bytes up to 24-byte
/// keys): at most 89 bytes for keys up to 24 bytes; see [`Lag::state_bytes`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lag {
    field: String,
    key: String,
    outputs: Vec<LagOutput>,
    previous: KeyMap<f64>,
    #[serde(skip)]
    columns: [usize; 2],
    #[serde(skip)]
    offset: usize,
}

impl Lag {
    pub(crate) fn new(field: String, key: String, outputs: Vec<LagOutput>) -> Self {
        Lag {
            field,
            key,
            outputs,
            previous: KeyMap::default(),
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

    /// Heap bytes held by the per-key state.
    pub fn state_bytes(&self) -> usize {
        self.previous.table_bytes()
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
            let x = values.value(i);
            let slot = self.previous.get_or_insert_with(keys.value(i), || f64::NAN);
            let previous = (!slot.is_nan()).then_some(*slot);
            *slot = x;
            let at = i * width + self.offset;
            self.write(x, previous, &mut dense[at..at + w]);
        }
        Ok(())
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
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
            let previous = self.previous.get(keys.value(i)).copied();
            let at = i * width + self.offset;
            self.write(values.value(i), previous, &mut dense[at..at + w]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        // A 24-byte slot and a control byte per bucket, at a load between 7/16 and 7/8, plus
        // a 32-byte allocation for the 10-byte key.
        let bound = 25.0 * 16.0 / 7.0 + 32.0;
        assert!(
            (25.0 * 8.0 / 7.0 + 32.0..=bound).contains(&per_key),
            "{per_key}"
        );
    }
}
