//! The engines a run queries: Sextant, and the peers it is compared with.
//!
//! A peer is loaded from the same generated rows as Sextant and then answers the same
//! [`BenchQuery`]s through [`Engine`]. DataFusion over a Parquet file is always on.
//!
//! # Adding a peer
//!
//! A third peer (tsink, behind a cargo feature) is a self-contained module with a type
//! implementing [`Engine`] and a loader; wiring it in takes:
//! 1. a variant of [`Peer`] (under `#[cfg(feature = "...")]`) and its name in
//!    [`Peer::name`] and [`Peer::enabled`];
//! 2. an arm in [`Peer::load`] that loads the workload and returns the engine and its
//!    [`Phase`] figures;
//! 3. in [`Engine::statement`], `Err(reason)` for the queries it cannot express: the report
//!    then prints `n/a` with the reason instead of a figure.

use std::path::Path;

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
    /// The name in tables and JSON: `sextant`, `parquet`.
    fn name(&self) -> &'static str;

    /// The statement this engine runs for `query`, or why it cannot express it (a sentence).
    fn statement(&self, query: &BenchQuery) -> Result<String, String>;

    /// Runs a statement given by [`Engine::statement`] and returns all its batches.
    fn execute(&self, statement: &str) -> Result<Vec<RecordBatch>>;

    /// The `EXPLAIN ANALYZE` text of a statement; `None` where the engine has none.
    fn explain(&self, statement: &str) -> Result<Option<String>> {
        let _ = statement;
        Ok(None)
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

    fn execute(&self, statement: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.0.sql(statement)?)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(&self.execute(&format!("EXPLAIN ANALYZE {statement}"))?).map(Some)
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

    fn execute(&self, statement: &str) -> Result<Vec<RecordBatch>> {
        self.0.sql(statement)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(&self.execute(&format!("EXPLAIN ANALYZE {statement}"))?).map(Some)
    }
}

/// The peers Sextant is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// DataFusion over a Parquet file ([`Parquet`]).
    Parquet,
}

/// How peers load their data.
#[derive(Debug, Clone)]
pub struct PeerOptions<'a> {
    /// The directory of the run; each peer keeps its files under it.
    pub dir: &'a Path,
    /// DataFusion target partitions (and runtime threads) of SQL peers.
    pub target_partitions: usize,
    /// Most rows per Parquet row group.
    pub row_group_rows: usize,
    /// Show progress bars.
    pub progress: bool,
}

impl Peer {
    /// Every peer this build has.
    pub const ALL: &'static [Peer] = &[Peer::Parquet];

    /// The peer's engine name.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Parquet => "parquet",
        }
    }

    /// Whether the run includes the peer (`--no-parquet` turns the Parquet peer off).
    pub fn enabled(self, no_parquet: bool) -> bool {
        match self {
            Peer::Parquet => !no_parquet,
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
        }
    }
}

/// The plan column of an `EXPLAIN ANALYZE` answer.
fn plan_text(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    for batch in batches {
        let Some(plan) = batch.column_by_name("plan") else {
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
