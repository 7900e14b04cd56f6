//! One-hot encoding with a bounded vocabulary per field and an "other" bucket.

use std::collections::HashMap;

use arrow_array::{Array, RecordBatch, StringArray};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::{column, resolve_columns, skipped, SparseOut};
use crate::config::MAX_CATEGORIES;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// `one_hot`: field j owns coordinates `offset + j (K + 1) ..`, `K = max_categories`: the first
/// K distinct values seen get one each, in order of arrival; later new values (and, when
/// serving, unseen ones) share the last, "other". A missing value writes nothing. Learning
/// adds row i's value before writing it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHot {
    fields: Vec<String>,
    max_categories: u32,
    /// Each field's categories, in order of arrival.
    vocabulary: Vec<Vec<String>>,
    #[serde(skip)]
    index: Vec<HashMap<String, u32, Xxh3DefaultBuilder>>,
    #[serde(skip)]
    columns: Vec<usize>,
    #[serde(skip)]
    offset: u32,
}

impl OneHot {
    pub(crate) fn new(fields: Vec<String>, max_categories: u32) -> Self {
        OneHot {
            vocabulary: vec![Vec::new(); fields.len()],
            fields,
            max_categories,
            index: Vec::new(),
            columns: Vec::new(),
            offset: 0,
        }
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Each field's categories in coordinate order.
    pub fn vocabulary(&self) -> &[Vec<String>] {
        &self.vocabulary
    }

    pub fn width(&self) -> usize {
        self.fields.len() * (self.max_categories as usize + 1)
    }

    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Name of a coordinate in this operator's range ("site=a.com", "site=<other>").
    pub fn describe_bucket(&self, bucket: usize) -> Option<String> {
        let per = self.max_categories as usize + 1;
        let (j, k) = (bucket / per, bucket % per);
        let field = self.fields.get(j)?;
        Some(match self.vocabulary[j].get(k) {
            Some(value) => format!("{field}={value}"),
            None if k + 1 == per => format!("{field}=<other>"),
            None => format!("{field}=<unused>"),
        })
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: u32) -> Result<()> {
        let bad = |detail: &str| {
            Err(FeatureError::InvalidState(format!(
                "one_hot of {:?}: {detail}",
                self.fields
            )))
        };
        if !(1..=MAX_CATEGORIES).contains(&self.max_categories)
            || self.vocabulary.len() != self.fields.len()
        {
            return bad("vocabulary does not fit the config");
        }
        let mut index = Vec::with_capacity(self.fields.len());
        for values in &self.vocabulary {
            if values.len() > self.max_categories as usize {
                return bad("vocabulary larger than max_categories");
            }
            let mut map = HashMap::with_capacity_and_hasher(values.len(), Default::default());
            for (k, v) in values.iter().enumerate() {
                if map.insert(v.clone(), k as u32).is_some() {
                    return bad("duplicate category");
                }
            }
            index.push(map);
        }
        if u64::from(offset) + self.width() as u64 > u64::from(u32::MAX) {
            return Err(FeatureError::TooManyCoordinates {
                dim: u64::from(offset) + self.width() as u64,
                max: u64::from(u32::MAX),
            });
        }
        self.index = index;
        self.columns = resolve_columns(schema, "one_hot", &self.fields, FieldType::String)?;
        self.offset = offset;
        Ok(())
    }

    fn arrays<'b>(&self, batch: &'b RecordBatch) -> Result<Vec<&'b StringArray>> {
        self.columns
            .iter()
            .map(|&c| column::<StringArray>(batch, c))
            .collect()
    }

    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        let arrays = self.arrays(batch)?;
        let per = self.max_categories + 1;
        for i in 0..batch.num_rows() {
            if !skipped(skip, i) {
                for (j, a) in arrays.iter().enumerate() {
                    if a.is_null(i) {
                        continue;
                    }
                    let value = a.value(i);
                    let k = match self.index[j].get(value) {
                        Some(&k) => k,
                        None if self.vocabulary[j].len() < self.max_categories as usize => {
                            let k = self.vocabulary[j].len() as u32;
                            self.vocabulary[j].push(value.to_owned());
                            self.index[j].insert(value.to_owned(), k);
                            k
                        }
                        None => self.max_categories,
                    };
                    out.push(self.offset + j as u32 * per + k, 1.0);
                }
            }
            out.end_row();
        }
        Ok(())
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        let arrays = self.arrays(batch)?;
        let per = self.max_categories + 1;
        for i in 0..batch.num_rows() {
            if !skipped(skip, i) {
                for (j, a) in arrays.iter().enumerate() {
                    if a.is_valid(i) {
                        let k = self.index[j].get(a.value(i)).copied();
                        let k = k.unwrap_or(self.max_categories);
                        out.push(self.offset + j as u32 * per + k, 1.0);
                    }
                }
            }
            out.end_row();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::{learn_checked, serve};

    #[test]
    fn first_categories_then_other() {
        let values = ["a", "b", "a", "c", "d", "b", "e", "a"];
        let mut records: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"s": "{v}", "t": "x"}}"#))
            .collect();
        records.push(r#"{"t": "y"}"#.into());
        let run = learn_checked(
            r#"[{"type": "standard_scaler", "fields": ["n"]}, {"type": "one_hot", "fields": ["s", "t"], "max_categories": 3}]"#,
            &records
                .iter()
                .map(|r| r.replacen('{', r#"{"n": 1, "#, 1))
                .collect::<Vec<_>>(),
        );
        // Dense width 1, then s at 1..5 (a, b, c, other), t at 5..9.
        let expected_s = [1, 2, 1, 3, 4, 2, 4, 1];
        for (i, row) in run.rows.iter().take(8).enumerate() {
            assert_eq!(row.1, vec![expected_s[i], 5], "row {i}");
            assert_eq!(row.2, vec![1.0, 1.0]);
        }
        assert_eq!(run.rows[8].1, vec![6]);
        assert_eq!(run.set.describe_coordinate(3).as_deref(), Some("s=c"));
        assert_eq!(run.set.describe_coordinate(4).as_deref(), Some("s=<other>"));
        let served = serve(&run.set, &[r#"{"s": "zzz", "t": "y"}"#.into()]);
        assert_eq!(served[0].1, vec![4, 6]);
    }
}
