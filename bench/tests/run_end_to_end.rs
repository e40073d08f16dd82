//! `sextant-bench run` end to end at a tiny scale, through the binary: cpu-only and logs on
//! Sextant, the Parquet peer and DuckDB (answering where `python3` imports duckdb and
//! pyarrow, as `.ci/run` installs them; `n/a` with the reason elsewhere), and tsink with
//! the `tsink` feature, the JSON's
//! schema fields, agreeing checksums; then `compare` of the two files, `--fail-if-worse`,
//! directories of rounds, and a file of another schema version.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sextant-bench"))
        .args(args)
        .output()
        .expect("sextant-bench runs")
}

/// Runs `run` with `data` flags into `dir`; the parsed JSON and the standard output.
fn run(dir: &Path, name: &str, data: &[&str]) -> (Value, String) {
    let json = dir.join(format!("{name}.json"));
    let svg = dir.join(format!("{name}.svg"));
    let mut args = vec!["run"];
    args.extend_from_slice(data);
    let (run_dir, json_s, svg_s) = (
        dir.join(name).display().to_string(),
        json.display().to_string(),
        svg.display().to_string(),
    );
    args.extend_from_slice(&[
        "--runs",
        "2",
        "--dir",
        &run_dir,
        "--json",
        &json_s,
        "--plot",
        &svg_s,
        "--partitions",
        "2",
    ]);
    let out = bench(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&svg).expect("the chart is written");
    assert!(svg.starts_with("<svg") && svg.contains("p50 latency"));
    let value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (value, stdout)
}

/// The engines of a run in this build.
fn engines() -> Vec<&'static str> {
    let mut engines = vec!["sextant", "parquet", "duckdb"];
    if cfg!(feature = "tsink") {
        engines.push("tsink");
    }
    engines
}

/// The fields every report has, and answers that agree on every query.
fn check_report(r: &Value, workload: &str, queries: usize) {
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["workload"]["name"], workload);
    assert!(r["workload"]["rows"].as_u64().unwrap() > 0);
    assert_eq!(r["settings"]["engines"], serde_json::json!(engines()));
    let phases: Vec<(String, String)> = r["ingest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["rows_per_sec"].as_f64().unwrap() > 0.0);
            assert!(p["peak_rss_bytes"].as_u64().unwrap() > 0);
            (
                p["engine"].as_str().unwrap().into(),
                p["phase"].as_str().unwrap().into(),
            )
        })
        .collect();
    let names: Vec<(&str, &str)> = phases
        .iter()
        .map(|(e, p)| (e.as_str(), p.as_str()))
        .collect();
    let mut expected = vec![
        ("sextant", "write"),
        ("sextant", "flush"),
        ("sextant", "compact"),
        ("parquet", "write"),
    ];
    let duckdb = common::duckdb_available("run_end_to_end");
    if duckdb {
        expected.extend([("duckdb", "load"), ("duckdb", "insert")]);
    }
    // tsink holds the metrics workloads only.
    if cfg!(feature = "tsink") && workload != "logs" {
        expected.extend([("tsink", "write"), ("tsink", "flush")]);
    }
    assert_eq!(names, expected);
    assert!(r["ingest"][1]["bytes_per_value"].as_f64().unwrap() > 0.0);
    assert!(!r["ingest"][0]["samples"].as_array().unwrap().is_empty());
    let qs = r["queries"].as_array().unwrap();
    assert_eq!(qs.len(), queries);
    for q in qs {
        assert_eq!(q["agree"], true, "{q}");
        let (s, p) = (&q["engines"][0], &q["engines"][1]);
        assert_eq!(
            (s["status"].as_str(), p["status"].as_str()),
            (Some("ok"), Some("ok"))
        );
        assert_eq!(s["checksum"], p["checksum"], "{}", q["name"]);
        assert_eq!(s["runs_ms"].as_array().unwrap().len(), 2);
        assert!(s["p50_ms"].as_f64().unwrap() <= s["max_ms"].as_f64().unwrap());
        assert!(p["sextant_ratio"].as_f64().unwrap() > 0.0);
        let d = &q["engines"][2];
        assert_eq!(d["engine"], "duckdb");
        if duckdb {
            assert_eq!(d["status"], "ok", "{q}");
            assert_eq!(s["checksum"], d["checksum"], "{}", q["name"]);
        } else {
            assert_eq!(d["status"], "n/a", "{q}");
            assert!(d["reason"].as_str().unwrap().contains("duckdb"), "{q}");
        }
        if cfg!(feature = "tsink") {
            let t = &q["engines"][3];
            assert_eq!(t["engine"], "tsink");
            let name = q["name"].as_str().unwrap();
            if workload == "logs" || name.starts_with("high-cpu") {
                assert_eq!(t["status"], "n/a", "{name}");
                assert!(!t["reason"].as_str().unwrap().is_empty());
            } else {
                assert_eq!(s["checksum"], t["checksum"], "{name}");
            }
        }
    }
    assert_eq!(r["all_agree"], true);
    // Agreement means something only where there are rows: most answers have some.
    let nonempty = qs
        .iter()
        .filter(|q| q["engines"][0]["rows"].as_u64().unwrap() > 0)
        .count();
    assert!(
        nonempty * 3 >= queries * 2,
        "{nonempty} of {queries} answers have rows"
    );
}

