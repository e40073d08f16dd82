//! The `sextant` program as a user runs it: the demo, SQL from `-c` and standard input,
//! import with a bad line, and errors as sentences with a failing exit code.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sextant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .expect("the sextant binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_prints_the_story_and_runs_again_on_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    for run in 0..2 {
        let out = sextant(&["demo", "--data", path(&data)]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
        for title in [
            "What changed? Deploys",
            "Error rate per service per minute",
            "Top error messages",
            "Latest CPU per host",
        ] {
            assert!(
                stdout.contains(title),
                "run {run}: {title} missing:\n{stdout}"
            );
        }
        assert!(stdout.contains("| 2026-01-01T12:15:00Z | checkout | 2.4.1   | ben    |"));
        assert!(stdout.contains("payment gateway timeout after 5000 ms"));
        assert!(stdout.contains("sql --data"), "says how to go on");
    }
    // The second run replaced the first one's rows rather than adding to them.
    let out = sextant(&[
        "sql",
        "--data",
        path(&data),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM deploys",
    ]);
    assert_eq!(text(&out.stdout), "n\n3\n");
}

#[test]
fn demo_refuses_a_database_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mine");
    let lines = dir.path().join("cpu.lp");
    std::fs::write(&lines, "cpu,host=a usage_user=1 1000000000\n").unwrap();
    let out = sextant(&["import", "--data", path(&data), path(&lines)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sextant(&["demo", "--data", path(&data)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not a directory the demo made"), "{stderr}");
    let out = sextant(&[
        "sql",
        "--data",
        path(&data),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM cpu",
    ]);
    assert_eq!(text(&out.stdout), "n\n1\n", "the user's rows are untouched");
}

#[test]
fn import_keeps_good_lines_reports_bad_ones_and_sql_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let lp = dir.path().join("cpu.lp");
    std::fs::write(
        &lp,
        "cpu,host=a usage=1.5 1700000000\ncpu,host=b usage=oops 1700000000\n\n\
         cpu,host=c usage=3 1700000001\n",
    )
    .unwrap();
    let logs = dir.path().join("app.jsonl");
    std::fs::write(
        &logs,
        "{\"time\":\"2026-01-01T00:00:00Z\",\"level\":\"error\",\"message\":\"disk full\"}\n",
    )
    .unwrap();
    let out = sextant(&[
        "import",
        "--data",
        path(&data),
        "--precision",
        "s",
        path(&lp),
        path(&logs),
    ]);
    assert_eq!(out.status.code(), Some(1), "a rejected line fails the run");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cpu.lp:2:") && stderr.contains("oops"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("2 rows written, 1 line rejected"));

    let out = sextant(&[
        "sql",
        "--data",
        path(&data),
        "--format",
        "csv",
        "-c",
        "SELECT host, usage FROM cpu ORDER BY host; SELECT level, message FROM logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "host,usage\na,1.5\nc,3.0\nlevel,message\nerror,disk full\n"
    );
}

#[test]
fn sql_reads_statements_from_standard_input_and_reports_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let lp = dir.path().join("m.lp");
    std::fs::write(&lp, "m,host=a v=2 1\n").unwrap();
    assert!(
        sextant(&["import", "--data", path(&data), path(&lp)])
            .status
            .success()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["sql", "--data", path(&data), "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT v FROM m;\nSELECT nope\n FROM m;\nSELECT v * 2 AS w FROM m;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "{\"v\":2.0}\n{\"w\":4.0}\n");
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed statement fails the run"
    );
}

#[test]
fn bad_input_is_a_sentence_and_a_failing_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let out = sextant(&["sql", "--data", path(&missing), "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("holds no Sextant database"));

    let data = dir.path().join("db");
    let lp = dir.path().join("m.lp");
    std::fs::write(&lp, "m v=1 1\n").unwrap();
    assert!(
        sextant(&["import", "--data", path(&data), path(&lp)])
            .status
            .success()
    );
    let out = sextant(&["sql", "--data", path(&data), "-c", "SELEC 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("sextant: SQL error"),
        "{}",
        text(&out.stderr)
    );

    let xml = dir.path().join("x.xml");
    std::fs::write(&xml, "<a/>\n").unwrap();
    let out = sextant(&["import", "--data", path(&data), path(&xml)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown kind of file"));

    // A configuration file with a key that is no flag, or a value a flag refuses.
    let config = dir.path().join("sextant.toml");
    std::fs::write(&config, "htp = \"127.0.0.1:0\"\n").unwrap();
    let out = sextant(&["serve", "--config", path(&config)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sextant.toml: `htp` is not a flag of `sextant serve`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&config, "query-timeout = \"soon\"\n").unwrap();
    let out = sextant(&["serve", "--config", path(&config)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("with the flags of") && stderr.contains("soon"),
        "{stderr}"
    );
    let out = sextant(&["serve", "--postgres-password", ""]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));
}

#[test]
fn inspect_lists_tables_columns_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let lines = dir.path().join("cpu.lp");
    std::fs::write(
        &lines,
        "cpu,host=a usage_user=1 1000000000\ncpu,host=b usage_user=2 2000000000\n",
    )
    .unwrap();
    let out = sextant(&["import", "--data", path(&data), path(&lines)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sextant(&["inspect", "--data", path(&data)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("cpu (metric): 2 rows"), "{stdout}");
    assert!(stdout.contains("usage_user"), "{stdout}");
    assert!(stdout.contains("level 0"), "{stdout}");
    assert!(
        stdout.contains("1970-01-01T00:00:01.000Z to 1970-01-01T00:00:02.000Z"),
        "{stdout}"
    );
    let out = sextant(&["inspect", "--data", path(&dir.path().join("nothing"))]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no MANIFEST"));
}

#[test]
fn import_reads_csv_with_tags_and_rfc3339_or_integer_times() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let csv = dir.path().join("latency.csv");
    std::fs::write(
        &csv,
        "time,service,p99,ok\n2026-01-01T12:00:00Z,api,12.5,true\n2026-01-01T12:00:10Z,web,,false\n",
    )
    .unwrap();
    let out = sextant(&[
        "import",
        "--data",
        path(&data),
        "--tags",
        "service",
        path(&csv),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 rows written"),
        "{}",
        text(&out.stdout)
    );
    let seconds = dir.path().join("cpu.csv");
    std::fs::write(
        &seconds,
        "time,host,usage\n1700000000,a,1\n1700000010,a,2\n",
    )
    .unwrap();
    let out = sextant(&[
        "import",
        "--data",
        path(&data),
        "--precision",
        "s",
        "--tags",
        "host",
        path(&seconds),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sextant(&[
        "sql",
        "--data",
        path(&data),
        "--format",
        "csv",
        "-c",
        "SELECT service, p99, ok FROM latency ORDER BY time; SELECT host, usage, time FROM cpu ORDER BY time",
    ]);
    assert_eq!(
        text(&out.stdout),
        "service,p99,ok\napi,12.5,true\nweb,,false\nhost,usage,time\na,1,2023-11-14T22:13:20Z\na,2,2023-11-14T22:13:30Z\n",
        "{}",
        text(&out.stderr)
    );
    // A CSV file without a time column is refused whole, naming the file.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "host,usage\na,1\n").unwrap();
    let out = sextant(&["import", "--data", path(&data), path(&bad)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no `time` column"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn test_rules_passes_a_good_file_and_fails_a_wrong_one_with_the_differences() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts/tests/data");
    let out = sextant(&["test-rules", path(&data.join("rules_test.toml"))]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("5 of 5 tests passed"),
        "{}",
        text(&out.stdout)
    );
    let out = sextant(&["test-rules", path(&data.join("failing_test.toml"))]);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("firing but not expected: {host=\"a\""),
        "{stdout}"
    );
    assert!(stdout.contains("0 of 2 tests passed"), "{stdout}");
}

#[test]
fn backtest_runs_a_rule_over_the_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    assert!(sextant(&["demo", "--data", path(&data)]).status.success());
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "Errors"
sql = """
SELECT service, count(*) AS value FROM logs
WHERE level >= 'error' AND time > eval_time() - INTERVAL '5 minutes' AND time <= eval_time()
GROUP BY service HAVING count(*) > 5
"""
"#,
    )
    .unwrap();
    let args = [
        "backtest",
        "--data",
        path(&data),
        "--rules",
        path(&rules),
        "--rule",
        "Errors",
    ];
    // The demo's half hour starts at 2026-01-01T12:00:00Z.
    let range = [
        "--from",
        "2026-01-01T12:00:00Z",
        "--to",
        "2026-01-01T12:40:00Z",
    ];
    let out = sextant(&[&args[..], &range, &["--json"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rule"], "Errors");
    assert_eq!(report["evaluations"], 41, "{report}");
    assert!(
        report["firstFiring"].is_string(),
        "the demo's error burst fires: {report}"
    );
    assert!(!report["instances"].as_array().unwrap().is_empty());
    let out = sextant(&[&args[..], &["--from", "yesterday"]].concat());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a time"),
        "{}",
        text(&out.stderr)
    );
}
