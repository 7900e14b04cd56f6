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
            FeatureOp::Hash(_) => None,
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
