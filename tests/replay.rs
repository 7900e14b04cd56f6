//! `eddy replay`: recorded files (JSON Lines, Parquet, Arrow IPC) through the same pipeline as
//! `eddy run`, bit-identical to streaming them, continued live with `--resume-from`.

mod common;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::{eddy, latest_checkpoint, logistic_file, run_ok, summary};

const EVENTS: u64 = 12_000;

/// The JSON Lines stream as one Arrow batch: x0..x9 and y (as integers, so reading casts them).
fn as_batch(jsonl: &Path, nan_at: Option<usize>) -> anyhow::Result<RecordBatch> {
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(jsonl)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for j in 0..10 {
        let name = format!("x{j}");
        let values: Vec<f64> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if nan_at == Some(i) && j == 0 {
                    f64::NAN
                } else {
                    r[&name].as_f64().unwrap_or(0.0)
                }
            })
            .collect();
        fields.push(Field::new(&name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from(values)));
    }
    fields.push(Field::new("cat", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(
        rows.iter()
            .map(|r| r["cat"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>(),
    )));
    fields.push(Field::new("y", DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from(
        rows.iter()
            .map(|r| r["y"].as_f64().unwrap_or(0.0) as i64)
            .collect::<Vec<_>>(),
    )));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn write_parquet(batch: &RecordBatch, path: &Path) -> anyhow::Result<()> {
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), None)?;
    writer.write(batch)?;
    writer.close()?;
    Ok(())
}

fn write_ipc(batch: &RecordBatch, path: &Path) -> anyhow::Result<()> {
    let mut writer =
        arrow_ipc::writer::FileWriter::try_new(std::fs::File::create(path)?, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

fn replay(input: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = dir.join("summary.json");
    run_ok(
        eddy()
            .args(["replay", "--quiet", "--input"])
            .arg(input)
            .args(["--target", "y", "--batch-size", "500"])
            .arg("--checkpoint-dir")
            .arg(dir.join("ckpt"))
            .arg("--summary-json")
            .arg(&out)
            .args(extra),
    )?;
    summary(&out)
}

#[test]
fn every_format_replays_bit_identically_to_streaming_it() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let jsonl = root.path().join("s.jsonl");
    logistic_file(&jsonl, EVENTS, 17)?;
    let batch = as_batch(&jsonl, None)?;
    let parquet = root.path().join("s.parquet");
    write_parquet(&batch, &parquet)?;
    let ipc = root.path().join("s.arrow");
    write_ipc(&batch, &ipc)?;

    // Streamed through `eddy run`.
    let streamed_dir = root.path().join("run");
    let out = streamed_dir.join("summary.json");
    std::fs::create_dir_all(&streamed_dir)?;
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&jsonl)
            .args(["--target", "y"])
            .arg("--checkpoint-dir")
            .arg(streamed_dir.join("ckpt"))
            .arg("--summary-json")
            .arg(&out),
    )?;
    let streamed = summary(&out)?;
    let streamed_model = latest_checkpoint(&streamed_dir.join("ckpt"))?.model;

    for (name, input) in [("jsonl", &jsonl), ("parquet", &parquet), ("ipc", &ipc)] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let replayed = replay(input, &dir, &[])?;
        assert_eq!(replayed["events"], EVENTS, "{name}");
        assert_eq!(replayed["metrics"], streamed["metrics"], "{name}");
        assert_eq!(
            latest_checkpoint(&dir.join("ckpt"))?.model,
            streamed_model,
            "{name}: model state differs"
        );
    }
    Ok(())
}

#[test]
fn history_then_live_with_resume_from_equals_one_run() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let whole = root.path().join("whole.jsonl");
    logistic_file(&whole, EVENTS, 23)?;
    let text = std::fs::read_to_string(&whole)?;
    let lines: Vec<&str> = text.lines().collect();
    let (history, live) = lines.split_at(7_000);
    let history_file = root.path().join("history.parquet");
    let history_jsonl = root.path().join("history.jsonl");
    std::fs::write(&history_jsonl, history.join("\n") + "\n")?;
    write_parquet(&as_batch(&history_jsonl, None)?, &history_file)?;
    let live_file = root.path().join("live.jsonl");
    std::fs::write(&live_file, live.join("\n") + "\n")?;

    let one = root.path().join("one");
    std::fs::create_dir_all(&one)?;
    let single = replay(&whole, &one, &[])?;

    let hist = root.path().join("hist");
    std::fs::create_dir_all(&hist)?;
    replay(
        &history_file,
        &hist,
        &[
            "--curve",
            &root.path().join("curve.csv").display().to_string(),
            "--curve-every",
            "1000",
        ],
    )?;
    let out = root.path().join("live-summary.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&live_file)
            .args(["--target", "y"])
            .arg("--resume-from")
            .arg(hist.join("ckpt"))
            .arg("--checkpoint-dir")
            .arg(root.path().join("live-ckpt"))
            .arg("--summary-json")
            .arg(&out),
    )?;
    let continued = summary(&out)?;
    assert_eq!(continued["resumed_from"], 7_000);
    assert_eq!(continued["events"], EVENTS);
    assert_eq!(continued["metrics"], single["metrics"]);
    assert_eq!(
        latest_checkpoint(&root.path().join("live-ckpt"))?.model,
        latest_checkpoint(&one.join("ckpt"))?.model
    );

    let curve = std::fs::read_to_string(root.path().join("curve.csv"))?;
    assert_eq!(curve.lines().count(), 1 + 7, "{curve}");
    assert!(
        curve.starts_with("events,metric,stream,window\n1000,logloss,"),
        "{curve}"
    );
    let svg = std::fs::read_to_string(root.path().join("curve.svg"))?;
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );
    Ok(())
}

