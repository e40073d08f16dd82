//! The engines `sextant-bench run` ([`crate::run`]) queries: Sextant, and the peers it is
//! set beside, each in a module of its own and all answering through one trait,
//! [`Engine`].
//!
//! - [`sextant`]: Sextant through its SQL layer, and its load (write, flush, compact).
//! - [`parquet`]: plain DataFusion over a Parquet file of the rows; always on.
//! - [`duckdb`]: DuckDB through its Python package, in a child process; it joins where
//!   `python3` imports duckdb and pyarrow, and is `n/a` with the reason elsewhere (no cargo
//!   feature).
//! - `tsink`: the embedded Rust TSDB, linked into the binary, so behind the `tsink` cargo
//!   feature: the default build compiles none of it. In a run it is loaded and queried in
//!   a process of its own, the same binary as `sextant-bench tsink-peer`, as DuckDB is in
//!   its Python driver: each engine in the bench process then has only its own data there.
//! - [`driver`]: the protocol spoken with a peer in a process of its own.
//!
//! A peer loads the same generated rows as Sextant through its own API, as a competent
//! user would (tsink the cpu workloads; Parquet and DuckDB the cpu and log workloads), and
//! then answers the same [`BenchQuery`]s through its native API or SQL. Answers compare
//! across engines by checksum ([`crate::measure::Answer`]). A query a peer cannot express
//! is `n/a` with the reason ([`Engine::statement`] gives it; a peer's own API says
//! [`Unanswered::NotAvailable`]), never a made-up figure.
//!
//! # Adding a peer
//!
//! A peer is a module here (a file, or a folder when it needs several) with its loader and
//! a type implementing [`Engine`]; wiring it in takes:
//! 1. a variant of [`Peer`] (under `#[cfg(feature = "...")]` if it has a feature), in
//!    [`Peer::ALL`] and [`Peer::name`], and a `--no-<peer>` flag in `src/main.rs` (its
//!    `peers` function);
//! 2. a function of the peer's module that loads the workload for a run from
//!    [`PeerOptions`] and returns the engine and the [`Phase`] figures of each loading
//!    phase (or an [`Unavailable`] engine for a workload it cannot hold, or a load that
//!    failed in the peer), and an arm calling it in [`Peer::load`];
//! 3. in [`Engine::statement`], `Err(reason)` for the queries it cannot express: the report
//!    then prints `n/a` with the reason instead of a figure.

pub mod driver;
pub mod duckdb;
pub mod parquet;
pub mod sextant;
#[cfg(feature = "tsink")]
pub mod tsink;

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;

use crate::Result;
use crate::queries::BenchQuery;
use crate::run::Phase;
use crate::workload::source::WorkloadSpec;

/// Something that answers the benchmark's queries: Sextant, or one of its peers.
pub trait Engine {
    /// The name in tables and JSON: `sextant`, `parquet`, `duckdb`, `tsink`.
    fn name(&self) -> &'static str;

    /// What this engine runs for `query` (its SQL, or the native calls it makes), or why it
    /// cannot express the query (a sentence).
    fn statement(&self, query: &BenchQuery) -> Result<String, String>;

    /// Runs `query`, whose statement [`Engine::statement`] gave, and returns all its batches.
    fn execute(&self, query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>>;

    /// Runs `query` as [`Engine::execute`] does, and returns its batches and how long it
    /// took: by default the wall time of [`Engine::execute`] in this process; an engine
    /// that runs in another process (DuckDB's driver, tsink's process) gives the time it
    /// measured there.
    fn execute_timed(
        &self,
        query: &BenchQuery,
        statement: &str,
    ) -> Result<(Vec<RecordBatch>, Duration)> {
        let started = Instant::now();
        let batches = self.execute(query, statement)?;
        Ok((batches, started.elapsed()))
    }

    /// The `EXPLAIN ANALYZE` text of a statement; `None` where the engine has none.
    fn explain(&self, statement: &str) -> Result<Option<String>> {
        let _ = statement;
        Ok(None)
    }
}

/// An engine that could not load the workload: every query is `n/a` with the reason.
#[derive(Debug)]
pub struct Unavailable {
    /// The engine's name.
    pub name: &'static str,
    /// Why it holds no data (a sentence).
    pub reason: String,
}

impl Unavailable {
    /// The engine `name` after its load failed with `error`: the whole error (with the
    /// end of a driver's standard error) is printed once, and each query's reason is its
    /// first part, without the driver's output.
    pub fn after_failed_load(name: &'static str, error: &crate::Error) -> Unavailable {
        eprintln!("sextant-bench: the {name} peer failed to load; its queries are n/a: {error}");
        let whole = error.to_string();
        let first = whole
            .split("; its standard error:")
            .next()
            .unwrap_or_default();
        let mut reason: String = first.chars().take(300).collect();
        if reason.len() < whole.len() {
            reason.push_str(" (the whole error is printed above the tables)");
        }
        Unavailable {
            name,
            reason: format!("loading failed: {reason}"),
        }
    }
}

impl Engine for Unavailable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn statement(&self, _query: &BenchQuery) -> Result<String, String> {
        Err(self.reason.clone())
    }

