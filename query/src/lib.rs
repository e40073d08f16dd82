//! SQL over Sextant: every engine table is a DataFusion table, with time ranges and tag
//! predicates pushed into the engine's scans, plus the functions telemetry dashboards use.
//!
//! ```
//! use sextant_query::Database;
//! use sextant_engine::{Level, LogRecord, Point};
//!
//! # fn main() -> sextant_query::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path())?;
//! db.write_points(&[
//!     Point::metric("cpu").tag("host", "a").field("usage_user", 95.0).time(60_000_000_000),
//!     Point::metric("cpu").tag("host", "b").field("usage_user", 10.0).time(60_000_000_000),
//!     LogRecord::new("logs", Level::Error, "disk full").tag("service", "api").time(1).into(),
//!     LogRecord::new("logs", Level::Info, "ok").tag("service", "api").time(2).into(),
//! ])?;
//! let hot = db.sql("SELECT host FROM cpu WHERE usage_user > 90")?;
//! assert_eq!(hot[0].num_rows(), 1);
//! let bad = db.sql("SELECT count(*) AS n FROM logs WHERE level >= 'WARN'")?;
//! assert_eq!(arrow_cast::display::array_value_to_string(bad[0].column(0), 0).unwrap(), "1");
//! # Ok(()) }
//! ```

mod bucket_aggregate;
mod database;
pub mod error;
pub mod exec;
pub mod filters;
pub mod functions;
pub mod latest;
pub mod memory;
mod plan_cache;
pub mod provider;
mod reuse;
mod run_aggregate;
mod runtime_filter;
mod statement;
pub mod system;
mod top_by_time;

pub use database::{Database, QueryOptions};
pub use error::{Error, Result};
pub use statement::Statement;
