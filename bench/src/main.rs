//! `sextant-bench`: generates Sextant's reference workloads (WORKLOADS.md).
//!
//! ```text
//! sextant-bench generate --workload cpu-only --scale 4000 --days 3 --seed 1 --format csv --out cpu.csv
//! sextant-bench generate --workload logs --events-per-second 10000 --days 1 --format influx --out logs.lp
//! sextant-bench generate --workload cpu-only --scale 4000 --days 3 --format parquet --out cpu.parquet
//! sextant-bench generate --workload cpu-only --scale 100 --days 1 --format none   # generator speed
//! sextant-bench ingest --scale 100 --days 1
//! sextant-bench query --scale 100 --days 1 --seed 1 --runs 5 --json query.json
//! ```

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sextant_bench::ingest::IngestOptions;
use sextant_bench::output::{CpuWriter, Format, LogsWriter, parquet};
use sextant_bench::query_bench::QueryBenchOptions;
use sextant_bench::time::{NANOS_PER_DAY, NANOS_PER_SECOND, parse_rfc3339};
use sextant_bench::workload::cpu::{CpuBatch, CpuConfig, CpuGenerator, CpuVariant};
use sextant_bench::workload::logs::{LogBatch, LogsConfig, LogsGenerator};
use sextant_bench::{Error, Result};
use sextant_engine::Durability;

