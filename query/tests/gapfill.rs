//! Gap filling: `date_bin_gapfill` / `time_bucket_gapfill` with `locf` and `interpolate`.

use sextant_engine::Point;
use sextant_query::Database;

mod common;
use common::text;

/// 2026-01-01T00:00:00Z in nanoseconds.
const T0: i64 = 1_767_225_600_000_000_000;
const SEC: i64 = 1_000_000_000;

fn rows(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Host a at 00:01:30 (user 10, idle 90) and 00:04:30 (40, 60); host b at 00:02:30
/// (20, 80); host c at 00:30:30 (50, 50), outside the ranges queried.
fn sample() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let point = |host: &str, secs: i64, user: f64, idle: f64| {
        Point::metric("cpu")
            .tag("host", host)
            .field("usage_user", user)
            .field("usage_idle", idle)
            .time(T0 + secs * SEC)
    };
    db.write_points(&[
        point("a", 90, 10.0, 90.0),
        point("a", 270, 40.0, 60.0),
        point("b", 150, 20.0, 80.0),
        point("c", 1830, 50.0, 50.0),
    ])
    .unwrap();
    (dir, db)
}

fn query(db: &Database, sql: &str) -> Vec<Vec<String>> {
    text(&db.sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn error(db: &Database, sql: &str) -> String {
    match db.sql(sql) {
        Ok(b) => panic!("{sql} should fail, gave {:?}", text(&b)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_buckets_are_emitted_and_filled_by_locf_and_interpolate() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host,
                avg(usage_user), locf(avg(usage_user)), interpolate(max(usage_idle))
         FROM cpu WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z'
         GROUP BY minute, host ORDER BY host, minute",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:00:00Z", "a", "", "", ""],
            &["2026-01-01T00:01:00Z", "a", "10.0", "10.0", "90.0"],
            &["2026-01-01T00:02:00Z", "a", "", "10.0", "80.0"],
            &["2026-01-01T00:03:00Z", "a", "", "10.0", "70.0"],
            &["2026-01-01T00:04:00Z", "a", "40.0", "40.0", "60.0"],
            &["2026-01-01T00:05:00Z", "a", "", "40.0", ""],
            &["2026-01-01T00:00:00Z", "b", "", "", ""],
            &["2026-01-01T00:01:00Z", "b", "", "", ""],
            &["2026-01-01T00:02:00Z", "b", "20.0", "20.0", "80.0"],
            &["2026-01-01T00:03:00Z", "b", "", "20.0", ""],
            &["2026-01-01T00:04:00Z", "b", "", "20.0", ""],
            &["2026-01-01T00:05:00Z", "b", "", "20.0", ""],
        ])
    );
}

#[test]
fn a_group_without_rows_in_the_range_is_not_invented() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT DISTINCT host FROM (
           SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host, avg(usage_user)
           FROM cpu WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z'
           GROUP BY minute, host) ORDER BY host",
    );
    assert_eq!(got, rows(&[&["a"], &["b"]]));
}

#[test]
fn a_query_without_group_columns_fills_one_series() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, count(*) AS n,
                locf(max(usage_user)) AS m
         FROM cpu WHERE host = 'a' AND time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:03:00Z'
         GROUP BY minute ORDER BY minute",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:00:00Z", "", ""],
            &["2026-01-01T00:01:00Z", "1", "10.0"],
            &["2026-01-01T00:02:00Z", "", "10.0"],
        ])
    );
    // Without any fill, the empty buckets' counts are null too.
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, count(*)
         FROM cpu WHERE host = 'a' AND time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:02:00Z'
         GROUP BY minute ORDER BY minute",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:00:00Z", ""],
            &["2026-01-01T00:01:00Z", "1"]
        ])
    );
}

fn minutes_of(db: &Database, host: &str, filter: &str) -> Vec<Vec<String>> {
    query(
        db,
        &format!(
            "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, avg(usage_user)
             FROM cpu WHERE host = '{host}' AND {filter} GROUP BY minute ORDER BY minute"
        ),
    )
}

