//! Per-event throughput of the hot paths: progressive SGD steps (dense, hashed sparse), hashed
//! FTRL-Proximal, the cost of a hashed model's width, streaming k-means, and metrics.
//!
//! Targets from the issue: dense logistic, 10 features, SGD >= 20M events/s
//! (`predict_learn_one/dense_logistic/10`); hashed logistic, 2^22 weights, 8 active, FTRL >= 5M
//! events/s (`predict_learn_one/ftrl_logistic_2^22/8`); streaming k-means, k = 8, 16 dims >= 10M
//! points/s (`learn_one/streaming_kmeans/k8_d16`).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use eddy_ml::{
    FeatureVec, Learner, LinearModel, Loss, Optimizer, ProgressiveMetrics, SgdValidParams,
    StreamingKMeans, Task,
};
use ndarray::ArrayView1;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Events per measured iteration: enough to amortise criterion's per-iteration overhead, few enough
/// that the inputs stay in L1/L2 and the bench measures the learner rather than memory streaming.
const EVENTS: usize = 1024;

fn rng() -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(0x5eed)
}

/// Uniform(-1, 1) features and a label that depends on the first one, so the model has work to do.
fn dense_events(d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut r = rng();
    let xs: Vec<f64> = (0..EVENTS * d).map(|_| r.gen_range(-1.0..1.0)).collect();
    let ys = xs
        .chunks_exact(d)
        .map(|x| f64::from(u8::from(x[0] > 0.0)))
        .collect();
    (xs, ys)
}

fn dense_logistic(c: &mut Criterion) {
    let mut group = c.benchmark_group("predict_learn_one/dense_logistic");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for d in [10usize, 100] {
        let (xs, ys) = dense_events(d);
        let params = LinearModel::params(Loss::Logistic)
            .check()
            .expect("defaults are valid");
        let mut model = params.build(d);
        group.bench_with_input(BenchmarkId::from_parameter(d), &d, |b, &d| {
            b.iter(|| {
                let mut sum = 0.0;
                for (x, &y) in xs.chunks_exact(d).zip(&ys) {
                    let x = FeatureVec::dense(ArrayView1::from(black_box(x)));
                    sum += model
                        .predict_learn_one(&x, black_box(y), 1.0)
                        .expect("valid event");
                }
                black_box(sum)
            });
        });
    }
    group.finish();
}

/// `EVENTS` hashed events with `active` entries each, indices uniform in `0..dim`, and random labels.
fn sparse_events(dim: usize, active: usize) -> (Vec<u32>, Vec<f64>, Vec<f64>) {
    sparse_events_n(dim, active, EVENTS)
}

/// [`sparse_events`] with `n` events.
fn sparse_events_n(dim: usize, active: usize, n: usize) -> (Vec<u32>, Vec<f64>, Vec<f64>) {
    let mut r = rng();
    let idx: Vec<u32> = (0..n * active)
        .map(|_| r.gen_range(0..dim as u32))
        .collect();
    let val: Vec<f64> = (0..n * active).map(|_| r.gen_range(-1.0..1.0)).collect();
    let ys: Vec<f64> = (0..n)
        .map(|_| f64::from(u8::from(r.gen::<bool>())))
        .collect();
    (idx, val, ys)
}

/// The sparse SGD setup of the targets: default logistic SGD with a small L2.
fn sgd_params() -> SgdValidParams {
    LinearModel::params(Loss::Logistic)
        .l2(1e-6)
        .check()
        .expect("valid params")
}

/// The FTRL-Proximal setup of the targets.
fn ftrl_params() -> SgdValidParams {
    LinearModel::params(Loss::Logistic)
        .optimizer(Optimizer::ftrl())
        .l1(1e-4)
        .l2(1e-4)
        .check()
        .expect("valid params")
}

/// Measures progressive steps of a `dim`-wide model over [`sparse_events`] with `active` entries.
fn bench_sparse(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    params: &SgdValidParams,
    dim: usize,
    active: usize,
) {
    let (idx, val, ys) = sparse_events(dim, active);
    let mut model = params.build(dim);
    group.bench_with_input(id, &active, |b, &k| {
        b.iter(|| {
            let mut sum = 0.0;
            for ((i, v), &y) in idx.chunks_exact(k).zip(val.chunks_exact(k)).zip(&ys) {
                let x = FeatureVec::sparse(black_box(i), black_box(v));
                sum += model
                    .predict_learn_one(&x, black_box(y), 1.0)
                    .expect("valid event");
            }
            black_box(sum)
        });
    });
}

fn sparse_logistic(c: &mut Criterion) {
    let mut group = c.benchmark_group("predict_learn_one/sparse_logistic_2^22");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for active in [8usize, 32] {
        let id = BenchmarkId::from_parameter(active);
        bench_sparse(&mut group, id, &sgd_params(), 1 << 22, active);
    }
    group.finish();
}

fn ftrl_logistic(c: &mut Criterion) {
    let mut group = c.benchmark_group("predict_learn_one/ftrl_logistic_2^22");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for active in [8usize, 32] {
        let id = BenchmarkId::from_parameter(active);
        bench_sparse(&mut group, id, &ftrl_params(), 1 << 22, active);
    }
    group.finish();
}