#[test]
fn a_nan_in_a_parquet_file_is_dead_lettered() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let jsonl = root.path().join("s.jsonl");
    logistic_file(&jsonl, 2_000, 5)?;
    let parquet = root.path().join("s.parquet");
    write_parquet(&as_batch(&jsonl, Some(1234))?, &parquet)?;
    let dead = root.path().join("dead.jsonl");
    let s = replay(
        &parquet,
        root.path(),
        &["--dead-letters", &dead.display().to_string()],
    )?;
    assert_eq!(s["dead_lettered"], 1);
    assert_eq!(s["learned"], 1_999);
    let letter: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&dead)?.trim())?;
    assert_eq!(letter["kind"], "not_finite");
    assert_eq!(letter["field"], "x0");
    // `cat` is read dictionary-encoded (only a hasher reads it); the letter still shows its value
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&jsonl)?
            .lines()
            .nth(1234)
            .context("row")?,
    )?;
    let raw: serde_json::Value = serde_json::from_str(letter["raw"].as_str().context("raw")?)?;
    assert_eq!(raw["cat"], line["cat"], "{letter}");
    assert!(
        letter["origin"]
            .as_str()
            .unwrap_or("")
            .ends_with("s.parquet:row 1234"),
        "{letter}"
    );
    Ok(())
}

#[test]
fn epochs_equal_replaying_the_input_again_and_resume_mid_epoch() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let jsonl = root.path().join("s.jsonl");
    logistic_file(&jsonl, EVENTS, 23)?;
    // Two epochs are the file twice over, in order: the same as replaying its two copies.
    let twice = root.path().join("twice");
    std::fs::create_dir_all(&twice)?;
    std::fs::copy(&jsonl, twice.join("a.jsonl"))?;
    std::fs::copy(&jsonl, twice.join("b.jsonl"))?;
    let copies = root.path().join("copies");
    let expected = replay(&twice, &copies, &[])?;

    let epochs = root.path().join("epochs");
    let got = replay(&jsonl, &epochs, &["--epochs", "2"])?;
    assert_eq!(got["learned"].as_u64(), Some(2 * EVENTS), "{got}");
    assert_eq!(got["metrics"], expected["metrics"]);
    let model = latest_checkpoint(&epochs.join("ckpt"))?.model;
    assert_eq!(model, latest_checkpoint(&copies.join("ckpt"))?.model);

    // Stopped inside the second epoch and run again: it resumes there.
    let resumed = root.path().join("resumed");
    let stop = (EVENTS + EVENTS / 3).to_string();
    replay(&jsonl, &resumed, &["--epochs", "2", "--max-events", &stop])?;
    let last = replay(&jsonl, &resumed, &["--epochs", "2"])?;
    assert!(last["resumed_from"].as_u64() > Some(EVENTS), "{last}");
    assert_eq!(latest_checkpoint(&resumed.join("ckpt"))?.model, model);
    Ok(())
}

#[test]
fn a_shuffled_replay_is_seeded_learns_every_event_and_refuses_to_resume() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let jsonl = root.path().join("s.jsonl");
    logistic_file(&jsonl, EVENTS, 29)?;
    let in_order = replay(&jsonl, &root.path().join("plain"), &[])?;
    let shuffle = ["--shuffle-seed", "5", "--shuffle-buffer", "700"];
    let a = replay(&jsonl, &root.path().join("a"), &shuffle)?;
    let b = replay(&jsonl, &root.path().join("b"), &shuffle)?;
    let c = replay(&jsonl, &root.path().join("c"), &["--shuffle-seed", "6"])?;
    assert_eq!(a["learned"].as_u64(), Some(EVENTS), "{a}");
    assert_eq!(a["metrics"], b["metrics"], "the same seed, the same run");
    assert_ne!(
        a["metrics"], in_order["metrics"],
        "shuffled, so not the stream's order"
    );
    assert_ne!(a["metrics"], c["metrics"], "another seed, another order");
    let model = |dir: &str| latest_checkpoint(&root.path().join(dir).join("ckpt")).map(|c| c.model);
    assert_eq!(model("a")?, model("b")?);

    // Its checkpoint carries a model, not a place in the input.
    let again = eddy()
        .args(["replay", "--quiet", "--input"])
        .arg(&jsonl)
        .args(["--target", "y", "--shuffle-seed", "5", "--checkpoint-dir"])
        .arg(root.path().join("a").join("ckpt"))
        .output()?;
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{stderr}");
    assert!(stderr.contains("cannot resume"), "{stderr}");
    Ok(())
}

