//! Work that may run ahead of the ordered learner: the sparse operators whose output depends on
//! the row alone (`hash`, `cross`), computed for a batch on any thread before the set learns it.
//!
//! The runtime's source thread prepares a batch while the trainer is busy with earlier ones;
//! [`FeatureSet::transform_prepared`] then takes those rows instead of hashing again (moving
//! them when they fill the batch's sparse part alone, copying them otherwise). A
//! prepared operator runs the very function the set would run, so the features are the same
//! bits whether a batch was prepared or not, and the set's state cannot differ (these operators
//! have none).

use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::error::Result;
use crate::ops::{skipped, FeatureOp, SparseOut};
use crate::set::FeatureSet;

/// The stateless sparse operators of a [`FeatureSet`], each with its place among the set's
/// sparse operators. Cheap to clone; send it to the thread that prepares.
#[derive(Clone, Debug)]
pub struct Preparer {
    ops: Arc<[(usize, FeatureOp)]>,
}

/// The rows of each prepared operator for one batch, from [`Preparer::prepare`].
#[derive(Clone, Debug)]
pub struct Prepared {
    rows: usize,
    ops: Arc<[(usize, FeatureOp)]>,
    parts: Vec<Part>,
}

/// One operator's rows in compressed sparse row form (`indptr` starts at 0).
#[derive(Clone, Debug, Default)]
pub(crate) struct Part {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl Preparer {
    /// The stateless sparse operators of `set`, or `None` when it has none.
    pub fn of(set: &FeatureSet) -> Option<Preparer> {
        let ops: Vec<(usize, FeatureOp)> = set
            .operators()
            .iter()
            .filter(|op| !op.is_dense())
            .enumerate()
            .filter(|(_, op)| op.is_row_local())
            .map(|(k, op)| (k, op.clone()))
            .collect();
        (!ops.is_empty()).then(|| Preparer { ops: ops.into() })
    }

    /// Every row of `batch` through each operator. Rows the set later refuses (a late event)
    /// are prepared too and dropped when the set assembles its output.
    pub fn prepare(&self, batch: &RecordBatch) -> Result<Prepared> {
        let parts = self
            .ops
            .iter()
            .map(|(_, op)| {
                let mut part = Part {
                    indptr: vec![0],
                    ..Part::default()
                };
                op.transform_sparse(
                    batch,
                    &[],
                    &mut SparseOut {
                        indptr: &mut part.indptr,
                        indices: &mut part.indices,
                        values: &mut part.values,
                    },
                )?;
                Ok(part)
            })
            .collect::<Result<Vec<Part>>>()?;
        Ok(Prepared {
            rows: batch.num_rows(),
            ops: Arc::clone(&self.ops),
            parts,
        })
    }
}

impl Prepared {
    /// The rows of sparse operator `k` (its place among the set's sparse operators), if they
    /// were prepared by that very operator for a batch of `rows` rows. Anything else (a batch
    /// prepared by another set) gives `None`, and the set computes the rows itself; so does a
    /// part already used (see [`Part::move_to`]).
    pub(crate) fn part(&mut self, k: usize, op: &FeatureOp, rows: usize) -> Option<&mut Part> {
        let at = self.ops.iter().position(|(i, _)| *i == k)?;
        let part = &mut self.parts[at];
        let fits = self.rows == rows && self.ops[at].1 == *op && !part.is_spent();
        fits.then_some(part)
    }
}

impl Part {
    /// Appends every row not in `skip` (an empty row for a skipped one), as the operator would.
    /// Into an empty `out` with nothing skipped, the rows move instead, `out`'s buffers taking
    /// their place here (to be freed with the [`Prepared`], wherever its owner drops it): the
    /// same contents without copying ~70 bytes per row. Once only: the part is spent after.
    pub(crate) fn move_to(&mut self, skip: &[bool], out: &mut SparseOut<'_>) {
        let none_skipped = skip.iter().all(|s| !s);
        if none_skipped && out.indices.is_empty() && out.indptr[..] == [0] {
            std::mem::swap(out.indptr, &mut self.indptr);
            std::mem::swap(out.indices, &mut self.indices);
            std::mem::swap(out.values, &mut self.values);
        } else if none_skipped {
            let base = out.indices.len();
            out.indices.extend_from_slice(&self.indices);
            out.values.extend_from_slice(&self.values);
            out.indptr
                .extend(self.indptr[1..].iter().map(|&end| base + end));
        } else {
            for (row, ends) in self.indptr.windows(2).enumerate() {
                if !skipped(skip, row) {
                    out.indices
                        .extend_from_slice(&self.indices[ends[0]..ends[1]]);
                    out.values.extend_from_slice(&self.values[ends[0]..ends[1]]);
                }
                out.end_row();
            }
        }
        // a prepared part's `indptr` starts with 0, so an empty one marks it spent
        self.indptr.clear();
    }

