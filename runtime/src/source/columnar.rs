//! Columnar files: Parquet and Arrow IPC. Columns are mapped to the pipeline's fields by name and
//! cast to its types when the file is opened (a missing required column or an uncastable type is
//! an error then); values then go through the same per-record checks as JSON and CSV, so a NaN or
//! a null in a required field is dead-lettered the same way. The position is (file, row).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType};
use eddy_features::{BatchBuilder, FieldType};

use super::{
    file_size, BuildContext, Chunk, ChunkParts, DeadLetter, InputMeter, Location, Position, Source,
};
use crate::error::{Result, RuntimeError};

/// Rows decoded per read from a columnar file.
const READ_ROWS: usize = 8192;

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

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

/// How far into a columnar file a reader is, for the input meter: the file's rows (Parquet) or
/// batches (Arrow IPC, whose footer does not count rows).
#[derive(Clone, Copy)]
enum Extent {
    Rows(u64),
    Batches(u64),
}

fn open_batches(path: &Path) -> Result<(Batches, Extent)> {
    let file = File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
    let fail = |e: &dyn std::fmt::Display| input_error(path, format!("reading: {e}"));
    Ok(match Columnar::of(path) {
        Some(Columnar::Parquet) => {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| fail(&e))?;
            let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
            let reader = builder
                .with_batch_size(READ_ROWS)
                .build()
                .map_err(|e| fail(&e))?;
            (Box::new(reader), Extent::Rows(rows))
        }
        Some(Columnar::ArrowIpc) => {
            let reader =
                arrow_ipc::reader::FileReader::try_new(file, None).map_err(|e| fail(&e))?;
            let batches = reader.num_batches() as u64;
            (Box::new(reader), Extent::Batches(batches))
        }
        None => return Err(input_error(path, "not a Parquet or Arrow IPC file".into())),
    })
}

/// The Arrow schema of a columnar file (its first batch's).
pub fn columnar_schema(path: &Path) -> Result<arrow_schema::SchemaRef> {
    let (mut batches, _) = open_batches(path)?;
    match batches.next() {
        Some(batch) => Ok(batch
            .map_err(|e| input_error(path, format!("reading: {e}")))?
            .schema()),
        None => Err(input_error(path, "no rows".into())),
    }
}

/// Whether `path` names a Parquet or Arrow IPC file.
pub fn is_columnar(path: &Path) -> bool {
    Columnar::of(path).is_some()
}

/// Reads Parquet / Arrow IPC files in order.
pub struct ColumnarSource {
    files: Vec<PathBuf>,
    builder: BatchBuilder,
    index: usize,
    batches: Option<Batches>,
    /// The current file batch, cast to the pipeline's columns, and the next row in it.
    current: Option<(Vec<Option<ArrayRef>>, usize, usize)>,
    row_in_file: u64,
    finished: Option<Location>,
    records: u64,
    numbers: Vec<Option<f64>>,
    strings: Vec<Option<String>>,
    meter: Arc<InputMeter>,
    /// The current file's extent, how much of it was read (rows or batches) and how many of its
    /// bytes were counted so far.
    extent: Extent,
    read_in_file: u64,
    metered_in_file: u64,
}

impl ColumnarSource {
    pub(crate) fn open(files: Vec<PathBuf>, cx: BuildContext) -> Result<ColumnarSource> {
        let mut source = ColumnarSource {
            files,
            builder: cx.builder,
            index: 0,
            batches: None,
            current: None,
            row_in_file: 0,
            finished: None,
            records: 0,
            numbers: Vec::new(),
            strings: Vec::new(),
            meter: Arc::clone(&cx.meter),
            extent: Extent::Batches(0),
            read_in_file: 0,
            metered_in_file: 0,
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
                    source
                        .meter
                        .add_read(source.files[..index].iter().map(|f| file_size(f)).sum());
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
        Ok(source)
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

    /// Loads the next batch of the current file; false at the end of the file.
    fn next_batch(&mut self) -> Result<bool> {
        let path = self.files[self.index].clone();
        if self.batches.is_none() {
            let (batches, extent) = open_batches(&path)?;
            self.batches = Some(batches);
            self.extent = extent;
            self.read_in_file = 0;
            self.metered_in_file = 0;
        }
        let Some(batches) = self.batches.as_mut() else {
            return Ok(false);
        };
        let Some(batch) = batches.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|e| input_error(&path, format!("reading: {e}")))?;
        let (done, of) = match self.extent {
            Extent::Rows(rows) => {
                self.read_in_file += batch.num_rows() as u64;
                (self.read_in_file, rows)
            }
            Extent::Batches(batches) => {
                self.read_in_file += 1;
                (self.read_in_file, batches)
            }
        };
        self.meter_to(done as f64 / of.max(1) as f64);
        let columns = self.cast_columns(&batch, &path)?;
        self.current = Some((columns, 0, batch.num_rows()));
        Ok(true)
    }

    /// The file's columns for each pipeline field, cast to its type.
    fn cast_columns(&self, batch: &RecordBatch, path: &Path) -> Result<Vec<Option<ArrayRef>>> {
        let schema = self.builder.schema();
        schema
            .fields()
            .iter()
            .map(|field| {
                let Ok(i) = batch.schema().index_of(&field.name) else {
                    return if field.required {
                        Err(input_error(
                            path,
                            format!("column {:?} is missing", field.name),
                        ))
                    } else {
                        Ok(None)
                    };
                };
                let column = batch.column(i);
                let to = match field.ty {
                    FieldType::Number => DataType::Float64,
                    FieldType::String => DataType::Utf8,
                };
                let plausible = match field.ty {
                    FieldType::Number => {
                        column.data_type().is_numeric() || *column.data_type() == DataType::Boolean
                    }
                    FieldType::String => true,
                };
                if !plausible {
                    return Err(input_error(
                        path,
                        format!(
                            "column {:?} is {}, which is not a number",
                            field.name,
                            column.data_type()
                        ),
                    ));
                }
                arrow_cast::cast(column, &to).map(Some).map_err(|e| {
                    input_error(
                        path,
                        format!(
                            "column {:?} ({}) cannot be read as {to}: {e}",
                            field.name,
                            column.data_type()
                        ),
                    )
                })
            })
            .collect()
    }

    /// Counts the current file as read up to `share` (0 to 1) of its bytes.
    fn meter_to(&mut self, share: f64) {
        let size = file_size(&self.files[self.index]);
        let target = ((size as f64 * share.min(1.0)) as u64).max(self.metered_in_file);
        self.meter.add_read(target - self.metered_in_file);
        self.metered_in_file = target;
    }

    fn advance_file(&mut self) {
        self.meter_to(1.0);
        self.finished = Some(Location::File {
            index: self.index,
            path: self.files[self.index].clone(),
            offset: self.row_in_file,
            line: self.row_in_file,
        });
        self.index += 1;
        self.batches = None;
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
                        FieldType::String => self.strings.push(value.and_then(|c| {
                            c.as_any()
                                .downcast_ref::<StringArray>()
                                .map(|a| a.value(row).to_owned())
                        })),
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
