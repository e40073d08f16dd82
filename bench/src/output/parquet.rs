//! Writers of the workloads as Parquet files sorted by series then time, zstd-compressed:
//! what a user would otherwise query (the query benchmark's baseline reads the cpu file).
//!
//! Both stream, so the standard sizes never hold all rows at once:
//!
//! - cpu-only and noisy floats: the hosts are taken in hostname order and each host's rows
//!   generated on their own ([`CpuGenerator::host_rows`]), one host in memory at a time.
//! - logs: no per-series stream exists (a second's events are drawn across services), so an
//!   external merge sort: the time-ordered events are cut into runs of
//!   [`LogsParquetOptions::run_rows`] rows, each run is sorted and written to a temporary
//!   Parquet file beside the output, and the runs are merged into the output. A workload
//!   that fits in one run is sorted in memory. The sort is stable: events with equal
//!   service, host and time keep their generation order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{Schema, SchemaRef};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, interleave_record_batch, lexsort_to_indices, take_record_batch,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::ingest::progress;
use crate::workload::cpu::{self, CpuConfig, CpuGenerator};
use crate::workload::logs::{self, LogBatch, LogTags, LogsConfig, LogsGenerator};
use crate::{Error, Result};

/// The parquet crate's default: at most this many rows per row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 1024 * 1024;

/// What writing a Parquet file took.
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

impl ParquetLoad {
    /// One line for people: rows, megabytes, row groups, the file `out`, seconds and
    /// millions of rows per second.
    pub fn summary(&self, out: &Path) -> String {
        format!(
            "wrote {} rows, {:.1} MB in {} row group(s), to {} in {:.2} s ({:.2} M rows/s)",
            self.rows,
            self.bytes as f64 / 1e6,
            self.row_groups,
            out.display(),
            self.write_secs,
            self.rows as f64 / self.write_secs.max(1e-9) / 1e6
        )
    }
}

