//! WAL appends of one 10,000-row cpu write (the engine's own payload for it, taken from a
//! WAL the engine wrote) under each durability: `append` then `wait_durable`, one thread.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use sextant_bench::workload::cpu::{self, CpuConfig, CpuGenerator};
use sextant_engine::wal::{self, Wal, WalOptions};
use sextant_engine::{Config, Durability, TableKind};

/// Rows of the write.
const ROWS: usize = 10_000;
/// WAL files whose records are all appended are deleted every this many appends (outside
/// the timed part), so that the benchmark does not fill the disk.
const TRIM_EVERY: u64 = 64;

/// The WAL payload the engine writes for one write call of `ROWS` cpu rows.
fn payload() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = CpuConfig::new(1000, 1.0).with_seed(1);
    let mut generator = CpuGenerator::new(config).expect("valid");
    let batch = generator.next_batch(ROWS).expect("rows");
    let record = batch.to_record_batch(generator.hosts()).expect("valid");
    let engine = Config::new(dir.path())
        .durability(Durability::Never)
        .background_flush(false)
        .open()
        .expect("the engine opens");
    engine
        .write_arrow(cpu::TABLE, TableKind::Metric, &record)
        .expect("the write succeeds");
    // Read before the engine closes: closing flushes the rows and removes the WAL.
    let mut payloads = Vec::new();
    wal::replay(&dir.path().join("wal"), false, 0, |r| {
        payloads.push(r.payload.to_vec());
        Ok(())
    })
    .expect("the WAL replays");
    drop(engine);
    assert_eq!(payloads.len(), 1, "one write call makes one WAL record");
    payloads.pop().expect("one record")
}

pub fn bench(c: &mut Criterion) {
    let payload = payload();
    println!(
        "wal: a {ROWS}-row cpu write is a {} byte WAL payload",
        payload.len()
    );
    let mut group = c.benchmark_group("wal-append-10k-rows");
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload.len() as u64,
    });
    for (name, durability) in [
        ("always", Durability::Always),
        ("interval-1s", Durability::Interval(Duration::from_secs(1))),
        ("never", Durability::Never),
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = WalOptions {
            durability,
            ..WalOptions::default()
        };
        let wal = Wal::create(dir.path(), 0, options).expect("the WAL opens");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for i in 0..iters {
                    let t = Instant::now();
                    let seq = wal.append(&payload).expect("the append succeeds");
                    wal.wait_durable(seq).expect("the record becomes durable");
                    timed += t.elapsed();
                    if (i + 1) % TRIM_EVERY == 0 {
                        wal.remove_obsolete(wal.next_seq()).expect("old files go");
                    }
                }
                wal.remove_obsolete(wal.next_seq()).expect("old files go");
                timed
            })
        });
        wal.close().expect("the WAL closes");
    }
    group.finish();
}
