//! Tests of `TrainedModel`: the linear loop against the general one, serving against training,
//! explanations, per-key models, softmax and k-means targets, and bad instances.

use super::*;
use crate::spec::tests::{features, spec};
use eddy_features::FeatureConfig;
use eddy_ml::{LinearModel, Loss, SoftmaxModel, StreamingKMeans};

fn logistic() -> LearnerParams {
    LearnerParams::Linear(LinearModel::params(Loss::Logistic).check().expect("valid"))
}

/// `n` records of the spec's fields `a`, `b`, `c` and a binary `y`, a pattern repeating.
fn abc_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"a": {i}, "b": {}, "c": "v{}", "y": {}}}"#,
                i % 7,
                i % 3,
                i % 2
            )
        })
        .collect()
}

fn learn(model: &mut TrainedModel, spec: &ModelSpec, lines: &[String]) -> Vec<RowOutcome> {
    let mut builder = spec.batch_builder();
    for line in lines {
        builder.push_json(line.as_bytes()).expect("valid record");
    }
    let mut outcomes = Vec::new();
    model
        .learn_batch(spec, &builder.finish(), &mut FeatureBatch::new(), |_, o| {
            outcomes.push(o)
        })
        .expect("learns");
    outcomes
}

#[test]
fn the_linear_loop_learns_as_the_general_one() {
    // a window that refuses late events (a learner refuses nothing a valid batch can hold)
    let features: Vec<FeatureConfig> = serde_json::from_str(
        r#"[
            {"type": "standard_scaler", "fields": ["a", "b"]},
            {"type": "hash", "fields": ["c"], "bits": 4, "seed": 0},
            {"type": "window", "field": "a", "key": "c", "time_field": "ts", "unit": "s",
             "size_seconds": 60, "slide_seconds": 20, "aggregates": ["mean"],
             "max_out_of_orderness_seconds": 0, "allowed_lateness_seconds": 0}
        ]"#,
    )
    .expect("configs parse");
    let lines: Vec<String> = (0..120)
        .map(|i: u64| {
            let ts = if i % 9 == 8 { 3 } else { 1_000 + i * 5 };
            let y = (i * 7 % 5) % 2;
            format!(
                r#"{{"a": {}, "b": {}, "c": "v{}", "ts": {ts}, "y": {y}}}"#,
                i as f64 * 0.3 - 9.0,
                (i % 7) as f64,
                i % 5
            )
        })
        .collect();
    for (loss, task) in [
        (Loss::Logistic, Task::Binary),
        (Loss::Hinge, Task::Binary),
        (Loss::Squared, Task::Regression),
    ] {
        let spec = ModelSpec::new("m", &features, Some("y"), task, None).expect("spec");
        let params = LearnerParams::Linear(LinearModel::params(loss).check().expect("valid"));
        let mut general = TrainedModel::new(&spec, &params, None, 10).expect("model");
        let mut linear = general.clone();
        assert!(linear.defer_scoring());
        let mut seen = [0; 2]; // learned, refused
        for chunk in lines.chunks(25) {
            let mut builder = spec.batch_builder();
            for line in chunk {
                builder.push_json(line.as_bytes()).expect("valid record");
            }
            let batch = builder.finish();
            let mut outcomes = [Vec::new(), Vec::new()];
            for (model, out) in [&mut general, &mut linear].into_iter().zip(&mut outcomes) {
                model
                    .learn_batch_prepared(
                        &spec,
                        &batch,
                        None,
                        &mut FeatureBatch::new(),
                        false,
                        |row, o| out.push((row, o)),
                    )
                    .expect("learns");
            }
            assert_eq!(outcomes[0], outcomes[1], "{loss:?}");
            for (_, o) in &outcomes[0] {
                seen[usize::from(matches!(o, RowOutcome::Refused(_)))] += 1;
            }
            for (y, p) in linear.scored.as_mut().expect("deferred").drain(..) {
                linear.metrics.update(y, p);
            }
        }
        assert!(
            seen.iter().all(|&n| n > 0) || loss == Loss::Squared,
            "{seen:?}"
        );
        assert!(seen[0] > 50 && seen[1] > 5, "{seen:?}");
        linear.scored = None;
        assert_eq!(linear, general, "{loss:?}");
    }
}

