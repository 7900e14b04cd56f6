//! Opening and decoding columnar files, on a thread of their own: the Parquet reader (with the
//! dictionary columns the pipeline keeps) or the Arrow IPC reader, and the cast of each batch to
//! the pipeline's columns.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use eddy_features::{dictionary_strings, FieldType};

use super::{input_error, Columnar};
use crate::error::{Result, RuntimeError};
use crate::source::{file_size, InputMeter};

/// Rows decoded per read from a columnar file.
const READ_ROWS: usize = 8192;

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// How far into a columnar file a reader is, for the input meter: the file's rows (Parquet) or
/// batches (Arrow IPC, whose footer does not count rows).
#[derive(Clone, Copy)]
enum Extent {
    Rows(u64),
    Batches(u64),
}

/// Opens a columnar file's batches. Parquet string columns named in `dictionary` are read as
/// dictionary arrays (keys into the column chunk's own dictionary, no strings copied).
fn open_batches(path: &Path, dictionary: &[&str]) -> Result<(Batches, Extent)> {
    use parquet::arrow::arrow_reader::{
        ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    };
    let file = File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
    let fail = |e: &dyn std::fmt::Display| input_error(path, format!("reading: {e}"));
    Ok(match Columnar::of(path) {
        Some(Columnar::Parquet) => {
            let options = ArrowReaderOptions::new();
            let mut metadata =
                ArrowReaderMetadata::load(&file, options.clone()).map_err(|e| fail(&e))?;
            let encoded: Vec<&str> = dictionary
                .iter()
                .copied()
                .filter(|name| all_dictionary_encoded(metadata.metadata(), name))
                .collect();
            if let Some(hint) = dictionary_hint(metadata.schema(), &encoded) {
                metadata = ArrowReaderMetadata::try_new(
                    Arc::clone(metadata.metadata()),
                    options.with_schema(hint),
                )
                .map_err(|e| fail(&e))?;
            }
            let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
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

/// Whether every data page of the top-level column `name`, in every row group, is dictionary
/// encoded (from the pages' encoding statistics; files without them count as not). Only then is
/// it read as a dictionary: a writer falls back to plain pages when a column's dictionary grows
/// too large (high-cardinality ids), and the reader would then build a new dictionary for every
/// batch, which costs more than reading the strings.
fn all_dictionary_encoded(metadata: &parquet::file::metadata::ParquetMetaData, name: &str) -> bool {
    use parquet::basic::Encoding;
    metadata.row_groups().iter().all(|group| {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().parts() == [name])
            .is_some_and(|c| {
                c.dictionary_page_offset().is_some()
                    && c.page_encoding_stats_mask().is_some_and(|mask| {
                        mask.is_only(Encoding::RLE_DICTIONARY)
                            || mask.is_only(Encoding::PLAIN_DICTIONARY)
                    })
            })
    })
}

/// `schema` with the plain string columns named in `dictionary` read as dictionaries; `None`
/// when there is nothing to change.
fn dictionary_hint(
    schema: &arrow_schema::SchemaRef,
    dictionary: &[&str],
) -> Option<arrow_schema::SchemaRef> {
    let wanted = |f: &arrow_schema::Field| {
        *f.data_type() == DataType::Utf8 && dictionary.contains(&f.name().as_str())
    };
    if !schema.fields().iter().any(|f| wanted(f)) {
        return None;
    }
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if wanted(f) {
                f.as_ref().clone().with_data_type(dictionary_strings())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Some(Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// The Arrow schema of a columnar file, from its footer (nothing decoded); an error for a file
/// without rows.
pub fn columnar_schema(path: &Path) -> Result<arrow_schema::SchemaRef> {
    let file = File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
    let fail = |e: &dyn std::fmt::Display| input_error(path, format!("reading: {e}"));
    let (schema, empty) = match Columnar::of(path) {
        Some(Columnar::Parquet) => {
            let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
            let metadata = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(&file, options)
                .map_err(|e| fail(&e))?;
            let rows = metadata.metadata().file_metadata().num_rows();
            (Arc::clone(metadata.schema()), rows == 0)
        }
        Some(Columnar::ArrowIpc) => {
            let reader =
                arrow_ipc::reader::FileReader::try_new(file, None).map_err(|e| fail(&e))?;
            (reader.schema(), reader.num_batches() == 0)
        }
        None => return Err(input_error(path, "not a Parquet or Arrow IPC file".into())),
    };
    if empty {
        return Err(input_error(path, "no rows".into()));
    }
    Ok(schema)
}

/// A decoded batch of a columnar file, cast to the pipeline's columns, or the file's end.
pub(super) enum Decoded {
    Batch {
        columns: Vec<Option<ArrayRef>>,
        rows: usize,
    },
    EndOfFile,
}

/// Decoded batches waiting between the decoding thread and the source: with the one being
/// decoded and the one being read, at most `DECODED_AHEAD + 2` batches of [`READ_ROWS`] rows.
const DECODED_AHEAD: usize = 2;

/// Decodes (decompresses, casts) the files from `first` on, on its own thread, so that the
/// Parquet/IPC work overlaps with the source's checks and the trainer's learning. It stops at
/// the first error, which it hands on, and when the source goes away. It counts each file's bytes
/// into `meter` as it decodes them (by rows for Parquet, by batches for IPC).
pub(super) fn spawn_decoder(
    files: Vec<PathBuf>,
    first: usize,
    schema: Arc<eddy_features::Schema>,
    dictionary: Vec<bool>,
    meter: Arc<InputMeter>,
) -> Result<std::sync::mpsc::Receiver<Result<Decoded>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(DECODED_AHEAD);
    std::thread::Builder::new()
        .name("eddy-decode".into())
        .spawn(move || {
            let _placed = crate::placement::off_trainer_cpu();
            for path in &files[first..] {
                let sent = decode_file(path, &schema, &dictionary, &meter, &tx);
                if sent.is_err() {
                    return;
                }
            }
        })
        .map_err(|e| RuntimeError::Internal(format!("starting the decoding thread: {e}")))?;
    Ok(rx)
}

/// Sends one file's batches; `Err` when the receiver is gone or after sending an error.
fn decode_file(
    path: &Path,
    schema: &eddy_features::Schema,
    dictionary: &[bool],
    meter: &InputMeter,
    tx: &std::sync::mpsc::SyncSender<Result<Decoded>>,
) -> std::result::Result<(), ()> {
    let send = |item| tx.send(item).map_err(|_| ());
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .zip(dictionary)
        .filter(|(_, &d)| d)
        .map(|(f, _)| f.name.as_str())
        .collect();
    let (batches, extent) = match open_batches(path, &names) {
        Ok(opened) => opened,
        Err(e) => {
            send(Err(e))?;
            return Err(());
        }
    };
    let size = file_size(path);
    let (mut done, mut counted) = (0u64, 0u64);
    for batch in batches {
        let decoded = batch
            .map_err(|e| input_error(path, format!("reading: {e}")))
            .and_then(|batch| {
                let columns = cast_columns(schema, dictionary, &batch, path)?;
                let (part, of) = match extent {
                    Extent::Rows(rows) => (batch.num_rows() as u64, rows),
                    Extent::Batches(batches) => (1, batches),
                };
                done += part;
                let through = (size as f64 * (done as f64 / of.max(1) as f64).min(1.0)) as u64;
                meter.add_read(through.saturating_sub(counted));
                counted = counted.max(through);
                Ok(Decoded::Batch {
                    columns,
                    rows: batch.num_rows(),
                })
            });
        let failed = decoded.is_err();
        send(decoded)?;
        if failed {
            return Err(());
        }
    }
    meter.add_read(size.saturating_sub(counted));
    send(Ok(Decoded::EndOfFile))
}

/// The file's columns for each pipeline field, cast to its type; a string field marked in
/// `dictionary` keeps a dictionary encoding (its keys cast to 32 bits if need be).
fn cast_columns(
    schema: &eddy_features::Schema,
    dictionary: &[bool],
    batch: &RecordBatch,
    path: &Path,
) -> Result<Vec<Option<ArrayRef>>> {
    schema
        .fields()
        .iter()
        .zip(dictionary)
        .map(|(field, &keep_dictionary)| {
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
            let to = match (field.ty, column.data_type()) {
                (FieldType::Number, _) => DataType::Float64,
                (FieldType::String, DataType::Dictionary(_, values))
                    if keep_dictionary && **values == DataType::Utf8 =>
                {
                    dictionary_strings()
                }
                (FieldType::String, _) => DataType::Utf8,
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
            if *column.data_type() == to {
                // as is: a cast would rebuild the array, and a dictionary would lose its identity
                return Ok(Some(Arc::clone(column)));
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
