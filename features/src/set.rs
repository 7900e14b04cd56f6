//! `FeatureSet`: the configured operators with their state, turning batches into features.

use arrow_array::RecordBatch;

use crate::batch::FeatureBatch;
use crate::config::FeatureConfig;
use crate::error::{FeatureError, Result};
use crate::ops::event_time::TimeColumn;
use crate::ops::{FeatureOp, RowTimes, SparseOut};
use crate::schema::Schema;

/// Operators in declaration order, with their state, bound to a schema.
///
/// Coordinates: the dense operators' outputs come first (scalers, imputation, time, lag, ema,
/// window aggregates...), then one range per sparse operator (hash, one-hot, cross, text), each
/// group in declaration order. The same set transforms training batches (`learn = true`) and
/// serving requests (`learn = false`), so there is no train/serve skew. Serialized, it keeps
/// the schema, each operator's config and its state; the rest is rebuilt (and checked) on
/// deserialization.
///
/// Operators reading an event time (`time`, `window`, `lag` and `ema` with idle expiry) may
/// refuse rows (unparsable time, late
/// event): a first pass over the rows in order decides every refusal, advancing each window's
/// watermark with the accepted rows only, before any state changes. A refused row changes no
/// operator's state, and its output row is empty; see [`FeatureBatch::rejected`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FeatureSetDef")]
pub struct FeatureSet {
    schema: Schema,
    operators: Vec<FeatureOp>,
    #[serde(skip)]
    dense_width: usize,
    #[serde(skip)]
    dim: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureSetDef {
    schema: Schema,
    operators: Vec<FeatureOp>,
}

impl TryFrom<FeatureSetDef> for FeatureSet {
    type Error = FeatureError;

    fn try_from(def: FeatureSetDef) -> Result<FeatureSet> {
        FeatureSet::bind(def.schema, def.operators)
    }
}

/// What the first pass found: rows refused (empty when none), and event times per operator.
struct FirstPass {
    skip: Vec<bool>,
    times: Vec<RowTimes>,
    /// Each window's largest accepted event time after the batch.
    max_times: Vec<Option<i64>>,
}

impl FeatureSet {
    /// Model averaging across workers: blends the state of operators where an average means
    /// something (the standard scaler's running moments) as `a * self + b * other`; the others
    /// (vocabularies, windows, per-key state) stay this worker's own.
    pub fn blend(&mut self, other: &FeatureSet, a: f64, b: f64) {
        for (mine, theirs) in self.operators.iter_mut().zip(&other.operators) {
            if let (FeatureOp::StandardScaler(m), FeatureOp::StandardScaler(t)) = (mine, theirs) {
                m.blend(t, a, b);
            }
        }
    }

    /// Builds fresh operators with their fields resolved against `schema`. Fails on invalid
    /// configs (every problem listed), unknown fields and type mismatches.
    pub fn new(configs: &[FeatureConfig], schema: &Schema) -> Result<FeatureSet> {
        let problems: Vec<String> = configs
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.validate(i))
            .collect();
        if !problems.is_empty() {
            return Err(FeatureError::InvalidConfig(problems));
        }
        let operators = configs.iter().map(FeatureOp::new).collect();
        FeatureSet::bind(schema.clone(), operators)
    }

    /// Lays out coordinates and resolves columns.
    fn bind(schema: Schema, mut operators: Vec<FeatureOp>) -> Result<FeatureSet> {
        let mut dense_width = 0;
        for op in operators.iter_mut().filter(|op| op.is_dense()) {
            op.bind(&schema, dense_width)?;
            dense_width += op.width();
        }
        let mut dim = dense_width as u64;
        for op in operators.iter_mut().filter(|op| !op.is_dense()) {
            let offset = u32::try_from(dim).map_err(|_| FeatureError::TooManyCoordinates {
                dim: dim + op.width() as u64,
                max: u64::from(u32::MAX),
            })?;
            op.bind(&schema, offset as usize)?;
            dim += op.width() as u64;
        }
        Ok(FeatureSet {
            schema,
            operators,
            dense_width,
            dim: usize::try_from(dim).map_err(|_| FeatureError::TooManyCoordinates {
                dim,
                max: u64::from(u32::MAX),
            })?,
        })
    }

