//! `[source] type = "video"`: raw RGB24 frames from a spawned command (usually ffmpeg) or a file,
//! each turned into one record of per-frame features.
//!
//! A record has the numbers `frame` (0-based index), `time` (`frame / fps`, seconds), and the
//! features of [`eddy_features::frame`]: `brightness`, `motion`, `hist_r0`..`hist_b7`. The
//! position is the number of frames consumed. A resumed run re-opens the input (re-spawning the
//! command) and reads past that many frames, keeping the last one as the previous frame, so a
//! deterministic input resumes exactly; with `live = true` (a camera) it takes frames as they
//! come instead. A truncated last frame becomes a `malformed` dead letter.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use eddy_features::frame::{frame_features, frame_len, FrameFeatures};
use eddy_features::{BatchBuilder, FieldType};
use serde::{Deserialize, Serialize};

use super::{schema_of, BuildContext, Chunk, ChunkParts, DeadLetter, Location, Position, Source};
use crate::error::{Result, RuntimeError};

fn default_batch_size() -> usize {
    8
}

/// How many of the command's last stderr lines an error about its exit quotes.
const STDERR_TAIL: usize = 5;
/// The longest stderr line logged as one.
const STDERR_LINE_BYTES: usize = 4096;

/// `[source] type = "video"`. Give exactly one of `command` and `path`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSourceConfig {
    /// Frame width in pixels, as the producer writes it.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Frames per second of the input; `time` is `frame / fps`.
    pub fps: f64,
    /// A program and its arguments, spawned by eddy, writing raw rgb24 frames to its stdout
    /// (e.g. `ffmpeg ... -f rawvideo -pix_fmt rgb24 -`); its stderr goes to the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A file or FIFO of raw rgb24 frames; `-` reads standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A live input (a camera): a resumed run does not skip the frames an earlier run consumed.
    #[serde(default)]
    pub live: bool,
    /// Frames per micro-batch: small, so a live stream reaches the model (and the server) soon.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

impl VideoSourceConfig {
    pub(crate) fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [("width", self.width), ("height", self.height)] {
            if value == 0 {
                problems.push(format!("source.{key}: must be >= 1, got 0"));
            }
        }
        if frame_len(self.width, self.height).is_none() {
            problems.push(format!(
                "source.width, source.height: {}x{} is too large",
                self.width, self.height
            ));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            problems.push(format!(
                "source.fps: must be finite and > 0, got {}",
                self.fps
            ));
        }
        match (&self.command, &self.path) {
            (Some(_), Some(_)) | (None, None) => {
                problems.push("source.command, source.path: give exactly one".to_owned())
            }
            (Some(command), None) if command.first().is_none_or(|p| p.trim().is_empty()) => {
                problems.push("source.command: needs a program as its first element".to_owned())
            }
            (None, Some(path)) if path.as_os_str().is_empty() => {
                problems.push("source.path: empty".to_owned())
            }
            _ => {}
        }
        problems
    }

    /// What the input is called in errors and dead letters: the program or the path.
    fn input_name(&self) -> String {
        match (&self.command, &self.path) {
            (Some(command), _) => command.first().cloned().unwrap_or_default(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        }
    }
}

