//! Feature operators: one file per operator, joined here into the `FeatureOp` enum.

mod clip;
mod cross;
mod ema;
pub mod event_time;
mod ew_scaler;
mod field_scaler;
mod hash;
mod idle_expiry;
mod impute;
mod interaction;
mod key_map;
mod lag;
mod max_abs_scaler;
mod min_max_scaler;
mod one_hot;
mod standard_scaler;
mod text;
mod time;
mod window;

use arrow_array::RecordBatch;

pub use self::clip::{Clamp, Clip};
pub use self::cross::Cross;
pub use self::ema::Ema;
pub use self::ew_scaler::{EwMoments, EwStandardScaler};
pub use self::field_scaler::{FieldScaler, FieldState};
pub use self::hash::FeatureHasher;
pub use self::idle_expiry::IdleExpiry;
pub use self::impute::{Impute, RunningMean};
pub use self::interaction::Interaction;
pub use self::key_map::{KeyMap, INLINE_KEY_BYTES};
pub use self::lag::Lag;
pub use self::max_abs_scaler::{MaxAbs, MaxAbsScaler};
pub use self::min_max_scaler::{MinMax, MinMaxScaler};
pub use self::one_hot::OneHot;
pub use self::standard_scaler::{Moments, StandardScaler};
pub use self::text::{tokenize, Text};
pub use self::time::{time_parts, TimeFeatures};
pub use self::window::{KeyWindow, Pane, Window};
use crate::config::{FeatureConfig, HASH_BITS};
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

/// One operator of a [`FeatureSet`](crate::FeatureSet), with its state. Serialized externally
/// tagged (postcard stores the variant index: append new variants, never reorder).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureOp {
    StandardScaler(StandardScaler),
    Hash(FeatureHasher),
    EwStandardScaler(EwStandardScaler),
    SignedHash(FeatureHasher),
    MinMaxScaler(MinMaxScaler),
    MaxAbsScaler(MaxAbsScaler),
    Clip(Clip),
    OneHot(OneHot),
    Cross(Cross),
    Interaction(Interaction),
    Text(Text),
    Impute(Impute),
    Time(TimeFeatures),
    Lag(Lag),
    Ema(Ema),
    Window(Window),
}

/// One sparse operator's output: it appends each row's sorted, distinct coordinates, then
/// calls `end_row`.
pub(crate) struct SparseOut<'a> {
    pub indptr: &'a mut Vec<usize>,
    pub indices: &'a mut Vec<u32>,
    pub values: &'a mut Vec<f64>,
}

impl SparseOut<'_> {
    #[inline]
    pub(crate) fn push(&mut self, index: u32, value: f64) {
        self.indices.push(index);
        self.values.push(value);
    }

    #[inline]
    pub(crate) fn end_row(&mut self) {
        self.indptr.push(self.indices.len());
    }
}

/// Event times read by the set's first pass for one operator: the time of each row (0 for a
/// refused row) and, for a window, the watermark after each row.
#[derive(Default)]
pub(crate) struct RowTimes {
    pub times: Vec<i64>,
    pub watermarks: Vec<Option<i64>>,
}

/// True when row `i` is refused.
#[inline]
pub(crate) fn skipped(skip: &[bool], i: usize) -> bool {
    skip.get(i).copied().unwrap_or(false)
}

/// `x`, or 0.0 when it is not finite: no NaN or infinity may reach a learner.
#[inline]
pub(crate) fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Checks that a `2^bits` range at `offset` is valid and fits a `u32` coordinate.
pub(crate) fn check_hash_range(bits: u8, offset: u32) -> Result<()> {
    if !HASH_BITS.contains(&bits) {
        return Err(FeatureError::InvalidState(format!(
            "hash bits must be in 1..=28, got {bits}"
        )));
    }
    if u64::from(offset) + (1u64 << bits) - 1 > u64::from(u32::MAX) {
        return Err(FeatureError::TooManyCoordinates {
            dim: u64::from(offset) + (1u64 << bits),
            max: u64::from(u32::MAX),
        });
    }
    Ok(())
}

