//! Compaction: merged segments answer exactly as their inputs did (the last write of a
//! metric table's (series, time) wins, an event table keeps every row), across reopens;
//! snapshots taken before a merge keep reading, and the inputs' files go once nothing
//! reads them.

use std::path::Path;
use std::time::Duration;

use sextant_engine::{Config, Durability, Engine, Level, LogRecord, Point, ScanRequest, Snapshot};
use sextant_tests::{Cell, files_ending, scan_all, scan_rows};

const MINUTE: i64 = 60_000_000_000;

fn open(dir: &Path) -> Engine {
    Config::new(dir)
        .durability(Durability::Never)
        .background_flush(false)
        .background_compaction(false)
        .block_rows(64)
        .compaction_window(Duration::from_secs(3600))
        .open()
        .unwrap()
}

/// Ten flushes of 20 hosts over two hours, each rewriting some of the earlier rows with
/// new values, and log events with repeated times.
fn write_flushes(e: &Engine) {
    for f in 0..10i64 {
        let mut points = Vec::new();
        for host in 0..20 {
            for m in 0..12 {
                let t = (f * 12 + m) * MINUTE;
                points.push(
                    Point::metric("cpu")
                        .tag("host", format!("h{host}"))
                        .field("usage", (f * 1000 + host * 10 + m) as f64)
                        .time(t),
                );
                // A rewrite of a row of the previous flush.
                if f > 0 && m % 3 == 0 {
                    points.push(
                        Point::metric("cpu")
                            .tag("host", format!("h{host}"))
                            .field("usage", -1.0 - f as f64)
                            .time(t - 12 * MINUTE),
                    );
                }
            }
            points.push(
                LogRecord::new("logs", Level::Warn, format!("flush {f}"))
                    .tag("service", format!("s{}", host % 3))
                    .time(f * MINUTE)
                    .into(),
            );
        }
        e.write_points(&points).unwrap();
        e.flush().unwrap();
    }
}

fn rows(snapshot: &Snapshot) -> Vec<Vec<Cell>> {
    scan_rows(snapshot, &ScanRequest::new("cpu")).unwrap()
}

fn segment_files(dir: &Path, table: &str) -> usize {
    files_ending(&dir.join("tables").join(table), ".seg").len()
}

#[test]
fn compaction_answers_as_the_inputs_did_and_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_flushes(&e);
    let before = scan_all(&e).unwrap();
    assert_eq!(e.snapshot().stats("cpu").unwrap().segments.len(), 10);
    e.compact("cpu").unwrap();
    e.compact("logs").unwrap();
    // Two hours in one-hour windows: one segment per window.
    let stats = e.snapshot().stats("cpu").unwrap();
    assert_eq!(stats.segments.len(), 2, "{:?}", stats.segments);
    assert_eq!(scan_all(&e).unwrap(), before);
    // cpu: each flush's earliest row is a rewrite of the flush before, so flushes 0-5
    // start in hour 0 and 6-9 in hour 1; logs: all ten in hour 0.
    let levels: Vec<u8> = e.segments("cpu").unwrap().iter().map(|s| s.level).collect();
    assert_eq!(levels, [1, 1]);
    assert!(matches!(
        e.segments("nope"),
        Err(sextant_engine::Error::NoSuchTable(_))
    ));
    let c = e.compaction_stats();
    assert_eq!(c.compactions, 3, "{c:?}");
    assert_eq!(c.segments_merged, 20);
    assert!(c.write_amplification() > 1.0);
    e.close().unwrap();
    assert_eq!(segment_files(dir.path(), "cpu"), 2);
    let e = open(dir.path());
    assert_eq!(scan_all(&e).unwrap(), before);
    assert_eq!(e.recovery_report().leftover_segments_removed, 0);
}

#[test]
fn snapshots_keep_reading_compacted_segments_whose_files_go_after() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_flushes(&e);
    let old = e.snapshot();
    let before = rows(&old);
    e.compact("cpu").unwrap();
    // The old snapshot still reads its segments, whose files are still there.
    assert_eq!(segment_files(dir.path(), "cpu"), 12);
    assert_eq!(rows(&old), before);
    drop(old);
    assert_eq!(segment_files(dir.path(), "cpu"), 2);
    assert_eq!(rows(&e.snapshot()), before);
}

#[test]
fn background_compaction_merges_by_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::new(dir.path())
        .durability(Durability::Never)
        .background_flush(false)
        .compaction_window(Duration::from_secs(24 * 3600))
        .compaction_fanout(4)
        .open()
        .unwrap();
    write_flushes(&e);
    let before = scan_all(&e).unwrap();
    // Ten flushes in one (newest) window with fanout 4: two merges of four, then two
    // flushes left; the merges run in the background, so wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while e.compaction_stats().compactions < 2 * 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            e.compaction_stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scan_all(&e).unwrap(), before);
    let levels: Vec<u8> = e.segments("cpu").unwrap().iter().map(|s| s.level).collect();
    assert_eq!(levels, [1, 1, 0, 0], "two level-1 segments and two flushes");
    // Caught up: nothing is due, so compaction is not behind.
    while !e.compaction_stats().behind.is_zero() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn compacted_blocks_hold_one_series_and_span_so_a_short_query_decodes_little() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_flushes(&e);
    e.compact("cpu").unwrap();
    // One-hour windows: blocks end where time enters another half hour (30 rows of a
    // host), once they hold 64 / 16 = 4 rows. Ten minutes of one host decode one block of
    // time (30 rows) and one of usage, through the window's 10 rows only.
    let req = ScanRequest::new("cpu")
        .columns(["time", "usage"])
        .tag_in("host", ["h3"])
        .time_range(0, 10 * MINUTE);
    let mut scan = e.snapshot().scan(&req).unwrap();
    let rows: usize = scan.by_ref().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 10);
    let m = scan.metrics();
    assert_eq!((m.blocks_read, m.values_decoded), (2, 40), "{m:?}");
}

#[test]
fn compacted_event_blocks_cover_a_quarter_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    // One event a minute of one service for two hours, in four flushes.
    for f in 0..4i64 {
        let records: Vec<Point> = (0..30)
            .map(|m| {
                LogRecord::new("logs", Level::Info, format!("event {f} {m}"))
                    .tag("service", "api")
                    .time((f * 30 + m) * MINUTE)
                    .into()
            })
            .collect();
        e.write_points(&records).unwrap();
        e.flush().unwrap();
    }
    e.compact("logs").unwrap();
    // One-hour windows: an event table's blocks end where time enters another quarter
    // hour, once they hold 64 / 64 = 1 row (a metric table's: another half hour, once
    // they hold 4). Ten minutes decode one block of time (15 rows; a metric table's would
    // be 30) and one of levels, through the window's 10 rows.
    let req = ScanRequest::new("logs")
        .columns(["time", "level"])
        .time_range(60 * MINUTE, 70 * MINUTE);
    let mut scan = e.snapshot().scan(&req).unwrap();
    let rows: usize = scan.by_ref().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 10);
    let m = scan.metrics();
    assert_eq!((m.blocks_read, m.values_decoded), (2, 25), "{m:?}");
}