/// The spawned producer: killed and reaped when the source is dropped before it exits.
struct Producer {
    child: Child,
    /// Logs the child's stderr line by line; returns its last lines.
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl Producer {
    fn spawn(command: &[String]) -> Result<(Producer, Box<dyn Read + Send>)> {
        let (program, args) = command.split_first().ok_or_else(|| {
            RuntimeError::Internal("an empty video command passed validation".into())
        })?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RuntimeError::io("starting", program, e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| RuntimeError::Internal("the child's stdout was not piped".into()))?;
        let stderr = child.stderr.take().map(|stderr| {
            let program = program.clone();
            std::thread::spawn(move || log_stderr(stderr, &program))
        });
        Ok((Producer { child, stderr }, Box::new(stdout)))
    }

    /// Waits for a child whose stdout has ended; an error if it failed.
    fn finish(mut self, program: &str) -> Result<()> {
        let status = self
            .child
            .wait()
            .map_err(|e| RuntimeError::io("waiting for", program, e))?;
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(RuntimeError::Input {
            path: program.into(),
            message: format!(
                "exited with {status}; its last stderr lines: {}",
                tail.join(" | ")
            ),
        })
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Ends a producer we stopped reading early (max events, stop signal); a producer that
        // already exited was reaped by `finish`, and then kill fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs a command's stderr line by line and returns its last [`STDERR_TAIL`] lines. Lines end at
/// `\n` or `\r` (ffmpeg rewrites its progress line with `\r`) or after [`STDERR_LINE_BYTES`],
/// so a chatty command cannot grow a line without bound.
fn log_stderr(stderr: impl Read, program: &str) -> Vec<String> {
    let mut reader = BufReader::new(stderr);
    let mut tail = VecDeque::with_capacity(STDERR_TAIL);
    let mut line = Vec::new();
    let mut emit = |line: &mut Vec<u8>| {
        if !line.is_empty() {
            let text = String::from_utf8_lossy(line).into_owned();
            tracing::warn!(program = %program, line = %text, "video command stderr");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(text);
            line.clear();
        }
    };
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) if !buf.is_empty() => buf,
            _ => break,
        };
        let end = buf.iter().position(|b| matches!(b, b'\n' | b'\r'));
        let take = end.unwrap_or(buf.len()).min(STDERR_LINE_BYTES - line.len());
        line.extend_from_slice(&buf[..take]);
        let consumed = take + usize::from(end == Some(take));
        reader.consume(consumed);
        if end == Some(take) || line.len() == STDERR_LINE_BYTES {
            emit(&mut line);
        }
    }
    emit(&mut line);
    tail.into()
}

/// Which value fills a schema number column.
#[derive(Clone, Copy)]
enum Column {
    Frame,
    Time,
    /// Index into [`FrameFeatures::values`].
    Feature(usize),
    Missing,
}

pub struct VideoSource {
    config: VideoSourceConfig,
    input: Box<dyn Read + Send>,
    producer: Option<Producer>,
    builder: BatchBuilder,
    columns: Vec<Column>,
    strings: Vec<Option<&'static str>>,
    values: Vec<Option<f64>>,
    features: Vec<f64>,
    frame: Vec<u8>,
    /// The last whole frame read, for motion energy.
    previous: Option<Vec<u8>>,
    /// Frames consumed (whole or truncated).
    next: u64,
    ended: bool,
}

impl VideoSource {
    pub fn open(config: &VideoSourceConfig, cx: BuildContext) -> Result<VideoSource> {
        let schema = schema_of(&cx.builder);
        let names = FrameFeatures::names();
        let mut columns = Vec::new();
        let mut strings = Vec::new();
        for field in schema.fields() {
            match field.ty {
                FieldType::Number => columns.push(match field.name.as_str() {
                    "frame" => Column::Frame,
                    "time" => Column::Time,
                    name => names
                        .iter()
                        .position(|n| n == name)
                        .map_or(Column::Missing, Column::Feature),
                }),
                FieldType::String => strings.push(None),
            }
        }
        let len = frame_len(config.width, config.height)
            .ok_or_else(|| RuntimeError::Internal("a frame size passed validation".into()))?;
        let (input, producer) = open_input(config)?;
        let mut source = VideoSource {
            config: config.clone(),
            input,
            producer,
            builder: cx.builder,
            values: vec![None; columns.len()],
            columns,
            strings,
            features: Vec::with_capacity(names.len()),
            frame: vec![0; len],
            previous: None,
            next: 0,
            ended: false,
        };
        if let Some(resume) = cx.resume {
            source.skip(resume.records)?;
        }
        Ok(source)
    }

    /// Moves past the first `frames` frames (keeping the last as the previous frame), or, for a
    /// live input, only takes up the count.
    fn skip(&mut self, frames: u64) -> Result<()> {
        if !self.config.live {
            for i in 0..frames {
                let got = read_full(&mut self.input, &mut self.frame)
                    .map_err(|e| RuntimeError::io("reading", self.config.input_name(), e))?;
                if got < self.frame.len() {
                    return Err(RuntimeError::Input {
                        path: self.config.input_name().into(),
                        message: format!(
                            "ended after {i} whole frames, but the checkpoint was taken after \
                             {frames}: the input is not the one the checkpoint read"
                        ),
                    });
                }
            }
            if frames > 0 {
                self.previous = Some(self.frame.clone());
            }
        }
        self.next = frames;
        Ok(())
    }

