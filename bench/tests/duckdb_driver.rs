//! The DuckDB peer's child process misbehaving: a driver that exits, answers with what is
//! not the protocol, or stops mid-line gives an error naming what happened (never a hang
//! or a panic). The driver is replaced by a shell script through `SEXTANT_BENCH_PYTHON`,
//! which is why these cases share one test (the variable is the process's).

use std::path::Path;

use sextant_bench::peers::duckdb::{DuckDbPeer, LoadOptions};
use sextant_bench::workload::cpu::CpuConfig;
use sextant_bench::workload::source::WorkloadSpec;

/// Loading through a fake interpreter running `body` (it gets the driver's path as `$1`,
/// and ignores it); the error's text.
fn load_with(dir: &Path, name: &str, body: &str) -> String {
    let fake = dir.join(format!("{name}.sh"));
    std::fs::write(&fake, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    // SAFETY: this test binary has one test, so no other thread reads the environment.
    unsafe { std::env::set_var("SEXTANT_BENCH_PYTHON", &fake) };
    let spec = WorkloadSpec::Cpu(CpuConfig::new(2, 0.01));
    let opts = LoadOptions {
        load_threads: 1,
        threads: 1,
        row_group_rows: 1024,
        progress: false,
    };
    let started = std::time::Instant::now();
    let err = DuckDbPeer::load(&spec, &dir.join(name), &opts)
        .expect_err("a fake driver cannot load")
        .to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{name} took {:?}",
        started.elapsed()
    );
    err
}

#[test]
fn a_broken_driver_is_an_error_that_says_what_happened() {
    let dir = tempfile::Builder::new()
        .prefix("duckdb-driver")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let exited = load_with(
        dir.path(),
        "exits",
        "read line; echo 'no module named duckdb' >&2; exit 3",
    );
    assert!(
        exited.contains("gave no reply to `hello`")
            && exited.contains("exit status: 3")
            && exited.contains("no module named duckdb"),
        "{exited}"
    );
    // Garbage, then the driver hangs: it is stopped, not waited for.
    let garbage = load_with(dir.path(), "garbage", "echo 'Traceback'; sleep 60");
    assert!(
        garbage.contains("broke the protocol") && garbage.contains("not a JSON line"),
        "{garbage}"
    );
    // The drivers that exit read `hello` first: one gone before it is sent makes the
    // send fail instead (a broken pipe), a race the test lost now and then.
    let cut = load_with(dir.path(), "cut", "read line; printf '{\"ok\": tr'");
    assert!(cut.contains("ended mid-line"), "{cut}");
    let refused = load_with(
        dir.path(),
        "refuses",
        "read line; echo '{\"ok\": false, \"error\": \"no duckdb here\", \"ipc_bytes\": 0}'",
    );
    assert!(
        refused.contains("`hello` failed in the DuckDB driver")
            && refused.contains("no duckdb here"),
        "{refused}"
    );
}
