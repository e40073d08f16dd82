//! The query crate's error type.

use std::time::Duration;

/// What can go wrong opening a database or running a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] sextant_engine::Error),

    /// DataFusion rejected or failed the query; its message says why (syntax, a missing
    /// table or column, a type error, a memory limit exceeded, ...).
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),

    /// A prepared statement's parameters are wrong: numbered with gaps, named, too few or
    /// too many values, or a value that cannot be cast to its parameter's type.
    #[error("{0}")]
    Parameter(String),

    /// The query ran longer than its timeout and was cancelled.
    #[error("the query was cancelled after its timeout of {0:?}")]
    Timeout(Duration),

    /// The async runtime could not be started.
    #[error("starting the query runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The query crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an engine error for DataFusion, keeping it reachable as the source.
pub(crate) fn to_datafusion(e: sextant_engine::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}
