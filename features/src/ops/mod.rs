//! Feature operators: one file per operator, joined here into the `FeatureOp` enum.

mod hash;
mod standard_scaler;

use arrow_array::RecordBatch;

pub use self::hash::FeatureHasher;
pub use self::standard_scaler::{Moments, StandardScaler};
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Running state updated one value at a time, the shape every operator's state takes.
pub trait Operator {
    /// What one update takes.
    type Value;
    /// What the state reports.
    type Output;
    /// Folds one value into the state.
    fn update(&mut self, value: Self::Value);
    /// The current result.
    fn get(&self) -> Self::Output;
}

/// One operator of a [`FeatureSet`](crate::FeatureSet), with its state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureOp {
    StandardScaler(StandardScaler),
    Hash(FeatureHasher),
}

impl FeatureOp {
    /// The fields the operator reads.
    pub fn fields(&self) -> &[String] {
        match self {
            FeatureOp::StandardScaler(op) => op.fields(),
            FeatureOp::Hash(op) => op.fields(),
        }
    }

    /// The coordinates it produces: dense ones for the scaler, a hash range for the hasher.
    pub fn width(&self) -> usize {
        match self {
            FeatureOp::StandardScaler(op) => op.fields().len(),
            FeatureOp::Hash(op) => op.buckets(),
        }
    }

    /// True for operators writing the dense prefix.
    pub fn is_dense(&self) -> bool {
        matches!(self, FeatureOp::StandardScaler(_))
    }

    /// Human-readable name of each dense coordinate, or of the hash range.
    pub fn describe(&self) -> Vec<String> {
        match self {
            FeatureOp::StandardScaler(op) => op.fields().to_vec(),
            FeatureOp::Hash(op) => vec![format!("hash({})", op.fields().join(","))],
        }
    }
}

/// Resolves `fields` to column indices of `schema`, checking that each has type `expected`.
pub(crate) fn resolve_columns(
    schema: &Schema,
    operator: &'static str,
    fields: &[String],
    expected: FieldType,
) -> Result<Vec<usize>> {
    fields
        .iter()
        .map(|name| {
            let i = schema
                .index_of(name)
                .ok_or_else(|| FeatureError::UnknownField { name: name.clone() })?;
            let got = schema.fields()[i].ty;
            if got != expected {
                return Err(FeatureError::WrongFieldType {
                    operator,
                    name: name.clone(),
                    expected,
                    got,
                });
            }
            Ok(i)
        })
        .collect()
}

/// Column `i` of `batch` as the concrete array type `T`.
pub(crate) fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T> {
    batch
        .columns()
        .get(i)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            FeatureError::BatchMismatch(format!(
                "column {i} is missing or not of type {}",
                std::any::type_name::<T>()
            ))
        })
}
