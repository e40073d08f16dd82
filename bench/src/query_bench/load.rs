//! Loading the benchmark's two data sets from one generated workload: Sextant through the
//! columnar API, and a Parquet file of the same rows sorted by hostname then time.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sextant_engine::{Config, Durability, TableKind};
use sextant_query::{Database, QueryOptions};

use crate::ingest::progress;
use crate::workload::cpu::{self, CpuBatch, CpuConfig, CpuGenerator};
use crate::{Error, Result};

/// Rows generated per write call into Sextant.
const BATCH_ROWS: usize = 10_000;

/// Rows held in memory while the Parquet file is written: the hosts are taken in hostname
/// order, as many per pass over the generator as fit in this budget (about 90 bytes a row).
const PASS_ROWS: u64 = 4_000_000;

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

/// What writing the Parquet file took.
#[derive(Debug, Clone)]
pub struct ParquetLoad {
    /// Rows written.
    pub rows: u64,
    /// Seconds of the whole write, generation and sorting included.
    pub write_secs: f64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Row groups in the file.
    pub row_groups: usize,
}

/// Writes the workload of `config` to a Parquet file at `path`: zstd (the parquet crate's
/// default level), at most `row_group_rows` rows per row group, sorted by hostname then
/// time, in the cpu table's schema (tags Utf8, time Timestamp(ns, "UTC"), fields Float64).
///
/// The generator emits rows time-major, so the hosts are taken in hostname order a chunk at
/// a time (a pass over the generator per chunk), which bounds the memory held.
pub fn write_parquet(
    config: &CpuConfig,
    path: &Path,
    row_group_rows: usize,
    show_progress: bool,
) -> Result<ParquetLoad> {
    let started = Instant::now();
    let generator = CpuGenerator::new(config.clone())?;
    let hosts = generator.hosts().to_vec();
    let total = generator.remaining_rows();
    drop(generator);
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    order.sort_by(|&a, &b| hosts[a].hostname.cmp(&hosts[b].hostname));
    let per_pass = (PASS_ROWS / config.epochs().max(1)).max(1) as usize;

    let schema = plain_schema(&cpu::schema());
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let file = File::create(path).map_err(|source| Error::Io {
        action: "creating",
        path: path.to_path_buf(),
        source,
    })?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;
    let bar = progress(show_progress, total);
    let mut rows = 0u64;
    for chunk in order.chunks(per_pass) {
        // slot[host] = the host's place in this chunk.
        let mut slot = vec![usize::MAX; hosts.len()];
        for (i, &h) in chunk.iter().enumerate() {
            slot[h] = i;
        }
        let mut per_host: Vec<CpuBatch> = vec![CpuBatch::default(); chunk.len()];
        for batch in CpuGenerator::new(config.clone())?.batches(65_536) {
            for i in 0..batch.len() {
                let s = slot[batch.host[i] as usize];
                if s == usize::MAX {
                    continue;
                }
                let out = &mut per_host[s];
                out.time.push(batch.time[i]);
                out.host.push(batch.host[i]);
                for (f, values) in out.fields.iter_mut().enumerate() {
                    values.push(batch.fields[f][i]);
                }
            }
        }
        for one in &per_host {
            let record = one.to_record_batch(&hosts)?;
            let record = RecordBatch::try_new(Arc::clone(&schema), record.columns().to_vec())?;
            writer.write(&record)?;
            rows += one.len() as u64;
            bar.inc(one.len() as u64);
        }
    }
    let meta = writer.close()?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(path)
        .map_err(|source| Error::Io {
            action: "reading the size of",
            path: path.to_path_buf(),
            source,
        })?
        .len();
    Ok(ParquetLoad {
        rows,
        write_secs: started.elapsed().as_secs_f64(),
        bytes,
        row_groups: meta.num_row_groups(),
    })
}

/// `schema` without field metadata (Sextant's `sextant.role` markers mean nothing to a
/// Parquet reader).
fn plain_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(Default::default()))
        .collect();
    Arc::new(Schema::new(fields))
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
