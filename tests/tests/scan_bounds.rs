//! Scans stay bounded: late rows do not make a scan read a series' whole history, and
//! request edges (empty ranges, partitions) behave.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sextant_engine::{Config, Durability, Engine, Error, Point, ScanMetrics, ScanRequest};
use sextant_tests::Cell;

#[test]
fn a_late_row_does_not_make_the_first_batch_read_the_whole_series() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path())
        .block_rows(1000)
        .durability(Durability::Never)
        .open()
        .unwrap();
    let points: Vec<Point> = (0..200_000i64)
        .map(|t| {
            Point::metric("m")
                .tag("k", "a")
                .field("v", t as f64)
                .time(t)
        })
        .collect();
    engine.write_points(&points).unwrap();
    engine.flush().unwrap();
    // One late row in the middle of the series' history, in memory.
    engine
        .write_points(&[Point::metric("m")
            .tag("k", "a")
            .field("v", -1.0)
            .time(100_000)])
        .unwrap();
    let snap = engine.snapshot();
    let mut scan = snap
        .scan(&ScanRequest::new("m").columns(["time", "v"]).batch_rows(10))
        .unwrap();
    let first = scan.next().unwrap().unwrap();
    assert_eq!(first.num_rows(), 10);
    let m = scan.metrics();
    // 200 blocks per column hold the series; the first window needs about 8192 rows.
    assert!(
        m.blocks_read <= 40,
        "first batch read {} blocks: {m:?}",
        m.blocks_read
    );
    // And the whole answer is still right, across the merge windows: every time once,
    // in order, with its value, and the late row replacing t = 100,000.
    let mut expect_t = 10i64;
    for batch in scan {
        let batch = batch.unwrap();
        for row in sextant_tests::batch_rows(&[batch]) {
            let v = if expect_t == 100_000 {
                -1.0
            } else {
                expect_t as f64
            };
            assert_eq!(
                row,
                vec![
                    sextant_tests::Cell::Int(expect_t),
                    sextant_tests::Cell::Float(v)
                ]
            );
            expect_t += 1;
        }
    }
    assert_eq!(expect_t, 200_000);
    let replaced = sextant_tests::scan_rows(
        &snap,
        &ScanRequest::new("m")
            .columns(["v"])
            .time_between(100_000, 100_000),
    )
    .unwrap();
    assert_eq!(replaced, vec![vec![sextant_tests::Cell::Float(-1.0)]]);
}

/// An engine whose flushes write blocks of up to 20,000 rows, flushed and compacted only
/// when asked.
fn large_blocks(dir: &std::path::Path) -> Engine {
    Config::new(dir)
        .block_rows(20_000)
        .durability(Durability::Never)
        .background_flush(false)
        .background_compaction(false)
        .open()
        .unwrap()
}

/// The rows of a scan of the engine's current snapshot, and what the scan did.
fn rows_and_metrics(engine: &Engine, req: &ScanRequest) -> (Vec<Vec<Cell>>, ScanMetrics) {
    let mut scan = engine.snapshot().scan(req).unwrap();
    let batches = scan.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
    (sextant_tests::batch_rows(&batches), scan.metrics())
}

/// Rows `0..n` of series `k`: `v = t`, and `w = t` on even times only (null otherwise).
fn numbered(k: &str, n: i64) -> Vec<Point> {
    (0..n)
        .map(|t| {
            let p = Point::metric("m").tag("k", k).field("v", t as f64);
            let p = if t % 2 == 0 { p.field("w", t) } else { p };
            p.time(t)
        })
        .collect()
}

/// What a scan of `numbered` rows `from..=to` returns: time, v, w.
fn numbered_rows(from: i64, to: i64) -> Vec<Vec<Cell>> {
    (from..=to)
        .map(|t| {
            let w = if t % 2 == 0 { Cell::Int(t) } else { Cell::Null };
            vec![Cell::Int(t), Cell::Float(t as f64), w]
        })
        .collect()
}

#[test]
fn a_window_that_ends_inside_a_block_decodes_the_block_only_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = large_blocks(dir.path());
    // One block per column holds all of series "a"; the next segment's block holds "b"
    // then "c".
    engine.write_points(&numbered("a", 10_000)).unwrap();
    engine.flush().unwrap();
    engine.write_points(&numbered("b", 10_000)).unwrap();
    engine.write_points(&numbered("c", 10_000)).unwrap();
    engine.flush().unwrap();
    let scan = |k: &str, from: i64, to: i64| {
        let req = ScanRequest::new("m")
            .columns(["time", "v", "w"])
            .tag_eq("k", k)
            .time_between(from, to);
        rows_and_metrics(&engine, &req)
    };
    // Alone in its block, "a" decodes its 10,000 rows of `v` and `w` only through the
    // window (constant steps: from its first row), and time (a constant step) only
    // around a guess at where the window falls, with a margin of 5 % of the rows and 64:
    // rows 436 to 2,563.
    let (rows, m) = scan("a", 1000, 1999);
    assert_eq!(rows, numbered_rows(1000, 1999));
    assert_eq!(m.values_decoded, 2_127 + 1_000 + 500, "{m:?}");
    // A window that ends at the block's last row decodes its time (a constant step) from
    // a guess at where the window starts, less a margin of 5 % of the rows and 64: from
    // row 8,436. `v` and `w` (the even rows) are constant steps, decoded from the
    // window's first row.
    let (rows, m) = scan("a", 9000, 9999);
    assert_eq!(rows, numbered_rows(9000, 9999));
    assert_eq!(m.values_decoded, 1_564 + 1_000 + 500, "{m:?}");
    // "b" is followed by "c" in its block: decoded whole once, for both.
    let (rows, _) = scan("b", 1000, 1999);
    assert_eq!(rows, numbered_rows(1000, 1999));
    // "c" ends its block but does not start it: its time is decoded whole, the other
    // columns through the window's end, from the block's first row (flushed blocks have
    // no resume points).
    let (rows, m) = scan("c", 1000, 1999);
    assert_eq!(rows, numbered_rows(1000, 1999));
    assert_eq!(m.values_decoded, 20_000 + 12_000 + 6_000, "{m:?}");
    // Every window over every series returns its rows, whatever the prefix decoded.
    for k in ["a", "b", "c"] {
        for (from, to) in [
            (0, 0),
            (0, 9),
            (4_321, 4_322),
            (5_000, 9_998),
            (9_999, 20_000),
        ] {
            let (rows, _) = scan(k, from, to);
            assert_eq!(
                rows,
                numbered_rows(from, to.min(9_999)),
                "{k} {from}..={to}"
            );
        }
    }
}

