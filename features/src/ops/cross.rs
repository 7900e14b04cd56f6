//! Crosses: one hashed feature for the combination of two or more string fields.

use arrow_array::{Array, RecordBatch, StringArray};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{check_hash_range, column, resolve_columns, skipped, SparseOut};
use crate::error::Result;
use crate::schema::{FieldType, Schema};

/// `cross`: when every field of a row is present, one entry of value 1.0 in a `2^bits` range
/// at the hash of the values in field order (like Vowpal Wabbit's quadratic and cubic
/// interactions of namespaces); nothing otherwise. Each value's hash seeds the next, and the
/// first seed comes from the field names and `seed`, so the cross of ("a", "bc") differs from
/// ("ab", "c") and from the same values in other fields. Stateless.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cross {
    fields: Vec<String>,
    bits: u8,
    seed: u64,
    #[serde(skip)]
    first_seed: u64,
    #[serde(skip)]
    columns: Vec<usize>,
    #[serde(skip)]
    offset: u32,
}

impl Cross {
    pub(crate) fn new(fields: Vec<String>, bits: u8, seed: u64) -> Self {
        Cross {
            fields,
            bits,
            seed,
            first_seed: 0,
            columns: Vec::new(),
            offset: 0,
        }
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    pub fn buckets(&self) -> usize {
        1 << self.bits
    }

    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// The coordinate of the cross of `values` (one per field, in field order).
    pub fn coordinate(&self, values: &[&str]) -> u32 {
        let h = values
            .iter()
            .fold(self.first_seed, |h, v| xxh3_64_with_seed(v.as_bytes(), h));
        self.offset + (h & ((1u64 << self.bits) - 1)) as u32
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: u32) -> Result<()> {
        check_hash_range(self.bits, offset)?;
        self.columns = resolve_columns(schema, "cross", &self.fields, FieldType::String)?;
        self.first_seed = xxh3_64_with_seed(self.fields.join("\u{1f}").as_bytes(), self.seed);
        self.offset = offset;
        Ok(())
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        let arrays = self
            .columns
            .iter()
            .map(|&c| column::<StringArray>(batch, c))
            .collect::<Result<Vec<_>>>()?;
        let mut values = Vec::with_capacity(arrays.len());
        for i in 0..batch.num_rows() {
            if !skipped(skip, i) && arrays.iter().all(|a| a.is_valid(i)) {
                values.clear();
                values.extend(arrays.iter().map(|a| a.value(i)));
                out.push(self.coordinate(&values), 1.0);
            }
            out.end_row();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::learn_checked;
    use crate::ops::FeatureOp;

    #[test]
    fn one_entry_when_all_fields_are_present() {
        let records: Vec<String> = (0..50)
            .map(|i| match i % 5 {
                0 => format!(r#"{{"a": "x{i}"}}"#),
                _ => format!(r#"{{"a": "x{}", "b": "y{}"}}"#, i % 7, i % 3),
            })
            .collect();
        let run = learn_checked(
            r#"[{"type": "cross", "fields": ["a", "b"], "bits": 12}]"#,
            &records,
        );
        let FeatureOp::Cross(c) = &run.set.operators()[0] else {
            unreachable!()
        };
        for (i, row) in run.rows.iter().enumerate() {
            if i % 5 == 0 {
                assert!(row.1.is_empty());
            } else {
                let (a, b) = (format!("x{}", i % 7), format!("y{}", i % 3));
                assert_eq!(row.1, vec![c.coordinate(&[&a, &b])]);
                assert_eq!(row.2, vec![1.0]);
            }
        }
        assert_ne!(c.coordinate(&["a", "bc"]), c.coordinate(&["ab", "c"]));
    }
}
