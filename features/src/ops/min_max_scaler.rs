//! Min-max scaler: `(x - min) / (max - min)` with the running min and max of each field.

use super::field_scaler::{FieldScaler, FieldState};

/// `min_max_scaler`.
pub type MinMaxScaler = FieldScaler<MinMax>;

/// Running min and max of one field; `count = 0` before any value.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMax {
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

impl FieldState for MinMax {
    type Params = ();
    const KIND: &'static str = "min_max_scaler";

    #[inline]
    fn update(&mut self, x: f64, _: &()) {
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
    }

    /// 0.0 while `max == min`; values outside the seen range (when serving) go outside [0, 1].
    #[inline]
    fn output(&self, x: f64, _: &()) -> f64 {
        let range = self.max - self.min;
        if range > 0.0 {
            (x - self.min) / range
        } else {
            0.0
        }
    }

    fn is_valid(&self) -> bool {
        self.min.is_finite() && self.max.is_finite() && self.min <= self.max
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::{close, learn_checked, serve};
    use crate::ops::testing::testgen::values;

    #[test]
    fn matches_prefix_min_max() {
        let xs = values(300, 1);
        let records: Vec<String> = xs.iter().map(|x| format!(r#"{{"x": {x}}}"#)).collect();
        let run = learn_checked(r#"[{"type": "min_max_scaler", "fields": ["x"]}]"#, &records);
        for (i, row) in run.rows.iter().enumerate() {
            let min = xs[..=i].iter().copied().fold(f64::INFINITY, f64::min);
            let max = xs[..=i].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let expected = if max > min {
                (xs[i] - min) / (max - min)
            } else {
                0.0
            };
            assert!(close(row.0[0], expected), "row {i}");
            assert!((0.0..=1.0).contains(&row.0[0]));
        }
        let served = serve(&run.set, &[r#"{"x": 1000}"#.into(), "{}".into()]);
        assert!(served[0].0[0] > 1.0);
        assert_eq!(served[1].0[0], 0.0);
    }
}
