//! Numeric interaction: the product of two number fields.

use arrow_array::{Array, Float64Array, RecordBatch};

use super::{column, finite_or_zero, resolve_columns, skipped};
use crate::error::Result;
use crate::schema::{FieldType, Schema};

/// `interaction`: one dense coordinate, `x * y` (0.0 when either is missing). Stateless.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    fields: Vec<String>,
    #[serde(skip)]
    columns: Vec<usize>,
    #[serde(skip)]
    offset: usize,
}

impl Interaction {
    pub(crate) fn new(fields: Vec<String>) -> Self {
        Interaction {
            fields,
            columns: Vec::new(),
            offset: 0,
        }
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// "x*y".
    pub fn describe(&self) -> Vec<String> {
        vec![self.fields.join("*")]
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        self.columns = resolve_columns(schema, "interaction", &self.fields, FieldType::Number)?;
        self.offset = offset;
        Ok(())
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let columns = self
            .columns
            .iter()
            .map(|&c| column::<Float64Array>(batch, c))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            if skipped(skip, i) || columns.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let product = columns.iter().map(|c| c.value(i)).product();
            dense[i * width + self.offset] = finite_or_zero(product);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::{learn_checked, serve};
    use crate::ops::testing::testgen::values;

    #[test]
    fn multiplies_and_stays_finite() {
        let xs = values(100, 5);
        let mut records: Vec<String> = xs
            .iter()
            .map(|x| format!(r#"{{"a": {x}, "b": {}}}"#, x + 1.0))
            .collect();
        records.push(r#"{"a": 1e100, "b": -1e100}"#.into());
        let run = learn_checked(
            r#"[{"type": "interaction", "fields": ["a", "b"]}]"#,
            &records,
        );
        for (row, x) in run.rows.iter().zip(&xs) {
            assert_eq!(row.0[0], x * (x + 1.0));
        }
        assert_eq!(run.rows[100].0[0], -1e200);
        assert_eq!(serve(&run.set, &[r#"{"a": 2}"#.into()])[0].0[0], 0.0);
    }
}
