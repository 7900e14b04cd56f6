//! The result must not depend on the micro-batch size: batch sizes 1, 7 and 4096 give the same
//! predictions, metrics and final parameters, bit for bit.

mod common;

use common::{eddy, latest_checkpoint, logistic_file, run_ok, summary};

#[test]
fn batch_sizes_1_7_4096_give_identical_results() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("s.jsonl");
    logistic_file(&data, 5_000, 21)?;
    // A bad record in the middle: dead letters must not shift anything either.
    let text = std::fs::read_to_string(&data)?;
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2_500, r#"{"x0": "oops"}"#);
    std::fs::write(&data, lines.join("\n") + "\n")?;

    let mut results = Vec::new();
    for batch in ["1", "7", "4096"] {
        let dir = root.path().join(format!("b{batch}"));
        run_ok(
            eddy()
                .args(["run", "--quiet", "--batch-size", batch, "--input"])
                .arg(&data)
                .args(["--target", "y"])
                .arg("--checkpoint-dir")
                .arg(dir.join("ckpt"))
                .arg("--predictions")
                .arg(dir.join("p.jsonl"))
                .arg("--summary-json")
                .arg(dir.join("s.json")),
        )?;
        let s = summary(&dir.join("s.json"))?;
        let model = latest_checkpoint(&dir.join("ckpt"))?.model;
        let predictions = std::fs::read(dir.join("p.jsonl"))?;
        results.push((s, model, predictions));
    }
    let (s1, m1, p1) = &results[0];
    assert_eq!(s1["dead_lettered"], 1);
    assert_eq!(s1["learned"], 5_000);
    for (s, m, p) in &results[1..] {
        assert_eq!(s1["metrics"], s["metrics"]);
        assert_eq!(s1["window_metrics"], s["window_metrics"]);
        assert_eq!(s1["learned"], s["learned"]);
        assert_eq!(m1, m, "final model state differs");
        assert!(p1 == p, "predictions differ");
    }
    Ok(())
}