/// Sextant's benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "sextant-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a reference workload as CSV or InfluxDB line protocol.
    Generate(GenerateArgs),
    /// Ingest cpu-only (or noisy floats) into Sextant; print ingest rate, size on disk,
    /// peak memory and scan speed.
    Ingest(IngestArgs),
    /// Scan one column of every row of a table in an existing database, repeatedly, and
    /// print the median rate (for profiling the read path).
    Scan(ScanArgs),
    /// Run the 15 TSBS devops query types on Sextant and on DataFusion over a Parquet file
    /// of the same rows; print each engine's latencies, the ratio and whether the answers
    /// agree (exit status 1 if they do not).
    Query(QueryArgs),
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Number of hosts.
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Days of data.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// The seed of the data and of the query parameters.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs per query and engine, after a warm-up run.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Data directory: `sextant/` and `cpu.parquet` in it are replaced.
    #[arg(long, default_value = "sextant-bench-query")]
    dir: PathBuf,
    /// Query types to run, comma-separated (e.g. lastpoint,high-cpu-all) [default: all 15].
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// DataFusion target partitions of both engines [default: the number of cores].
    #[arg(long)]
    partitions: Option<usize>,
    /// Most rows per Parquet row group (the parquet crate's default).
    #[arg(long, default_value_t = 1024 * 1024)]
    row_group_rows: usize,
    /// Print EXPLAIN ANALYZE of every query on both engines after the table.
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Database directory.
    #[arg(long, default_value = "sextant-bench-db")]
    dir: PathBuf,
    /// Table.
    #[arg(long, default_value = "cpu")]
    table: String,
    /// Column.
    #[arg(long, default_value = "usage_user")]
    column: String,
    /// Repetitions.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Sync {
    /// Each write returns after an fsync (group commit).
    Always,
    /// A background fsync every second.
    Interval,
    /// fsync left to the operating system.
    Never,
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// Which workload: cpu-only or noisy-floats.
    #[arg(long, value_enum, default_value_t = Workload::CpuOnly)]
    workload: Workload,
    /// Number of hosts.
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Days of data.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// The seed every value is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows per write call.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// Durability.
    #[arg(long, value_enum, default_value_t = Sync::Interval)]
    sync: Sync,
    /// Writer threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Database directory; emptied first.
    #[arg(long, default_value = "sextant-bench-db")]
    dir: PathBuf,
    /// Engine: rows per column block [default: the engine's].
    #[arg(long)]
    block_rows: Option<u32>,
    /// Engine: zstd level of segment blocks [default: the engine's].
    #[arg(long)]
    zstd_level: Option<i32>,
    /// Engine: flush a table's rows in memory past this many MiB [default: the engine's].
    #[arg(long)]
    flush_mib: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// TSBS devops cpu-only: integer-valued random walks (WORKLOADS.md §1).
    CpuOnly,
    /// cpu-only with full-precision float values (WORKLOADS.md §3).
    NoisyFloats,
    /// Application logs (WORKLOADS.md §2).
    Logs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// CSV with a header row, times in RFC 3339.
    Csv,
    /// InfluxDB line protocol, ns timestamps.
    Influx,
    /// Parquet, zstd, rows sorted by series then time (cpu: hostname, time; logs: service,
    /// host, time); needs a file for --out.
    Parquet,
    /// Generate and discard (measures the generator alone).
    None,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Which workload.
    #[arg(long, value_enum)]
    workload: Workload,
    /// Number of hosts of the cpu workloads [default: 4000].
    #[arg(long)]
    scale: Option<u32>,
    /// Length of the time range in days, may be fractional [default: 3 for cpu, 1 for logs].
    #[arg(long)]
    days: Option<f64>,
    /// Start of the time range, UTC, as YYYY-MM-DDTHH:MM:SSZ [default: 2016-01-01T00:00:00Z].
    #[arg(long)]
    start: Option<String>,
    /// Events per second of the logs workload, across all services [default: 10000].
    #[arg(long)]
    events_per_second: Option<u32>,
    /// Number of services of the logs workload [default: 20].
    #[arg(long)]
    services: Option<u32>,
    /// Number of hosts of the logs workload [default: 100].
    #[arg(long)]
    hosts: Option<u32>,
    /// The seed every value is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Csv)]
    format: OutputFormat,
    /// Output file, `-` for standard output; required unless --format none.
    #[arg(long, required_if_eq_any = [("format", "csv"), ("format", "influx"), ("format", "parquet")])]
    out: Option<PathBuf>,
    /// Rows per generated batch.
    #[arg(long, default_value_t = 65_536)]
    batch_rows: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(&args),
        Command::Ingest(args) => ingest(&args),
        Command::Scan(args) => scan(&args),
        Command::Query(args) => query(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sextant-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where rows go: a writer of one of the formats, or nowhere.
enum Sink<T> {
    Discard,
    Write(T),
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let start_ns = match &args.start {
        Some(text) => parse_rfc3339(text)?,
        None => sextant_bench::time::REFERENCE_START_NS,
    };
    let format = match args.format {
        OutputFormat::Csv => Some(Format::Csv),
        OutputFormat::Influx => Some(Format::Influx),
        OutputFormat::Parquet => return generate_parquet(args, start_ns),
        OutputFormat::None => None,
    };
    let out_path = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let write_err = |source: io::Error| Error::Write {
        path: out_path.clone(),
        source,
    };
    let started = Instant::now();
    let (rows, bytes) = match args.workload {
        Workload::CpuOnly | Workload::NoisyFloats => {
            reject(
                args.events_per_second.is_some(),
                "--events-per-second",
                "logs",
            )?;
            reject(
                args.services.is_some() || args.hosts.is_some(),
                "--services/--hosts",
                "logs",
            )?;
            let days = args.days.unwrap_or(3.0);
            let mut config = CpuConfig::new(args.scale.unwrap_or(4000), days).with_seed(args.seed);
            config.start_ns = start_ns;
            config.end_ns = start_ns + days_ns(days);
            if args.workload == Workload::NoisyFloats {
                config.variant = CpuVariant::NoisyFloats;
            }
            let mut generator = CpuGenerator::new(config)?;
            let progress = progress_bar(generator.remaining_rows());
            let mut sink = match format {
                None => Sink::Discard,
                Some(f) => Sink::Write(
                    CpuWriter::new(open(&out_path).map_err(write_err)?, f, generator.hosts())
                        .map_err(write_err)?,
                ),
            };
            let mut batch = CpuBatch::default();
            let mut rows = 0u64;
            while generator.fill(&mut batch, args.batch_rows) > 0 {
                if let Sink::Write(w) = &mut sink {
                    w.write(&batch).map_err(write_err)?;
                }
                rows += batch.len() as u64;
                progress.inc(batch.len() as u64);
            }
            progress.finish_and_clear();
            let bytes = match sink {
                Sink::Discard => None,
                Sink::Write(w) => Some(w.finish().map_err(write_err)?.count),
            };
            (rows, bytes)
        }
        Workload::Logs => {
            reject(args.scale.is_some(), "--scale", "cpu-only and noisy-floats")?;
            let days = args.days.unwrap_or(1.0);
            let mut config = LogsConfig::new(args.events_per_second.unwrap_or(10_000), days)
                .with_seed(args.seed);
            config.start_ns = start_ns;
            config.end_ns = start_ns + days_ns(days) / NANOS_PER_SECOND * NANOS_PER_SECOND;
            config.services = args.services.unwrap_or(config.services);
            config.hosts = args.hosts.unwrap_or(config.hosts);
            let mut generator = LogsGenerator::new(config)?;
            let progress = progress_bar(generator.remaining_rows());
            let mut sink = match format {
                None => Sink::Discard,
                Some(f) => Sink::Write(
                    LogsWriter::new(open(&out_path).map_err(write_err)?, f, generator.tags())
                        .map_err(write_err)?,
                ),
            };
            let mut batch = LogBatch::default();
            let mut rows = 0u64;
            while generator.fill(&mut batch, args.batch_rows) > 0 {
                if let Sink::Write(w) = &mut sink {
                    w.write(&batch).map_err(write_err)?;
                }
                rows += batch.len() as u64;
                progress.inc(batch.len() as u64);
            }
            progress.finish_and_clear();
            let bytes = match sink {
                Sink::Discard => None,
                Sink::Write(w) => Some(w.finish().map_err(write_err)?.count),
            };
            (rows, bytes)
        }
    };
    report(rows, bytes, started.elapsed(), &out_path);
    Ok(())
}

/// `generate --format parquet`: the workload as a sorted Parquet file (streamed).
fn generate_parquet(args: &GenerateArgs, start_ns: i64) -> Result<()> {
    let out = match &args.out {
        Some(path) if path != Path::new("-") => path.clone(),
        _ => {
            return Err(Error::InvalidParameter {
                parameter: "out",
                reason: "--format parquet writes a file, not standard output".into(),
            });
        }
    };
    let load = match args.workload {
        Workload::CpuOnly | Workload::NoisyFloats => {
            reject(
                args.events_per_second.is_some() || args.services.is_some() || args.hosts.is_some(),
                "--events-per-second/--services/--hosts",
                "logs",
            )?;
            let days = args.days.unwrap_or(3.0);
            let mut config = CpuConfig::new(args.scale.unwrap_or(4000), days).with_seed(args.seed);
            config.start_ns = start_ns;
            config.end_ns = start_ns + days_ns(days);
            if args.workload == Workload::NoisyFloats {
                config.variant = CpuVariant::NoisyFloats;
            }
            parquet::write_cpu(&config, &out, parquet::DEFAULT_ROW_GROUP_ROWS, true)?
        }
        Workload::Logs => {
            reject(args.scale.is_some(), "--scale", "cpu-only and noisy-floats")?;
            let days = args.days.unwrap_or(1.0);
            let mut config = LogsConfig::new(args.events_per_second.unwrap_or(10_000), days)
                .with_seed(args.seed);
            config.start_ns = start_ns;
            config.end_ns = start_ns + days_ns(days) / NANOS_PER_SECOND * NANOS_PER_SECOND;
            config.services = args.services.unwrap_or(config.services);
            config.hosts = args.hosts.unwrap_or(config.hosts);
            let opts = parquet::LogsParquetOptions {
                progress: true,
                ..Default::default()
            };
            parquet::write_logs(&config, &out, &opts)?
        }
    };
    eprintln!(
        "wrote {} rows, {:.1} MB in {} row group(s), to {} in {:.2} s ({:.2} M rows/s)",
        load.rows,
        load.bytes as f64 / 1e6,
        load.row_groups,
        out.display(),
        load.write_secs,
        load.rows as f64 / load.write_secs.max(1e-9) / 1e6
    );
    Ok(())
}

fn ingest(args: &IngestArgs) -> Result<()> {
    let variant = match args.workload {
        Workload::CpuOnly => CpuVariant::CpuOnly,
        Workload::NoisyFloats => CpuVariant::NoisyFloats,
        Workload::Logs => {
            return Err(Error::InvalidParameter {
                parameter: "workload",
                reason: "ingest runs cpu-only or noisy-floats".into(),
            });
        }
    };
    let durability = match args.sync {
        Sync::Always => Durability::Always,
        Sync::Interval => Durability::Interval(Duration::from_secs(1)),
        Sync::Never => Durability::Never,
    };
    let opts = IngestOptions {
        variant,
        scale: args.scale,
        days: args.days,
        seed: args.seed,
        batch_rows: args.batch_rows.max(1),
        durability,
        threads: args.threads.max(1),
        dir: args.dir.clone(),
        block_rows: args.block_rows,
        zstd_level: args.zstd_level,
        flush_bytes: args.flush_mib.map(|m| m << 20),
        progress: true,
    };
    let r = sextant_bench::ingest::run(&opts)?;
    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!(
        "workload: {:?}, scale {} x {} days, seed {}, batches of {} rows, sync {:?}, {} writer thread(s)",
        args.workload, args.scale, args.days, args.seed, opts.batch_rows, args.sync, opts.threads
    );
    println!("rows: {}  values: {}", r.rows, r.values);
    println!(
        "ingest: {:.0} rows/s ({:.1} M values/s) in engine calls ({:.2} s); {:.0} rows/s wall-clock with generation ({:.2} s)",
        r.rows_per_sec(),
        r.rows_per_sec() * 10.0 / 1e6,
        r.write_secs,
        r.rows as f64 / r.wall_secs.max(1e-9),
        r.wall_secs
    );
    println!("final flush and close: {:.2} s", r.close_secs);
    println!(
        "on disk: {} bytes in {} segment(s) = {:.3} bytes/value; directory total {} bytes",
        r.segment_bytes,
        r.segments,
        r.bytes_per_value(),
        r.dir_bytes
    );
    match r.peak_rss {
        Some(b) => println!("peak RSS: {:.1} MiB", b as f64 / (1 << 20) as f64),
        None => println!("peak RSS: n/a (no /proc/self/status)"),
    }
    println!(
        "scan one field, every row: {:.1} M values/s ({} values, {:.3} s)",
        r.scan.0 as f64 / r.scan.1.max(1e-9) / 1e6,
        r.scan.0,
        r.scan.1
    );
    println!(
        "decode one field's blocks: {:.1} M values/s ({} values, {:.3} s)",
        r.decode.0 as f64 / r.decode.1.max(1e-9) / 1e6,
        r.decode.0,
        r.decode.1
    );
    Ok(())
}

fn scan(args: &ScanArgs) -> Result<()> {
    let engine = sextant_engine::Config::new(&args.dir).open()?;
    let (values, secs) =
        sextant_bench::ingest::scan_column(&engine, &args.table, &args.column, args.repeat)?;
    println!(
        "scan {}.{}: {:.1} M values/s ({values} values, median {secs:.4} s of {} runs)",
        args.table,
        args.column,
        values as f64 / secs.max(1e-9) / 1e6,
        args.repeat
    );
    Ok(())
}

fn query(args: &QueryArgs) -> Result<()> {
    let command: Vec<String> = std::env::args().collect();
    let command = command.join(" ");
    println!("command: {command}");
    let options = QueryBenchOptions {
        scale: args.scale,
        days: args.days,
        seed: args.seed,
        runs: args.runs.max(1),
        dir: args.dir.clone(),
        queries: args.queries.clone(),
        target_partitions: args
            .partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        row_group_rows: args.row_group_rows.max(1),
        explain: args.explain,
        progress: true,
    };
    let r = sextant_bench::query_bench::run(&options)?;
    println!(
        "data: cpu-only, scale {} x {} days, seed {}: {} rows; {} timed runs per query and engine after a warm-up, {} target partitions",
        args.scale, args.days, args.seed, r.sextant.rows, options.runs, options.target_partitions
    );
    println!(
        "sextant: {} bytes in {} segment(s), written in {:.2} s + flush {:.2} s",
        r.sextant.segment_bytes, r.sextant.segments, r.sextant.write_secs, r.sextant.flush_secs
    );
    println!(
        "parquet: {} bytes, {} row group(s) of at most {} rows, zstd, sorted by hostname, time; written in {:.2} s",
        r.parquet.bytes, r.parquet.row_groups, options.row_group_rows, r.parquet.write_secs
    );
    println!();
    print!("{}", r.table());
    if args.explain {
        println!();
        print!("{}", r.plans());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, r.json(&command)).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    let differ = r.disagreements();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(Error::AnswersDiffer { queries: differ })
    }
}

