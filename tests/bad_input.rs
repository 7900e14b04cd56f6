//! One bad record of each kind among good ones: each is dead-lettered with its reason and
//! position, counted, and none stops the pipeline or reaches the model.

mod common;

use common::{eddy, latest_checkpoint, run_ok, summary};

fn good_json(i: usize) -> String {
    format!(
        r#"{{"a": {}, "b": {}, "site": "s{}", "y": {}}}"#,
        i % 13,
        (i * 7) % 5,
        i % 4,
        i % 2
    )
}

#[test]
fn each_kind_of_bad_json_record_is_dead_lettered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bad = [
        (r#"{"a": 1, "b": 2, "site": "s1", "y": 1"#, "malformed_json"),
        (r#"{"a": 1, "b": 2, "site": "s1"}"#, "missing_field"),
        (
            r#"{"a": 1e999, "b": 2, "site": "s1", "y": 0}"#,
            "out_of_range",
        ),
        (
            r#"{"a": "one", "b": 2, "site": "s1", "y": 0}"#,
            "wrong_type",
        ),
        (r#"{"a": 1, "b": 2, "site": "s1", "y": 3}"#, "out_of_range"),
        (r#"[1, 2, 3]"#, "not_an_object"),
    ];
    let mut lines: Vec<String> = (0..200).map(good_json).collect();
    for (k, (record, _)) in bad.iter().enumerate() {
        lines.insert(10 + 30 * k, (*record).to_owned());
    }
    let data = dir.path().join("mixed.jsonl");
    std::fs::write(&data, lines.join("\n") + "\n")?;
    let dead = dir.path().join("dead.jsonl");
    let out = dir.path().join("s.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&data)
            .args(["--target", "y"])
            .arg("--checkpoint-dir")
            .arg(dir.path().join("ckpt"))
            .arg("--dead-letters")
            .arg(&dead)
            .arg("--summary-json")
            .arg(&out),
    )?;

    let s = summary(&out)?;
    assert_eq!(s["dead_lettered"], bad.len());
    assert_eq!(s["learned"], 200);
    assert_eq!(s["events"], 200 + bad.len());

    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(letters.len(), bad.len());
    for (k, ((record, kind), letter)) in bad.iter().zip(&letters).enumerate() {
        assert_eq!(letter["kind"], *kind, "{letter}");
        assert_eq!(letter["raw"], *record);
        let line = 10 + 30 * k + 1;
        assert_eq!(
            letter["origin"],
            format!("{}:{line}", data.display()),
            "{letter}"
        );
        assert!(!letter["reason"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(letters[3]["field"], "a");
    assert_eq!(letters[1]["field"], "y");

    let checkpoint = latest_checkpoint(&dir.path().join("ckpt"))?;
    assert!(common::linear(&checkpoint.model)
        .weights()
        .iter()
        .all(|w| w.is_finite()));
    assert!(common::linear(&checkpoint.model).intercept().is_finite());
    Ok(())
}

#[test]
fn each_kind_of_bad_csv_row_is_dead_lettered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut rows: Vec<String> = (0..100)
        .map(|i| format!("{},{},s{},{}", i % 9, i % 4, i % 3, i % 2))
        .collect();
    let bad = [
        ("1,2,s1", "wrong_column_count"),
        ("NaN,2,s1,1", "not_finite"),
        ("1,inf,s1,0", "not_finite"),
        ("abc,2,s1,0", "wrong_type"),
        ("1,2,s1,", "missing_field"),
    ];
    for (k, (row, _)) in bad.iter().enumerate() {
        rows.insert(5 + 20 * k, (*row).to_owned());
    }
    let data = dir.path().join("mixed.csv");
    std::fs::write(&data, format!("a,b,site,y\n{}\n", rows.join("\n")))?;
    let dead = dir.path().join("dead.jsonl");
    let out = dir.path().join("s.json");
    run_ok(
        eddy()
            .args(["run", "--quiet", "--input"])
            .arg(&data)
            .args(["--target", "y"])
            .arg("--dead-letters")
            .arg(&dead)
            .arg("--summary-json")
            .arg(&out),
    )?;
    let s = summary(&out)?;
    assert_eq!(s["dead_lettered"], bad.len());
    assert_eq!(s["learned"], 100);
    let kinds: Vec<String> = std::fs::read_to_string(&dead)?
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["kind"].as_str().unwrap_or("").to_owned())
        })
        .collect::<Result<_, _>>()?;
    let expected: Vec<&str> = bad.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, expected);
    Ok(())
}

#[test]
fn late_events_are_dead_lettered_by_the_window_operator() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Per-station readings one minute apart; one reading arrives over three hours late.
    let mut lines = Vec::new();
    for i in 0..240u64 {
        let station = ["a", "b"][(i % 2) as usize];
        let t = 1_700_000_000 + 60 * i;
        lines.push(format!(
            r#"{{"station": "{station}", "t": {t}, "temp": {}, "y": {}}}"#,
            10 + i % 7,
            10 + (i + 1) % 7
        ));
    }
    lines.insert(
        200,
        r#"{"station": "a", "t": 1700000000, "temp": 3, "y": 4}"#.to_owned(),
    );
    let data = dir.path().join("readings.jsonl");
    std::fs::write(&data, lines.join("\n") + "\n")?;
    let dead = dir.path().join("dead.jsonl");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[source]
type = "file"
path = "{}"

[[features]]
type = "window"
field = "temp"
key = "station"
time_field = "t"
unit = "s"
size_seconds = 3600
slide_seconds = 600
aggregates = ["mean", "max"]
max_out_of_orderness_seconds = 60
allowed_lateness_seconds = 300

[[features]]
type = "standard_scaler"
fields = ["temp"]

[model]
type = "linear"
target = "y"

[serve]
enabled = false

[sinks.dead_letters]
type = "file"
path = "{}"
"#,
            data.display(),
            dead.display()
        ),
    )?;
    let out = dir.path().join("s.json");
    run_ok(
        eddy()
            .args(["run", "--quiet"])
            .arg(&pipeline)
            .arg("--summary-json")
            .arg(&out),
    )?;
    let s = summary(&out)?;
    assert_eq!(s["dead_lettered"], 1);
    assert_eq!(s["learned"], 240);
    let letter: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&dead)?.trim())?;
    assert_eq!(letter["kind"], "late", "{letter}");
    assert!(
        letter["raw"].as_str().unwrap_or("").contains("1700000000"),
        "{letter}"
    );
    Ok(())
}
