//! Columnar files: Parquet and Arrow IPC. Columns are mapped to the pipeline's fields by name and
//! cast to its types when the file is opened (a missing required column or an uncastable type is
//! an error then); values then go through the same per-record checks as JSON and CSV, so a NaN or
//! a null in a required field is dead-lettered the same way. The position is (file, row).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use eddy_features::{string_value, BatchBuilder, FieldType, MAX_ABS_NUMBER};

use super::{BuildContext, Chunk, ChunkParts, DeadLetter, InputMeter, Location, Position, Source};
use crate::error::{Result, RuntimeError};

mod decode;

pub use decode::columnar_schema;
use decode::{spawn_decoder, Decoded};

/// Whether a path names a columnar file, and which kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columnar {
    Parquet,
    ArrowIpc,
}

impl Columnar {
    pub(crate) fn of(path: &Path) -> Option<Columnar> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Columnar::Parquet),
            "arrow" | "ipc" | "feather" => Some(Columnar::ArrowIpc),
            _ => None,
        }
    }
}

fn input_error(path: &Path, message: String) -> RuntimeError {
    RuntimeError::Input {
        path: path.to_path_buf(),
        message,
    }
}

/// Whether `path` names a Parquet or Arrow IPC file.
pub fn is_columnar(path: &Path) -> bool {
    Columnar::of(path).is_some()
}

/// Rows `offset..offset + len` as a pipeline batch without decoding them one by one, when
/// every one of them would pass the record checks ([`BatchBuilder::push_values`]): no nulls in
/// required fields, numbers finite and within [`MAX_ABS_NUMBER`], binary fields 0 or 1.
/// `None` sends the slice down the per-record path, which finds and dead-letters the bad rows.
fn whole_slice(
    builder: &BatchBuilder,
    columns: &[Option<ArrayRef>],
    offset: usize,
    len: usize,
) -> Option<RecordBatch> {
    let fields = builder.schema().fields();
    let mut arrays = Vec::with_capacity(columns.len());
    for (i, (field, column)) in fields.iter().zip(columns).enumerate() {
        let Some(column) = column else {
            if field.required {
                return None;
            }
            arrays.push(arrow_array::new_null_array(&field.ty.data_type(), len));
            continue;
        };
        let slice = column.slice(offset, len);
        // a null is a missing value: a dead letter in a required field, fine in an optional one
        if slice.null_count() > 0 && field.required {
            return None;
        }
        if field.ty == FieldType::Number {
            let numbers = slice.as_any().downcast_ref::<Float64Array>()?;
            // NaN fails the comparison and infinities exceed the bound.
            if !all_valid(numbers, |x| x.abs() <= MAX_ABS_NUMBER) {
                return None;
            }
            if builder.binary_fields().contains(&i) && !all_valid(numbers, |y| y == 0.0 || y == 1.0)
            {
                return None;
            }
        }
        arrays.push(slice);
    }
    let schema = builder.arrow_schema();
    let same = schema
        .fields()
        .iter()
        .zip(&arrays)
        .all(|(f, a)| f.data_type() == a.data_type());
    let schema = if same {
        Arc::clone(schema)
    } else {
        // dictionary-encoded strings (fields only hashers read) keep their type
        let fields: Vec<arrow_schema::Field> = schema
            .fields()
            .iter()
            .zip(&arrays)
            .map(|(f, a)| f.as_ref().clone().with_data_type(a.data_type().clone()))
            .collect();
        Arc::new(arrow_schema::Schema::new(fields))
    };
    RecordBatch::try_new(schema, arrays).ok()
}

/// Whether `ok` holds for every value of `numbers` that is not null. Generic, so the check
/// inlines into a loop over the column (through `&dyn Fn` it was a call per value: about a
/// tenth of the source thread's time on a numeric stream).
#[inline]
fn all_valid(numbers: &Float64Array, ok: impl Fn(f64) -> bool) -> bool {
    match numbers.null_count() {
        // a fold rather than `all`: no early exit, so the loop vectorises (a bad value is rare)
        0 => numbers.values().iter().fold(true, |all, &x| all & ok(x)),
        // the slot under a null holds no value worth checking
        _ => numbers.iter().flatten().all(ok),
    }
}

