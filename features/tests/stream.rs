//! Whole-stream properties: decode then transform, across batch splits, snapshots and serving.

use std::sync::Arc;

use eddy_features::ops::FeatureOp;
use eddy_features::{BatchBuilder, FeatureBatch, FeatureConfig, FeatureSet, Field, Schema};
use proptest::prelude::*;

/// Bits of one transformed row: dense values, sparse coordinates, sparse values.
type RowBits = (Vec<u64>, Vec<u32>, Vec<u64>);

fn configs() -> Vec<FeatureConfig> {
    serde_json::from_str(
        r#"[
            {"type": "hash", "fields": ["site", "app"], "bits": 6, "seed": 3},
            {"type": "standard_scaler", "fields": ["x0", "x1"]},
            {"type": "hash", "fields": ["os"], "bits": 2},
            {"type": "standard_scaler", "fields": ["x2"]}
        ]"#,
    )
    .expect("the test configs are valid json")
}

fn schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = configs().iter().flat_map(FeatureConfig::fields).collect();
    fields.push(Field::number("y"));
    Arc::new(Schema::merge(fields).expect("the test configs agree on field types"))
}

/// Seeded records with varied scales, repeated values and missing strings.
fn records(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    (0..n)
        .map(|i| {
            let x0 = (unit() - 0.5) * 2e3;
            let x1 = 1e6 + unit() * 10.0;
            let x2 = (unit() * 5.0).floor();
            let site = format!("\"s{}\"", (unit() * 30.0) as u32);
            let app = if unit() < 0.2 { "null".to_owned() } else { format!("\"a{}\"", i % 7) };
            let os = ["\"ios\"", "\"android\"", "null"][(unit() * 3.0) as usize];
            format!(
                r#"{{"x0": {x0}, "x1": {x1}, "x2": {x2}, "site": {site}, "app": {app}, "os": {os}, "y": {}}}"#,
                i % 2
            )
        })
        .collect()
}

/// Decodes and learns `records` in batches of the given sizes (the last one repeats).
fn run(records: &[String], sizes: &[usize]) -> (FeatureSet, Vec<RowBits>) {
    let schema = schema();
    let mut set = FeatureSet::new(&configs(), &schema).expect("the test configs fit the schema");
    let mut decoder = BatchBuilder::new(schema);
    let mut out = FeatureBatch::new();
    let mut rows = Vec::new();
    let mut rest = records;
    let mut k = 0;
    while !rest.is_empty() {
        let size = sizes[k.min(sizes.len() - 1)].clamp(1, rest.len());
        k += 1;
        for r in &rest[..size] {
            decoder
                .push_json(r.as_bytes())
                .expect("generated records are valid");
        }
        rest = &rest[size..];
        set.transform(&decoder.finish(), true, &mut out)
            .expect("batches have the set's schema");
        rows.extend(out.rows().map(|(d, i, v)| {
            (
                d.iter().map(|x| x.to_bits()).collect(),
                i.to_vec(),
                v.iter().map(|x| x.to_bits()).collect(),
            )
        }));
    }
    (set, rows)
}

fn state_bytes(set: &FeatureSet) -> Vec<u8> {
    postcard::to_allocvec(set).expect("feature sets always serialize")
}