impl FeatureOp {
    /// A fresh operator for a validated config.
    pub(crate) fn new(config: &FeatureConfig) -> FeatureOp {
        match config.clone() {
            FeatureConfig::StandardScaler { fields } => {
                FeatureOp::StandardScaler(StandardScaler::new(fields))
            }
            FeatureConfig::Hash { fields, bits, seed } => {
                FeatureOp::Hash(FeatureHasher::new(fields, bits, seed))
            }
            FeatureConfig::SignedHash { fields, bits, seed } => {
                FeatureOp::SignedHash(FeatureHasher::new(fields, bits, seed).signed())
            }
            FeatureConfig::EwStandardScaler { fields, half_life } => {
                FeatureOp::EwStandardScaler(FieldScaler::new(fields, ew_scaler::alpha(half_life)))
            }
            FeatureConfig::MinMaxScaler(c) => {
                FeatureOp::MinMaxScaler(FieldScaler::new(c.fields, ()))
            }
            FeatureConfig::MaxAbsScaler(c) => {
                FeatureOp::MaxAbsScaler(FieldScaler::new(c.fields, ()))
            }
            FeatureConfig::Clip(c) => FeatureOp::Clip(FieldScaler::new(c.fields, (c.min, c.max))),
            FeatureConfig::OneHot(c) => FeatureOp::OneHot(OneHot::new(c.fields, c.max_categories)),
            FeatureConfig::Cross(c) => FeatureOp::Cross(Cross::new(c.fields, c.bits, c.seed)),
            FeatureConfig::Interaction(c) => FeatureOp::Interaction(Interaction::new(c.fields)),
            FeatureConfig::Text(c) => {
                FeatureOp::Text(Text::new(c.field, c.ngrams, c.bits, c.seed, c.idf))
            }
            FeatureConfig::Impute(c) => {
                FeatureOp::Impute(Impute::new(c.fields, c.strategy, c.indicator))
            }
            FeatureConfig::Time(c) => FeatureOp::Time(TimeFeatures::new(c.field, c.unit, c.parts)),
            FeatureConfig::Lag(c) => {
                let expiry = idle_expiry(c.time_field, c.unit, c.idle_expiry_seconds);
                FeatureOp::Lag(Lag::new(c.field, c.key, c.outputs, expiry))
            }
            FeatureConfig::Ema(c) => {
                let expiry = idle_expiry(c.time_field, c.unit, c.idle_expiry_seconds);
                FeatureOp::Ema(Ema::new(c.field, c.key, c.half_life, expiry))
            }
            FeatureConfig::Window(c) => FeatureOp::Window(Window::new(c)),
        }
    }

    /// The fields the operator reads.
    pub fn fields(&self) -> Vec<&str> {
        fn all(f: &[String]) -> Vec<&str> {
            f.iter().map(String::as_str).collect()
        }
        match self {
            FeatureOp::StandardScaler(op) => all(op.fields()),
            FeatureOp::Hash(op) | FeatureOp::SignedHash(op) => all(op.fields()),
            FeatureOp::EwStandardScaler(op) => all(op.fields()),
            FeatureOp::MinMaxScaler(op) => all(op.fields()),
            FeatureOp::MaxAbsScaler(op) => all(op.fields()),
            FeatureOp::Clip(op) => all(op.fields()),
            FeatureOp::OneHot(op) => all(op.fields()),
            FeatureOp::Cross(op) => all(op.fields()),
            FeatureOp::Interaction(op) => all(op.fields()),
            FeatureOp::Text(op) => vec![op.field()],
            FeatureOp::Impute(op) => all(op.fields()),
            FeatureOp::Time(op) => vec![op.field()],
            FeatureOp::Lag(op) => op.fields().into_iter().chain(self.idle_time()).collect(),
            FeatureOp::Ema(op) => op.fields().into_iter().chain(self.idle_time()).collect(),
            FeatureOp::Window(op) => op.fields().to_vec(),
        }
    }

    /// The coordinates it produces: dense ones, or a sparse range.
    pub fn width(&self) -> usize {
        match self {
            FeatureOp::StandardScaler(op) => op.fields().len(),
            FeatureOp::EwStandardScaler(op) => op.fields().len(),
            FeatureOp::MinMaxScaler(op) => op.fields().len(),
            FeatureOp::MaxAbsScaler(op) => op.fields().len(),
            FeatureOp::Clip(op) => op.fields().len(),
            FeatureOp::Interaction(_) | FeatureOp::Ema(_) => 1,
            FeatureOp::Impute(op) => op.width(),
            FeatureOp::Time(op) => op.width(),
            FeatureOp::Lag(op) => op.width(),
            FeatureOp::Window(op) => op.width(),
            FeatureOp::Hash(op) | FeatureOp::SignedHash(op) => op.buckets(),
            FeatureOp::OneHot(op) => op.width(),
            FeatureOp::Cross(op) => op.buckets(),
            FeatureOp::Text(op) => op.buckets(),
        }
    }

