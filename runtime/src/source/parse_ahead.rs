//! JSON Lines decoded on parser threads, in order: the source thread cuts the input into jobs of
//! exactly the records one chunk would hold (finding line ends is cheap), parser threads decode
//! the jobs into Arrow batches, and the chunks come back in input order. Each line is decoded by
//! the same code as in the one-thread reader and the chunk boundaries and positions are the same,
//! so the stream is identical, only decoded on more cores.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use eddy_features::BatchBuilder;

use super::reader::decode_json_line;
use super::{Chunk, Location, Position};

/// The raw lines of one chunk, as the source cut them.
pub(crate) struct Job {
    bytes: Vec<u8>,
    lines: Vec<Line>,
    /// The files the lines come from (a chunk can span files): index in the input list, path,
    /// and the name dead letters give.
    files: Vec<(usize, PathBuf, String)>,
    /// Where the source stands after the job's last line.
    pub(crate) end: Position,
}

/// One non-blank line of a [`Job`]: `bytes[start..end]`, without its line ending.
struct Line {
    start: usize,
    end: usize,
    mark: Mark,
}

/// Where a record of a job came from: enough to split the chunk after it.
#[derive(Clone, Copy)]
struct Mark {
    seq: u64,
    /// Its line number within its file (1-based), the reader's byte offset after it, and the
    /// index of its file in [`Job::files`].
    line: u64,
    offset: u64,
    file: usize,
}

impl Job {
    pub(crate) fn new() -> Job {
        Job {
            bytes: Vec::new(),
            lines: Vec::new(),
            files: Vec::new(),
            end: Position::default(),
        }
    }

    pub(crate) fn records(&self) -> usize {
        self.lines.len()
    }

    /// Lines from here on come from input file `index` at `path`, called `name`.
    pub(crate) fn start_file(&mut self, index: usize, path: &std::path::Path, name: &str) {
        if self.files.last().is_none_or(|f| f.0 != index) {
            self.files.push((index, path.to_owned(), name.to_owned()));
        }
    }

    /// Where the next line's bytes are appended.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Keeps the bytes appended since `start` as record `seq` from line `line` of the current
    /// file (the reader at `offset` after it), its line ending removed; a blank line is dropped
    /// instead.
    pub(crate) fn keep_line(
        &mut self,
        start: usize,
        seq: impl FnOnce() -> u64,
        line: u64,
        offset: u64,
    ) {
        while matches!(self.bytes.last(), Some(b'\n' | b'\r')) && self.bytes.len() > start {
            self.bytes.pop();
        }
        if self.bytes[start..].iter().all(u8::is_ascii_whitespace) {
            self.bytes.truncate(start);
            return;
        }
        self.lines.push(Line {
            start,
            end: self.bytes.len(),
            mark: Mark {
                seq: seq(),
                line,
                offset,
                file: self.files.len().saturating_sub(1),
            },
        });
    }

    /// Decodes every line into `builder`, exactly as the one-thread reader does.
    fn decode(self, builder: &mut BatchBuilder) -> Parsed {
        let mut seqs = Vec::with_capacity(self.lines.len());
        let mut dead = Vec::new();
        for l in &self.lines {
            let raw = &self.bytes[l.start..l.end];
            let origin = || format!("{}:{}", self.files[l.mark.file].2, l.mark.line);
            decode_json_line(builder, raw, l.mark.seq, origin, &mut seqs, &mut dead);
        }
        Parsed {
            chunk: Chunk {
                batch: builder.finish(),
                seqs,
                origins: Vec::new(),
                dead,
                end: self.end,
            },
            marks: self.lines.into_iter().map(|l| l.mark).collect(),
            files: self.files,
        }
    }
}

/// A decoded job: its chunk, and where each of its records came from.
pub(crate) struct Parsed {
    chunk: Chunk,
    marks: Vec<Mark>,
    files: Vec<(usize, PathBuf, String)>,
}

impl Parsed {
    /// Its first `max` records (`max >= 1`) as a chunk ending after the last of them, and the
    /// rest, if any, which still ends where the whole job ended.
    pub(crate) fn split_front(mut self, max: usize) -> (Chunk, Option<Parsed>) {
        if self.marks.len() <= max {
            return (self.chunk, None);
        }
        let last = self.marks[max - 1];
        self.marks.drain(..max);
        let c = &mut self.chunk;
        let rows = c.seqs.partition_point(|&s| s <= last.seq);
        let dead = c.dead.partition_point(|d| d.seq <= last.seq);
        let (index, path, _) = &self.files[last.file];
        let head = Chunk {
            batch: c.batch.slice(0, rows),
            seqs: c.seqs.drain(..rows).collect(),
            origins: Vec::new(),
            dead: c.dead.drain(..dead).collect(),
            end: Position {
                records: last.seq + 1,
                location: Location::File {
                    index: *index,
                    path: path.clone(),
                    offset: last.offset,
                    line: last.line,
                },
            },
        };
        c.batch = c.batch.slice(rows, c.batch.num_rows() - rows);
        (head, Some(self))
    }
}

type Reply = SyncSender<Parsed>;

