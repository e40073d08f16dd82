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
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sextant_engine::{Config, Durability, Engine, ScanRequest};

use crate::Result;
use crate::measure::disk_usage;
use crate::memory;
use crate::workload::cpu::{self, CpuConfig, CpuVariant};
use crate::workload::source::{RawBatch, WorkloadSpec};

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
    /// Writer threads (each writes whole batches; the generator is shared).
    pub threads: usize,
    /// Database directory (emptied first).
    pub dir: PathBuf,
    /// The engine's options.
    pub tuning: EngineTuning,
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
    /// The figures for people, as `sextant-bench ingest` prints them after its settings.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out)
            .expect("writing to a String does not fail");
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        use std::fmt::Write;
        writeln!(out, "rows: {}  values: {}", self.rows, self.values)?;
        writeln!(
            out,
            "ingest: {:.0} rows/s ({:.1} M values/s) in engine calls ({:.2} s); {:.0} rows/s wall-clock with generation ({:.2} s)",
            self.rows_per_sec(),
            self.rows_per_sec() * 10.0 / 1e6,
            self.write_secs,
            self.rows as f64 / self.wall_secs.max(1e-9),
            self.wall_secs
        )?;
        writeln!(out, "final flush and close: {:.2} s", self.close_secs)?;
        writeln!(
            out,
            "on disk: {} bytes in {} segment(s) = {:.3} bytes/value; directory total {} bytes",
            self.segment_bytes,
            self.segments,
            self.bytes_per_value(),
            self.dir_bytes
        )?;
        match self.peak_rss {
            Some(b) => writeln!(out, "peak RSS: {:.1} MiB", b as f64 / (1 << 20) as f64)?,
            None => writeln!(out, "peak RSS: n/a (no /proc/self/status)")?,
        }
        writeln!(
            out,
            "scan one field, every row: {:.1} M values/s ({} values, {:.3} s)",
            self.scan.0 as f64 / self.scan.1.max(1e-9) / 1e6,
            self.scan.0,
            self.scan.1
        )?;
        writeln!(
            out,
            "decode one field's blocks: {:.1} M values/s ({} values, {:.3} s)",
            self.decode.0 as f64 / self.decode.1.max(1e-9) / 1e6,
            self.decode.0,
            self.decode.1
        )?;
        Ok(())
    }

    /// Rows per second of engine time.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.write_secs.max(1e-9)
    }

    /// Segment bytes per field value.
    pub fn bytes_per_value(&self) -> f64 {
        self.segment_bytes as f64 / self.values.max(1) as f64
    }
}

/// The engine options a benchmark sets; `None` leaves the engine's default.
#[derive(Debug, Clone)]
pub struct EngineTuning {
    /// Durability of the writes.
    pub durability: Durability,
    /// Rows per column block.
    pub block_rows: Option<u32>,
    /// zstd level of segment blocks.
    pub zstd_level: Option<i32>,
    /// Flush a table's rows in memory past this many bytes.
    pub flush_bytes: Option<usize>,
    /// Whether the background compactor runs (the engine's default: yes).
    pub background_compaction: bool,
}

impl EngineTuning {
    /// The engine's configuration for a database in `dir`.
    pub fn config(&self, dir: &Path) -> Config {
        let mut config = Config::new(dir).durability(self.durability);
        if let Some(b) = self.block_rows {
            config = config.block_rows(b);
        }
        if let Some(z) = self.zstd_level {
            config = config.zstd_level(z);
        }
        if let Some(f) = self.flush_bytes {
            config = config.flush_bytes(f);
        }
        config.background_compaction(self.background_compaction)
    }
}

fn open_engine(opts: &IngestOptions) -> Result<Engine> {
    Ok(opts.tuning.config(&opts.dir).open()?)
}

/// Runs the ingest benchmark.
pub fn run(opts: &IngestOptions) -> Result<IngestReport> {
    crate::measure::remove(&opts.dir)?;
    let mut config = CpuConfig::new(opts.scale, opts.days).with_seed(opts.seed);
    config.variant = opts.variant;
    let spec = WorkloadSpec::Cpu(config);
    let engine = open_engine(opts)?;
    let written = write_workload(
        &engine,
        &spec,
        &WriteOptions {
            batch_rows: opts.batch_rows,
            threads: opts.threads,
            progress: opts.progress,
        },
    )?;

    let t = Instant::now();
    engine.close()?;
    let close_secs = t.elapsed().as_secs_f64();
    let peak_rss = memory::peak_rss();

    let (segment_bytes, segments, dir_bytes) = disk_usage(&opts.dir)?;
    let engine = open_engine(opts)?;
    let scan = median_of(REPEATS, || scan_field(&engine, cpu::FIELDS[0]))?;
    let decode = median_of(REPEATS, || decode_field(&engine, cpu::FIELDS[0]))?;
    engine.close()?;
    Ok(IngestReport {
        rows: written.rows,
        values: written.rows * cpu::FIELDS.len() as u64,
        write_secs: written.engine_secs,
        wall_secs: written.wall_secs,
        close_secs,
        segment_bytes,
        segments,
        dir_bytes,
        peak_rss,
        scan,
        decode,
    })
}

