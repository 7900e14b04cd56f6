//! Regression sums: MAE, RMSE, and R² with the target variance tracked by Welford's algorithm.

use serde::{Deserialize, Serialize};

use super::{mean, Accumulator, MetricValues, MAE, R2, RMSE};

/// Targets and predictions are clamped to `+-VALUE_LIMIT`, so a squared error (< 4e200) and sums of
/// up to 1e100 of them stay finite; a prediction beyond that is meaningless anyway.
const VALUE_LIMIT: f64 = 1e100;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RegressionTerm {
    y: f64,
    abs_err: f64,
    sq_err: f64,
}

/// Error sums plus Welford's running mean and sum of squared deviations of the target (numerically
/// stable, unlike `sum(y^2) - n mean^2`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RegressionAcc {
    n: u64,
    abs_err_sum: f64,
    sq_err_sum: f64,
    y_mean: f64,
    y_m2: f64,
}

impl Accumulator for RegressionAcc {
    type Term = RegressionTerm;

    #[inline]
    fn normalize(y: f64, p: f64) -> Option<(f64, f64)> {
        if !(y.is_finite() && p.is_finite()) {
            return None;
        }
        Some((
            y.clamp(-VALUE_LIMIT, VALUE_LIMIT),
            p.clamp(-VALUE_LIMIT, VALUE_LIMIT),
        ))
    }

    #[inline]
    fn term(y: f64, p: f64) -> RegressionTerm {
        let e = p - y;
        RegressionTerm {
            y,
            abs_err: e.abs(),
            sq_err: e * e,
        }
    }

    #[inline]
    fn add(&mut self, t: &RegressionTerm) {
        self.n += 1;
        self.abs_err_sum += t.abs_err;
        self.sq_err_sum += t.sq_err;
        let d = t.y - self.y_mean;
        self.y_mean += d / self.n as f64;
        self.y_m2 += d * (t.y - self.y_mean);
    }

    /// Welford's update run backwards.
    #[inline]
    fn remove(&mut self, t: &RegressionTerm) {
        if self.n <= 1 {
            *self = Self::default();
            return;
        }
        let rest = (self.n - 1) as f64;
        let mean_without = self.y_mean - (t.y - self.y_mean) / rest;
        self.y_m2 -= (t.y - mean_without) * (t.y - self.y_mean);
        self.y_mean = mean_without;
        self.n -= 1;
        self.abs_err_sum -= t.abs_err;
        self.sq_err_sum -= t.sq_err;
    }

    fn rebuild<'t>(&mut self, terms: impl Iterator<Item = &'t RegressionTerm>) {
        *self = Self::default();
        for t in terms {
            self.add(t);
        }
    }

    fn count(&self) -> u64 {
        self.n
    }

    /// R² is `1 - SS_res / SS_tot`, reported as 0.0 while the target has (numerically) zero
    /// variance.
    fn values(&self) -> MetricValues {
        // max(0): the window's add/remove can round a zero sum slightly negative
        let sq = self.sq_err_sum.max(0.0);
        let ss_tot = self.y_m2.max(0.0);
        let r2 = if ss_tot > 0.0 { 1.0 - sq / ss_tot } else { 0.0 };
        vec![
            (MAE, mean(self.abs_err_sum.max(0.0), self.n)),
            (RMSE, mean(sq, self.n).sqrt()),
            (R2, r2),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc_of(events: &[(f64, f64)]) -> RegressionAcc {
        let mut acc = RegressionAcc::default();
        for &(y, p) in events {
            let (y, p) = RegressionAcc::normalize(y, p).unwrap();
            acc.add(&RegressionAcc::term(y, p));
        }
        acc
    }

    #[test]
    fn hand_computed_values() {
        // y = 1, 2, 3, 4 (mean 2.5, SS_tot 5); errors 0.5, -1, 0, 1.5
        let acc = acc_of(&[(1.0, 1.5), (2.0, 1.0), (3.0, 3.0), (4.0, 5.5)]);
        let v = acc.values();
        assert_eq!(v[0], (MAE, 3.0 / 4.0));
        assert_eq!(v[1].0, RMSE);
        assert!((v[1].1 - (3.5f64 / 4.0).sqrt()).abs() < 1e-15);
        assert_eq!(v[2].0, R2);
        assert!((v[2].1 - (1.0 - 3.5 / 5.0)).abs() < 1e-15);
    }

    #[test]
    fn undefined_cases_have_nan_free_defaults() {
        assert_eq!(
            RegressionAcc::default().values(),
            vec![(MAE, 0.0), (RMSE, 0.0), (R2, 0.0)]
        );
        let constant = acc_of(&[(2.0, 1.0), (2.0, 3.0), (2.0, 2.0)]).values();
        assert_eq!(constant[2], (R2, 0.0));
        assert_eq!(constant[0], (MAE, 2.0 / 3.0));
    }

    #[test]
    fn remove_reverses_welford() {
        let mut acc = acc_of(&[(1.0, 0.0), (5.0, 0.0), (-2.0, 1.0)]);
        let t = RegressionAcc::term(10.0, 3.0);
        acc.add(&t);
        acc.remove(&t);
        let direct = acc_of(&[(1.0, 0.0), (5.0, 0.0), (-2.0, 1.0)]);
        assert_eq!(acc.n, 3);
        assert!((acc.y_mean - direct.y_mean).abs() < 1e-14);
        assert!((acc.y_m2 - direct.y_m2).abs() < 1e-12);
        assert!((acc.sq_err_sum - direct.sq_err_sum).abs() < 1e-12);
        // removing the last event resets exactly
        let mut one = acc_of(&[(3.0, 1.0)]);
        one.remove(&RegressionAcc::term(3.0, 1.0));
        assert_eq!(one, RegressionAcc::default());
    }

    #[test]
    fn extreme_values_stay_finite() {
        let acc = acc_of(&[(f64::MAX, -f64::MAX), (-1e300, 1e300), (0.0, 0.0)]);
        for (name, v) in acc.values() {
            assert!(v.is_finite(), "{name} = {v}");
        }
        assert!(RegressionAcc::normalize(f64::NAN, 0.0).is_none());
    }
}
