//! Text: Unicode word tokens, lower-cased, n-grams, hashed term counts, optional running IDF.

use arrow_array::{Array, RecordBatch, StringArray};
use unicode_segmentation::UnicodeSegmentation;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{check_hash_range, column, resolve_columns, skipped, SparseOut};
use crate::config::MAX_IDF_BITS;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// `text`: splits a string field at Unicode word boundaries (UAX #29, punctuation and spaces
/// dropped), lower-cases each word, and counts every n-gram of 1..=`ngrams` consecutive words
/// in a `2^bits` hash range (an n-gram's hash chains its words' hashes, seeded by `seed` and
/// n). With `idf`, each count is multiplied by `ln((1 + docs) / (1 + df)) + 1` (scikit-learn's
/// smoothed IDF) from the running number of documents and of documents containing the bucket;
/// learning counts row i before writing it. A missing value writes nothing and counts nothing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    field: String,
    ngrams: u8,
    bits: u8,
    seed: u64,
    idf: bool,
    docs: u64,
    /// Documents per bucket; empty without `idf`.
    df: Vec<u32>,
    #[serde(skip)]
    column: usize,
    #[serde(skip)]
    offset: u32,
}

/// The lower-cased words of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

impl Text {
    pub(crate) fn new(field: String, ngrams: u8, bits: u8, seed: u64, idf: bool) -> Self {
        Text {
            field,
            ngrams,
            bits,
            seed,
            idf,
            docs: 0,
            df: if idf { vec![0; 1 << bits] } else { Vec::new() },
            column: 0,
            offset: 0,
        }
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn buckets(&self) -> usize {
        1 << self.bits
    }

    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Documents counted so far (with `idf`).
    pub fn docs(&self) -> u64 {
        self.docs
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: u32) -> Result<()> {
        let df_len = if self.idf { 1usize << self.bits } else { 0 };
        let counts_fit = self.df.iter().all(|&d| u64::from(d) <= self.docs);
        if (self.idf && self.bits > MAX_IDF_BITS)
            || !(1..=5).contains(&self.ngrams)
            || self.df.len() != df_len
            || !counts_fit
        {
            return Err(FeatureError::InvalidState(format!(
                "text state of \"{}\" does not fit its config",
                self.field
            )));
        }
        check_hash_range(self.bits, offset)?;
        self.column = resolve_columns(
            schema,
            "text",
            std::slice::from_ref(&self.field),
            FieldType::String,
        )?[0];
        self.offset = offset;
        Ok(())
    }

    /// Sorted distinct buckets (relative to the range) of `text` with their counts.
    pub fn term_counts(&self, text: &str, counts: &mut Vec<(u32, f64)>) {
        let words: Vec<u64> = text
            .unicode_words()
            .map(|w| xxh3_64_with_seed(w.to_lowercase().as_bytes(), self.seed))
            .collect();
        let mask = (1u64 << self.bits) - 1;
        let mut buckets: Vec<u32> = Vec::new();
        for n in 1..=usize::from(self.ngrams) {
            for gram in words.windows(n) {
                let h = gram.iter().fold(self.seed ^ n as u64, |h, &w| {
                    xxh3_64_with_seed(&w.to_le_bytes(), h)
                });
                buckets.push((h & mask) as u32);
            }
        }
        buckets.sort_unstable();
        counts.clear();
        for b in buckets {
            match counts.last_mut() {
                Some((last, c)) if *last == b => *c += 1.0,
                _ => counts.push((b, 1.0)),
            }
        }
    }

    fn write(&self, counts: &[(u32, f64)], out: &mut SparseOut<'_>) {
        for &(b, c) in counts {
            let weight = if self.idf {
                let df = f64::from(self.df[b as usize]);
                ((1.0 + self.docs as f64) / (1.0 + df)).ln() + 1.0
            } else {
                1.0
            };
            out.push(self.offset + b, c * weight);
        }
    }

    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        let texts = column::<StringArray>(batch, self.column)?;
        let mut counts = Vec::new();
        for i in 0..batch.num_rows() {
            if !skipped(skip, i) && texts.is_valid(i) {
                self.term_counts(texts.value(i), &mut counts);
                if self.idf {
                    self.docs += 1;
                    for &(b, _) in &counts {
                        self.df[b as usize] += 1;
                    }
                }
                self.write(&counts, out);
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
        let texts = column::<StringArray>(batch, self.column)?;
        let mut counts = Vec::new();
        for i in 0..batch.num_rows() {
            if !skipped(skip, i) && texts.is_valid(i) {
                self.term_counts(texts.value(i), &mut counts);
                self.write(&counts, out);
            }
            out.end_row();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::ops::testing::run::{close, learn_checked};
    use crate::ops::FeatureOp;

    #[test]
    fn tokenizes_unicode_words_lower_case() {
        assert_eq!(
            tokenize("Hello, WORLD! It's a naïve Café—ÉTÉ 3.5 km"),
            vec!["hello", "world", "it's", "a", "naïve", "café", "été", "3.5", "km"]
        );
        assert!(tokenize(" ,;! ").is_empty());
    }

    #[test]
    fn matches_counts_and_idf_computed_directly() {
        let docs = [
            "the cat sat",
            "The dog sat down",
            "a cat, a dog",
            "",
            "cat cat cat",
        ];
        let mut records: Vec<String> = docs
            .iter()
            .map(|d| format!(r#"{{"body": "{d}"}}"#))
            .collect();
        records.push("{}".into());
        let run = learn_checked(
            r#"[{"type": "text", "field": "body", "ngrams": 2, "bits": 16, "idf": true}]"#,
            &records,
        );
        let FeatureOp::Text(op) = &run.set.operators()[0] else {
            unreachable!()
        };
        // n-gram -> bucket through the operator's hash of a single document.
        let bucket = |gram: &str| {
            let mut counts = Vec::new();
            op.term_counts(gram, &mut counts);
            counts.iter().find(|c| c.1 == 1.0).map(|c| c.0)
        };
        let mut df: BTreeMap<u32, f64> = BTreeMap::new();
        for (i, doc) in docs.iter().enumerate() {
            let words = tokenize(doc);
            let mut tf: BTreeMap<u32, f64> = BTreeMap::new();
            for n in 1..=2 {
                for gram in words.windows(n) {
                    let b = if n == 1 {
                        bucket(&gram[0]).unwrap()
                    } else {
                        let mut counts = Vec::new();
                        op.term_counts(&gram.join(" "), &mut counts);
                        let singles: BTreeSet<u32> =
                            gram.iter().map(|w| bucket(w).unwrap()).collect();
                        counts
                            .iter()
                            .map(|c| c.0)
                            .find(|b| !singles.contains(b))
                            .unwrap()
                    };
                    *tf.entry(b).or_default() += 1.0;
                }
            }
            for b in tf.keys() {
                *df.entry(*b).or_default() += 1.0;
            }
            let n_docs = (i + 1) as f64;
            let row = &run.rows[i];
            assert_eq!(row.1, tf.keys().copied().collect::<Vec<_>>(), "doc {i}");
            for ((b, count), got) in tf.iter().zip(&row.2) {
                let idf = ((1.0 + n_docs) / (1.0 + df[b])).ln() + 1.0;
                assert!(close(*got, count * idf), "doc {i}");
            }
        }
        assert!(run.rows[5].1.is_empty());
        assert_eq!(op.docs(), 5);
    }
}