#[test]
fn output_matches_two_pass_moments_and_ranges() {
    let records = records(1000, 1);
    let (set, rows) = run(&records, &[4096]);
    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    let moments: Vec<_> = set
        .operators()
        .iter()
        .filter_map(|op| match op {
            FeatureOp::StandardScaler(s) => Some(s.moments()),
            _ => None,
        })
        .flatten()
        .collect();
    for (j, name) in ["x0", "x1", "x2"].iter().enumerate() {
        let xs: Vec<f64> = values.iter().map(|v| v[name].as_f64().unwrap()).collect();
        // Final state against two-pass values over the whole stream.
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let m = moments[j];
        assert_eq!(m.count(), 1000);
        assert!(
            (m.mean() - mean).abs() <= 1e-9 * mean.abs().max(1.0),
            "{name} mean"
        );
        assert!((m.variance() - var).abs() <= 1e-9 * var, "{name} variance");
        for (i, row) in rows.iter().enumerate() {
            let prefix = &xs[..=i];
            let n = prefix.len() as f64;
            let mean = prefix.iter().sum::<f64>() / n;
            let std = (prefix.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let expected = if std > 0.0 { (xs[i] - mean) / std } else { 0.0 };
            let got = f64::from_bits(row.0[j]);
            let tolerance = 1e-9 * got.abs().max(expected.abs()).max(1.0);
            assert!(
                (got - expected).abs() <= tolerance,
                "{name} row {i}: {got} vs {expected}"
            );
        }
    }
    for (_, indices, _) in &rows {
        assert!(indices.iter().all(|&i| (3..set.dim() as u32).contains(&i)));
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn batch_sizes_1_7_4096_are_bit_identical() {
    let records = records(1000, 2);
    let (set, rows) = run(&records, &[4096]);
    for size in [1, 7] {
        let (other, other_rows) = run(&records, &[size]);
        assert!(rows == other_rows, "rows differ with batches of {size}");
        assert_eq!(
            state_bytes(&set),
            state_bytes(&other),
            "state differs with {size}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_batch_split_is_bit_identical(sizes in prop::collection::vec(1usize..300, 1..40)) {
        let records = records(1000, 3);
        let (set, rows) = run(&records, &[4096]);
        let (other, other_rows) = run(&records, &sizes);
        prop_assert!(rows == other_rows);
        prop_assert_eq!(state_bytes(&set), state_bytes(&other));
    }
}

#[test]
fn frozen_equals_transform_without_learning_and_keeps_state() {
    let records = records(300, 4);
    let (mut set, _) = run(&records[..200], &[64]);
    let before = state_bytes(&set);
    let mut decoder = BatchBuilder::new(schema());
    for r in &records[200..] {
        decoder.push_json(r.as_bytes()).unwrap();
    }
    let batch = decoder.finish();
    let (mut frozen, mut unlearned) = (FeatureBatch::new(), FeatureBatch::new());
    set.transform_frozen(&batch, &mut frozen).unwrap();
    set.transform(&batch, false, &mut unlearned).unwrap();
    assert_eq!(frozen, unlearned);
    assert_eq!(frozen.len(), 100);
    assert_eq!(state_bytes(&set), before);
    // And learning does change it.
    set.transform(&batch, true, &mut unlearned).unwrap();
    assert_ne!(state_bytes(&set), before);
}

#[test]
fn serving_batches_without_target_or_scaled_value() {
    let (set, _) = run(&records(50, 5), &[50]);
    let mut decoder = BatchBuilder::new(Arc::new(set.schema().with_all_optional()));
    decoder
        .push_json(br#"{"x1": 1e6, "x2": 3, "site": "s1"}"#)
        .unwrap();
    let mut out = FeatureBatch::new();
    set.transform_frozen(&decoder.finish(), &mut out).unwrap();
    let (dense, indices, values) = out.row(0);
    assert_eq!(dense[0], 0.0, "a missing number scales to the mean");
    assert!(dense.iter().all(|x| x.is_finite()));
    assert_eq!((indices.len(), values), (1, &[1.0][..]));
}

#[test]
fn state_round_trips_through_postcard_and_json() {
    let records = records(400, 6);
    let (mut set, _) = run(&records[..300], &[100]);
    let bytes = state_bytes(&set);
    let mut restored: FeatureSet = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(restored, set);
    assert_eq!(state_bytes(&restored), bytes);
    let json = serde_json::to_string(&set).unwrap();
    let from_json: FeatureSet = serde_json::from_str(&json).unwrap();
    assert_eq!(
        state_bytes(&from_json),
        bytes,
        "json keeps every bit of f64 state"
    );
    // The restored set continues exactly like the original.
    let mut decoder = BatchBuilder::new(schema());
    for r in &records[300..] {
        decoder.push_json(r.as_bytes()).unwrap();
    }
    let batch = decoder.finish();
    let (mut a, mut b) = (FeatureBatch::new(), FeatureBatch::new());
    set.transform(&batch, true, &mut a).unwrap();
    restored.transform(&batch, true, &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(state_bytes(&set), state_bytes(&restored));
}

/// A set with every operator, over out-of-order keyed events with late rows, unparsable
/// timestamps and missing values.
const EVERY_OPERATOR: &str = r#"[
    {"type": "standard_scaler", "fields": ["x0"]},
    {"type": "standard_scaler", "fields": ["x1"], "half_life": 50},
    {"type": "min_max_scaler", "fields": ["x0", "x2"]},
    {"type": "max_abs_scaler", "fields": ["x1"]},
    {"type": "clip", "fields": ["x0"], "min": -100, "max": 100},
    {"type": "one_hot", "fields": ["site"], "max_categories": 10},
    {"type": "hash", "fields": ["site", "app"], "bits": 8, "signed": true},
    {"type": "hash", "fields": ["app"], "bits": 4},
    {"type": "cross", "fields": ["site", "sym"], "bits": 10},
    {"type": "interaction", "fields": ["x0", "x2"]},
    {"type": "text", "field": "title", "ngrams": 2, "bits": 10, "idf": true},
    {"type": "impute", "fields": ["opt"], "indicator": true},
    {"type": "time", "field": "ts"},
    {"type": "lag", "field": "price", "key": "sym"},
    {"type": "ema", "field": "price", "key": "sym", "half_life": 5},
    {"type": "window", "field": "price", "key": "sym", "time_field": "ets", "unit": "ms",
     "size_seconds": 300, "slide_seconds": 60, "aggregates": ["count", "mean", "std", "last"],
     "max_out_of_orderness_seconds": 30, "allowed_lateness_seconds": 10,
     "idle_expiry_seconds": 600}
]"#;

fn every_configs() -> Vec<FeatureConfig> {
    serde_json::from_str(EVERY_OPERATOR).expect("valid configs")
}

fn every_records(n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut unit = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let t = 1_714_521_600 + i as i64 * 5 - (unit() * 60.0) as i64;
            let ts = if unit() < 0.03 {
                "\"soon\"".to_owned()
            } else {
                let s = t - 1_714_521_600;
                format!("\"2024-05-01T{:02}:{:02}:{:02}Z\"", s / 3600, s / 60 % 60, s % 60)
            };
            let opt = if unit() < 0.3 { "null".to_owned() } else { format!("{}", unit() * 4.0) };
            format!(
                r#"{{"x0": {}, "x1": {}, "x2": {}, "site": "s{}", "app": {}, "sym": "k{}", "title": "w{} w{} W{}", "opt": {opt}, "ts": {ts}, "ets": {}, "price": {}}}"#,
                (unit() - 0.5) * 300.0,
                1e3 + unit(),
                (unit() * 5.0).floor(),
                (unit() * 15.0) as u32,
                if unit() < 0.2 { "null".to_owned() } else { format!("\"a{}\"", i % 5) },
                (unit() * 20.0) as u32,
                (unit() * 9.0) as u32,
                (unit() * 9.0) as u32,
                i % 3,
                t * 1000 + (unit() * 999.0) as i64,
                100.0 + unit() * 10.0,
            )
        })
        .collect()
}

/// Learns with every operator in batches of `sizes`: rows (bits), rejected rows, the set.
fn run_every(
    records: &[String],
    sizes: &[usize],
) -> (FeatureSet, Vec<RowBits>, Vec<(usize, String)>) {
    let configs = every_configs();
    let schema = Arc::new(
        Schema::merge(configs.iter().flat_map(FeatureConfig::fields)).expect("no conflicts"),
    );
    let mut set = FeatureSet::new(&configs, &schema).expect("valid set");
    let mut decoder = BatchBuilder::new(schema);
    let mut out = FeatureBatch::new();
    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    let mut rest = records;
    let mut k = 0;
    while !rest.is_empty() {
        let size = sizes[k.min(sizes.len() - 1)].clamp(1, rest.len());
        k += 1;
        for r in &rest[..size] {
            decoder
                .push_json(r.as_bytes())
                .expect("generated records are valid");
        }
        rest = &rest[size..];
        set.transform(&decoder.finish(), true, &mut out)
            .expect("batches fit");
        let base = rows.len();
        rejected.extend(
            out.rejected()
                .iter()
                .map(|(i, e)| (base + i, e.kind.as_str().to_owned())),
        );
        rows.extend(out.rows().map(|(d, i, v)| {
            assert!(d.iter().chain(v).all(|x| x.is_finite()));
            (
                d.iter().map(|x| x.to_bits()).collect(),
                i.to_vec(),
                v.iter().map(|x| x.to_bits()).collect(),
            )
        }));
    }
    (set, rows, rejected)
}

#[test]
fn every_operator_refuses_late_and_bad_rows_and_round_trips() {
    let records = every_records(1500, 11);
    let (set, rows, rejected) = run_every(&records, &[4096]);
    let late = rejected.iter().filter(|r| r.1 == "late").count();
    let bad = rejected.iter().filter(|r| r.1 == "bad_timestamp").count();
    assert!(late > 10 && bad > 10, "late {late}, bad {bad}");
    assert_eq!(late + bad, rejected.len());
    for (i, _) in &rejected {
        assert!(rows[*i].0.iter().all(|&x| x == 0) && rows[*i].1.is_empty());
    }
    let bytes = state_bytes(&set);
    let back: FeatureSet = postcard::from_bytes(&bytes).expect("postcard");
    assert_eq!(state_bytes(&back), bytes);
    let named = rmp_serde::to_vec_named(&set).expect("msgpack");
    let back: FeatureSet = rmp_serde::from_slice(&named).expect("msgpack back");
    assert_eq!(state_bytes(&back), bytes);
    let json = serde_json::to_string(&set).expect("json");
    let back: FeatureSet = serde_json::from_str(&json).expect("json back");
    assert_eq!(state_bytes(&back), bytes);
    assert_eq!(set.describe().len(), set.dense_width() + 5);
    // Without the refused records, the same state and the same rows for the others.
    let kept: Vec<String> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !rejected.iter().any(|r| r.0 == *i))
        .map(|(_, r)| r.clone())
        .collect();
    let (clean, clean_rows, clean_rejected) = run_every(&kept, &[100]);
    assert!(clean_rejected.is_empty());
    assert_eq!(state_bytes(&clean), bytes);
    let accepted: Vec<RowBits> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !rejected.iter().any(|r| r.0 == *i))
        .map(|(_, r)| r.clone())
        .collect();
    assert!(accepted == clean_rows);
}

#[test]
fn every_operator_serves_without_changing_state() {
    let records = every_records(400, 12);
    let (set, _, _) = run_every(&records[..300], &[64]);
    let before = state_bytes(&set);
    let mut decoder = BatchBuilder::new(Arc::new(set.schema().with_all_optional()));
    for r in &records[300..] {
        decoder.push_json(r.as_bytes()).expect("valid");
    }
    decoder
        .push_json(br#"{"sym": "k1", "price": 3}"#)
        .expect("valid");
    let batch = decoder.finish();
    let mut out = FeatureBatch::new();
    set.transform_frozen(&batch, &mut out).expect("fits");
    assert_eq!(state_bytes(&set), before);
    assert_eq!(out.len(), 101);
    let (last, reason) = out.rejected().last().expect("no event time");
    assert_eq!((*last, reason.kind.as_str()), (100, "missing_field"));
    for (d, _, v) in out.rows() {
        assert!(d.iter().chain(v).all(|x| x.is_finite()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_operator_any_batch_split_is_bit_identical(sizes in prop::collection::vec(1usize..200, 1..30)) {
        let records = every_records(800, 13);
        let (set, rows, rejected) = run_every(&records, &[4096]);
        let (other, other_rows, other_rejected) = run_every(&records, &sizes);
        prop_assert!(rows == other_rows);
        prop_assert_eq!(rejected, other_rejected);
        prop_assert_eq!(state_bytes(&set), state_bytes(&other));
    }
}
