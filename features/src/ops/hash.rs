//! Feature hashing: hashed one-hot encoding of string fields into a fixed range.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, StringArray};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{resolve_columns, skipped, SparseOut};
use crate::config::HASH_BITS;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};
use crate::strings::{dictionary_key, Strings};

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
    /// The entries of the dictionaries this hasher read last (see [`HashMemo`]).
    #[serde(skip)]
    memo: MemoCell,
}

/// A hasher's [`HashMemo`]: a cache, not part of what the hasher is, so a clone starts empty
/// and two hashers compare equal whatever they remember. Batches are hashed one at a time per
/// hasher in the pipeline; a caller that finds it taken (the server's threads share a
/// snapshot) hashes without it.
#[derive(Default)]
struct MemoCell(std::sync::Mutex<HashMemo>);

impl Clone for MemoCell {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for MemoCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for MemoCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoCell")
    }
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
            memo: MemoCell::default(),
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
        (self.value_entry(seed, value) >> 1) as u32
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
        // entries remembered under another binding would name other coordinates
        self.memo = MemoCell::default();
        Ok(())
    }

    /// This hasher's string columns of `batch`, plain or dictionary-encoded.
    fn columns<'b>(&self, batch: &'b RecordBatch) -> Result<Vec<Strings<'b>>> {
        self.columns
            .iter()
            .map(|&i| Strings::of(batch, i))
            .collect()
    }

    /// Appends every row not in `skip` (an empty row for a skipped one).
    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        match self.memo.0.try_lock() {
            Ok(mut memo) => self.transform_with(batch, skip, out, Some(&mut memo)),
            Err(_) => self.transform_with(batch, skip, out, None),
        }
    }

    /// [`transform`](Self::transform), with the entries of dictionary values kept in `memo`
    /// between batches: a batch that shares its dictionary with the one before (every batch of
    /// one Parquet column chunk does) hashes no string at all, it only looks its keys up.
    /// Without a memo, a dictionary column's strings are hashed row by row, like plain ones
    /// (hashing a whole dictionary for one batch could cost more than its rows).
    fn transform_with(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
        memo: Option<&mut HashMemo>,
    ) -> Result<()> {
        let columns = self.columns(batch)?;
        let memos: &[_] = match memo {
            Some(memo) => {
                memo.fit(self, &columns);
                &memo.columns
            }
            None => &[],
        };
        let sources: Vec<EntrySource<'_, '_>> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| match (column, memos.get(i)) {
                (Strings::Dictionary { keys, .. }, Some(Some((_, entries)))) => {
                    EntrySource::Memo(keys, entries)
                }
                _ => EntrySource::Strings(column),
            })
            .collect();
        let rows = batch.num_rows();
        out.indices.reserve(rows * sources.len());
        out.values.reserve(rows * sources.len());
        if self.rows_from_memos(&sources, rows, skip, out) {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(sources.len());
        for row in 0..rows {
            if !skipped(skip, row) {
                entries.clear();
                for (source, &seed) in sources.iter().zip(&self.field_seeds) {
                    if let Some(entry) = source.entry(self, row, seed) {
                        entries.push(entry);
                    }
                }
                self.push_entries(&mut entries, out.indices, out.values);
            }
            out.end_row();
        }
        Ok(())
    }

    /// `value`'s entry (see [`entry`](Self::entry)) in the field whose seed is `seed`.
    #[inline]
    fn value_entry(&self, seed: u64, value: &str) -> u64 {
        self.entry(xxh3_64_with_seed(value.as_bytes(), seed))
    }

    /// A value's entry for a row: its coordinate shifted left by one, with the low bit set when
    /// a signed hasher writes -1 for it. Sorting entries sorts them by coordinate.
    #[inline]
    fn entry(&self, hash: u64) -> u64 {
        let mask = (1u64 << self.bits) - 1;
        // bind checked that offset + mask fits a u32
        let index = u64::from(self.offset) + (hash & mask);
        let negative = self.signed && sign_of(hash) < 0.0;
        (index << 1) | u64::from(negative)
    }

    /// Appends one row's entries, sorted by coordinate with collisions added up (+1 each, or
    /// each value's sign for a signed hasher).
    #[inline]
    fn push_entries(&self, entries: &mut [u64], indices: &mut Vec<u32>, values: &mut Vec<f64>) {
        sort_small(entries);
        push_sorted(entries, indices, values);
    }

    /// The rows of a batch whose every field reads a remembered dictionary without nulls, with
    /// no row skipped, written as the row-by-row loop writes them: the entries are gathered
    /// field by field for a block of rows (a tight loop of independent lookups, where a row at
    /// a time goes through each field's kind of column), then each row is sorted and pushed.
    /// False, with nothing written, when the batch does not qualify.
    fn rows_from_memos(
        &self,
        sources: &[EntrySource<'_, '_>],
        rows: usize,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> bool {
        const BLOCK: usize = 256;
        const FIELDS: usize = 8;
        let f = sources.len();
        if f == 0 || f > FIELDS || skip.iter().any(|&s| s) {
            return false;
        }
        let mut columns: [(&[i32], &[u64]); FIELDS] = [(&[], &[]); FIELDS];
        for (slot, source) in columns.iter_mut().zip(sources) {
            match source {
                EntrySource::Memo(keys, entries)
                    if keys.null_count() == 0 && keys.len() == rows =>
                {
                    *slot = (&keys.values()[..], entries)
                }
                _ => return false,
            }
        }
        let mut block = [0u64; BLOCK * FIELDS];
        for start in (0..rows).step_by(BLOCK) {
            let n = BLOCK.min(rows - start);
            for (j, (keys, entries)) in columns[..f].iter().enumerate() {
                for (row, &key) in block.chunks_exact_mut(f).zip(&keys[start..start + n]) {
                    // a key outside the dictionary (or negative) reads as missing, as in `entry`
                    row[j] = entries.get(key as usize).copied().unwrap_or(MISSING);
                }
            }
            for row in block[..n * f].chunks_exact_mut(f) {
                sort_small(row);
                // MISSING is the largest entry, so a row's missing values sort to its end
                let present = row.iter().position(|&e| e == MISSING).unwrap_or(f);
                push_sorted(&row[..present], out.indices, out.values);
                out.end_row();
            }
        }
        true
    }
}

