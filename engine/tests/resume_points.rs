//! A scan whose time window starts inside a block answers the same as one over the whole
//! block, and decodes a resumable column from the last resume point before the window
//! instead of from the block's first row.

use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use sextant_engine::{Config, Engine, Point, ScanRequest};

const ROWS: i64 = 10_000;

fn open(dir: &std::path::Path) -> Engine {
    Config::new(dir)
        .block_rows(16_384)
        .background_flush(false)
        .background_compaction(false)
        .flush_age(Duration::from_secs(3600 * 24 * 365))
        .open()
        .unwrap()
}

/// Row `i`, whose walk is at `walk`: a walk of integers (resumable deltas), the walk in
/// eighths with a null every 97 rows, the walk with a null every 89 rows (resumable
/// deltas of the values that are there), and an integer field.
fn row(i: i64, walk: i64) -> Point {
    let mut p = Point::metric("cpu")
        .tag("host", "h0")
        .field("walk", walk as f64)
        .time(i);
    if i % 97 != 0 {
        p = p.field("eighths", walk as f64 / 8.0 + 0.125);
    }
    if i % 89 != 0 {
        p = p.field("gaps", walk as f64);
    }
    p.field("count", i * 3)
}

/// (time, walk, eighths, gaps; NaN for null) of the rows of `[start, end)`.
fn scan(engine: &Engine, start: i64, end: i64) -> Vec<Row> {
    let req = ScanRequest::new("cpu")
        .columns(["time", "walk", "eighths", "gaps"])
        .time_range(start, end);
    let mut scan = engine.snapshot().scan(&req).unwrap();
    let mut out = Vec::new();
    for batch in &mut scan {
        let batch = batch.unwrap();
        let time = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Int64).unwrap();
        let time = time.as_primitive::<Int64Type>();
        let walk = batch.column(1).as_primitive::<Float64Type>();
        let value = |c: usize, i: usize| {
            let a = batch.column(c).as_primitive::<Float64Type>();
            if a.is_null(i) { f64::NAN } else { a.value(i) }
        };
        for i in 0..batch.num_rows() {
            out.push((time.value(i), walk.value(i), value(2, i), value(3, i)));
        }
    }
    out
}

type Row = (i64, f64, f64, f64);

fn expected(start: i64, end: i64) -> Vec<Row> {
    let mut walk = 0i64;
    let mut out = Vec::new();
    for i in 0..ROWS {
        walk += (i * i % 7) - 3;
        let e = if i % 97 == 0 {
            f64::NAN
        } else {
            walk as f64 / 8.0 + 0.125
        };
        let g = if i % 89 == 0 { f64::NAN } else { walk as f64 };
        if (start..end).contains(&i) {
            out.push((i, walk as f64, e, g));
        }
    }
    out
}

fn same(a: &[Row], b: &[Row]) -> bool {
    let eq = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan());
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && eq(x.2, y.2) && eq(x.3, y.3))
}

#[test]
fn windows_starting_inside_a_block_answer_as_the_whole_block_does() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut walk = 0;
    let rows: Vec<Point> = (0..ROWS)
        .map(|i| {
            walk += (i * i % 7) - 3;
            row(i, walk)
        })
        .collect();
    // Flushed blocks have no resume points; compaction writes them, here one block of
    // the 10,000 rows.
    let (first, second) = rows.split_at(6_000);
    for half in [first, second] {
        engine.write_points(half).unwrap();
        engine.flush().unwrap();
    }
    engine.compact("cpu").unwrap();
    assert_eq!(engine.snapshot().stats("cpu").unwrap().segments.len(), 1);
    for (start, end) in [
        (0, ROWS),
        (1, 2),
        (1023, 1026),
        (1024, 1025),
        (1025, 3000),
        (2047, ROWS),
        (5000, 5001),
        (3336, 3337),
        (6673, 9000),
        (ROWS - 1, ROWS),
    ] {
        let got = scan(&engine, start, end);
        assert!(same(&got, &expected(start, end)), "rows {start}..{end}");
    }
    // The last 1,000 rows: time (a constant step) only from the row guessed to hold the
    // window's start less a margin (9,000 - 564: 5 % of the rows and 64), the walk from
    // its last resume point before them, at row 6,672 (its 9,999 deltas are cut into
    // three stretches of 3,336). The gaps' 9,887 values (one row in 89 is null) are cut
    // into stretches of 3,296: rows 9,000 on are values 8,898 on, decoded from value
    // 6,592.
    let req = ScanRequest::new("cpu")
        .columns(["time", "walk", "gaps"])
        .time_range(9_000, ROWS);
    let mut scan = engine.snapshot().scan(&req).unwrap();
    assert_eq!(
        (&mut scan).map(|b| b.unwrap().num_rows()).sum::<usize>(),
        1_000
    );
    assert_eq!(
        scan.metrics().values_decoded,
        (10_000 - 8_436) + (10_000 - 6_672) + (9_887 - 6_592)
    );
    engine.close().unwrap();
}