#[test]
fn exclusive_and_inclusive_bounds_choose_the_first_and_last_buckets() {
    let (_dir, db) = sample();
    // > 00:01:00 still starts in the bucket of 00:01; <= 00:04:00 ends in the bucket
    // holding 00:04:00, though the row at 00:04:30 is filtered out.
    assert_eq!(
        minutes_of(
            &db,
            "a",
            "time > '2026-01-01T00:01:00Z' AND time <= '2026-01-01T00:04:00Z'"
        ),
        rows(&[
            &["2026-01-01T00:01:00Z", "10.0"],
            &["2026-01-01T00:02:00Z", ""],
            &["2026-01-01T00:03:00Z", ""],
            &["2026-01-01T00:04:00Z", ""],
        ])
    );
    // < 00:03:00 ends with the bucket starting before it.
    assert_eq!(
        minutes_of(
            &db,
            "b",
            "'2026-01-01T00:01:00Z' <= time AND '2026-01-01T00:03:00Z' > time"
        ),
        rows(&[
            &["2026-01-01T00:01:00Z", ""],
            &["2026-01-01T00:02:00Z", "20.0"],
        ])
    );
    assert_eq!(
        minutes_of(
            &db,
            "a",
            "time BETWEEN '2026-01-01T00:02:00Z' AND '2026-01-01T00:05:00Z'"
        ),
        rows(&[
            &["2026-01-01T00:02:00Z", ""],
            &["2026-01-01T00:03:00Z", ""],
            &["2026-01-01T00:04:00Z", "40.0"],
            &["2026-01-01T00:05:00Z", ""],
        ])
    );
    // Several bounds: the tightest wins.
    assert_eq!(
        minutes_of(
            &db,
            "a",
            "time >= '2026-01-01T00:00:00Z' AND time >= '2026-01-01T00:03:00Z' AND time < '2026-01-01T00:09:00Z' AND time < '2026-01-01T00:05:00Z'"
        ),
        rows(&[
            &["2026-01-01T00:03:00Z", ""],
            &["2026-01-01T00:04:00Z", "40.0"]
        ])
    );
}

#[test]
fn the_origin_argument_shifts_the_buckets_as_date_bin() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '2 minutes', time, '1970-01-01T00:01:00Z') AS m,
                avg(usage_user), date_bin(INTERVAL '2 minutes', max(time), '1970-01-01T00:01:00Z') AS check_bin
         FROM cpu WHERE host = 'a' AND time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z'
         GROUP BY m ORDER BY m",
    );
    assert_eq!(
        got,
        rows(&[
            &["2025-12-31T23:59:00Z", "", ""],
            &["2026-01-01T00:01:00Z", "10.0", "2026-01-01T00:01:00Z"],
            &["2026-01-01T00:03:00Z", "40.0", "2026-01-01T00:03:00Z"],
            &["2026-01-01T00:05:00Z", "", ""],
        ])
    );
}

#[test]
fn time_bucket_gapfill_is_an_alias() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT time_bucket_gapfill(INTERVAL '1 minute', time) AS m, interpolate(avg(usage_user))
         FROM cpu WHERE host = 'a' AND time >= '2026-01-01T00:01:00Z' AND time < '2026-01-01T00:05:00Z'
         GROUP BY m ORDER BY m",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:01:00Z", "10.0"],
            &["2026-01-01T00:02:00Z", "20.0"],
            &["2026-01-01T00:03:00Z", "30.0"],
            &["2026-01-01T00:04:00Z", "40.0"],
        ])
    );
}

#[test]
fn order_by_and_limit_apply_to_the_filled_rows() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host, locf(avg(usage_user)) AS u
         FROM cpu WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z'
         GROUP BY minute, host ORDER BY minute DESC, host LIMIT 3",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:05:00Z", "a", "40.0"],
            &["2026-01-01T00:05:00Z", "b", "20.0"],
            &["2026-01-01T00:04:00Z", "a", "40.0"],
        ])
    );
}

#[test]
fn fills_work_inside_arithmetic_and_under_aliases() {
    let (_dir, db) = sample();
    let got = query(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute,
                locf(avg(usage_user)) * 2 + 1 AS twice, coalesce(avg(usage_user), -1) AS raw,
                interpolate(max(usage_idle)) - locf(min(usage_idle)) AS diff
         FROM cpu WHERE host = 'a' AND time >= '2026-01-01T00:01:00Z' AND time < '2026-01-01T00:04:00Z'
         GROUP BY minute ORDER BY minute",
    );
    assert_eq!(
        got,
        rows(&[
            &["2026-01-01T00:01:00Z", "21.0", "10.0", "0.0"],
            &["2026-01-01T00:02:00Z", "21.0", "-1.0", ""],
            &["2026-01-01T00:03:00Z", "21.0", "-1.0", ""],
        ])
    );
}