/// Appends one row's sorted entries, adding up collisions (+1 each, or each value's sign for a
/// signed hasher).
#[inline]
fn push_sorted(entries: &[u64], indices: &mut Vec<u32>, values: &mut Vec<f64>) {
    let mut last = None;
    for &entry in entries {
        let index = (entry >> 1) as u32;
        let value = if entry & 1 == 1 { -1.0 } else { 1.0 };
        match values.last_mut() {
            Some(v) if last == Some(index) => *v += value,
            _ => {
                indices.push(index);
                values.push(value);
                last = Some(index);
            }
        }
    }
}

/// Sorts a row's few entries without a branch on their values: a compare-exchange network
/// (odd-even transposition), unrolled for each length up to 8 (a row has one entry per field),
/// since an insertion sort's branches on random coordinates mispredict about once per entry,
/// which cost more than hashing the strings. Long rows take the library's sort.
#[inline]
fn sort_small(v: &mut [u64]) {
    match v.len() {
        0 | 1 => {}
        2 => network::<2>(v),
        3 => network::<3>(v),
        4 => network::<4>(v),
        5 => network::<5>(v),
        6 => network::<6>(v),
        7 => network::<7>(v),
        8 => network::<8>(v),
        9..=16 => transposition(v),
        _ => v.sort_unstable(),
    }
}

/// [`transposition`] on exactly `N` entries, its loops unrolled.
#[inline(always)]
fn network<const N: usize>(v: &mut [u64]) {
    if let Some(v) = v.first_chunk_mut::<N>() {
        transposition(v);
    }
}

/// Odd-even transposition sort: `n` passes of compare-exchanges of neighbours.
#[inline(always)]
fn transposition(v: &mut [u64]) {
    let n = v.len();
    for pass in 0..n {
        let mut i = pass & 1;
        while i + 1 < n {
            let (a, b) = (v[i], v[i + 1]);
            v[i] = a.min(b);
            v[i + 1] = a.max(b);
            i += 2;
        }
    }
}

/// Where a row's entry comes from: its string, hashed, or the memo of its dictionary key.
enum EntrySource<'s, 'b> {
    Strings(&'s Strings<'b>),
    Memo(&'b Int32Array, &'s [u64]),
}

impl EntrySource<'_, '_> {
    /// The row's entry (see [`FeatureHasher::entry`]); `None` for a missing value.
    #[inline]
    fn entry(&self, hasher: &FeatureHasher, row: usize, seed: u64) -> Option<u64> {
        match self {
            EntrySource::Strings(s) => s.get(row).map(|v| hasher.value_entry(seed, v)),
            EntrySource::Memo(keys, entries) => {
                let entry = *entries.get(dictionary_key(keys, row)?)?;
                (entry != MISSING).then_some(entry)
            }
        }
    }
}

/// A memo's entry for a null dictionary value (entries are at most 2^33).
const MISSING: u64 = u64::MAX;

/// Each hashed column's current dictionary and the entries of its values ([`MISSING`] for a
/// null value), kept between batches by one hasher. The dictionary itself is held, so a new one cannot be
/// mistaken for it by its address.
#[derive(Clone, Debug, Default)]
pub(crate) struct HashMemo {
    columns: Vec<Option<(ArrayRef, Vec<u64>)>>,
}

/// Whether `held` (a dictionary the memo keeps alive) and `values` are views of the same
/// buffers: Arrow buffers are immutable, and held ones cannot be freed and their addresses
/// reused, so the same buffers mean the same strings (the array around them may be a new one).
fn same_strings(held: &ArrayRef, values: &StringArray) -> bool {
    held.as_any()
        .downcast_ref::<StringArray>()
        .is_some_and(|held| {
            held.len() == values.len()
                && held.value_offsets().as_ptr() == values.value_offsets().as_ptr()
                && held.values().as_ptr() == values.values().as_ptr()
                && held.nulls().map(|n| n.buffer().as_ptr())
                    == values.nulls().map(|n| n.buffer().as_ptr())
        })
}

impl HashMemo {
    /// Computes the entries of every dictionary column whose dictionary is not the memo's
    /// already; forgets the columns that are plain.
    fn fit(&mut self, hasher: &FeatureHasher, columns: &[Strings<'_>]) {
        self.columns.resize(columns.len(), None);
        let seeds = &hasher.field_seeds;
        for ((column, memo), &seed) in columns.iter().zip(&mut self.columns).zip(seeds) {
            let Strings::Dictionary { array, values, .. } = column else {
                *memo = None;
                continue;
            };
            if memo.as_ref().is_some_and(|(d, _)| same_strings(d, values)) {
                continue;
            }
            let entries = values
                .iter()
                .map(|v| v.map_or(MISSING, |v| hasher.value_entry(seed, v)))
                .collect();
            *memo = Some((Arc::clone(array.values()), entries));
        }
    }
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
