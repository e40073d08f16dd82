//! The driver process: `python3` running [`SCRIPT`], which speaks the protocol of
//! [`crate::peers::driver`] (its requests are described at the top of `driver.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::PEER;
use crate::peers::driver::{Driver, Stderr};
use crate::{Error, Result};

/// The driver script, written next to the peer's database when the peer starts.
pub const SCRIPT: &str = include_str!("driver.py");

/// The Python interpreter: `$SEXTANT_BENCH_PYTHON`, else `python3` on the `PATH`.
pub fn python() -> String {
    std::env::var("SEXTANT_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Writes [`SCRIPT`] into `dir` and starts it with [`python()`]; checks that it imports
/// duckdb and pyarrow (the `hello` request). Returns the driver and the versions it
/// reported: `duckdb 2.0.1, pyarrow 26.0.1, python 3.11.7`.
pub fn start(dir: &Path) -> Result<(Driver, String)> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let script: PathBuf = dir.join("driver.py");
    std::fs::write(&script, SCRIPT).map_err(|source| Error::Io {
        action: "writing",
        path: script.clone(),
        source,
    })?;
    let python = python();
    let label = format!("the DuckDB driver (`{python} driver.py`)");
    let mut driver = Driver::spawn(
        PEER,
        label,
        Command::new(&python).arg(&script),
        Stderr::Keep,
    )
    .map_err(|e| Error::Peer {
        peer: PEER,
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "cannot start `{python} {}` ({e}); the DuckDB peer needs Python 3 with \
                 `pip install duckdb==2.0.1 pyarrow` (or set SEXTANT_BENCH_PYTHON)",
                script.display()
            )
        } else {
            format!("cannot start `{python} {}`: {e}", script.display())
        },
    })?;
    let hello = driver.request(&serde_json::json!({"op": "hello"}))?;
    let versions = format!(
        "duckdb {}, pyarrow {}, python {}",
        hello.header["duckdb"].as_str().unwrap_or("?"),
        hello.header["pyarrow"].as_str().unwrap_or("?"),
        hello.header["python"].as_str().unwrap_or("?"),
    );
    Ok((driver, versions))
}