/// Reads Parquet / Arrow IPC files in order; a thread decodes ahead ([`spawn_decoder`]).
pub struct ColumnarSource {
    files: Vec<PathBuf>,
    builder: BatchBuilder,
    index: usize,
    decoded: Option<std::sync::mpsc::Receiver<Result<Decoded>>>,
    /// The current file batch, cast to the pipeline's columns, and the next row in it.
    current: Option<(Vec<Option<ArrayRef>>, usize, usize)>,
    row_in_file: u64,
    finished: Option<Location>,
    records: u64,
    numbers: Vec<Option<f64>>,
    strings: Vec<Option<String>>,
    meter: Arc<InputMeter>,
    /// Per pipeline field: a string field only hashers read, whose dictionary-encoded columns
    /// stay encoded (see [`BuildContext::dictionary_fields`]).
    dictionary: Vec<bool>,
}

impl ColumnarSource {
    pub(crate) fn open(files: Vec<PathBuf>, cx: BuildContext) -> Result<ColumnarSource> {
        let dictionary = cx
            .builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.ty == FieldType::String && cx.dictionary_fields.contains(&f.name))
            .collect();
        let mut source = ColumnarSource {
            dictionary,
            files,
            builder: cx.builder,
            index: 0,
            decoded: None,
            current: None,
            row_in_file: 0,
            finished: None,
            records: 0,
            numbers: Vec::new(),
            strings: Vec::new(),
            meter: Arc::clone(&cx.meter),
        };
        cx.meter.add_files(&source.files);
        if let Some(pos) = cx.resume {
            source.records = pos.records;
            match pos.location {
                Location::Start => {}
                Location::File {
                    index,
                    path,
                    offset,
                    ..
                } => {
                    if source.files.get(index) != Some(&path) {
                        return Err(input_error(
                            &path,
                            "the input set changed since the checkpoint".into(),
                        ));
                    }
                    source.index = index;
                    source.meter.skip_files(&source.files[..index]);
                    source.skip_rows(offset)?;
                }
                other => {
                    return Err(input_error(
                        &source.files[0],
                        format!("cannot resume from {other:?}"),
                    ))
                }
            }
        }
        // decoding starts now, so the first batch is under way while the pipeline builds the
        // model (zeroing its table) and the rest
        source.start_decoding()?;
        Ok(source)
    }

    fn start_decoding(&mut self) -> Result<()> {
        if self.decoded.is_none() {
            let schema = Arc::clone(self.builder.schema());
            self.decoded = Some(spawn_decoder(
                self.files.clone(),
                self.index,
                schema,
                self.dictionary.clone(),
                Arc::clone(&self.meter),
            )?);
        }
        Ok(())
    }

    fn skip_rows(&mut self, rows: u64) -> Result<()> {
        while self.row_in_file < rows {
            if self.current.is_none() && !self.next_batch()? {
                return Err(input_error(
                    &self.files[self.index],
                    "shorter than the checkpointed row".into(),
                ));
            }
            if let Some((_, next, len)) = self.current.as_mut() {
                let take = ((*len - *next) as u64).min(rows - self.row_in_file) as usize;
                *next += take;
                self.row_in_file += take as u64;
                if *next == *len {
                    self.current = None;
                }
            }
        }
        Ok(())
    }

    /// Takes the current file's next decoded batch; false at the end of the file.
    fn next_batch(&mut self) -> Result<bool> {
        self.start_decoding()?;
        let received = self
            .decoded
            .as_ref()
            .expect("started above")
            .recv()
            .map_err(|_| RuntimeError::Internal("the decoding thread stopped".into()))?;
        match received? {
            Decoded::Batch { columns, rows } => {
                self.current = Some((columns, 0, rows));
                Ok(true)
            }
            Decoded::EndOfFile => Ok(false),
        }
    }

    fn advance_file(&mut self) {
        self.finished = Some(Location::File {
            index: self.index,
            path: self.files[self.index].clone(),
            offset: self.row_in_file,
            line: self.row_in_file,
        });
        self.index += 1;
        self.current = None;
        self.row_in_file = 0;
    }
}

