//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong while generating or writing a workload.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A workload parameter is out of range.
    #[error("invalid workload parameter `{parameter}`: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the configuration struct.
        parameter: &'static str,
        /// Why the value cannot be used, with the value.
        reason: String,
    },
    /// A timestamp argument is not of the form `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`.
    #[error("cannot read timestamp {text:?}: expected YYYY-MM-DDTHH:MM:SS[.f]Z (UTC)")]
    Timestamp {
        /// The text given.
        text: String,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file written to (`-` for standard output).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The storage engine returned an error.
    #[error("engine: {0}")]
    Engine(#[from] sextant_engine::Error),
    /// A file-system step of the benchmark (not of the engine) failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the benchmark was doing.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A query through Sextant's SQL layer failed.
    #[error("sextant query: {0}")]
    Query(#[from] Box<sextant_query::Error>),
    /// The alert rules of `sextant-bench alerts` were refused.
    #[error("alerts: {0}")]
    Alerts(#[from] Box<sextant_alerts::Error>),
    /// A query of the Parquet baseline failed in DataFusion.
    #[error("datafusion: {0}")]
    DataFusion(#[from] Box<datafusion::error::DataFusionError>),
    /// Writing the Parquet baseline failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The engines of the query benchmark gave different answers.
    #[error("the engines' answers differ for: {}", queries.join(", "))]
    AnswersDiffer {
        /// The query types whose answers differ.
        queries: Vec<String>,
    },
    /// `compare` was given a directory of rounds that do not make one report.
    #[error("the rounds in {path} do not compare as one run: {reason}")]
    Rounds {
        /// The directory.
        path: PathBuf,
        /// Why, a sentence.
        reason: String,
    },
    /// `compare --fail-if-worse` found Sextant's figures worse beyond the threshold.
    #[error(
        "compare --fail-if-worse (threshold {threshold_percent:.1}%): {}",
        problems.join(", ")
    )]
    Regressed {
        /// The threshold, in percent.
        threshold_percent: f64,
        /// What got worse: metrics, missing metrics, disagreeing answers.
        problems: Vec<String>,
    },
    /// A timed run of a query returned another number of rows than its warm-up run.
    #[error(
        "{engine} returned {got} rows on a timed run but {warm_up} on the warm-up run of {statement}"
    )]
    RowCountChanged {
        /// The engine: `sextant`, `parquet`, `tsink`.
        engine: &'static str,
        /// The query: its SQL, or the native calls it makes.
        statement: String,
        /// Rows of the warm-up run.
        warm_up: usize,
        /// Rows of the timed run.
        got: usize,
    },
    /// A benchmark JSON file is not valid JSON or not a run report.
    #[error("{path} is not a sextant-bench run report: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A benchmark JSON file has another schema version than this build reads.
    #[error(
        "{path} has schema_version {}, but this sextant-bench reads version {expected}; rerun the benchmark with this build to compare",
        found.map_or("(missing)".to_owned(), |v| v.to_string())
    )]
    SchemaMismatch {
        /// The file.
        path: PathBuf,
        /// Its `schema_version`, if it has one.
        found: Option<u64>,
        /// The version this build reads.
        expected: u32,
    },
    /// Drawing the chart failed.
    #[error("cannot draw the chart {path}: {reason}")]
    Plot {
        /// The chart file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A peer engine (`crate::peers`) failed.
    #[error("{peer}: {message}")]
    Peer {
        /// The peer: `tsink`.
        peer: &'static str,
        /// What it said.
        message: String,
    },
    /// A protocol benchmark's input was refused (`crate::protocols`).
    #[error("{protocol}: {message}")]
    Protocol {
        /// The protocol: `line protocol`, `statsd`.
        protocol: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Building an Arrow batch failed.
    #[error("cannot build an Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl From<sextant_query::Error> for Error {
    fn from(e: sextant_query::Error) -> Self {
        Error::Query(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::DataFusion(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(parameter: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        parameter,
        reason: reason.into(),
    }
}
