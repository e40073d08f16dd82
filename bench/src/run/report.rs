//! The figures of a run, as written to and read from JSON (schema in `docs/BENCH_JSON.md`;
//! every change to these types changes [`SCHEMA_VERSION`] and that document).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::memory::PeakScope;
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// The version of the JSON layout; `compare` refuses files of another.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `sextant-bench <version>`.
    pub tool: String,
    /// The command line of the run.
    pub command: String,
    /// The data.
    pub workload: WorkloadInfo,
    /// How it was run.
    pub settings: Settings,
    /// Loading phases, Sextant's first, then each peer's.
    pub ingest: Vec<Phase>,
    /// What the query set is.
    pub query_set: String,
    /// One entry per query, in the set's order.
    pub queries: Vec<QueryResult>,
    /// Whether every engine that answered a query gave Sextant's answer.
    pub all_agree: bool,
}

/// The workload's parameters and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadInfo {
    /// `cpu-only`, `noisy-floats` or `logs`.
    pub name: String,
    /// Hosts (cpu workloads); `null` for logs.
    pub scale: Option<u32>,
    /// Events per second (logs); `null` for the cpu workloads.
    pub events_per_second: Option<u32>,
    /// Days of data.
    pub days: f64,
    /// Seed of the data and the query parameters.
    pub seed: u64,
    /// Rows generated.
    pub rows: u64,
    /// Values per row (the unit of bytes per value).
    pub values_per_row: u32,
}

/// The options of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Timed runs per query and engine.
    pub runs: usize,
    /// Untimed runs per query and engine before them.
    pub warmup: usize,
    /// Sextant writer threads.
    pub threads: usize,
    /// Rows per write call.
    pub batch_rows: usize,
    /// `always`, `interval` or `never`.
    pub sync: String,
    /// Engine option; `null`: the engine's default.
    pub block_rows: Option<u32>,
    /// Engine option; `null`: the engine's default.
    pub flush_bytes: Option<u64>,
    /// Engine option; `null`: the engine's default.
    pub zstd_level: Option<i32>,
    /// DataFusion target partitions of every SQL engine.
    pub target_partitions: usize,
    /// SQL texts whose plans Sextant keeps to run again (`QueryOptions::plan_cache_size`;
    /// 0: each run is parsed and planned, as the peers do); read as 256 from files
    /// written before it was recorded, whose runs kept 256.
    #[serde(default = "plan_cache_size_before_it_was_recorded")]
    pub plan_cache_size: usize,
    /// Most rows per Parquet row group.
    pub parquet_row_group_rows: usize,
    /// The engines, Sextant first.
    pub engines: Vec<String>,
}

/// The plan cache of runs whose reports do not say it: Sextant's default then.
fn plan_cache_size_before_it_was_recorded() -> usize {
    256
}

/// One loading phase of one engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// The engine.
    pub engine: String,
    /// `write` (rows into the engine) or `flush` (to disk, after the writes).
    pub phase: String,
    /// Rows the phase handled.
    pub rows: u64,
    /// Wall-clock seconds.
    pub secs: f64,
    /// Rows over wall-clock seconds.
    pub rows_per_sec: f64,
    /// `rows_per_sec` x values per row.
    pub values_per_sec: f64,
    /// Seconds inside the engine's write calls (summed over threads), where measured.
    pub engine_secs: Option<f64>,
    /// Bytes on disk after the phase, where it ends with the data on disk.
    pub bytes_on_disk: Option<u64>,
    /// `bytes_on_disk` / (rows x values per row).
    pub bytes_per_value: Option<f64>,
    /// Peak resident memory, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Whether the peak is the phase's own or the process's running peak.
    pub peak_rss_scope: PeakScope,
    /// The rate over time: `[seconds since the phase started, rows/s since the last
    /// sample]`, about every 0.25 s; empty where not sampled.
    pub samples: Vec<[f64; 2]>,
    /// Anything else worth knowing, for people.
    pub note: Option<String>,
}

