//! Artifacts written by earlier versions must keep loading. `tests/data/artifact-format-1.eddymodel`
//! was written by eddy 0.1.0 (artifact format 1): a logistic model on `examples/data/clicks.jsonl`
//! with scaled numbers and hashed strings. Never regenerate it; add a new file per new format.

mod common;

use std::path::Path;
use std::sync::Arc;

use eddy_models::Artifact;

const FIXTURE: &str = "tests/data/artifact-format-1.eddymodel";

#[test]
fn format_1_artifacts_still_load_and_answer_the_same() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let artifact = Artifact::read(&path)?;
    assert_eq!(artifact.meta.format_version, 1);
    assert_eq!(artifact.meta.name, "clicks");
    assert_eq!(artifact.meta.events_learned, 2000);
    assert_eq!(artifact.meta.target.as_deref(), Some("clicked"));
    let spec = Arc::new(artifact.spec()?);
    let snapshot = artifact.model.snapshot(spec);
    let answer = snapshot.predict_json(&[
        br#"{"price": 12.5, "position": 2, "site": "shop", "device": "mobile"}"#.as_slice(),
    ])?;
    let p = answer[0].as_f64().expect("a probability");
    // The value this artifact gave when it was written, bit for bit.
    assert_eq!(p.to_bits(), EXPECTED.to_bits(), "got {p:?}");

    // The command line reads it too.
    let out = common::eddy()
        .args(["model", "inspect"])
        .arg(&path)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

const EXPECTED: f64 = 0.795322387391712;