    fn push(&mut self, parts: &mut ChunkParts, got: usize) {
        let seq = self.next;
        self.next += 1;
        let (width, height) = (self.config.width, self.config.height);
        let features = frame_features(width, height, &self.frame[..got], self.previous.as_deref())
            .map(|f| {
                self.features.clear();
                self.features.extend(f.values());
            });
        let result = features.and_then(|()| {
            for (slot, column) in self.values.iter_mut().zip(&self.columns) {
                *slot = match column {
                    Column::Frame => Some(seq as f64),
                    Column::Time => Some(seq as f64 / self.config.fps),
                    Column::Feature(j) => Some(self.features[*j]),
                    Column::Missing => None,
                };
            }
            self.builder.push_values(&self.values, &self.strings)
        });
        match result {
            Ok(()) => parts.seqs.push(seq),
            Err(err) => parts.dead.push(DeadLetter {
                seq,
                kind: err.kind.as_str(),
                field: err.field.clone(),
                reason: if got < self.frame.len() {
                    format!("truncated frame at the end of the input: {err}")
                } else {
                    err.to_string()
                },
                origin: format!("{}:frame {seq}", self.config.input_name()),
                raw: String::new(),
                coordinates: None,
            }),
        }
        // Any whole frame is the next one's previous frame, as when a resumed run reads past it.
        if got == self.frame.len() {
            match &mut self.previous {
                Some(previous) => previous.copy_from_slice(&self.frame),
                None => self.previous = Some(self.frame.clone()),
            }
        }
    }
}

