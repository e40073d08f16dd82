//! The query benchmark: the 15 TSBS devops query types on Sextant and, in the same run, on
//! plain DataFusion over a Parquet file of the same rows (zstd, sorted by hostname then
//! time: what a user would otherwise build).
//!
//! For each query type the parameters (hosts, window) are drawn from the seed, the query is
//! run once on each engine to warm up (its answer is kept and compared across the engines),
//! then `runs` times on each engine, the two engines taking turns, with the cache hot. The
//! figures are the median (p50), p95 and slowest run per engine, and the ratio of the
//! medians, Sextant over Parquet (below 1: Sextant is faster).

mod answer;
mod baseline;
mod load;
mod report;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;

pub use answer::Answer;
pub use baseline::Baseline;
pub use load::{ParquetLoad, SextantLoad, load_sextant, write_parquet};
pub use stats::{Latency, geometric_mean};

use crate::queries::{DEVOPS, DevopsQuery, Rng, Window};
use crate::workload::cpu::CpuConfig;
use crate::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct QueryBenchOptions {
    /// Hosts.
    pub scale: u32,
    /// Days of data.
    pub days: f64,
    /// Seed of the data and of the query parameters.
    pub seed: u64,
    /// Timed runs per query and engine (after one warm-up run).
    pub runs: usize,
    /// Directory of the data: `sextant/` (the database) and `cpu.parquet`, both replaced.
    pub dir: PathBuf,
    /// Query type names to run, in [`DEVOPS`] order; empty: all 15.
    pub queries: Vec<String>,
    /// DataFusion target partitions of both sessions (and worker threads of their runtimes).
    pub target_partitions: usize,
    /// Most rows per row group of the Parquet file.
    pub row_group_rows: usize,
    /// Also run `EXPLAIN ANALYZE` of each query on both engines, after the timed runs.
    pub explain: bool,
    /// Show progress bars and a line per query on standard error.
    pub progress: bool,
}

/// One engine's figures for one query.
#[derive(Debug, Clone)]
pub struct EngineResult {
    /// Latencies of the timed runs.
    pub latency: Latency,
    /// The answer of the warm-up run.
    pub answer: Answer,
    /// `EXPLAIN ANALYZE` output, when asked for.
    pub explain: Option<String>,
}

/// The figures of one query type.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The query type's name, as in [`DEVOPS`].
    pub name: &'static str,
    /// The SQL run on both engines.
    pub sql: String,
    /// Sextant's figures.
    pub sextant: EngineResult,
    /// The Parquet baseline's figures.
    pub parquet: EngineResult,
}

impl QueryResult {
    /// Median latency of Sextant over that of the baseline.
    pub fn ratio(&self) -> f64 {
        self.sextant.latency.p50() / self.parquet.latency.p50().max(1e-12)
    }

    /// Where the answers differ, or `None` when they agree.
    pub fn difference(&self) -> Option<String> {
        self.sextant.answer.first_difference(&self.parquet.answer)
    }
}

/// The figures of a whole run.
#[derive(Debug, Clone)]
pub struct QueryReport {
    /// The options run with.
    pub options: QueryBenchOptions,
    /// Loading Sextant.
    pub sextant: SextantLoad,
    /// Writing the Parquet file.
    pub parquet: ParquetLoad,
    /// One entry per query type run, in [`DEVOPS`] order.
    pub results: Vec<QueryResult>,
}

impl QueryReport {
    /// The geometric mean of the ratios.
    pub fn geomean_ratio(&self) -> f64 {
        geometric_mean(self.results.iter().map(QueryResult::ratio))
    }

    /// The names of the query types whose answers differ.
    pub fn disagreements(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| r.difference().is_some())
            .map(|r| r.name.to_owned())
            .collect()
    }
}

/// The query types named in `names` (all when empty), with their index in [`DEVOPS`].
fn selected(names: &[String]) -> Result<Vec<usize>> {
    if names.is_empty() {
        return Ok((0..DEVOPS.len()).collect());
    }
    let mut picked = Vec::new();
    for name in names {
        let Some(i) = DEVOPS.iter().position(|(n, _)| n == name) else {
            let known: Vec<&str> = DEVOPS.iter().map(|(n, _)| *n).collect();
            return Err(Error::InvalidParameter {
                parameter: "queries",
                reason: format!(
                    "unknown query type {name:?}; the types are {}",
                    known.join(", ")
                ),
            });
        };
        picked.push(i);
    }
    picked.sort_unstable();
    picked.dedup();
    Ok(picked)
}

