//! Message payloads other than JSON: one CSV line, or an Arrow IPC stream.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use eddy_features::{BatchBuilder, DecodeError, DecodeErrorKind, FieldType, Fill};

pub(super) fn read_csv_line(
    line: &[u8],
    row: &mut csv::ByteRecord,
) -> std::result::Result<(), DecodeError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line);
    match reader.read_byte_record(row) {
        Ok(true) => Ok(()),
        Ok(false) => Err(DecodeError::record(
            DecodeErrorKind::Malformed,
            "empty CSV message",
        )),
        Err(e) => Err(DecodeError::record(
            DecodeErrorKind::Malformed,
            format!("not a CSV line: {e}"),
        )),
    }
}

/// Decodes an Arrow IPC stream message into rows; all of them or, on any error, none.
pub(super) fn push_ipc(
    builder: &mut BatchBuilder,
    payload: &[u8],
    fill: &[(usize, Fill<'_>)],
) -> std::result::Result<usize, DecodeError> {
    let malformed = |m: String| DecodeError::record(DecodeErrorKind::Malformed, m);
    let reader = arrow_ipc::reader::StreamReader::try_new(payload, None)
        .map_err(|e| malformed(format!("not an Arrow IPC stream: {e}")))?;
    let batches: Vec<RecordBatch> = reader
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| malformed(format!("reading an Arrow IPC stream: {e}")))?;
    let schema = Arc::clone(builder.schema());
    let mut rows = Vec::new();
    for batch in &batches {
        let mut numbers: Vec<Option<Float64Array>> = Vec::new();
        let mut strings: Vec<Option<StringArray>> = Vec::new();
        for field in schema.fields() {
            let column = batch.column_by_name(&field.name);
            let (target, ty) = match field.ty {
                FieldType::Number => (&DataType::Float64, "number"),
                FieldType::String => (&DataType::Utf8, "string"),
            };
            let cast = column
                .map(|c| arrow_cast::cast(c, target))
                .transpose()
                .map_err(|e| {
                    DecodeError::field(
                        DecodeErrorKind::WrongType,
                        &field.name,
                        format!("column cannot be read as a {ty}: {e}"),
                    )
                })?;
            match field.ty {
                FieldType::Number => numbers.push(cast.map(|c| {
                    c.as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("cast to Float64")
                        .clone()
                })),
                FieldType::String => strings.push(cast.map(|c| {
                    c.as_any()
                        .downcast_ref::<StringArray>()
                        .expect("cast to Utf8")
                        .clone()
                })),
            }
        }
        rows.push((numbers, strings, batch.num_rows()));
    }
    // Rows go in one at a time, so a bad one fails the message: check all before pushing any.
    let mut probe = BatchBuilder::new(Arc::clone(&schema));
    let mut total = 0;
    for pass in 0..2 {
        let target = if pass == 0 { &mut probe } else { &mut *builder };
        for (numbers, strings, n) in &rows {
            for r in 0..*n {
                let nums: Vec<Option<f64>> = numbers
                    .iter()
                    .map(|c| c.as_ref().filter(|c| c.is_valid(r)).map(|c| c.value(r)))
                    .collect();
                let strs: Vec<Option<&str>> = strings
                    .iter()
                    .map(|c| c.as_ref().filter(|c| c.is_valid(r)).map(|c| c.value(r)))
                    .collect();
                target.push_values_filled(&nums, &strs, fill)?;
                if pass == 1 {
                    total += 1;
                }
            }
        }
    }
    Ok(total)
}
