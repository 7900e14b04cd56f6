//! Feature hashing: hashed one-hot encoding of string fields into a fixed range.

use arrow_array::{Array, RecordBatch, StringArray};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{column, resolve_columns, skipped, SparseOut};
use crate::config::HASH_BITS;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Hashes string fields into `2^bits` buckets with value 1.0; a missing value adds nothing.
/// Stateless apart from its configuration, which is saved so a model keeps its coordinates.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureHasher {
    fields: Vec<String>,
    bits: u8,
    seed: u64,
    /// Per-field seeds, derived from the field name and `seed` by `bind`. Why per field: the
    /// same value in two fields ("US" as country and as billing country) must land apart.
    #[serde(skip)]
    field_seeds: Vec<u64>,
    #[serde(skip)]
    columns: Vec<usize>,
    /// First coordinate of the range, set by `bind`.
    #[serde(skip)]
    offset: u32,
    /// Set for `hash` with `signed = true` (the [`FeatureOp::SignedHash`](super::FeatureOp)
    /// variant), which keeps the serialized form of unsigned hashers as it was.
    #[serde(skip)]
    signed: bool,
}

#[inline]
fn sign_of(hash: u64) -> f64 {
    if hash >> 63 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// The seed of `field`'s hashes.
fn field_seed(field: &str, seed: u64) -> u64 {
    xxh3_64_with_seed(field.as_bytes(), seed)
}

impl FeatureHasher {
    /// A hasher over `fields`. Call `bind` before use.
    pub(crate) fn new(fields: Vec<String>, bits: u8, seed: u64) -> Self {
        FeatureHasher {
            fields,
            bits,
            seed,
            field_seeds: Vec::new(),
            columns: Vec::new(),
            offset: 0,
            signed: false,
        }
    }

    /// The same hasher writing +1 or -1 by the top bit of each value's hash.
    pub(crate) fn signed(mut self) -> Self {
        self.signed = true;
        self
    }

    pub(crate) fn set_signed(&mut self, signed: bool) {
        self.signed = signed;
    }

    /// True for a signed hasher.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// The sign a signed hasher gives `value` of `field`: the top bit of its hash.
    pub fn sign(&self, field: usize, value: &str) -> Option<f64> {
        let seed = *self.field_seeds.get(field)?;
        Some(sign_of(xxh3_64_with_seed(value.as_bytes(), seed)))
    }

    /// The fields hashed.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Number of buckets, `2^bits`.
    pub fn buckets(&self) -> usize {
        1 << self.bits
    }

    /// First coordinate of this hasher's range.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// The coordinate `value` of `field` (one of this hasher's fields) maps to.
    pub fn coordinate(&self, field: usize, value: &str) -> Option<u32> {
        let seed = *self.field_seeds.get(field)?;
        Some(self.bucket(seed, value))
    }

    #[inline]
    fn bucket(&self, seed: u64, value: &str) -> u32 {
        let mask = (1u64 << self.bits) - 1;
        // bind checked offset + mask fits a u32.
        self.offset + (xxh3_64_with_seed(value.as_bytes(), seed) & mask) as u32
    }

    /// Resolves columns against `schema` and places the range at coordinate `offset`.
    pub(crate) fn bind(&mut self, schema: &Schema, offset: u32) -> Result<()> {
        if !HASH_BITS.contains(&self.bits) {
            return Err(FeatureError::InvalidState(format!(
                "hash bits must be in 1..=28, got {}",
                self.bits
            )));
        }
        if u64::from(offset) + (1u64 << self.bits) - 1 > u64::from(u32::MAX) {
            return Err(FeatureError::TooManyCoordinates {
                dim: u64::from(offset) + (1u64 << self.bits),
                max: u64::from(u32::MAX),
            });
        }
        self.columns = resolve_columns(schema, "hash", &self.fields, FieldType::String)?;
        self.field_seeds = self
            .fields
            .iter()
            .map(|f| field_seed(f, self.seed))
            .collect();
        self.offset = offset;
        Ok(())
    }

    /// This hasher's string columns of `batch`.
    pub(crate) fn columns<'b>(&self, batch: &'b RecordBatch) -> Result<Vec<&'b StringArray>> {
        self.columns
            .iter()
            .map(|&i| column::<StringArray>(batch, i))
            .collect()
    }

    /// Appends every row not in `skip` (an empty row for a skipped one).
    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        let columns = self.columns(batch)?;
        let mut scratch = Vec::new();
        for row in 0..batch.num_rows() {
            if !skipped(skip, row) {
                self.push_row(&columns, row, &mut scratch, out.indices, out.values);
            }
            out.end_row();
        }
        Ok(())
    }

    /// Appends row `row`'s entries, sorted by coordinate with collisions added up.
    /// `scratch` is reused between calls to avoid allocating per row.
    #[inline]
    pub(crate) fn push_row(
        &self,
        columns: &[&StringArray],
        row: usize,
        scratch: &mut Vec<u32>,
        indices: &mut Vec<u32>,
        values: &mut Vec<f64>,
    ) {
        if self.signed {
            return self.push_signed_row(columns, row, indices, values);
        }
        scratch.clear();
        for (array, &seed) in columns.iter().zip(&self.field_seeds) {
            if array.is_valid(row) {
                scratch.push(self.bucket(seed, array.value(row)));
            }
        }
        scratch.sort_unstable();
        let start = indices.len();
        for &index in scratch.iter() {
            match values.last_mut() {
                Some(v) if indices.len() > start && indices.last() == Some(&index) => *v += 1.0,
                _ => {
                    indices.push(index);
                    values.push(1.0);
                }
            }
        }
    }
}

