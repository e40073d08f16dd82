//! `sextant-bench`: generates Sextant's reference workloads (WORKLOADS.md).
//!
//! ```text
//! sextant-bench generate --workload cpu-only --scale 4000 --days 3 --seed 1 --format csv --out cpu.csv
//! sextant-bench generate --workload logs --events-per-second 10000 --days 1 --format influx --out logs.lp
//! sextant-bench generate --workload cpu-only --scale 4000 --days 3 --format parquet --out cpu.parquet
//! sextant-bench generate --workload cpu-only --scale 100 --days 1 --format none   # generator speed
//! sextant-bench ingest --scale 100 --days 1
//! sextant-bench run --workload cpu-only --scale 100 --days 1 --json run.json --plot run.svg
//! sextant-bench run --workload logs --events-per-second 1000 --days 1 --json logs.json
//! sextant-bench compare old.json new.json --threshold 5%
//! sextant-bench protocols --scale 100 --days 1   # line protocol, StatsD, tracing and metrics
//! sextant-bench query --scale 100 --days 1 --seed 1 --runs 5 --json query.json   # = run, cpu-only
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sextant_bench::ingest::{EngineTuning, IngestOptions};
use sextant_bench::output::{Format, generate, parquet};
use sextant_bench::peers::Peer;
use sextant_bench::run::{RunOptions, RunReport, compare};
use sextant_bench::time::{NANOS_PER_DAY, NANOS_PER_SECOND, parse_rfc3339};
use sextant_bench::workload::cpu::{CpuConfig, CpuVariant};
use sextant_bench::workload::logs::LogsConfig;
use sextant_bench::workload::source::WorkloadSpec;
use sextant_bench::{Error, Result};
use sextant_engine::Durability;
use sextant_query::QueryOptions;

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
    /// Run the 15 TSBS devops query types on Sextant and its peers over the same rows:
    /// `run --workload cpu-only` under its older name and flags.
    Query(QueryArgs),
    /// Ingest a workload into Sextant and its peers (DataFusion over Parquet; DuckDB where
    /// python3 imports duckdb and pyarrow; tsink in a build with the `tsink` feature), run the workload's queries on each, and print,
    /// write (--json) and chart (--plot) the figures; exit status 1 if the engines' answers
    /// differ (unless --allow-mismatch).
    Run(RunArgs),
    /// Measure ingestion: line protocol parsed and written (beside the columnar API),
    /// StatsD parsed and aggregated, and what the tracing layer and the metrics recorder
    /// cost the calling thread.
    Protocols(ProtocolArgs),
    /// Measure alert rules: 100 rules over the last 5 minutes of cpu-only rows,
    /// evaluated in rounds on one core, beside the same statements planned each time.
    Alerts(AlertArgs),
    /// Compare two JSON files of `run`: every metric old, new, change, and whether it moved
    /// beyond the threshold.
    Compare(CompareArgs),
    /// The tsink peer's process, which `run` starts: requests on standard input, replies
    /// on standard output (bench/src/peers/tsink/process.rs).
    #[cfg(feature = "tsink")]
    #[command(name = "tsink-peer", hide = true)]
    TsinkPeer,
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
    /// Data directory: `sextant/`, `cpu.parquet` and `duckdb/` in it are replaced.
    #[arg(long, default_value = "sextant-bench-query")]
    dir: PathBuf,
    #[command(flatten)]
    queries: QueryFlags,
}

