//! DuckDB as a peer, driven through its Python package: a workload's rows (cpu or logs)
//! bulk-loaded into a persistent DuckDB table sorted by series then time (a log's `level`
//! an ENUM in severity order), and the same SQL as Sextant's run on it (in DuckDB's
//! dialect where they differ, see [`dialect`]; the log queries in their plain form, as
//! the Parquet peer runs them).
//!
//! # Why Python
//!
//! The `duckdb` crate builds DuckDB's C++ sources (a very long build on 2 cores) and is
//! built on another major version of arrow than DataFusion's, so it would bring a second
//! arrow. The Python package (`pip install duckdb==2.0.1 pyarrow`) is a prebuilt wheel and
//! needs no cargo feature: the peer joins every run where `python3` imports both, and is
//! shown as `n/a` with the reason where it does not. `SEXTANT_BENCH_PYTHON` names another
//! interpreter.
//!
//! # How
//!
//! The peer starts one `python3` child running `driver.py` (embedded in this binary and
//! written into the peer's directory, `<run dir>/duckdb/`), and sends it JSON requests, one
//! a line, on its standard input; answers come back on its standard output as a JSON line
//! and an Arrow IPC stream, read here with arrow-ipc at DataFusion's arrow version
//! ([`crate::peers::driver`], [`child`]).
//!
//! - Bulk load (the `load` phase): the rows are generated into a Parquet file as the Parquet peer's (zstd, sorted
//!   by series then time), then DuckDB creates its table from it in one statement,
//!   `CREATE TABLE cpu AS SELECT ... FROM read_parquet(...) ORDER BY hostname, time`
//!   (logs: `service, host, time`), with `time` as a `TIMESTAMP` (UTC; logs, whose events
//!   carry nanoseconds: `TIMESTAMP_NS`) and a log's `level` as an ENUM of the six levels,
//!   and checkpoints. The load's rows/s counts from generation to the checkpoint, as
//!   every engine's does; its `engine_secs` is DuckDB's part alone (connecting, the
//!   statement, the checkpoint and closing). Its bytes are the database file's, its
//!   memory the child's peak resident memory (`VmHWM`, reset before the load, the
//!   interpreter's own included). The staging file is then deleted and the database
//!   reopened for the queries.
//! - Load in batches (the `insert` phase, in [`batches`]; `--no-duckdb-batches` leaves it
//!   out): after the bulk load, the same rows loaded a second time, as Sextant is loaded,
//!   by a driver of its own (another `python3` process, in `<run dir>/duckdb/batches/`),
//!   so the bulk load's driver, its figures and the queries are as they are without it.
//!   The rows are generated in Sextant's batches (`--batch-rows`), in generation (time)
//!   order; each batch is sent to that driver as an Arrow IPC stream and appended with one
//!   `INSERT INTO <table> SELECT * REPLACE (<the casts of the bulk load>) FROM <the Arrow
//!   batch>`, committed on its own (autocommit), from one client thread; the first batch
//!   creates the table, with the bulk table's columns and types. Durability as close to
//!   Sextant's `--sync` as DuckDB allows, through its `fsync_mode` ([`batches::fsync_mode`]
//!   says what each maps to: DuckDB has no periodic sync, so `interval` syncs at every
//!   commit as `always` does, and `never` is DuckDB's `NONE`). It ends with a `count(*)`,
//!   a `CHECKPOINT` and closing; its bytes are then the file's (which is then deleted, so
//!   that a run does not keep a second database on disk through the queries), its memory
//!   that driver's peak. Its rows/s counts from generation to the checkpoint, and so
//!   includes encoding each batch as Arrow IPC and sending it through the pipe;
//!   `engine_secs` is DuckDB's time in the driver alone (connecting, every `INSERT` with
//!   its commit, the count, checkpoint and close; not reading the bytes from the pipe). A
//!   failure of this load is printed and leaves its phase out; the bulk load and the
//!   queries go on.
//! - Threads: DuckDB's `SET threads` is Sextant's writer threads (`--threads`) for the
//!   load, and the run's query parallelism (`--partitions`, the number of cores by
//!   default) for the queries, as DataFusion's target partitions are for Sextant and the
//!   Parquet peer.
//! - Queries: each run is one request; the driver times `con.sql(sql).to_arrow_table()`
//!   (the statement run and its whole answer fetched as Arrow) and that time is the
//!   figure ([`Engine::execute_timed`]); sending the answer to this process is not in it.
//!   DuckDB's `TIMESTAMP` columns come back in microseconds and are converted to Sextant's
//!   nanoseconds (UTC) before the answer is checksummed (ENUMs come as Arrow dictionaries,
//!   which an answer renders as their strings).

