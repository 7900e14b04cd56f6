//! Max-abs scaler: `x / max |x|` with the running maximum absolute value of each field.

use super::field_scaler::{FieldScaler, FieldState};

/// `max_abs_scaler`.
pub type MaxAbsScaler = FieldScaler<MaxAbs>;

/// Running maximum of `|x|` for one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxAbs {
    pub max_abs: f64,
}

impl FieldState for MaxAbs {
    type Params = ();
    const KIND: &'static str = "max_abs_scaler";

    #[inline]
    fn update(&mut self, x: f64, _: &()) {
        self.max_abs = self.max_abs.max(x.abs());
    }

    /// In [-1, 1] for learned values; 0.0 while the max is 0.
    #[inline]
    fn output(&self, x: f64, _: &()) -> f64 {
        if self.max_abs > 0.0 {
            x / self.max_abs
        } else {
            0.0
        }
    }

    fn is_valid(&self) -> bool {
        self.max_abs.is_finite() && self.max_abs >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::{close, learn_checked};
    use crate::ops::testing::testgen::values;

    #[test]
    fn matches_prefix_max_abs() {
        let xs = values(300, 2);
        let records: Vec<String> = xs.iter().map(|x| format!(r#"{{"x": {x}}}"#)).collect();
        let run = learn_checked(r#"[{"type": "max_abs_scaler", "fields": ["x"]}]"#, &records);
        for (i, row) in run.rows.iter().enumerate() {
            let m = xs[..=i].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let expected = if m > 0.0 { xs[i] / m } else { 0.0 };
            assert!(close(row.0[0], expected), "row {i}");
        }
    }
}
