//! Sources: a directory, a glob, gzip, CSV and stdin all feed the same pipeline, and a run that
//! stops inside a gzip file resumes exactly where it stopped.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::{eddy, logistic_file, run_ok, summary};

/// 3,000 records split over three files, the middle one gzipped; plus the same records in one file.
fn split_stream(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let whole = dir.join("whole.jsonl");
    logistic_file(&whole, 3_000, 9)?;
    let text = std::fs::read_to_string(&whole)?;
    let lines: Vec<&str> = text.lines().collect();
    let parts = dir.join("parts");
    std::fs::create_dir_all(&parts)?;
    std::fs::write(parts.join("a.jsonl"), lines[..1000].join("\n") + "\n")?;
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(parts.join("b.jsonl.gz"))?,
        flate2::Compression::fast(),
    );
    gz.write_all((lines[1000..2000].join("\n") + "\n").as_bytes())?;
    gz.finish()?;
    std::fs::write(parts.join("c.jsonl"), lines[2000..].join("\n") + "\n")?;
    std::fs::write(parts.join("notes.txt"), "not data")?;
    Ok(whole)
}

fn quick(input: &str, out: &Path) -> anyhow::Result<serde_json::Value> {
    run_ok(
        eddy()
            .args([
                "run",
                "--quiet",
                "--input",
                input,
                "--target",
                "y",
                "--summary-json",
            ])
            .arg(out),
    )?;
    summary(out)
}

#[test]
fn directory_glob_and_gzip_equal_one_plain_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let whole = split_stream(dir.path())?;
    let reference = quick(&whole.display().to_string(), &dir.path().join("s0.json"))?;
    let parts = dir.path().join("parts");
    let from_dir = quick(&parts.display().to_string(), &dir.path().join("s1.json"))?;
    let from_glob = quick(
        &format!("{}/*.jsonl*", parts.display()),
        &dir.path().join("s2.json"),
    )?;
    for s in [&from_dir, &from_glob] {
        assert_eq!(s["events"], 3_000);
        assert_eq!(s["metrics"], reference["metrics"]);
    }
    Ok(())
}

#[test]
fn a_run_stopped_inside_a_gzip_file_resumes_exactly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    split_stream(dir.path())?;
    let parts = dir.path().join("parts").display().to_string();
    let reference = quick(&parts, &dir.path().join("s0.json"))?;
    let ckpt = dir.path().join("ckpt");
    for max in ["1500", "600"] {
        run_ok(
            eddy()
                .args([
                    "run",
                    "--quiet",
                    "--batch-size",
                    "100",
                    "--input",
                    &parts,
                    "--target",
                    "y",
                    "--max-events",
                    max,
                ])
                .arg("--checkpoint-dir")
                .arg(&ckpt),
        )?;
    }
    let out = dir.path().join("s1.json");
    run_ok(
        eddy()
            .args([
                "run",
                "--quiet",
                "--input",
                &parts,
                "--target",
                "y",
                "--summary-json",
            ])
            .arg(&out)
            .arg("--checkpoint-dir")
            .arg(&ckpt),
    )?;
    let resumed = summary(&out)?;
    assert_eq!(resumed["resumed_from"], 2_100);
    assert_eq!(resumed["metrics"], reference["metrics"]);
    assert_eq!(resumed["learned"], 3_000);
    Ok(())
}

#[test]
fn csv_gzip_and_stdin_sources() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let whole = split_stream(dir.path())?;
    let reference = quick(&whole.display().to_string(), &dir.path().join("s0.json"))?;

    // The same records as gzipped CSV.
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&whole)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = rows[0]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut csv = names.join(",") + "\n";
    for row in &rows {
        let cells: Vec<String> = names
            .iter()
            .map(|n| match &row[n] {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .collect();
        csv.push_str(&(cells.join(",") + "\n"));
    }
    let csv_path = dir.path().join("whole.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&csv_path)?,
        flate2::Compression::fast(),
    );
    gz.write_all(csv.as_bytes())?;
    gz.finish()?;
    let from_csv = quick(&csv_path.display().to_string(), &dir.path().join("s1.json"))?;
    assert_eq!(from_csv["metrics"], reference["metrics"]);

    // And through stdin, with a pipeline file equal to what quick mode printed.
    let printed = eddy()
        .args(["run", "--print-config", "--input"])
        .arg(&whole)
        .args(["--target", "y"])
        .output()?;
    let toml = String::from_utf8(printed.stdout)?;
    let start = toml
        .find("[[features]]")
        .expect("features in the printed config");
    let pipeline = format!("[source]\ntype = \"stdin\"\n\n{}", &toml[start..]);
    let file = dir.path().join("stdin.toml");
    std::fs::write(&file, pipeline)?;
    let out = dir.path().join("s2.json");
    let mut child = eddy()
        .args(["run", "--quiet"])
        .arg(&file)
        .arg("--summary-json")
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(&whole)?)?;
    let done = child.wait_with_output()?;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(summary(&out)?["metrics"], reference["metrics"]);
    Ok(())
}