    /// The schema batches must have.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The operators in declaration order.
    pub fn operators(&self) -> &[FeatureOp] {
        &self.operators
    }

    /// The fields that only `hash` operators (signed or not) read. Their columns may come
    /// dictionary-encoded (`Dictionary(Int32, Utf8)`): the hashers read either form, and a
    /// [`Preparer`](crate::Preparer) hashes each dictionary value once instead of once per row.
    /// Whoever else reads a batch's columns (keys, targets, event times) must leave these alone.
    pub fn hash_only_fields(&self) -> Vec<&str> {
        let hashed = |op: &FeatureOp| matches!(op, FeatureOp::Hash(_) | FeatureOp::SignedHash(_));
        let mut fields: Vec<&str> = Vec::new();
        for op in self.operators.iter().filter(|op| hashed(op)) {
            for field in op.fields() {
                let elsewhere = self
                    .operators
                    .iter()
                    .any(|other| !hashed(other) && other.fields().contains(&field));
                if !elsewhere && !fields.contains(&field) {
                    fields.push(field);
                }
            }
        }
        fields
    }

    pub(crate) fn operators_mut(&mut self) -> &mut [FeatureOp] {
        &mut self.operators
    }

    /// Total input coordinates of the learner: the dense width plus every sparse range.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of dense coordinates.
    pub fn dense_width(&self) -> usize {
        self.dense_width
    }

    /// Heap bytes held by per-key state (lag, ema, window), an estimate from table capacities.
    pub fn state_bytes(&self) -> usize {
        self.operators.iter().map(FeatureOp::state_bytes).sum()
    }

    /// A human-readable name for every dense coordinate ("x3", "window_mean_300s(price by
    /// symbol)"), then one per sparse range ("hash(site,app)"), for explanations and model
    /// metadata.
    pub fn describe(&self) -> Vec<String> {
        let dense = self.operators.iter().filter(|op| op.is_dense());
        let sparse = self.operators.iter().filter(|op| !op.is_dense());
        dense.chain(sparse).flat_map(FeatureOp::describe).collect()
    }

    /// The name of one coordinate: a dense one's name, or "hash(site,app)[1234]" with the
    /// bucket inside a sparse range ("site=a.com" for one-hot); `None` past `dim()`.
    pub fn describe_coordinate(&self, coordinate: usize) -> Option<String> {
        if coordinate < self.dense_width {
            return self.describe().into_iter().nth(coordinate);
        }
        self.operators.iter().find_map(|op| {
            let bucket = coordinate.checked_sub(op.sparse_offset()? as usize)?;
            (bucket < op.width()).then(|| op.describe_bucket(bucket))
        })
    }

    /// Transforms `batch` into `out` (cleared and refilled: reuse it across batches). With
    /// `learn`, each operator updates its state row by row and row i is transformed with the
    /// state after rows 0..=i (`lag` reads the state before row i), so output and state do not
    /// depend on how a stream is batched. Refused rows are listed in `out.rejected()`.
    pub fn transform(
        &mut self,
        batch: &RecordBatch,
        learn: bool,
        out: &mut FeatureBatch,
    ) -> Result<()> {
        if !learn {
            return self.transform_frozen(batch, out);
        }
        self.transform_prepared(batch, None, out)
    }