impl Source for ColumnarSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut parts = ChunkParts::new();
        let schema = Arc::clone(self.builder.schema());
        while parts.records() < max && self.index < self.files.len() {
            if self.current.is_none() && !self.next_batch()? {
                self.advance_file();
                continue;
            }
            let Some((columns, next, len)) = self.current.as_mut() else {
                continue;
            };
            if parts.records() == 0 {
                let take = (*len - *next).min(max);
                if let Some(batch) = whole_slice(&self.builder, columns, *next, take) {
                    *next += take;
                    if *next == *len {
                        self.current = None;
                    }
                    let first = self.records;
                    self.records += take as u64;
                    self.row_in_file += take as u64;
                    return Ok(Some(Chunk {
                        batch,
                        seqs: (first..self.records).collect(),
                        origins: Vec::new(),
                        dead: Vec::new(),
                        end: self.position(),
                    }));
                }
            }
            while *next < *len && parts.records() < max {
                let row = *next;
                self.numbers.clear();
                self.strings.clear();
                for (field, column) in schema.fields().iter().zip(columns.iter()) {
                    let value = column.as_ref().filter(|c| c.is_valid(row));
                    match field.ty {
                        FieldType::Number => self.numbers.push(value.map(|c| {
                            c.as_any()
                                .downcast_ref::<Float64Array>()
                                .map_or(f64::NAN, |a| a.value(row))
                        })),
                        FieldType::String => self.strings.push(
                            value.and_then(|c| string_value(c.as_ref(), row).map(str::to_owned)),
                        ),
                    }
                }
                let strings: Vec<Option<&str>> =
                    self.strings.iter().map(Option::as_deref).collect();
                let seq = self.records;
                self.records += 1;
                match self.builder.push_values(&self.numbers, &strings) {
                    Ok(()) => parts.seqs.push(seq),
                    Err(err) => {
                        let mut raw = serde_json::Map::new();
                        let (mut n, mut s) = (self.numbers.iter(), self.strings.iter());
                        for field in schema.fields() {
                            let v = match field.ty {
                                FieldType::Number => {
                                    n.next().copied().flatten().map(serde_json::Value::from)
                                }
                                FieldType::String => {
                                    s.next().cloned().flatten().map(serde_json::Value::from)
                                }
                            };
                            raw.insert(field.name.clone(), v.unwrap_or(serde_json::Value::Null));
                        }
                        parts.dead.push(DeadLetter {
                            seq,
                            kind: err.kind.as_str(),
                            field: err.field.clone(),
                            reason: err.to_string(),
                            origin: format!(
                                "{}:row {}",
                                self.files[self.index].display(),
                                self.row_in_file
                            ),
                            raw: serde_json::Value::Object(raw).to_string(),
                            coordinates: None,
                        });
                    }
                }
                *next += 1;
                self.row_in_file += 1;
            }
            if *next == *len {
                self.current = None;
            }
        }
        if parts.records() == 0 {
            return Ok(None);
        }
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        let location =
            if self.index < self.files.len() && (self.current.is_some() || self.row_in_file > 0) {
                Location::File {
                    index: self.index,
                    path: self.files[self.index].clone(),
                    offset: self.row_in_file,
                    line: self.row_in_file,
                }
            } else {
                self.finished.clone().unwrap_or_default()
            };
        Position {
            records: self.records,
            location,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::DataType;
    use eddy_features::{dictionary_strings, Field, Schema};

    use super::*;

    const ROWS: usize = 20_000;

    /// `x` = the row number (an integer column, so reading casts it), NaN at row 9,000; `tag`
    /// null at every 7th row; `y` 0/1 except 2 at row 15,000.
    fn write(path: &Path) {
        let x: Float64Array = (0..ROWS)
            .map(|i| Some(if i == 9_000 { f64::NAN } else { i as f64 }))
            .collect();
        let tag: StringArray = (0..ROWS)
            .map(|i| (i % 7 != 0).then(|| format!("t{}", i % 3)))
            .collect();
        let y: Int64Array = (0..ROWS)
            .map(|i| Some(if i == 15_000 { 2 } else { (i % 2) as i64 }))
            .collect();
        let batch = RecordBatch::try_from_iter([
            ("x", Arc::new(x) as ArrayRef),
            ("tag", Arc::new(tag) as ArrayRef),
            ("y", Arc::new(y) as ArrayRef),
        ])
        .expect("batch");
        let file = File::create(path).expect("create");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
    }

    fn context(resume: Option<Position>) -> BuildContext {
        let schema = Schema::new(vec![
            Field::number("x").required(true),
            Field::string("tag").required(false),
            Field::number("y").required(true),
        ])
        .expect("schema");
        let mut builder = BatchBuilder::new(Arc::new(schema));
        builder.require_binary(2);
        BuildContext::new(builder, resume)
    }

    /// (sequence number, x or the dead letter's kind, tag) of every record, and chunk ends.
    fn drain(source: &mut ColumnarSource, max: usize) -> (Vec<(u64, String)>, Vec<Position>) {
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        while let Some(chunk) = source.next_chunk(max).expect("reads") {
            let x = chunk
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("x");
            let tag = chunk.batch.column(1);
            for (row, &seq) in chunk.seqs.iter().enumerate() {
                let tag = if tag.is_null(row) {
                    "-".to_owned()
                } else {
                    string_value(tag.as_ref(), row)
                        .expect("a string")
                        .to_owned()
                };
                out.push((seq, format!("{} {tag}", x.value(row))));
            }
            out.extend(chunk.dead.iter().map(|d| (d.seq, d.kind.to_owned())));
            ends.push(chunk.end);
        }
        out.sort();
        (out, ends)
    }

    #[test]
    fn a_dictionary_tag_column_gives_the_same_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.parquet");
        write(&path);
        let (plain, _) = drain(
            &mut ColumnarSource::open(vec![path.clone()], context(None)).expect("opens"),
            1000,
        );
        let open = || {
            let mut cx = context(None);
            cx.dictionary_fields = vec!["tag".into()];
            ColumnarSource::open(vec![path.clone()], cx).expect("opens")
        };
        assert_eq!(drain(&mut open(), 1000).0, plain);
        // whole slices (nulls in the optional tag and all) keep the dictionary; the chunks with
        // a bad row go through the per-record path, which reads the dictionary's strings
        let mut kinds = std::collections::BTreeMap::new();
        let mut source = open();
        while let Some(chunk) = source.next_chunk(1000).expect("reads") {
            *kinds
                .entry(chunk.batch.column(1).data_type().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(kinds.get("Utf8"), Some(&2), "{kinds:?}");
        assert_eq!(
            kinds.get(&dictionary_strings().to_string()),
            Some(&20),
            "{kinds:?}"
        );
    }

    #[test]
    fn only_fully_dictionary_encoded_columns_are_read_as_dictionaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.parquet");
        let low: StringArray = (0..ROWS).map(|i| Some(format!("v{}", i % 5))).collect();
        let high: StringArray = (0..ROWS).map(|i| Some(format!("id-{i}"))).collect();
        let batch = RecordBatch::try_from_iter([
            ("low", Arc::new(low) as ArrayRef),
            ("high", Arc::new(high) as ArrayRef),
        ])
        .expect("batch");
        // a small dictionary page: the writer falls back to plain pages for `high`
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_page_size_limit(4096)
            .build();
        let file = File::create(&path).expect("create");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties))
                .expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let schema = Schema::new(vec![
            Field::string("low").required(true),
            Field::string("high").required(true),
        ])
        .expect("schema");
        let mut cx = BuildContext::new(BatchBuilder::new(Arc::new(schema)), None);
        cx.dictionary_fields = vec!["low".into(), "high".into()];
        let mut source = ColumnarSource::open(vec![path], cx).expect("opens");
        let mut rows = 0;
        while let Some(chunk) = source.next_chunk(1000).expect("reads") {
            // whole slices, handed on as decoded
            assert_eq!(chunk.batch.column(0).data_type(), &dictionary_strings());
            assert_eq!(chunk.batch.column(1).data_type(), &DataType::Utf8);
            let low = chunk.batch.column(0);
            for row in 0..chunk.batch.num_rows() {
                let i = rows + row;
                assert_eq!(
                    string_value(low.as_ref(), row),
                    Some(format!("v{}", i % 5).as_str())
                );
            }
            rows += chunk.batch.num_rows();
        }
        assert_eq!(rows, ROWS);
    }

    #[test]
    fn decoded_ahead_whole_slices_and_bad_rows_give_every_record_once_and_resume() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.parquet");
        write(&path);
        let open =
            |resume| ColumnarSource::open(vec![path.clone()], context(resume)).expect("opens");
        let mut whole = open(None);
        let (all, ends) = drain(&mut whole, 1000);
        assert_eq!(all.len(), ROWS);
        // The decoder counted the whole file as read.
        let size = std::fs::metadata(&path).expect("written").len();
        assert_eq!(
            (whole.meter.read(), whole.meter.total()),
            (size, Some(size))
        );
        for (i, (seq, text)) in all.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            let expected = match i {
                9_000 => "not_finite".to_owned(),
                15_000 => "out_of_range".to_owned(),
                _ if i % 7 == 0 => format!("{i} -"),
                _ => format!("{i} t{}", i % 3),
            };
            assert_eq!(text, &expected, "record {i}");
        }
        // The per-record path and the whole-slice path agree: a chunk size of one record
        // gives the same records.
        assert_eq!(drain(&mut open(None), 1).0, all);
        for end in ends.iter().step_by(3) {
            let (rest, _) = drain(&mut open(Some(end.clone())), 777);
            assert_eq!(
                rest,
                all[end.records as usize..],
                "resumed at {}",
                end.records
            );
        }
    }
}