/// Parser threads and the chunks they are working on, oldest first.
pub(crate) struct ParsePool {
    jobs: Option<SyncSender<(Job, Reply)>>,
    in_flight: VecDeque<Receiver<Parsed>>,
    workers: Vec<JoinHandle<()>>,
    depth: usize,
}

impl ParsePool {
    /// `threads` parser threads, each with a fresh copy of `builder`; up to `threads + 2` jobs
    /// are cut ahead of the chunk the caller takes, which bounds memory at that many chunks of
    /// raw lines plus their batches.
    pub(crate) fn start(builder: &BatchBuilder, threads: usize) -> std::io::Result<ParsePool> {
        let (tx, rx) = sync_channel::<(Job, Reply)>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let mut builder = builder.fresh();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("eddy-parse-{i}"))
                    .spawn(move || {
                        // started by the source thread, which keeps off the trainer's CPU: a
                        // text replay is bound by parsing and needs every core for it
                        let _placed = crate::placement::any_cpu();
                        loop {
                            // the lock is held only while waiting for the next job
                            let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            let Ok((job, reply)) = next else { return };
                            // the source stopped waiting for this chunk if the send fails
                            let _ = reply.send(job.decode(&mut builder));
                        }
                    })?,
            );
        }
        Ok(ParsePool {
            jobs: Some(tx),
            in_flight: VecDeque::new(),
            workers,
            depth: threads + 2,
        })
    }

    /// Whether another job may be cut ahead.
    pub(crate) fn wants_job(&self) -> bool {
        self.in_flight.len() < self.depth
    }

    pub(crate) fn submit(&mut self, job: Job) {
        let (reply, chunk) = sync_channel(1);
        if let Some(jobs) = &self.jobs {
            if jobs.send((job, reply)).is_ok() {
                self.in_flight.push_back(chunk);
            }
        }
    }

    /// The oldest job, decoded, waiting for it; `Ok(None)` when no job is in flight, an error if
    /// its parser thread died (a panic, which the join in `drop` also reports).
    pub(crate) fn next(&mut self) -> Result<Option<Parsed>, &'static str> {
        match self.in_flight.pop_front() {
            None => Ok(None),
            Some(chunk) => chunk
                .recv()
                .map(Some)
                .map_err(|_| "a JSON Lines parser thread stopped"),
        }
    }
}

impl Drop for ParsePool {
    fn drop(&mut self) {
        self.jobs = None; // workers end once the queue is empty and closed
        self.in_flight.clear();
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!("a JSON Lines parser thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use eddy_features::{Field, Schema};

    use super::super::file::{FileSource, FileSourceConfig};
    use super::super::reader::MAX_RECORD_BYTES;
    use super::super::{BuildContext, DeadLetter, Location, Source};
    use super::*;
    use arrow_array::RecordBatch;

    pub(super) fn context(resume: Option<Position>) -> BuildContext {
        let schema = Schema::new(vec![
            Field::number("x").required(true),
            Field::string("s").required(false),
        ])
        .expect("valid schema");
        BuildContext::new(BatchBuilder::new(Arc::new(schema)), resume)
    }

    /// What each chunk carries and the position after it, and the position at the end.
    type Stream = (
        Vec<(RecordBatch, Vec<u64>, Vec<DeadLetter>, Position, Position)>,
        Position,
    );

    fn drain(source: impl Source, max: usize) -> Stream {
        drain_by(source, &[max])
    }

    /// Asks for chunks of the sizes in `maxes`, cycling.
    fn drain_by(mut source: impl Source, maxes: &[usize]) -> Stream {
        let mut seen = Vec::new();
        for &max in maxes.iter().cycle() {
            let Some(c) = source.next_chunk(max).expect("reads") else {
                break;
            };
            assert!(c.seqs.len() + c.dead.len() <= max);
            seen.push((c.batch, c.seqs, c.dead, c.end, source.position()));
        }
        (seen, source.position())
    }

    /// Three files, one chunk spanning each boundary, with blank and CRLF lines, refused records
    /// (bad JSON, a missing field, a line over the size limit) and a file without a final newline.
    pub(super) fn inputs(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut a = String::new();
        for i in 0..23 {
            match i % 7 {
                3 => a.push_str("\n   \n"),
                4 => a.push_str("{\"x\": oops}\n"),
                5 => a.push_str(&format!("{{\"x\": {i}, \"s\": \"crlf\"}}\r\n")),
                6 => a.push_str("{\"s\": \"no x\"}\n"),
                _ => a.push_str(&format!("{{\"x\": {i}, \"s\": \"a{i}\"}}\n")),
            }
        }
        let big = format!(
            "{{\"x\": 1, \"s\": \"{}\"}}\n",
            "z".repeat(MAX_RECORD_BYTES)
        );
        let b = format!("{{\"x\": 0.5}}\n{big}\n{{\"x\": 2}}\n");
        let c: String = (0..9).map(|i| format!("{{\"x\": {i}}}\n")).collect();
        let c = c.trim_end().to_owned(); // no final newline
        [("a.jsonl", a), ("b.jsonl", b), ("c.jsonl", c)]
            .into_iter()
            .map(|(name, text)| {
                let path = dir.join(name);
                std::fs::write(&path, text).expect("writes");
                path
            })
            .collect()
    }

    /// The files through two parser threads, whatever the machine has.
    fn threaded(files: &[PathBuf], resume: Option<Position>) -> FileSource {
        let mut source = FileSource::over(files.to_vec(), None, context(resume)).expect("opens");
        source.parse_on_threads(2).expect("starts threads");
        source
    }

    /// Asserts that the files, from `resume` on, in chunks of `maxes`, give the same stream
    /// through parser threads as through one reader; that stream.
    fn same_as_one_reader(files: &[PathBuf], resume: Option<Position>, maxes: &[usize]) -> Stream {
        let one = FileSource::over(files.to_vec(), None, context(resume.clone())).expect("opens");
        let expected = drain_by(one, maxes);
        let got = drain_by(threaded(files, resume.clone()), maxes);
        assert_eq!(got, expected, "from {resume:?} in chunks of {maxes:?}");
        expected
    }

    #[test]
    fn threads_give_the_chunks_and_positions_of_one_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        for max in [1, 5, 7, 1000] {
            let stream = same_as_one_reader(&files, None, &[max]);
            let dead = stream.0.iter().flat_map(|c| &c.2);
            let kinds: Vec<&str> = dead.map(|d| d.kind).collect();
            assert_eq!(kinds.len(), 7, "{kinds:?}");
            assert!(kinds.contains(&"too_large"), "{kinds:?}");
        }
    }

    #[test]
    fn threads_resume_where_one_reader_resumes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        // every position a chunk of 3 ends at (one inside the second file), resumed by both
        let mut one = FileSource::over(files.clone(), None, context(None)).expect("opens");
        let mut ends = Vec::new();
        while let Some(c) = one.next_chunk(3).expect("reads") {
            ends.push(c.end);
        }
        assert!(ends
            .iter()
            .any(|p| matches!(p.location, Location::File { index: 1, .. })));
        for end in ends {
            same_as_one_reader(&files, Some(end), &[4]);
        }
    }

