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
    /// Building an Arrow batch failed.
    #[error("cannot build an Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(parameter: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        parameter,
        reason: reason.into(),
    }
}
