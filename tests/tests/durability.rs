//! Durability modes, poisoning after a failed fsync, and flushing by age.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sextant_engine::{Clock, Config, Durability, Error, Faults, Point, ScanRequest};

/// Once armed, fails every fsync from the `n`-th on.
#[derive(Debug)]
struct FailSyncFrom {
    n: usize,
    armed: AtomicBool,
    seen: AtomicUsize,
}

impl Faults for FailSyncFrom {
    fn before_sync(&self, _path: &Path) -> std::io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 >= self.n {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

fn point(t: i64) -> Point {
    Point::metric("m")
        .tag("host", "a")
        .field("v", t as f64)
        .time(t)
}

#[test]
fn failed_fsync_poisons_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FailSyncFrom {
        n: 3,
        armed: AtomicBool::new(false),
        seen: AtomicUsize::new(0),
    });
    let engine = Config::new(dir.path())
        .durability(Durability::Always)
        .faults(faults.clone())
        .open()
        .unwrap();
    faults.armed.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for t in 0..6 {
        results.push(engine.write_points(&[point(t)]));
    }
    let first_err = results
        .iter()
        .position(|r| r.is_err())
        .expect("a write must fail");
    for r in &results[first_err..] {
        let err = r.as_ref().unwrap_err();
        assert!(matches!(err, Error::Poisoned(_)), "{err}");
        assert!(err.to_string().contains("writes are refused"), "{err}");
    }
    // Acknowledged writes are readable; the failed ones were never acknowledged.
    let rows = sextant_tests::scan_rows(&engine.snapshot(), &ScanRequest::new("m")).unwrap();
    assert!(rows.len() >= first_err);
    std::mem::forget(engine);
}

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn rows_older_than_flush_age_are_flushed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000)));
    let engine = Config::new(dir.path())
        .durability(Durability::Never)
        .flush_age(Duration::from_millis(200))
        .clock(clock.clone())
        .open()
        .unwrap();
    engine.write_points(&[point(1)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        engine.snapshot().stats("m").unwrap().segments.len(),
        0,
        "not old yet by the clock"
    );
    clock.0.store(1_000 + 1_000_000_000, Ordering::SeqCst);
    let mut flushed = false;
    for _ in 0..100 {
        if !engine.snapshot().stats("m").unwrap().segments.is_empty() {
            flushed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        flushed,
        "the background flusher should write a segment once the rows are old"
    );
    let stats = engine.snapshot().stats("m").unwrap();
    assert_eq!(stats.memory_rows, 0);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = Config::new(dir.path()).open().unwrap();
    let err = Config::new(dir.path()).open().unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
}

#[test]
fn rows_survive_close_and_reopen_in_every_mode() {
    for durability in [
        Durability::Always,
        Durability::Interval(Duration::from_millis(10)),
        Durability::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Config::new(dir.path())
            .durability(durability)
            .open()
            .unwrap();
        engine.write_points(&[point(1), point(2)]).unwrap();
        engine.close().unwrap();
        let engine = Config::new(dir.path()).open().unwrap();
        let rows = sextant_tests::scan_rows(&engine.snapshot(), &ScanRequest::new("m")).unwrap();
        assert_eq!(rows.len(), 2, "{durability:?}");
        assert!(std::fs::read_dir(dir.path().join("wal")).unwrap().all(|e| {
            // After a clean close and reopen only the new, empty WAL file may be there.
            e.unwrap().metadata().unwrap().len() <= 16
        }));
    }
}
