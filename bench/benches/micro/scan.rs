//! Reading a flushed table: decoding every block of one column straight from the segments,
//! and a full scan of that column through the engine's scan API (blocks decoded and
//! assembled into Arrow batches of 65,536 rows).

use criterion::{Criterion, Throughput};
use sextant_engine::ScanRequest;

use crate::fixture::Fixture;

const COLUMN: &str = "usage_user";

pub fn bench(c: &mut Criterion, fixture: &Fixture) {
    let engine = fixture.db.engine();
    let stats = engine.snapshot().stats("cpu").expect("the table exists");
    let encoded: u64 = stats
        .segments
        .iter()
        .filter_map(|s| {
            let col = s.meta().columns.iter().position(|c| c.name == COLUMN)?;
            Some(
                s.meta().blocks[col]
                    .iter()
                    .map(|b| u64::from(b.len))
                    .sum::<u64>(),
            )
        })
        .sum();
    println!(
        "scan: {} rows in {} segment(s); {COLUMN} is {encoded} encoded bytes ({:.3} bytes/value)",
        fixture.rows,
        stats.segments.len(),
        encoded as f64 / fixture.rows as f64
    );
    let mut group = c.benchmark_group("segment");
    group.throughput(Throughput::ElementsAndBytes {
        elements: fixture.rows,
        bytes: fixture.rows * 8,
    });
    group.bench_function("decode-column", |b| {
        b.iter(|| {
            let mut n = 0;
            for seg in &stats.segments {
                let col = seg
                    .meta()
                    .columns
                    .iter()
                    .position(|c| c.name == COLUMN)
                    .expect("the column is stored");
                for block in 0..seg.meta().block_count() {
                    n += seg.read_block(col, block).expect("the block decodes").len();
                }
            }
            assert_eq!(n as u64, fixture.rows);
            n
        })
    });
    group.bench_function("full-scan-column", |b| {
        b.iter(|| {
            let snapshot = engine.snapshot();
            let request = ScanRequest::new("cpu").columns([COLUMN]).batch_rows(65_536);
            let mut n = 0;
            for batch in snapshot.scan(&request).expect("the scan starts") {
                n += batch.expect("the scan succeeds").num_rows();
            }
            assert_eq!(n as u64, fixture.rows);
            n
        })
    });
    group.finish();
}
