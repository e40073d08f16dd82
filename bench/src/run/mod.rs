//! `sextant-bench run`: one workload end to end on Sextant and its peers.
//!
//! The engines are in [`crate::peers`]; this module is the run itself: the order of the
//! loads and the queries, the report ([`report`]), its table ([`table`]), chart ([`plot`])
//! and comparison ([`compare`]).
//!
//! 1. Sextant ingests the workload (writer threads, batch size, durability and engine
//!    options from [`RunOptions`]; background compaction runs meanwhile), then closes,
//!    which flushes everything to segments, then reopens and compacts every table whole:
//!    three phases, each with its rate, peak memory and, after the flush, size on disk; the
//!    compaction's note has the segments before and after, the bytes rewritten and the
//!    write amplification ([`Sextant::load`]).
//! 2. Each peer ([`Peer`]) loads the same rows: DataFusion over a Parquet file,
//!    DuckDB (through its Python package, where installed), and tsink with the `tsink`
//!    feature.
//! 3. The workload's queries ([`QuerySet`]) run on every engine: `warmup` untimed runs
//!    (the first one's answer is kept), then `runs` timed runs, the engines taking turns
//!    in an order that rotates from run to run.
//!    Each peer's answer is compared with Sextant's by checksum.
//!
//! The result is a [`RunReport`]: a table for people ([`table`]), JSON ([`RunReport`]), a
//! chart ([`plot`]), and two reports side by side ([`compare`]).

pub mod compare;
pub mod plot;
pub mod report;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use arrow_array::RecordBatch;

use crate::ingest::{EngineTuning, WriteOptions};
use crate::measure::{Answer, Latency};
use crate::peers::sextant::Sextant;
use crate::peers::{Engine, Peer, PeerOptions};
use crate::queries::{BenchQuery, QuerySet};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};
pub use report::{EngineResult, Phase, QueryResult, RunReport, SCHEMA_VERSION};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The workload and its parameters.
    pub spec: WorkloadSpec,
    /// Seed of the query parameters (the data's is in `spec`).
    pub seed: u64,
    /// Timed runs per query and engine.
    pub runs: usize,
    /// Untimed runs per query and engine before the timed ones (at least one is made, for
    /// the answer).
    pub warmup: usize,
    /// Idle time before every timed run (none: each run follows the previous engine's).
    pub pause: Duration,
    /// Directory of the run: `sextant/` and the peers' files in it are replaced.
    pub dir: PathBuf,
    /// Sextant's engine options.
    pub tuning: EngineTuning,
    /// Sextant writer threads.
    pub threads: usize,
    /// Rows per write call.
    pub batch_rows: usize,
    /// Query names to run; empty: the workload's whole set.
    pub queries: Vec<String>,
    /// The peers to compare with, in order (see [`Peer::ALL`]).
    pub peers: Vec<Peer>,
    /// Also load DuckDB in Sextant's batches and durability ([`PeerOptions::duckdb_batches`]).
    pub duckdb_batches: bool,
    /// DataFusion target partitions of every SQL engine.
    pub target_partitions: usize,
    /// SQL texts whose plans Sextant keeps to run again (`QueryOptions::plan_cache_size`).
    pub plan_cache_size: usize,
    /// Most rows per Parquet row group.
    pub row_group_rows: usize,
    /// Also record `EXPLAIN ANALYZE` of each query on each engine.
    pub explain: bool,
    /// Progress bars and a line per query on standard error.
    pub progress: bool,
    /// The command line, for the report.
    pub command: String,
}

