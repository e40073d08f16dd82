//! What the bench's test files share.

use std::process::Command;

/// Whether python3 imports duckdb and pyarrow here. Where it does not, the caller's
/// checks of DuckDB are skipped, said on standard error; with `SEXTANT_REQUIRE_DUCKDB=1`
/// (which `.ci/run` sets once it has installed them) that is a failure instead.
pub fn duckdb_available(test: &str) -> bool {
    let available = Command::new(sextant_bench::peers::duckdb::python())
        .args(["-c", "import duckdb, pyarrow"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        available || std::env::var_os("SEXTANT_REQUIRE_DUCKDB").is_none_or(|v| v != "1"),
        "SEXTANT_REQUIRE_DUCKDB=1, but python3 cannot import duckdb and pyarrow"
    );
    if !available {
        eprintln!("{test}: DuckDB's checks skipped: python3 cannot import duckdb and pyarrow");
    }
    available
}