fn open_input(config: &VideoSourceConfig) -> Result<(Box<dyn Read + Send>, Option<Producer>)> {
    match (&config.command, &config.path) {
        (Some(command), _) => {
            let (producer, stdout) = Producer::spawn(command)?;
            Ok((stdout, Some(producer)))
        }
        (None, Some(path)) if path.as_os_str() == "-" => Ok((Box::new(std::io::stdin()), None)),
        (None, Some(path)) => {
            let file =
                std::fs::File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
            Ok((Box::new(file), None))
        }
        (None, None) => Err(RuntimeError::Internal(
            "a video source without command or path passed validation".into(),
        )),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Source for VideoSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut parts = ChunkParts::new();
        while !self.ended && parts.records() < max {
            let got = read_full(&mut self.input, &mut self.frame)
                .map_err(|e| RuntimeError::io("reading", self.config.input_name(), e))?;
            if got > 0 {
                self.push(&mut parts, got);
            }
            if got < self.frame.len() {
                self.ended = true;
                if let Some(producer) = self.producer.take() {
                    producer.finish(&self.config.input_name())?;
                }
            }
        }
        if parts.records() == 0 {
            return Ok(None);
        }
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        Position {
            records: self.next,
            location: Location::Video,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array};
    use eddy_features::{Field, Schema};

    use super::*;

    fn builder(fields: &[&str]) -> BatchBuilder {
        let schema = Schema::new(fields.iter().map(|f| Field::number(*f)).collect()).unwrap();
        BatchBuilder::new(Arc::new(schema))
    }

    fn config(command: Option<Vec<&str>>, path: Option<PathBuf>) -> VideoSourceConfig {
        VideoSourceConfig {
            width: 2,
            height: 1,
            fps: 4.0,
            command: command.map(|c| c.into_iter().map(str::to_owned).collect()),
            path,
            live: false,
            batch_size: 8,
        }
    }

    fn open(config: &VideoSourceConfig, resume: Option<u64>) -> Result<VideoSource> {
        VideoSource::open(
            config,
            BuildContext::new(
                builder(&["frame", "time", "motion", "hist_r7"]),
                resume.map(|records| Position {
                    records,
                    location: Location::Video,
                }),
            ),
        )
    }

    fn column(chunk: &Chunk, name: &str) -> Vec<f64> {
        let i = chunk.batch.schema().index_of(name).unwrap();
        let array = chunk.batch.column(i);
        let array = array.as_any().downcast_ref::<Float64Array>().unwrap();
        (0..array.len()).map(|r| array.value(r)).collect()
    }

    /// Three 2x1 frames (black | white, white | white, black | black) and 4 bytes of a fourth.
    fn frames_file(dir: &std::path::Path) -> PathBuf {
        let mut bytes = Vec::new();
        bytes.extend([0, 0, 0, 255, 255, 255]);
        bytes.extend([255; 6]);
        bytes.extend([0; 6]);
        bytes.extend([9; 4]);
        let path = dir.join("frames.rgb");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn frames_become_records_and_a_truncated_frame_a_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(None, Some(frames_file(dir.path())));
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        let mut source = open(&config, None).unwrap();
        let chunk = source.next_chunk(8).unwrap().unwrap();
        assert_eq!(chunk.seqs, [0, 1, 2]);
        assert_eq!(column(&chunk, "frame"), [0.0, 1.0, 2.0]);
        assert_eq!(column(&chunk, "time"), [0.0, 0.25, 0.5]);
        // Half the pixels change by full luma into frame 1, all of them into frame 2.
        let motion = column(&chunk, "motion");
        assert_eq!(motion[0], 0.0);
        assert!((motion[1] - 0.5).abs() < 1e-12, "{motion:?}");
        assert!((motion[2] - 1.0).abs() < 1e-12, "{motion:?}");
        assert_eq!(column(&chunk, "hist_r7"), [0.5, 1.0, 0.0]);
        assert_eq!(chunk.dead.len(), 1);
        let dead = &chunk.dead[0];
        assert_eq!((dead.seq, dead.kind), (3, "malformed"));
        assert!(dead.reason.contains("truncated frame"), "{}", dead.reason);
        assert!(dead.reason.contains("4 bytes"), "{}", dead.reason);
        assert!(
            dead.origin.ends_with("frames.rgb:frame 3"),
            "{}",
            dead.origin
        );
        assert_eq!(chunk.end.records, 4);
        assert!(source.next_chunk(8).unwrap().is_none());
    }

    #[test]
    fn a_resumed_source_continues_with_the_next_frame_and_its_motion() {
        let dir = tempfile::tempdir().unwrap();
        let path = frames_file(dir.path());
        let config = config(Some(vec!["cat", path.to_str().unwrap()]), None);
        let mut unbroken = open(&config, None).unwrap();
        let all = unbroken.next_chunk(8).unwrap().unwrap();
        let mut resumed = open(&config, Some(2)).unwrap();
        let rest = resumed.next_chunk(8).unwrap().unwrap();
        assert_eq!(rest.seqs, [2]);
        assert_eq!(column(&rest, "motion"), column(&all, "motion")[2..]);
        assert_eq!(rest.dead.len(), 1);
        // A checkpoint past the end of the input means another input.
        let err = open(&config, Some(5)).err().unwrap();
        assert!(
            err.to_string().contains("ended after 3 whole frames"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_command_is_an_error_quoting_its_stderr() {
        let config = config(
            Some(vec!["sh", "-c", "echo no such camera >&2; exit 3"]),
            None,
        );
        let mut source = open(&config, None).unwrap();
        let err = source.next_chunk(8).unwrap_err().to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("no such camera"), "{err}");
    }

    #[test]
    fn stderr_lines_end_at_newlines_and_carriage_returns_and_are_bounded() {
        let long = "x".repeat(STDERR_LINE_BYTES + 10);
        let text = format!("a\nframe=1\rframe=2\r\n{long}\nlast");
        let tail = log_stderr(text.as_bytes(), "test");
        assert_eq!(tail.len(), STDERR_TAIL);
        // "a" has left the tail; the empty line between \r and \n is not one.
        assert_eq!(tail[..2], ["frame=1", "frame=2"]);
        assert_eq!(tail[2].len(), STDERR_LINE_BYTES);
        assert_eq!(tail[3..], ["x".repeat(10), "last".to_owned()]);
    }

    #[test]
    fn dropping_the_source_ends_an_endless_command() {
        let config = config(Some(vec!["yes"]), None);
        let mut source = open(&config, None).unwrap();
        assert_eq!(source.next_chunk(3).unwrap().unwrap().seqs, [0, 1, 2]);
        let pid = source.producer.as_ref().unwrap().child.id();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(source);
        // Killed and reaped: no process (not even a zombie) keeps the id.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn config_problems_are_named() {
        let mut bad = config(None, None);
        bad.width = 0;
        bad.fps = 0.0;
        let problems = bad.validate();
        for expected in ["source.width", "source.fps", "source.command, source.path"] {
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{expected}: {problems:?}"
            );
        }
        let both = config(Some(vec!["ffmpeg"]), Some("-".into()));
        assert_eq!(both.validate().len(), 1);
        let empty = config(Some(vec![]), None);
        assert_eq!(
            empty.validate(),
            ["source.command: needs a program as its first element"]
        );
    }
}