    /// Never called: [`Engine::statement`] refuses every query, and a run executes only
    /// what it accepted. An error rather than an empty answer, should that change.
    fn execute(&self, query: &BenchQuery, _statement: &str) -> Result<Vec<RecordBatch>> {
        Err(crate::Error::Peer {
            peer: self.name,
            message: format!("holds no data to answer {}: {}", query.name, self.reason),
        })
    }
}

/// Why a peer's native API gave no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// The peer's API cannot express the query; the reason says what is missing.
    NotAvailable(&'static str),
    /// The peer failed while answering.
    Failed(crate::Error),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::NotAvailable(reason) => write!(f, "not available: {reason}"),
            Unanswered::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl From<crate::Error> for Unanswered {
    fn from(e: crate::Error) -> Self {
        Unanswered::Failed(e)
    }
}

/// The peers Sextant is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// DataFusion over a Parquet file ([`parquet`]).
    Parquet,
    /// DuckDB through its Python package ([`duckdb`]); `n/a` where Python cannot import
    /// duckdb and pyarrow.
    DuckDb,
    /// tsink through its native API ([`tsink`]).
    #[cfg(feature = "tsink")]
    Tsink,
}

/// How peers load their data.
#[derive(Debug, Clone)]
pub struct PeerOptions<'a> {
    /// The directory of the run; each peer keeps its files under it.
    pub dir: &'a Path,
    /// DataFusion target partitions (and runtime threads) of SQL peers; DuckDB's threads
    /// for the queries.
    pub target_partitions: usize,
    /// Sextant's writer threads (`--threads`), for peers whose load can use several.
    pub write_threads: usize,
    /// Most rows per Parquet row group.
    pub row_group_rows: usize,
    /// Rows per write call, for peers loaded through write calls (as Sextant's).
    pub batch_rows: usize,
    /// Sextant's durability, for peers with a write-ahead log of their own.
    pub durability: sextant_engine::Durability,
    /// Also load DuckDB in batches of `batch_rows`, each committed (its `insert` phase,
    /// beside the bulk `load`); `--no-duckdb-batches` leaves it out.
    pub duckdb_batches: bool,
    /// Show progress bars.
    pub progress: bool,
}

impl Peer {
    /// Every peer this build has.
    pub const ALL: &'static [Peer] = &[
        Peer::Parquet,
        Peer::DuckDb,
        #[cfg(feature = "tsink")]
        Peer::Tsink,
    ];

    /// The peer's engine name.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Parquet => "parquet",
            Peer::DuckDb => "duckdb",
            #[cfg(feature = "tsink")]
            Peer::Tsink => "tsink",
        }
    }

    /// Loads `spec` into the peer: the engine, ready for queries, and the figures of each
    /// loading phase.
    pub fn load(
        self,
        spec: &WorkloadSpec,
        opts: &PeerOptions<'_>,
    ) -> Result<(Box<dyn Engine>, Vec<Phase>)> {
        match self {
            Peer::Parquet => parquet::ParquetPeer::engine(spec, opts),
            Peer::DuckDb => duckdb::DuckDbPeer::engine(spec, opts),
            #[cfg(feature = "tsink")]
            Peer::Tsink => tsink::process::TsinkProcess::engine(spec, opts),
        }
    }
}

/// The text in `column` of an `EXPLAIN ANALYZE` answer (DataFusion's `plan`, DuckDB's
/// `explain_value`).
pub(crate) fn plan_text(batches: &[RecordBatch], column: &str) -> Result<String> {
    let mut out = String::new();
    for batch in batches {
        let Some(plan) = batch.column_by_name(column) else {
            continue;
        };
        let plan = arrow_cast::cast(plan, &DataType::Utf8)?;
        for line in plan.as_string::<i32>().iter().flatten() {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}