    /// [`FeatureSet::transform`] with `learn = true`, taking the rows of the stateless sparse
    /// operators from `prepared` (made by this set's [`Preparer`](crate::Preparer) for this
    /// batch) instead of computing them here; the output is the same either way. The rows are
    /// moved out of `prepared`, which keeps `out`'s old buffers instead, for its owner to free.
    pub fn transform_prepared(
        &mut self,
        batch: &RecordBatch,
        mut prepared: Option<&mut crate::Prepared>,
        out: &mut FeatureBatch,
    ) -> Result<()> {
        self.check_batch(batch)?;
        out.reset(batch.num_rows(), self.dense_width);
        let pass = first_pass(&self.operators, batch, true, out)?;
        for (op, max_time) in self.operators.iter_mut().zip(&pass.max_times) {
            if let FeatureOp::Window(w) = op {
                w.set_max_time(*max_time);
            }
        }
        let width = self.dense_width;
        for (op, times) in self.operators.iter_mut().zip(&pass.times) {
            if op.is_dense() {
                op.learn_dense(batch, &pass.skip, times, out.dense_mut(), width)?;
            }
        }
        let mut sparse: Vec<&mut FeatureOp> = self
            .operators
            .iter_mut()
            .filter(|op| !op.is_dense())
            .collect();
        let count = sparse.len();
        let rows = batch.num_rows();
        assemble_sparse(rows, count, out, |k, part| {
            match prepared.as_mut().and_then(|p| p.part(k, sparse[k], rows)) {
                Some(ready) => {
                    ready.move_to(&pass.skip, part);
                    Ok(())
                }
                None => sparse[k].learn_sparse(batch, &pass.skip, part),
            }
        })
    }

    /// [`FeatureSet::transform`] with `learn = false`, through `&self` (for the server's shared
    /// snapshot). Per-key operators (`ema`, `window`) write what learning the row would write,
    /// reading the key's current state and keeping nothing; an unknown or expired key reads as
    /// a new one. Rows are refused exactly as when learning, against the current watermarks.
    pub fn transform_frozen(&self, batch: &RecordBatch, out: &mut FeatureBatch) -> Result<()> {
        self.check_batch(batch)?;
        out.reset(batch.num_rows(), self.dense_width);
        let pass = first_pass(&self.operators, batch, false, out)?;
        let width = self.dense_width;
        for (op, times) in self.operators.iter().zip(&pass.times) {
            if op.is_dense() {
                op.transform_dense(batch, &pass.skip, times, out.dense_mut(), width)?;
            }
        }
        let sparse: Vec<&FeatureOp> = self.operators.iter().filter(|op| !op.is_dense()).collect();
        assemble_sparse(batch.num_rows(), sparse.len(), out, |k, part| {
            sparse[k].transform_sparse(batch, &pass.skip, part)
        })
    }

    /// Refuses a batch whose columns differ from the schema in count, name or type (a batch
    /// decoded with `schema().with_all_optional()` fits: Arrow columns are all nullable). The
    /// fields that only hashers read may be dictionary-encoded strings.
    fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        let arrow = batch.schema_ref();
        if arrow.fields().len() != self.schema.len() {
            return Err(FeatureError::BatchMismatch(format!(
                "expected {} columns, got {}",
                self.schema.len(),
                arrow.fields().len()
            )));
        }
        // worked out once a batch, and only for one with a dictionary column
        let mut hash_only = None;
        for (i, (field, column)) in self.schema.fields().iter().zip(arrow.fields()).enumerate() {
            let expected = field.ty.data_type();
            let fits = column.data_type() == &expected
                || (column.data_type() == &crate::strings::dictionary_strings()
                    && hash_only
                        .get_or_insert_with(|| self.hash_only_fields())
                        .contains(&field.name.as_str()));
            if column.name() != &field.name || !fits {
                return Err(FeatureError::BatchMismatch(format!(
                    "column {i} is \"{}\" ({}), expected \"{}\" ({expected})",
                    column.name(),
                    column.data_type(),
                    field.name
                )));
            }
        }
        Ok(())
    }
}

