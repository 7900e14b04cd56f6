//! `FieldScaler`: the shape shared by operators that map each number field through its own
//! small running state (min-max, max-abs, exponentially weighted scaling, clipping).

use std::fmt::Debug;

use arrow_array::{Array, Float64Array, RecordBatch};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{column, finite_or_zero, resolve_columns, skipped};
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// One field's state of a [`FieldScaler`], with the operator's fixed parameters `Params`.
pub trait FieldState:
    Copy + Default + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync
{
    /// Fixed parameters of the operator (a smoothing factor, clip bounds).
    type Params: Copy + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync;
    /// The `type` of the operator, for error messages.
    const KIND: &'static str;
    /// Folds `x` into the state.
    fn update(&mut self, x: f64, params: &Self::Params);
    /// The feature for `x` under the current state (made finite by the caller).
    fn output(&self, x: f64, params: &Self::Params) -> f64;
    /// False when state read from an artifact is corrupt (not finite).
    fn is_valid(&self) -> bool;
}

/// Number fields, each with its own [`FieldState`], one dense coordinate per field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
pub struct FieldScaler<S: FieldState> {
    fields: Vec<String>,
    params: S::Params,
    states: Vec<S>,
    #[serde(skip)]
    columns: Vec<usize>,
    #[serde(skip)]
    offset: usize,
}

impl<S: FieldState> FieldScaler<S> {
    /// A fresh operator. Call `bind` before use.
    pub(crate) fn new(fields: Vec<String>, params: S::Params) -> Self {
        FieldScaler {
            states: vec![S::default(); fields.len()],
            fields,
            params,
            columns: Vec::new(),
            offset: 0,
        }
    }

    /// The fields, in coordinate order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The state of each field.
    pub fn states(&self) -> &[S] {
        &self.states
    }

    /// The fixed parameters.
    pub fn params(&self) -> &S::Params {
        &self.params
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        if self.states.len() != self.fields.len() || !self.states.iter().all(S::is_valid) {
            return Err(FeatureError::InvalidState(format!(
                "{} state does not fit its {} fields or is not finite",
                S::KIND,
                self.fields.len()
            )));
        }
        self.columns = resolve_columns(schema, S::KIND, &self.fields, FieldType::Number)?;
        self.offset = offset;
        Ok(())
    }

    /// Learns (when `learn`) and writes each row's values; skipped rows and nulls write 0.0
    /// and change nothing.
    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        for j in 0..self.fields.len() {
            let values = column::<Float64Array>(batch, self.columns[j])?;
            let mut s = self.states[j];
            run::<S, true>(
                &mut s,
                &self.params,
                values,
                skip,
                dense,
                self.offset + j,
                width,
            );
            self.states[j] = s;
        }
        Ok(())
    }

    /// Writes each row's values with the current state, leaving it unchanged.
    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        for j in 0..self.fields.len() {
            let values = column::<Float64Array>(batch, self.columns[j])?;
            let mut s = self.states[j];
            run::<S, false>(
                &mut s,
                &self.params,
                values,
                skip,
                dense,
                self.offset + j,
                width,
            );
        }
        Ok(())
    }
}

#[inline]
fn run<S: FieldState, const LEARN: bool>(
    s: &mut S,
    params: &S::Params,
    values: &Float64Array,
    skip: &[bool],
    dense: &mut [f64],
    at: usize,
    width: usize,
) {
    let Some(out) = dense.get_mut(at..) else {
        return;
    };
    let out = out.iter_mut().step_by(width.max(1));
    for (i, (o, &x)) in out.zip(values.values().iter()).enumerate() {
        if values.is_null(i) || skipped(skip, i) {
            *o = 0.0;
            continue;
        }
        if LEARN {
            s.update(x, params);
        }
        *o = finite_or_zero(s.output(x, params));
    }
}