    /// Chunks asked for with another `max` than the jobs were cut with (as the last one before
    /// `--max-events` is) are assembled from the parsed jobs, and end where one reader's would.
    #[test]
    fn chunks_of_changing_sizes_end_where_one_reader_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        for maxes in [&[5, 3, 5, 1, 2, 5, 9][..], &[6, 6, 6, 1][..], &[2, 7][..]] {
            same_as_one_reader(&files, None, maxes);
        }
    }

    /// `open` (what `eddy run` and `eddy replay` use) reads the same stream, on threads when the
    /// machine has two cores or more.
    #[test]
    fn opening_a_glob_reads_the_same_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        let glob = format!("{}/*.jsonl", dir.path().display());
        let config = FileSourceConfig::new(glob, None, 5);
        let mut opened = FileSource::open(&config, context(None)).expect("opens");
        let first = opened.next_chunk(5).expect("reads").expect("a chunk");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(opened.parses_on_threads(), cores >= 2);
        let mut one = FileSource::over(files, None, context(None)).expect("opens");
        let expected = one.next_chunk(5).expect("reads").expect("a chunk");
        assert_eq!(
            (first.batch, first.seqs, first.end),
            (expected.batch, expected.seqs, expected.end)
        );
        assert_eq!(drain(opened, 5), drain(one, 5));
    }

    #[test]
    fn a_parser_pool_stops_its_threads_when_dropped_mid_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        let mut source = threaded(&files, None);
        assert!(source.next_chunk(2).expect("reads").is_some());
        drop(source); // joins the parser threads, with jobs still in flight
    }
}

#[cfg(all(test, target_os = "linux"))]
mod priority_tests {
    use super::super::file::FileSource;
    use super::super::Source;
    use super::tests::{context, inputs};
    use crate::priority::{lower_this_thread, stat_field, threads_named, Yield};

    /// The nice value of every live parser thread of this process.
    fn parser_nice_values() -> Vec<i32> {
        threads_named("eddy-parse")
            .iter()
            .filter_map(|task| stat_field(task, 19))
            .collect()
    }

    /// Parser threads start on the first read, from the reading thread, so while serving they
    /// yield to requests as the source thread does.
    #[test]
    fn parser_threads_take_the_priority_of_the_thread_that_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = inputs(dir.path());
        // opened on this thread, read on one at nice 7, as the pipeline does
        let mut source = FileSource::over(files, None, context(None)).expect("opens");
        source.start_threads_on_first_read(2);
        let nice = std::thread::spawn(move || {
            let _lowered = lower_this_thread(Yield::Nice(7));
            source.next_chunk(3).expect("reads").expect("a chunk");
            // a thread takes its name once it runs, which may be a moment after it was started
            let mut nice = parser_nice_values();
            for _ in 0..200 {
                if nice.iter().filter(|&&n| n == 7).count() >= 2 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                nice = parser_nice_values();
            }
            nice
        })
        .join()
        .expect("joins");
        // parser threads of tests running alongside may show up too, at their own values
        assert!(nice.iter().filter(|&&n| n == 7).count() >= 2, "{nice:?}");
    }
}