/// Target: "a 2^22-wide hashed model learns at the same speed as a 20-wide one with the same
/// number of active features". Both widths see 8 active entries per event (indices within the
/// width), so the ratio of `sgd/20` to `sgd/2^22` (and `ftrl/...`) is the cost of the width alone:
/// memory traffic on the big table, since the arithmetic per event is the same.
fn hashed_width(c: &mut Criterion) {
    let mut group = c.benchmark_group("predict_learn_one/hashed_width_8_active");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, params) in [("sgd", sgd_params()), ("ftrl", ftrl_params())] {
        for (width, dim) in [("20", 20usize), ("2^22", 1 << 22)] {
            let id = BenchmarkId::new(name, width);
            bench_sparse(&mut group, id, &params, dim, 8);
        }
    }
    group.finish();
}

/// Rows per batch in [`hashed_width_batch`]: a micro-batch as the pipeline hands it to a learner.
const BATCH: usize = 4096;

/// [`hashed_width`] with the events handed over in batches of [`BATCH`] rows through
/// [`Learner::predict_learn_each`], as the pipeline learns them. The batch lets the learner
/// prefetch the parameters of upcoming events, so the misses into the 2^22-wide table overlap;
/// `sgd/20` against `sgd/2^22` (and `ftrl/...`) is again the cost of the width.
fn hashed_width_batch(c: &mut Criterion) {
    let widths = [("20", 20usize), ("2^22", 1 << 22)];
    hashed_batches(
        c,
        "predict_learn_many/hashed_width_8_active",
        &widths,
        BATCH,
    );
}

/// Distinct events in [`hashed_out_of_cache`]: 2^21 random coordinates, whose cache lines (128
/// MiB of FTRL state, 32 MiB of SGD weights) do not fit the 32 MiB L3.
const OUT_OF_CACHE: usize = 1 << 18;

/// [`hashed_width_batch`] at 2^22 over [`OUT_OF_CACHE`] distinct events instead of one batch
/// repeated: the 4096 events of a batch touch 32k coordinates, about 2 MiB, which stay cached
/// between iterations, while here nearly every coordinate comes from memory, as in a model whose
/// features have millions of distinct values.
fn hashed_out_of_cache(c: &mut Criterion) {
    let name = "predict_learn_many/hashed_2^22_out_of_cache";
    hashed_batches(c, name, &[("2^22", 1 << 22)], OUT_OF_CACHE);
}

fn hashed_batches(c: &mut Criterion, group: &str, widths: &[(&str, usize)], n: usize) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(n as u64));
    for (name, params) in [("sgd", sgd_params()), ("ftrl", ftrl_params())] {
        for &(width, dim) in widths {
            let (idx, val, ys) = sparse_events_n(dim, 8, n);
            let xs: Vec<FeatureVec<'_>> = idx
                .chunks_exact(8)
                .zip(val.chunks_exact(8))
                .map(|(i, v)| FeatureVec::sparse(i, v))
                .collect();
            let mut model = params.build(dim);
            group.bench_function(BenchmarkId::new(name, width), |b| {
                b.iter(|| {
                    let mut sum = 0.0;
                    model
                        .predict_learn_each(black_box(&xs), black_box(&ys), 1.0, |_, p| {
                            sum += p.expect("valid event");
                        })
                        .expect("as many targets as rows");
                    black_box(sum)
                });
            });
        }
    }
    group.finish();
}

fn streaming_kmeans(c: &mut Criterion) {
    let mut group = c.benchmark_group("learn_one/streaming_kmeans");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (k, d) in [(8usize, 16usize), (32, 16)] {
        let mut r = rng();
        // points around k well-separated centres, so assignments are realistic
        let centres: Vec<f64> = (0..k * d).map(|_| r.gen_range(-10.0..10.0)).collect();
        let xs: Vec<f64> = (0..EVENTS)
            .flat_map(|_| {
                let c = r.gen_range(0..k);
                let row: Vec<f64> = centres[c * d..(c + 1) * d]
                    .iter()
                    .map(|m| m + r.gen_range(-1.0..1.0))
                    .collect();
                row
            })
            .collect();
        let mut model = StreamingKMeans::params(k)
            .half_life(10_000.0, eddy_ml::HalfLifeUnit::Events)
            .check()
            .expect("valid params")
            .build(d);
        for x in xs.chunks_exact(d) {
            model
                .learn_one(&FeatureVec::dense(ArrayView1::from(x)))
                .expect("valid point");
        }
        let id = BenchmarkId::from_parameter(format!("k{k}_d{d}"));
        group.bench_with_input(id, &d, |b, &d| {
            b.iter(|| {
                let mut sum = 0.0;
                for x in xs.chunks_exact(d) {
                    let x = FeatureVec::dense(ArrayView1::from(black_box(x)));
                    sum += model.learn_one(&x).expect("valid point").1;
                }
                black_box(sum)
            });
        });
    }
    group.finish();
}

fn metrics_binary(c: &mut Criterion) {
    let mut group = c.benchmark_group("progressive_metrics/update_binary");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let mut r = rng();
    let events: Vec<(f64, f64)> = (0..EVENTS)
        .map(|_| {
            let p: f64 = r.gen();
            (f64::from(u8::from(r.gen::<f64>() < p)), p)
        })
        .collect();
    for window in [1_000usize, 100_000] {
        let mut metrics = ProgressiveMetrics::new(Task::Binary, window);
        group.bench_with_input(BenchmarkId::new("window", window), &window, |b, _| {
            b.iter(|| {
                for &(y, p) in &events {
                    metrics.update(black_box(y), black_box(p));
                }
            });
            black_box(metrics.count());
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    dense_logistic,
    sparse_logistic,
    ftrl_logistic,
    hashed_width,
    hashed_width_batch,
    hashed_out_of_cache,
    streaming_kmeans,
    metrics_binary
);
criterion_main!(benches);
