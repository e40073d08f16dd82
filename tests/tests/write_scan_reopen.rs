//! Rows written are read back: from memory, from segments after a flush, and after a reopen.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use sextant_engine::{Config, Durability, Level, LogRecord, Point, ScanRequest, Snapshot};

fn collect(snap: &Snapshot, req: &ScanRequest) -> Vec<RecordBatch> {
    snap.scan(req)
        .unwrap()
        .collect::<sextant_engine::Result<Vec<_>>>()
        .unwrap()
}

/// (host, time, value) rows of a cpu scan.
fn rows(snap: &Snapshot, req: &ScanRequest) -> Vec<(String, i64, f64)> {
    let mut out = Vec::new();
    for b in collect(snap, req) {
        let host = arrow_cast::cast(
            b.column_by_name("host").unwrap(),
            &arrow_schema::DataType::Utf8,
        )
        .unwrap();
        let host = host.as_string::<i32>();
        let time = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((host.value(i).to_string(), time.value(i), v.value(i)));
        }
    }
    out
}

#[test]
fn metric_rows_survive_flush_and_reopen_with_last_write_winning() {
    let dir = tempfile::tempdir().unwrap();
    let write = |engine: &sextant_engine::Engine, host: &str, t: i64, v: f64| {
        engine
            .write_points(&[Point::metric("cpu").tag("host", host).field("v", v).time(t)])
            .unwrap();
    };
    {
        let engine = Config::new(dir.path())
            .durability(Durability::Always)
            .open()
            .unwrap();
        write(&engine, "b", 20, 1.0);
        write(&engine, "a", 10, 2.0);
        write(&engine, "a", 5, 3.0);
        let req = ScanRequest::new("cpu");
        assert_eq!(
            rows(&engine.snapshot(), &req),
            vec![
                ("a".into(), 5, 3.0),
                ("a".into(), 10, 2.0),
                ("b".into(), 20, 1.0)
            ]
        );
        engine.flush().unwrap();
        // Replace (a, 10) after the flush; write a late row.
        write(&engine, "a", 10, 9.0);
        write(&engine, "b", 1, 4.0);
        let expect = vec![
            ("a".into(), 5, 3.0),
            ("a".into(), 10, 9.0),
            ("b".into(), 1, 4.0),
            ("b".into(), 20, 1.0),
        ];
        assert_eq!(rows(&engine.snapshot(), &req), expect);
        engine.close().unwrap();
    }
    let engine = Config::new(dir.path()).open().unwrap();
    let req = ScanRequest::new("cpu");
    assert_eq!(rows(&engine.snapshot(), &req).len(), 4);
    assert_eq!(rows(&engine.snapshot(), &req)[1], ("a".into(), 10, 9.0));
    let only_b = ScanRequest::new("cpu")
        .tag_eq("host", "b")
        .time_range(0, 10);
    assert_eq!(
        rows(&engine.snapshot(), &only_b),
        vec![("b".into(), 1, 4.0)]
    );
}

#[test]
fn unflushed_rows_are_replayed_from_the_wal_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Config::new(dir.path())
            .durability(Durability::Always)
            .open()
            .unwrap();
        engine
            .write_points(&[Point::metric("cpu")
                .tag("host", "a")
                .field("v", 1.0)
                .time(1)])
            .unwrap();
        engine.flush().unwrap();
        engine
            .write_points(&[Point::metric("cpu")
                .tag("host", "a")
                .field("v", 2.0)
                .time(2)])
            .unwrap();
        // Simulate a crash: no close, no flush.
        std::mem::forget(engine);
    }
    // The forgotten engine still holds the directory lock; a real crash releases it.
    // Reopen through a copy of the directory.
    let copy = tempfile::tempdir().unwrap();
    sextant_tests::copy_dir(dir.path(), copy.path());
    let engine = Config::new(copy.path()).open().unwrap();
    assert_eq!(engine.recovery_report().wal_records_replayed, 1);
    assert_eq!(rows(&engine.snapshot(), &ScanRequest::new("cpu")).len(), 2);
}

#[test]
fn event_tables_keep_duplicates_and_levels() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    let rec = || -> Point {
        LogRecord::new("logs", Level::Warn, "slow")
            .tag("service", "api")
            .time(7)
            .into()
    };
    engine.write_points(&[rec(), rec()]).unwrap();
    engine.flush().unwrap();
    engine.write_points(&[rec()]).unwrap();
    let batches = collect(
        &engine.snapshot(),
        &ScanRequest::new("logs").columns(["level", "message"]),
    );
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 3);
    let level = batches[0]
        .column(0)
        .as_dictionary::<arrow_array::types::UInt8Type>();
    assert_eq!(level.keys().value(0), Level::Warn as u8);
    let _ = Arc::new(());
}

#[test]
fn a_crash_during_a_tables_first_flush_leaves_it_openable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Config::new(dir.path())
            .durability(Durability::Always)
            .open()
            .unwrap();
        engine
            .write_points(&[Point::metric("cpu")
                .tag("host", "a")
                .field("v", 1.0)
                .time(1)])
            .unwrap();
        std::mem::forget(engine);
    }
    let copy = tempfile::tempdir().unwrap();
    sextant_tests::copy_dir(dir.path(), copy.path());
    // The first flush had created the table's directory and begun its segment.
    let table_dir = copy.path().join("tables").join("cpu");
    std::fs::create_dir_all(&table_dir).unwrap();
    std::fs::write(table_dir.join("00000000000000000001.seg.tmp"), b"half").unwrap();
    let engine = Config::new(copy.path()).open().unwrap();
    assert_eq!(engine.recovery_report().temp_files_removed, 1);
    assert_eq!(
        rows(&engine.snapshot(), &ScanRequest::new("cpu")),
        vec![("a".into(), 1, 1.0)]
    );
    // Still a metric table: the same (series, time) is replaced.
    engine
        .write_points(&[Point::metric("cpu")
            .tag("host", "a")
            .field("v", 2.0)
            .time(1)])
        .unwrap();
    assert_eq!(
        rows(&engine.snapshot(), &ScanRequest::new("cpu")),
        vec![("a".into(), 1, 2.0)]
    );
}
