//! The program's errors: each a sentence for the person at the terminal.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database, or a query of it.
    #[error("{0}")]
    Sextant(#[from] sextant_query::Error),
    /// The storage engine.
    #[error("{0}")]
    Engine(#[from] sextant_engine::Error),
    /// Alert rules refused, or an alert API used wrongly.
    #[error("{0}")]
    Alerts(#[from] sextant_alerts::Error),
    /// Reading or writing a file.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Formatting an answer.
    #[error("printing the answer: {0}")]
    Print(#[from] datafusion::arrow::error::ArrowError),
    /// A request the parsers refused whole (too large, say).
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    /// Arguments that do not fit together.
    #[error("{0}")]
    Usage(String),
}

/// The program's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
