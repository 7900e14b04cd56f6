//! Throughput of JSON decoding, standard scaling and hashing, per micro-batch size.

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, RecordBatch, StringArray};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use eddy_features::{
    BatchBuilder, FeatureBatch, FeatureConfig, FeatureSet, Field, Preparer, Schema,
};

/// Rows per measured iteration; every batch size processes all of them.
const ROWS: usize = 4096;
const BATCH_SIZES: [usize; 4] = [1, 64, 1024, 4096];

/// Seeded splitmix64, so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn numeric_schema(n: usize, target: bool) -> Schema {
    let mut fields: Vec<Field> = (0..n).map(|i| Field::number(format!("x{i}"))).collect();
    if target {
        fields.push(Field::number("y"));
    }
    Schema::new(fields).expect("distinct names")
}

/// JSON lines with 10 numeric fields and a 0/1 target, about 170 bytes each.
fn json_lines(rng: &mut Rng) -> Vec<String> {
    (0..ROWS)
        .map(|_| {
            let mut line = String::from("{");
            for i in 0..10 {
                line.push_str(&format!("\"x{i}\":{:.6},", (rng.unit() - 0.5) * 20.0));
            }
            line.push_str(&format!("\"y\":{}}}", rng.next() % 2));
            line
        })
        .collect()
}

/// `lines` decoded into batches of `size` rows.
fn batches(schema: &Arc<Schema>, lines: &[String], size: usize) -> Vec<RecordBatch> {
    let mut decoder = BatchBuilder::new(schema.clone());
    lines
        .chunks(size)
        .map(|chunk| {
            for line in chunk {
                decoder
                    .push_json(line.as_bytes())
                    .expect("generated lines are valid");
            }
            decoder.finish()
        })
        .collect()
}

fn decode_json(c: &mut Criterion) {
    let schema = Arc::new(numeric_schema(10, true));
    let lines = json_lines(&mut Rng(1));
    let bytes: usize = lines.iter().map(String::len).sum();
    let mut group = c.benchmark_group("decode_json");
    group.throughput(Throughput::Elements(ROWS as u64));
    println!("decode_json: {} bytes per line on average", bytes / ROWS);
    for size in BATCH_SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            let mut decoder = BatchBuilder::new(schema.clone());
            b.iter(|| {
                for chunk in lines.chunks(size) {
                    for line in chunk {
                        decoder
                            .push_json(black_box(line.as_bytes()))
                            .expect("valid");
                    }
                    black_box(decoder.finish());
                }
            })
        });
    }
    group.finish();
}

fn learn_all(set: &mut FeatureSet, batches: &[RecordBatch], out: &mut FeatureBatch) {
    for batch in batches {
        set.transform(black_box(batch), true, out)
            .expect("batch has the set's schema");
        black_box(out.len());
    }
}

fn standard_scaler(c: &mut Criterion) {
    let schema = Arc::new(numeric_schema(10, false));
    let mut rng = Rng(2);
    let lines: Vec<String> = (0..ROWS)
        .map(|_| {
            let values: Vec<String> = (0..10)
                .map(|i| format!("\"x{i}\":{}", rng.unit() * 100.0 - 50.0))
                .collect();
            format!("{{{}}}", values.join(","))
        })
        .collect();
    let configs = [FeatureConfig::StandardScaler {
        fields: (0..10).map(|i| format!("x{i}")).collect(),
    }];
    let mut group = c.benchmark_group("standard_scaler_10");
    group.throughput(Throughput::Elements((ROWS * 10) as u64));
    for size in BATCH_SIZES {
        let batches = batches(&schema, &lines, size);
        let mut set = FeatureSet::new(&configs, &schema).expect("valid config");
        let mut out = FeatureBatch::new();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| learn_all(&mut set, &batches, &mut out))
        });
    }
    group.finish();
}

fn hash_and_scale(c: &mut Criterion) {
    let configs = [
        FeatureConfig::Hash {
            fields: (0..5).map(|i| format!("s{i}")).collect(),
            bits: 18,
            seed: 0,
        },
        FeatureConfig::StandardScaler {
            fields: (0..3).map(|i| format!("x{i}")).collect(),
        },
    ];
    let schema = Arc::new(
        Schema::merge(configs.iter().flat_map(FeatureConfig::fields)).expect("no conflicts"),
    );
    let mut rng = Rng(3);
    let lines: Vec<String> = (0..ROWS)
        .map(|_| {
            let mut parts: Vec<String> = (0..5)
                .map(|i| format!("\"s{i}\":\"v{}-{}\"", i, rng.next() % 1000))
                .collect();
            parts.extend((0..3).map(|i| format!("\"x{i}\":{}", rng.unit() * 10.0)));
            format!("{{{}}}", parts.join(","))
        })
        .collect();
    let mut group = c.benchmark_group("hash_5_scale_3");
    group.throughput(Throughput::Elements(ROWS as u64));
    for size in BATCH_SIZES {
        let batches = batches(&schema, &lines, size);
        let mut set = FeatureSet::new(&configs, &schema).expect("valid config");
        let mut out = FeatureBatch::new();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| learn_all(&mut set, &batches, &mut out))
        });
    }
    group.finish();
}

