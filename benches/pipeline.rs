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

criterion_group!(benches, pipeline);
criterion_main!(benches);
