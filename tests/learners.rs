//! Every learner by name through quick mode, each checked on data whose answer is known.

mod common;

use std::fmt::Write as _;

use common::{eddy, run_ok, summary};
use eddy_runtime::source::{GeneratorConfig, GeneratorKind};

fn quick(
    args: &[&str],
    input: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let out = dir.join("summary.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(input)
            .args(args)
            .arg("--summary-json")
            .arg(&out),
    )?;
    summary(&out)
}

/// Three classes, each a Gaussian cloud around its own centre in 4 dimensions.
fn three_classes(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let mut text = String::new();
    for i in 0..n {
        let class = i % 3;
        let jitter = |j: usize| (((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 2.0;
        let centre = [[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]][class];
        let label = ["cat", "dog", "7"][class];
        let label = if class == 2 {
            label.to_owned()
        } else {
            format!("\"{label}\"")
        };
        writeln!(
            text,
            r#"{{"a": {}, "b": {}, "c": {}, "d": {}, "animal": {label}}}"#,
            centre[0] + jitter(0),
            centre[1] + jitter(1),
            jitter(2),
            jitter(3)
        )?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

#[test]
fn softmax_learns_string_and_integer_labels() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("classes.jsonl");
    three_classes(&data, 6000)?;
    let s = quick(
        &["--target", "animal", "--model", "softmax"],
        &data,
        dir.path(),
    )?;
    let m = &s["metrics"];
    assert!(m["macro_f1"].as_f64().expect("macro_f1") > 0.9, "{m}");
    assert!(
        s["window_metrics"]["accuracy"].as_f64().expect("accuracy") > 0.95,
        "{s}"
    );
    Ok(())
}

#[test]
fn kmeans_finds_the_blobs_and_scores_them_against_a_label() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("blobs.jsonl");
    let mut g = GeneratorConfig::new(GeneratorKind::Blobs);
    g.features = 4;
    g.clusters = 4;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&data)?);
    g.write_jsonl(20_000, &mut out)?;
    drop(out);
    let s = quick(
        &[
            "--model",
            "kmeans",
            "--k",
            "4",
            "--warm-start",
            "500",
            "--label",
            "label",
        ],
        &data,
        dir.path(),
    )?;
    let window = &s["window_metrics"];
    assert!(window["ari"].as_f64().expect("ari") >= 0.99, "{s}");
    assert!(s["metrics"]["inertia"].is_number(), "{s}");
    Ok(())
}

/// A click stream with high-cardinality string fields and a logistic ground truth.
fn clicks(path: &std::path::Path, n: u64) -> anyhow::Result<f64> {
    let mut text = String::new();
    let mut clicked = 0u64;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..n {
        let user = next() % 2000;
        let site = next() % 300;
        let device = next() % 3;
        let hour = next() % 24;
        // Each user and site has a fixed pull towards or away from clicking.
        let effect = |id: u64, salt: u64| {
            ((id.wrapping_mul(2_654_435_761).wrapping_add(salt) % 1000) as f64 / 250.0) - 2.0
        };
        let margin = -1.0 + effect(user, 1) + effect(site, 2) + 0.5 * device as f64;
        let p = 1.0 / (1.0 + (-margin).exp());
        let y = u64::from(((next() % 1_000_000) as f64) / 1e6 < p);
        clicked += y;
        writeln!(
            text,
            r#"{{"user": "u{user}", "site": "s{site}", "device": "d{device}", "hour": {hour}, "y": {y}}}"#
        )?;
    }
    std::fs::write(path, text)?;
    let rate = clicked as f64 / n as f64;
    Ok(-(rate * rate.ln() + (1.0 - rate) * (1.0 - rate).ln()))
}

#[test]
fn ftrl_on_hashed_strings_beats_the_constant_predictor() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("clicks.jsonl");
    let constant = clicks(&data, 60_000)?;
    let s = quick(
        &[
            "--target",
            "y",
            "--optimizer",
            "ftrl",
            "--l1",
            "0.0001",
            "--l2",
            "0.0001",
        ],
        &data,
        dir.path(),
    )?;
    let logloss = s["metrics"]["logloss"].as_f64().expect("logloss");
    assert!(
        logloss < constant - 0.05,
        "ftrl {logloss} vs constant {constant}"
    );
    for optimizer in ["adagrad", "adam"] {
        let s = quick(
            &["--target", "y", "--optimizer", optimizer],
            &data,
            dir.path(),
        )?;
        let logloss = s["metrics"]["logloss"].as_f64().expect("logloss");
        assert!(
            logloss < constant,
            "{optimizer} {logloss} vs constant {constant}"
        );
    }
    Ok(())
}

#[test]
fn svm_and_robust_regression_losses_learn() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("logistic.jsonl");
    common::logistic_file(&data, 20_000, 8)?;
    let s = quick(&["--target", "y", "--model", "svm"], &data, dir.path())?;
    assert!(
        s["window_metrics"]["accuracy"].as_f64().expect("accuracy") > 0.8,
        "{s}"
    );

    let linear = dir.path().join("linear.jsonl");
    let mut g = GeneratorConfig::new(GeneratorKind::Linear);
    g.noise_std = 0.1;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&linear)?);
    g.write_jsonl(20_000, &mut out)?;
    drop(out);
    for loss in ["huber", "epsilon-insensitive", "squared"] {
        let s = quick(
            &["--target", "y", "--model", "linear", "--loss", loss],
            &linear,
            dir.path(),
        )?;
        let mae = s["window_metrics"]["mae"].as_f64().expect("mae");
        assert!(mae < 0.3, "{loss}: window mae {mae}");
    }
    Ok(())
}