/// The query flags of `run` and `query`.
#[derive(Debug, Args)]
struct QueryFlags {
    /// Timed runs per query and engine, after the warm-up runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed warm-up runs per query and engine (at least 1 is made, for the answer).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Milliseconds of idle before every timed run, so that each engine's run starts
    /// from an idle machine instead of right after another engine's run.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Queries to run, comma-separated (e.g. lastpoint,high-cpu-all) [default: the
    /// workload's whole set].
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// Write the results as JSON to this file (schema: docs/BENCH_JSON.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a chart (SVG) of query latencies and the loading rate to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Query threads of every engine: DataFusion's target partitions (Sextant, Parquet), DuckDB's
    /// `threads` [default: the number of cores].
    #[arg(long)]
    partitions: Option<usize>,
    /// SQL texts whose plans Sextant keeps to run again, as a program that runs the same
    /// SQL does; 0 parses and plans every run, as the peers do [default: Sextant's, 256].
    #[arg(long)]
    plan_cache_size: Option<usize>,
    /// Most rows per Parquet row group (the parquet crate's default).
    #[arg(long, default_value_t = 1024 * 1024)]
    row_group_rows: usize,
    /// Leave out the Parquet peer.
    #[arg(long)]
    no_parquet: bool,
    /// Leave out the DuckDB peer (which runs where `python3` imports duckdb and pyarrow;
    /// elsewhere its queries are n/a with the reason).
    #[arg(long)]
    no_duckdb: bool,
    /// Leave out DuckDB's second load, in Sextant's batches each committed (its `insert`
    /// phase; `run --batch-rows`, 10,000 rows in `query`), keeping the bulk load the
    /// queries run on.
    #[arg(long)]
    no_duckdb_batches: bool,
    /// Leave out the tsink peer (no effect in a build without the `tsink` feature, which has
    /// no tsink peer).
    #[arg(long)]
    no_tsink: bool,
    /// Print EXPLAIN ANALYZE of every query on every engine after the table.
    #[arg(long)]
    explain: bool,
    /// Exit with status 0 even when the engines' answers differ.
    #[arg(long)]
    allow_mismatch: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    write: WriteArgs,
    /// Flush a table's rows in memory past this many bytes [default: the engine's].
    #[arg(long)]
    flush_bytes: Option<usize>,
    /// Directory of the run: `sextant/` and the peers' files in it are replaced.
    #[arg(long, default_value = "sextant-bench-run")]
    dir: PathBuf,
    #[command(flatten)]
    queries: QueryFlags,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The earlier run's JSON, or a directory whose `.json` files are rounds of it: each
    /// figure is then the median of the rounds'.
    old: PathBuf,
    /// The later run's JSON, or a directory of its rounds.
    new: PathBuf,
    /// Changes within this are not marked (e.g. 5% or 2.5).
    #[arg(long, default_value = "5%")]
    threshold: String,
    /// Exit with status 1 when any of Sextant's figures (not its peers') got worse beyond
    /// the threshold or is missing from the new run, when the new run's answers disagree,
    /// or when the runs are of different workloads: a gate for CI and reviews.
    #[arg(long)]
    fail_if_worse: bool,
}

