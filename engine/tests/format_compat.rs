//! Databases written by earlier format versions still open and answer the same.
//!
//! `tests/data/db-v1/` was written by segment format 1 (fixed-size blocks) with
//! [`write_fixture`]; it holds a metric table of two hosts, two segments and blocks of 4
//! rows, so that series cross block boundaries. `tests/data/db-v2/` was written by format
//! 2 (no block filters) the same way, with a string field `note` besides, and
//! `tests/data/db-v3/` by format 3 (no resumable codecs) at 4596e89. Regenerate a fixture only for a new
//! format version, into a new folder: `SEXTANT_WRITE_FIXTURE=tests/data/db-vN cargo test
//! -p sextant-engine --test format_compat -- --ignored`.
//!
//! `tests/data/wal-payload-v1/` is a database whose rows are only in its WAL, in records
//! of WAL payload version 1 (tags per row): `sextant serve` at e02a5b2 was sent two
//! requests of line protocol (24 rows of `cpu`, one without `host`, one with a `dc` too)
//! and killed with SIGKILL.

use std::path::{Path, PathBuf};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use sextant_engine::{CmpOp, Config, Engine, FieldValue, Point, ScanRequest};

const SECOND: i64 = 1_000_000_000;

/// The rows of the fixture: host h0 and h1, 10 rows each per segment, two segments.
fn rows(segment: i64) -> Vec<Point> {
    let mut points = Vec::new();
    for host in 0..2 {
        for i in 0..10 {
            let t = (segment * 10 + i) * SECOND;
            points.push(
                Point::metric("cpu")
                    .tag("host", format!("h{host}"))
                    .field("usage", (host * 1000 + segment * 10 + i) as f64)
                    .field("note", note(host * 1000 + segment * 10 + i))
                    .time(t),
            );
        }
    }
    points
}

/// The string field of the row whose usage is `usage` (from `tests/data/db-v2` on; the
/// version-1 fixture has no string field).
fn note(usage: i64) -> String {
    format!("note-{}", usage % 7)
}

fn open(dir: &Path) -> Engine {
    Config::new(dir)
        .block_rows(4)
        .background_flush(false)
        .background_compaction(false)
        .open()
        .unwrap()
}

#[test]
#[ignore = "writes a fixture; run by hand for a new format version"]
fn write_fixture() {
    let dir = PathBuf::from(std::env::var("SEXTANT_WRITE_FIXTURE").expect("a target folder"));
    let engine = open(&dir);
    for segment in 0..2 {
        engine.write_points(&rows(segment)).unwrap();
        engine.flush().unwrap();
    }
    engine.close().unwrap();
    std::fs::remove_file(dir.join("LOCK")).ok();
}

/// A copy of the fixture `tests/data/{name}` in a new folder, opened.
fn open_fixture(name: &str) -> (tempfile::TempDir, Engine) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture, tmp.path());
    let engine = open(tmp.path());
    (tmp, engine)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// (host, time in seconds, usage) of every row a scan returns, in its order.
fn scan(engine: &Engine, start: i64, end: i64) -> Vec<(String, i64, f64)> {
    let mut out = Vec::new();
    let req = ScanRequest::new("cpu")
        .columns(["time", "host", "usage"])
        .time_range(start * SECOND, end * SECOND);
    for batch in engine.snapshot().scan(&req).unwrap() {
        let batch = batch.unwrap();
        let time = arrow_cast::cast(
            batch.column_by_name("time").unwrap(),
            &arrow_schema::DataType::Int64,
        )
        .unwrap();
        let time = time.as_primitive::<Int64Type>();
        let host = arrow_cast::display::ArrayFormatter::try_new(
            batch.column_by_name("host").unwrap().as_ref(),
            &Default::default(),
        )
        .unwrap();
        let usage = batch
            .column_by_name("usage")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            out.push((
                host.value(i).to_string(),
                time.value(i) / SECOND,
                usage.value(i),
            ));
        }
    }
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