    /// True for operators writing the dense prefix.
    pub fn is_dense(&self) -> bool {
        !matches!(
            self,
            FeatureOp::Hash(_)
                | FeatureOp::SignedHash(_)
                | FeatureOp::OneHot(_)
                | FeatureOp::Cross(_)
                | FeatureOp::Text(_)
        )
    }

    /// True for sparse operators whose output for a row depends on that row alone (no state
    /// is read or learned), so it can be computed ahead on another thread ([`crate::Preparer`]).
    pub fn is_row_local(&self) -> bool {
        matches!(
            self,
            FeatureOp::Hash(_) | FeatureOp::SignedHash(_) | FeatureOp::Cross(_)
        )
    }

    /// True for operators that may refuse rows (they read an event time).
    pub fn reads_event_time(&self) -> bool {
        match self {
            FeatureOp::Time(_) | FeatureOp::Window(_) => true,
            FeatureOp::Lag(op) => op.expiry().is_some(),
            FeatureOp::Ema(op) => op.expiry().is_some(),
            _ => false,
        }
    }

    /// The event-time field of an idle-key expiry.
    fn idle_time(&self) -> Option<&str> {
        self.idle_expiry().map(IdleExpiry::field)
    }

    /// The idle-key expiry of `lag` and `ema`, when configured.
    pub fn idle_expiry(&self) -> Option<&IdleExpiry> {
        match self {
            FeatureOp::Lag(op) => op.expiry(),
            FeatureOp::Ema(op) => op.expiry(),
            _ => None,
        }
    }

    /// First coordinate of a sparse operator's range.
    pub fn sparse_offset(&self) -> Option<u32> {
        match self {
            FeatureOp::Hash(op) | FeatureOp::SignedHash(op) => Some(op.offset()),
            FeatureOp::OneHot(op) => Some(op.offset()),
            FeatureOp::Cross(op) => Some(op.offset()),
            FeatureOp::Text(op) => Some(op.offset()),
            _ => None,
        }
    }

    /// Human-readable name of each dense coordinate, or of the sparse range.
    pub fn describe(&self) -> Vec<String> {
        let names = |f: &[String]| f.to_vec();
        match self {
            FeatureOp::StandardScaler(op) => names(op.fields()),
            FeatureOp::EwStandardScaler(op) => names(op.fields()),
            FeatureOp::MinMaxScaler(op) => names(op.fields()),
            FeatureOp::MaxAbsScaler(op) => names(op.fields()),
            FeatureOp::Clip(op) => names(op.fields()),
            FeatureOp::Interaction(op) => op.describe(),
            FeatureOp::Impute(op) => op.describe(),
            FeatureOp::Time(op) => op.describe(),
            FeatureOp::Lag(op) => op.describe(),
            FeatureOp::Ema(op) => op.describe(),
            FeatureOp::Window(op) => op.describe(),
            FeatureOp::Hash(op) => vec![format!("hash({})", op.fields().join(","))],
            FeatureOp::SignedHash(op) => vec![format!("signed_hash({})", op.fields().join(","))],
            FeatureOp::OneHot(op) => vec![format!("one_hot({})", op.fields().join(","))],
            FeatureOp::Cross(op) => vec![format!("cross({})", op.fields().join(","))],
            FeatureOp::Text(op) => vec![format!("text({})", op.field())],
        }
    }

    /// Name of coordinate `bucket` of a sparse operator's range.
    pub(crate) fn describe_bucket(&self, bucket: usize) -> String {
        match self {
            FeatureOp::OneHot(op) => op
                .describe_bucket(bucket)
                .unwrap_or_else(|| format!("{}[{bucket}]", self.describe()[0])),
            _ => format!("{}[{bucket}]", self.describe()[0]),
        }
    }

    /// Heap bytes of per-key state (0 for operators without keys).
    pub fn state_bytes(&self) -> usize {
        match self {
            FeatureOp::Lag(op) => op.state_bytes(),
            FeatureOp::Ema(op) => op.state_bytes(),
            FeatureOp::Window(op) => op.state_bytes(),
            _ => 0,
        }
    }

