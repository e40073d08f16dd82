//! `DELETE FROM` in SQL: conditions on time and tags, the count deleted, and clear errors
//! for what the engine cannot delete by.

use sextant_engine::Point;
use sextant_query::Database;

mod common;
use common::text;

const MINUTE: i64 = 60_000_000_000;

fn sample(db: &Database) {
    let mut points = Vec::new();
    for host in ["a", "b", "c"] {
        for m in 0..10i64 {
            points.push(
                Point::metric("cpu")
                    .tag("host", host)
                    .field("usage", m as f64)
                    .time(m * MINUTE),
            );
        }
    }
    db.write_points(&points[..15]).unwrap();
    db.flush().unwrap();
    db.write_points(&points[15..]).unwrap();
}

fn count(db: &Database, sql: &str) -> String {
    text(&db.sql(sql).unwrap())[0][0].clone()
}

#[test]
fn delete_by_time_and_tags_returns_the_count_and_hides_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let deleted = db
        .sql("DELETE FROM cpu WHERE host IN ('a', 'b') AND time >= '1970-01-01T00:05:00Z'")
        .unwrap();
    assert_eq!(text(&deleted), vec![vec!["10".to_string()]]);
    assert_eq!(count(&db, "SELECT count(*) FROM cpu"), "20");
    assert_eq!(
        count(&db, "SELECT count(*) FROM cpu WHERE host = 'c'"),
        "10"
    );
    assert_eq!(
        count(&db, "SELECT max(time) FROM cpu WHERE host = 'a'"),
        "1970-01-01T00:04:00Z"
    );
    // Nothing matches: 0, and nothing changes.
    let none = db.sql("DELETE FROM cpu WHERE host = 'zz'").unwrap();
    assert_eq!(text(&none), vec![vec!["0".to_string()]]);
    db.compact("cpu").unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM cpu"), "20");
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM cpu"), "20");
}

#[test]
fn delete_refuses_conditions_it_cannot_honour_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    for (sql, says) in [
        (
            "DELETE FROM cpu WHERE usage > 5",
            "supports only conditions",
        ),
        (
            "DELETE FROM cpu WHERE host = 'a' OR usage > 5",
            "supports only",
        ),
        ("DELETE FROM cpu", "needs a WHERE clause"),
        ("DELETE FROM cpu WHERE false", "needs a WHERE clause"),
    ] {
        let err = db.sql(sql).map(|b| text(&b)).unwrap_err().to_string();
        assert!(err.contains(says), "{sql}: {err}");
        assert_eq!(count(&db, "SELECT count(*) FROM cpu"), "30", "after {sql}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM cpu"), "30");
}
