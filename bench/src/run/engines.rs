//! The engines a run queries: Sextant, and the peers it is compared with.
//!
//! A peer is loaded from the same generated rows as Sextant and then answers the same
//! [`BenchQuery`]s through [`Engine`]. DataFusion over a Parquet file is always on; DuckDB
//! (through its Python package, [`crate::peers::duckdb`]) joins where `python3` imports
//! duckdb and pyarrow, and is `n/a` with the reason elsewhere; tsink (the embedded Rust
//! TSDB) joins with the `tsink` cargo feature and answers through its native API.
//!
//! # Adding a peer
//!
//! A peer is a self-contained module (see [`crate::peers`]) with a loader and a type
//! implementing [`Engine`]; wiring it in takes:
//! 1. a variant of [`Peer`] (under `#[cfg(feature = "...")]` if it has a feature), in [`Peer::ALL`] and
//!    [`Peer::name`], and a `--no-<peer>` flag in `src/main.rs` (its `peers` function);
//! 2. an arm in [`Peer::load`] that loads the workload and returns the engine and its
//!    [`Phase`] figures (or [`Unavailable`] for a workload it cannot hold);
//! 3. in [`Engine::statement`], `Err(reason)` for the queries it cannot express: the report
//!    then prints `n/a` with the reason instead of a figure.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use sextant_query::Database;

use super::report::Phase;
use crate::Result;
use crate::memory::PhaseMemory;
use crate::queries::BenchQuery;
use crate::query_bench::{Baseline, remove, write_parquet};
use crate::workload::source::WorkloadSpec;

/// Something that answers the benchmark's queries.
pub trait Engine {
    /// The name in tables and JSON: `sextant`, `parquet`, `tsink`.
    fn name(&self) -> &'static str;

    /// What this engine runs for `query` (its SQL, or the native calls it makes), or why it
    /// cannot express the query (a sentence).
    fn statement(&self, query: &BenchQuery) -> Result<String, String>;

    /// Runs `query`, whose statement [`Engine::statement`] gave, and returns all its batches.
    fn execute(&self, query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>>;

    /// Runs `query` as [`Engine::execute`] does, and returns its batches and how long it
    /// took: by default the wall time of [`Engine::execute`] in this process; an engine
    /// that runs in another process (DuckDB's driver) gives the time it measured there.
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

/// Sextant through its SQL layer.
#[derive(Debug)]
pub struct Sextant(pub Database);

impl Engine for Sextant {
    fn name(&self) -> &'static str {
        "sextant"
    }

    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        Ok(query.sql.clone())
    }

    fn execute(&self, _query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.0.sql(statement)?)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(
            &self.0.sql(&format!("EXPLAIN ANALYZE {statement}"))?,
            "plan",
        )
        .map(Some)
    }
}

/// DataFusion over a Parquet file of the rows (zstd, sorted by series then time).
#[derive(Debug)]
pub struct Parquet(pub Baseline);

impl Engine for Parquet {
    fn name(&self) -> &'static str {
        "parquet"
    }

    /// The portable form where the query has one: plain DataFusion compares level strings
    /// alphabetically and has no `level_rank`.
    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        Ok(query
            .portable_sql
            .clone()
            .unwrap_or_else(|| query.sql.clone()))
    }

    fn execute(&self, _query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>> {
        self.0.sql(statement)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(
            &self.0.sql(&format!("EXPLAIN ANALYZE {statement}"))?,
            "plan",
        )
        .map(Some)
    }
}

/// The peers Sextant is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// DataFusion over a Parquet file ([`Parquet`]).
    Parquet,
    /// DuckDB through its Python package ([`crate::peers::duckdb`]); `n/a` where Python
    /// cannot import duckdb and pyarrow.
    DuckDb,
    /// tsink through its native API ([`Tsink`]).
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
            Peer::Parquet => {
                let path = opts.dir.join(format!("{}.parquet", spec.table()));
                remove(&path)?;
                let memory = PhaseMemory::start();
                let load = write_parquet(spec, &path, opts.row_group_rows, opts.progress)?;
                let mut phase = Phase::new("parquet", "write", spec, load.rows, load.write_secs);
                phase.set_memory(memory.peak());
                phase.set_disk(load.bytes, spec);
                phase.samples = load.samples;
                phase.note = Some(format!(
                    "{} row groups, {} passes over the generator",
                    load.row_groups, load.passes
                ));
                let baseline = Baseline::open(&path, spec.table(), opts.target_partitions)?;
                Ok((Box::new(Parquet(baseline)), vec![phase]))
            }
            Peer::DuckDb => crate::peers::duckdb::DuckDbPeer::engine(spec, opts),
            #[cfg(feature = "tsink")]
            Peer::Tsink => Tsink::load(spec, opts),
        }
    }
}

