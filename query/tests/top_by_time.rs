//! `ORDER BY time DESC LIMIT n` (and `ASC`), and the same over a time bucket an aggregate
//! groups by, reads only the newest (oldest) time ranges, and answers exactly as a full
//! sort would.

use proptest::prelude::*;
use sextant_engine::{Level, LogRecord, Point};
use sextant_query::Database;

mod common;
use common::text;

fn explain_analyze(db: &Database, sql: &str) -> String {
    common::plan_text(db, &format!("EXPLAIN ANALYZE {sql}"))
}

/// The figure `name=` of the line of `plan` that mentions `node`.
fn metric(plan: &str, node: &str, name: &str) -> usize {
    let line = plan
        .lines()
        .find(|l| l.contains(node))
        .unwrap_or_else(|| panic!("no {node} in\n{plan}"));
    let at = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const HOSTS: i64 = 4;
const STEPS: i64 = 2000;

/// Four hosts with a row every second for 2000 s, in two segments and memory; host
/// `h1`'s `usage` is negative every 500th second.
fn setup() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    for part in 0..3 {
        let mut points = Vec::new();
        for t in (part * STEPS / 3)..((part + 1) * STEPS / 3).min(STEPS) {
            for h in 0..HOSTS {
                let usage = if h == 1 && t % 500 == 0 {
                    -1.0
                } else {
                    (t * 10 + h) as f64
                };
                points.push(
                    Point::metric("cpu")
                        .tag("hostname", format!("h{h}"))
                        .field("usage", usage)
                        .time(t * 1_000_000_000),
                );
            }
        }
        db.write_points(&points).unwrap();
        if part < 2 {
            db.flush().unwrap();
        }
    }
    (dir, db)
}

/// The same query with the sort on an expression the rule does not touch.
fn full_sort(sql: &str) -> String {
    sql.replace("ORDER BY time", "ORDER BY time + INTERVAL '0 seconds'")
}

#[test]
fn newest_rows_come_from_the_newest_ranges_only() {
    let (_dir, db) = setup();
    let sql = "SELECT time, hostname, usage FROM cpu ORDER BY time DESC, hostname LIMIT 10";
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got, text(&db.sql(&full_sort(sql)).unwrap()));
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], vec!["1970-01-01T00:33:19Z", "h0", "19990.0"]);
    let plan = explain_analyze(&db, sql);
    let rows = metric(&plan, "RecentFirstExec", "output_rows");
    assert!((10..100).contains(&rows), "read {rows} rows:\n{plan}");
    // What the ranges' scans read is shown on RecentFirstExec.
    // (the newest rows are in memory: the first range reads no segment.)
    assert!(
        metric(&plan, "RecentFirstExec", "memory_chunks_read") > 0,
        "{plan}"
    );
    assert_eq!(
        metric(&plan, "RecentFirstExec", "segments_read"),
        0,
        "{plan}"
    );
}

#[test]
fn an_outlier_far_in_the_future_still_gives_the_exact_answer() {
    let (_dir, db) = setup();
    // A device with a bad clock: one row in the year 2200.
    db.write_points(&[Point::metric("cpu")
        .tag("hostname", "bad-clock")
        .field("usage", 0.5)
        .time(7_258_118_400_000_000_000)])
        .unwrap();
    let sql = "SELECT time, hostname, usage FROM cpu ORDER BY time DESC, hostname LIMIT 5";
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got, text(&db.sql(&full_sort(sql)).unwrap()));
    assert_eq!(got[0][1], "bad-clock");
    assert_eq!(got[1][0], "1970-01-01T00:33:19Z");
}

#[test]
fn oldest_rows_offsets_and_filters_evaluated_above_the_scan() {
    let (_dir, db) = setup();
    for sql in [
        "SELECT time, hostname FROM cpu ORDER BY time ASC, hostname DESC LIMIT 7",
        "SELECT time, hostname FROM cpu ORDER BY time DESC, hostname LIMIT 5 OFFSET 6",
        // A filter DataFusion evaluates: the ranges grow until enough rows pass it.
        "SELECT time, hostname, usage FROM cpu WHERE usage < 0 ORDER BY time DESC LIMIT 3",
        "SELECT time AS t, usage * 2 AS u FROM cpu WHERE hostname = 'h2' \
         ORDER BY time DESC LIMIT 4",
        // More rows than the table has.
        "SELECT time, hostname FROM cpu WHERE usage < 0 ORDER BY time DESC, hostname LIMIT 100",
        // A time range in WHERE bounds the ranges.
        "SELECT time, hostname FROM cpu WHERE time < '1970-01-01T00:10:00Z' \
         ORDER BY time DESC, hostname LIMIT 6",
        // A time range holding no rows.
        "SELECT time FROM cpu WHERE time > '2000-01-01T00:00:00Z' ORDER BY time DESC LIMIT 6",
    ] {
        let got = text(&db.sql(sql).unwrap());
        assert_eq!(got, text(&db.sql(&full_sort(sql)).unwrap()), "{sql}");
        assert!(
            explain_analyze(&db, sql).contains("RecentFirstExec"),
            "{sql} does not use RecentFirstExec"
        );
    }
    let negatives = "SELECT time FROM cpu WHERE usage < 0 ORDER BY time DESC LIMIT 100";
    assert_eq!(text(&db.sql(negatives).unwrap()).len(), 4);
}