/// A Parquet file being written: zstd at `level` (the parquet crate's default level 1
/// unless told), at most `row_group_rows` rows per row group, `schema` without field
/// metadata (Sextant's `sextant.role` markers mean nothing to a Parquet reader).
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    path: PathBuf,
    rows: u64,
    started: Instant,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetSink {
    /// Creates (or replaces) the file at `path`.
    pub fn create(
        path: &Path,
        schema: &Schema,
        row_group_rows: usize,
        level: ZstdLevel,
    ) -> Result<ParquetSink> {
        let schema = plain_schema(schema);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .build();
        let file = File::create(path).map_err(|source| Error::Io {
            action: "creating",
            path: path.to_path_buf(),
            source,
        })?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;
        Ok(ParquetSink {
            writer,
            schema,
            path: path.to_path_buf(),
            rows: 0,
            started: Instant::now(),
        })
    }

    /// Appends `batch`, whose columns must be those of the schema (its metadata may differ).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())?;
        self.writer.write(&batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer and closes the file.
    pub fn finish(self) -> Result<ParquetLoad> {
        let meta = self.writer.close()?;
        let bytes = std::fs::metadata(&self.path)
            .map_err(|source| Error::Io {
                action: "reading the size of",
                path: self.path.clone(),
                source,
            })?
            .len();
        Ok(ParquetLoad {
            rows: self.rows,
            write_secs: self.started.elapsed().as_secs_f64(),
            bytes,
            row_groups: meta.num_row_groups(),
        })
    }
}

/// Writes the cpu workload of `config` (cpu-only or noisy floats, by its variant) to a
/// Parquet file at `path`, sorted by hostname then time, in the cpu table's schema (tags
/// Utf8, time Timestamp(ns, "UTC"), fields Float64), zstd at the crate's default level.
pub fn write_cpu(
    config: &CpuConfig,
    path: &Path,
    row_group_rows: usize,
    show_progress: bool,
) -> Result<ParquetLoad> {
    let generator = CpuGenerator::new(config.clone())?;
    let hosts = generator.hosts();
    let mut order: Vec<u32> = (0..hosts.len() as u32).collect();
    order.sort_by(|&a, &b| hosts[a as usize].hostname.cmp(&hosts[b as usize].hostname));
    let mut sink = ParquetSink::create(path, &cpu::schema(), row_group_rows, ZstdLevel::default())?;
    let bar = progress(show_progress, generator.remaining_rows());
    for host in order {
        let rows = generator.host_rows(host);
        sink.write(&rows.to_record_batch(hosts)?)?;
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    sink.finish()
}

/// How the logs are sorted.
#[derive(Debug, Clone)]
pub struct LogsParquetOptions {
    /// Most rows per row group of the output.
    pub row_group_rows: usize,
    /// Rows sorted in memory at a time (a run); about 500 bytes a row while sorting (the
    /// generated batches, their concatenation and the sorted copy). Default: 2,000,000.
    pub run_rows: usize,
    /// Show a progress bar on standard error.
    pub progress: bool,
}

impl Default for LogsParquetOptions {
    fn default() -> Self {
        LogsParquetOptions {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            run_rows: 2_000_000,
            progress: false,
        }
    }
}

/// Rows per batch read back from a run while merging, and per batch of the output.
const MERGE_BATCH_ROWS: usize = 8192;

/// Writes the logs workload of `config` to a Parquet file at `path`, sorted by service,
/// host, then time (stable), in the logs table's schema, zstd at the crate's default
/// level. Temporary runs are written beside `path` (`<path>.run<N>`) and removed.
pub fn write_logs(
    config: &LogsConfig,
    path: &Path,
    opts: &LogsParquetOptions,
) -> Result<ParquetLoad> {
    let started = Instant::now();
    let mut generator = LogsGenerator::new(config.clone())?;
    let tags = generator.tags().clone();
    let bar = progress(opts.progress, generator.remaining_rows());
    let run_rows = opts.run_rows.max(1);
    let schema = plain_schema(&logs::schema());
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0usize;
    let mut generated = 0u64;
    let mut batch = LogBatch::default();
    let result = (|| -> Result<ParquetLoad> {
        loop {
            let n = generator.fill(&mut batch, MERGE_BATCH_ROWS.min(run_rows - pending_rows));
            if n > 0 {
                pending.push(batch.to_record_batch(&tags)?);
                pending_rows += n;
                bar.inc(n as u64);
            }
            let done = n == 0;
            if pending_rows == run_rows || (done && pending_rows > 0) {
                let sorted = sort_run(&schema, &pending, generated)?;
                generated += pending_rows as u64;
                pending.clear();
                pending_rows = 0;
                if done && runs.is_empty() {
                    // Everything fits in one run: no merge.
                    let mut sink = ParquetSink::create(
                        path,
                        &schema,
                        opts.row_group_rows,
                        ZstdLevel::default(),
                    )?;
                    sink.write(&sorted)?;
                    return sink.finish();
                }
                let run = run_path(path, runs.len());
                runs.push(run.clone());
                let mut sink =
                    ParquetSink::create(&run, &schema, usize::MAX, ZstdLevel::try_new(1)?)?;
                sink.write(&sorted)?;
                sink.finish()?;
            }
            if done {
                break;
            }
        }
        let mut sink =
            ParquetSink::create(path, &schema, opts.row_group_rows, ZstdLevel::default())?;
        merge_runs(&runs, &tags, &mut sink)?;
        sink.finish()
    })();
    bar.finish_and_clear();
    for run in &runs {
        let _ = std::fs::remove_file(run);
    }
    let mut load = result?;
    load.write_secs = started.elapsed().as_secs_f64();
    Ok(load)
}

fn run_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".run{n}"));
    PathBuf::from(name)
}