impl Phase {
    /// A phase of `rows` rows in `secs` seconds, rates filled in.
    pub fn new(engine: &str, phase: &str, spec: &WorkloadSpec, rows: u64, secs: f64) -> Phase {
        let rows_per_sec = rows as f64 / secs.max(1e-9);
        Phase {
            engine: engine.to_owned(),
            phase: phase.to_owned(),
            rows,
            secs,
            rows_per_sec,
            values_per_sec: rows_per_sec * f64::from(spec.values_per_row()),
            engine_secs: None,
            bytes_on_disk: None,
            bytes_per_value: None,
            peak_rss_bytes: None,
            peak_rss_scope: PeakScope::Unavailable,
            samples: Vec::new(),
            note: None,
        }
    }

    /// Sets the peak memory figures.
    pub fn set_memory(&mut self, (bytes, scope): (Option<u64>, PeakScope)) {
        self.peak_rss_bytes = bytes;
        self.peak_rss_scope = scope;
    }

    /// Sets the size on disk and bytes per value of `self.rows` rows.
    pub fn set_disk(&mut self, bytes: u64, spec: &WorkloadSpec) {
        self.bytes_on_disk = Some(bytes);
        let values = self.rows * u64::from(spec.values_per_row());
        self.bytes_per_value = Some(bytes as f64 / values.max(1) as f64);
    }
}

/// One query on every engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The query's name.
    pub name: String,
    /// Whether every engine that answered gave Sextant's answer.
    pub agree: bool,
    /// The first difference, as a sentence, when they do not agree.
    pub mismatch: Option<String>,
    /// One entry per engine, in [`Settings::engines`] order.
    pub engines: Vec<EngineResult>,
}

impl QueryResult {
    /// The result of `engine`, if it took part.
    pub fn engine(&self, engine: &str) -> Option<&EngineResult> {
        self.engines.iter().find(|e| e.engine == engine)
    }
}

/// One query on one engine: figures, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineResult {
    /// The engine.
    pub engine: String,
    /// `ok`, or `n/a` when the engine cannot express the query.
    pub status: String,
    /// Why the engine cannot express the query (status `n/a`).
    pub reason: Option<String>,
    /// The statement run.
    pub statement: Option<String>,
    /// Median of the timed runs, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile (nearest rank) of the timed runs, ms.
    pub p95_ms: Option<f64>,
    /// Slowest timed run, ms.
    pub max_ms: Option<f64>,
    /// Every timed run, ms, in run order.
    pub runs_ms: Vec<f64>,
    /// Rows of the answer.
    pub rows: Option<u64>,
    /// FNV-1a of the rendered answer, 16 hex digits.
    pub checksum: Option<String>,
    /// Sextant's p50 over this engine's (below 1: Sextant is faster); `null` for Sextant.
    pub sextant_ratio: Option<f64>,
    /// `EXPLAIN ANALYZE` output, when asked for.
    pub explain: Option<String>,
}

impl EngineResult {
    /// The result of an engine that cannot express the query.
    pub fn not_available(engine: &str, reason: String) -> EngineResult {
        EngineResult {
            engine: engine.to_owned(),
            status: NOT_AVAILABLE.to_owned(),
            reason: Some(reason),
            statement: None,
            p50_ms: None,
            p95_ms: None,
            max_ms: None,
            runs_ms: Vec::new(),
            rows: None,
            checksum: None,
            sextant_ratio: None,
            explain: None,
        }
    }
}

/// [`EngineResult::status`] of an engine that cannot express a query.
pub const NOT_AVAILABLE: &str = "n/a";

impl RunReport {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a report serializes");
        text.push('\n');
        text
    }

    /// Writes the JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a report written by [`RunReport::write_json`]; a file of another schema
    /// version is [`Error::SchemaMismatch`].
    pub fn read_json(path: &Path) -> Result<RunReport> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses the JSON text of the file `path` (named in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<RunReport> {
        let json_error = |source| Error::Json {
            path: path.to_path_buf(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
        let found = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64);
        if found != Some(u64::from(SCHEMA_VERSION)) {
            return Err(Error::SchemaMismatch {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        serde_json::from_value(value).map_err(json_error)
    }

    /// The names of the queries whose answers differ between engines.
    pub fn disagreements(&self) -> Vec<String> {
        self.queries
            .iter()
            .filter(|q| !q.agree)
            .map(|q| q.name.clone())
            .collect()
    }
}