    /// Resolves columns; `offset` is the first dense coordinate of a dense operator, or the
    /// first coordinate of a sparse one.
    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        let sparse = || {
            u32::try_from(offset).map_err(|_| FeatureError::TooManyCoordinates {
                dim: offset as u64,
                max: u64::from(u32::MAX),
            })
        };
        match self {
            FeatureOp::StandardScaler(op) => op.bind(schema, offset),
            FeatureOp::EwStandardScaler(op) => op.bind(schema, offset),
            FeatureOp::MinMaxScaler(op) => op.bind(schema, offset),
            FeatureOp::MaxAbsScaler(op) => op.bind(schema, offset),
            FeatureOp::Clip(op) => op.bind(schema, offset),
            FeatureOp::Interaction(op) => op.bind(schema, offset),
            FeatureOp::Impute(op) => op.bind(schema, offset),
            FeatureOp::Time(op) => op.bind(schema, offset),
            FeatureOp::Lag(op) => op.bind(schema, offset),
            FeatureOp::Ema(op) => op.bind(schema, offset),
            FeatureOp::Window(op) => op.bind(schema, offset),
            FeatureOp::Hash(op) => {
                op.set_signed(false);
                op.bind(schema, sparse()?)
            }
            FeatureOp::SignedHash(op) => {
                op.set_signed(true);
                op.bind(schema, sparse()?)
            }
            FeatureOp::OneHot(op) => op.bind(schema, sparse()?),
            FeatureOp::Cross(op) => op.bind(schema, sparse()?),
            FeatureOp::Text(op) => op.bind(schema, sparse()?),
        }
    }

    /// Writes a dense operator's coordinates of every row not in `skip`, learning first when
    /// `learn` (then `self` must be the live state; otherwise nothing changes).
    pub(crate) fn learn_dense(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &RowTimes,
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        match self {
            FeatureOp::StandardScaler(op) => op.learn_transform_skipping(batch, skip, dense, width),
            FeatureOp::EwStandardScaler(op) => op.learn_transform(batch, skip, dense, width),
            FeatureOp::MinMaxScaler(op) => op.learn_transform(batch, skip, dense, width),
            FeatureOp::MaxAbsScaler(op) => op.learn_transform(batch, skip, dense, width),
            FeatureOp::Clip(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Interaction(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Impute(op) => op.learn_transform(batch, skip, dense, width),
            FeatureOp::Time(op) => {
                op.transform(batch.num_rows(), skip, &times.times, dense, width);
                Ok(())
            }
            FeatureOp::Lag(op) => op.learn_transform(batch, skip, &times.times, dense, width),
            FeatureOp::Ema(op) => op.learn_transform(batch, skip, &times.times, dense, width),
            FeatureOp::Window(op) => {
                op.learn_transform(batch, skip, &times.times, &times.watermarks, dense, width)
            }
            _ => Ok(()),
        }
    }

    /// [`FeatureOp::learn_dense`] without learning.
    pub(crate) fn transform_dense(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &RowTimes,
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        match self {
            FeatureOp::StandardScaler(op) => op.transform_skipping(batch, skip, dense, width),
            FeatureOp::EwStandardScaler(op) => op.transform(batch, skip, dense, width),
            FeatureOp::MinMaxScaler(op) => op.transform(batch, skip, dense, width),
            FeatureOp::MaxAbsScaler(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Clip(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Interaction(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Impute(op) => op.transform(batch, skip, dense, width),
            FeatureOp::Time(op) => {
                op.transform(batch.num_rows(), skip, &times.times, dense, width);
                Ok(())
            }
            FeatureOp::Lag(op) => op.transform(batch, skip, &times.times, dense, width),
            FeatureOp::Ema(op) => op.transform(batch, skip, &times.times, dense, width),
            FeatureOp::Window(op) => op.transform(batch, skip, &times.times, dense, width),
            _ => Ok(()),
        }
    }

    /// Appends a sparse operator's rows to `out`, learning first when `learn`.
    pub(crate) fn learn_sparse(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        match self {
            FeatureOp::OneHot(op) => op.learn_transform(batch, skip, out),
            FeatureOp::Text(op) => op.learn_transform(batch, skip, out),
            _ => self.transform_sparse(batch, skip, out),
        }
    }

    /// [`FeatureOp::learn_sparse`] without learning.
    pub(crate) fn transform_sparse(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        out: &mut SparseOut<'_>,
    ) -> Result<()> {
        match self {
            FeatureOp::Hash(op) | FeatureOp::SignedHash(op) => op.transform(batch, skip, out),
            FeatureOp::OneHot(op) => op.transform(batch, skip, out),
            FeatureOp::Cross(op) => op.transform(batch, skip, out),
            FeatureOp::Text(op) => op.transform(batch, skip, out),
            _ => Ok(()),
        }
    }
}

/// The idle-key expiry a `lag` or `ema` config asks for (validated: both or neither).
fn idle_expiry(
    time_field: Option<String>,
    unit: Option<crate::config::TimeUnit>,
    seconds: Option<u64>,
) -> Option<IdleExpiry> {
    Some(IdleExpiry::new(time_field?, unit, seconds?))
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

#[cfg(test)]
pub(crate) mod testing;
