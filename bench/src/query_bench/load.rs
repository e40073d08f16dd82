//! Loading the benchmark's two data sets from one generated workload: Sextant through the
//! columnar API, and a Parquet file of the same rows sorted by hostname then time.

use std::path::Path;
use std::time::{Duration, Instant};

use sextant_engine::{Config, Durability, TableKind};
use sextant_query::{Database, QueryOptions};

use crate::ingest::progress;
pub use crate::output::parquet::ParquetLoad;
use crate::workload::cpu::{self, CpuBatch, CpuConfig, CpuGenerator};
use crate::{Error, Result};

/// Rows generated per write call into Sextant.
const BATCH_ROWS: usize = 10_000;

/// What loading Sextant took.
#[derive(Debug, Clone)]
pub struct SextantLoad {
    /// Rows written.
    pub rows: u64,
    /// Seconds inside `write_arrow` calls.
    pub write_secs: f64,
    /// Seconds of the final flush.
    pub flush_secs: f64,
    /// Bytes of segment files after the flush.
    pub segment_bytes: u64,
    /// Segment files after the flush.
    pub segments: usize,
}

/// Opens a fresh Sextant database in `dir` (Interval durability), writes the workload of
/// `config` through the columnar API in batches of 10,000 rows, and flushes it.
pub fn load_sextant(
    config: &CpuConfig,
    dir: &Path,
    target_partitions: usize,
    show_progress: bool,
) -> Result<(Database, SextantLoad)> {
    remove(dir)?;
    let engine = Config::new(dir).durability(Durability::Interval(Duration::from_secs(1)));
    let options = QueryOptions {
        target_partitions,
        ..QueryOptions::default()
    };
    let db = Database::open_with(engine, options)?;
    let mut generator = CpuGenerator::new(config.clone())?;
    let hosts = generator.hosts().to_vec();
    let bar = progress(show_progress, generator.remaining_rows());
    let mut batch = CpuBatch::default();
    let mut rows = 0u64;
    let mut in_engine = Duration::ZERO;
    while generator.fill(&mut batch, BATCH_ROWS) > 0 {
        let record = batch.to_record_batch(&hosts)?;
        let t = Instant::now();
        db.write_arrow(cpu::TABLE, TableKind::Metric, &record)?;
        in_engine += t.elapsed();
        rows += batch.len() as u64;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let t = Instant::now();
    db.flush()?;
    let flush_secs = t.elapsed().as_secs_f64();
    let (segment_bytes, segments, _) = crate::ingest::disk_usage(dir)?;
    let load = SextantLoad {
        rows,
        write_secs: in_engine.as_secs_f64(),
        flush_secs,
        segment_bytes,
        segments,
    };
    Ok((db, load))
}

/// Writes the workload of `config` to a Parquet file at `path`: zstd (the parquet crate's
/// default level), at most `row_group_rows` rows per row group, sorted by hostname then
/// time, in the cpu table's schema; see [`crate::output::parquet::write_cpu`], which
/// generates one host at a time.
pub fn write_parquet(
    config: &CpuConfig,
    path: &Path,
    row_group_rows: usize,
    show_progress: bool,
) -> Result<ParquetLoad> {
    crate::output::parquet::write_cpu(config, path, row_group_rows, show_progress)
}

/// Removes `path` (a directory or a file) if it exists.
pub(crate) fn remove(path: &Path) -> Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        return Ok(());
    };
    result.map_err(|source| Error::Io {
        action: "removing",
        path: path.to_path_buf(),
        source,
    })
}