pub mod batches;
mod child;
pub mod dialect;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use batches::Batches;
pub use child::{SCRIPT, python};

use crate::measure::remove;
use crate::memory::PeakScope;
use crate::peers::driver::{Driver, LOAD_DEADLINE, Reply};
use crate::peers::parquet::write_parquet;
use crate::peers::{Engine, PeerOptions, Unavailable, plan_text};
use crate::queries::BenchQuery;
use crate::run::{Phase, table};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};
use sextant_engine::Level;

pub(crate) const PEER: &str = "duckdb";

/// How DuckDB is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// DuckDB's `threads` for the load (Sextant's writer threads in a run).
    pub load_threads: usize,
    /// DuckDB's `threads` for the queries.
    pub threads: usize,
    /// Most rows per row group of the staging Parquet file.
    pub row_group_rows: usize,
    /// Show a progress bar while the staging file is written.
    pub progress: bool,
}

/// What loading DuckDB took.
#[derive(Debug, Clone)]
pub struct DuckDbLoad {
    /// Rows in DuckDB's table.
    pub rows: u64,
    /// Seconds of the bulk load and the checkpoint, in the driver.
    pub load_secs: f64,
    /// Seconds to write the staging Parquet file (not part of the load figures).
    pub staging_secs: f64,
    /// Seconds to reopen the database for the queries.
    pub reopen_secs: f64,
    /// Bytes of the database file (and its WAL, if one is left) after the load.
    pub bytes: u64,
    /// Peak resident memory of the driver during the load, and its scope.
    pub memory: (Option<u64>, PeakScope),
    /// duckdb, pyarrow and Python versions, as the driver reported them.
    pub versions: String,
}

/// A DuckDB database holding a workload, open for queries in a driver process.
#[derive(Debug)]
pub struct DuckDbPeer {
    driver: Mutex<Driver>,
    path: PathBuf,
    /// Whether the table's `time` is a `TIMESTAMP_NS`.
    nanoseconds: bool,
}

