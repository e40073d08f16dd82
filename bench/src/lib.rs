//! Sextant's benchmark harness: the reference workloads of `WORKLOADS.md`, generated
//! deterministically from a seed and streamed in columnar batches, and writers for CSV and
//! InfluxDB line protocol; the TSBS devops queries ([`queries`]) and the query benchmark that
//! runs them on Sextant and on DataFusion over Parquet ([`query_bench`]); other engines to
//! compare with, each behind a cargo feature ([`peers`]).
//!
//! ```
//! use sextant_bench::workload::cpu::{CpuConfig, CpuGenerator};
//!
//! // TSBS cpu-only, 100 hosts for one hour.
//! let generator = CpuGenerator::new(CpuConfig::new(100, 1.0 / 24.0).with_seed(7))?;
//! let rows: usize = generator.batches(10_000).map(|batch| batch.len()).sum();
//! assert_eq!(rows, 100 * 360);
//! # Ok::<(), sextant_bench::Error>(())
//! ```

pub mod error;
pub mod ingest;
pub mod output;
pub mod peers;
pub mod queries;
pub mod query_bench;
pub mod time;
pub mod workload;

pub use error::{Error, Result};
