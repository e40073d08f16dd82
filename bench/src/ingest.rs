//! The ingest benchmark: TSBS cpu-only (or noisy floats) written through the engine's
//! columnar API, then flushed, measured for size on disk and scanned back.
//!
//! Figures:
//! - ingest rate: rows (and values) per second of time spent inside the engine's write
//!   calls, and of wall-clock time including generation;
//! - bytes on disk per value after the final flush: all segment files (timestamps, tags,
//!   series index, statistics, footers) over rows x 10 fields;
//! - peak resident memory of the process (VmHWM);
//! - scan: one field of every row read back, through a full scan and by decoding the
//!   segment blocks directly, in values per second on one core (median of 7 runs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_engine::{Config, Durability, Engine, ScanRequest, TableKind};

use crate::workload::cpu::{self, CpuBatch, CpuConfig, CpuGenerator, CpuVariant};
use crate::{Error, Result};

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The workload: cpu-only or noisy floats.
    pub variant: CpuVariant,
    /// Hosts.
    pub scale: u32,
    /// Days of data.
    pub days: f64,
    /// Seed of the generator.
    pub seed: u64,
    /// Rows per write call.
    pub batch_rows: usize,
    /// Durability of the engine.
    pub durability: Durability,
    /// Writer threads (each writes whole batches; the generator is shared).
    pub threads: usize,
    /// Database directory (emptied first).
    pub dir: PathBuf,
    /// Engine option: rows per block (None: the engine's default).
    pub block_rows: Option<u32>,
    /// Engine option: zstd level (None: the engine's default).
    pub zstd_level: Option<i32>,
    /// Engine option: flush a table's memory past this many bytes (None: default).
    pub flush_bytes: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// The figures of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Rows written.
    pub rows: u64,
    /// Field values written (rows x 10).
    pub values: u64,
    /// Seconds spent inside write calls, summed over threads.
    pub write_secs: f64,
    /// Wall-clock seconds of the write phase, generation included.
    pub wall_secs: f64,
    /// Seconds of the final flush and close.
    pub close_secs: f64,
    /// Bytes of segment files after close.
    pub segment_bytes: u64,
    /// Segment files after close.
    pub segments: usize,
    /// Bytes of every file in the database directory after close (WAL included).
    pub dir_bytes: u64,
    /// Peak resident memory of the process, bytes (None where /proc is missing).
    pub peak_rss: Option<u64>,
    /// Values read by the full scan of one field, and its seconds.
    pub scan: (u64, f64),
    /// Values decoded by reading one field's blocks directly, and its seconds.
    pub decode: (u64, f64),
}

impl IngestReport {
    /// Rows per second of engine time.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.write_secs.max(1e-9)
    }

    /// Segment bytes per field value.
    pub fn bytes_per_value(&self) -> f64 {
        self.segment_bytes as f64 / self.values.max(1) as f64
    }
}

fn open_engine(opts: &IngestOptions) -> Result<Engine> {
    let mut config = Config::new(&opts.dir).durability(opts.durability);
    if let Some(b) = opts.block_rows {
        config = config.block_rows(b);
    }
    if let Some(z) = opts.zstd_level {
        config = config.zstd_level(z);
    }
    if let Some(f) = opts.flush_bytes {
        config = config.flush_bytes(f);
    }
    Ok(config.open()?)
}

/// Runs the ingest benchmark.
pub fn run(opts: &IngestOptions) -> Result<IngestReport> {
    if opts.dir.exists() {
        std::fs::remove_dir_all(&opts.dir).map_err(|source| Error::Io {
            action: "emptying",
            path: opts.dir.clone(),
            source,
        })?;
    }
    let mut config = CpuConfig::new(opts.scale, opts.days).with_seed(opts.seed);
    config.variant = opts.variant;
    let generator = CpuGenerator::new(config)?;
    let total = generator.remaining_rows();
    let hosts = generator.hosts().to_vec();
    let generator = parking_lot_free::Shared::new(generator);
    let engine = Arc::new(open_engine(opts)?);
    let bar = progress(opts.progress, total);

    let started = Instant::now();
    let threads = opts.threads.max(1);
    let results: Vec<Result<(u64, Duration)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let engine = Arc::clone(&engine);
                let generator = &generator;
                let hosts = &hosts;
                let bar = &bar;
                s.spawn(move || -> Result<(u64, Duration)> {
                    let mut batch = CpuBatch::default();
                    let mut rows = 0u64;
                    let mut in_engine = Duration::ZERO;
                    while generator.fill(&mut batch, opts.batch_rows) > 0 {
                        let record = batch.to_record_batch(hosts)?;
                        let t = Instant::now();
                        engine.write_arrow(cpu::TABLE, TableKind::Metric, &record)?;
                        in_engine += t.elapsed();
                        rows += batch.len() as u64;
                        bar.inc(batch.len() as u64);
                    }
                    Ok((rows, in_engine))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread panicked"))
            .collect()
    });
    let wall_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut rows = 0;
    let mut write_secs = 0.0;
    for r in results {
        let (n, d) = r?;
        rows += n;
        write_secs += d.as_secs_f64();
    }

    let t = Instant::now();
    let engine = Arc::into_inner(engine).expect("writers are done");
    engine.close()?;
    let close_secs = t.elapsed().as_secs_f64();
    let peak_rss = peak_rss();

    let (segment_bytes, segments, dir_bytes) = disk_usage(&opts.dir)?;
    let engine = open_engine(opts)?;
    let scan = median_of(REPEATS, || scan_field(&engine, cpu::FIELDS[0]))?;
    let decode = median_of(REPEATS, || decode_field(&engine, cpu::FIELDS[0]))?;
    engine.close()?;
    Ok(IngestReport {
        rows,
        values: rows * cpu::FIELDS.len() as u64,
        write_secs,
        wall_secs,
        close_secs,
        segment_bytes,
        segments,
        dir_bytes,
        peak_rss,
        scan,
        decode,
    })
}