/// Runs the benchmark. Differing answers are in the report (and on standard error), not
/// an error: the caller decides (see [`RunReport::disagreements`]).
pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let spec = &opts.spec;
    let set = QuerySet::for_workload(spec, opts.seed, &opts.queries)?;
    std::fs::create_dir_all(&opts.dir).map_err(|source| Error::Io {
        action: "creating",
        path: opts.dir.clone(),
        source,
    })?;
    let mut ingest = Sextant::load(
        spec,
        &opts.dir,
        &opts.tuning,
        &WriteOptions {
            batch_rows: opts.batch_rows,
            threads: opts.threads,
            progress: opts.progress,
        },
    )?;
    let mut peers = Vec::new();
    let peer_options = PeerOptions {
        dir: &opts.dir,
        target_partitions: opts.target_partitions,
        write_threads: opts.threads,
        row_group_rows: opts.row_group_rows,
        batch_rows: opts.batch_rows,
        durability: opts.tuning.durability,
        duckdb_batches: opts.duckdb_batches,
        progress: opts.progress,
    };
    for peer in &opts.peers {
        let (engine, phases) = peer.load(spec, &peer_options)?;
        peers.push(engine);
        ingest.extend(phases);
    }
    // Sextant is opened for the queries only now, so that the peers' loading phases do
    // not carry its memory.
    let sextant = Sextant::open(
        &opts.dir,
        &opts.tuning,
        opts.target_partitions,
        opts.plan_cache_size,
    )?;
    let mut engines: Vec<Box<dyn Engine>> = vec![Box::new(sextant)];
    engines.extend(peers);
    let bar = crate::ingest::progress_of(opts.progress, set.queries.len() as u64, "queries");
    let mut queries = Vec::with_capacity(set.queries.len());
    for query in &set.queries {
        bar.suspend(|| {
            if opts.progress {
                eprintln!("{}: {}", query.name, query.sql);
            }
        });
        let result = run_query(query, &engines, opts)?;
        if let Some(m) = &result.mismatch {
            bar.suspend(|| eprintln!("!!! CHECKSUM MISMATCH in {}: {m}", query.name));
        }
        queries.push(result);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (block_rows, zstd_level, flush_bytes) = (
        opts.tuning.block_rows,
        opts.tuning.zstd_level,
        opts.tuning.flush_bytes.map(|b| b as u64),
    );
    let (scale, events_per_second, days) = match spec {
        WorkloadSpec::Cpu(c) => (Some(c.scale), None, days_of(c.start_ns, c.end_ns)),
        WorkloadSpec::Logs(c) => (
            None,
            Some(c.events_per_second),
            days_of(c.start_ns, c.end_ns),
        ),
    };
    Ok(RunReport {
        schema_version: SCHEMA_VERSION,
        tool: format!("sextant-bench {}", env!("CARGO_PKG_VERSION")),
        command: opts.command.clone(),
        workload: report::WorkloadInfo {
            name: spec.name().to_owned(),
            scale,
            events_per_second,
            days,
            seed: opts.seed,
            rows: spec.rows(),
            values_per_row: spec.values_per_row(),
        },
        settings: report::Settings {
            runs: opts.runs,
            warmup: opts.warmup,
            threads: opts.threads,
            batch_rows: opts.batch_rows,
            sync: sync_name(opts.tuning.durability).to_owned(),
            block_rows,
            flush_bytes,
            zstd_level,
            target_partitions: opts.target_partitions,
            plan_cache_size: opts.plan_cache_size,
            parquet_row_group_rows: opts.row_group_rows,
            engines: engines.iter().map(|e| e.name().to_owned()).collect(),
        },
        ingest,
        query_set: set.note.to_owned(),
        all_agree: queries.iter().all(|q| q.agree),
        queries,
    })
}

fn days_of(start_ns: i64, end_ns: i64) -> f64 {
    (end_ns - start_ns) as f64 / crate::time::NANOS_PER_DAY as f64
}

fn sync_name(d: sextant_engine::Durability) -> &'static str {
    match d {
        sextant_engine::Durability::Always => "always",
        sextant_engine::Durability::Never => "never",
        _ => "interval",
    }
}