#[test]
fn run_cpu_only_and_logs_end_to_end_then_compare() {
    let dir = tempfile::Builder::new()
        .prefix("run-end-to-end")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let (cpu, stdout) = run(
        dir.path(),
        "cpu",
        &["--workload", "cpu-only", "--scale", "2", "--days", "0.05"],
    );
    check_report(&cpu, "cpu-only", 15);
    assert!(
        stdout.contains("geometric mean of sextant/parquet"),
        "{stdout}"
    );
    let (logs, _) = run(
        dir.path(),
        "logs",
        &[
            "--workload",
            "logs",
            "--events-per-second",
            "5",
            "--days",
            "0.05",
        ],
    );
    check_report(&logs, "logs", 6);

    // Two runs of one workload compare metric by metric.
    let (cpu2, _) = run(
        dir.path(),
        "cpu2",
        &[
            "--workload",
            "cpu-only",
            "--scale",
            "2",
            "--days",
            "0.05",
            "--queries",
            "lastpoint",
            "--no-parquet",
            "--no-duckdb",
            "--no-tsink",
        ],
    );
    assert_eq!(cpu2["queries"].as_array().unwrap().len(), 1);
    // The peers left out are neither loaded nor queried.
    assert_eq!(cpu2["settings"]["engines"], serde_json::json!(["sextant"]));
    assert!(
        cpu2["ingest"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["engine"] == "sextant")
    );
    // --no-duckdb-batches keeps DuckDB's bulk load (and its queries) without the second
    // load in batches.
    if common::duckdb_available("run_end_to_end") {
        let (bulk, _) = run(
            dir.path(),
            "bulk",
            &[
                "--workload",
                "cpu-only",
                "--scale",
                "2",
                "--days",
                "0.05",
                "--queries",
                "lastpoint",
                "--no-parquet",
                "--no-tsink",
                "--no-duckdb-batches",
            ],
        );
        let phases: Vec<(&str, &str)> = bulk["ingest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["engine"].as_str().unwrap(), p["phase"].as_str().unwrap()))
            .filter(|(engine, _)| *engine == "duckdb")
            .collect();
        assert_eq!(phases, [("duckdb", "load")]);
        assert_eq!(bulk["queries"][0]["engines"][1]["status"], "ok");
    }
    let (a, b) = (dir.path().join("cpu.json"), dir.path().join("cpu2.json"));
    let out = bench(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--threshold",
        "5%",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sextant write rows/s") && text.contains("lastpoint p50 ms (parquet)"));
    // A metric only the old run has is marked as missing.
    assert!(text.contains("missing"), "{text}");

    // --fail-if-worse fails on Sextant's figures only.
    let out = bench(&[
        "compare",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--fail-if-worse",
    ]);
    assert!(out.status.success());
    let slower = dir.path().join("slower.json");
    let mut doctored = cpu.clone();
    for q in doctored["queries"].as_array_mut().unwrap() {
        if q["name"] == "lastpoint" {
            let p50 = q["engines"][0]["p50_ms"].as_f64().unwrap();
            q["engines"][0]["p50_ms"] = serde_json::json!(p50 * 2.0);
        }
    }
    std::fs::write(&slower, serde_json::to_string(&doctored).unwrap()).unwrap();
    let out = bench(&[
        "compare",
        a.to_str().unwrap(),
        slower.to_str().unwrap(),
        "--fail-if-worse",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lastpoint p50 ms (sextant)"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SLOWER"), "{text}");

    // Directories of rounds compare by their medians: one doctored round of three does
    // not fail the gate, two do; a directory without reports is refused with its path.
    let rounds = |name: &str, slow: usize| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..3 {
            let from = if i < slow { &slower } else { &a };
            std::fs::copy(from, d.join(format!("{i}.json"))).unwrap();
        }
        d
    };
    let (base, one, two) = (rounds("base", 0), rounds("one", 1), rounds("two", 2));
    let gate = |new: &Path| {
        bench(&[
            "compare",
            base.to_str().unwrap(),
            new.to_str().unwrap(),
            "--fail-if-worse",
        ])
    };
    let out = gate(&one);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("the median of 3 rounds"), "{text}");
    let out = gate(&two);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lastpoint p50 ms (sextant)"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = gate(&empty);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(empty.to_str().unwrap()) && err.contains("without .json files"),
        "{err}"
    );
    // A round that is not a report is an error that names its file.
    let broken = rounds("broken", 0);
    std::fs::write(broken.join("9.json"), "{").unwrap();
    let out = gate(&broken);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("9.json"), "{err}");

    // Another schema version: a clear message and a failure status.
    let other = dir.path().join("other.json");
    let bumped = std::fs::read_to_string(&a)
        .unwrap()
        .replace("\"schema_version\": 1", "\"schema_version\": 2");
    std::fs::write(&other, bumped).unwrap();
    let out = bench(&["compare", a.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema_version 2") && err.contains("reads version 1"),
        "{err}"
    );
    let out = bench(&["compare", a.to_str().unwrap(), "/nonexistent.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.json"));
}
