//! DuckDB's load in batches (the `insert` phase) holds what its bulk load holds: on tiny
//! cpu and logs workloads, the same columns and types, the same row count, and the same
//! checksum of a query over every row. Runs where `python3` imports duckdb and pyarrow (as
//! `.ci/run` installs them; with `SEXTANT_REQUIRE_DUCKDB=1` it must); passes without
//! checking anything elsewhere.

use std::process::Command;

use sextant_bench::measure::Answer;
use sextant_bench::peers::duckdb::{Batches, DuckDbPeer, LoadOptions, python};
use sextant_bench::workload::cpu::CpuConfig;
use sextant_bench::workload::logs::LogsConfig;
use sextant_bench::workload::source::WorkloadSpec;
use sextant_engine::Durability;

/// Whether python3 imports duckdb and pyarrow here.
fn duckdb_available() -> bool {
    let available = Command::new(python())
        .args(["-c", "import duckdb, pyarrow"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        available || std::env::var_os("SEXTANT_REQUIRE_DUCKDB").is_none_or(|v| v != "1"),
        "SEXTANT_REQUIRE_DUCKDB=1, but python3 cannot import duckdb and pyarrow"
    );
    available
}

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
        batches: Some(Batches {
            batch_rows,
            durability: Durability::Always,
        }),
    };
    let (peer, load) = DuckDbPeer::load(&spec, &dir.path().join("duckdb"), &opts).unwrap();
    let batches = load.batches.as_ref().expect("the batches were loaded");
    assert_eq!(batches.rows, spec.rows());
    assert_eq!(load.rows, spec.rows());
    assert_eq!(
        batches.batches,
        spec.rows().div_ceil(batch_rows as u64),
        "one INSERT per batch"
    );
    assert!(batches.bytes > 0 && batches.engine_secs > 0.0);
    assert!(batches.wall_secs >= batches.engine_secs);
    assert_eq!(batches.fsync_mode, "STANDARD");

    let path = peer.batches_path().expect("a database of the batches");
    peer.sql(&format!(
        "ATTACH '{}' AS batches (READ_ONLY)",
        path.display()
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
    if !duckdb_available() {
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
    if !duckdb_available() {
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
