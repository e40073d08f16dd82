//! The data the segment and query benchmarks read: cpu-only, 100 hosts for one day
//! (864,000 rows), seed 1, written through the columnar API and flushed to segments (the
//! query benchmarks, which run last, compact them). Under `cargo test`, where each
//! benchmark runs once, 10 hosts.

use std::time::Duration;

use sextant_bench::workload::cpu::{self, CpuBatch, CpuConfig, CpuGenerator};
use sextant_engine::{Config, Durability, TableKind};
use sextant_query::{Database, QueryOptions};

/// Hosts of the fixture.
pub const SCALE: u32 = 100;
/// Hosts of the fixture under `cargo test`.
pub const TEST_SCALE: u32 = 10;
/// Days of the fixture.
pub const DAYS: f64 = 1.0;
/// The seed of the data and of the query parameters.
pub const SEED: u64 = 1;

/// A flushed database of cpu-only rows in a temporary directory.
pub struct Fixture {
    pub config: CpuConfig,
    pub db: Database,
    pub rows: u64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// `small`: [`TEST_SCALE`] hosts instead of [`SCALE`].
    pub fn new(small: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let engine =
            Config::new(dir.path()).durability(Durability::Interval(Duration::from_secs(1)));
        let options = QueryOptions {
            target_partitions: 2,
            ..QueryOptions::default()
        };
        let db = Database::open_with(engine, options).expect("the database opens");
        let config = CpuConfig::new(if small { TEST_SCALE } else { SCALE }, DAYS).with_seed(SEED);
        let mut generator = CpuGenerator::new(config.clone()).expect("a valid workload");
        let hosts = generator.hosts().to_vec();
        let mut batch = CpuBatch::default();
        let mut rows = 0;
        while generator.fill(&mut batch, 10_000) > 0 {
            let record = batch.to_record_batch(&hosts).expect("a valid batch");
            db.write_arrow(cpu::TABLE, TableKind::Metric, &record)
                .expect("the write succeeds");
            rows += batch.len() as u64;
        }
        db.flush().expect("the flush succeeds");
        Fixture {
            config,
            db,
            rows,
            _dir: dir,
        }
    }
}