/// Runs one query on every engine: warm-up runs, then timed runs with the engines taking
/// turns; compares every answer with Sextant's (the first engine's).
fn run_query(
    query: &BenchQuery,
    engines: &[Box<dyn Engine>],
    opts: &RunOptions,
) -> Result<QueryResult> {
    // Per engine: the statement, or why there is none (a peer whose query fails is then
    // shown as n/a with the error, and the run goes on; Sextant's failures end the run).
    let mut statements: Vec<Result<String, String>> =
        engines.iter().map(|e| e.statement(query)).collect();
    let mut answers: Vec<Option<Answer>> = vec![None; engines.len()];
    for (i, engine) in engines.iter().enumerate() {
        let Ok(sql) = &statements[i] else { continue };
        let warmed = (0..opts.warmup.max(1)).try_fold(None, |first, _| {
            let batches = engine.execute(query, sql)?;
            match first {
                None => Answer::new(&batches, query.ordered).map(Some),
                kept => Ok(kept),
            }
        });
        match warmed {
            Ok(answer) => answers[i] = answer,
            Err(e) if i > 0 => statements[i] = Err(peer_failed(engine.name(), query, &e)),
            Err(e) => return Err(e),
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); engines.len()];
    // The order rotates from run to run, so that every engine follows every other equally
    // often: a run that follows a long single-threaded one starts with a core that has
    // idled meanwhile, which slows it (see `--pause-ms`).
    for run in 0..opts.runs.max(1) {
        for k in 0..engines.len() {
            let i = (run + k) % engines.len();
            let engine = &engines[i];
            if let (Ok(sql), Some(answer)) = (&statements[i], &answers[i]) {
                if !opts.pause.is_zero() {
                    std::thread::sleep(opts.pause);
                }
                match timed(engine.as_ref(), query, sql, answer.rows()) {
                    Ok(t) => times[i].push(t),
                    Err(e) if i > 0 => {
                        statements[i] = Err(peer_failed(engine.name(), query, &e));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let sextant_p50 = Latency::new(&times[0]).p50();
    let mut results = Vec::with_capacity(engines.len());
    let mut mismatches = Vec::new();
    for (i, engine) in engines.iter().enumerate() {
        let (sql, answer) = match (&statements[i], &answers[i]) {
            (Err(reason), _) => {
                results.push(EngineResult::not_available(engine.name(), reason.clone()));
                continue;
            }
            (Ok(sql), Some(answer)) => (sql, answer),
            (Ok(_), None) => unreachable!("every statement ran"),
        };
        if i > 0 {
            let reference = answers[0].as_ref().expect("sextant answers every query");
            mismatches.extend(reference.first_difference(answer).map(|d| {
                format!(
                    "sextant {:016x} ({} rows) vs {} {:016x} ({} rows): {d}",
                    reference.checksum,
                    reference.rows(),
                    engine.name(),
                    answer.checksum,
                    answer.rows()
                )
            }));
        }
        let latency = Latency::new(&times[i]);
        results.push(EngineResult {
            engine: engine.name().to_owned(),
            status: "ok".to_owned(),
            reason: None,
            statement: Some(sql.clone()),
            p50_ms: Some(latency.p50() * 1e3),
            p95_ms: Some(latency.p95() * 1e3),
            max_ms: Some(latency.max() * 1e3),
            runs_ms: latency.runs_secs.iter().map(|s| s * 1e3).collect(),
            rows: Some(answer.rows() as u64),
            checksum: Some(format!("{:016x}", answer.checksum)),
            sextant_ratio: (i > 0).then(|| sextant_p50 / latency.p50().max(1e-12)),
            // A peer's EXPLAIN that fails is shown as its error; Sextant's ends the run.
            explain: match opts.explain.then(|| engine.explain(sql)) {
                None => None,
                Some(Ok(plan)) => plan,
                Some(Err(e)) if i > 0 => Some(format!("EXPLAIN ANALYZE failed: {e}")),
                Some(Err(e)) => return Err(e),
            },
        });
    }
    Ok(QueryResult {
        name: query.name.clone(),
        agree: mismatches.is_empty(),
        mismatch: (!mismatches.is_empty()).then(|| mismatches.join("; ")),
        engines: results,
    })
}

/// Why a peer has no figure for `query`: it failed with `error` (also printed).
fn peer_failed(peer: &str, query: &BenchQuery, error: &Error) -> String {
    eprintln!("sextant-bench: {peer} failed on {}: {error}", query.name);
    format!("the query failed: {error}")
}

/// Runs `query` (as `sql`) once and returns how long it took ([`Engine::execute_timed`]); checks that it returned
/// `rows` rows, as its warm-up run did.
fn timed(engine: &dyn Engine, query: &BenchQuery, sql: &str, rows: usize) -> Result<Duration> {
    let (batches, elapsed) = engine.execute_timed(query, sql)?;
    let got: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if got != rows {
        return Err(Error::RowCountChanged {
            engine: engine.name(),
            statement: sql.to_owned(),
            warm_up: rows,
            got,
        });
    }
    Ok(elapsed)
}
