//! Schemas grow by writing; conflicting writes are rejected whole and leave no trace.

use sextant_engine::{ColumnType, Config, Error, Point, ScanRequest, TableKind};
use sextant_tests::{Cell, scan_rows};

#[test]
fn new_columns_are_added_and_old_rows_read_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    engine
        .write_points(&[Point::metric("m").tag("host", "a").field("v", 1.0).time(1)])
        .unwrap();
    engine.flush().unwrap();
    engine
        .write_points(&[Point::metric("m")
            .tag("host", "a")
            .tag("dc", "x")
            .field("n", 5i64)
            .time(2)])
        .unwrap();
    let snap = engine.snapshot();
    let schema = snap.schema("m").unwrap();
    let cols: Vec<_> = schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty))
        .collect();
    assert_eq!(
        cols,
        [
            ("time", ColumnType::Time),
            ("host", ColumnType::Tag),
            ("v", ColumnType::F64),
            ("dc", ColumnType::Tag),
            ("n", ColumnType::I64)
        ]
    );
    let rows = scan_rows(
        &snap,
        &ScanRequest::new("m").columns(["time", "dc", "v", "n"]),
    )
    .unwrap();
    // Series in key order: {dc=x, host=a} sorts before {host=a}.
    assert_eq!(
        rows,
        vec![
            vec![
                Cell::Int(2),
                Cell::Str("x".into()),
                Cell::Null,
                Cell::Int(5)
            ],
            vec![Cell::Int(1), Cell::Null, Cell::Float(1.0), Cell::Null],
        ]
    );
}

#[test]
fn a_type_conflict_rejects_the_whole_write() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    engine
        .write_points(&[Point::metric("m").field("v", 1.0).time(1)])
        .unwrap();
    let err = engine
        .write_points(&[
            Point::metric("other").field("x", 1.0).time(1),
            Point::metric("m").field("v", 2i64).time(2),
        ])
        .unwrap_err();
    match &err {
        Error::TypeConflict {
            table,
            column,
            existing,
            offered,
        } => {
            assert_eq!((table.as_str(), column.as_str()), ("m", "v"));
            assert_eq!((*existing, *offered), (ColumnType::F64, ColumnType::I64));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("rejected as a whole"));
    let snap = engine.snapshot();
    assert!(
        snap.schema("other").is_none(),
        "the rejected write created a table"
    );
    assert_eq!(scan_rows(&snap, &ScanRequest::new("m")).unwrap().len(), 1);
    engine.close().unwrap();
    // Nothing of the rejected write comes back from the WAL either.
    let engine = Config::new(dir.path()).open().unwrap();
    assert!(engine.snapshot().schema("other").is_none());
}

#[test]
fn writing_an_event_into_a_metric_table_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    engine
        .write_points(&[Point::metric("m").field("v", 1.0).time(1)])
        .unwrap();
    let err = engine
        .write_points(&[Point::event("m").field("v", 1.0).time(1)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TableKindConflict {
                existing: TableKind::Metric,
                offered: TableKind::Event,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unknown_tables_and_columns_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    engine
        .write_points(&[Point::metric("m").field("v", 1.0).time(1)])
        .unwrap();
    let snap = engine.snapshot();
    let err = snap.scan(&ScanRequest::new("nope")).unwrap_err();
    assert_eq!(err.to_string(), "no table named \"nope\"");
    let err = snap
        .scan(&ScanRequest::new("m").columns(["w"]))
        .unwrap_err();
    assert_eq!(err.to_string(), "table \"m\" has no column named \"w\"");
    let err = snap
        .scan(&ScanRequest::new("m").tag_eq("v", "1"))
        .unwrap_err();
    assert!(err.to_string().contains("not a tag"), "{err}");
}

#[test]
fn batches_of_one_call_are_checked_against_each_other() {
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array};
    use sextant_engine::{ColumnDef, TableBatch};

    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).open().unwrap();
    let batch = |ty: ColumnType, values: arrow_array::ArrayRef| {
        TableBatch::try_new(
            "m",
            TableKind::Metric,
            vec![
                ColumnDef::new("time", ColumnType::Time),
                ColumnDef::new("v", ty),
            ],
            vec![Arc::new(Int64Array::from(vec![1])), values],
        )
        .unwrap()
    };
    let err = engine
        .write_batches(vec![
            batch(ColumnType::F64, Arc::new(Float64Array::from(vec![1.0]))),
            batch(ColumnType::I64, Arc::new(Int64Array::from(vec![1]))),
        ])
        .unwrap_err();
    assert!(matches!(err, Error::TypeConflict { .. }), "{err}");
    assert!(engine.snapshot().schema("m").is_none());
}