/// Concatenates `batches` and sorts the rows by service, host, time and then generation
/// order (`first` is the generation number of the first row).
fn sort_run(schema: &SchemaRef, batches: &[RecordBatch], first: u64) -> Result<RecordBatch> {
    let all = concat_batches(
        schema,
        batches
            .iter()
            .map(|b| {
                RecordBatch::try_new(Arc::clone(schema), b.columns().to_vec())
                    .expect("the same columns")
            })
            .collect::<Vec<_>>()
            .iter(),
    )?;
    let order: ArrayRef = Arc::new(UInt64Array::from_iter_values(
        first..first + all.num_rows() as u64,
    ));
    let key = |name: &str| SortColumn {
        values: Arc::clone(all.column_by_name(name).expect("a logs column")),
        options: None,
    };
    let indices = lexsort_to_indices(
        &[
            key("service"),
            key("host"),
            key("time"),
            SortColumn {
                values: order,
                options: None,
            },
        ],
        None,
    )?;
    Ok(take_record_batch(&all, &indices)?)
}

/// One run being merged: its reader, its current batch and the row reached in it.
struct Cursor {
    reader: ParquetRecordBatchReader,
    batch: RecordBatch,
    row: usize,
}

impl Cursor {
    /// The merge key of the current row: the ranks of its service and host, and its time.
    fn key(
        &self,
        services: &HashMap<&str, u32>,
        hosts: &HashMap<&str, u32>,
    ) -> Result<(u32, u32, i64)> {
        let service = self.batch.column(1).as_string::<i32>().value(self.row);
        let host = self.batch.column(2).as_string::<i32>().value(self.row);
        let time = self
            .batch
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .value(self.row);
        match (services.get(service), hosts.get(host)) {
            (Some(&s), Some(&h)) => Ok((s, h, time)),
            _ => Err(Error::InvalidParameter {
                parameter: "logs",
                reason: format!(
                    "a sorted run holds an unknown service or host: {service:?}, {host:?}"
                ),
            }),
        }
    }

    /// Moves to the next row, reading the next batch when this one is done; false at the
    /// end of the run.
    fn advance(&mut self) -> Result<bool> {
        self.row += 1;
        while self.row >= self.batch.num_rows() {
            match self.reader.next() {
                Some(batch) => {
                    self.batch = batch?;
                    self.row = 0;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// The rank of each name in byte order.
fn ranks<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<&'a str, u32> {
    let mut sorted: Vec<&str> = names.collect();
    sorted.sort_unstable();
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, i as u32))
        .collect()
}

/// Merges the sorted runs into `sink`: a k-way merge on (service, host, time), ties to the
/// earlier run, so that the merge is as stable as the runs' sort.
fn merge_runs(runs: &[PathBuf], tags: &LogTags, sink: &mut ParquetSink) -> Result<()> {
    let services = ranks(tags.services.iter().map(String::as_str));
    let hosts = ranks(tags.hosts.iter().map(|h| h.name.as_str()));
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        let file = File::open(run).map_err(|source| Error::Io {
            action: "opening",
            path: run.clone(),
            source,
        })?;
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(MERGE_BATCH_ROWS)
            .build()?;
        if let Some(batch) = reader.next() {
            cursors.push(Cursor {
                reader,
                batch: batch?,
                row: 0,
            });
        }
    }
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    for (i, c) in cursors.iter().enumerate() {
        heap.push(Reverse((c.key(&services, &hosts)?, i)));
    }
    // The output batch in the making: rows picked as (source batch, row), the source
    // batches, and which source holds each cursor's current batch.
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(MERGE_BATCH_ROWS);
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut source_of: Vec<Option<usize>> = vec![None; cursors.len()];
    let mut emit =
        |picks: &mut Vec<(usize, usize)>, sources: &mut Vec<RecordBatch>| -> Result<()> {
            if !picks.is_empty() {
                let refs: Vec<&RecordBatch> = sources.iter().collect();
                sink.write(&interleave_record_batch(&refs, picks)?)?;
            }
            picks.clear();
            sources.clear();
            Ok(())
        };
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = &mut cursors[i];
        let source = *source_of[i].get_or_insert_with(|| {
            sources.push(c.batch.clone());
            sources.len() - 1
        });
        picks.push((source, c.row));
        if c.advance()? {
            if c.row == 0 {
                source_of[i] = None;
            }
            heap.push(Reverse((c.key(&services, &hosts)?, i)));
        }
        if picks.len() == MERGE_BATCH_ROWS {
            emit(&mut picks, &mut sources)?;
            source_of.fill(None);
        }
    }
    emit(&mut picks, &mut sources)
}