#[test]
fn a_missing_bound_is_a_plan_error_that_says_which() {
    let (_dir, db) = sample();
    let err = error(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(usage_user) FROM cpu
         WHERE time >= '2026-01-01T00:00:00Z' GROUP BY m",
    );
    assert!(
        err.contains("needs both a lower and an upper bound on time in WHERE")
            && err.contains("no upper bound"),
        "{err}"
    );
    let err = error(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(usage_user) FROM cpu GROUP BY m",
    );
    assert!(err.contains("neither"), "{err}");
    // A bound on the day of `time`, not on the instant, is not a bound for the grid.
    let err = error(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(usage_user) FROM cpu
         WHERE time >= '2026-01-01T00:00:00Z' AND CAST(time AS DATE) <= DATE '2026-01-02'
         GROUP BY m",
    );
    assert!(err.contains("no upper bound"), "{err}");
}

#[test]
fn locf_and_interpolate_outside_gap_filling_are_plan_errors() {
    let (_dir, db) = sample();
    for sql in [
        "SELECT host, locf(avg(usage_user)) FROM cpu GROUP BY host",
        "SELECT interpolate(usage_user) FROM cpu",
        "SELECT usage_user FROM cpu WHERE locf(usage_user) > 1",
    ] {
        let err = error(&db, sql);
        assert!(
            err.contains(
                "can only be used in the SELECT list of a query that groups by date_bin_gapfill"
            ),
            "{sql}: {err}"
        );
    }
    let err = error(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '1 minute', time) FROM cpu",
    );
    assert!(err.contains("can only be used in GROUP BY"), "{err}");
}

#[test]
fn bad_fill_arguments_and_intervals_are_plan_errors() {
    let (_dir, db) = sample();
    let range = "time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z'";
    let cases = [
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, interpolate(max(host)) FROM cpu WHERE {range} GROUP BY m"
            ),
            "interpolate needs an integer or floating point value",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, locf(avg(usage_user) * 2) FROM cpu WHERE {range} GROUP BY m"
            ),
            "put arithmetic outside",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '1 month', time) AS m, avg(usage_user) FROM cpu WHERE {range} GROUP BY m"
            ),
            "does not support intervals of months",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '0 minutes', time) AS m, avg(usage_user) FROM cpu WHERE {range} GROUP BY m"
            ),
            "needs a positive interval",
        ),
        (
            format!(
                "SELECT date_bin_gapfill(INTERVAL '-1 minute', time) AS m, avg(usage_user) FROM cpu WHERE {range} GROUP BY m"
            ),
            "needs a positive interval",
        ),
        (
                "SELECT date_bin_gapfill(INTERVAL '1 second', time) AS m, avg(usage_user) FROM cpu WHERE time >= '2000-01-01T00:00:00Z' AND time < '2026-01-01T00:00:00Z' GROUP BY m".to_string(),
            "narrow the time range",
        ),
    ];
    for (sql, expected) in cases {
        let err = error(&db, &sql);
        assert!(err.contains(expected), "{sql}: {err}");
    }
}

#[test]
fn explain_shows_the_gap_fill_operator() {
    let (_dir, db) = sample();
    let plan = query(
        &db,
        "EXPLAIN SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, host, locf(avg(usage_user))
         FROM cpu WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:06:00Z' GROUP BY m, host",
    )
    .iter()
    .map(|r| r.join(" "))
    .collect::<Vec<_>>()
    .join("\n");
    assert!(plan.contains("GapFill: time="), "{plan}");
    assert!(plan.contains("GapFillExec: time="), "{plan}");
    assert!(plan.contains("=locf"), "{plan}");
}

#[test]
fn many_groups_spanning_batches_are_each_filled() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    // 3000 series with one point each in minute 1 of 3: more groups than one batch holds.
    let points: Vec<Point> = (0..3000)
        .map(|i| {
            Point::metric("m")
                .tag("k", format!("key-{i:04}"))
                .field("v", i as f64)
                .time(T0 + 60 * SEC)
        })
        .collect();
    db.write_points(&points).unwrap();
    let got = query(
        &db,
        "SELECT count(*), count(v), count(DISTINCT k) FROM (
           SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, k, locf(max(v)) AS v
           FROM m WHERE time >= '2026-01-01T00:00:00Z' AND time < '2026-01-01T00:03:00Z'
           GROUP BY m, k)",
    );
    assert_eq!(got, rows(&[&["9000", "6000", "3000"]]));
}
