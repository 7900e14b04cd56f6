//! File sources (JSON Lines or CSV, plain or gzip, one file, a directory or a glob) and stdin.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use eddy_features::BatchBuilder;
use serde::{Deserialize, Serialize};

use super::parse_ahead::{Job, ParsePool, Parsed};
use super::read_ahead::ReadAhead;
use super::reader::RecordReader;
use super::{BuildContext, Chunk, ChunkParts, InputMeter, Location, Metered, Position, Source};
use crate::error::{Result, RuntimeError};

const READ_BUFFER_BYTES: usize = 256 * 1024;

fn default_batch_size() -> usize {
    4096
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Jsonl,
    Csv,
}

impl FileFormat {
    /// The format a file name implies (`.jsonl`, `.ndjson`, `.json`, `.csv`, each optionally `.gz`).
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
            Some(FileFormat::Jsonl)
        } else {
            None
        }
    }
}

/// `[source] type = "file"`: one file, a directory (its files with a known extension), or a glob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub path: String,
    /// Overrides the format implied by each file's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Offline training: read the inputs this many times (each pass is one epoch). From the
    /// second epoch on, progressive metrics are on events already learned, not held out.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub epochs: u32,
    /// Offline training: learn in a seeded random order, through a shuffle buffer of
    /// `shuffle_buffer` records (bounded memory; records travel at most that far). Not equal to
    /// streaming, and a shuffled run cannot resume mid-way (its checkpoints carry the model
    /// for `--resume-from`, not a position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<u64>,
    #[serde(
        default = "default_shuffle_buffer",
        skip_serializing_if = "is_default_shuffle_buffer"
    )]
    pub shuffle_buffer: usize,
    /// Merge the files by this event-time field (each file sorted by it already) instead of
    /// reading them one after the other: a k-way merge holding one chunk per file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_by: Option<String>,
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn default_shuffle_buffer() -> usize {
    100_000
}
fn is_default_shuffle_buffer(n: &usize) -> bool {
    *n == default_shuffle_buffer()
}

impl FileSourceConfig {
    /// Reads `path` once, in order.
    pub fn new(path: impl Into<String>, format: Option<FileFormat>, batch_size: usize) -> Self {
        FileSourceConfig {
            path: path.into(),
            format,
            batch_size,
            epochs: 1,
            shuffle_seed: None,
            shuffle_buffer: default_shuffle_buffer(),
            merge_by: None,
        }
    }

    pub(crate) fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.path.is_empty() {
            problems.push("source.path: empty".to_owned());
        }
        if self.epochs == 0 {
            problems.push("source.epochs: must be >= 1, got 0".to_owned());
        }
        if self.shuffle_seed.is_some() && self.shuffle_buffer == 0 {
            problems.push("source.shuffle_buffer: must be >= 1, got 0".to_owned());
        }
        if self.merge_by.as_deref() == Some("") {
            problems.push("source.merge_by: empty".to_owned());
        }
        if self.merge_by.is_some() && (self.epochs > 1 || self.shuffle_seed.is_some()) {
            problems.push(
                "source.merge_by: merging by event time cannot be combined with epochs or shuffle_seed"
                    .to_owned(),
            );
        }
        problems
    }

    /// The input files, the whole list once per epoch.
    pub(crate) fn inputs(&self) -> Result<Vec<PathBuf>> {
        let files = expand_inputs(&self.path)?;
        Ok((0..self.epochs)
            .flat_map(|_| files.iter().cloned())
            .collect())
    }
}

/// `[source] type = "stdin"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    #[serde(default = "default_stdin_format")]
    pub format: FileFormat,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_stdin_format() -> FileFormat {
    FileFormat::Jsonl
}

/// The sorted list of input files that `pattern` names.
pub fn expand_inputs(pattern: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| RuntimeError::io("listing", path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && (FileFormat::from_path(p).is_some()
                        || super::columnar::Columnar::of(p).is_some())
            })
            .collect()
    } else if pattern.contains(['*', '?', '[']) {
        glob::glob(pattern)
            .map_err(|e| RuntimeError::Input {
                path: pattern.into(),
                message: format!("bad glob: {e}"),
            })?
            .filter_map(std::result::Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    };
    files.sort();
    if files.is_empty() {
        return Err(RuntimeError::NoInput(pattern.to_owned()));
    }
    Ok(files)
}

fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Reads the files in order; its position is (file index, byte offset, line).
pub struct FileSource {
    files: Vec<PathBuf>,
    format: Option<FileFormat>,
    builder: BatchBuilder,
    index: usize,
    reader: Option<RecordReader>,
    /// Where the last finished file ended, reported while no next file is open, so that a
    /// checkpoint between files names a file that exists in the input list.
    finished: Option<Location>,
    records: u64,
    meter: Arc<InputMeter>,
    /// Parser threads, when every input is JSON Lines and there are cores for them: the reader
    /// above then only cuts lines, ahead of the chunks handed on.
    pool: Option<ParsePool>,
    /// With parser threads, the end of the last chunk handed on (the reader is further ahead),
    /// and an error met while cutting ahead, returned once the chunks before it are handed on.
    handed: Option<Position>,
    split_error: Option<RuntimeError>,
    /// What is left of a parsed job after a smaller chunk was asked for than it holds.
    partial: Option<Parsed>,
    /// Parser threads to start on the first read: from the thread that reads, so they share its
    /// priority (lowered while serving, see `crate::priority`), as the decoder of columnar files
    /// does.
    threads_wanted: usize,
}

impl FileSource {
    pub fn open(config: &FileSourceConfig, cx: BuildContext) -> Result<FileSource> {
        let mut source = FileSource::over(config.inputs()?, config.format, cx)?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // Gzip input is inflated on a thread of its own, and inflating is the slower step: parser
        // threads would only take CPU from it (measured 827-924k against 896k-1.02M events/s
        // on a 1M-line numeric file), so it is parsed on the source thread.
        if cores >= 2 && source.all_json_lines() && !source.files.iter().any(|f| is_gzip(f)) {
            source.threads_wanted = cores.min(PARSER_THREADS);
        }
        Ok(source)
    }

    /// Whether parser threads decode the input (they start on the first read).
    #[cfg(test)]
    pub(crate) fn parses_on_threads(&self) -> bool {
        self.pool.is_some()
    }

    /// Starts `threads` parser threads on the first read, as `open` asks on a multi-core machine.
    #[cfg(test)]
    pub(crate) fn start_threads_on_first_read(&mut self, threads: usize) {
        self.threads_wanted = threads;
    }

    fn all_json_lines(&self) -> bool {
        self.files
            .iter()
            .all(|f| self.format.or_else(|| FileFormat::from_path(f)) == Some(FileFormat::Jsonl))
    }

    /// Decodes on `threads` parser threads from now on (JSON Lines inputs only).
    pub(crate) fn parse_on_threads(&mut self, threads: usize) -> Result<()> {
        let pool = ParsePool::start(&self.builder, threads)
            .map_err(|e| RuntimeError::io("starting parser threads for", &self.files[0], e))?;
        self.handed = Some(self.position());
        self.pool = Some(pool);
        Ok(())
    }

    /// Reads `files` in order (`format` overrides each file's extension).
    pub(crate) fn over(
        files: Vec<PathBuf>,
        format: Option<FileFormat>,
        cx: BuildContext,
    ) -> Result<FileSource> {
        cx.meter.add_files(&files);
        let mut source = FileSource {
            files,
            format,
            builder: cx.builder,
            index: 0,
            reader: None,
            finished: None,
            records: 0,
            meter: cx.meter,
            pool: None,
            handed: None,
            split_error: None,
            partial: None,
            threads_wanted: 0,
        };
        if let Some(pos) = cx.resume {
            source.seek(&pos)?;
        }
        Ok(source)
    }