/// `schema` without field metadata.
fn plain_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(Default::default()))
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use arrow_array::{RecordBatchReader, StringArray, UInt32Array};

    use super::*;
    use crate::workload::cpu::CpuVariant;

    /// Every row of the file at `path`, in file order.
    fn read_back(path: &Path) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let schema = reader.schema();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        concat_batches(&schema, &batches).unwrap()
    }

    /// The rows of `all` in a stable sort by the strings of columns `a` and `b`, then time.
    fn stable_sorted(all: &RecordBatch, a: &str, b: Option<&str>) -> RecordBatch {
        let text = |name: &str| all.column_by_name(name).unwrap().as_string::<i32>().clone();
        let first: StringArray = text(a);
        let second: Option<StringArray> = b.map(text);
        let time = all.column(0).as_primitive::<TimestampNanosecondType>();
        let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
        order.sort_by(|&x, &y| {
            let (x, y) = (x as usize, y as usize);
            first
                .value(x)
                .cmp(first.value(y))
                .then_with(|| match &second {
                    Some(s) => s.value(x).cmp(s.value(y)),
                    None => std::cmp::Ordering::Equal,
                })
                .then(time.value(x).cmp(&time.value(y)))
        });
        take_record_batch(all, &UInt32Array::from(order)).unwrap()
    }

    #[test]
    fn cpu_file_reads_back_to_the_generated_rows_sorted_by_hostname_then_time() {
        for variant in [CpuVariant::CpuOnly, CpuVariant::NoisyFloats] {
            // 12 hosts: host_10 and host_11 sort before host_2.
            let config = CpuConfig::new(12, 0.05).with_seed(3).with_variant(variant);
            let generator = CpuGenerator::new(config.clone()).unwrap();
            let hosts = generator.hosts().to_vec();
            let batches: Vec<RecordBatch> = generator
                .batches(500)
                .map(|b| b.to_record_batch(&hosts).unwrap())
                .collect();
            let all = concat_batches(&cpu::schema(), &batches).unwrap();
            let expected = stable_sorted(&all, "hostname", None);

            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cpu.parquet");
            let load = write_cpu(&config, &path, 1000, false).unwrap();
            assert_eq!(load.rows, config.rows());
            assert_eq!(load.row_groups, (config.rows() as usize).div_ceil(1000));
            let got = read_back(&path);
            assert_eq!(got.schema().fields().len(), expected.num_columns());
            assert_eq!(got.columns(), expected.columns(), "{variant:?}");
        }
    }

    #[test]
    fn logs_file_reads_back_to_the_generated_rows_sorted_by_service_host_then_time() {
        let mut config = LogsConfig::new(50, 1.0).with_seed(9);
        config.end_ns = config.start_ns + 120 * crate::time::NANOS_PER_SECOND;
        let mut generator = LogsGenerator::new(config.clone()).unwrap();
        let tags = generator.tags().clone();
        let mut batches = Vec::new();
        while let Some(b) = generator.next_batch(700) {
            batches.push(b.to_record_batch(&tags).unwrap());
        }
        let all = concat_batches(&logs::schema(), &batches).unwrap();
        assert_eq!(all.num_rows(), 6000);
        let expected = stable_sorted(&all, "service", Some("host"));

        let dir = tempfile::tempdir().unwrap();
        // One run sorted in memory; then 7 runs (the last short) merged from disk.
        for run_rows in [1 << 20, 900] {
            let path = dir.path().join(format!("logs-{run_rows}.parquet"));
            let opts = LogsParquetOptions {
                row_group_rows: 2500,
                run_rows,
                progress: false,
            };
            let load = write_logs(&config, &path, &opts).unwrap();
            assert_eq!(load.rows, 6000);
            assert_eq!(load.row_groups, 3);
            let got = read_back(&path);
            assert_eq!(got.columns(), expected.columns(), "runs of {run_rows} rows");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(
                left.len(),
                if run_rows == 900 { 2 } else { 1 },
                "runs removed"
            );
        }
    }
}
