//! Imputation: a missing number replaced by the running mean or a constant, with an optional
//! 0/1 missing indicator.

use arrow_array::{Array, Float64Array, RecordBatch};

use super::{column, resolve_columns, skipped};
use crate::config::ImputeStrategy;
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Count and mean of the values seen of one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningMean {
    pub count: u64,
    pub mean: f64,
}

/// `impute`: per field, the value (or its replacement when missing) and, with `indicator`, a
/// second coordinate that is 1.0 when the value was missing. With the mean strategy, a present
/// value updates the mean before the row is written; a missing one reads the mean of the values
/// before it (0.0 before any).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impute {
    fields: Vec<String>,
    strategy: ImputeStrategy,
    indicator: bool,
    means: Vec<RunningMean>,
    #[serde(skip)]
    columns: Vec<usize>,
    #[serde(skip)]
    offset: usize,
}

impl Impute {
    pub(crate) fn new(fields: Vec<String>, strategy: ImputeStrategy, indicator: bool) -> Self {
        Impute {
            means: vec![RunningMean::default(); fields.len()],
            fields,
            strategy,
            indicator,
            columns: Vec::new(),
            offset: 0,
        }
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The running mean of each field.
    pub fn means(&self) -> &[RunningMean] {
        &self.means
    }

    fn per_field(&self) -> usize {
        1 + usize::from(self.indicator)
    }

    pub fn width(&self) -> usize {
        self.fields.len() * self.per_field()
    }

    /// "x" and "x_missing" per field.
    pub fn describe(&self) -> Vec<String> {
        self.fields
            .iter()
            .flat_map(|f| {
                let mut names = vec![f.clone()];
                if self.indicator {
                    names.push(format!("{f}_missing"));
                }
                names
            })
            .collect()
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        let valid =
            self.means.len() == self.fields.len() && self.means.iter().all(|m| m.mean.is_finite());
        if !valid {
            return Err(FeatureError::InvalidState(format!(
                "impute state of {:?} is inconsistent or not finite",
                self.fields
            )));
        }
        self.columns = resolve_columns(schema, "impute", &self.fields, FieldType::Number)?;
        self.offset = offset;
        Ok(())
    }

    fn run(
        &self,
        means: &mut [RunningMean],
        learn: bool,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let per = self.per_field();
        for (j, mean) in means.iter_mut().enumerate() {
            let values = column::<Float64Array>(batch, self.columns[j])?;
            for i in 0..batch.num_rows() {
                if skipped(skip, i) {
                    continue;
                }
                let at = i * width + self.offset + j * per;
                if values.is_valid(i) {
                    let x = values.value(i);
                    if learn {
                        mean.count += 1;
                        mean.mean += (x - mean.mean) / mean.count as f64;
                    }
                    dense[at] = x;
                } else {
                    dense[at] = match self.strategy {
                        ImputeStrategy::Mean => mean.mean,
                        ImputeStrategy::Constant(c) => c,
                    };
                    if self.indicator {
                        dense[at + 1] = 1.0;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let mut means = std::mem::take(&mut self.means);
        let result = self.run(&mut means, true, batch, skip, dense, width);
        self.means = means;
        result
    }

    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let mut means = self.means.clone();
        self.run(&mut means, false, batch, skip, dense, width)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::{learn_checked, serve};
    use crate::ops::testing::testgen::values;

    fn records() -> (Vec<Option<f64>>, Vec<String>) {
        let xs: Vec<Option<f64>> = values(200, 6)
            .into_iter()
            .enumerate()
            .map(|(i, x)| (i % 4 != 1).then_some(x))
            .collect();
        let records = xs
            .iter()
            .map(|x| match x {
                Some(x) => format!(r#"{{"x": {x}}}"#),
                None => "{}".to_owned(),
            })
            .collect();
        (xs, records)
    }

    #[test]
    fn mean_strategy_matches_prefix_means_with_indicator() {
        let (xs, records) = records();
        let run = learn_checked(
            r#"[{"type": "impute", "fields": ["x"], "indicator": true}]"#,
            &records,
        );
        for (i, row) in run.rows.iter().enumerate() {
            let seen: Vec<f64> = xs[..=i].iter().flatten().copied().collect();
            let mean = if seen.is_empty() {
                0.0
            } else {
                seen.iter().sum::<f64>() / seen.len() as f64
            };
            let expected = match xs[i] {
                Some(x) => vec![x, 0.0],
                None => vec![mean, 1.0],
            };
            assert!((row.0[0] - expected[0]).abs() < 1e-9, "row {i}");
            assert_eq!(row.0[1], expected[1]);
        }
        assert_eq!(run.set.describe(), vec!["x", "x_missing"]);
    }

    #[test]
    fn constant_strategy() {
        let (xs, records) = records();
        let run = learn_checked(
            r#"[{"type": "impute", "fields": ["x"], "strategy": {"constant": -1.5}}]"#,
            &records,
        );
        for (row, x) in run.rows.iter().zip(&xs) {
            assert_eq!(row.0, vec![x.unwrap_or(-1.5)]);
        }
        assert_eq!(serve(&run.set, &["{}".into()])[0].0, vec![-1.5]);
    }
}