#[test]
fn a_time_guess_that_falls_short_and_merges_decode_blocks_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = large_blocks(dir.path());
    // Series "s": 9,000 rows at 0..9,000, then 1,000 spread to 2,000,000, so that rows
    // are not spread evenly over the block's time range.
    let times: Vec<i64> = (0..9_000)
        .chain((0..1_000).map(|i| 1_000_000 + i * 1_000))
        .collect();
    let points: Vec<Point> = times
        .iter()
        .map(|&t| {
            Point::metric("m")
                .tag("k", "s")
                .field("v", t as f64)
                .time(t)
        })
        .collect();
    engine.write_points(&points).unwrap();
    engine.flush().unwrap();
    let scan = |from: i64, to: i64| {
        let req = ScanRequest::new("m")
            .columns(["time", "v"])
            .time_between(from, to);
        rows_and_metrics(&engine, &req)
    };
    let expect = |from: i64, to: i64| -> Vec<Vec<Cell>> {
        times
            .iter()
            .filter(|&&t| t >= from && t <= to)
            .map(|&t| vec![Cell::Int(t), Cell::Float(t as f64)])
            .collect()
    };
    // Even spreading puts 500,000 about a quarter into the block; it is at row 9,000. The
    // guessed prefix of time ends before the window does, so time is decoded again whole.
    let (rows, m) = scan(0, 500_000);
    assert_eq!(rows, expect(0, 500_000));
    assert_eq!(m.blocks_read, 3, "time twice, v once: {m:?}");
    // A late row in memory makes the scan merge the series in windows of about 8,192
    // rows; the block is decoded whole once, not again for each window's longer prefix.
    engine
        .write_points(&[Point::metric("m")
            .tag("k", "s")
            .field("v", -1.0)
            .time(5_000)])
        .unwrap();
    let (rows, m) = scan(1_000, 1_400_000);
    let mut want = expect(1_000, 1_400_000);
    want[4_000][1] = Cell::Float(-1.0);
    assert_eq!(rows, want);
    assert_eq!((m.blocks_read, m.values_decoded), (2, 20_000), "{m:?}");
}

#[test]
fn empty_time_ranges_and_bad_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    engine
        .write_points(&[
            Point::metric("m").field("v", 1.0).time(i64::MIN),
            Point::metric("m").field("v", 2.0).time(i64::MAX),
        ])
        .unwrap();
    let snap = engine.snapshot();
    let count = |req: ScanRequest| sextant_tests::scan_rows(&snap, &req).unwrap().len();
    assert_eq!(
        count(ScanRequest::new("m").time_range(i64::MIN, i64::MIN)),
        0
    );
    assert_eq!(
        count(ScanRequest::new("m").time_range(i64::MIN, i64::MIN + 1)),
        1
    );
    assert_eq!(
        count(ScanRequest::new("m").time_between(i64::MAX, i64::MAX)),
        1
    );
    assert_eq!(count(ScanRequest::new("m")), 2);
    let err = snap
        .scan(&ScanRequest::new("m").partition(2, 2))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(
        err.to_string().contains("partition 2 of 2 does not exist"),
        "{err}"
    );
}

#[test]
fn snapshots_never_see_part_of_a_write_that_spans_tables() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Config::new(dir.path())
            .durability(Durability::Never)
            .flush_bytes(20_000)
            .open()
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let engine = Arc::clone(&engine);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut w = 0i64;
            while !done.load(Ordering::SeqCst) {
                let mut points: Vec<Point> = (0..20)
                    .map(|i| {
                        Point::metric("m")
                            .tag("i", i.to_string())
                            .field("w", w)
                            .time(w)
                    })
                    .collect();
                points.push(Point::metric("z").field("w", w).time(w));
                engine.write_points(&points).unwrap();
                w += 1;
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut checked = 0;
    while std::time::Instant::now() < deadline {
        let snap = engine.snapshot();
        let (Ok(m), Ok(z)) = (
            sextant_tests::scan_rows(&snap, &ScanRequest::new("m").columns(["w"])),
            sextant_tests::scan_rows(&snap, &ScanRequest::new("z").columns(["w"])),
        ) else {
            continue;
        };
        assert_eq!(m.len(), 20 * z.len(), "a snapshot saw part of a write");
        checked += 1;
    }
    done.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(checked > 0);
}