impl FeatureHasher {
    /// `push_row` for a signed hasher: collisions add their signs.
    fn push_signed_row(
        &self,
        columns: &[&StringArray],
        row: usize,
        indices: &mut Vec<u32>,
        values: &mut Vec<f64>,
    ) {
        let mask = (1u64 << self.bits) - 1;
        let mut entries: Vec<(u32, f64)> = Vec::with_capacity(columns.len());
        for (array, &seed) in columns.iter().zip(&self.field_seeds) {
            if array.is_valid(row) {
                let h = xxh3_64_with_seed(array.value(row).as_bytes(), seed);
                entries.push((self.offset + (h & mask) as u32, sign_of(h)));
            }
        }
        entries.sort_unstable_by_key(|e| e.0);
        let start = indices.len();
        for (index, sign) in entries {
            match values.last_mut() {
                Some(v) if indices.len() > start && indices.last() == Some(&index) => *v += sign,
                _ => {
                    indices.push(index);
                    values.push(sign);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::string("site"),
            Field::string("app"),
            Field::string("os"),
        ])
        .unwrap()
    }

    fn hasher(bits: u8, seed: u64, offset: u32) -> FeatureHasher {
        let mut h = FeatureHasher::new(vec!["site".into(), "app".into(), "os".into()], bits, seed);
        h.bind(&schema(), offset).unwrap();
        h
    }

    fn batch(rows: &[[Option<&str>; 3]]) -> RecordBatch {
        let columns = (0..3)
            .map(|j| {
                let array: StringArray = rows.iter().map(|r| r[j]).collect();
                Arc::new(array) as arrow_array::ArrayRef
            })
            .collect();
        RecordBatch::try_new(schema().arrow_schema(), columns).unwrap()
    }

    fn run(h: &FeatureHasher, rows: &[[Option<&str>; 3]]) -> Vec<(Vec<u32>, Vec<f64>)> {
        let b = batch(rows);
        let columns = h.columns(&b).unwrap();
        let mut scratch = Vec::new();
        (0..rows.len())
            .map(|i| {
                let (mut indices, mut values) = (Vec::new(), Vec::new());
                h.push_row(&columns, i, &mut scratch, &mut indices, &mut values);
                (indices, values)
            })
            .collect()
    }

    #[test]
    fn indices_are_pinned() {
        // Literal values: a change of hash function, seeding or masking moves every model's
        // coordinates and must be noticed.
        let h = hasher(18, 0, 10);
        assert_eq!(h.coordinate(0, "a.com"), Some(159_591));
        assert_eq!(h.coordinate(1, "a.com"), Some(28_403));
        let h = hasher(18, 42, 10);
        assert_eq!(h.coordinate(0, "a.com"), Some(224_577));
        assert_eq!(h.coordinate(3, "a.com"), None, "only three fields");
    }

    #[test]
    fn same_value_in_two_fields_differs_and_seed_matters() {
        let h = hasher(18, 0, 0);
        for value in ["a", "US", "android", ""] {
            assert_ne!(h.coordinate(0, value), h.coordinate(1, value), "{value}");
        }
        assert_ne!(
            hasher(18, 0, 0).coordinate(0, "a"),
            hasher(18, 1, 0).coordinate(0, "a")
        );
    }

    #[test]
    fn indices_stay_in_range_sorted_and_collisions_add() {
        for bits in [1, 2, 5, 18] {
            let h = hasher(bits, 7, 100);
            let values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
            let rows: Vec<[Option<&str>; 3]> = values
                .chunks(3)
                .map(|c| [Some(c[0].as_str()), c.get(1).map(|s| s.as_str()), None])
                .collect();
            for (indices, vals) in run(&h, &rows) {
                assert!(indices
                    .iter()
                    .all(|&i| (100..100 + (1 << bits)).contains(&i)));
                assert!(
                    indices.windows(2).all(|w| w[0] < w[1]),
                    "sorted and distinct"
                );
                assert_eq!(vals.iter().sum::<f64>(), 2.0, "two present values per row");
            }
        }
        // One bucket: every present value collides.
        let h = hasher(1, 0, 0);
        let out = run(&h, &[[Some("x"), Some("x"), Some("x")]]);
        let total: f64 = out[0].1.iter().sum();
        assert_eq!(total, 3.0);
        assert!(out[0].0.len() <= 2);
    }

    #[test]
    fn missing_values_contribute_nothing() {
        let h = hasher(10, 0, 0);
        let out = run(&h, &[[None, None, None], [None, Some("b"), None]]);
        assert!(out[0].0.is_empty() && out[0].1.is_empty());
        assert_eq!(out[1], (vec![h.coordinate(1, "b").unwrap()], vec![1.0]));
    }

    #[test]
    fn bind_refuses_bad_bits_and_overflowing_ranges() {
        let mut h = FeatureHasher::new(vec!["site".into()], 29, 0);
        assert!(matches!(
            h.bind(&schema(), 0),
            Err(FeatureError::InvalidState(_))
        ));
        let mut h = FeatureHasher::new(vec!["site".into()], 28, 0);
        assert!(h.bind(&schema(), u32::MAX - (1 << 28) + 1).is_ok());
        let err = h.bind(&schema(), u32::MAX - (1 << 28) + 2).unwrap_err();
        assert!(
            matches!(err, FeatureError::TooManyCoordinates { .. }),
            "{err}"
        );
        let mut h = FeatureHasher::new(vec!["nope".into()], 4, 0);
        assert_eq!(
            h.bind(&schema(), 0).unwrap_err().to_string(),
            "unknown field \"nope\": not in the schema"
        );
    }

    #[test]
    fn signed_hash_writes_the_sign_of_each_value() {
        use crate::ops::testing::run::learn_checked;
        use crate::ops::FeatureOp;
        let records: Vec<String> = (0..200)
            .map(|i| format!(r#"{{"site": "s{i}", "app": "a{}"}}"#, i % 7))
            .collect();
        let run = learn_checked(
            r#"[{"type": "hash", "fields": ["site", "app"], "bits": 3, "signed": true}]"#,
            &records,
        );
        let FeatureOp::SignedHash(h) = &run.set.operators()[0] else {
            unreachable!()
        };
        assert!(h.is_signed());
        let mut signs = [0usize; 2];
        for (i, (_, indices, values)) in run.rows.iter().enumerate() {
            let site = format!("s{i}");
            let app = format!("a{}", i % 7);
            let mut expected = vec![
                (h.coordinate(0, &site).unwrap(), h.sign(0, &site).unwrap()),
                (h.coordinate(1, &app).unwrap(), h.sign(1, &app).unwrap()),
            ];
            expected.sort_by_key(|e| e.0);
            if expected[0].0 == expected[1].0 {
                expected = vec![(expected[0].0, expected[0].1 + expected[1].1)];
            }
            let got: Vec<(u32, f64)> = indices
                .iter()
                .copied()
                .zip(values.iter().copied())
                .collect();
            assert_eq!(got, expected, "row {i}");
            signs[usize::from(h.sign(0, &site).unwrap() > 0.0)] += 1;
        }
        assert!(signs[0] > 50 && signs[1] > 50, "{signs:?}");
    }
}
