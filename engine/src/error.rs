//! The engine's error type.

use std::path::PathBuf;

use crate::schema::ColumnType;

/// Everything that can go wrong in the engine, each with what a person needs to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the engine was doing ("opening", "writing", "syncing", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Bytes on disk failed a check: a checksum, a magic number, a length or a value.
    #[error("{path} is damaged at byte {offset}: {what}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record, block or section within the file.
        offset: u64,
        /// What was wrong, in words.
        what: String,
    },

    /// A file the database needs is not there: a segment its manifest lists as live.
    #[error(
        "{path} is missing: {why}; restore it, or open with salvage to read the rest read-only"
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// Why it is needed, in words.
        why: String,
    },

    /// A file was written by a newer (or unknown) version of the format.
    #[error("{path} has format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },

    /// A write offered a column whose type differs from the table's.
    #[error(
        "table {table:?}: column {column:?} holds {existing} values, the write offers {offered}; the write was rejected as a whole"
    )]
    TypeConflict {
        /// The table written.
        table: String,
        /// The column in conflict.
        column: String,
        /// The column's type in the table.
        existing: ColumnType,
        /// The type the write offered.
        offered: ColumnType,
    },

    /// A write named a table as a kind (metric or event) it is not.
    #[error("table {table:?} is a {existing} table, the write treats it as a {offered} table")]
    TableKindConflict {
        /// The table written.
        table: String,
        /// The table's kind.
        existing: crate::TableKind,
        /// The kind the write assumed.
        offered: crate::TableKind,
    },

    /// A write or request was malformed: an empty name, a missing time column, ...
    #[error("{0}")]
    InvalidInput(String),

    /// A table that does not exist was asked for.
    #[error("no table named {0:?}")]
    NoSuchTable(String),

    /// A column that does not exist was asked for.
    #[error("table {table:?} has no column named {column:?}")]
    NoSuchColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
    },

    /// An earlier WAL write or fsync failed; the engine refuses writes because it can no longer
    /// promise durability.
    #[error(
        "writes are refused: an earlier write or sync of the write-ahead log failed ({0}); reopen the database to recover"
    )]
    Poisoned(String),

    /// A write would have created a series past the table's limit
    /// ([`Config::series_limit`](crate::Config::series_limit)); nothing of it was written.
    #[error(
        "table {table:?} holds its limit of {limit} series: the write, which would add series {series}, was refused whole; existing series can still be written"
    )]
    SeriesLimit {
        /// The table.
        table: String,
        /// The limit.
        limit: usize,
        /// The first new series of the write (its tags).
        series: String,
    },

    /// The rows held in memory and the memory queries reserved are at the database's
    /// memory budget ([`Config::memory_budget`](crate::Config::memory_budget)) until what
    /// is being flushed reaches disk or queries end. Nothing was written: retry after
    /// `retry_after`.
    #[error(
        "the database holds {used} bytes in memory ({queries} of them reserved by queries, compactions and log buffers) and the write needs {needed} more, past its budget of {budget}: nothing was written; retry in {retry_after:?}, once rows being flushed reach disk or queries and compactions end"
    )]
    Backpressure {
        /// Bytes in memory: rows, and what queries reserved.
        used: usize,
        /// Of `used`, bytes reserved by queries, compactions and log buffers.
        queries: usize,
        /// Bytes the write needs.
        needed: usize,
        /// The budget.
        budget: usize,
        /// About how long until the rows being flushed free their memory.
        retry_after: std::time::Duration,
    },

    /// A reservation of memory for a query ([`Engine::try_reserve_memory`]) would take
    /// the database past its memory budget.
    ///
    /// [`Engine::try_reserve_memory`]: crate::Engine::try_reserve_memory
    #[error(
        "the database's memory budget of {budget} bytes is spent ({rows} bytes of rows in memory, {reserved} bytes reserved by queries, compactions and log buffers): {needed} bytes more were refused"
    )]
    MemoryBudget {
        /// Bytes of rows in memory.
        rows: usize,
        /// Bytes already reserved by queries, compactions and log buffers.
        reserved: usize,
        /// Bytes asked for.
        needed: usize,
        /// The budget.
        budget: usize,
    },

    /// The engine was opened read-only (for salvage) or has been closed.
    #[error("the database is {0}; writes are refused")]
    ReadOnly(&'static str),

    /// The database directory is in use by another open engine.
    #[error("{0} is locked by another open engine")]
    Locked(PathBuf),

    /// Arrow rejected a batch the engine built or was given.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error with the action and path that failed.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A damaged-file error.
    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            what: what.into(),
        }
    }
}
