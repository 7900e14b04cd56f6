//! A k-way merge of input files that are each sorted by an event-time field (`merge_by`): the
//! records come out in event-time order across the files while only one chunk per file is held,
//! so a month of per-day or per-partition files replays as the one stream it was.
//!
//! Ties go to the earlier file of the input list and each file keeps its own order, so when every
//! file is sorted the merged order is a stable sort of the files one after the other. A file that
//! is not sorted is still merged without reordering its records among themselves, and a warning
//! names it. Dead letters, and rows whose time is missing or unreadable, leave as soon as they
//! reach the head of their file. The position is how many records each file has handed on; a
//! resumed run reopens every file and skips that many.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};
use eddy_features::ops::event_time::parse_rfc3339;
use eddy_features::FieldType;
use serde::{Deserialize, Serialize};

use super::columnar::{Columnar, ColumnarSource};
use super::file::{FileFormat, FileSource};
use super::{BuildContext, Chunk, DeadLetter, Location, Position, Source};
use crate::error::{Result, RuntimeError};

/// One merged file and how many of its records (dead letters included) have been handed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedFile {
    pub path: PathBuf,
    pub records: u64,
}

/// A record of a file's current chunk, in file order.
enum Item {
    Row(usize),
    Dead(DeadLetter),
}

/// The next record of one file, as the merge sees it.
struct Head {
    path: PathBuf,
    source: Box<dyn Source>,
    batch: Option<RecordBatch>,
    items: VecDeque<Item>,
    handed: u64,
    last_time: f64,
    unsorted: u64,
    ended: bool,
}

/// The merge order: event time, then the file's place in the input list.
#[derive(PartialEq)]
struct Key {
    time: f64,
    file: usize,
}

impl Eq for Key {}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .total_cmp(&other.time)
            .then(self.file.cmp(&other.file))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reads the time column of a batch as ordered numbers (ms for RFC 3339 strings).
struct TimeColumn {
    index: usize,
    ty: FieldType,
}

impl TimeColumn {
    /// The row's time; `-inf` when it is missing or unreadable, so the row leaves at once.
    fn get(&self, batch: &RecordBatch, row: usize) -> f64 {
        let column = batch.column(self.index);
        if column.is_null(row) {
            return f64::NEG_INFINITY;
        }
        let time = match self.ty {
            FieldType::Number => column
                .as_any()
                .downcast_ref::<Float64Array>()
                .map(|a| a.value(row)),
            FieldType::String => column
                .as_any()
                .downcast_ref::<StringArray>()
                .and_then(|a| parse_rfc3339(a.value(row)))
                .map(|ms| ms as f64),
        };
        time.filter(|t| !t.is_nan()).unwrap_or(f64::NEG_INFINITY)
    }
}

impl Head {
    /// Loads the file's next chunk once the current one is used up; false at the end.
    fn refill(&mut self, rows: usize) -> Result<bool> {
        while self.items.is_empty() && !self.ended {
            let Some(chunk) = self.source.next_chunk(rows)? else {
                self.ended = true;
                break;
            };
            // Rows and dead letters interleave by their sequence numbers within the file.
            let mut dead = chunk.dead.into_iter().peekable();
            for (row, &seq) in chunk.seqs.iter().enumerate() {
                while let Some(d) = dead.next_if(|d| d.seq < seq) {
                    self.items.push_back(Item::Dead(d));
                }
                self.items.push_back(Item::Row(row));
            }
            self.items.extend(dead.map(Item::Dead));
            self.batch = Some(chunk.batch);
        }
        Ok(!self.items.is_empty())
    }

    fn key(&self, file: usize, time: &TimeColumn) -> Option<Key> {
        let time = match (self.items.front()?, &self.batch) {
            (Item::Row(row), Some(batch)) => time.get(batch, *row),
            _ => f64::NEG_INFINITY,
        };
        Some(Key { time, file })
    }

    /// Skips the first `records` records of the file (resuming).
    fn skip(&mut self, records: u64, rows: usize) -> Result<()> {
        let mut left = records;
        while left > 0 {
            let max = left.min(rows as u64) as usize;
            let Some(chunk) = self.source.next_chunk(max)? else {
                return Err(RuntimeError::Input {
                    path: self.path.clone(),
                    message: format!(
                        "has fewer than the {records} records the checkpoint had merged from it: it changed since"
                    ),
                });
            };
            left -= (chunk.seqs.len() + chunk.dead.len()) as u64;
        }
        self.handed = records;
        Ok(())
    }
}

/// Merges files sorted by an event-time field into one stream in event-time order.
pub(crate) struct Merged {
    heads: Vec<Head>,
    time: TimeColumn,
    field: String,
    heap: BinaryHeap<Reverse<Key>>,
    started: bool,
    rows: usize,
    records: u64,
    schema: arrow_schema::SchemaRef,
}

