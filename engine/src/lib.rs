//! Sextant's storage engine: a columnar, append-only store for telemetry (metrics and
//! events) with a write-ahead log and memory-mapped, compressed segment files.
//!
//! A database is a directory of tables. Every table has a `time` column (nanoseconds
//! since the Unix epoch), tags (strings that identify a series) and fields. Metric tables
//! keep one row per series and time (last write wins); event tables keep every row.
//!
//! ```
//! use sextant_engine::{Config, Level, LogRecord, Point, ScanRequest};
//!
//! # fn main() -> sextant_engine::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let engine = Config::new(dir.path()).open()?;
//! engine.write_points(&[
//!     Point::metric("cpu").tag("host", "web-1").field("usage_user", 12.5).time(1_000),
//!     Point::metric("cpu").tag("host", "web-2").field("usage_user", 80.0).time(1_000),
//!     LogRecord::new("logs", Level::Error, "disk full").tag("service", "api").time(2_000).into(),
//! ])?;
//! engine.flush()?;
//!
//! let snapshot = engine.snapshot();
//! let rows: usize = snapshot
//!     .scan(&ScanRequest::new("cpu").tag_eq("host", "web-2"))?
//!     .map(|batch| batch.map(|b| b.num_rows()))
//!     .sum::<sextant_engine::Result<usize>>()?;
//! assert_eq!(rows, 1);
//! # Ok(()) }
//! ```

#[cfg(target_endian = "big")]
compile_error!(
    "Sextant's file formats are little-endian and it builds only for little-endian targets"
);

pub mod batch;
mod bytes;
pub mod compaction;
pub mod config;
pub mod encoding;
pub mod engine;
pub mod error;
mod fs;
mod head;
pub mod lifecycle;
mod manifest;
mod mmap;
pub mod scan;
pub mod schema;
pub mod segment;
pub mod series;
pub mod snapshot;
mod table;
pub mod wal;

pub use batch::{FieldValue, LogRecord, Point, TableBatch};
pub use compaction::{CompactionStats, SegmentInfo};
pub use config::{Clock, Config, SystemClock};
pub use engine::{Engine, RecoveryReport};
pub use error::{Error, Result};
pub use lifecycle::{Delete, Retention, RowMatch};
pub use scan::{CmpOp, FieldFilter, Scan, ScanMetrics, ScanRequest};
pub use schema::{ColumnDef, ColumnType, Level, TableKind, TableSchema};
pub use series::SeriesKey;
pub use snapshot::{Snapshot, TableStats};
pub use wal::{Durability, Faults};
