//! CSV decoding: a header maps columns to schema fields by name.

use super::{check_number, out_of_range, quoted, Row, Slot};
use crate::error::{DecodeError, DecodeErrorKind, FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Maps CSV columns to schema fields by header name. Extra columns are ignored; a required
/// field absent from the header is an error when the header is read, not on every row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvHeader {
    columns: usize,
    /// (column, field) pairs in column order.
    mapped: Vec<(usize, usize)>,
}

impl CsvHeader {
    /// Reads a header row. Names are matched after trimming surrounding ASCII whitespace.
    pub fn new(header: &::csv::ByteRecord, schema: &Schema) -> Result<CsvHeader> {
        let mut column_of: Vec<Option<usize>> = vec![None; schema.len()];
        let mut mapped = Vec::new();
        for (column, name) in header.iter().enumerate() {
            // A name that is not UTF-8 cannot match a field; like any extra column it is skipped.
            let Ok(name) = std::str::from_utf8(name.trim_ascii()) else {
                continue;
            };
            let Some(field) = schema.index_of(name) else {
                continue;
            };
            if let Some(first) = column_of[field] {
                return Err(FeatureError::DuplicateCsvColumn {
                    name: name.to_owned(),
                    first,
                    second: column,
                });
            }
            column_of[field] = Some(column);
            mapped.push((column, field));
        }
        for (field, column) in schema.fields().iter().zip(&column_of) {
            if field.required && column.is_none() {
                return Err(FeatureError::MissingCsvColumn {
                    name: field.name.clone(),
                });
            }
        }
        Ok(CsvHeader {
            columns: header.len(),
            mapped,
        })
    }

    /// Number of columns every row must have.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Decodes `record` into `row` (already reset).
    pub(super) fn decode(
        &self,
        schema: &Schema,
        row: &mut Row,
        record: &::csv::ByteRecord,
    ) -> Result<(), DecodeError> {
        if record.len() != self.columns {
            return Err(DecodeError::record(
                DecodeErrorKind::WrongColumnCount,
                format!(
                    "wrong column count: expected {}, got {}",
                    self.columns,
                    record.len()
                ),
            ));
        }
        let fields = schema.fields();
        for &(column, i) in &self.mapped {
            let cell = record.get(column).unwrap_or_default();
            if cell.is_empty() {
                continue;
            }
            let name = &fields[i].name;
            let Ok(text) = std::str::from_utf8(cell) else {
                return Err(DecodeError::field(
                    DecodeErrorKind::InvalidUtf8,
                    name,
                    format!("invalid utf-8 in column {column}"),
                ));
            };
            row.slots[i] = match fields[i].ty {
                FieldType::String => row.push_str(text),
                FieldType::Number => match parse_number(name, text)? {
                    Some(x) => Slot::Number(x),
                    None => Slot::Missing,
                },
            };
        }
        Ok(())
    }
}

