//! File → model → checkpoint, through the real binary in quick mode.

mod common;

use common::{eddy, latest_checkpoint, logistic_file, run_ok, summary};

#[test]
fn quick_mode_learns_a_file_checkpoints_and_summarises() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("train.jsonl");
    logistic_file(&data, 20_000, 3)?;
    let ckpt = dir.path().join("ckpt");
    let out = dir.path().join("summary.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&data)
            .args(["--target", "y", "--model", "logistic"])
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .arg("--summary-json")
            .arg(&out),
    )?;

    let s = summary(&out)?;
    for key in [
        "events",
        "learned",
        "dead_lettered",
        "seconds",
        "events_per_sec",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
    }
    assert_eq!(s["events"], 20_000);
    assert_eq!(s["learned"], 20_000);
    assert_eq!(s["dead_lettered"], 0);
    let m = &s["metrics"];
    let accuracy = m["accuracy"].as_f64().expect("accuracy");
    let logloss = m["logloss"].as_f64().expect("logloss");
    let auc = m["auc"].as_f64().expect("auc");
    // The stream's labels are drawn from a logistic model with 10 N(0,1) weights: a learned model
    // separates them far better than chance, and its log loss beats the constant predictor's 0.69.
    assert!(accuracy > 0.8, "accuracy {accuracy}");
    assert!(auc > 0.88, "auc {auc}");
    assert!(logloss < 0.45, "logloss {logloss}");

    let checkpoint = latest_checkpoint(&ckpt)?;
    assert_eq!(checkpoint.counters.learned, 20_000);
    assert_eq!(checkpoint.model.events_learned, 20_000);
    assert!(common::linear(&checkpoint.model)
        .weights()
        .iter()
        .all(|w| w.is_finite()));

    // Running again on the same checkpoint directory resumes at the end: nothing is learned twice.
    let again = dir.path().join("again.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&data)
            .args(["--target", "y"])
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .arg("--summary-json")
            .arg(&again),
    )?;
    let s2 = summary(&again)?;
    assert_eq!(s2["learned"], 20_000);
    assert_eq!(s2["resumed_from"], 20_000);
    assert_eq!(s2["metrics"], s["metrics"]);
    Ok(())
}

#[test]
fn regression_summary_has_regression_metrics() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("r.csv");
    let mut text = String::from("a,b,city,y\n");
    for i in 0..3000 {
        let a = (i % 17) as f64 / 3.0;
        let b = (i % 11) as f64 - 5.0;
        let city = ["oslo", "lima", "pune"][i % 3];
        let bump = [0.0, 2.0, -1.0][i % 3];
        text.push_str(&format!(
            "{a},{b},{city},{}\n",
            3.0 * a - 2.0 * b + bump + 1.0
        ));
    }
    std::fs::write(&data, text)?;
    let out = dir.path().join("s.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&data)
            .args(["--target", "y", "--model", "linear"])
            .arg("--summary-json")
            .arg(&out),
    )?;
    let s = summary(&out)?;
    let m = &s["metrics"];
    for key in ["mae", "rmse", "r2"] {
        assert!(m[key].is_number(), "metrics lack {key}: {m}");
    }
    // y is an exact linear function of the inputs: the recent window error must be small.
    let recent = s["window_metrics"]["mae"].as_f64().expect("window mae");
    assert!(recent < 0.5, "window mae {recent}");
    let recent_r2 = s["window_metrics"]["r2"].as_f64().expect("window r2");
    assert!(recent_r2 > 0.98, "window r2 {recent_r2}");
    Ok(())
}

#[test]
fn print_config_round_trips_through_validate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("d.jsonl");
    logistic_file(&data, 10, 1)?;
    let out = eddy()
        .args(["run", "--print-config", "--input"])
        .arg(&data)
        .args(["--target", "y"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout)?;
    assert!(toml.contains("type = \"standard_scaler\""), "{toml}");
    assert!(toml.contains("type = \"hash\""), "{toml}");
    let file = dir.path().join("p.toml");
    std::fs::write(&file, &toml)?;
    run_ok(eddy().arg("validate").arg(&file))?;
    Ok(())
}

#[test]
fn validate_names_the_file_and_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[source]\ntype = \"generator\"\nkind = \"logistic\"\n\n[model]\ntype = \"logistic\"\ntarget = \"y\"\nlearning_rat = 0.1\n")?;
    let out = eddy().arg("validate").arg(&file).output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(
        err.contains("model") && err.contains("learning_rat"),
        "{err}"
    );
    Ok(())
}
