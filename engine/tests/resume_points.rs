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
/// eighths with a null every 97 rows, and an integer field.
fn row(i: i64, walk: i64) -> Point {
    let mut p = Point::metric("cpu")
        .tag("host", "h0")
        .field("walk", walk as f64)
        .time(i);
    if i % 97 != 0 {
        p = p.field("eighths", walk as f64 / 8.0 + 0.125);
    }
    p.field("count", i * 3)
}

/// (time, walk, eighths or NaN) of the rows of `[start, end)`.
fn scan(engine: &Engine, start: i64, end: i64) -> Vec<(i64, f64, f64)> {
    let req = ScanRequest::new("cpu")
        .columns(["time", "walk", "eighths"])
        .time_range(start, end);
    let mut scan = engine.snapshot().scan(&req).unwrap();
    let mut out = Vec::new();
    for batch in &mut scan {
        let batch = batch.unwrap();
        let time = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Int64).unwrap();
        let time = time.as_primitive::<Int64Type>();
        let walk = batch.column(1).as_primitive::<Float64Type>();
        let eighths = batch.column(2).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let e = if eighths.is_null(i) {
                f64::NAN
            } else {
                eighths.value(i)
            };
            out.push((time.value(i), walk.value(i), e));
        }
    }
    out
}

fn expected(start: i64, end: i64) -> Vec<(i64, f64, f64)> {
    let mut walk = 0i64;
    let mut out = Vec::new();
    for i in 0..ROWS {
        walk += (i * i % 7) - 3;
        let e = if i % 97 == 0 {
            f64::NAN
        } else {
            walk as f64 / 8.0 + 0.125
        };
        if (start..end).contains(&i) {
            out.push((i, walk as f64, e));
        }
    }
    out
}

fn same(a: &[(i64, f64, f64)], b: &[(i64, f64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0 && x.1 == y.1 && (x.2 == y.2 || (x.2.is_nan() && y.2.is_nan()))
        })
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
    engine.write_points(&rows).unwrap();
    engine.flush().unwrap();
    for (start, end) in [
        (0, ROWS),
        (1, 2),
        (1023, 1026),
        (1024, 1025),
        (1025, 3000),
        (2047, ROWS),
        (5000, 5001),
        (8193, 9000),
        (ROWS - 1, ROWS),
    ] {
        let got = scan(&engine, start, end);
        assert!(same(&got, &expected(start, end)), "rows {start}..{end}");
    }
    // The last 1,000 rows: time is decoded whole (to find them), the walk from its resume
    // point at row 8,192.
    let req = ScanRequest::new("cpu")
        .columns(["time", "walk"])
        .time_range(9_000, ROWS);
    let mut scan = engine.snapshot().scan(&req).unwrap();
    assert_eq!(
        (&mut scan).map(|b| b.unwrap().num_rows()).sum::<usize>(),
        1_000
    );
    assert_eq!(scan.metrics().values_decoded, 10_000 + (10_000 - 8_192));
    engine.close().unwrap();
}