/// What the source thread does ahead of the learner for five hashed string fields: a
/// [`Preparer`] over plain string columns (each row's strings hashed), and over the same rows
/// as dictionary-encoded columns sharing one dictionary per field, as every batch of a Parquet
/// column chunk does (each dictionary value hashed once, then keys looked up).
fn prepare_hash(c: &mut Criterion) {
    let fields: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
    let configs = [FeatureConfig::Hash {
        fields: fields.clone(),
        bits: 18,
        seed: 0,
    }];
    let schema = Arc::new(
        Schema::merge(configs.iter().flat_map(FeatureConfig::fields)).expect("no conflicts"),
    );
    let set = FeatureSet::new(&configs, &schema).expect("valid config");
    let cardinality = [10_000u64, 2_000, 5_000, 8, 50];
    let dictionaries: Vec<ArrayRef> = cardinality
        .iter()
        .map(|&n| {
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|v| format!("v{v}")),
            )) as _
        })
        .collect();
    let mut rng = Rng(5);
    let batches: Vec<(RecordBatch, RecordBatch)> = (0..16)
        .map(|_| {
            let keys: Vec<Vec<i32>> = cardinality
                .iter()
                .map(|&n| (0..ROWS).map(|_| (rng.next() % n) as i32).collect())
                .collect();
            let plain: Vec<ArrayRef> = keys
                .iter()
                .map(|k| {
                    Arc::new(StringArray::from_iter_values(
                        k.iter().map(|v| format!("v{v}")),
                    )) as _
                })
                .collect();
            let encoded: Vec<ArrayRef> = keys
                .into_iter()
                .zip(&dictionaries)
                .map(|(k, d)| {
                    let keys = Int32Array::from(k);
                    Arc::new(DictionaryArray::try_new(keys, Arc::clone(d)).expect("keys fit")) as _
                })
                .collect();
            let arrow = |columns: &[ArrayRef]| {
                let fields: Vec<arrow_schema::Field> = fields
                    .iter()
                    .zip(columns)
                    .map(|(f, c)| arrow_schema::Field::new(f, c.data_type().clone(), true))
                    .collect();
                RecordBatch::try_new(
                    Arc::new(arrow_schema::Schema::new(fields)),
                    columns.to_vec(),
                )
                .expect("batch")
            };
            (arrow(&plain), arrow(&encoded))
        })
        .collect();
    let mut group = c.benchmark_group("prepare_hash_5");
    group.throughput(Throughput::Elements((16 * ROWS) as u64));
    for (name, dictionary) in [("plain", false), ("dictionary", true)] {
        let preparer = Preparer::of(&set).expect("hashing prepares");
        group.bench_function(name, |b| {
            b.iter(|| {
                for (plain, encoded) in &batches {
                    let batch = if dictionary { encoded } else { plain };
                    black_box(preparer.prepare(batch).expect("prepares"));
                }
            })
        });
    }
    group.finish();
}

/// Keys of the per-key window benchmark.
const KEYS: usize = 100_000;
/// Events per measured iteration of the per-key window benchmark.
const WINDOW_EVENTS: usize = 65_536;

/// `n` events over `KEYS` random keys, one every 10 ms from `start_ms`, as batches of `size`.
fn keyed_batches(
    schema: &Schema,
    rng: &mut Rng,
    start_ms: i64,
    n: usize,
    size: usize,
) -> Vec<RecordBatch> {
    let keys: Vec<String> = (0..KEYS).map(|k| format!("sym{k}")).collect();
    (0..n)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(|chunk| {
            let prices: Float64Array = chunk.iter().map(|_| Some(100.0 + rng.unit())).collect();
            let syms: StringArray = chunk
                .iter()
                .map(|_| Some(keys[rng.next() as usize % KEYS].as_str()))
                .collect();
            let times: Float64Array = chunk
                .iter()
                .map(|&i| Some((start_ms + i as i64 * 10) as f64))
                .collect();
            RecordBatch::try_new(
                schema.arrow_schema(),
                vec![Arc::new(prices), Arc::new(syms), Arc::new(times)],
            )
            .expect("columns match the schema")
        })
        .collect()
}

fn window_mean(c: &mut Criterion) {
    let configs: Vec<FeatureConfig> = serde_json::from_str(
        r#"[{"type": "window", "field": "price", "key": "sym", "time_field": "ts", "unit": "ms",
             "size_seconds": 300, "slide_seconds": 60, "aggregates": ["mean"],
             "max_out_of_orderness_seconds": 5, "idle_expiry_seconds": 3600}]"#,
    )
    .expect("valid config");
    let schema =
        Schema::merge(configs.iter().flat_map(FeatureConfig::fields)).expect("no conflicts");
    let mut rng = Rng(4);
    let start = 1_700_000_000_000;
    // Warm up: every key seen, so the measured events update existing state.
    let mut live = FeatureSet::new(&configs, &schema).expect("valid config");
    let mut out = FeatureBatch::new();
    for batch in keyed_batches(&schema, &mut rng, start, 4 * KEYS, 4096) {
        live.transform(&batch, true, &mut out).expect("fits");
    }
    // The same operator learns on through every iteration, each one the stream's next events
    // (made untimed), so the figure is a long-running pipeline's steady state: windows slide and
    // expire as they would. (Learning on a fresh clone of the warm state each time measured the
    // first events after a restore instead, whose pane lists have no spare capacity yet.)
    let mut next = start + 4 * KEYS as i64 * 10;
    let mut group = c.benchmark_group("window_mean_100k_keys");
    group.throughput(Throughput::Elements(WINDOW_EVENTS as u64));
    for size in [64, 1024, 4096] {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter_batched(
                || {
                    let batches = keyed_batches(&schema, &mut rng, next, WINDOW_EVENTS, size);
                    next += WINDOW_EVENTS as i64 * 10;
                    batches
                },
                |batches| {
                    learn_all(&mut live, &batches, &mut out);
                    // No event may be dropped as late: that would flatter the figure.
                    assert!(out.rejected().is_empty(), "late events in the benchmark");
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    decode_json,
    standard_scaler,
    hash_and_scale,
    prepare_hash,
    window_mean
);
criterion_main!(benches);
