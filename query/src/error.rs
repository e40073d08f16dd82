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

    /// A statement prepared by one [`Database`](crate::Database) was run by another.
    #[error("the statement was prepared by another Database; prepare it on the one that runs it")]
    OtherDatabase,

    /// A statement names a parameter (`$host`): parameters are numbered `$1`, `$2`, ...
    #[error("parameter {name}: parameters are numbered $1, $2, ... (named ones are not supported)")]
    NamedParameter {
        /// The parameter as written.
        name: String,
    },

    /// A statement skips a parameter's number: `$missing` is not used while `$used` is.
    #[error(
        "parameter ${missing} is not used while ${used} is: parameters are numbered $1 to $n without gaps"
    )]
    ParameterGap {
        /// The number skipped.
        missing: usize,
        /// A larger number in use.
        used: usize,
    },

    /// A prepared statement was run with the wrong number of values.
    #[error("the statement takes {expected} parameter(s); {given} given")]
    ParameterCount {
        /// Its parameters.
        expected: usize,
        /// The values given.
        given: usize,
    },

    /// A value given for a parameter cannot be read as the parameter's type.
    #[error("parameter ${index}: {value} (of type {found}) cannot be read as {expected}: {reason}")]
    ParameterType {
        /// The parameter's number (1 for `$1`).
        index: usize,
        /// The value, as text.
        value: String,
        /// The value's type.
        found: arrow_schema::DataType,
        /// The parameter's type.
        expected: arrow_schema::DataType,
        /// Why the value cannot be read so.
        reason: String,
    },

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
