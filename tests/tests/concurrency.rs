//! Many threads write and read one engine at once; every write is seen whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sextant_engine::{Config, Durability, Point, ScanRequest};

#[test]
fn concurrent_writers_and_readers_see_whole_writes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Config::new(dir.path())
            .durability(Durability::Always)
            .flush_bytes(64 << 10)
            .open()
            .unwrap(),
    );
    const WRITERS: usize = 4;
    const WRITES: usize = 100;
    const ROWS: usize = 10;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut scans = 0;
                while !done.load(Ordering::SeqCst) {
                    let rows = sextant_tests::scan_rows(&engine.snapshot(), &ScanRequest::new("m"));
                    // A table appears with its first write; before that the scan fails.
                    if let Ok(rows) = rows {
                        assert_eq!(rows.len() % ROWS, 0, "a write was seen in part");
                        scans += 1;
                    }
                }
                scans
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let points: Vec<Point> = (0..ROWS)
                        .map(|r| {
                            Point::metric("m")
                                .tag("writer", w.to_string())
                                .field("v", r as f64)
                                .time((i * ROWS + r) as i64)
                        })
                        .collect();
                    engine.write_points(&points).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    let rows = sextant_tests::scan_rows(&engine.snapshot(), &ScanRequest::new("m")).unwrap();
    assert_eq!(rows.len(), WRITERS * WRITES * ROWS);
    let stats = engine.snapshot().stats("m").unwrap();
    assert!(
        !stats.segments.is_empty(),
        "64 KiB flushes should have made segments"
    );
}
