//! The `sextant` schema: segments and compaction work, in SQL.

use sextant_engine::Point;
use sextant_query::Database;

mod common;
use common::text;

const MINUTE: i64 = 60_000_000_000;

#[test]
fn segments_and_compaction_are_tables_of_the_sextant_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for round in 0..3i64 {
        let points: Vec<Point> = ["a", "b"]
            .iter()
            .map(|host| {
                Point::metric("cpu")
                    .tag("host", *host)
                    .field("usage", round as f64)
                    .time(round * MINUTE)
            })
            .collect();
        db.write_points(&points).unwrap();
        db.flush().unwrap();
    }
    let segments = |db: &Database| {
        text(
            &db.sql(
                "SELECT table_name, level, rows, min_time, max_time FROM sextant.segments \
                 ORDER BY min_seq",
            )
            .unwrap(),
        )
    };
    assert_eq!(
        segments(&db),
        [
            [
                "cpu",
                "0",
                "2",
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z"
            ],
            [
                "cpu",
                "0",
                "2",
                "1970-01-01T00:01:00Z",
                "1970-01-01T00:01:00Z"
            ],
            [
                "cpu",
                "0",
                "2",
                "1970-01-01T00:02:00Z",
                "1970-01-01T00:02:00Z"
            ],
        ]
    );
    db.compact("cpu").unwrap();
    assert_eq!(
        segments(&db),
        [[
            "cpu",
            "1",
            "6",
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:02:00Z"
        ]]
    );
    let work = text(
        &db.sql(
            "SELECT compactions, segments_merged, bytes_written > 0, write_amplification > 1 \
             FROM sextant.compaction",
        )
        .unwrap(),
    );
    assert_eq!(work, [["1", "3", "true", "true"]]);
    // The user's tables are not in it, and its tables are not the user's.
    let err = db.sql("SELECT * FROM sextant.cpu").unwrap_err().to_string();
    assert!(err.contains("sextant.cpu"), "{err}");
    assert!(db.sql("SELECT * FROM segments").is_err());
}