impl Merged {
    /// One reader per file, each reading `rows` records at a time.
    pub(crate) fn open(
        files: Vec<PathBuf>,
        format: Option<FileFormat>,
        rows: usize,
        field: &str,
        cx: BuildContext,
    ) -> Result<Merged> {
        let schema = cx.builder.schema();
        let Some(index) = schema.index_of(field) else {
            return Err(RuntimeError::Input {
                path: files[0].clone(),
                message: format!(
                    "source.merge_by: {field:?} is not a field this pipeline reads; name the \
                     event-time field that a feature (time, window, lag, ema) or the key uses"
                ),
            });
        };
        let time = TimeColumn {
            index,
            ty: schema.fields()[index].ty,
        };
        let arrow = schema.arrow_schema();
        let mut heads = Vec::with_capacity(files.len());
        for path in files {
            let sub = BuildContext {
                meter: Arc::clone(&cx.meter),
                ..BuildContext::new(cx.builder.fresh(), None)
            };
            let source: Box<dyn Source> = if Columnar::of(&path).is_some() {
                Box::new(ColumnarSource::open(vec![path.clone()], sub)?)
            } else {
                Box::new(FileSource::over(vec![path.clone()], format, sub)?)
            };
            heads.push(Head {
                path,
                source,
                batch: None,
                items: VecDeque::new(),
                handed: 0,
                last_time: f64::NEG_INFINITY,
                unsorted: 0,
                ended: false,
            });
        }
        let mut merged = Merged {
            heads,
            time,
            field: field.to_owned(),
            heap: BinaryHeap::new(),
            started: false,
            rows: rows.max(1),
            records: 0,
            schema: arrow,
        };
        if let Some(pos) = cx.resume {
            merged.seek(pos)?;
        }
        Ok(merged)
    }

    fn seek(&mut self, pos: Position) -> Result<()> {
        let files = match pos.location {
            Location::Start => return Ok(()),
            Location::Merged { files } => files,
            other => {
                return Err(RuntimeError::Input {
                    path: self.heads[0].path.clone(),
                    message: format!(
                        "cannot resume a merged file source from a {other:?} position"
                    ),
                })
            }
        };
        let now: Vec<&PathBuf> = self.heads.iter().map(|h| &h.path).collect();
        let then: Vec<&PathBuf> = files.iter().map(|f| &f.path).collect();
        if now != then {
            return Err(RuntimeError::Input {
                path: self.heads[0].path.clone(),
                message: format!(
                    "the checkpoint merged the inputs {then:?}, but the inputs now are {now:?}: \
                     the input set changed since"
                ),
            });
        }
        for (head, file) in self.heads.iter_mut().zip(&files) {
            head.skip(file.records, self.rows)?;
        }
        self.records = pos.records;
        Ok(())
    }

    fn start(&mut self) -> Result<()> {
        for (file, head) in self.heads.iter_mut().enumerate() {
            head.refill(self.rows)?;
            if let Some(key) = head.key(file, &self.time) {
                self.heap.push(Reverse(key));
            }
        }
        self.started = true;
        Ok(())
    }
}

