//! The parts of the query benchmark that `sextant-bench run` ([`crate::run`]) is built
//! from: a query's answer in a form engines can be compared by ([`Answer`]), latency
//! summaries ([`Latency`]), the Parquet peer's data ([`write_parquet`]) and its DataFusion
//! session ([`Baseline`]).

mod answer;
mod baseline;
mod load;
mod stats;

pub use answer::Answer;
pub use baseline::Baseline;
pub use load::{PASS_ROWS, ParquetLoad, remove, write_parquet};
pub use stats::{Latency, geometric_mean};