#[test]
fn latest_errors_of_a_log_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut records = Vec::new();
    for t in 0..5000i64 {
        let level = if t % 1000 == 7 {
            Level::Error
        } else {
            Level::Info
        };
        records.push(
            LogRecord::new("logs", level, format!("event {t}"))
                .tag("service", "api")
                .time(t * 1_000_000)
                .into(),
        );
    }
    db.write_points(&records).unwrap();
    db.flush().unwrap();
    let sql = "SELECT time, message FROM logs WHERE level >= 'error' ORDER BY time DESC LIMIT 2";
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(
        got.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["event 4007", "event 3007"]
    );
    assert_eq!(got, text(&db.sql(&full_sort(sql)).unwrap()));
}

#[test]
fn other_sorts_are_left_alone() {
    let (_dir, db) = setup();
    for sql in [
        "SELECT time, usage FROM cpu ORDER BY usage DESC LIMIT 3",
        "SELECT time, usage FROM cpu ORDER BY time DESC",
        "SELECT hostname, max(time) AS t FROM cpu GROUP BY hostname ORDER BY t DESC LIMIT 2",
    ] {
        assert!(
            !explain_analyze(&db, sql).contains("RecentFirstExec"),
            "{sql} uses RecentFirstExec"
        );
    }
}

/// The same query with the sort on `minute` moved to an expression the rule does not
/// touch.
fn full_sort_of(sql: &str, key: &str) -> String {
    sql.replace(
        &format!("ORDER BY {key}"),
        &format!("ORDER BY {key} + INTERVAL '0 seconds'"),
    )
}

#[test]
fn newest_buckets_of_an_aggregate_come_from_the_newest_ranges_only() {
    let (_dir, db) = setup();
    // TSBS groupby-orderby-limit: the first range holds five whole minutes.
    let sql = "SELECT time_bucket('60 seconds', time) AS minute, max(usage) FROM cpu \
               GROUP BY minute ORDER BY minute DESC LIMIT 5";
    let got = text(&db.sql(sql).unwrap());
    assert_eq!(got, text(&db.sql(&full_sort_of(sql, "minute")).unwrap()));
    assert_eq!(got.len(), 5);
    // The newest minute holds seconds 1980..1999: h3's usage at 1999 s.
    assert_eq!(got[0], vec!["1970-01-01T00:33:00Z", "19993.0"]);
    let plan = explain_analyze(&db, sql);
    assert!(plan.contains("ranges on 60000000000 ns buckets"), "{plan}");
    let groups = metric(&plan, "RecentFirstExec", "output_rows");
    assert!((5..10).contains(&groups), "read {groups} groups:\n{plan}");
    assert_eq!(metric(&plan, "RecentFirstExec", "time_ranges_read"), 1);

    for sql in [
        // Oldest first, a tag as a second group, avg and count.
        "SELECT time_bucket('60 seconds', time) AS minute, hostname, avg(usage), count(*) \
         FROM cpu GROUP BY minute, hostname ORDER BY minute, hostname LIMIT 7",
        // A bucket whose origin is not the epoch, and a time range in WHERE that cuts the
        // newest bucket short.
        "SELECT date_bin(INTERVAL '7 seconds', time, TIMESTAMP '1970-01-01T00:00:03Z') AS b, \
         min(usage) FROM cpu WHERE time < '1970-01-01T00:10:05Z' \
         GROUP BY b ORDER BY b DESC LIMIT 4",
        // Few groups pass HAVING: the ranges grow until enough do, or the table ends.
        "SELECT time_bucket(INTERVAL '10 seconds', time) AS b, min(usage) AS m FROM cpu \
         GROUP BY b HAVING min(usage) < 0 ORDER BY b DESC LIMIT 3",
        "SELECT time_bucket(INTERVAL '10 seconds', time) AS b, min(usage) AS m FROM cpu \
         GROUP BY b HAVING min(usage) < 0 ORDER BY b DESC LIMIT 30",
        // The bucket under a projection that renames it, more groups than exist.
        "SELECT b AS bucket, n FROM (SELECT time_bucket('1 day', time) AS b, count(*) AS n \
         FROM cpu GROUP BY b) ORDER BY bucket DESC LIMIT 3",
    ] {
        let key = sql.split("ORDER BY ").nth(1).unwrap();
        let key = key.split([' ', ',']).next().unwrap();
        let got = text(&db.sql(sql).unwrap());
        assert_eq!(
            got,
            text(&db.sql(&full_sort_of(sql, key)).unwrap()),
            "{sql}"
        );
        assert!(
            explain_analyze(&db, sql).contains("RecentFirstExec"),
            "{sql} does not use RecentFirstExec"
        );
    }
    let negatives = "SELECT time_bucket(INTERVAL '10 seconds', time) AS b, min(usage) FROM cpu \
                     GROUP BY b HAVING min(usage) < 0 ORDER BY b DESC LIMIT 30";
    assert_eq!(text(&db.sql(negatives).unwrap()).len(), 4);
}