#[test]
fn files_merged_by_event_time_equal_streaming_the_sorted_events_and_resume() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let source = root.path().join("source.jsonl");
    logistic_file(&source, EVENTS, 31)?;
    // The stream with an event time, dealt out to three files (two JSON Lines, one CSV), each
    // sorted by that time, as per-partition exports would be.
    let events: Vec<serde_json::Map<String, serde_json::Value>> = std::fs::read_to_string(&source)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let whole = root.path().join("whole.jsonl");
    let parts = root.path().join("parts");
    std::fs::create_dir_all(&parts)?;
    let mut sorted = String::new();
    let mut jsonl = [String::new(), String::new()];
    let columns: Vec<String> = (0..10)
        .map(|j| format!("x{j}"))
        .chain(["cat", "ts", "y"].map(str::to_owned))
        .collect();
    let mut csv = columns.join(",") + "\n";
    for (i, event) in events.into_iter().enumerate() {
        let mut event = event;
        event.insert("ts".into(), (1_700_000_000_000u64 + 10 * i as u64).into());
        let line = serde_json::Value::Object(event.clone()).to_string();
        sorted.push_str(&line);
        sorted.push('\n');
        match (i * 7919 + i / 100) % 3 {
            2 => {
                let row: Vec<String> = columns
                    .iter()
                    .map(|c| match &event[c] {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                csv.push_str(&(row.join(",") + "\n"));
            }
            k => {
                jsonl[k].push_str(&line);
                jsonl[k].push('\n');
            }
        }
    }
    std::fs::write(&whole, sorted)?;
    std::fs::write(parts.join("a.jsonl"), &jsonl[0])?;
    std::fs::write(parts.join("b.jsonl"), &jsonl[1])?;
    std::fs::write(parts.join("c.csv"), csv)?;

    let streamed = replay(&whole, &root.path().join("streamed"), &[])?;
    let merge = ["--merge-by", "ts"];
    let merged = replay(&parts, &root.path().join("merged"), &merge)?;
    assert_eq!(merged["events"], EVENTS, "{merged}");
    assert_eq!(merged["metrics"], streamed["metrics"]);
    let model = |dir: &str| latest_checkpoint(&root.path().join(dir).join("ckpt")).map(|c| c.model);
    assert_eq!(model("merged")?, model("streamed")?, "model state differs");
    // One file after another is another order, and another model.
    let in_file_order = replay(&parts, &root.path().join("file_order"), &[])?;
    assert_ne!(in_file_order["metrics"], streamed["metrics"]);

    // Stopped part-way and run again, the merge continues where it stopped.
    let resumed = root.path().join("resumed");
    let stop = (EVENTS / 3 + 77).to_string();
    replay(
        &parts,
        &resumed,
        &["--merge-by", "ts", "--max-events", &stop],
    )?;
    let last = replay(&parts, &resumed, &merge)?;
    assert!(last["resumed_from"].as_u64() > Some(0), "{last}");
    assert_eq!(last["metrics"], streamed["metrics"]);
    assert_eq!(model("resumed")?, model("streamed")?);
    Ok(())
}

#[test]
fn progress_is_quiet_off_a_terminal_and_shows_bytes_when_asked() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let jsonl = root.path().join("s.jsonl");
    logistic_file(&jsonl, EVENTS, 37)?;
    let size = std::fs::metadata(&jsonl)?.len();
    let base = || {
        let mut cmd = eddy();
        cmd.args(["replay", "--input"])
            .arg(&jsonl)
            .args(["--target", "y", "--progress-ms", "1"]);
        cmd
    };
    // Stderr is a pipe here, not a terminal: no progress unless asked for.
    let quiet = run_ok(&mut base())?;
    assert!(!quiet.contains("ETA"), "{quiet}");
    assert!(quiet.contains("eddy: done."), "{quiet}");
    let lines = run_ok(base().arg("--progress"))?;
    let last = lines
        .lines()
        .rfind(|l| l.contains("ETA"))
        .context("a progress line")?
        .to_owned();
    // The last report has read the whole file: read and total agree, and are its size.
    let shown = last
        .split("100% ")
        .nth(1)
        .and_then(|rest| rest.split(" ETA").next())
        .context("a full bar")?;
    let (read, total) = shown.split_once('/').context("read/total")?;
    assert_eq!(read, total, "{last}");
    let megabytes: f64 = total.trim_end_matches(" MB").parse()?;
    assert!(
        (megabytes - size as f64 / 1e6).abs() < 0.051,
        "{last}: {size} bytes"
    );
    assert!(last.contains(&format!("{EVENTS} events")), "{last}");
    Ok(())
}
