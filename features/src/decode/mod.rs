//! `BatchBuilder`: decodes records (JSON, CSV, typed values) into Arrow `RecordBatch`es.

mod csv;
mod json;
mod json_values;

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

pub use self::csv::CsvHeader;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::schema::{FieldType, Schema};

/// Largest accepted magnitude of a number. Why: the scaler squares deviations and sums them over
/// the stream; below 1e100 those sums stay far from `f64::MAX` (1.8e308).
pub const MAX_ABS_NUMBER: f64 = 1e100;

/// One decoded value of the row being built, before it is committed to the column builders.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Missing,
    Number(f64),
    /// A byte range of `Row::text`.
    String(usize, usize),
}

/// Per-row scratch. A record is decoded into here first so that a failure halfway leaves the
/// column builders untouched (each push is all-or-nothing).
#[derive(Debug)]
struct Row {
    slots: Vec<Slot>,
    text: String,
    /// The keys met at each place of recent JSON records, with their fields (kept across
    /// records; see `json::KeySeed`).
    keys: Vec<(Box<str>, Option<usize>)>,
}

impl Row {
    fn reset(&mut self) {
        self.slots.fill(Slot::Missing);
        self.text.clear();
    }

    fn push_str(&mut self, s: &str) -> Slot {
        let start = self.text.len();
        self.text.push_str(s);
        Slot::String(start, self.text.len())
    }
}

#[derive(Debug)]
enum Column {
    Number(Float64Builder),
    String(StringBuilder),
}
/// A value a source supplies for a field the record itself left missing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill<'a> {
    Number(f64),
    Text(&'a str),
}

/// Appends decoded records into Arrow column builders.
///
/// Each push is all-or-nothing: a record that fails leaves no partial row behind. Number fields
/// take JSON numbers (and `true`/`false` as 1/0); NaN, infinities and magnitudes above
/// [`MAX_ABS_NUMBER`] are refused. String fields take JSON strings. A null or absent value is a
/// missing value: an error for required fields, a null otherwise. Unknown keys are skipped and
/// for duplicate keys the last one wins.
#[derive(Debug)]
pub struct BatchBuilder {
    schema: Arc<Schema>,
    arrow: SchemaRef,
    columns: Vec<Column>,
    required: Vec<usize>,
    number_fields: Vec<usize>,
    string_fields: Vec<usize>,
    row: Row,
    /// Number fields that must be 0 or 1 (a binary target).
    binary: Vec<usize>,
    len: usize,
    // Sizes of the last finished batch, so the next one is allocated once instead of grown.
    last_rows: usize,
    last_text: Vec<usize>,
}

impl BatchBuilder {
    /// A builder for records of `schema`.
    pub fn new(schema: Arc<Schema>) -> Self {
        let fields = schema.fields();
        let pick = |ty: FieldType| -> Vec<usize> {
            (0..fields.len()).filter(|&i| fields[i].ty == ty).collect()
        };
        let mut builder = BatchBuilder {
            arrow: schema.arrow_schema(),
            columns: Vec::new(),
            required: (0..fields.len()).filter(|&i| fields[i].required).collect(),
            number_fields: pick(FieldType::Number),
            string_fields: pick(FieldType::String),
            row: Row {
                slots: vec![Slot::Missing; fields.len()],
                text: String::new(),
                keys: Vec::new(),
            },
            binary: Vec::new(),
            len: 0,
            last_rows: 0,
            last_text: vec![0; fields.len()],
            schema,
        };
        builder.columns = builder.new_columns();
        builder
    }

    fn new_columns(&self) -> Vec<Column> {
        self.schema
            .fields()
            .iter()
            .zip(&self.last_text)
            .map(|(field, &text)| match field.ty {
                FieldType::Number => Column::Number(Float64Builder::with_capacity(self.last_rows)),
                FieldType::String => {
                    Column::String(StringBuilder::with_capacity(self.last_rows, text))
                }
            })
            .collect()
    }

    /// An empty builder with the same schema and checks, for another reader of the same stream.
    pub fn fresh(&self) -> BatchBuilder {
        let mut builder = BatchBuilder::new(Arc::clone(&self.schema));
        builder.binary.clone_from(&self.binary);
        builder
    }

    /// Requires the Number field at `index` to be 0 or 1 (true/false) when present: a binary
    /// target. Another value refuses the record with `OutOfRange`, before it reaches any state.
    pub fn require_binary(&mut self, index: usize) {
        if !self.binary.contains(&index) {
            self.binary.push(index);
        }
    }

