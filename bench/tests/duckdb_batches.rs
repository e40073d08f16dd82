//! DuckDB's load in batches (the `insert` phase) holds what its bulk load holds: on tiny
//! cpu and logs workloads, the same columns and types, the same row count, and the same
//! checksum of a query over every row, with the `fsync_mode` DuckDB applied. And the
//! driver's framing of those batches: a corrupt batch is an error after which the driver
//! still answers; a request whose `ipc_bytes` is not a length is an error sentence, and the
//! driver exits instead of hanging. Runs where `python3` imports duckdb and pyarrow (as
//! `.ci/run` installs them; with `SEXTANT_REQUIRE_DUCKDB=1` it must); passes without
//! checking anything elsewhere.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use sextant_bench::measure::Answer;
use sextant_bench::peers::duckdb::batches::{self, Batches};
use sextant_bench::peers::duckdb::{DuckDbPeer, LoadOptions, SCRIPT, python};
use sextant_bench::workload::cpu::CpuConfig;
use sextant_bench::workload::logs::LogsConfig;
use sextant_bench::workload::source::WorkloadSpec;
use sextant_engine::Durability;

/// Loads `spec` both ways in batches of `batch_rows` and checks that the two tables agree
/// on `DESCRIBE`, `count(*)` and `query` (written against a table named `{table}`).
fn batches_hold_the_bulk_loads_rows(spec: WorkloadSpec, batch_rows: usize, query: &str) {
    let dir = tempfile::Builder::new()
        .prefix("duckdb-batches")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let opts = LoadOptions {
        load_threads: 1,
        threads: 1,
        row_group_rows: 1024,
        progress: false,
    };
    let (peer, load) = DuckDbPeer::load(&spec, &dir.path().join("duckdb"), &opts).unwrap();
    let b = Batches {
        batch_rows,
        durability: Durability::Always,
        threads: 1,
        progress: false,
    };
    let batches = batches::load(&spec, &dir.path().join("batches"), &b).unwrap();
    assert_eq!(batches.rows, spec.rows());
    assert_eq!(load.rows, spec.rows());
    assert_eq!(
        batches.batches,
        spec.rows().div_ceil(batch_rows as u64),
        "one INSERT per batch"
    );
    assert!(batches.bytes > 0 && batches.engine_secs > 0.0);
    assert!(batches.wall_secs >= batches.engine_secs);
    // As DuckDB reports it applied (`current_setting('fsync_mode')`).
    assert_eq!(batches.fsync_mode, "STANDARD");

    peer.sql(&format!(
        "ATTACH '{}' AS batches (READ_ONLY)",
        batches.path.display()
    ))
    .unwrap();
    let table = spec.table();
    let answer = |sql: String, ordered: bool| {
        let (batches, _) = peer.sql(&sql).unwrap();
        Answer::new(&batches, ordered).unwrap()
    };
    for (sql, ordered) in [
        ("DESCRIBE {table}".to_owned(), true),
        ("SELECT count(*) AS n FROM {table}".to_owned(), true),
        (query.to_owned(), false),
    ] {
        let bulk = answer(sql.replace("{table}", table), ordered);
        let batched = answer(sql.replace("{table}", &format!("batches.{table}")), ordered);
        assert!(bulk.rows() > 0, "{sql}");
        assert_eq!(
            bulk.checksum,
            batched.checksum,
            "{sql}: {:?}",
            bulk.first_difference(&batched)
        );
    }
}

#[test]
fn cpu_batches_hold_the_bulk_loads_rows() {
    if !common::duckdb_available("duckdb_batches") {
        return;
    }
    // 2 hosts for 0.01 day: 172 rows, in 4 batches.
    let spec = WorkloadSpec::Cpu(CpuConfig::new(2, 0.01));
    batches_hold_the_bulk_loads_rows(
        spec,
        50,
        "SELECT hostname, count(*), sum(usage_user), sum(usage_idle), min(time), max(time) \
         FROM {table} GROUP BY hostname",
    );
}