#[test]
fn serving_predicts_what_training_would_predict() {
    let spec = Arc::new(spec());
    let mut model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
    let lines = abc_lines(50);
    let outcomes = learn(&mut model, &spec, &lines);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, RowOutcome::Learned { .. })));
    assert_eq!(model.events_learned, 50);

    let handle = ModelHandle::new(model.snapshot(Arc::clone(&spec)));
    let raw = br#"{"a": 3, "b": 1, "c": "v1"}"#;
    let served = handle
        .load()
        .predict_json(&[raw.as_slice()])
        .expect("valid")[0]
        .as_f64()
        .expect("number");

    let mut frozen_input = spec.serving_builder();
    frozen_input.push_json(raw).expect("valid");
    let mut fb = FeatureBatch::new();
    model
        .features
        .transform(&frozen_input.finish(), false, &mut fb)
        .expect("transform");
    let (d, i, v) = fb.row(0);
    let direct = match model
        .learner
        .primary()
        .predict_one(&FeatureVec::new(d, i, v))
    {
        Prediction::Probability(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(served.to_bits(), direct.to_bits());
    assert_eq!(handle.load().version, 50);
}

#[test]
fn explanations_add_up_to_the_margin() {
    let spec = Arc::new(spec());
    let mut model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
    let lines = abc_lines(100);
    learn(&mut model, &spec, &lines);
    let snapshot = model.snapshot(Arc::clone(&spec));
    let raw = br#"{"a": 3, "b": 1, "c": "v1"}"#.as_slice();
    let explained = snapshot
        .explain_json(&[raw])
        .expect("valid")
        .expect("linear");
    let p = snapshot.predict_json(&[raw]).expect("valid")[0]
        .as_f64()
        .expect("number");
    let margin = explained[0]["margin"].as_f64().expect("margin");
    assert!(
        (1.0 / (1.0 + (-margin).exp()) - p).abs() < 1e-12,
        "{explained:?} vs {p}"
    );
    let names: Vec<&String> = explained[0]["contributions"]
        .as_object()
        .expect("map")
        .keys()
        .collect();
    assert!(names.iter().any(|n| n.as_str() == "a"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("hash(c)")), "{names:?}");
}

#[test]
fn per_key_models_learn_and_answer_per_key() {
    let spec = Arc::new(spec());
    let mut model = TrainedModel::new(&spec, &logistic(), Some(2), 10).expect("model");
    // Key "p" always clicks, key "n" never does.
    let lines: Vec<String> = (0..200)
        .map(|i| {
            let (k, y) = if i % 2 == 0 { ("p", 1) } else { ("n", 0) };
            format!(r#"{{"a": 1, "b": 2, "c": "v", "k": "{k}", "y": {y}}}"#)
        })
        .collect();
    learn(&mut model, &spec, &lines);
    assert_eq!(model.learner.len(), 2);
    let snapshot = model.snapshot(Arc::clone(&spec));
    let ask = |k: &str| {
        let raw = format!(r#"{{"a": 1, "b": 2, "c": "v", "k": "{k}"}}"#);
        snapshot.predict_json(&[raw.as_bytes()]).expect("valid")[0]
            .as_f64()
            .expect("number")
    };
    assert!(ask("p") > 0.9, "{}", ask("p"));
    assert!(ask("n") < 0.1, "{}", ask("n"));
    assert!(
        (ask("new") - 0.5).abs() < 1e-12,
        "an unknown key gets the untrained template"
    );
}

#[test]
fn softmax_labels_may_be_strings_or_integers() {
    let spec = Arc::new(
        ModelSpec::new("m", &features(), Some("y"), Task::Multiclass, None).expect("spec"),
    );
    let params = LearnerParams::Softmax(SoftmaxModel::params().check().expect("valid"));
    let mut model = TrainedModel::new(&spec, &params, None, 10).expect("model");
    let lines: Vec<String> = (0..300)
        .map(|i| match i % 3 {
            0 => format!(r#"{{"a": {}, "b": 0, "c": "u", "y": "cat"}}"#, 5 + i % 2),
            1 => format!(r#"{{"a": {}, "b": 0, "c": "v", "y": 7}}"#, -5 - i % 2),
            _ => format!(r#"{{"a": 0, "b": {}, "c": "w", "y": "7"}}"#, -5 - i % 2),
        })
        .collect();
    learn(&mut model, &spec, &lines);
    let snapshot = model.snapshot(Arc::clone(&spec));
    let answer = snapshot
        .predict_json(&[br#"{"a": 5, "b": 0, "c": "u"}"#.as_slice()])
        .expect("valid");
    assert_eq!(answer[0]["label"], "cat", "{answer:?}");
    assert_eq!(
        answer[0]["probabilities"].as_object().map(|o| o.len()),
        Some(2),
        "7 and \"7\" are one class"
    );
    assert!(model.metrics.values().iter().any(|(n, _)| *n == "macro_f1"));
}

#[test]
fn kmeans_needs_no_target_and_scores_a_reference_label() {
    let features = vec![FeatureConfig::StandardScaler {
        fields: vec!["a".into(), "b".into()],
    }];
    let spec = Arc::new(
        ModelSpec::new("m", &features, Some("blob"), Task::Clustering, None).expect("spec"),
    );
    let params = LearnerParams::KMeans(StreamingKMeans::params(2).check().expect("valid"));
    let mut model = TrainedModel::new(&spec, &params, None, 50).expect("model");
    let lines: Vec<String> = (0..400)
        .map(|i| {
            let (c, blob) = if i % 2 == 0 {
                (10.0, "x")
            } else {
                (-10.0, "z")
            };
            let jitter = ((i * 37) % 11) as f64 / 10.0;
            format!(
                r#"{{"a": {}, "b": {}, "blob": "{blob}"}}"#,
                c + jitter,
                c - jitter
            )
        })
        .collect();
    let outcomes = learn(&mut model, &spec, &lines);
    assert_eq!(outcomes.len(), 400);
    let values: std::collections::BTreeMap<_, _> =
        model.metrics.window_values().into_iter().collect();
    assert!(values["ari"] > 0.99, "{values:?}");
    assert!(values.contains_key("inertia"));
    let unlabelled = Arc::new(
        ModelSpec::new("m", &features, None, Task::Clustering, None).expect("no label needed"),
    );
    assert!(unlabelled.target_index().is_none());
}

#[test]
fn bad_instances_name_their_field() {
    let spec = Arc::new(spec());
    let model = TrainedModel::new(&spec, &logistic(), None, 10).expect("model");
    let snapshot = model.snapshot(spec);
    let good = br#"{"a": 1, "b": 2}"#.as_slice();
    let bad = br#"{"a": "one", "b": 2}"#.as_slice();
    let err = snapshot
        .predict_json(&[good, bad])
        .expect_err("bad instance");
    assert_eq!(err.index, 1);
    assert_eq!(err.field_path(), "instances[1].a");
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ModelHandle>();
    assert_send_sync::<ServingSnapshot>();
    assert_send_sync::<TrainedModel>();
}
