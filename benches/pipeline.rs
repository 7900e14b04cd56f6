//! End-to-end pipeline throughput: a JSON Lines file with 10 numeric features and a 0/1 target
//! through scaler → logistic regression → progressive metrics, checkpoints on, as `eddy run`
//! runs it (source thread, ordered trainer, checkpoint files).

use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eddy_runtime::{presets, RunOptions};

const EVENTS: u64 = 200_000;

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("stream.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
    presets::bench_stream()
        .write_jsonl(EVENTS, &mut out)
        .expect("write");
    out.flush().expect("flush");
    drop(out);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group("pipeline/jsonl_10f_scaler_logistic_checkpointed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    for batch in [256usize, 4096] {
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let checkpoints = dir.path().join("ckpt");
                let _ = std::fs::remove_dir_all(&checkpoints);
                let valid = presets::bench(&input, &checkpoints, batch)
                    .check()
                    .expect("valid");
                let summary = runtime
                    .block_on(eddy_runtime::run(valid, RunOptions::default()))
                    .expect("run");
                assert_eq!(std::hint::black_box(summary.learned), EVENTS);
            });
        });
    }
    group.finish();
}

/// The same stream as a Parquet file (one row group per 64k rows), replayed the same way:
/// issue #8's "Parquet, 10 numeric features" figure.
fn parquet(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("stream.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&jsonl).expect("create"));
    presets::bench_stream()
        .write_jsonl(ROWS, &mut out)
        .expect("write");
    out.flush().expect("flush");
    drop(out);
    let input = dir.path().join("stream.parquet");
    write_parquet(&jsonl, &input);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut group = c.benchmark_group("pipeline/parquet_10f_scaler_logistic_checkpointed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS));
    group.bench_with_input(BenchmarkId::from_parameter(4096), &4096, |b, &batch| {
        b.iter(|| {
            let checkpoints = dir.path().join("ckpt");
            let _ = std::fs::remove_dir_all(&checkpoints);
            let mut config = presets::bench(&input, &checkpoints, batch);
            if let eddy_runtime::source::SourceConfig::File(source) = &mut config.source {
                source.format = None;
            }
            let summary = runtime
                .block_on(eddy_runtime::run(
                    config.check().expect("valid"),
                    RunOptions::default(),
                ))
                .expect("run");
            assert_eq!(std::hint::black_box(summary.learned), ROWS);
        });
    });
    group.finish();
}

/// Converts the generated JSON Lines (numbers only) to Parquet, columns in first-record order.
fn write_parquet(jsonl: &std::path::Path, parquet_path: &std::path::Path) {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    let text = std::fs::read_to_string(jsonl).expect("read");
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let names: Vec<String> = rows[0].keys().cloned().collect();
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float64, false))
            .collect::<Vec<_>>(),
    ));
    let file = std::fs::File::create(parquet_path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).expect("writer");
    for block in rows.chunks(65_536) {
        let columns: Vec<ArrayRef> = names
            .iter()
            .map(|n| {
                let values: Float64Array = block.iter().map(|r| r[n.as_str()].as_f64()).collect();
                Arc::new(values) as ArrayRef
            })
            .collect();
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"))
            .expect("write");
    }
    writer.close().expect("close");
}

criterion_group!(benches, pipeline, parquet);
criterion_main!(benches);
