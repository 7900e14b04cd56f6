//! The trainer stage alone, as `eddy replay` runs it on its single ordered thread: batches of a
//! CTR-like stream (five hashed string fields, three scaled numbers) with their hashed features
//! prepared ahead (the source thread's share), then scaled, predicted, learned with FTRL and
//! scored progressively, inline or (as a pipeline does for a binary model) on another thread.
//! End-to-end replay cannot run faster than this stage.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eddy_features::{FeatureBatch, FeatureConfig, Prepared};
use eddy_ml::{LinearModel, Loss, Optimizer, Task};
use eddy_models::{LearnerParams, ModelSpec, RowOutcome, TrainedModel};

const BATCH: usize = 4096;
const BATCHES: usize = 16;

/// A seeded xorshift, so the bench needs no data files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Zipf-like id below `n`: rank r with probability about 1 / ((r + 1) ln n).
    fn zipf(&mut self, n: u64) -> u64 {
        ((n as f64).powf(self.unit()) as u64)
            .saturating_sub(1)
            .min(n - 1)
    }
}

fn training(c: &mut Criterion) {
    let strings = ["user", "site", "ad", "device", "country"].map(str::to_owned);
    let numbers = ["price", "position", "hour"].map(str::to_owned);
    let features = vec![
        FeatureConfig::StandardScaler {
            fields: numbers.to_vec(),
        },
        FeatureConfig::Hash {
            fields: strings.to_vec(),
            bits: 18,
            seed: 0,
        },
    ];
    let spec =
        Arc::new(ModelSpec::new("ctr", &features, Some("y"), Task::Binary, None).expect("spec"));
    let params = LearnerParams::Linear(
        LinearModel::params(Loss::Logistic)
            .optimizer(Optimizer::Ftrl {
                alpha: 0.5,
                beta: 1.0,
            })
            .l1(1e-4)
            .l2(1e-4)
            .check()
            .expect("params"),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let cardinality = [10_000u64, 2_000, 5_000, 8, 50];
    let batches: Vec<_> = (0..BATCHES)
        .map(|_| {
            let mut builder = spec.batch_builder();
            for _ in 0..BATCH {
                let ids: Vec<u64> = cardinality.iter().map(|&n| rng.zipf(n)).collect();
                // clicks more likely on every third ad and on the ten most popular sites
                let rate = 0.05
                    + if ids[2].is_multiple_of(3) { 0.2 } else { 0.0 }
                    + if ids[1] < 10 { 0.1 } else { 0.0 };
                let click = u8::from(rng.unit() < rate);
                let line = format!(
                    r#"{{"user": "u{}", "site": "s{}", "ad": "a{}", "device": "d{}", "country": "c{}", "price": {:.3}, "position": {}, "hour": {}, "y": {click}}}"#,
                    ids[0],
                    ids[1],
                    ids[2],
                    ids[3],
                    ids[4],
                    rng.unit() * 10.0,
                    rng.next() % 5,
                    rng.next() % 24,
                );
                builder.push_json(line.as_bytes()).expect("valid");
            }
            builder.finish()
        })
        .collect();
    let mut model = TrainedModel::new(&spec, &params, None, 1000).expect("model");
    let preparer = model.preparer().expect("hashing runs ahead");
    let prepared: Vec<Prepared> = batches
        .iter()
        .map(|b| preparer.prepare(b).expect("prepares"))
        .collect();
    let mut scratch = FeatureBatch::new();

    let mut group = c.benchmark_group("training/ctr_5_hashed_3_scaled_ftrl");
    group.sample_size(20);
    group.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    // Scored inline, and scored elsewhere as a pipeline does for a binary model (the pairs left
    // for the scoring thread are dropped here: its work is on the other core).
    let mut deferred = model.clone();
    assert!(deferred.defer_scoring());
    for (name, model) in [
        ("prepared", &mut model),
        ("prepared_scored_elsewhere", &mut deferred),
    ] {
        group.bench_function(name, |b| {
            // the prepared rows move into the batch as the trainer's do, so each pass learns
            // copies made before its clock starts
            b.iter_batched(
                || prepared.clone(),
                |prepared| {
                    let mut learned = 0u64;
                    for (batch, mut prepared) in batches.iter().zip(prepared) {
                        model
                            .learn_batch_prepared(
                                &spec,
                                batch,
                                Some(&mut prepared),
                                &mut scratch,
                                false,
                                // what the trainer does with a row when no sink wants it
                                |_, o| {
                                    learned += u64::from(matches!(o, RowOutcome::Learned { .. }))
                                },
                            )
                            .expect("learns");
                        if let Some(scored) = model.scored.as_mut() {
                            std::hint::black_box(&scored);
                            scored.clear();
                        }
                    }
                    learned
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, training);
criterion_main!(benches);