/// Series sharing blocks, with irregular times (resumable time deltas once compacted):
/// a window inside them is found by decoding each series' time only around it, and
/// answers as the rows say, compacted (time resumable) or only flushed (not).
#[test]
fn windows_inside_series_that_share_a_block_decode_time_around_them() {
    const HOSTS: i64 = 2;
    const EACH: i64 = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    // Times 0, then steps of 1 to 20 ns drawn from a fixed sequence.
    let mut s = 5u64;
    let mut rows: Vec<(String, i64, f64)> = Vec::new();
    for h in 0..HOSTS {
        let mut t = 0i64;
        for i in 0..EACH {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            t += 1 + (s >> 33) as i64 % 20;
            rows.push((format!("h{h}"), t, (h * EACH + i) as f64));
        }
    }
    let points: Vec<Point> = rows
        .iter()
        .map(|(h, t, v)| Point::metric("cpu").tag("host", h).field("v", *v).time(*t))
        .collect();
    // Two flushes (no resume points), which compaction merges into one block with them.
    let (first, second) = points.split_at(points.len() / 2);
    for half in [first, second] {
        engine.write_points(half).unwrap();
        engine.flush().unwrap();
    }
    let scan = |start: i64, end: i64| {
        let req = ScanRequest::new("cpu")
            .columns(["host", "time", "v"])
            .time_range(start, end);
        let mut scan = engine.snapshot().scan(&req).unwrap();
        let mut got = Vec::new();
        for batch in &mut scan {
            let batch = batch.unwrap();
            let host = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Utf8).unwrap();
            let time = arrow_cast::cast(batch.column(1), &arrow_schema::DataType::Int64).unwrap();
            for i in 0..batch.num_rows() {
                got.push((
                    host.as_string::<i32>().value(i).to_string(),
                    time.as_primitive::<Int64Type>().value(i),
                    batch.column(2).as_primitive::<Float64Type>().value(i),
                ));
            }
        }
        (got, scan.metrics().values_decoded)
    };
    let windows = [
        (0, 1),
        (100, 130),
        (5_000, 5_400),
        (20_000, 20_100),
        (31_000, 40_000),
        (0, 40_000),
    ];
    let check = |compacted: bool| {
        for (start, end) in windows {
            let want: Vec<_> = rows
                .iter()
                .filter(|(_, t, _)| (start..end).contains(t))
                .cloned()
                .collect();
            let (got, _) = scan(start, end);
            assert_eq!(got, want, "{start}..{end}, compacted: {compacted}");
        }
    };
    check(false);
    engine.compact("cpu").unwrap();
    check(true);
    // One block of 12,000 rows; a window of about 0.5 % of each series decodes each
    // series' time from the resume point before it (stretches of 4,000 values), and
    // `v` whole once: less than time whole (12,000) and `v` whole.
    let (got, decoded) = scan(20_000, 20_300);
    assert!(!got.is_empty());
    assert!(decoded < 12_000 + 8_000, "{decoded} values decoded");
    engine.close().unwrap();
}
