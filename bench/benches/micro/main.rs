//! Criterion micro-benchmarks of Sextant's parts, on data from the bench workload
//! generators with fixed seeds: the column codecs (encode and decode, with the compression
//! ratio printed once per codec), WAL appends of a 10,000-row write under each durability,
//! segment reads (decode one column's blocks; a full scan of one column), and SQL planning
//! and execution of TSBS queries.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target cargo bench -p sextant-bench                # all, a few minutes
//! CARGO_TARGET_DIR=/work/target cargo bench -p sextant-bench -- codec/       # a subset
//! ```
//!
//! Each benchmark takes 10 samples over about 2 s after a 0.5 s warm-up, so the whole run
//! stays short on a shared two-core machine; pass criterion's own flags after `--`
//! (`--sample-size`, `--measurement-time`) for steadier figures. Under `cargo test` every
//! benchmark runs once, as a smoke test.

mod codecs;
mod fixture;
mod query;
mod scan;
mod wal;

use std::time::Duration;

use criterion::Criterion;

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    codecs::bench(&mut c);
    wal::bench(&mut c);
    // criterion runs benchmarks (rather than each once, as a test) when given `--bench`,
    // which `cargo bench` passes.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let fixture = fixture::Fixture::new(!benchmarking);
    scan::bench(&mut c, &fixture);
    // Last: it compacts the fixture first (the scan figures are of the flushed segments).
    query::bench(&mut c, &fixture);
    c.final_summary();
}