impl DuckDbPeer {
    /// Starts a driver in `dir` (emptied first), bulk-loads the workload of `spec` into
    /// `dir/<table>.duckdb` (the `load` phase), and leaves it open for queries. The load in
    /// batches is not part of it: [`batches::load`] runs it in a driver of its own. Errors
    /// of the driver (Python or its packages missing, DuckDB failing) are [`Error::Peer`]
    /// with what the driver said.
    pub fn load(
        spec: &WorkloadSpec,
        dir: &Path,
        opts: &LoadOptions,
    ) -> Result<(DuckDbPeer, DuckDbLoad)> {
        remove(dir)?;
        let (mut driver, versions) = child::start(dir)?;
        let staging = dir.join(format!("{}.parquet", spec.table()));
        let staged = write_parquet(spec, &staging, opts.row_group_rows, opts.progress)?;
        let path = dir.join(format!("{}.duckdb", spec.table()));
        let mut order: Vec<&str> = spec.series_columns().to_vec();
        order.push("time");
        // A log level is an ENUM in severity order, as a DuckDB user would declare it.
        let (enums, time_type) = (enums(spec), time_type(spec));
        let load = serde_json::json!({
            "op": "load",
            "db": path_str(&path)?,
            "parquet": path_str(&staging)?,
            "table": spec.table(),
            "order": order,
            "enums": enums,
            "time_type": time_type,
            "load_threads": opts.load_threads.max(1),
            "threads": opts.threads.max(1),
        });
        // The staging file goes whether or not the load succeeded (at the standard size
        // it is a gigabyte).
        let reply = driver.request_within(&load, &[], LOAD_DEADLINE);
        remove(&staging)?;
        let reply = reply?;
        let rows = reply.number("rows")? as u64;
        if rows != staged.rows {
            return Err(Error::Peer {
                peer: PEER,
                message: format!(
                    "DuckDB's table holds {rows} rows after loading a file of {}",
                    staged.rows
                ),
            });
        }
        let (memory, bytes) = (peak_memory(&reply), database_bytes(&path));
        let load = DuckDbLoad {
            rows,
            load_secs: reply.number("secs")?,
            staging_secs: staged.write_secs,
            reopen_secs: reply.number("reopen_secs")?,
            bytes,
            memory,
            versions,
        };
        let peer = DuckDbPeer {
            driver: Mutex::new(driver),
            path,
            nanoseconds: time_type == "TIMESTAMP_NS",
        };
        Ok((peer, load))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The driver's process id.
    pub fn pid(&self) -> u32 {
        self.lock().pid()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `sql` (DuckDB's dialect) and returns its answer, timestamps in nanoseconds
    /// (UTC), and the seconds DuckDB took to run it and fetch the answer as Arrow.
    pub fn sql(&self, sql: &str) -> Result<(Vec<RecordBatch>, Duration)> {
        let reply: Reply = self
            .lock()
            .request(&serde_json::json!({"op": "query", "sql": sql}))?;
        let took = reply.duration("secs")?;
        let batches = reply
            .batches()?
            .iter()
            .map(nanosecond_timestamps)
            .collect::<Result<Vec<_>>>()?;
        Ok((batches, took))
    }

    /// Loads `spec` for `sextant-bench run`: the engine and its loading phases, the bulk
    /// `load` and then (unless `--no-duckdb-batches`) the `insert` phase of the load in
    /// batches ([`batches::load_for_run`]). A driver that cannot start or bulk-load gives an
    /// [`Unavailable`] engine whose reason is shown for every query (the reason is also
    /// printed once); a failed load in batches is printed and only its phase left out.
    pub(crate) fn engine(
        spec: &WorkloadSpec,
        opts: &PeerOptions<'_>,
    ) -> Result<(Box<dyn Engine>, Vec<Phase>)> {
        let dir = opts.dir.join(PEER);
        let load_options = LoadOptions {
            load_threads: opts.write_threads,
            threads: opts.target_partitions,
            row_group_rows: opts.row_group_rows,
            progress: opts.progress,
        };
        let (peer, load) = match DuckDbPeer::load(spec, &dir, &load_options) {
            Ok(loaded) => loaded,
            Err(e @ Error::Peer { .. }) => {
                let engine = Unavailable::after_failed_load(PEER, &e);
                return Ok((Box::new(engine), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        // Rows/s as every engine's: from generating the rows (into the staging file) to
        // the table checkpointed; DuckDB's own time is `engine_secs`.
        let mut phase = Phase::new(
            PEER,
            "load",
            spec,
            load.rows,
            load.staging_secs + load.load_secs,
        );
        phase.engine_secs = Some(load.load_secs);
        phase.set_memory(load.memory);
        phase.set_disk(load.bytes, spec);
        phase.note = Some(format!(
            "{}; {} rows/s counting only DuckDB's one CREATE TABLE ... AS SELECT ... FROM \
             read_parquet(...) ORDER BY {}, then CHECKPOINT ({:.2} s, {} thread(s)); rows/s \
             above includes generating the rows into that Parquet file ({:.2} s); peak \
             memory is the Python driver's (its interpreter and libraries included); \
             reopened for the queries in {:.1} ms",
            load.versions,
            table::count((load.rows as f64 / load.load_secs.max(1e-9)).round() as u64),
            [spec.series_columns(), &["time"]].concat().join(", "),
            load.load_secs,
            load_options.load_threads.max(1),
            load.staging_secs,
            load.reopen_secs * 1e3,
        ));
        let mut phases = vec![phase];
        if opts.duckdb_batches {
            let b = Batches {
                batch_rows: opts.batch_rows,
                durability: opts.durability,
                threads: opts.write_threads,
                progress: opts.progress,
            };
            phases.extend(batches::load_for_run(spec, &dir.join("batches"), &b));
        }
        Ok((Box::new(peer), phases))
    }
}

/// The ENUM columns of `spec`'s table and their values: a log level is an ENUM in severity
/// order, as a DuckDB user would declare it.
pub(super) fn enums(spec: &WorkloadSpec) -> serde_json::Value {
    match spec {
        WorkloadSpec::Cpu(_) => serde_json::json!({}),
        WorkloadSpec::Logs(_) => serde_json::json!({ "level": Level::NAMES }),
    }
}

/// The type of `time`: the cpu rows fall on whole seconds, so a `TIMESTAMP`
/// (microseconds), as TSBS's TimescaleDB schema has it; log events carry nanoseconds,
/// which need `TIMESTAMP_NS`.
pub(super) fn time_type(spec: &WorkloadSpec) -> &'static str {
    match spec {
        WorkloadSpec::Cpu(_) => "TIMESTAMP",
        WorkloadSpec::Logs(_) => "TIMESTAMP_NS",
    }
}

/// The driver's peak memory in `reply`, and its scope.
pub(super) fn peak_memory(reply: &Reply) -> (Option<u64>, PeakScope) {
    match (
        reply.header["peak_rss_bytes"].as_u64(),
        reply.header["peak_scope"].as_str(),
    ) {
        (Some(b), Some("phase")) => (Some(b), PeakScope::Phase),
        (Some(b), _) => (Some(b), PeakScope::Process),
        (None, _) => (None, PeakScope::Unavailable),
    }
}

/// Bytes of the database file at `path` and of its WAL, if one is left.
pub(super) fn database_bytes(path: &Path) -> u64 {
    [path.to_path_buf(), path.with_extension("duckdb.wal")]
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|meta| meta.len())
        .sum()
}

pub(super) fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::InvalidParameter {
        parameter: "dir",
        reason: format!(
            "{} is not UTF-8, which the DuckDB driver needs",
            path.display()
        ),
    })
}

/// `batch` with every timestamp column in nanoseconds, UTC (Sextant's `time`).
/// Dictionaries (DuckDB's ENUMs) are left as they are: an answer renders them as strings.
fn nanosecond_timestamps(batch: &RecordBatch) -> Result<RecordBatch> {
    let target = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let schema = batch.schema();
    let differs =
        |f: &Field| matches!(f.data_type(), DataType::Timestamp(..)) && f.data_type() != &target;
    if !schema.fields().iter().any(|f| differs(f)) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if differs(field) {
            columns.push(arrow_cast::cast(column, &target)?);
            fields.push(Field::new(
                field.name(),
                target.clone(),
                field.is_nullable(),
            ));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

impl Engine for DuckDbPeer {
    fn name(&self) -> &'static str {
        PEER
    }

    /// The plain SQL of the query: a DuckDB ENUM compares with a string literal as text
    /// (`level >= 'warn'` would leave out `error`), so the log queries' severity
    /// comparisons are spelled out as the Parquet peer's are.
    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        dialect::translate(
            query.portable_sql.as_deref().unwrap_or(&query.sql),
            self.nanoseconds,
        )
    }

    fn execute(&self, query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.execute_timed(query, statement)?.0)
    }

    /// The time measured in the driver, around running the statement and fetching its
    /// answer as Arrow.
    fn execute_timed(
        &self,
        _query: &BenchQuery,
        statement: &str,
    ) -> Result<(Vec<RecordBatch>, Duration)> {
        self.sql(statement)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        let (batches, _) = self.sql(&format!("EXPLAIN ANALYZE {statement}"))?;
        plan_text(&batches, "explain_value").map(Some)
    }
}
