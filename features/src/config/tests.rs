//! Tests of parsing and validating every operator's config.

use super::*;

#[test]
fn parses_with_defaults_and_refuses_unknown_keys() {
    let scaler: FeatureConfig =
        serde_json::from_str(r#"{"type": "standard_scaler", "fields": ["x1", "x2"]}"#).unwrap();
    assert_eq!(
        scaler,
        FeatureConfig::StandardScaler {
            fields: vec!["x1".into(), "x2".into()]
        }
    );
    let hash: FeatureConfig =
        serde_json::from_str(r#"{"type": "hash", "fields": ["site"]}"#).unwrap();
    assert_eq!(
        hash,
        FeatureConfig::Hash {
            fields: vec!["site".into()],
            bits: 18,
            seed: 0
        }
    );
    let err =
        serde_json::from_str::<FeatureConfig>(r#"{"type": "hash", "fields": ["site"], "bitz": 3}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `bitz`"), "{err}");
    assert!(serde_json::from_str::<FeatureConfig>(r#"{"type": "pca", "fields": []}"#).is_err());
}

#[test]
fn example_toml_parses_and_validates() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        features: Vec<FeatureConfig>,
    }
    let doc: Doc = toml::from_str(
        r#"
        [[features]]
        type = "standard_scaler"
        fields = ["x1", "x2", "x3"]

        [[features]]
        type = "hash"
        fields = ["site", "app"]
        bits = 20
        seed = 7
        "#,
    )
    .unwrap();
    assert_eq!(doc.features.len(), 2);
    let problems: Vec<String> = doc
        .features
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.validate(i))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(doc.features[1].kind(), "hash");
}

#[test]
fn fields_carry_type_and_required() {
    let hash = FeatureConfig::Hash {
        fields: vec!["site".into()],
        bits: 4,
        seed: 1,
    };
    assert_eq!(hash.fields(), vec![Field::string("site")]);
    let scaler = FeatureConfig::StandardScaler {
        fields: vec!["x".into()],
    };
    assert_eq!(scaler.fields(), vec![Field::number("x")]);
}

#[test]
fn validate_reports_every_problem_with_its_path() {
    let ok = FeatureConfig::Hash {
        fields: vec!["a".into()],
        bits: 28,
        seed: 0,
    };
    assert!(ok.validate(0).is_empty());
    let bad = FeatureConfig::Hash {
        fields: vec!["a".into(), "".into(), "a".into()],
        bits: 29,
        seed: 0,
    };
    assert_eq!(
        bad.validate(2),
        vec![
            "features[2].fields[1]: empty field name",
            "features[2].fields: duplicate field \"a\"",
            "features[2].bits: must be in 1..=28, got 29",
        ]
    );
    let empty = FeatureConfig::StandardScaler { fields: vec![] };
    assert_eq!(empty.validate(0), vec!["features[0].fields: empty"]);
    let zero = FeatureConfig::Hash {
        fields: vec!["a".into()],
        bits: 0,
        seed: 0,
    };
    assert_eq!(
        zero.validate(1),
        vec!["features[1].bits: must be in 1..=28, got 0"]
    );
}

/// The example of every operator given to users; it must parse, validate and build.
pub(crate) const EVERY_OPERATOR_TOML: &str = r#"
    [[features]]
    type = "standard_scaler"
    fields = ["x1", "x2"]

    [[features]]
    type = "standard_scaler"
    fields = ["x3"]
    half_life = 1000.0

    [[features]]
    type = "min_max_scaler"
    fields = ["x1"]

    [[features]]
    type = "max_abs_scaler"
    fields = ["x2"]

    [[features]]
    type = "clip"
    fields = ["x3"]
    min = -5.0
    max = 5.0

    [[features]]
    type = "one_hot"
    fields = ["country"]
    max_categories = 50

    [[features]]
    type = "hash"
    fields = ["site", "app"]
    bits = 20
    seed = 7
    signed = true

    [[features]]
    type = "cross"
    fields = ["site", "country"]
    bits = 18

    [[features]]
    type = "interaction"
    fields = ["x1", "x2"]

    [[features]]
    type = "text"
    field = "title"
    ngrams = 2
    bits = 18
    idf = true

    [[features]]
    type = "impute"
    fields = ["income"]
    strategy = { constant = 0.0 }
    indicator = true

    [[features]]
    type = "impute"
    fields = ["age"]
    strategy = "mean"

    [[features]]
    type = "time"
    field = "ts"
    parts = ["hour", "day_of_week", "hour_sin", "hour_cos", "dow_sin", "dow_cos"]

    [[features]]
    type = "lag"
    field = "price"
    key = "symbol"
    outputs = ["previous", "difference", "return"]

    [[features]]
    type = "ema"
    field = "price"
    key = "symbol"
    half_life = 20.0

    [[features]]
    type = "window"
    field = "price"
    key = "symbol"
    time_field = "epoch_ms"
    unit = "ms"
    size_seconds = 300
    slide_seconds = 60
    aggregates = ["count", "sum", "mean", "min", "max", "std", "last"]
    max_out_of_orderness_seconds = 5
    allowed_lateness_seconds = 60
    idle_expiry_seconds = 86400

    [[features]]
    type = "window"
    field = "temperature"
    key = "station"
    time_field = "ts"
    size_seconds = 3600
    aggregates = ["mean"]
"#;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    features: Vec<FeatureConfig>,
}

#[test]
fn every_operator_example_parses_validates_and_builds() {
    let doc: Doc = toml::from_str(EVERY_OPERATOR_TOML).unwrap();
    let problems: Vec<String> = doc
        .features
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.validate(i))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    let kinds: Vec<&str> = doc.features.iter().map(FeatureConfig::kind).collect();
    assert_eq!(kinds.len(), 17);
    assert!(
        matches!(doc.features[1], FeatureConfig::EwStandardScaler { half_life, .. } if half_life == 1000.0)
    );
    assert!(matches!(
        doc.features[6],
        FeatureConfig::SignedHash {
            bits: 20,
            seed: 7,
            ..
        }
    ));
    let schema = crate::Schema::merge(doc.features.iter().flat_map(FeatureConfig::fields)).unwrap();
    assert_eq!(schema.field("ts").unwrap().ty, crate::FieldType::String);
    assert_eq!(
        schema.field("epoch_ms").unwrap().ty,
        crate::FieldType::Number
    );
    assert!(!schema.field("income").unwrap().required);
    assert!(schema.field("symbol").unwrap().required);
    let set = crate::FeatureSet::new(&doc.features, &schema).unwrap();
    assert_eq!(set.describe().len(), set.dense_width() + 4);
    // Every config serializes back to the same config (the `into` form).
    for f in &doc.features {
        let json = serde_json::to_string(f).unwrap();
        assert_eq!(
            &serde_json::from_str::<FeatureConfig>(&json).unwrap(),
            f,
            "{json}"
        );
    }
}

