//! The application-log queries, which live in the bench crate
//! (`sextant_bench::queries::logs`) so that `sextant-bench run --workload logs` runs the very
//! SQL these tests check; re-exported here under their old path.

pub use sextant_bench::queries::logs::*;