/// tsink through its native API ([`crate::peers::tsink`]): the devops queries it can
/// express, answered as a competent user of its API would.
#[cfg(feature = "tsink")]
#[derive(Debug)]
pub struct Tsink(pub crate::peers::tsink::TsinkPeer);

#[cfg(feature = "tsink")]
impl Tsink {
    /// Loads the cpu workloads. The logs workload, which this peer does not load, and a
    /// load that fails in tsink give an [`Unavailable`] engine whose reason is shown for
    /// every query: a peer's failure does not discard Sextant's figures.
    fn load(spec: &WorkloadSpec, opts: &PeerOptions<'_>) -> Result<(Box<dyn Engine>, Vec<Phase>)> {
        let dir = opts.dir.join("tsink");
        let WorkloadSpec::Cpu(config) = spec else {
            // Not to be mistaken for this run's data.
            remove(&dir)?;
            let engine = Unavailable {
                name: "tsink",
                reason: "the tsink peer loads the cpu workloads only: its select API could \
                         count events per service or level (labels), but not search message \
                         text, look up a trace id or rank templates, so the logs workload is \
                         not wired to it"
                    .to_owned(),
            };
            return Ok((Box::new(engine), Vec::new()));
        };
        let load_options = crate::peers::tsink::LoadOptions {
            batch_rows: opts.batch_rows,
            durability: opts.durability,
            progress: opts.progress,
        };
        let (peer, load) = match crate::peers::tsink::TsinkPeer::load(config, &dir, &load_options) {
            Ok(loaded) => loaded,
            Err(e @ crate::Error::Peer { .. }) => {
                eprintln!("sextant-bench: the tsink peer failed to load; its queries are n/a: {e}");
                let engine = Unavailable {
                    name: "tsink",
                    reason: format!("loading failed: {e}"),
                };
                return Ok((Box::new(engine), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let mut write = Phase::new("tsink", "write", spec, load.rows, load.wall_secs);
        write.engine_secs = Some(load.write_secs);
        write.set_memory(load.write_memory);
        write.samples = load.samples;
        write.note = Some(format!(
            "{} rows/s counting only the time inside insert_rows calls ({} points, one per \
             value; one writer thread; rows/s above includes generation and building tsink's \
             rows)",
            super::table::count((load.rows as f64 / load.write_secs.max(1e-9)).round() as u64),
            super::table::count(load.points),
        ));
        if load.background_errors > 0
            && let Some(note) = write.note.as_mut()
        {
            note.push_str(&format!(
                "; {} background flush/compaction failure(s), retried (last: {})",
                load.background_errors,
                load.last_background_error.as_deref().unwrap_or("not given")
            ));
        }
        let mut flush = Phase::new("tsink", "flush", spec, load.rows, load.close_secs);
        flush.set_disk(load.bytes, spec);
        flush.set_memory(load.close_memory);
        flush.note = Some(format!(
            "close = final flush; every file of its directory; reopened for the queries in {:.2} s",
            load.reopen_secs
        ));
        Ok((Box::new(Tsink(peer)), vec![write, flush]))
    }
}

#[cfg(feature = "tsink")]
impl Engine for Tsink {
    fn name(&self) -> &'static str {
        "tsink"
    }

    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        use crate::peers::tsink::TsinkPeer;
        let Some(devops) = &query.devops else {
            return Err("tsink answers only the devops queries".to_owned());
        };
        match TsinkPeer::unavailable(devops) {
            Some(reason) => Err(reason.to_owned()),
            None => Ok(TsinkPeer::calls(devops)),
        }
    }

    fn execute(&self, query: &BenchQuery, _statement: &str) -> Result<Vec<RecordBatch>> {
        use crate::peers::Unanswered;
        let devops = query.devops.as_ref().ok_or_else(|| crate::Error::Peer {
            peer: "tsink",
            message: format!("{} is not a devops query", query.name),
        })?;
        match self.0.batch(devops) {
            Ok(batch) => Ok(vec![batch]),
            Err(Unanswered::Failed(e)) => Err(e),
            Err(Unanswered::NotAvailable(reason)) => Err(crate::Error::Peer {
                peer: "tsink",
                message: reason.to_owned(),
            }),
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