fn expected(start: i64, end: i64) -> Vec<(String, i64, f64)> {
    let mut out: Vec<_> = (0..2)
        .flat_map(|host| (0..20).map(move |i| (format!("h{host}"), i, (host * 1000 + i) as f64)))
        .filter(|r| r.1 >= start && r.1 < end)
        .collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

#[test]
fn a_version_1_database_opens_and_answers() {
    let (tmp, engine) = open_fixture("db-v1");
    assert_eq!(engine.snapshot().stats("cpu").unwrap().segments.len(), 2);
    assert_eq!(scan(&engine, 0, 20), expected(0, 20));
    // A range inside blocks: rows cut out of the middle of a block.
    assert_eq!(scan(&engine, 3, 15), expected(3, 15));
    // Compaction rewrites the version-1 segments in the current version.
    engine.compact("cpu").unwrap();
    assert_eq!(engine.snapshot().stats("cpu").unwrap().segments.len(), 1);
    assert_eq!(scan(&engine, 0, 20), expected(0, 20));
    engine.close().unwrap();
    let engine = open(tmp.path());
    assert_eq!(scan(&engine, 3, 15), expected(3, 15));
}

/// (host, time in seconds) of the rows whose note is `want`, and how many block stretches
/// the string block filters excluded.
fn rows_with_note(engine: &Engine, want: &str) -> (Vec<(String, i64)>, usize) {
    let req = ScanRequest::new("cpu")
        .columns(["time", "host", "note"])
        .field_filter("note", CmpOp::Eq, FieldValue::Str(want.into()));
    let mut scan = engine.snapshot().scan(&req).unwrap();
    let mut out = Vec::new();
    for batch in scan.by_ref() {
        let batch = batch.unwrap();
        let time = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Int64).unwrap();
        let host = arrow_cast::cast(batch.column(1), &arrow_schema::DataType::Utf8).unwrap();
        let note = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            if note.value(i) == want {
                out.push((
                    host.as_string::<i32>().value(i).to_string(),
                    time.as_primitive::<Int64Type>().value(i) / SECOND,
                ));
            }
        }
    }
    out.sort();
    (out, scan.metrics().blocks_excluded)
}

#[test]
fn a_version_2_database_opens_and_answers_string_filters_without_block_filters() {
    let (_dir, engine) = open_fixture("db-v2");
    assert_eq!(scan(&engine, 0, 20), expected(0, 20));
    let want: Vec<(String, i64)> = expected(0, 20)
        .into_iter()
        .filter(|(_, _, usage)| note(*usage as i64) == "note-3")
        .map(|(host, t, _)| (host, t))
        .collect();
    assert_eq!(want.len(), 6);
    // Format 2 has no block filters: every block is read.
    assert_eq!(rows_with_note(&engine, "note-3"), (want.clone(), 0));
    // Compaction writes the current format, whose string blocks have filters: blocks of
    // 4 rows hold 4 of the 7 notes, and most blocks without note-3 are passed over.
    engine.compact("cpu").unwrap();
    let (rows, excluded) = rows_with_note(&engine, "note-3");
    assert_eq!(rows, want);
    assert!(excluded >= 3, "{excluded} blocks excluded");
    engine.close().unwrap();
}

#[test]
fn a_wal_of_payload_version_1_replays() {
    let (_dir, engine) = open_fixture("wal-payload-v1");
    let req = ScanRequest::new("cpu").columns(["time", "host", "dc", "usage"]);
    let mut rows = Vec::new();
    for batch in engine.snapshot().scan(&req).unwrap() {
        let batch = batch.unwrap();
        let time = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Int64).unwrap();
        let tag = |i: usize| arrow_cast::cast(batch.column(i), &arrow_schema::DataType::Utf8);
        let (host, dc) = (tag(1).unwrap(), tag(2).unwrap());
        let (host, dc) = (host.as_string::<i32>(), dc.as_string::<i32>());
        let text = |a: &arrow_array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        let usage = batch.column(3).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            rows.push((
                text(host, i),
                text(dc, i),
                time.as_primitive::<Int64Type>().value(i) / SECOND,
                usage.value(i),
            ));
        }
    }
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut want: Vec<(Option<String>, Option<String>, i64, f64)> = (0..2)
        .flat_map(|host| (0..10).map(move |i| (host, i)))
        .chain([(1, 10), (1, 11)])
        .map(|(host, i)| (Some(format!("h{host}")), None, i, (host * 1000 + i) as f64))
        .collect();
    want.push((None, Some("x".into()), 3, 5000.0));
    want.push((Some("h0".into()), Some("y".into()), 11, 6000.0));
    want.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(rows, want);
}

#[test]
fn a_version_3_database_opens_and_answers_with_its_block_filters() {
    let (_dir, engine) = open_fixture("db-v3");
    assert_eq!(scan(&engine, 0, 20), expected(0, 20));
    assert_eq!(scan(&engine, 3, 15), expected(3, 15));
    let (rows, excluded) = rows_with_note(&engine, "note-3");
    assert_eq!(rows.len(), 6);
    assert!(excluded >= 3, "{excluded} blocks excluded");
    engine.compact("cpu").unwrap();
    assert_eq!(scan(&engine, 3, 15), expected(3, 15));
    engine.close().unwrap();
}
