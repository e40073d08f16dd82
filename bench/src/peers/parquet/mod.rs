//! Plain DataFusion over a Parquet file of the rows, the peer that shows what Sextant's
//! own storage adds to the same query engine.
//!
//! - Load ([`write_parquet`]): the rows generated into one Parquet file (zstd, sorted by series
//!   then time, at most `--row-group-rows` rows per row group), in passes over the
//!   generator that hold a bounded number of rows ([`PASS_ROWS`]). One phase, `parquet
//!   write`: its rate includes generation, its bytes are the file's.
//! - Queries ([`ParquetPeer`]): a DataFusion session set up as Sextant's is (same target
//!   partitions, a runtime with as many worker threads, UTC session time zone,
//!   `time_bucket` as an alias of `date_bin`), so that the same SQL text runs on both; the
//!   log queries run in their portable form (plain DataFusion compares level strings
//!   alphabetically and has no `level_rank`).
//!
//! DuckDB's bulk load stages its rows through the same writer.

mod write;

use std::path::Path;

use arrow_array::RecordBatch;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use super::{Engine, PeerOptions, plan_text};
use crate::measure::remove;
use crate::memory::PhaseMemory;
use crate::queries::BenchQuery;
use crate::run::Phase;
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

pub use write::{PASS_ROWS, ParquetLoad, write_parquet};

const PEER: &str = "parquet";

/// A DataFusion session with the Parquet file registered as a table.
pub struct ParquetPeer {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ParquetPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetPeer").finish_non_exhaustive()
    }
}

impl ParquetPeer {
    /// A session over the Parquet file at `path`, registered as `table`, with DataFusion's
    /// defaults otherwise (strings read as Utf8View, page index and row-group statistics
    /// used for pruning, filters not pushed into the decoder).
    pub fn open(path: &Path, table: &str, target_partitions: usize) -> Result<ParquetPeer> {
        let partitions = target_partitions.max(1);
        let mut config = SessionConfig::new().with_target_partitions(partitions);
        config.options_mut().execution.time_zone = Some("UTC".into());
        let ctx = SessionContext::new_with_config(config);
        let date_bin = datafusion::functions::datetime::date_bin();
        ctx.register_udf(ScalarUDF::clone(&date_bin).with_aliases(["time_bucket"]));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(partitions)
            .thread_name("parquet-peer")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                action: "starting a runtime for",
                path: path.to_path_buf(),
                source,
            })?;
        let location = path.to_str().ok_or_else(|| Error::InvalidParameter {
            parameter: "dir",
            reason: format!("{} is not UTF-8", path.display()),
        })?;
        runtime.block_on(ctx.register_parquet(table, location, ParquetReadOptions::default()))?;
        Ok(ParquetPeer { ctx, runtime })
    }

    /// Runs a SQL statement and returns all its batches.
    pub fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(async {
            let df = self.ctx.sql(sql).await?;
            Ok(df.collect().await?)
        })
    }

    /// Loads `spec` for `sextant-bench run`: writes `<run dir>/<table>.parquet` (replaced)
    /// and opens a session over it; the engine and its loading phase, `write`.
    pub(crate) fn engine(
        spec: &WorkloadSpec,
        opts: &PeerOptions<'_>,
    ) -> Result<(Box<dyn Engine>, Vec<Phase>)> {
        let path = opts.dir.join(format!("{}.parquet", spec.table()));
        remove(&path)?;
        let memory = PhaseMemory::start();
        let load = write_parquet(spec, &path, opts.row_group_rows, opts.progress)?;
        let mut phase = Phase::new(PEER, "write", spec, load.rows, load.write_secs);
        phase.set_memory(memory.peak());
        phase.set_disk(load.bytes, spec);
        phase.samples = load.samples;
        phase.note = Some(format!(
            "{} row groups, {} passes over the generator",
            load.row_groups, load.passes
        ));
        let peer = ParquetPeer::open(&path, spec.table(), opts.target_partitions)?;
        Ok((Box::new(peer), vec![phase]))
    }
}

impl Engine for ParquetPeer {
    fn name(&self) -> &'static str {
        PEER
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
        self.sql(statement)
    }

    fn explain(&self, statement: &str) -> Result<Option<String>> {
        plan_text(&self.sql(&format!("EXPLAIN ANALYZE {statement}"))?, "plan").map(Some)
    }
}
