//! `FeatureSet`: the configured operators with their state, turning batches into features.

use arrow_array::RecordBatch;

use crate::batch::FeatureBatch;
use crate::config::FeatureConfig;
use crate::error::{FeatureError, Result};
use crate::ops::{FeatureHasher, FeatureOp, StandardScaler};
use crate::schema::Schema;

/// Operators in declaration order, with their state, bound to a schema.
///
/// Coordinates: the dense operators' outputs come first (one per scaled field), then one
/// `2^bits` range per hash operator, each group in declaration order. The same set transforms
/// training batches (`learn = true`) and serving requests (`learn = false`), so there is no
/// train/serve skew. Serialized, it keeps the schema, each operator's config and its state; the
/// rest is rebuilt (and checked) on deserialization.
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

impl FeatureSet {
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
        let operators = configs
            .iter()
            .map(|config| match config {
                FeatureConfig::StandardScaler { fields } => {
                    FeatureOp::StandardScaler(StandardScaler::new(fields.clone()))
                }
                FeatureConfig::Hash { fields, bits, seed } => {
                    FeatureOp::Hash(FeatureHasher::new(fields.clone(), *bits, *seed))
                }
            })
            .collect();
        FeatureSet::bind(schema.clone(), operators)
    }

    /// Lays out coordinates and resolves columns.
    fn bind(schema: Schema, mut operators: Vec<FeatureOp>) -> Result<FeatureSet> {
        let mut dense_width = 0;
        for op in &mut operators {
            if let FeatureOp::StandardScaler(s) = op {
                s.bind(&schema, dense_width)?;
                dense_width += s.fields().len();
            }
        }
        let mut dim = dense_width as u64;
        for op in &mut operators {
            if let FeatureOp::Hash(h) = op {
                let offset = u32::try_from(dim).map_err(|_| FeatureError::TooManyCoordinates {
                    dim: dim + h.buckets() as u64,
                    max: u64::from(u32::MAX),
                })?;
                h.bind(&schema, offset)?;
                dim += h.buckets() as u64;
            }
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

    /// Total input coordinates of the learner: the dense width plus `2^bits` per hash operator.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of dense coordinates (one per scaled field).
    pub fn dense_width(&self) -> usize {
        self.dense_width
    }

    /// A human-readable name for every dense coordinate ("x3"), then one per hash range
    /// ("hash(site,app)"), for explanations and model metadata.
    pub fn describe(&self) -> Vec<String> {
        let dense = self.operators.iter().filter(|op| op.is_dense());
        let sparse = self.operators.iter().filter(|op| !op.is_dense());
        dense.chain(sparse).flat_map(FeatureOp::describe).collect()
    }

    /// The name of one coordinate: a dense one's field, or "hash(site,app)[1234]" with the
    /// bucket inside a hash range; `None` past `dim()`.
    pub fn describe_coordinate(&self, coordinate: usize) -> Option<String> {
        if coordinate < self.dense_width {
            return self.describe().into_iter().nth(coordinate);
        }
        self.operators.iter().find_map(|op| match op {
            FeatureOp::Hash(h) => {
                let bucket = coordinate.checked_sub(h.offset() as usize)?;
                (bucket < h.buckets()).then(|| format!("{}[{bucket}]", op.describe()[0]))
            }
            FeatureOp::StandardScaler(_) => None,
        })
    }

    /// Transforms `batch` into `out` (cleared and refilled: reuse it across batches). With
    /// `learn`, each operator updates its state row by row and row i is transformed with the
    /// state after rows 0..=i, so output and state do not depend on how a stream is batched.
    pub fn transform(
        &mut self,
        batch: &RecordBatch,
        learn: bool,
        out: &mut FeatureBatch,
    ) -> Result<()> {
        if !learn {
            return self.transform_frozen(batch, out);
        }
        self.check_batch(batch)?;
        out.reset(batch.num_rows(), self.dense_width);
        let width = self.dense_width;
        for op in &mut self.operators {
            if let FeatureOp::StandardScaler(s) = op {
                s.learn_transform(batch, out.dense_mut(), width)?;
            }
        }
        self.fill_sparse(batch, out)
    }

    /// [`FeatureSet::transform`] with `learn = false`, through `&self` (for the server's shared
    /// snapshot).
    pub fn transform_frozen(&self, batch: &RecordBatch, out: &mut FeatureBatch) -> Result<()> {
        self.check_batch(batch)?;
        out.reset(batch.num_rows(), self.dense_width);
        let width = self.dense_width;
        for op in &self.operators {
            if let FeatureOp::StandardScaler(s) = op {
                s.transform(batch, out.dense_mut(), width)?;
            }
        }
        self.fill_sparse(batch, out)
    }

    /// Fills the sparse part row by row: hash operators are stateless, so unlike the scaler
    /// they can go row-major, which CSR needs when several ranges share a row.
    fn fill_sparse(&self, batch: &RecordBatch, out: &mut FeatureBatch) -> Result<()> {
        let hashers: Vec<&FeatureHasher> = self
            .operators
            .iter()
            .filter_map(|op| match op {
                FeatureOp::Hash(h) => Some(h),
                FeatureOp::StandardScaler(_) => None,
            })
            .collect();
        let columns = hashers
            .iter()
            .map(|h| h.columns(batch))
            .collect::<Result<Vec<_>>>()?;
        let rows = batch.num_rows();
        let (indptr, indices, values) = out.sparse_mut();
        let mut scratch = Vec::new();
        for row in 0..rows {
            for (h, cols) in hashers.iter().zip(&columns) {
                h.push_row(cols, row, &mut scratch, indices, values);
            }
            indptr.push(indices.len());
        }
        Ok(())
    }

    /// Refuses a batch whose columns differ from the schema in count, name or type (a batch
    /// decoded with `schema().with_all_optional()` fits: Arrow columns are all nullable).
    fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        let arrow = batch.schema_ref();
        if arrow.fields().len() != self.schema.len() {
            return Err(FeatureError::BatchMismatch(format!(
                "expected {} columns, got {}",
                self.schema.len(),
                arrow.fields().len()
            )));
        }
        for (i, (field, column)) in self.schema.fields().iter().zip(arrow.fields()).enumerate() {
            let expected = field.ty.data_type();
            if column.name() != &field.name || column.data_type() != &expected {
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