impl Source for Merged {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        if !self.started {
            self.start()?;
        }
        // The batches rows are taken from, and each file's slot among them for its current batch.
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut slots: Vec<Option<usize>> = vec![None; self.heads.len()];
        let (mut picks, mut seqs, mut dead) = (Vec::new(), Vec::new(), Vec::new());
        while picks.len() + dead.len() < max {
            let Some(Reverse(Key { time, file })) = self.heap.pop() else {
                break;
            };
            let head = &mut self.heads[file];
            let item = head
                .items
                .pop_front()
                .expect("a file in the heap has a record at its head");
            head.handed += 1;
            let seq = self.records;
            self.records += 1;
            match item {
                Item::Row(row) => {
                    if time < head.last_time {
                        head.unsorted += 1;
                        if head.unsorted == 1 {
                            tracing::warn!(
                                file = %head.path.display(),
                                record = head.handed,
                                field = %self.field,
                                "input file is not sorted by the merge field: its records keep their file order, so the merged stream is not sorted here"
                            );
                        }
                    }
                    if time > f64::NEG_INFINITY {
                        head.last_time = time;
                    }
                    let slot = *slots[file].get_or_insert_with(|| {
                        batches.push(head.batch.clone().expect("a row has its batch"));
                        batches.len() - 1
                    });
                    picks.push((slot, row));
                    seqs.push(seq);
                }
                Item::Dead(mut letter) => {
                    letter.seq = seq;
                    dead.push(letter);
                }
            }
            if head.items.is_empty() {
                // Rows taken already keep the old batch through their slot.
                slots[file] = None;
                head.refill(self.rows)?;
            }
            if let Some(key) = head.key(file, &self.time) {
                self.heap.push(Reverse(key));
            }
        }
        if picks.is_empty() && dead.is_empty() {
            return Ok(None);
        }
        let batch = if picks.is_empty() {
            RecordBatch::new_empty(self.schema.clone())
        } else {
            let sources: Vec<&RecordBatch> = batches.iter().collect();
            arrow_select::interleave::interleave_record_batch(&sources, &picks)
                .map_err(|e| RuntimeError::Internal(format!("merging batches: {e}")))?
        };
        Ok(Some(Chunk {
            batch,
            seqs,
            origins: Vec::new(),
            dead,
            end: self.position(),
        }))
    }

    fn position(&self) -> Position {
        Position {
            records: self.records,
            location: Location::Merged {
                files: self
                    .heads
                    .iter()
                    .map(|h| MergedFile {
                        path: h.path.clone(),
                        records: h.handed,
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use eddy_features::{BatchBuilder, Field, Schema};

    use super::*;

    fn context(resume: Option<Position>) -> BuildContext {
        let schema = Schema::new(vec![
            Field::number("ts").required(false),
            Field::number("x").required(true),
        ])
        .expect("valid schema");
        BuildContext::new(BatchBuilder::new(Arc::new(schema)), resume)
    }

    /// Every record handed on, as `x` (or the dead letter's origin), with the chunks' end positions.
    fn drain(source: &mut Merged, max: usize) -> (Vec<String>, Vec<Position>) {
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        while let Some(chunk) = source.next_chunk(max).expect("reads") {
            let x = chunk
                .batch
                .column(1)
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("x is a number")
                .clone();
            let mut records: Vec<(u64, String)> = chunk
                .seqs
                .iter()
                .enumerate()
                .map(|(row, &seq)| (seq, x.value(row).to_string()))
                .collect();
            records.extend(
                chunk
                    .dead
                    .iter()
                    .map(|d| (d.seq, format!("dead {}", d.kind))),
            );
            records.sort();
            let expected: Vec<u64> = (0..records.len() as u64)
                .map(|i| i + records[0].0)
                .collect();
            assert_eq!(
                records.iter().map(|r| r.0).collect::<Vec<_>>(),
                expected,
                "sequence numbers run on"
            );
            out.extend(records.into_iter().map(|r| r.1));
            ends.push(chunk.end);
        }
        (out, ends)
    }

    #[test]
    fn files_merge_by_time_ties_by_file_and_resume_anywhere() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, lines: &[&str]| {
            let path = dir.path().join(name);
            std::fs::write(&path, lines.join("\n") + "\n").expect("writes");
            path
        };
        let files = vec![
            write(
                "a.jsonl",
                &[
                    r#"{"ts":1,"x":10}"#,
                    r#"{"ts":4,"x":11}"#,
                    r#"{"ts":7,"x":12}"#,
                ],
            ),
            write(
                "b.jsonl",
                &[
                    r#"{"ts":2,"x":20}"#,
                    r#"{"ts":4,"x":21}"#,
                    "not json",
                    r#"{"ts":9,"x":22}"#,
                ],
            ),
            write(
                "c.jsonl",
                &[r#"{"ts":3,"x":30}"#, r#"{"x":31}"#, r#"{"ts":5,"x":32}"#],
            ),
        ];
        let open = |rows, resume| {
            Merged::open(files.clone(), None, rows, "ts", context(resume)).expect("opens")
        };
        let (all, ends) = drain(&mut open(2, None), 3);
        // Time order; ts 4 from a before b (tie by file); the dead letter leaves once it heads
        // b, the row without a time once it heads c.
        assert_eq!(
            all,
            [
                "10",
                "20",
                "30",
                "31",
                "11",
                "21",
                "dead malformed_json",
                "32",
                "12",
                "22"
            ]
        );
        // Chunk sizes do not change the order.
        assert_eq!(drain(&mut open(1, None), 1).0, all);
        assert_eq!(drain(&mut open(64, None), 64).0, all);
        // From every chunk end, a resumed merge continues with the very next record.
        let mut done = 0;
        for end in ends {
            let records = end.records as usize;
            done += 1;
            let (rest, _) = drain(&mut open(2, Some(end)), 2);
            assert_eq!(rest, all[records..], "resumed after chunk {done}");
        }
        // Another input list is refused.
        let pos = open(2, None).position();
        let mut fewer = files.clone();
        fewer.pop();
        let err = Merged::open(fewer, None, 2, "ts", context(Some(pos)))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("input set changed"), "{err}");
    }

    #[test]
    fn a_merge_field_the_pipeline_does_not_read_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"x\":1}\n").expect("writes");
        let err = Merged::open(vec![path], None, 8, "when", context(None))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("\"when\""), "{err}");
    }
}