#[test]
fn log_batches_hold_the_bulk_loads_rows() {
    if !common::duckdb_available("duckdb_batches") {
        return;
    }
    // The level an ENUM and `time` a TIMESTAMP_NS in both tables.
    let spec = WorkloadSpec::Logs(LogsConfig::new(5, 0.01));
    batches_hold_the_bulk_loads_rows(
        spec,
        1000,
        "SELECT service, level, count(*), sum(duration_ms), count(DISTINCT trace_id), \
         min(time), max(time) FROM {table} GROUP BY service, level",
    );
}

#[test]
fn batches_apply_fsync_mode_none_when_sextant_never_syncs() {
    if !common::duckdb_available("duckdb_batches") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("duckdb-fsync")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let spec = WorkloadSpec::Cpu(CpuConfig::new(2, 0.01));
    let b = Batches {
        batch_rows: 100,
        durability: Durability::Never,
        threads: 1,
        progress: false,
    };
    let load = batches::load(&spec, dir.path(), &b).unwrap();
    assert_eq!(load.fsync_mode, "NONE");
    assert_eq!(load.rows, spec.rows());
}

/// A `python3 driver.py` child spoken to in raw bytes; its replies read by a thread, so a
/// driver that hangs fails the test instead of hanging it.
struct RawDriver {
    child: std::process::Child,
    replies: mpsc::Receiver<(Value, Vec<u8>)>,
}

impl RawDriver {
    fn start(dir: &std::path::Path) -> RawDriver {
        let script = dir.join("driver.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let mut child = Command::new(python())
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                let header: Value = serde_json::from_str(&line).unwrap();
                let mut payload = vec![0; header["ipc_bytes"].as_u64().unwrap() as usize];
                stdout.read_exact(&mut payload).unwrap();
                if send.send((header, payload)).is_err() {
                    break;
                }
                line.clear();
            }
        });
        RawDriver { child, replies }
    }

    fn send(&mut self, line: &str, payload: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.write_all(payload).unwrap();
        stdin.flush().unwrap();
    }

    /// The next reply's header, or `None` if the driver closed its output.
    fn reply(&mut self) -> Option<Value> {
        match self.replies.recv_timeout(Duration::from_secs(30)) {
            Ok((header, _)) => Some(header),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("the driver gave no reply in 30 s");
            }
        }
    }
}

impl Drop for RawDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn driver_answers_after_a_corrupt_batch_and_exits_on_a_bad_length() {
    if !common::duckdb_available("duckdb_batches") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("duckdb-framing")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let mut driver = RawDriver::start(dir.path());
    let db = dir.path().join("t.duckdb");
    driver.send(
        &serde_json::json!({
            "op": "batches_begin", "db": db.to_str().unwrap(), "table": "cpu",
            "fsync_mode": "STANDARD", "threads": 1,
        })
        .to_string(),
        &[],
    );
    let begun = driver.reply().unwrap();
    assert_eq!(begun["ok"], true, "{begun}");
    assert_eq!(begun["fsync_mode"], "STANDARD", "{begun}");
    // Sixteen bytes that are not an Arrow IPC stream: an error, and the stream in step.
    driver.send(r#"{"op": "insert", "ipc_bytes": 16}"#, b"not arrow at all");
    let corrupt = driver.reply().unwrap();
    assert_eq!(corrupt["ok"], false, "{corrupt}");
    driver.send(r#"{"op": "hello"}"#, &[]);
    let hello = driver.reply().unwrap();
    assert_eq!(hello["ok"], true, "{hello}");
    // A bad field is a sentence naming it and what it takes.
    driver.send(
        r#"{"op": "batches_begin", "db": "x", "table": "t", "fsync_mode": "FULL", "threads": 1}"#,
        &[],
    );
    let bad = driver.reply().unwrap();
    let error = bad["error"].as_str().unwrap();
    assert!(
        error.contains("`fsync_mode` is \"FULL\"") && error.contains("\"STANDARD\" or \"NONE\""),
        "{error}"
    );
    // A length that is not one: the error, then the driver exits (stdin left open).
    driver.send(r#"{"op": "insert", "ipc_bytes": -1}"#, &[]);
    let framing = driver.reply().unwrap();
    let error = framing["error"].as_str().unwrap();
    assert!(
        error.contains("`ipc_bytes` is -1") && error.contains("non-negative integer"),
        "{error}"
    );
    assert!(
        driver.reply().is_none(),
        "the driver went on after a bad length"
    );
    let status = driver.child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{status}");
}