    fn open_reader(&self, index: usize, skip_to: u64) -> Result<RecordReader> {
        let path = &self.files[index];
        let name = path.display().to_string();
        let format = self
            .format
            .or_else(|| FileFormat::from_path(path))
            .ok_or_else(|| RuntimeError::Input {
                path: path.clone(),
                message:
                    "unknown format: name it .jsonl or .csv (optionally .gz), or set source.format"
                        .into(),
            })?;
        let mut file = File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
        let gzip = is_gzip(path);
        // A plain JSON Lines file seeks straight to the offset; gzip and CSV re-read up to it.
        let direct_seek = !gzip && format == FileFormat::Jsonl && skip_to > 0;
        if direct_seek {
            file.seek(SeekFrom::Start(skip_to))
                .map_err(|e| RuntimeError::io("seeking", path, e))?;
            self.meter.add_read(skip_to);
        }
        let file = Metered {
            inner: file,
            meter: Arc::clone(&self.meter),
        };
        let raw: Box<dyn Read + Send> = if gzip {
            Box::new(
                ReadAhead::spawn(flate2::read::MultiGzDecoder::new(file))
                    .map_err(|e| RuntimeError::io("starting to inflate", path, e))?,
            )
        } else {
            Box::new(file)
        };
        let mut reader = match format {
            FileFormat::Jsonl => {
                RecordReader::json(Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, raw))
                    as Box<dyn BufRead + Send>)
            }
            FileFormat::Csv => RecordReader::csv(
                Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, raw)),
                &self.builder,
                &name,
            )?,
        };
        if direct_seek {
            if let RecordReader::Json(_) = reader {
                reader.set_json_position(skip_to);
            }
        } else if skip_to > 0 {
            reader.skip_to(skip_to, &name)?;
        }
        Ok(reader)
    }

    fn seek(&mut self, pos: &Position) -> Result<()> {
        self.records = pos.records;
        match &pos.location {
            Location::Start => {}
            Location::File {
                index,
                path,
                offset,
                line,
            } => {
                if self.files.get(*index) != Some(path) {
                    return Err(RuntimeError::Input {
                        path: path.clone(),
                        message: format!(
                            "the checkpoint was taken in input file #{index}, but the inputs now are {:?}: \
                             the input set changed since",
                            self.files
                        ),
                    });
                }
                self.index = *index;
                self.meter.skip_files(&self.files[..*index]);
                let mut reader = self.open_reader(*index, *offset)?;
                reader.set_line(*line);
                self.reader = Some(reader);
            }
            other => {
                return Err(RuntimeError::Input {
                    path: self.files[0].clone(),
                    message: format!("cannot resume a file source from a {other:?} position"),
                })
            }
        }
        Ok(())
    }

    /// Takes records into `into` until it holds `max` or the inputs end, across files.
    fn fill(&mut self, into: &mut impl Fill, max: usize) -> Result<()> {
        while into.records() < max && self.index < self.files.len() {
            if self.reader.is_none() {
                self.reader = Some(self.open_reader(self.index, 0)?);
            }
            let name = self.files[self.index].display().to_string();
            let reader = self.reader.as_mut().expect("opened above");
            let file = (self.index, self.files[self.index].as_path(), name.as_str());
            if !into.take(reader, &mut self.builder, max, &mut self.records, file)? {
                self.finish_file();
            }
        }
        Ok(())
    }

    /// Cuts the next chunk's lines, as `next_chunk` would read them.
    fn next_job(&mut self, max: usize) -> Result<Option<Job>> {
        let mut job = Job::new();
        self.fill(&mut job, max)?;
        if job.records() == 0 {
            return Ok(None);
        }
        job.end = self.reader_position();
        Ok(Some(job))
    }

    /// The reader reached the end of the current file.
    fn finish_file(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.finished = Some(Location::File {
                index: self.index,
                path: self.files[self.index].clone(),
                offset: reader.offset(),
                line: reader.line(),
            });
        }
        self.index += 1;
    }

    /// The next chunk from the parser threads, keeping them busy with the ones after it. Jobs
    /// are cut `max` records long; when the chunk asked for is not one whole job (`max` changed,
    /// as it does for the last chunk before `--max-events`), it is assembled from the front of
    /// the jobs, so the chunks are always those one reader would give.
    fn next_parsed(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut pieces = Vec::new();
        let mut records = 0;
        while records < max {
            if self.partial.is_none() {
                self.cut_ahead(max);
                let next = self.pool.as_mut().expect("parsing on threads").next();
                self.partial = next.map_err(|message| RuntimeError::Input {
                    path: self.files.get(self.index).unwrap_or(&self.files[0]).clone(),
                    message: message.into(),
                })?;
            }
            let Some(parsed) = self.partial.take() else {
                break;
            };
            let (chunk, rest) = parsed.split_front(max - records);
            self.partial = rest;
            records += chunk.seqs.len() + chunk.dead.len();
            pieces.push(chunk);
        }
        let chunk = match pieces.len() {
            0 => return self.split_error.take().map_or(Ok(None), Err),
            1 => pieces.pop().expect("one piece"),
            _ => join(pieces)?,
        };
        self.handed = Some(chunk.end.clone());
        Ok(Some(chunk))
    }

    /// Cuts jobs of `max` records for the parser threads until enough are in flight.
    fn cut_ahead(&mut self, max: usize) {
        while self.split_error.is_none() && self.pool.as_ref().is_some_and(ParsePool::wants_job) {
            match self.next_job(max) {
                Ok(Some(job)) => self.pool.as_mut().expect("checked").submit(job),
                Ok(None) => break,
                Err(e) => self.split_error = Some(e),
            }
        }
    }

    /// Where the reader stands (with parser threads, ahead of the chunks handed on).
    fn reader_position(&self) -> Position {
        let location = match (&self.reader, &self.finished) {
            (Some(reader), _) => Location::File {
                index: self.index,
                path: self.files[self.index].clone(),
                offset: reader.offset(),
                line: reader.line(),
            },
            (None, Some(finished)) => finished.clone(),
            (None, None) => Location::Start,
        };
        Position {
            records: self.records,
            location,
        }
    }
}

