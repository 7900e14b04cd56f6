//! Calendar features of an event time: hour of day, day of week and their cyclic encodings.

use std::f64::consts::TAU;

use arrow_array::RecordBatch;

use super::event_time::TimeColumn;
use super::{resolve_columns, skipped};
use crate::config::{time_field_type, TimePart, TimeUnit};
use crate::error::Result;
use crate::schema::Schema;

/// `time`: one dense coordinate per part, in UTC. Stateless; a row whose time is missing or
/// unparsable is refused by the set's first pass, so it never reaches `transform`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeFeatures {
    field: String,
    unit: Option<TimeUnit>,
    parts: Vec<TimePart>,
    #[serde(skip)]
    column: usize,
    #[serde(skip)]
    offset: usize,
}

/// The parts of event time `ms`, in the order of `parts`.
pub fn time_parts(ms: i64, parts: &[TimePart], out: &mut [f64]) {
    const DAY_MS: i64 = 86_400_000;
    let days = ms.div_euclid(DAY_MS);
    let ms_of_day = ms.rem_euclid(DAY_MS);
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    let dow = (days + 3).rem_euclid(7);
    let hour_frac = ms_of_day as f64 / 3_600_000.0;
    let dow_frac = dow as f64 + ms_of_day as f64 / DAY_MS as f64;
    for (o, part) in out.iter_mut().zip(parts) {
        *o = match part {
            TimePart::Hour => (ms_of_day / 3_600_000) as f64,
            TimePart::DayOfWeek => dow as f64,
            TimePart::HourSin => (TAU * hour_frac / 24.0).sin(),
            TimePart::HourCos => (TAU * hour_frac / 24.0).cos(),
            TimePart::DowSin => (TAU * dow_frac / 7.0).sin(),
            TimePart::DowCos => (TAU * dow_frac / 7.0).cos(),
        };
    }
}

impl TimeFeatures {
    pub(crate) fn new(field: String, unit: Option<TimeUnit>, parts: Vec<TimePart>) -> Self {
        TimeFeatures {
            field,
            unit,
            parts,
            column: 0,
            offset: 0,
        }
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn width(&self) -> usize {
        self.parts.len()
    }

    /// "hour(ts)"...
    pub fn describe(&self) -> Vec<String> {
        self.parts
            .iter()
            .map(|p| format!("{}({})", p.as_str(), self.field))
            .collect()
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        let ty = time_field_type(self.unit);
        self.column = resolve_columns(schema, "time", std::slice::from_ref(&self.field), ty)?[0];
        self.offset = offset;
        Ok(())
    }

    /// The event-time column of `batch`.
    pub(crate) fn times<'b>(&self, batch: &'b RecordBatch) -> Result<TimeColumn<'b>> {
        TimeColumn::new(batch, self.column, self.unit)
    }

    /// Writes the parts of each row's time (`times`, from the set's first pass).
    pub(crate) fn transform(
        &self,
        rows: usize,
        skip: &[bool],
        times: &[i64],
        dense: &mut [f64],
        width: usize,
    ) {
        let w = self.width();
        for (i, &t) in times.iter().enumerate().take(rows) {
            if !skipped(skip, i) {
                let at = i * width + self.offset;
                time_parts(t, &self.parts, &mut dense[at..at + w]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::event_time::parse_rfc3339;

    #[test]
    fn parts_of_known_dates() {
        let mut out = [0.0; 6];
        // 2024-05-01 was a Wednesday.
        let t = parse_rfc3339("2024-05-01T18:00:00+02:00").unwrap();
        time_parts(t, &TimePart::ALL, &mut out);
        assert_eq!(&out[..2], &[16.0, 2.0]);
        assert!((out[2] - (TAU * 16.0 / 24.0).sin()).abs() < 1e-12);
        assert!((out[3] - (TAU * 16.0 / 24.0).cos()).abs() < 1e-12);
        assert!((out[4] - (TAU * (2.0 + 16.0 / 24.0) / 7.0).sin()).abs() < 1e-12);
        // Before the epoch: 1969-12-31T23:30 was a Wednesday.
        time_parts(-1_800_000, &[TimePart::Hour, TimePart::DayOfWeek], &mut out);
        assert_eq!(&out[..2], &[23.0, 2.0]);
        // 2024-05-05 was a Sunday.
        let t = parse_rfc3339("2024-05-05T00:59:59Z").unwrap();
        time_parts(t, &[TimePart::DayOfWeek, TimePart::Hour], &mut out);
        assert_eq!(&out[..2], &[6.0, 0.0]);
    }
}

#[cfg(test)]
mod stream_tests {
    use crate::error::DecodeErrorKind;
    use crate::ops::testing::run::{learn_checked, serve};

    #[test]
    fn bad_timestamps_are_refused_per_row() {
        let records: Vec<String> = [
            "2024-05-01T16:30:00Z",
            "yesterday",
            "2024-05-04T23:00:00-01:00",
            "2024-02-30T00:00:00Z",
        ]
        .iter()
        .map(|t| format!(r#"{{"ts": "{t}", "x": 1}}"#))
        .collect();
        let run = learn_checked(
            r#"[{"type": "time", "field": "ts", "parts": ["hour", "day_of_week"]},
                {"type": "standard_scaler", "fields": ["x"]}]"#,
            &records,
        );
        assert_eq!(
            run.rejected,
            vec![
                (1, DecodeErrorKind::BadTimestamp),
                (3, DecodeErrorKind::BadTimestamp)
            ]
        );
        assert_eq!(run.rows[0].0, vec![16.0, 2.0, 0.0]);
        assert_eq!(run.rows[1].0, vec![0.0, 0.0, 0.0]);
        assert_eq!(run.rows[2].0, vec![0.0, 6.0, 0.0]);
        let served = serve(&run.set, &[r#"{"x": 1}"#.into()]);
        assert_eq!(served[0].0, vec![0.0; 3]);
    }
}
