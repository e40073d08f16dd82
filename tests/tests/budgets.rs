//! Budgets: a table's series limit refuses a write that would add a series past it,
//! whole, and keeps taking writes of existing series, across reopen.

use sextant_engine::{Config, Durability, Engine, Error, Point, ScanRequest};
use sextant_tests::scan_rows;

fn open(dir: &std::path::Path) -> Engine {
    Config::new(dir)
        .durability(Durability::Never)
        .series_limit(3)
        .open()
        .unwrap()
}

fn point(host: &str, t: i64) -> Point {
    Point::metric("cpu")
        .tag("host", host)
        .field("v", 1.0)
        .time(t)
}

fn rows(e: &Engine) -> usize {
    scan_rows(&e.snapshot(), &ScanRequest::new("cpu"))
        .unwrap()
        .len()
}

#[test]
fn series_limit_refuses_new_series_whole_and_keeps_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.write_points(&[point("a", 1), point("b", 1)]).unwrap();
    e.flush().unwrap();
    e.write_points(&[point("c", 1), point("a", 2)]).unwrap();
    // A fourth series: the whole write is refused, naming the table, limit and series.
    let err = e.write_points(&[point("a", 3), point("d", 3)]).unwrap_err();
    match &err {
        Error::SeriesLimit {
            table,
            limit,
            series,
        } => {
            assert_eq!((table.as_str(), *limit), ("cpu", 3));
            assert!(series.contains("host=d"), "{series}");
        }
        other => panic!("expected SeriesLimit, got {other:?}"),
    }
    assert!(err.to_string().contains("refused whole"), "{err}");
    assert_eq!(rows(&e), 4, "nothing of the refused write is there");
    // Existing series are still written, and other tables have their own limit.
    e.write_points(&[point("b", 5), point("c", 5)]).unwrap();
    e.write_points(&[Point::metric("mem")
        .tag("host", "z")
        .field("v", 1.0)
        .time(1)])
        .unwrap();
    assert_eq!(rows(&e), 6);
    e.close().unwrap();
    // After reopen the table still holds its three series (from segments and the WAL).
    let e = open(dir.path());
    assert!(matches!(
        e.write_points(&[point("e", 9)]),
        Err(Error::SeriesLimit { .. })
    ));
    e.write_points(&[point("a", 9)]).unwrap();
    assert_eq!(rows(&e), 7);
}

#[test]
fn memory_budget_holds_back_writers_of_many_tables_and_loses_nothing() {
    use std::sync::Arc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let budget = 2 << 20;
    let engine = Arc::new(
        Config::new(dir.path())
            .durability(Durability::Never)
            .memory_budget(budget)
            .open()
            .unwrap(),
    );
    let threads = 4;
    let mut handles = Vec::new();
    for w in 0..threads {
        let e = Arc::clone(&engine);
        handles.push(std::thread::spawn(move || {
            let (mut written, mut held_back, mut max_used) = (0usize, 0usize, 0usize);
            for round in 0..150i64 {
                let table = format!("t{}", (w * 5 + round as usize) % 20);
                let points: Vec<Point> = (0..200)
                    .map(|i| {
                        Point::metric(table.clone())
                            .tag("w", w.to_string())
                            .field("v", i as f64)
                            .time(round * 1000 + i)
                    })
                    .collect();
                loop {
                    match e.write_points(&points) {
                        Ok(()) => break,
                        Err(Error::Backpressure { retry_after, .. }) => {
                            held_back += 1;
                            assert!(retry_after <= Duration::from_secs(10));
                            std::thread::sleep(retry_after);
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                written += points.len();
                max_used = max_used.max(e.memory_used());
            }
            (written, held_back, max_used)
        }));
    }
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let written: usize = results.iter().map(|r| r.0).sum();
    let held_back: usize = results.iter().map(|r| r.1).sum();
    let max_used = results.iter().map(|r| r.2).max().unwrap();
    // Writes in flight (one per thread, a few KiB each) may pass the budget together.
    assert!(
        max_used <= budget + threads * (64 << 10),
        "{max_used} > {budget}"
    );
    let snap = engine.snapshot();
    // The budget (far below flush_bytes) is what made the tables flush.
    let flushed = snap
        .tables()
        .filter(|t| !snap.stats(t).unwrap().segments.is_empty())
        .count();
    assert!(
        flushed > 0,
        "no table was flushed; held back {held_back} times"
    );
    let total: usize = snap
        .tables()
        .map(|t| scan_rows(&snap, &ScanRequest::new(t)).unwrap().len())
        .sum();
    assert_eq!(total, written);
}

#[test]
fn a_write_larger_than_the_memory_budget_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::new(dir.path()).memory_budget(1000).open().unwrap();
    let points: Vec<Point> = (0..1000).map(|i| point("a", i)).collect();
    let err = e.write_points(&points).unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the whole memory budget"),
        "{err}"
    );
}