/// Which data.
#[derive(Debug, Args)]
struct DataArgs {
    /// Which workload.
    #[arg(long, value_enum, default_value_t = Workload::CpuOnly)]
    workload: Workload,
    /// Number of hosts of the cpu workloads [default: 100].
    #[arg(long)]
    scale: Option<u32>,
    /// Events per second of the logs workload, across all services [default: 10000].
    #[arg(long)]
    events_per_second: Option<u32>,
    /// Days of data, may be fractional.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// The seed every value (and query parameter) is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// How rows are written to Sextant.
#[derive(Debug, Args)]
struct WriteArgs {
    /// Rows per write call.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// Durability.
    #[arg(long, value_enum, default_value_t = Sync::Interval)]
    sync: Sync,
    /// Writer threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Engine: rows per column block [default: the engine's].
    #[arg(long)]
    block_rows: Option<u32>,
    /// Engine: zstd level of segment blocks [default: the engine's].
    #[arg(long)]
    zstd_level: Option<i32>,
    /// Engine: no background compaction while writing (to measure what it costs ingest).
    #[arg(long)]
    no_compaction: bool,
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
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    write: WriteArgs,
    /// Database directory; emptied first.
    #[arg(long, default_value = "sextant-bench-db")]
    dir: PathBuf,
    /// Engine: flush a table's rows in memory past this many MiB [default: the engine's].
    #[arg(long)]
    flush_mib: Option<usize>,
}

#[derive(Debug, Args)]
struct ProtocolArgs {
    /// Hosts of the cpu-only rows sent as line protocol.
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Days of cpu-only rows.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Seed of the rows and of the StatsD packets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Lines per line protocol request, and rows per columnar write.
    #[arg(long, default_value_t = 5_000)]
    lines: usize,
    /// StatsD metrics.
    #[arg(long, default_value_t = 5_000_000)]
    statsd_metrics: usize,
    /// Timed calls per facade (after as many untimed ones).
    #[arg(long, default_value_t = 200_000)]
    calls: usize,
    /// Directory of the databases; emptied first, removed at the end.
    #[arg(long, default_value = "sextant-bench-protocols")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct AlertArgs {
    /// Hosts of the cpu-only rows.
    #[arg(long, default_value_t = 100)]
    scale: u32,
    /// Days of cpu-only rows.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Seed of the rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rules.
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// Timed rounds (after one untimed).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Directory of the database; emptied first, removed at the end.
    #[arg(long, default_value = "sextant-bench-alerts")]
    dir: PathBuf,
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
        Command::Run(args) => run(&args),
        Command::Compare(args) => compare(&args),
        Command::Protocols(args) => protocols(&args),
        Command::Alerts(args) => alerts(&args),
        #[cfg(feature = "tsink")]
        Command::TsinkPeer => sextant_bench::peers::tsink::process::serve(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sextant-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let start_ns = match &args.start {
        Some(text) => parse_rfc3339(text)?,
        None => sextant_bench::time::REFERENCE_START_NS,
    };
    let spec = generate_spec(args, start_ns)?;
    let format = match args.format {
        OutputFormat::Csv => Some(Format::Csv),
        OutputFormat::Influx => Some(Format::Influx),
        OutputFormat::Parquet => return generate_parquet(args, &spec),
        OutputFormat::None => None,
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("-"));
    let generated = generate::generate(&spec, format, &out, args.batch_rows, true)?;
    eprintln!("{generated}");
    Ok(())
}

/// The workload `generate` writes: cpu, 4000 hosts for 3 days, or logs for 1 day, from
/// `start_ns` unless the flags say otherwise.
fn generate_spec(args: &GenerateArgs, start_ns: i64) -> Result<WorkloadSpec> {
    Ok(match args.workload {
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
            WorkloadSpec::Cpu(config)
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
            WorkloadSpec::Logs(config)
        }
    })
}

/// `generate --format parquet`: the workload as a sorted Parquet file (streamed).
fn generate_parquet(args: &GenerateArgs, spec: &WorkloadSpec) -> Result<()> {
    let out = match &args.out {
        Some(path) if path != Path::new("-") => path.clone(),
        _ => {
            return Err(Error::InvalidParameter {
                parameter: "out",
                reason: "--format parquet writes a file, not standard output".into(),
            });
        }
    };
    let load = match spec {
        WorkloadSpec::Cpu(config) => {
            parquet::write_cpu(config, &out, parquet::DEFAULT_ROW_GROUP_ROWS, true)?
        }
        WorkloadSpec::Logs(config) => {
            let opts = parquet::LogsParquetOptions {
                progress: true,
                ..Default::default()
            };
            parquet::write_logs(config, &out, &opts)?
        }
    };
    eprintln!("{}", load.summary(&out));
    Ok(())
}

fn ingest(args: &IngestArgs) -> Result<()> {
    let d = &args.data;
    let variant = match d.workload {
        Workload::CpuOnly => CpuVariant::CpuOnly,
        Workload::NoisyFloats => CpuVariant::NoisyFloats,
        Workload::Logs => {
            return Err(Error::InvalidParameter {
                parameter: "workload",
                reason: "ingest runs cpu-only or noisy-floats (`run --workload logs` runs logs)"
                    .into(),
            });
        }
    };
    reject(d.events_per_second.is_some(), "--events-per-second", "logs")?;
    let w = &args.write;
    let opts = IngestOptions {
        variant,
        scale: d.scale.unwrap_or(DEFAULT_SCALE),
        days: d.days,
        seed: d.seed,
        batch_rows: w.batch_rows.max(1),
        threads: w.threads.max(1),
        dir: args.dir.clone(),
        tuning: tuning(w, args.flush_mib.map(|m| m << 20)),
        progress: true,
    };
    let r = sextant_bench::ingest::run(&opts)?;
    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!(
        "workload: {:?}, scale {} x {} days, seed {}, batches of {} rows, sync {:?}, {} writer thread(s)",
        d.workload, opts.scale, d.days, d.seed, opts.batch_rows, w.sync, opts.threads
    );
    print!("{}", r.text());
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

/// Hosts of the cpu workloads when --scale is not given.
const DEFAULT_SCALE: u32 = 100;

/// Events per second of the logs workload when --events-per-second is not given.
const DEFAULT_EVENTS_PER_SECOND: u32 = 10_000;

fn tuning(w: &WriteArgs, flush_bytes: Option<usize>) -> EngineTuning {
    EngineTuning {
        durability: match w.sync {
            Sync::Always => Durability::Always,
            Sync::Interval => Durability::Interval(Duration::from_secs(1)),
            Sync::Never => Durability::Never,
        },
        block_rows: w.block_rows,
        zstd_level: w.zstd_level,
        flush_bytes,
        background_compaction: !w.no_compaction,
    }
}

fn spec(d: &DataArgs) -> Result<WorkloadSpec> {
    let spec = match d.workload {
        Workload::CpuOnly | Workload::NoisyFloats => {
            reject(d.events_per_second.is_some(), "--events-per-second", "logs")?;
            let mut config =
                CpuConfig::new(d.scale.unwrap_or(DEFAULT_SCALE), d.days).with_seed(d.seed);
            if d.workload == Workload::NoisyFloats {
                config.variant = CpuVariant::NoisyFloats;
            }
            config.validate()?;
            WorkloadSpec::Cpu(config)
        }
        Workload::Logs => {
            reject(d.scale.is_some(), "--scale", "cpu-only and noisy-floats")?;
            let eps = d.events_per_second.unwrap_or(DEFAULT_EVENTS_PER_SECOND);
            let config = LogsConfig::new(eps, d.days).with_seed(d.seed);
            config.validate()?;
            WorkloadSpec::Logs(config)
        }
    };
    Ok(spec)
}

fn run(args: &RunArgs) -> Result<()> {
    let options = RunOptions {
        spec: spec(&args.data)?,
        seed: args.data.seed,
        dir: args.dir.clone(),
        tuning: tuning(&args.write, args.flush_bytes),
        threads: args.write.threads.max(1),
        batch_rows: args.write.batch_rows.max(1),
        ..run_options(&args.queries)
    };
    run_and_report(&options, &args.queries)
}

fn query(args: &QueryArgs) -> Result<()> {
    let config = CpuConfig::new(args.scale, args.days).with_seed(args.seed);
    config.validate()?;
    let options = RunOptions {
        spec: WorkloadSpec::Cpu(config),
        seed: args.seed,
        dir: args.dir.clone(),
        ..run_options(&args.queries)
    };
    run_and_report(&options, &args.queries)
}

/// The peers this build has, less those the flags leave out.
fn peers(q: &QueryFlags) -> Vec<Peer> {
    #[cfg(not(feature = "tsink"))]
    let _ = q.no_tsink;
    Peer::ALL
        .iter()
        .copied()
        .filter(|peer| match peer {
            Peer::Parquet => !q.no_parquet,
            Peer::DuckDb => !q.no_duckdb,
            #[cfg(feature = "tsink")]
            Peer::Tsink => !q.no_tsink,
        })
        .collect()
}

/// The options of `run` given by the query flags, with ingest defaults otherwise.
fn run_options(q: &QueryFlags) -> RunOptions {
    let command: Vec<String> = std::env::args().collect();
    RunOptions {
        spec: WorkloadSpec::Cpu(CpuConfig::new(DEFAULT_SCALE, 1.0)),
        seed: 1,
        runs: q.runs.max(1),
        warmup: q.warmup,
        pause: Duration::from_millis(q.pause_ms),
        dir: PathBuf::from("sextant-bench-run"),
        tuning: EngineTuning {
            durability: Durability::Interval(Duration::from_secs(1)),
            block_rows: None,
            zstd_level: None,
            flush_bytes: None,
            background_compaction: true,
        },
        threads: 1,
        batch_rows: 10_000,
        queries: q.queries.clone(),
        peers: peers(q),
        duckdb_batches: !q.no_duckdb_batches,
        target_partitions: q
            .partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        plan_cache_size: q
            .plan_cache_size
            .unwrap_or(QueryOptions::default().plan_cache_size),
        row_group_rows: q.row_group_rows.max(1),
        explain: q.explain,
        progress: true,
        command: command.join(" "),
    }
}

fn run_and_report(options: &RunOptions, q: &QueryFlags) -> Result<()> {
    if let Some(path) = &q.plot {
        // Refuse a chart name the chart cannot have before the run, not after it.
        if path
            .extension()
            .is_some_and(|x| !x.eq_ignore_ascii_case("svg"))
        {
            return Err(Error::Plot {
                path: path.clone(),
                reason: "the chart is SVG: give a file name ending in .svg".into(),
            });
        }
    }
    let report = sextant_bench::run::run(options)?;
    println!("command: {}", options.command);
    print!("{}", report.table());
    if options.explain {
        println!();
        print!("{}", report.plans());
    }
    if let Some(path) = &q.json {
        report.write_json(path)?;
        println!("json: {}", path.display());
    }
    if let Some(path) = &q.plot {
        sextant_bench::run::plot::write_svg(&report, path)?;
        println!("chart: {}", path.display());
    }
    let differ = report.disagreements();
    if differ.is_empty() {
        Ok(())
    } else if q.allow_mismatch {
        eprintln!(
            "sextant-bench: answers differ for {} (allowed by --allow-mismatch)",
            differ.join(", ")
        );
        Ok(())
    } else {
        Err(Error::AnswersDiffer { queries: differ })
    }
}

fn compare(args: &CompareArgs) -> Result<()> {
    let threshold =
        compare::parse_threshold(&args.threshold).map_err(|reason| Error::InvalidParameter {
            parameter: "threshold",
            reason,
        })?;
    let (old, old_rounds) = read_rounds(&args.old)?;
    let (new, new_rounds) = read_rounds(&args.new)?;
    println!("old: {} ({}){old_rounds}", args.old.display(), old.command);
    println!("new: {} ({}){new_rounds}", args.new.display(), new.command);
    print!("{}", compare::table(&old, &new, threshold));
    let worse = compare::sextant_regressions(&old, &new, threshold);
    if args.fail_if_worse && !worse.is_empty() {
        return Err(Error::Regressed {
            threshold_percent: threshold * 100.0,
            problems: worse,
        });
    }
    Ok(())
}

/// The report at `path`, or the median of the rounds in the directory `path` (every
/// `.json` file in it), with a note of how many rounds for the heading.
fn read_rounds(path: &Path) -> Result<(RunReport, String)> {
    if !path.is_dir() {
        return Ok((RunReport::read_json(path)?, String::new()));
    }
    let invalid = |reason: String| Error::Rounds {
        path: path.to_path_buf(),
        reason,
    };
    let listing = |source| Error::Io {
        action: "listing",
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(listing)? {
        let file = entry.map_err(listing)?.path();
        if file.extension().is_some_and(|e| e == "json") {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(invalid(
            "it is a directory without .json files (rounds of a run)".to_owned(),
        ));
    }
    let rounds = files
        .iter()
        .map(|f| RunReport::read_json(f))
        .collect::<Result<Vec<_>>>()?;
    let merged = compare::median_of(&rounds).map_err(invalid)?;
    Ok((merged, format!(", the median of {} rounds", rounds.len())))
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

fn protocols(args: &ProtocolArgs) -> Result<()> {
    use sextant_bench::protocols::{self, ProtocolOptions};
    let options = ProtocolOptions {
        scale: args.scale,
        days: args.days,
        seed: args.seed,
        lines: args.lines,
        statsd_metrics: args.statsd_metrics,
        calls: args.calls,
        dir: args.dir.clone(),
    };
    let report = protocols::run(&options)?;
    print!("{}", report.text(&options));
    Ok(())
}

fn alerts(args: &AlertArgs) -> Result<()> {
    use sextant_bench::alerts::{self, AlertBenchOptions};
    let options = AlertBenchOptions {
        scale: args.scale,
        days: args.days,
        seed: args.seed,
        rules: args.rules,
        rounds: args.rounds,
        dir: args.dir.clone(),
    };
    let report = alerts::run(&options)?;
    print!("{}", report.text(&options));
    Ok(())
}
