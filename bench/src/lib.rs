//! Sextant's benchmark harness, as a set of parts: the reference workloads of
//! `WORKLOADS.md`, generated deterministically from a seed and streamed in columnar batches
//! ([`workload`]), and writers for CSV, InfluxDB line protocol and Parquet ([`output`]);
//! the workloads' queries ([`queries`]); the engines that answer them, Sextant and its
//! peers, each in its own module behind one trait ([`peers`]); what every benchmark
//! measures with ([`measure`]); and `sextant-bench run` ([`run`]), which loads a workload
//! into Sextant and its peers, runs the queries on each, and reports, charts and compares
//! the figures.
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

pub mod alerts;
pub mod error;
pub mod ingest;
pub mod measure;
pub mod memory;
pub mod output;
pub mod peers;
pub mod protocols;
pub mod queries;
pub mod run;
pub mod time;
pub mod workload;

pub use error::{Error, Result};