/// How a workload is written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Rows per write call.
    pub batch_rows: usize,
    /// Writer threads (each writes whole batches; the generator is shared).
    pub threads: usize,
    /// Show a progress bar (rows done, rate, time left) on standard error.
    pub progress: bool,
}

/// The figures of [`write_workload`].
#[derive(Debug, Clone)]
pub struct WriteFigures {
    /// Rows written.
    pub rows: u64,
    /// Seconds spent inside write calls, summed over threads.
    pub engine_secs: f64,
    /// Wall-clock seconds, generation included.
    pub wall_secs: f64,
    /// The ingest rate over time: `[seconds since the start, rows/s since the previous
    /// sample]`, about every [`SAMPLE_SECS`].
    pub samples: Vec<[f64; 2]>,
}

/// Seconds between two samples of the ingest rate.
pub const SAMPLE_SECS: f64 = 0.25;

/// Writes every row of `spec` into `engine` through the columnar API: `threads` writers
/// share one generator and convert their batches to Arrow themselves.
pub fn write_workload(
    engine: &Engine,
    spec: &WorkloadSpec,
    opts: &WriteOptions,
) -> Result<WriteFigures> {
    let generator = spec.generator()?;
    let total = generator.remaining_rows();
    let tags = generator.tags();
    let generator = Mutex::new(generator);
    let bar = progress(opts.progress, total);
    let sampler = Mutex::new(RateSampler::new());
    let done = AtomicU64::new(0);
    let batch_rows = opts.batch_rows.max(1);
    let results: Vec<Result<Duration>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..opts.threads.max(1))
            .map(|_| {
                let (generator, tags, bar, sampler, done) =
                    (&generator, &tags, &bar, &sampler, &done);
                s.spawn(move || -> Result<Duration> {
                    let mut raw = RawBatch::empty(spec);
                    let mut in_engine = Duration::ZERO;
                    while generator
                        .lock()
                        .expect("generator lock")
                        .fill(&mut raw, batch_rows)
                        > 0
                    {
                        let record = tags.to_record_batch(&raw)?;
                        let t = Instant::now();
                        engine.write_arrow(spec.table(), spec.kind(), &record)?;
                        in_engine += t.elapsed();
                        let n = raw.len() as u64;
                        let total = done.fetch_add(n, Ordering::Relaxed) + n;
                        bar.inc(n);
                        if let Ok(mut sampler) = sampler.try_lock() {
                            sampler.observe(total);
                        }
                    }
                    Ok(in_engine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread panicked"))
            .collect()
    });
    bar.finish_and_clear();
    let rows = done.into_inner();
    let mut sampler = sampler.into_inner().expect("sampler lock");
    sampler.finish(rows);
    let mut engine_secs = 0.0;
    for r in results {
        engine_secs += r?.as_secs_f64();
    }
    Ok(WriteFigures {
        rows,
        engine_secs,
        wall_secs: sampler.elapsed(),
        samples: sampler.samples,
    })
}

/// Samples of a rate: rows done over time.
#[derive(Debug)]
pub struct RateSampler {
    started: Instant,
    last: (f64, u64),
    /// `[seconds since the start, rows/s since the previous sample]`.
    pub samples: Vec<[f64; 2]>,
}

impl RateSampler {
    /// A sampler whose clock starts now.
    pub fn new() -> RateSampler {
        RateSampler {
            started: Instant::now(),
            last: (0.0, 0),
            samples: Vec::new(),
        }
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Records a sample if [`SAMPLE_SECS`] have passed since the last one; `rows` is the
    /// number of rows done since the start.
    pub fn observe(&mut self, rows: u64) {
        let now = self.elapsed();
        if now - self.last.0 >= SAMPLE_SECS {
            self.record(now, rows);
        }
    }

    /// Records the last sample.
    pub fn finish(&mut self, rows: u64) {
        let now = self.elapsed();
        if rows > self.last.1 && now > self.last.0 {
            self.record(now, rows);
        }
    }

    fn record(&mut self, now: f64, rows: u64) {
        let rate = (rows - self.last.1) as f64 / (now - self.last.0).max(1e-9);
        self.samples.push([now, rate]);
        self.last = (now, rows);
    }
}

impl Default for RateSampler {
    fn default() -> Self {
        RateSampler::new()
    }
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

/// A progress bar of `total` rows on standard error (hidden unless `show`).
pub fn progress(show: bool, total: u64) -> indicatif::ProgressBar {
    progress_of(show, total, "rows")
}

/// A progress bar of `total` `unit`s on standard error (hidden unless `show`): done, rate,
/// time left.
pub fn progress_of(show: bool, total: u64, unit: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let template = format!(
        "{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}
