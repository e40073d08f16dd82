//! Latest-row queries read only each series' latest row, and give the same answers as a
//! full scan would.

use sextant_engine::Point;
use sextant_query::Database;

mod common;
use common::text;

fn plan(db: &Database, sql: &str) -> String {
    common::plan_text(db, &format!("EXPLAIN {sql}"))
}

fn setup() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    // Three hosts in two regions; rows out of order, some flushed, a late overwrite.
    let mut points = Vec::new();
    for (h, region) in [("a", "east"), ("b", "east"), ("c", "west")] {
        for t in [5i64, 1, 9, 3, 7] {
            points.push(
                Point::metric("cpu")
                    .tag("hostname", h)
                    .tag("region", region)
                    .field("usage", (t * 10) as f64 + h.len() as f64)
                    .time(t * 1_000_000_000),
            );
        }
    }
    db.write_points(&points[..8]).unwrap();
    db.flush().unwrap();
    db.write_points(&points[8..]).unwrap();
    // Host b's latest row is rewritten after the flush (last write wins).
    db.write_points(&[Point::metric("cpu")
        .tag("hostname", "b")
        .tag("region", "east")
        .field("usage", -1.0)
        .time(9_000_000_000)])
        .unwrap();
    (dir, db)
}

#[test]
fn lastpoint_reads_only_latest_rows_and_matches_the_full_answer() {
    let (_dir, db) = setup();
    let sql =
        "SELECT DISTINCT ON (hostname) hostname, time, usage FROM cpu ORDER BY hostname, time DESC";
    assert!(
        plan(&db, sql).contains("mode=latest row per"),
        "{}",
        plan(&db, sql)
    );
    let expect = vec![
        vec!["a", "1970-01-01T00:00:09Z", "91.0"],
        vec!["b", "1970-01-01T00:00:09Z", "-1.0"],
        vec!["c", "1970-01-01T00:00:09Z", "91.0"],
    ];
    assert_eq!(text(&db.sql(sql).unwrap()), expect);
}

#[test]
fn grouping_by_a_coarser_tag_and_last_value_use_latest_rows_too() {
    let (_dir, db) = setup();
    let sql = "SELECT region, last_value(usage ORDER BY time) AS u, max(time) AS t FROM cpu GROUP BY region ORDER BY region";
    assert!(
        plan(&db, sql).contains("mode=latest row per"),
        "{}",
        plan(&db, sql)
    );
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got.len(), 2);
    // Hosts a and b of region east both end at 9 s: the first in key order (a) answers.
    assert_eq!(got[0], vec!["east", "91.0", "1970-01-01T00:00:09Z"]);
    assert_eq!(got[1], vec!["west", "91.0", "1970-01-01T00:00:09Z"]);
}

#[test]
fn a_filter_on_a_field_keeps_the_full_scan() {
    let (_dir, db) = setup();
    // The latest row of host b (-1.0) fails the filter: the answer is an older row.
    let sql = "SELECT DISTINCT ON (hostname) hostname, time, usage FROM cpu WHERE usage > 0 ORDER BY hostname, time DESC";
    assert!(
        !plan(&db, sql).contains("mode=latest"),
        "{}",
        plan(&db, sql)
    );
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got[1], vec!["b", "1970-01-01T00:00:07Z", "71.0"]);
}

#[test]
fn a_time_range_is_honoured_by_the_latest_rows() {
    let (_dir, db) = setup();
    let sql = "SELECT DISTINCT ON (hostname) hostname, time FROM cpu WHERE time < '1970-01-01T00:00:06Z' ORDER BY hostname, time DESC";
    assert!(
        plan(&db, sql).contains("mode=latest row per"),
        "{}",
        plan(&db, sql)
    );
    let got = text(&db.sql(sql).unwrap());
    assert!(
        got.iter().all(|r| r[1] == "1970-01-01T00:00:05Z"),
        "{got:?}"
    );
    assert_eq!(got.len(), 3);
}
