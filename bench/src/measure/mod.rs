//! What every benchmark measures with, whichever engine it measures: a query's answer in a
//! form engines can be compared by ([`Answer`]), latency summaries of repeated runs
//! ([`Latency`], [`geometric_mean`]), and a run's files: their bytes on disk and clearing
//! them before a run ([`remove`]), as `sextant-bench run` ([`crate::run`]), its peers
//! ([`crate::peers`]) and the ingest, protocol and alert benchmarks use them.

mod answer;
mod files;
mod latency;

pub use answer::Answer;
pub(crate) use files::disk_usage;
pub use files::remove;
pub use latency::{Latency, geometric_mean, median};
