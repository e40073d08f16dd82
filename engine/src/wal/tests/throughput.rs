//! Append throughput, measured on demand.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::super::*;
use super::*;

/// How long one measurement appends at most.
const RUN_TIME: Duration = Duration::from_secs(2);
/// Measurements per configuration, interleaved; the median is reported.
const ROUNDS: usize = 3;

/// Append throughput for 1 MB and 10 KB payloads under each durability, with 1 and 4
/// threads each appending and then waiting for durability. Each configuration runs
/// `ROUNDS` times, interleaved with the others, for at most `RUN_TIME` (or 256 MB); the
/// table gives the median run. Run with
/// `cargo test --release --lib wal_append_throughput -- --ignored --nocapture`;
/// `SEXTANT_WAL_BENCH_DIR` picks the file system (default: the temp directory).
#[test]
#[ignore = "a measurement, not a test"]
fn wal_append_throughput() {
    let base = std::env::var_os("SEXTANT_WAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mut configs = Vec::new();
    for (size, label) in [(1_000_000usize, "1 MB"), (10_000, "10 KB")] {
        for (name, durability) in [
            ("Never", Durability::Never),
            ("Interval(1s)", Durability::Interval(Duration::from_secs(1))),
            ("Always", Durability::Always),
        ] {
            for threads in [1u64, 4] {
                configs.push((size, label, name, durability, threads, Vec::new()));
            }
        }
    }
    for _ in 0..ROUNDS {
        for (size, _, _, durability, threads, runs) in &mut configs {
            runs.push(measure(&base, *size, *durability, *threads));
        }
    }
    println!("| payload | durability | threads | MB/s | records/s | records per fsync |");
    println!("|---|---|---|---|---|---|");
    for (size, label, name, _, threads, mut runs) in configs {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (records_per_sec, records, syncs) = runs[runs.len() / 2];
        let per_sync = if syncs == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", records as f64 / syncs as f64)
        };
        println!(
            "| {label} | {name} | {threads} | {:.0} | {records_per_sec:.0} | {per_sync} |",
            records_per_sec * size as f64 / 1e6,
        );
    }
}

/// One run: records per second, records appended, `fsync`s made.
fn measure(base: &Path, size: usize, durability: Durability, threads: u64) -> (f64, u64, u64) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let wal = Arc::new(Wal::create(dir.path(), 0, options(durability, 64 << 20)).unwrap());
    let data = Arc::new(payload(7, size));
    let max_records = (256_000_000 / size) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, data, done) = (wal.clone(), data.clone(), done.clone());
            std::thread::spawn(move || {
                while start.elapsed() < RUN_TIME && done.load(Ordering::Relaxed) < max_records {
                    let seq = wal.append(&data).unwrap();
                    wal.wait_durable(seq).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let (records, syncs) = (done.load(Ordering::Relaxed), wal.sync_count());
    wal.close().unwrap();
    (records as f64 / secs, records, syncs)
}