    fn is_spent(&self) -> bool {
        self.indptr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::FeatureConfig;
    use crate::decode::BatchBuilder;
    use crate::schema::Schema;
    use crate::FeatureBatch;

    /// Row-local operators (`hash`, signed `hash`, `cross`) among stateful ones (`one_hot`, a
    /// scaler, and a window that refuses late events).
    fn configs(seed: u64) -> Vec<FeatureConfig> {
        serde_json::from_str(&format!(
            r#"[
                {{"type": "hash", "fields": ["site", "app"], "bits": 8, "seed": {seed}}},
                {{"type": "one_hot", "fields": ["os"]}},
                {{"type": "standard_scaler", "fields": ["x"]}},
                {{"type": "cross", "fields": ["site", "os"], "bits": 6}},
                {{"type": "hash", "fields": ["app"], "bits": 4, "signed": true}},
                {{"type": "window", "field": "x", "key": "site", "time_field": "ts", "unit": "s",
                  "size_seconds": 60, "slide_seconds": 20, "aggregates": ["mean"],
                  "max_out_of_orderness_seconds": 0, "allowed_lateness_seconds": 0}}
            ]"#
        ))
        .expect("configs parse")
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::merge(configs(1).iter().flat_map(FeatureConfig::fields)).expect("merges"))
    }

