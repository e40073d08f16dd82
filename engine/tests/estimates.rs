//! The row and series estimates a query planner reads from a snapshot: by series in
//! range, by source, and the most series of any one source.

use std::time::Duration;

use sextant_engine::{Config, Engine, Point, ScanRequest};

const SECOND: i64 = 1_000_000_000;

/// Hosts h0, h1, h2 with a row a second over 0..100 s in a segment; h0 and h1 again over
/// 100..150 s in memory.
fn setup(dir: &std::path::Path) -> Engine {
    let engine = Config::new(dir)
        .background_flush(false)
        .background_compaction(false)
        .flush_age(Duration::from_secs(3600 * 24 * 365))
        .open()
        .unwrap();
    let rows = |hosts: &[&str], seconds: std::ops::Range<i64>| -> Vec<Point> {
        let mut points = Vec::new();
        for h in hosts {
            for s in seconds.clone() {
                points.push(
                    Point::metric("cpu")
                        .tag("host", *h)
                        .field("usage", s as f64)
                        .time(s * SECOND),
                );
            }
        }
        points
    };
    engine
        .write_points(&rows(&["h0", "h1", "h2"], 0..100))
        .unwrap();
    engine.flush().unwrap();
    engine.write_points(&rows(&["h0", "h1"], 100..150)).unwrap();
    engine
}

#[test]
fn rows_are_estimated_by_series_and_share_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = setup(dir.path());
    let snapshot = engine.snapshot();
    let all = ScanRequest::new("cpu");
    assert_eq!(snapshot.estimate_rows(&all, 1_000_000).unwrap(), Some(400));
    let h0 = ScanRequest::new("cpu").tag_eq("host", "h0");
    assert_eq!(snapshot.estimate_rows(&h0, 1_000_000).unwrap(), Some(150));
    // Half of the segment's time: about half its rows, none of memory's.
    let first_half = ScanRequest::new("cpu").time_between(0, 49 * SECOND);
    let rows = snapshot
        .estimate_rows(&first_half, 1_000_000)
        .unwrap()
        .unwrap();
    assert!((145..=155).contains(&rows), "{rows}");
    // Counting stops at the cap.
    assert_eq!(snapshot.estimate_rows(&all, 100).unwrap(), None);
}

#[test]
fn decoded_rows_count_blocks_from_their_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let engine = setup(dir.path());
    let snapshot = engine.snapshot();
    // Ten seconds of the segment return about 30 rows but decode its one block from its
    // first row: the 100 rows of h0 and of h1, and of h2, which ends the block, the tenth
    // up to the window's end.
    let ten_seconds = ScanRequest::new("cpu").time_between(0, 9 * SECOND);
    let returned = snapshot.estimate_rows(&ten_seconds, 1_000_000).unwrap();
    assert!(
        returned.is_some_and(|r| (25..=35).contains(&r)),
        "{returned:?}"
    );
    assert_eq!(
        snapshot
            .estimate_decoded_rows(&ten_seconds, 1_000_000)
            .unwrap(),
        Some(210)
    );
    let h2 = |from: i64, to: i64| {
        let req = ScanRequest::new("cpu")
            .tag_eq("host", "h2")
            .time_between(from * SECOND, to * SECOND);
        snapshot.estimate_decoded_rows(&req, 1_000_000).unwrap()
    };
    assert_eq!(h2(0, 9), Some(10));
    assert_eq!(h2(90, 99), Some(100));
    let h0 = ScanRequest::new("cpu")
        .tag_eq("host", "h0")
        .time_between(0, 9 * SECOND);
    assert_eq!(
        snapshot.estimate_decoded_rows(&h0, 1_000_000).unwrap(),
        Some(100)
    );
    // Rows in memory are not decoded: counted as returned.
    let memory_only = ScanRequest::new("cpu").time_between(100 * SECOND, 124 * SECOND);
    assert_eq!(
        snapshot
            .estimate_decoded_rows(&memory_only, 1_000_000)
            .unwrap(),
        snapshot.estimate_rows(&memory_only, 1_000_000).unwrap()
    );
    assert_eq!(
        snapshot.estimate_decoded_rows(&ten_seconds, 210).unwrap(),
        None
    );
    assert_eq!(
        snapshot.estimate_decoded_rows(&ten_seconds, 211).unwrap(),
        Some(210)
    );
}

#[test]
fn the_coarse_estimate_counts_whole_sources_whatever_the_tags() {
    let dir = tempfile::tempdir().unwrap();
    let engine = setup(dir.path());
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot
            .estimate_rows_coarse(&ScanRequest::new("cpu"))
            .unwrap(),
        400
    );
    let h2 = ScanRequest::new("cpu").tag_eq("host", "h2");
    assert_eq!(snapshot.estimate_rows_coarse(&h2).unwrap(), 400);
    let memory_only = ScanRequest::new("cpu").time_between(100 * SECOND, i64::MAX);
    assert_eq!(snapshot.estimate_rows_coarse(&memory_only).unwrap(), 100);
}

#[test]
fn series_are_estimated_by_the_source_holding_the_most() {
    let dir = tempfile::tempdir().unwrap();
    let engine = setup(dir.path());
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.estimate_series(&ScanRequest::new("cpu")).unwrap(),
        3
    );
    let h1 = ScanRequest::new("cpu").tag_in("host", ["h1", "h9"]);
    assert_eq!(snapshot.estimate_series(&h1).unwrap(), 1);
    let memory_only = ScanRequest::new("cpu").time_between(100 * SECOND, i64::MAX);
    assert_eq!(snapshot.estimate_series(&memory_only).unwrap(), 2);
    assert!(snapshot.estimate_series(&ScanRequest::new("nope")).is_err());
}
