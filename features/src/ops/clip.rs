//! Clipping: each number field clamped to a fixed range. Stateless.

use super::field_scaler::{FieldScaler, FieldState};

/// `clip`; its params are `(min, max)`.
pub type Clip = FieldScaler<Clamp>;

/// No state: clipping only needs the bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Clamp;

impl FieldState for Clamp {
    type Params = (f64, f64);
    const KIND: &'static str = "clip";

    #[inline]
    fn update(&mut self, _: f64, _: &(f64, f64)) {}

    #[inline]
    fn output(&self, x: f64, &(min, max): &(f64, f64)) -> f64 {
        x.clamp(min, max)
    }

    fn is_valid(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::run::learn_checked;
    use crate::ops::testing::testgen::values;

    #[test]
    fn clamps_each_field() {
        let xs = values(200, 3);
        let records: Vec<String> = xs
            .iter()
            .map(|x| format!(r#"{{"a": {x}, "b": {}}}"#, -x))
            .collect();
        let run = learn_checked(
            r#"[{"type": "clip", "fields": ["a", "b"], "min": -10, "max": 20}]"#,
            &records,
        );
        for (row, x) in run.rows.iter().zip(&xs) {
            assert_eq!(row.0, vec![x.clamp(-10.0, 20.0), (-x).clamp(-10.0, 20.0)]);
        }
    }
}