/// Decides, row by row, which rows an event-time operator refuses, and reads the event times.
/// With `learn`, each window's watermark advances with every accepted row, so a row is judged
/// against the rows before it whatever the batching.
fn first_pass(
    ops: &[FeatureOp],
    batch: &RecordBatch,
    learn: bool,
    out: &mut FeatureBatch,
) -> Result<FirstPass> {
    let rows = batch.num_rows();
    let mut times: Vec<RowTimes> = ops.iter().map(|_| RowTimes::default()).collect();
    let mut max_times: Vec<Option<i64>> = ops
        .iter()
        .map(|op| match op {
            FeatureOp::Window(w) => w.max_time(),
            _ => None,
        })
        .collect();
    let mut readers: Vec<(usize, TimeColumn<'_>, &str)> = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        match op {
            FeatureOp::Time(t) => readers.push((k, t.times(batch)?, t.field())),
            FeatureOp::Window(w) => readers.push((k, w.times(batch)?, w.fields()[2])),
            op => {
                if let Some(e) = op.idle_expiry() {
                    readers.push((k, e.times(batch)?, e.field()));
                }
            }
        }
    }
    if readers.is_empty() {
        return Ok(FirstPass {
            skip: Vec::new(),
            times,
            max_times,
        });
    }
    let mut skip = vec![false; rows];
    let mut row_times = vec![0i64; readers.len()];
    for (k, ..) in &readers {
        times[*k].times.reserve(rows);
        times[*k].watermarks.reserve(rows);
    }
    for (row, skipped) in skip.iter_mut().enumerate() {
        let mut reason = None;
        for (r, (k, column, field)) in readers.iter().enumerate() {
            match column.get(row, field) {
                Err(e) => reason = Some(e),
                Ok(t) => {
                    if let FeatureOp::Window(w) = &ops[*k] {
                        reason = w.late(t, w.watermark(max_times[*k]));
                    }
                    row_times[r] = t;
                }
            }
            if reason.is_some() {
                break;
            }
        }
        if let Some(reason) = reason {
            *skipped = true;
            out.reject(row, reason);
            for (k, ..) in &readers {
                times[*k].times.push(0);
                times[*k].watermarks.push(None);
            }
            continue;
        }
        for ((k, ..), &t) in readers.iter().zip(&row_times) {
            if let FeatureOp::Window(w) = &ops[*k] {
                if learn {
                    max_times[*k] = Some(max_times[*k].map_or(t, |m| m.max(t)));
                }
                times[*k].watermarks.push(w.watermark(max_times[*k]));
            }
            times[*k].times.push(t);
        }
    }
    if out.rejected().is_empty() {
        skip.clear();
    }
    Ok(FirstPass {
        skip,
        times,
        max_times,
    })
}

