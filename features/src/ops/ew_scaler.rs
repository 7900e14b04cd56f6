//! Exponentially weighted standard scaler: the mean and variance forget old values, their
//! weights halving every `half_life` values.

use super::field_scaler::{FieldScaler, FieldState};

/// `standard_scaler` with `half_life`; its params are the smoothing factor
/// `alpha = 1 - 2^(-1 / half_life)`.
pub type EwStandardScaler = FieldScaler<EwMoments>;

/// The smoothing factor of a half-life counted in values.
pub fn alpha(half_life: f64) -> f64 {
    1.0 - (-1.0 / half_life).exp2()
}

/// Exponentially weighted mean and variance of one field (West's incremental form): after
/// values `x_0..=x_n`, the mean weighs `x_j` by `alpha (1 - alpha)^(n - j)` (`x_0` by
/// `(1 - alpha)^n`) and the variance is the population variance under the same weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwMoments {
    pub count: u64,
    pub mean: f64,
    pub variance: f64,
}

impl FieldState for EwMoments {
    type Params = f64;
    const KIND: &'static str = "standard_scaler";

    #[inline]
    fn update(&mut self, x: f64, &alpha: &f64) {
        if self.count == 0 {
            (self.mean, self.variance) = (x, 0.0);
        } else {
            let diff = x - self.mean;
            let incr = alpha * diff;
            self.mean += incr;
            self.variance = (1.0 - alpha) * (self.variance + diff * incr);
        }
        self.count += 1;
    }

    /// `(x - mean) / std`, 0.0 while the variance is 0.
    #[inline]
    fn output(&self, x: f64, _: &f64) -> f64 {
        if self.variance > 0.0 {
            (x - self.mean) / self.variance.sqrt()
        } else {
            0.0
        }
    }

    fn is_valid(&self) -> bool {
        self.mean.is_finite() && self.variance.is_finite() && self.variance >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::run::{close, learn_checked};
    use crate::ops::testing::testgen::values;

    /// Weighted mean and population variance with explicit weights.
    fn direct(xs: &[f64], alpha: f64) -> (f64, f64) {
        let n = xs.len();
        let w: Vec<f64> = (0..n)
            .map(|j| {
                let decay = (1.0 - alpha).powi((n - 1 - j) as i32);
                if j == 0 {
                    decay
                } else {
                    alpha * decay
                }
            })
            .collect();
        let total: f64 = w.iter().sum();
        let mean = xs.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>() / total;
        let var = xs
            .iter()
            .zip(&w)
            .map(|(x, w)| w * (x - mean).powi(2))
            .sum::<f64>()
            / total;
        (mean, var)
    }

    #[test]
    fn matches_explicitly_weighted_moments() {
        let xs = values(200, 4);
        let records: Vec<String> = xs.iter().map(|x| format!(r#"{{"x": {x}}}"#)).collect();
        let run = learn_checked(
            r#"[{"type": "standard_scaler", "fields": ["x"], "half_life": 10}]"#,
            &records,
        );
        let a = alpha(10.0);
        assert!(close((1.0 - a).powi(10), 0.5));
        for (i, row) in run.rows.iter().enumerate() {
            let (mean, var) = direct(&xs[..=i], a);
            let expected = if i == 0 {
                0.0
            } else {
                (xs[i] - mean) / var.sqrt()
            };
            assert!(
                (row.0[0] - expected).abs() <= 1e-7 * expected.abs().max(1.0),
                "row {i}: {} vs {expected}",
                row.0[0]
            );
        }
    }
}
