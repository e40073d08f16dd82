//! The baseline: plain DataFusion over the Parquet file, set up as Sextant's session is
//! (same target partitions, a runtime with as many worker threads, UTC session time zone,
//! `time_bucket` as an alias of `date_bin`), so that the same SQL text runs on both.

use std::path::Path;

use arrow_array::RecordBatch;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::{Error, Result};

/// A DataFusion session with the Parquet file registered as a table.
pub struct Baseline {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline").finish_non_exhaustive()
    }
}

impl Baseline {
    /// A session over the Parquet file at `path`, registered as `table`, with DataFusion's
    /// defaults otherwise (strings read as Utf8View, page index and row-group statistics
    /// used for pruning, filters not pushed into the decoder).
    pub fn open(path: &Path, table: &str, target_partitions: usize) -> Result<Baseline> {
        let partitions = target_partitions.max(1);
        let mut config = SessionConfig::new().with_target_partitions(partitions);
        config.options_mut().execution.time_zone = Some("UTC".into());
        let ctx = SessionContext::new_with_config(config);
        let date_bin = datafusion::functions::datetime::date_bin();
        ctx.register_udf(ScalarUDF::clone(&date_bin).with_aliases(["time_bucket"]));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(partitions)
            .thread_name("parquet-baseline")
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
        Ok(Baseline { ctx, runtime })
    }

    /// Runs a SQL statement and returns all its batches.
    pub fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.runtime.block_on(async {
            let df = self.ctx.sql(sql).await?;
            Ok(df.collect().await?)
        })
    }
}