    /// Batches of 0 to 40 events; every seventh event is far older than the ones before it, so
    /// the window refuses it as late, and some fields are missing.
    fn batches() -> Vec<arrow_array::RecordBatch> {
        let mut builder = BatchBuilder::new(schema());
        let mut event = 0u64;
        [0usize, 40, 1, 17, 0, 33]
            .iter()
            .map(|&rows| {
                for _ in 0..rows {
                    event += 1;
                    let ts = if event.is_multiple_of(7) {
                        5
                    } else {
                        1_000 + event * 3
                    };
                    let app = if event.is_multiple_of(5) {
                        String::new()
                    } else {
                        format!(r#""app": "a{}","#, event % 11)
                    };
                    let record = format!(
                        r#"{{"site": "s{}", {app} "os": "o{}", "x": {}, "ts": {ts}}}"#,
                        event % 13,
                        event % 3,
                        event as f64 * 0.5 - 7.0
                    );
                    builder.push_json(record.as_bytes()).expect("decodes");
                }
                builder.finish()
            })
            .collect()
    }

    #[test]
    fn prepared_rows_give_the_features_and_state_of_rows_computed_in_place() {
        let schema = schema();
        let mut plain = FeatureSet::new(&configs(1), &schema).expect("builds");
        let mut ahead = plain.clone();
        let preparer = Preparer::of(&ahead).expect("has row-local operators");
        assert_eq!(
            preparer.ops.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![0, 2, 3],
            "the two hashers and the cross, not the one-hot"
        );
        let refused = learn_both(&mut plain, &mut ahead, &preparer);
        assert!(refused > 5, "late events were refused: {refused}");
    }

    /// Learns every batch of [`batches`] in `plain` (computing everything in place) and in
    /// `ahead` (taking `preparer`'s rows), asserting the same features batch by batch and the
    /// same state at the end; returns the rows refused.
    fn learn_both(plain: &mut FeatureSet, ahead: &mut FeatureSet, preparer: &Preparer) -> usize {
        let (mut want, mut got) = (FeatureBatch::new(), FeatureBatch::new());
        let mut refused = 0;
        for batch in batches() {
            plain.transform(&batch, true, &mut want).expect("learns");
            let mut prepared = preparer.prepare(&batch).expect("prepares");
            ahead
                .transform_prepared(&batch, Some(&mut prepared), &mut got)
                .expect("learns");
            assert_eq!(got, want);
            refused += want.rejected().len();
        }
        assert_eq!(ahead, plain);
        refused
    }

    #[test]
    fn a_lone_prepared_operator_moves_its_rows_into_the_batch() {
        // one sparse operator and nothing refused: its rows become the batch's sparse part as
        // they are (moved); a scratch batch reused across batches must not keep earlier rows
        let configs: Vec<FeatureConfig> = configs(1)
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    FeatureConfig::Hash { .. } | FeatureConfig::StandardScaler { .. }
                )
            })
            .take(2)
            .collect();
        let mut plain = FeatureSet::new(&configs, &schema()).expect("builds");
        let mut ahead = plain.clone();
        let preparer = Preparer::of(&ahead).expect("has a hasher");
        assert_eq!(preparer.ops.len(), 1);
        assert_eq!(learn_both(&mut plain, &mut ahead, &preparer), 0);
    }

    #[test]
    fn rows_prepared_by_another_set_or_for_another_batch_are_not_used() {
        let schema = schema();
        let mut plain = FeatureSet::new(&configs(1), &schema).expect("builds");
        let mut other = plain.clone();
        let reseeded = FeatureSet::new(&configs(2), &schema).expect("builds");
        let foreign = Preparer::of(&reseeded).expect("has row-local operators");
        let own = Preparer::of(&plain).expect("has row-local operators");
        let batches = batches();
        let (mut want, mut got) = (FeatureBatch::new(), FeatureBatch::new());
        plain
            .transform(&batches[1], true, &mut want)
            .expect("learns");
        let mut reseeded_rows = foreign.prepare(&batches[1]).expect("prepares");
        let mut wrong_batch = own.prepare(&batches[3]).expect("prepares");
        other
            .transform_prepared(&batches[1], Some(&mut reseeded_rows), &mut got)
            .expect("learns");
        assert_eq!(got, want);
        plain
            .transform(&batches[1], true, &mut want)
            .expect("learns");
        other
            .transform_prepared(&batches[1], Some(&mut wrong_batch), &mut got)
            .expect("learns");
        assert_eq!(got, want);
    }

    /// Rows move out of a `Prepared` once; passed again (for the same batch) it is spent, and
    /// the set computes the rows itself rather than take what was left in its place.
    #[test]
    fn prepared_rows_are_taken_once() {
        let schema = schema();
        let mut plain = FeatureSet::new(&configs(1), &schema).expect("builds");
        let mut ahead = plain.clone();
        let preparer = Preparer::of(&ahead).expect("has row-local operators");
        let batch = &batches()[2];
        let mut prepared = preparer.prepare(batch).expect("prepares");
        let (mut want, mut got) = (FeatureBatch::new(), FeatureBatch::new());
        for _ in 0..2 {
            plain.transform(batch, true, &mut want).expect("learns");
            ahead
                .transform_prepared(batch, Some(&mut prepared), &mut got)
                .expect("learns");
            assert_eq!(got, want);
            assert!(!got.is_empty());
        }
        assert!(prepared.parts.iter().all(Part::is_spent));
    }
}
