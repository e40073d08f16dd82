//! Field filters on a scan: rows that cannot meet them are left out, in segments and in
//! memory, except where sources overlap in time (the caller filters those), and a filter
//! that compares a column with a value of another kind is an error that says so.

use std::time::Duration;

use sextant_engine::{CmpOp, Config, Engine, FieldValue, Level, LogRecord, Point, ScanRequest};

fn open(dir: &std::path::Path) -> Engine {
    Config::new(dir)
        .block_rows(16)
        .background_flush(false)
        .background_compaction(false)
        .flush_age(Duration::from_secs(3600 * 24 * 365))
        .open()
        .unwrap()
}

fn rows(engine: &Engine, req: &ScanRequest) -> usize {
    engine
        .snapshot()
        .scan(req)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

fn events(times: std::ops::Range<i64>) -> Vec<Point> {
    times
        .map(|t| {
            LogRecord::new("logs", Level::ALL[(t % 6) as usize], format!("m{t}"))
                .tag("service", "api")
                .field("ms", t as f64)
                .time(t)
                .into()
        })
        .collect()
}

#[test]
fn segment_rows_that_cannot_meet_the_filters_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.write_points(&events(0..600)).unwrap();
    engine.flush().unwrap();
    let req = ScanRequest::new("logs")
        .columns(["time", "level", "ms"])
        .field_filter("level", CmpOp::GtEq, FieldValue::Str("Warn".into()));
    // warn, error and fatal: half the rows.
    assert_eq!(rows(&engine, &req), 300);
    let req = req.field_filter("ms", CmpOp::Lt, FieldValue::F64(60.0));
    assert_eq!(rows(&engine, &req), 30);
    // Rows in memory are left out as well: none of these has `ms < 60`, half are at
    // least warn.
    engine.write_points(&events(600..660)).unwrap();
    assert_eq!(rows(&engine, &req), 30);
    let warn = ScanRequest::new("logs")
        .columns(["time", "level"])
        .field_filter("level", CmpOp::GtEq, FieldValue::Str("warn".into()));
    assert_eq!(rows(&engine, &warn), 330);
    // New rows overlap the segment in time: the merged stretch (the segment's 600 rows
    // and these 6) is the caller's to filter; the rows 600..660 are still left out.
    engine.write_points(&events(0..6)).unwrap();
    assert_eq!(rows(&engine, &req), 606);
}

#[test]
fn a_filter_comparing_a_column_with_a_value_of_another_kind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.write_points(&events(0..10)).unwrap();
    for (column, value, says) in [
        (
            "level",
            FieldValue::Str("loud".into()),
            "compares it with a level name",
        ),
        ("level", FieldValue::I64(3), "compares it with a level name"),
        (
            "ms",
            FieldValue::Str("3".into()),
            "takes a field and a value of the field's type",
        ),
    ] {
        let req = ScanRequest::new("logs").field_filter(column, CmpOp::Eq, value);
        let err = engine.snapshot().scan(&req).unwrap_err().to_string();
        assert!(err.contains(says), "{column}: {err}");
    }
}