#[test]
fn new_operators_report_their_problems() {
    let configs: Vec<FeatureConfig> = serde_json::from_str(
        r#"[
            {"type": "standard_scaler", "fields": ["x"], "half_life": 0},
            {"type": "clip", "fields": ["x"], "min": 2, "max": 1},
            {"type": "cross", "fields": ["a"], "bits": 40},
            {"type": "interaction", "fields": ["a", "b", "c"]},
            {"type": "text", "field": "t", "ngrams": 9, "bits": 24, "idf": true},
            {"type": "lag", "field": "p", "key": "p", "outputs": []},
            {"type": "window", "field": "p", "key": "k", "time_field": "t",
             "size_seconds": 300, "slide_seconds": 7, "aggregates": ["mean", "mean"]},
            {"type": "window", "field": "p", "key": "k", "time_field": "t",
             "size_seconds": 60, "slide_seconds": 1, "aggregates": ["sum"],
             "allowed_lateness_seconds": 86400}
        ]"#,
    )
    .unwrap();
    let problems: Vec<String> = configs
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.validate(i))
        .collect();
    assert_eq!(
        problems,
        vec![
            "features[0].half_life: must be finite and > 0, got 0",
            "features[1].min: must be finite with min <= max, got [2, 1]",
            "features[2].fields: a cross needs at least 2 fields, got 1",
            "features[2].bits: must be in 1..=28, got 40",
            "features[3].fields: an interaction needs exactly 2 fields, got 3",
            "features[4].ngrams: must be in 1..=5, got 9",
            "features[4].bits: must be in 1..=20, got 24",
            "features[5].field: duplicate field \"p\"",
            "features[5].outputs: empty",
            "features[6].slide_seconds: must divide size_seconds (300), got 7",
            "features[6].aggregates: duplicate \"mean\"",
            "features[7].slide_seconds: (size + out-of-orderness + lateness) / slide + 2 must be <= 4096 panes per key, got 86462",
        ]
    );
    let unknown = serde_json::from_str::<FeatureConfig>(
        r#"{"type": "window", "field": "p", "key": "k", "time_field": "t", "size_seconds": 1, "aggregates": ["sum"], "watermark": 3}"#,
    );
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("unknown field `watermark`"));
}

#[test]
fn idle_expiry_of_lag_and_ema_is_optional_and_checked() {
    // Without expiry, the serde form is as before.
    let plain = r#"{"type":"lag","field":"p","key":"k","outputs":["previous"]}"#;
    let config: FeatureConfig = serde_json::from_str(plain).unwrap();
    assert_eq!(serde_json::to_string(&config).unwrap(), plain);
    let plain = r#"{"type":"ema","field":"p","key":"k","half_life":2.0}"#;
    let config: FeatureConfig = serde_json::from_str(plain).unwrap();
    assert_eq!(serde_json::to_string(&config).unwrap(), plain);
    let expiring = r#"{"type":"ema","field":"p","key":"k","half_life":2.0,"time_field":"ts","unit":"ms","idle_expiry_seconds":60}"#;
    let config: FeatureConfig = serde_json::from_str(expiring).unwrap();
    assert_eq!(serde_json::to_string(&config).unwrap(), expiring);
    assert!(config.validate(0).is_empty());
    assert_eq!(config.field_names(), ["p", "k", "ts"]);
    assert_eq!(
        config.fields()[2].ty,
        crate::FieldType::Number,
        "with a unit, the time is a number"
    );
    let configs: Vec<FeatureConfig> = serde_json::from_str(
        r#"[
            {"type": "lag", "field": "p", "key": "k", "time_field": "ts"},
            {"type": "ema", "field": "p", "key": "k", "half_life": 1, "idle_expiry_seconds": 0,
             "unit": "s"},
            {"type": "lag", "field": "p", "key": "k", "time_field": "",
             "idle_expiry_seconds": 5}
        ]"#,
    )
    .unwrap();
    let problems: Vec<String> = configs
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.validate(i))
        .collect();
    assert_eq!(
        problems,
        vec![
            "features[0].idle_expiry_seconds: time_field needs idle_expiry_seconds",
            "features[1].time_field: idle_expiry_seconds (0) needs time_field",
            "features[1].idle_expiry_seconds: must be in 1..=1000000000, got 0",
            "features[1].unit: unit needs time_field",
            "features[2].time_field: empty field name",
        ]
    );
}
