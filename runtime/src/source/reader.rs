//! Line-level readers for JSON Lines and CSV that track their byte offset and line, so a source
//! can report a position after every record and seek back to it.

use std::io::{BufRead, Read};

use eddy_features::{BatchBuilder, CsvHeader, DecodeError};

use super::parse_ahead::Job;
use super::{ChunkParts, DeadLetter};
use crate::error::{Result, RuntimeError};

/// Records longer than this are refused: why: a missing newline in a corrupt file would
/// otherwise make one "record" of the whole file.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// How much of a refused record is kept in its dead letter.
const RAW_KEEP_BYTES: usize = 4096;

pub(crate) enum RecordReader {
    Json(JsonLines),
    Csv(CsvRows),
}

pub(crate) struct JsonLines {
    input: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    offset: u64,
    line: u64,
}

pub(crate) struct CsvRows {
    input: csv::Reader<Box<dyn Read + Send>>,
    header: CsvHeader,
    row: csv::ByteRecord,
}

fn raw_text(bytes: &[u8]) -> String {
    let keep = &bytes[..bytes.len().min(RAW_KEEP_BYTES)];
    String::from_utf8_lossy(keep).into_owned()
}

fn dead_letter(seq: u64, err: DecodeError, origin: String, raw: String) -> DeadLetter {
    DeadLetter {
        seq,
        kind: err.kind.as_str(),
        field: err.field.clone(),
        reason: err.to_string(),
        origin,
        raw,
        coordinates: None,
    }
}

impl RecordReader {
    /// A JSON Lines reader at the start of `input`.
    pub(crate) fn json(input: Box<dyn BufRead + Send>) -> Self {
        RecordReader::Json(JsonLines {
            input,
            buf: Vec::with_capacity(4096),
            offset: 0,
            line: 0,
        })
    }

    /// A CSV reader; reads the header row and maps its columns onto the builder's schema.
    pub(crate) fn csv(
        input: Box<dyn Read + Send>,
        builder: &BatchBuilder,
        name: &str,
    ) -> Result<Self> {
        let mut input = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        let mut header_row = csv::ByteRecord::new();
        let has_header =
            input
                .read_byte_record(&mut header_row)
                .map_err(|e| RuntimeError::Input {
                    path: name.into(),
                    message: format!("reading the CSV header: {e}"),
                })?;
        if !has_header {
            return Err(RuntimeError::Input {
                path: name.into(),
                message: "empty CSV file: no header row".into(),
            });
        }
        let header =
            CsvHeader::new(&header_row, builder.schema()).map_err(|e| RuntimeError::Input {
                path: name.into(),
                message: format!("CSV header: {e}"),
            })?;
        Ok(RecordReader::Csv(CsvRows {
            input,
            header,
            row: csv::ByteRecord::new(),
        }))
    }

    /// After a direct seek: the JSON reader starts `offset` bytes into its input.
    pub(crate) fn set_json_position(&mut self, offset: u64) {
        if let RecordReader::Json(r) = self {
            r.offset = offset;
        }
    }

    /// Restores the line counter of a resumed reader, so dead letters name true line numbers.
    pub(crate) fn set_line(&mut self, line: u64) {
        // A CSV reader re-reads from the start of its file, so its own line count is right already.
        if let RecordReader::Json(r) = self {
            r.line = line;
        }
    }

    /// Bytes consumed so far (of decompressed data).
    pub(crate) fn offset(&self) -> u64 {
        match self {
            RecordReader::Json(r) => r.offset,
            RecordReader::Csv(r) => r.input.position().byte(),
        }
    }

    /// Lines consumed so far.
    pub(crate) fn line(&self) -> u64 {
        match self {
            RecordReader::Json(r) => r.line,
            RecordReader::Csv(r) => r.input.position().line().saturating_sub(1),
        }
    }

    /// Skips records until `offset` bytes are consumed (resume without seekable input).
    pub(crate) fn skip_to(&mut self, offset: u64, name: &str) -> Result<()> {
        while self.offset() < offset {
            let more = match self {
                RecordReader::Json(r) => r.next_line(name)?,
                RecordReader::Csv(r) => r
                    .input
                    .read_byte_record(&mut r.row)
                    .map_err(|e| csv_error(name, e))?,
            };
            if !more {
                return Err(RuntimeError::Input {
                    path: name.into(),
                    message: format!("the file is shorter than the checkpointed offset {offset}: it changed since"),
                });
            }
        }
        if self.offset() != offset {
            return Err(RuntimeError::Input {
                path: name.into(),
                message: format!("checkpointed offset {offset} is not at a record boundary: the file changed since"),
            });
        }
        Ok(())
    }