/// The parameters of query type `index` (of [`DEVOPS`]), drawn from a stream of its own
/// so that a subset of the types gets the same parameters as a full run.
pub fn draw(index: usize, seed: u64, config: &CpuConfig) -> DevopsQuery {
    let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(index as u64));
    let data = Window::new(config.start_ns, config.end_ns);
    DevopsQuery::draw(DEVOPS[index].1, &mut rng, config.scale, data)
}

/// Runs the benchmark.
pub fn run(options: &QueryBenchOptions) -> Result<QueryReport> {
    let picked = selected(&options.queries)?;
    let config = CpuConfig::new(options.scale, options.days).with_seed(options.seed);
    config.validate()?;
    std::fs::create_dir_all(&options.dir).map_err(|source| Error::Io {
        action: "creating",
        path: options.dir.clone(),
        source,
    })?;
    let partitions = options.target_partitions.max(1);
    let (db, sextant) = load_sextant(
        &config,
        &options.dir.join("sextant"),
        partitions,
        options.progress,
    )?;
    let parquet_path = options.dir.join("cpu.parquet");
    load::remove(&parquet_path)?;
    let parquet = write_parquet(
        &config,
        &parquet_path,
        options.row_group_rows,
        options.progress,
    )?;
    let baseline = Baseline::open(&parquet_path, partitions)?;

    let mut results = Vec::with_capacity(picked.len());
    for index in picked {
        let (name, _) = DEVOPS[index];
        let query = draw(index, options.seed, &config);
        let sql = query.sql();
        if options.progress {
            eprintln!("{name}: {sql}");
        }
        let on_sextant = |sql: &str| db.sql(sql).map_err(Error::from);
        let on_parquet = |sql: &str| baseline.sql(sql);
        let ordered = query.is_ordered();
        let sextant_answer = Answer::new(&on_sextant(&sql)?, ordered)?;
        let parquet_answer = Answer::new(&on_parquet(&sql)?, ordered)?;
        let mut times = (Vec::new(), Vec::new());
        for _ in 0..options.runs.max(1) {
            times
                .0
                .push(timed(&on_sextant, &sql, sextant_answer.rows(), "sextant")?);
            times
                .1
                .push(timed(&on_parquet, &sql, parquet_answer.rows(), "parquet")?);
        }
        let explain = |run: &dyn Fn(&str) -> Result<Vec<RecordBatch>>| -> Result<Option<String>> {
            if !options.explain {
                return Ok(None);
            }
            Ok(Some(plan_text(&run(&format!("EXPLAIN ANALYZE {sql}"))?)?))
        };
        let sextant_explain = explain(&on_sextant)?;
        let parquet_explain = explain(&on_parquet)?;
        results.push(QueryResult {
            name,
            sql: sql.clone(),
            sextant: EngineResult {
                latency: Latency::new(&times.0),
                answer: sextant_answer,
                explain: sextant_explain,
            },
            parquet: EngineResult {
                latency: Latency::new(&times.1),
                answer: parquet_answer,
                explain: parquet_explain,
            },
        });
    }
    Ok(QueryReport {
        options: options.clone(),
        sextant,
        parquet,
        results,
    })
}

/// Runs `sql` once and returns how long it took; checks that it returned `rows` rows, as
/// its warm-up run did.
fn timed(
    run: &dyn Fn(&str) -> Result<Vec<RecordBatch>>,
    sql: &str,
    rows: usize,
    engine: &'static str,
) -> Result<Duration> {
    let started = Instant::now();
    let batches = run(sql)?;
    let elapsed = started.elapsed();
    let got: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if got != rows {
        return Err(Error::RowCountChanged {
            engine,
            sql: sql.to_owned(),
            warm_up: rows,
            got,
        });
    }
    Ok(elapsed)
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