    /// The schema records are decoded against.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The Arrow schema of the batches this builder finishes.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// The Number fields that must be 0 or 1 (see [`require_binary`](Self::require_binary)).
    pub fn binary_fields(&self) -> &[usize] {
        &self.binary
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row was pushed since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decodes one JSON object (a JSON Lines line without its newline, or one HTTP instance's
    /// raw bytes). Trailing whitespace is fine, anything else after the object is malformed.
    pub fn push_json(&mut self, record: &[u8]) -> Result<(), DecodeError> {
        self.row.reset();
        json::decode(&self.schema, &mut self.row, record)?;
        self.commit()
    }

    /// Like [`push_json`](Self::push_json), then fills fields the record left missing from
    /// `fill` (field index, value): a source's own metadata, such as a message's key or
    /// timestamp, stands in for what the record does not say itself. A fill value of the wrong
    /// type for its field is ignored.
    pub fn push_json_filled(
        &mut self,
        record: &[u8],
        fill: &[(usize, Fill<'_>)],
    ) -> Result<(), DecodeError> {
        self.row.reset();
        json::decode(&self.schema, &mut self.row, record)?;
        self.fill(fill)?;
        self.commit()
    }

    /// [`push_csv`](Self::push_csv) with the fills of [`push_json_filled`](Self::push_json_filled).
    pub fn push_csv_filled(
        &mut self,
        header: &CsvHeader,
        row: &::csv::ByteRecord,
        fill: &[(usize, Fill<'_>)],
    ) -> Result<(), DecodeError> {
        self.row.reset();
        header.decode(&self.schema, &mut self.row, row)?;
        self.fill(fill)?;
        self.commit()
    }

    fn fill(&mut self, fill: &[(usize, Fill<'_>)]) -> Result<(), DecodeError> {
        let fields = self.schema.fields();
        for &(i, value) in fill {
            if i >= fields.len() || self.row.slots[i] != Slot::Missing {
                continue;
            }
            match (fields[i].ty, value) {
                (FieldType::Number, Fill::Number(x)) => {
                    self.row.slots[i] = Slot::Number(check_number(&fields[i].name, x)?)
                }
                (FieldType::String, Fill::Text(s)) => self.row.slots[i] = self.row.push_str(s),
                _ => {}
            }
        }
        Ok(())
    }

    /// Decodes one CSV row, using the header's column -> field mapping. An empty cell is a
    /// missing value.
    pub fn push_csv(
        &mut self,
        header: &CsvHeader,
        row: &::csv::ByteRecord,
    ) -> Result<(), DecodeError> {
        self.row.reset();
        header.decode(&self.schema, &mut self.row, row)?;
        self.commit()
    }

    /// Pushes one row of already-typed values: `numbers` are the Number fields in schema order,
    /// `strings` the String fields in schema order; `None` is a missing value.
    pub fn push_values(
        &mut self,
        numbers: &[Option<f64>],
        strings: &[Option<&str>],
    ) -> Result<(), DecodeError> {
        for (given, expected, what) in [
            (numbers.len(), self.number_fields.len(), "numbers"),
            (strings.len(), self.string_fields.len(), "strings"),
        ] {
            if given != expected {
                return Err(DecodeError::record(
                    DecodeErrorKind::WrongColumnCount,
                    format!("wrong value count: expected {expected} {what}, got {given}"),
                ));
            }
        }
        self.row.reset();
        let fields = self.schema.fields();
        for (&i, value) in self.number_fields.iter().zip(numbers) {
            if let Some(x) = *value {
                self.row.slots[i] = Slot::Number(check_number(&fields[i].name, x)?);
            }
        }
        for (&i, value) in self.string_fields.iter().zip(strings) {
            if let Some(s) = *value {
                self.row.slots[i] = self.row.push_str(s);
            }
        }
        self.commit()
    }

    /// [`push_values`](Self::push_values) with the fills of
    /// [`push_json_filled`](Self::push_json_filled).
    pub fn push_values_filled(
        &mut self,
        numbers: &[Option<f64>],
        strings: &[Option<&str>],
        fill: &[(usize, Fill<'_>)],
    ) -> Result<(), DecodeError> {
        if fill.is_empty() {
            return self.push_values(numbers, strings);
        }
        let mut numbers = numbers.to_vec();
        let mut strings = strings.to_vec();
        for &(i, value) in fill {
            match value {
                Fill::Number(x) => {
                    if let Some(k) = self.number_fields.iter().position(|&f| f == i) {
                        if numbers.get(k).is_some_and(Option::is_none) {
                            numbers[k] = Some(x);
                        }
                    }
                }
                Fill::Text(t) => {
                    if let Some(k) = self.string_fields.iter().position(|&f| f == i) {
                        if strings.get(k).is_some_and(Option::is_none) {
                            strings[k] = Some(t);
                        }
                    }
                }
            }
        }
        self.push_values(&numbers, &strings)
    }

    /// Checks required fields, then appends the scratch row to the column builders.
    fn commit(&mut self) -> Result<(), DecodeError> {
        let fields = self.schema.fields();
        if let Some(&i) = self
            .required
            .iter()
            .find(|&&i| self.row.slots[i] == Slot::Missing)
        {
            return Err(DecodeError::field(
                DecodeErrorKind::MissingField,
                &fields[i].name,
                "missing required value",
            ));
        }
        for &i in &self.binary {
            if let Slot::Number(y) = self.row.slots[i] {
                if y != 0.0 && y != 1.0 {
                    return Err(DecodeError::field(
                        DecodeErrorKind::OutOfRange,
                        &fields[i].name,
                        format!("a binary target must be 0 or 1, got {y}"),
                    ));
                }
            }
        }
        for (column, slot) in self.columns.iter_mut().zip(&self.row.slots) {
            // A slot always holds its field's type (the decoders only write matching slots),
            // so any other combination is a missing value.
            match (column, *slot) {
                (Column::Number(b), Slot::Number(x)) => b.append_value(x),
                (Column::Number(b), _) => b.append_null(),
                (Column::String(b), Slot::String(start, end)) => {
                    b.append_value(&self.row.text[start..end])
                }
                (Column::String(b), _) => b.append_null(),
            }
        }
        self.len += 1;
        Ok(())
    }

    /// Takes the rows pushed so far as a `RecordBatch` (columns in schema order) and starts a
    /// new one.
    pub fn finish(&mut self) -> RecordBatch {
        self.last_rows = self.len;
        for (column, text) in self.columns.iter().zip(self.last_text.iter_mut()) {
            if let Column::String(b) = column {
                *text = b.values_slice().len();
            }
        }
        let fresh = self.new_columns();
        let columns = std::mem::replace(&mut self.columns, fresh);
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|column| -> ArrayRef {
                match column {
                    Column::Number(mut b) => Arc::new(b.finish()),
                    Column::String(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let rows = self.len;
        self.len = 0;
        if arrays.is_empty() {
            let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
            return RecordBatch::try_new_with_options(self.arrow.clone(), arrays, &options)
                .expect("an empty schema with an explicit row count is a valid batch");
        }
        RecordBatch::try_new(self.arrow.clone(), arrays)
            .expect("columns are built from the same schema, with one value per pushed row")
    }
}

/// Refuses values the operators cannot take (see [`MAX_ABS_NUMBER`]).
fn check_number(field: &str, x: f64) -> Result<f64, DecodeError> {
    if !x.is_finite() {
        return Err(DecodeError::field(
            DecodeErrorKind::NotFinite,
            field,
            format!("expected a finite number, got {x}"),
        ));
    }
    if x.abs() > MAX_ABS_NUMBER {
        return Err(out_of_range(field, &format!("{x:e}")));
    }
    Ok(x)
}

fn out_of_range(field: &str, value: &str) -> DecodeError {
    DecodeError::field(
        DecodeErrorKind::OutOfRange,
        field,
        format!("magnitude must be <= 1e100, got {value}"),
    )
}

/// A value quoted for an error message, cut short so a huge cell cannot bloat logs.
fn quoted(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &value[..cut]),
        None => format!("{value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Float64Array, StringArray};

    use super::*;
    use crate::schema::Field;

    fn builder() -> BatchBuilder {
        let schema = Schema::new(vec![
            Field::string("s"),
            Field::number("a"),
            Field::number("b").required(false),
            Field::string("t").required(true),
        ])
        .unwrap();
        BatchBuilder::new(Arc::new(schema))
    }

    fn column<T: 'static>(batch: &RecordBatch, i: usize) -> &T {
        batch.column(i).as_any().downcast_ref::<T>().unwrap()
    }

    #[test]
    fn fills_stand_in_only_for_missing_values_of_the_right_type() {
        let mut b = builder();
        // Field 3 (t, a required String) comes from the fill; b (Number) too; the record's own
        // value of s wins over its fill; a Text fill for the Number field a is ignored.
        let fill = [
            (3, Fill::Text("key-7")),
            (2, Fill::Number(1.5e12)),
            (0, Fill::Text("ignored")),
            (1, Fill::Text("wrong type")),
            (99, Fill::Number(1.0)),
        ];
        b.push_json_filled(br#"{"s": "own", "a": 2}"#, &fill)
            .unwrap();
        b.push_values_filled(&[Some(3.0), None], &[None, None], &fill)
            .unwrap();
        // Without the fill the required t is missing, and nothing is pushed.
        let e = b.push_json(br#"{"a": 2}"#).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::MissingField);
        // A fill is checked like a value.
        let e = b
            .push_json_filled(br#"{"a": 2, "t": "x"}"#, &[(2, Fill::Number(f64::NAN))])
            .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::NotFinite);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        let s = column::<StringArray>(&batch, 0);
        let bs = column::<Float64Array>(&batch, 2);
        let t = column::<StringArray>(&batch, 3);
        assert_eq!((s.value(0), s.is_null(1)), ("own", false));
        assert_eq!(s.value(1), "ignored");
        assert_eq!((bs.value(0), bs.value(1)), (1.5e12, 1.5e12));
        assert_eq!((t.value(0), t.value(1)), ("key-7", "key-7"));
    }

    #[test]
    fn a_binary_field_takes_only_0_and_1() {
        let mut b = builder();
        b.require_binary(1);
        b.push_json(br#"{"a": 1, "t": "x"}"#).unwrap();
        b.push_json(br#"{"a": false, "t": "x"}"#).unwrap();
        let e = b.push_json(br#"{"a": 0.5, "t": "x"}"#).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::OutOfRange);
        assert_eq!(e.to_string(), "a: a binary target must be 0 or 1, got 0.5");
        assert_eq!(b.len(), 2);
        // An optional binary field may still be absent.
        b.require_binary(2);
        b.push_json(br#"{"a": 1, "t": "x"}"#).unwrap();
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn failed_push_leaves_no_partial_row() {
        let mut b = builder();
        b.push_json(br#"{"s": "one", "a": 1, "t": "x"}"#).unwrap();
        // Fails on the last field, after "s" and "a" were already decoded into the scratch.
        let e = b
            .push_json(br#"{"s": "junk", "a": 2, "b": 3, "t": true}"#)
            .unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (DecodeErrorKind::WrongType, Some("t"))
        );
        let e = b
            .push_json(br#"{"s": "junk", "a": 2, "b": 3}"#)
            .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::MissingField);
        assert_eq!(b.len(), 1);
        b.push_values(&[Some(5.0), None], &[None, Some("y")])
            .unwrap();
        assert_eq!(b.len(), 2);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), b.schema().arrow_schema());
        let s = column::<StringArray>(&batch, 0);
        let a = column::<Float64Array>(&batch, 1);
        let bb = column::<Float64Array>(&batch, 2);
        let t = column::<StringArray>(&batch, 3);
        assert_eq!(s.value(0), "one");
        assert!(s.is_null(1));
        assert_eq!(a.values().as_ref(), &[1.0, 5.0]);
        assert_eq!(bb.null_count(), 2);
        assert_eq!((t.value(0), t.value(1)), ("x", "y"));
        // The builder starts over after finish, and reuses the sizes of the last batch.
        assert!(b.is_empty());
        b.push_json(br#"{"a": 9, "t": "z"}"#).unwrap();
        let batch = b.finish();
        assert_eq!(column::<Float64Array>(&batch, 1).values().as_ref(), &[9.0]);
        assert_eq!(b.finish().num_rows(), 0);
    }

    #[test]
    fn push_values_checks_counts_and_numbers() {
        let mut b = builder();
        let e = b.push_values(&[Some(1.0)], &[None, Some("t")]).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::WrongColumnCount);
        assert_eq!(
            e.to_string(),
            "wrong value count: expected 2 numbers, got 1"
        );
        let e = b.push_values(&[Some(1.0), None], &[Some("t")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "wrong value count: expected 2 strings, got 1"
        );
        let e = b
            .push_values(&[Some(1.0), Some(f64::NAN)], &[None, Some("t")])
            .unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (DecodeErrorKind::NotFinite, Some("b"))
        );
        let e = b
            .push_values(&[Some(-1e101), None], &[None, Some("t")])
            .unwrap_err();
        assert_eq!(e.to_string(), "a: magnitude must be <= 1e100, got -1e101");
        let e = b
            .push_values(&[None, None], &[None, Some("t")])
            .unwrap_err();
        assert_eq!(e.to_string(), "a: missing required value");
        assert!(b.is_empty());
    }

    #[test]
    fn empty_schema_counts_rows() {
        let mut b = BatchBuilder::new(Arc::new(Schema::new(Vec::new()).unwrap()));
        b.push_json(br#"{"anything": 1}"#).unwrap();
        b.push_values(&[], &[]).unwrap();
        assert_eq!(b.finish().num_rows(), 2);
    }
}