#[test]
fn a_time_whose_bucket_overflows_is_a_null_bucket_in_its_place() {
    let (_dir, db) = setup();
    // An "unset" time: date_bin overflows and gives it a NULL bucket, which sorts first
    // in DESC and last in ASC.
    db.write_points(&[Point::metric("cpu")
        .tag("hostname", "unset")
        .field("usage", 7.0)
        .time(i64::MIN + 1)])
        .unwrap();
    for order in ["DESC", "ASC"] {
        let sql = format!(
            "SELECT time_bucket('60 seconds', time) AS b, max(usage) FROM cpu \
             GROUP BY b ORDER BY b {order} LIMIT 3"
        );
        let got = text(&db.sql(&sql).unwrap());
        assert_eq!(
            got,
            text(&db.sql(&full_sort_of(&sql, "b")).unwrap()),
            "{sql}"
        );
    }
}

#[test]
fn buckets_of_months_and_sorts_on_aggregates_are_left_alone() {
    let (_dir, db) = setup();
    for sql in [
        "SELECT time_bucket(INTERVAL '1 month', time) AS m, count(*) FROM cpu \
         GROUP BY m ORDER BY m DESC LIMIT 2",
        "SELECT time_bucket('60 seconds', time) AS minute, max(usage) AS top FROM cpu \
         GROUP BY minute ORDER BY top DESC LIMIT 2",
        "SELECT time_bucket('60 seconds', time) AS minute, hostname, max(usage) FROM cpu \
         GROUP BY minute, hostname ORDER BY hostname, minute DESC LIMIT 2",
    ] {
        assert!(
            !explain_analyze(&db, sql).contains("RecentFirstExec"),
            "{sql} uses RecentFirstExec"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Newest (oldest) buckets through the ranges equal a full sort's, whatever the
    /// buckets' width and origin, the gaps in the data, the limit and the time range.
    #[test]
    fn bucketed_top_n_equals_a_full_sort(
        // Sparse (a row every 100 s on average): many buckets are empty, so that most
        // answers take several ranges.
        times in proptest::collection::vec((0i64..20_000, 0u8..3), 1..200),
        stride in 1i64..400,
        origin in -500i64..500,
        limit in 1usize..12,
        descending in any::<bool>(),
        until in proptest::option::of(0i64..20_000),
        flush_at in 0usize..200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let points: Vec<Point> = times
            .iter()
            .map(|&(t, h)| {
                Point::metric("cpu")
                    .tag("hostname", format!("h{h}"))
                    .field("usage", (t % 97) as f64)
                    .time(t * 1_000_000_000)
            })
            .collect();
        let (older, newer) = points.split_at(flush_at.min(points.len()));
        db.write_points(older).unwrap();
        db.flush().unwrap();
        db.write_points(newer).unwrap();
        let filter = until
            .map(|u| format!("WHERE time < TIMESTAMP '1970-01-01T00:00:00Z' + INTERVAL '{u} seconds'"))
            .unwrap_or_default();
        let sql = format!(
            "SELECT date_bin(INTERVAL '{stride} seconds', time, \
             TIMESTAMP '1970-01-01T00:00:00Z' + INTERVAL '{origin} seconds') AS b, hostname, \
             max(usage), count(*) FROM cpu {filter} GROUP BY b, hostname \
             ORDER BY b {}, hostname LIMIT {limit}",
            if descending { "DESC" } else { "ASC" },
        );
        let got = text(&db.sql(&sql).unwrap());
        prop_assert_eq!(&got, &text(&db.sql(&full_sort_of(&sql, "b")).unwrap()), "{}", sql);
        prop_assert!(explain_analyze(&db, &sql).contains("RecentFirstExec"), "{}", sql);
    }
}

#[test]
fn an_empty_table_gives_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.write_points(&[Point::metric("cpu").field("usage", 1.0).time(5)])
        .unwrap();
    let sql = "SELECT time FROM cpu WHERE time > '1970-01-01T00:00:01Z' ORDER BY time DESC LIMIT 3";
    assert!(db.sql(sql).unwrap().iter().all(|b| b.num_rows() == 0));
}