    /// Cuts lines into `job` until it holds `max` records, as [`read`](Self::read) would decode
    /// them (blank lines skipped, `seq` advanced per record), for a parser thread to decode.
    /// Returns false at the end of input. JSON Lines only: a CSV reader is never split.
    pub(crate) fn split(
        &mut self,
        job: &mut Job,
        max: usize,
        seq: &mut u64,
        (index, path, name): (usize, &std::path::Path, &str),
    ) -> Result<bool> {
        let RecordReader::Json(r) = self else {
            unreachable!("only JSON Lines input is split for parser threads")
        };
        job.start_file(index, path, name);
        while job.records() < max {
            let start = job.buffer().len();
            let n = r
                .input
                .read_until(b'\n', job.buffer())
                .map_err(|e| RuntimeError::io("reading", name, e))?;
            if n == 0 {
                return Ok(false);
            }
            r.offset += n as u64;
            r.line += 1;
            job.keep_line(
                start,
                || {
                    *seq += 1;
                    *seq - 1
                },
                r.line,
                r.offset,
            );
        }
        Ok(true)
    }

    /// Reads up to `max - parts.records()` records into `builder`/`parts`. Returns false at the end of input.
    /// `seq` is the sequence number of the next record and is advanced per record.
    pub(crate) fn read(
        &mut self,
        builder: &mut BatchBuilder,
        parts: &mut ChunkParts,
        max: usize,
        seq: &mut u64,
        name: &str,
    ) -> Result<bool> {
        match self {
            RecordReader::Json(r) => r.read(builder, parts, max, seq, name),
            RecordReader::Csv(r) => r.read(builder, parts, max, seq, name),
        }
    }
}

fn csv_error(name: &str, e: csv::Error) -> RuntimeError {
    RuntimeError::Input {
        path: name.into(),
        message: format!("reading CSV: {e}"),
    }
}

impl JsonLines {
    /// Reads the next line into `buf` (without its line ending); false at end of input.
    fn next_line(&mut self, name: &str) -> Result<bool> {
        self.buf.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| RuntimeError::io("reading", name, e))?;
        if n == 0 {
            return Ok(false);
        }
        self.offset += n as u64;
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(true)
    }

    fn read(
        &mut self,
        builder: &mut BatchBuilder,
        parts: &mut ChunkParts,
        max: usize,
        seq: &mut u64,
        name: &str,
    ) -> Result<bool> {
        while parts.records() < max {
            if !self.next_line(name)? {
                return Ok(false);
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let this = *seq;
            *seq += 1;
            let origin = || format!("{name}:{}", self.line);
            decode_json_line(
                builder,
                &self.buf,
                this,
                origin,
                &mut parts.seqs,
                &mut parts.dead,
            );
        }
        Ok(true)
    }
}

/// Decodes one JSON Lines record `raw` (without its line ending) into `builder`, its `seq` going
/// to `seqs`, or, refused (too large or invalid), a dead letter from `origin` to `dead`. The one
/// definition for the one-thread reader and the parser threads, so both refuse alike.
pub(crate) fn decode_json_line(
    builder: &mut BatchBuilder,
    raw: &[u8],
    seq: u64,
    origin: impl FnOnce() -> String,
    seqs: &mut Vec<u64>,
    dead: &mut Vec<DeadLetter>,
) {
    let outcome = if raw.len() > MAX_RECORD_BYTES {
        Err(DecodeError::too_large(raw.len(), MAX_RECORD_BYTES))
    } else {
        builder.push_json(raw)
    };
    match outcome {
        Ok(()) => seqs.push(seq),
        Err(err) => dead.push(dead_letter(seq, err, origin(), raw_text(raw))),
    }
}

impl CsvRows {
    fn read(
        &mut self,
        builder: &mut BatchBuilder,
        parts: &mut ChunkParts,
        max: usize,
        seq: &mut u64,
        name: &str,
    ) -> Result<bool> {
        while parts.records() < max {
            if !self
                .input
                .read_byte_record(&mut self.row)
                .map_err(|e| csv_error(name, e))?
            {
                return Ok(false);
            }
            let this = *seq;
            *seq += 1;
            match builder.push_csv(&self.header, &self.row) {
                Ok(()) => parts.seqs.push(this),
                Err(err) => {
                    let line = self.row.position().map_or(0, csv::Position::line);
                    let raw: Vec<String> = self
                        .row
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    parts.dead.push(dead_letter(
                        this,
                        err,
                        format!("{name}:{line}"),
                        raw_text(raw.join(",").as_bytes()),
                    ));
                }
            }
        }
        Ok(true)
    }
}