/// How many times the scan figures are measured; the median is reported.
const REPEATS: usize = 7;

/// Runs `f` `n` times and returns the run with the median time.
fn median_of(n: usize, mut f: impl FnMut() -> Result<(u64, f64)>) -> Result<(u64, f64)> {
    let mut runs = (0..n).map(|_| f()).collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(runs[n / 2])
}

/// Reads one field of every row through a full scan.
fn scan_field(engine: &Engine, field: &str) -> Result<(u64, f64)> {
    scan_once(engine, cpu::TABLE, field)
}

/// Scans one column of every row of `table` `repeat` times; the median run.
pub fn scan_column(
    engine: &Engine,
    table: &str,
    column: &str,
    repeat: usize,
) -> Result<(u64, f64)> {
    median_of(repeat.max(1), || scan_once(engine, table, column))
}

fn scan_once(engine: &Engine, table: &str, column: &str) -> Result<(u64, f64)> {
    let snap = engine.snapshot();
    let t = Instant::now();
    let mut values = 0u64;
    for batch in snap.scan(&ScanRequest::new(table).columns([column]).batch_rows(65536))? {
        let batch = batch?;
        values += batch.num_rows() as u64;
        std::hint::black_box(batch.column(0).get_buffer_memory_size());
    }
    Ok((values, t.elapsed().as_secs_f64()))
}

/// Decodes every block of one field directly.
fn decode_field(engine: &Engine, field: &str) -> Result<(u64, f64)> {
    let stats = engine.snapshot().stats(cpu::TABLE)?;
    let t = Instant::now();
    let mut values = 0u64;
    for seg in &stats.segments {
        let Some(col) = seg.meta().columns.iter().position(|c| c.name == field) else {
            continue;
        };
        for b in 0..seg.meta().block_count() {
            values += seg.read_block(col, b)?.len() as u64;
        }
    }
    Ok((values, t.elapsed().as_secs_f64()))
}

/// Bytes of segment files, their number, and bytes of every file under `dir`.
pub(crate) fn disk_usage(dir: &Path) -> Result<(u64, usize, u64)> {
    let mut seg_bytes = 0;
    let mut segs = 0;
    let mut all = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| Error::Io {
            action: "listing",
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| Error::Io {
                action: "listing",
                path: d.clone(),
                source,
            })?;
            let meta = e.metadata().map_err(|source| Error::Io {
                action: "reading",
                path: e.path(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                all += meta.len();
                if e.path().extension().is_some_and(|x| x == "seg") {
                    seg_bytes += meta.len();
                    segs += 1;
                }
            }
        }
    }
    Ok((seg_bytes, segs, all))
}

/// Peak resident set size of this process, from /proc/self/status (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A progress bar of `total` rows on standard error (hidden unless `show`).
pub(crate) fn progress(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}

mod parking_lot_free {
    use std::sync::Mutex;

    use crate::workload::cpu::{CpuBatch, CpuGenerator};

    /// A generator shared by writer threads.
    pub struct Shared(Mutex<CpuGenerator>);

    impl Shared {
        pub fn new(g: CpuGenerator) -> Self {
            Shared(Mutex::new(g))
        }

        /// Fills `batch` with the next rows; 0 when the workload is done.
        pub fn fill(&self, batch: &mut CpuBatch, rows: usize) -> usize {
            self.0.lock().expect("generator lock").fill(batch, rows)
        }
    }
}