/// What a chunk is filled with: decoded records (one thread) or raw lines (parser threads).
trait Fill {
    fn records(&self) -> usize;

    /// Takes records from `reader`, the reader of input file `file` (index, path, name), until
    /// there are `max`; false when the file ended first.
    fn take(
        &mut self,
        reader: &mut RecordReader,
        builder: &mut BatchBuilder,
        max: usize,
        seq: &mut u64,
        file: (usize, &Path, &str),
    ) -> Result<bool>;
}

impl Fill for ChunkParts {
    fn records(&self) -> usize {
        ChunkParts::records(self)
    }

    fn take(
        &mut self,
        reader: &mut RecordReader,
        builder: &mut BatchBuilder,
        max: usize,
        seq: &mut u64,
        (_, _, name): (usize, &Path, &str),
    ) -> Result<bool> {
        reader.read(builder, self, max, seq, name)
    }
}

impl Fill for Job {
    fn records(&self) -> usize {
        Job::records(self)
    }

    fn take(
        &mut self,
        reader: &mut RecordReader,
        _: &mut BatchBuilder,
        max: usize,
        seq: &mut u64,
        file: (usize, &Path, &str),
    ) -> Result<bool> {
        reader.split(self, max, seq, file)
    }
}

/// Consecutive chunks as one.
fn join(pieces: Vec<Chunk>) -> Result<Chunk> {
    let schema = pieces[0].batch.schema();
    let batch = arrow_select::concat::concat_batches(&schema, pieces.iter().map(|c| &c.batch))
        .map_err(|e| RuntimeError::Internal(format!("joining decoded chunks: {e}")))?;
    let mut joined = Chunk {
        batch,
        seqs: Vec::new(),
        origins: Vec::new(),
        dead: Vec::new(),
        end: Position::default(),
    };
    for c in pieces {
        joined.seqs.extend(c.seqs);
        joined.dead.extend(c.dead);
        joined.end = c.end;
    }
    Ok(joined)
}

/// Parser threads at most: with the source and trainer threads, two keep a 2-core machine busy,
/// and more would only add memory in flight.
const PARSER_THREADS: usize = 2;

impl Source for FileSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        if self.threads_wanted > 0 {
            let threads = std::mem::take(&mut self.threads_wanted);
            self.parse_on_threads(threads)?;
        }
        if self.pool.is_some() {
            return self.next_parsed(max);
        }
        let mut parts = ChunkParts::new();
        self.fill(&mut parts, max)?;
        if parts.records() == 0 {
            return Ok(None);
        }
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        match &self.handed {
            Some(handed) => handed.clone(),
            None => self.reader_position(),
        }
    }
}

/// JSON Lines or CSV from standard input.
pub struct StdinSource {
    builder: BatchBuilder,
    reader: RecordReader,
    records: u64,
    done: bool,
}

impl StdinSource {
    pub fn open(config: &StdinSourceConfig, cx: BuildContext) -> Result<StdinSource> {
        let input = Box::new(Metered {
            inner: std::io::stdin(),
            meter: cx.meter,
        });
        let reader = match config.format {
            FileFormat::Jsonl => {
                RecordReader::json(Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, input)))
            }
            FileFormat::Csv => RecordReader::csv(input, &cx.builder, "<stdin>")?,
        };
        if cx.resume.as_ref().is_some_and(|p| p.records > 0) {
            tracing::warn!("resuming with stdin as the source: model state is restored, stdin is read from what it gives next");
        }
        Ok(StdinSource {
            builder: cx.builder,
            reader,
            records: cx.resume.map_or(0, |p| p.records),
            done: false,
        })
    }
}

impl Source for StdinSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut parts = ChunkParts::new();
        let more = self.reader.read(
            &mut self.builder,
            &mut parts,
            max,
            &mut self.records,
            "<stdin>",
        )?;
        self.done = !more;
        if parts.records() == 0 {
            return Ok(None);
        }
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        Position {
            records: self.records,
            location: Location::Stdin,
        }
    }
}
