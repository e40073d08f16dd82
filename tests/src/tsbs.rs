//! The TSBS devops queries, which live in the bench crate (`sextant_bench::queries`) so
//! that the query benchmark runs the very SQL these tests check; re-exported here under
//! their old path.

pub use sextant_bench::queries::*;