/// Parses a number cell the way JSON numbers are read: booleans are 1/0, surrounding whitespace
/// is ignored, and a blank cell is missing.
fn parse_number(field: &str, text: &str) -> Result<Option<f64>, DecodeError> {
    let trimmed = text.trim();
    match trimmed {
        "" => return Ok(None),
        "true" => return Ok(Some(1.0)),
        "false" => return Ok(Some(0.0)),
        _ => {}
    }
    let Ok(x) = trimmed.parse::<f64>() else {
        return Err(DecodeError::field(
            DecodeErrorKind::WrongType,
            field,
            format!("expected a number, got {}", quoted(text)),
        ));
    };
    // Rust parses both "inf" and "1e400" to infinity; only the spelled-out one is "not finite",
    // the other is a number too large.
    if x.is_infinite() && trimmed.bytes().any(|b| b.is_ascii_digit()) {
        return Err(out_of_range(field, trimmed));
    }
    check_number(field, x).map(Some)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array, StringArray};

    use super::*;
    use crate::decode::BatchBuilder;
    use crate::error::DecodeErrorKind as K;
    use crate::schema::Field;

    fn schema() -> Arc<Schema> {
        Arc::new(
            Schema::new(vec![
                Field::number("x"),
                Field::number("y").required(false),
                Field::string("site"),
            ])
            .unwrap(),
        )
    }

    fn read(text: &str) -> Vec<::csv::ByteRecord> {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        reader.byte_records().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn maps_columns_by_name_with_extra_and_missing_columns_and_quoting() {
        let rows = read(
            "extra, site ,x,other\n\
             1,\"a,b\",2.5,z\n\
             2,,\" -3 \",z\n\
             3,\"say \"\"hi\"\"\",true,z\n",
        );
        let s = schema();
        let header = CsvHeader::new(&rows[0], &s).unwrap();
        assert_eq!(header.columns(), 4);
        let mut b = BatchBuilder::new(s);
        for row in &rows[1..] {
            b.push_csv(&header, row).unwrap();
        }
        let batch = b.finish();
        let x = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let y = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let site = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(x.values().as_ref(), &[2.5, -3.0, 1.0]);
        assert_eq!(
            y.null_count(),
            3,
            "y has no column, so it is always missing"
        );
        assert_eq!(site.value(0), "a,b");
        assert!(site.is_null(1), "an empty cell is a missing value");
        assert_eq!(site.value(2), "say \"hi\"");
    }

    #[test]
    fn header_errors() {
        let s = schema();
        let err = CsvHeader::new(&read("site,y\n")[0], &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required field \"x\" is not a column of the csv header"
        );
        let err = CsvHeader::new(&read("x,site,x\n")[0], &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field \"x\" appears twice in the csv header (columns 0 and 2)"
        );
    }

    #[test]
    fn refusals_name_the_field_and_leave_no_row() {
        let s = schema();
        let rows = read("x,site\n1,a\n1\n,a\nabc,a\nNaN,a\n-inf,a\n1e400,a\n2e100,a\n4,ok\n");
        let header = CsvHeader::new(&rows[0], &s).unwrap();
        let mut b = BatchBuilder::new(s);
        b.push_csv(&header, &rows[1]).unwrap();
        let expected: &[(K, Option<&str>, &str)] = &[
            (
                K::WrongColumnCount,
                None,
                "wrong column count: expected 2, got 1",
            ),
            (K::MissingField, Some("x"), "x: missing required value"),
            (K::WrongType, Some("x"), "x: expected a number, got \"abc\""),
            (
                K::NotFinite,
                Some("x"),
                "x: expected a finite number, got NaN",
            ),
            (
                K::NotFinite,
                Some("x"),
                "x: expected a finite number, got -inf",
            ),
            (
                K::OutOfRange,
                Some("x"),
                "x: magnitude must be <= 1e100, got 1e400",
            ),
            (
                K::OutOfRange,
                Some("x"),
                "x: magnitude must be <= 1e100, got 2e100",
            ),
        ];
        for (row, &(kind, field, message)) in rows[2..].iter().zip(expected) {
            let e = b.push_csv(&header, row).unwrap_err();
            assert_eq!(
                (e.kind, e.field.as_deref(), e.to_string().as_str()),
                (kind, field, message)
            );
            assert_eq!(b.len(), 1);
        }
        b.push_csv(&header, rows.last().unwrap()).unwrap();
        let batch = b.finish();
        let site = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((site.value(0), site.value(1)), ("a", "ok"));
    }

    #[test]
    fn invalid_utf8_cell() {
        let s = schema();
        let header = CsvHeader::new(&read("x,site\n")[0], &s).unwrap();
        let row = ::csv::ByteRecord::from(vec![&b"1"[..], &b"\xff"[..]]);
        let mut b = BatchBuilder::new(s);
        let e = b.push_csv(&header, &row).unwrap_err();
        assert_eq!((e.kind, e.field.as_deref()), (K::InvalidUtf8, Some("site")));
        assert_eq!(e.to_string(), "site: invalid utf-8 in column 1");
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "z".repeat(100);
        let e = parse_number("x", &long).unwrap_err();
        assert_eq!(
            e.detail,
            format!("expected a number, got {:?}...", "z".repeat(40))
        );
    }
}
