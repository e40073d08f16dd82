//! Aggregates by one time bucket under a sort (`BucketAggregateExec`) answer as
//! DataFusion's aggregate and sort do, to the bit, and are used only where they apply.

use proptest::prelude::*;
use sextant_engine::Point;
use sextant_query::Database;

mod common;
use common::{load_cpu, plan_text, text};

/// Rows of `(second, host, usage, extra)` (see [`load_cpu`]), as quarters and thirds.
fn load(db: &Database, rows: &[(i64, u8, i8, Option<i8>)], flush_at: usize) {
    load_cpu(db, rows, flush_at, (4.0, 3.0));
}

const AGGREGATES: &str = "min(usage) AS lo, max(usage) AS hi, sum(usage) AS s, \
     avg(usage) AS a, count(extra) AS ne, count(*) AS n, avg(extra) AS ae, sum(extra) AS se, \
     max(extra) AS he";

/// The answer of `sql` through the bucket aggregate, checked to have used it (unless a
/// limit put the newest-first reading in its place), and through DataFusion's aggregate
/// and sort (the bucket taken over `time` plus nothing, which the rule leaves alone).
fn both(db: &Database, sql: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let plan = plan_text(db, &format!("EXPLAIN {sql}"));
    if !plan.contains("RecentFirstExec") {
        assert!(plan.contains("BucketAggregateExec"), "{sql}\n{plan}");
        assert!(!plan.contains("SortExec"), "{sql}\n{plan}");
    }
    let general = sql.replace(", time", ", time + INTERVAL '0 seconds'");
    let plan = plan_text(db, &format!("EXPLAIN {general}"));
    assert!(!plan.contains("BucketAggregateExec"), "{general}\n{plan}");
    (
        text(&db.sql(sql).unwrap()),
        text(&db.sql(&general).unwrap()),
    )
}

#[test]
fn one_host_by_minute_answers_as_aggregate_and_sort_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let rows: Vec<_> = (0..3000i64)
        .map(|i| {
            let usage = ((i * 37) % 101) as i8;
            let extra = (i % 7 != 0).then_some((i % 13) as i8);
            (i / 4 * 10, (i % 4) as u8, usage, extra)
        })
        .collect();
    load(&db, &rows, 1700);
    for sql in [
        // single-groupby-1-1-1's shape
        format!(
            "SELECT time_bucket('60 seconds', time) AS minute, {AGGREGATES} FROM cpu \
             WHERE hostname IN ('h1') AND time >= '1970-01-01T00:10:00Z' \
             AND time < '1970-01-01T01:10:00Z' GROUP BY minute ORDER BY minute"
        ),
        // several hosts in one bucket, newest first
        format!(
            "SELECT time_bucket('3600 seconds', time) AS hour, {AGGREGATES} FROM cpu \
             GROUP BY hour ORDER BY hour DESC"
        ),
        // a filter on a field between the scan and the aggregate
        format!(
            "SELECT time_bucket('300 seconds', time) AS b, {AGGREGATES} FROM cpu \
             WHERE usage > 10 GROUP BY b ORDER BY b"
        ),
    ] {
        let (buckets, general) = both(&db, &sql);
        assert!(!buckets.is_empty(), "{sql}");
        assert_eq!(buckets, general, "{sql}");
    }
    // EXPLAIN ANALYZE shows the buckets out: 60 minutes of h1.
    let plan = plan_text(
        &db,
        "EXPLAIN ANALYZE SELECT time_bucket('60 seconds', time) AS minute, max(usage) \
         FROM cpu WHERE hostname = 'h1' AND time < '1970-01-01T01:00:00Z' \
         GROUP BY minute ORDER BY minute",
    );
    let line = plan
        .lines()
        .find(|l| l.contains("BucketAggregateExec"))
        .unwrap();
    assert!(line.contains("output_rows=60"), "{line}");
}

