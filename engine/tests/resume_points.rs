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

/// Series sharing blocks and spread over two, with irregular times, repeated times and
/// a series whose rows come in a burst (where a guess from its time range misses):
/// windows inside them answer as the rows say, flushed (time without resume points)
/// and compacted (time resumable, decoded around the windows).
#[test]
fn windows_inside_series_that_share_a_block_decode_time_around_them() {
    const EACH: i64 = 6_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut s = 5u64;
    let mut draw = |span: u64| {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (s >> 33) as i64 % span as i64
    };
    // h0: steps 0 to 19 ns (repeated times); h1: 3,000 rows 0 to 2 ns apart, then 3,000
    // rows 20 to 59 ns apart; h2: steps 1 to 20 ns.
    let mut rows: Vec<(String, i64, f64)> = Vec::new();
    for h in 0..3 {
        let mut t = 0i64;
        for i in 0..EACH {
            t += match h {
                0 => draw(20),
                1 if i < EACH / 2 => draw(3),
                1 => 20 + draw(40),
                _ => 1 + draw(20),
            };
            rows.push((format!("h{h}"), t, (h * EACH + i) as f64));
        }
    }
    // Two flushes of every series (no resume points), which compaction merges into a
    // block of 16,384 rows (with them) and one of 1,616.
    let mut points: Vec<(i64, Point)> = rows
        .iter()
        .map(|(h, t, v)| {
            (
                *t,
                Point::event("ev").tag("host", h).field("v", *v).time(*t),
            )
        })
        .collect();
    points.sort_by_key(|(t, _)| *t);
    let points: Vec<Point> = points.into_iter().map(|(_, p)| p).collect();
    let (first, second) = points.split_at(points.len() / 2);
    for half in [first, second] {
        engine.write_points(half).unwrap();
        engine.flush().unwrap();
    }
    let scan = |start: i64, end: i64| {
        let req = ScanRequest::new("ev")
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
        got.sort_by(|x, y| x.partial_cmp(y).unwrap());
        got
    };
    // A time h0 holds twice, for windows that start and end at it.
    let twice = rows[..EACH as usize]
        .windows(2)
        .find(|w| w[0].1 == w[1].1 && w[0].1 > 30_000)
        .map(|w| w[0].1)
        .unwrap();
    let windows = [
        (0, 1),
        (100, 130),
        (5_000, 5_400),
        (20_000, 20_100),
        (twice, twice + 50),
        (twice - 50, twice),
        (twice, twice + 1),
        (41_000, 45_000),
        (61_000, 80_000),
        (150_000, 170_000),
        (0, 400_000),
    ];
    let check = |compacted: bool| {
        for (start, end) in windows {
            let mut want: Vec<_> = rows
                .iter()
                .filter(|(_, t, _)| (start..end).contains(t))
                .cloned()
                .collect();
            want.sort_by(|x, y| x.partial_cmp(y).unwrap());
            assert_eq!(
                scan(start, end),
                want,
                "{start}..{end}, compacted: {compacted}"
            );
        }
    };
    check(false);
    engine.compact("ev").unwrap();
    check(true);
    // A narrow window of h0 (6,000 rows from the first block's first, whose time is cut
    // into stretches of 5,464) decodes h0's time only through the guess, about 2,500
    // rows, and `v` whole (16,384 rows: h1 and h2 follow in the block), where time was
    // decoded whole too.
    let req = ScanRequest::new("ev")
        .columns(["time", "v"])
        .tag_eq("host", "h0")
        .time_range(20_000, 20_300);
    let mut scan = engine.snapshot().scan(&req).unwrap();
    assert!((&mut scan).map(|b| b.unwrap().num_rows()).sum::<usize>() > 0);
    let decoded = scan.metrics().values_decoded;
    assert!(decoded < 16_384 + 8_000, "{decoded} values decoded");
    engine.close().unwrap();
}