/// Fills the sparse part of `out` from `count` sparse operators, `run(k, part)` writing the
/// k-th one's rows. Their ranges ascend in declaration order, so concatenating each row's
/// parts keeps its coordinates sorted. One operator writes straight into `out`.
fn assemble_sparse(
    rows: usize,
    count: usize,
    out: &mut FeatureBatch,
    mut run: impl FnMut(usize, &mut SparseOut<'_>) -> Result<()>,
) -> Result<()> {
    let (indptr, indices, values) = out.sparse_mut();
    match count {
        0 => indptr.resize(rows + 1, 0),
        1 => run(
            0,
            &mut SparseOut {
                indptr,
                indices,
                values,
            },
        )?,
        _ => {
            let mut parts = Vec::with_capacity(count);
            for k in 0..count {
                let (mut p, mut i, mut v) = (vec![0], Vec::new(), Vec::new());
                run(
                    k,
                    &mut SparseOut {
                        indptr: &mut p,
                        indices: &mut i,
                        values: &mut v,
                    },
                )?;
                parts.push((p, i, v));
            }
            for row in 0..rows {
                for (p, i, v) in &parts {
                    indices.extend_from_slice(&i[p[row]..p[row + 1]]);
                    values.extend_from_slice(&v[p[row]..p[row + 1]]);
                }
                indptr.push(indices.len());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decode::BatchBuilder;
    use crate::schema::{Field, FieldType};

    fn configs() -> Vec<FeatureConfig> {
        serde_json::from_str(
            r#"[
                {"type": "hash", "fields": ["site", "app"], "bits": 6, "seed": 3},
                {"type": "standard_scaler", "fields": ["x0", "x1"]},
                {"type": "hash", "fields": ["os"], "bits": 2},
                {"type": "standard_scaler", "fields": ["x2"]}
            ]"#,
        )
        .unwrap()
    }

    fn schema() -> Arc<Schema> {
        let mut fields: Vec<Field> = configs().iter().flat_map(FeatureConfig::fields).collect();
        fields.push(Field::number("y"));
        Arc::new(Schema::merge(fields).unwrap())
    }

    #[test]
    fn layout_and_names() {
        let set = FeatureSet::new(&configs(), &schema()).unwrap();
        assert_eq!(set.dense_width(), 3);
        assert_eq!(set.dim(), 3 + 64 + 4);
        assert_eq!(
            set.describe(),
            vec!["x0", "x1", "x2", "hash(site,app)", "hash(os)"]
        );
        assert_eq!(set.describe_coordinate(2).as_deref(), Some("x2"));
        assert_eq!(
            set.describe_coordinate(3).as_deref(),
            Some("hash(site,app)[0]")
        );
        assert_eq!(set.describe_coordinate(70).as_deref(), Some("hash(os)[3]"));
        assert_eq!(set.describe_coordinate(71), None);
    }

    #[test]
    fn corrupt_state_is_refused_on_load() {
        let set = FeatureSet::new(&configs(), &schema()).unwrap();
        let json = serde_json::to_string(&set).unwrap();
        let renamed = json.replace("\"x2\"]", "\"x9\"]");
        assert_ne!(renamed, json);
        let err = serde_json::from_str::<FeatureSet>(&renamed).unwrap_err();
        assert!(err.to_string().contains("unknown field \"x9\""), "{err}");
    }

    #[test]
    fn building_reports_config_and_schema_problems() {
        let schema = schema();
        let bad: Vec<FeatureConfig> = serde_json::from_str(
            r#"[{"type": "standard_scaler", "fields": []}, {"type": "hash", "fields": ["os"], "bits": 40}]"#,
        )
        .unwrap();
        assert_eq!(
            FeatureSet::new(&bad, &schema).unwrap_err().to_string(),
            "invalid feature config: features[0].fields: empty; features[1].bits: must be in 1..=28, got 40"
        );
        let wrong = vec![FeatureConfig::StandardScaler {
            fields: vec!["site".into()],
        }];
        assert_eq!(
            FeatureSet::new(&wrong, &schema).unwrap_err().to_string(),
            "standard_scaler needs number field \"site\", but the schema says string"
        );
        let huge: Vec<FeatureConfig> = (0..17)
            .map(|i| FeatureConfig::Hash {
                fields: vec!["os".into()],
                bits: 28,
                seed: i,
            })
            .collect();
        assert!(matches!(
            FeatureSet::new(&huge, &schema),
            Err(FeatureError::TooManyCoordinates { .. })
        ));
        assert_eq!(FeatureSet::new(&[], &schema).unwrap().dim(), 0);
    }

    #[test]
    fn mismatched_batches_are_refused() {
        let mut set = FeatureSet::new(&configs(), &schema()).unwrap();
        let other = Schema::new(vec![Field {
            name: "x0".into(),
            ty: FieldType::String,
            required: false,
        }])
        .unwrap();
        let mut decoder = BatchBuilder::new(Arc::new(other));
        decoder.push_json(br#"{"x0": "a"}"#).unwrap();
        let err = set
            .transform(&decoder.finish(), true, &mut FeatureBatch::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch does not match the feature set's schema: expected 7 columns, got 1"
        );
    }

    #[test]
    fn empty_batches_and_no_hashers() {
        let schema = Arc::new(Schema::new(vec![Field::number("x")]).unwrap());
        let configs = vec![FeatureConfig::StandardScaler {
            fields: vec!["x".into()],
        }];
        let mut set = FeatureSet::new(&configs, &schema).unwrap();
        let mut decoder = BatchBuilder::new(schema);
        let mut out = FeatureBatch::new();
        set.transform(&decoder.finish(), true, &mut out).unwrap();
        assert!(out.is_empty());
        decoder.push_json(br#"{"x": 1}"#).unwrap();
        decoder.push_json(br#"{"x": 2}"#).unwrap();
        set.transform(&decoder.finish(), true, &mut out).unwrap();
        assert_eq!(out.indptr(), &[0, 0, 0]);
        assert_eq!(out.row(1).0[0], 1.0);
    }

    #[test]
    fn key_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FeatureSet>();
        assert_send_sync::<Schema>();
        assert_send_sync::<FeatureBatch>();
        assert_send_sync::<BatchBuilder>();
        assert_send_sync::<FeatureError>();
    }
}
