//! The serving path without HTTP: one request's instances decoded, transformed by the training
//! feature code and predicted, for a 20-feature logistic model.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eddy_features::{FeatureBatch, FeatureConfig};
use eddy_ml::{LinearModel, Loss, Task};
use eddy_models::{LearnerParams, ModelHandle, ModelSpec, TrainedModel};

fn serving(c: &mut Criterion) {
    let fields: Vec<String> = (0..20).map(|j| format!("x{j}")).collect();
    let features = vec![FeatureConfig::StandardScaler {
        fields: fields.clone(),
    }];
    let spec =
        Arc::new(ModelSpec::new("m20", &features, Some("y"), Task::Binary, None).expect("spec"));
    let params =
        LearnerParams::Linear(LinearModel::params(Loss::Logistic).check().expect("params"));
    let mut model = TrainedModel::new(&spec, &params, None, 1000).expect("model");
    let mut builder = spec.batch_builder();
    for i in 0..2000 {
        let row: Vec<String> = (0..20)
            .map(|j| format!("\"x{j}\": {}", ((i * 31 + j * 7) % 17) as f64 / 4.0 - 2.0))
            .collect();
        builder
            .push_json(format!("{{{}, \"y\": {}}}", row.join(", "), i % 2).as_bytes())
            .expect("valid");
    }
    model
        .learn_batch(
            &spec,
            &builder.finish(),
            &mut FeatureBatch::new(),
            |_, _| {},
        )
        .expect("learns");
    let handle = ModelHandle::new(model.snapshot(Arc::clone(&spec)));
    let instance: Vec<String> = (0..20)
        .map(|j| format!("\"x{j}\": {:.2}", (j as f64 - 10.0) / 7.0))
        .collect();
    let instance = format!("{{{}}}", instance.join(", "));

    let mut group = c.benchmark_group("serving/predict_json_20f");
    for n in [1usize, 32] {
        let batch: Vec<&[u8]> = vec![instance.as_bytes(); n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &batch, |b, batch| {
            b.iter(|| std::hint::black_box(handle.load().predict_json(batch).expect("valid")));
        });
    }
    group.finish();
}

criterion_group!(benches, serving);
criterion_main!(benches);