#[test]
fn nan_zeros_and_buckets_without_values_answer_as_aggregate_and_sort_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut points = Vec::new();
    for (t, usage) in [
        (1, 0.0),
        (2, -0.0),
        (3, 1.0),
        (4, f64::NAN),
        (61, -0.0),
        (62, -0.0),
        // Alone in their buckets: min and max start from the greatest and least finite
        // values, as DataFusion's do.
        (121, f64::INFINITY),
        (181, f64::NEG_INFINITY),
        // A value after NaN.
        (241, f64::NAN),
        (242, 1.0),
    ] {
        points.push(
            Point::metric("cpu")
                .tag("hostname", "h0")
                .field("usage", usage)
                .time(t * 1_000_000_000),
        );
    }
    // A bucket whose one row lacks `usage`: its min, max, sum and avg are null.
    points.push(
        Point::metric("cpu")
            .tag("hostname", "h0")
            .field("other", 1.0)
            .time(300 * 1_000_000_000),
    );
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    let sql = "SELECT time_bucket('60 seconds', time) AS minute, min(usage) AS lo, \
               max(usage) AS hi, sum(usage) AS s, avg(usage) AS a, count(usage) AS n, \
               count(NULL) AS nothing FROM cpu GROUP BY minute ORDER BY minute";
    let (buckets, general) = both(&db, sql);
    assert_eq!(buckets, general);
    assert_eq!(buckets.len(), 6, "{buckets:?}");
    assert_eq!(buckets[5][1..], ["", "", "", "", "0", "0"], "{buckets:?}");
}

#[test]
fn other_shapes_keep_the_aggregate_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    load(
        &db,
        &[(1, 0, 5, Some(1)), (2, 1, 6, None), (3, 0, 7, Some(2))],
        1,
    );
    for sql in [
        // Two groups.
        "SELECT time_bucket('60 seconds', time) AS m, hostname, max(usage) FROM cpu \
         GROUP BY m, hostname ORDER BY m",
        // Sorted by an aggregate, not the bucket.
        "SELECT time_bucket('60 seconds', time) AS m, max(usage) AS hi FROM cpu \
         GROUP BY m ORDER BY hi",
        // A month has no fixed width.
        "SELECT time_bucket(INTERVAL '1 month', time) AS m, max(usage) FROM cpu \
         GROUP BY m ORDER BY m",
        // An aggregate it does not fold.
        "SELECT time_bucket('60 seconds', time) AS m, stddev(usage) FROM cpu \
         GROUP BY m ORDER BY m",
        "SELECT time_bucket('60 seconds', time) AS m, count(DISTINCT usage) FROM cpu \
         GROUP BY m ORDER BY m",
    ] {
        let plan = plan_text(&db, &format!("EXPLAIN {sql}"));
        assert!(!plan.contains("BucketAggregateExec"), "{sql}\n{plan}");
        assert!(!text(&db.sql(sql).unwrap()).is_empty(), "{sql}");
    }
}

#[test]
fn a_limit_above_the_newest_first_reading_cuts_the_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let rows: Vec<_> = (0..500i64)
        .map(|i| (i * 7, (i % 3) as u8, (i % 50) as i8, Some((i % 9) as i8)))
        .collect();
    load(&db, &rows, 300);
    // A limit above a million is left to the sort by the newest-first reading, so the
    // bucket aggregate takes it.
    for order in ["ASC", "DESC"] {
        let sql = format!(
            "SELECT time_bucket('60 seconds', time) AS m, {AGGREGATES} FROM cpu \
             GROUP BY m ORDER BY m {order} LIMIT 2000000"
        );
        let plan = plan_text(&db, &format!("EXPLAIN {sql}"));
        assert!(plan.contains("fetch=2000000"), "{plan}");
        let (buckets, general) = both(&db, &sql);
        assert_eq!(buckets.len(), 59, "{sql}");
        assert_eq!(buckets, general, "{sql}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the rows, gaps, nulls, hosts, bucket width, origin, order and limit, the
    /// bucket aggregate answers as DataFusion's aggregate and sort.
    #[test]
    fn buckets_equal_aggregate_and_sort(
        rows in proptest::collection::vec(
            (0i64..5_000, 0u8..4, any::<i8>(), proptest::option::of(any::<i8>())),
            1..400,
        ),
        stride in 1i64..900,
        origin in -500i64..500,
        one_host in any::<bool>(),
        descending in any::<bool>(),
        limit in proptest::option::of(1usize..20),
        flush_at in 0usize..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        // One row with `extra`, so that the column exists.
        let rows: Vec<_> = std::iter::once((0, 0, 0, Some(1))).chain(rows).collect();
        load(&db, &rows, flush_at);
        let hosts = if one_host { "WHERE hostname = 'h1'" } else { "" };
        let order = if descending { "DESC" } else { "ASC" };
        let limit = limit.map_or(String::new(), |l| format!("LIMIT {l}"));
        let sql = format!(
            "SELECT date_bin(INTERVAL '{stride} seconds', time, \
             TIMESTAMP '1970-01-01T00:00:00Z' + INTERVAL '{origin} seconds') AS b, \
             {AGGREGATES} FROM cpu {hosts} GROUP BY b ORDER BY b {order} {limit}"
        );
        let (buckets, general) = both(&db, &sql);
        prop_assert_eq!(buckets, general, "{}", sql);
    }
}