fn reject(given: bool, flag: &str, workloads: &str) -> Result<()> {
    if given {
        return Err(Error::InvalidParameter {
            parameter: "workload",
            reason: format!("{flag} applies only to {workloads}"),
        });
    }
    Ok(())
}

fn days_ns(days: f64) -> i64 {
    (days * NANOS_PER_DAY as f64).round() as i64
}

/// A writer that counts the bytes it passes on.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> std::fmt::Debug for Counting<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("count", &self.count)
            .finish()
    }
}

fn open(path: &Path) -> io::Result<Counting<Box<dyn Write>>> {
    let inner: Box<dyn Write> = if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    };
    Ok(Counting { inner, count: 0 })
}

/// A progress bar on standard error; hidden when that is not a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn report(rows: u64, bytes: Option<u64>, elapsed: Duration, out: &Path) {
    let secs = elapsed.as_secs_f64();
    let rate = rows as f64 / secs.max(1e-9);
    match bytes {
        Some(bytes) => eprintln!(
            "wrote {rows} rows, {:.1} MB, to {} in {secs:.2} s ({:.2} M rows/s)",
            bytes as f64 / 1e6,
            out.display(),
            rate / 1e6
        ),
        None => eprintln!(
            "generated {rows} rows in {secs:.2} s ({:.2} M rows/s)",
            rate / 1e6
        ),
    }
}
