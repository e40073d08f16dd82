//! Partial aggregation over the scan's runs (`RunAggregateExec`) answers as DataFusion's
//! hash aggregation does, and is used only where the groups follow the scan's order.

use proptest::prelude::*;
use sextant_engine::{Config, Level, Point};
use sextant_query::{Database, QueryOptions};

mod common;
use common::{load_cpu, plan_text, text};

/// A database whose scans always run in two partitions, so that DataFusion plans a
/// partial aggregate for the rule to replace.
fn open(dir: &std::path::Path) -> Database {
    let options = QueryOptions {
        target_partitions: 2,
        single_partition_rows: 0,
        ..QueryOptions::default()
    };
    Database::open_with(Config::new(dir), options).unwrap()
}

/// Rows of `(second, host, usage, extra)` (see [`load_cpu`]), as integers, which the run
/// path adds up exactly though in another order than hashing.
fn load(db: &Database, rows: &[(i64, u8, i8, Option<i8>)], flush_at: usize) {
    load_cpu(db, rows, flush_at, (1.0, 1.0));
}

const AGGREGATES: &str = "min(usage) AS lo, max(usage) AS hi, sum(usage) AS s, \
     avg(usage) AS a, count(extra) AS ne, count(*) AS n, avg(extra) AS ae, max(extra) AS he";

/// The answer of `sql` through runs, checked to have used them, and through DataFusion's
/// aggregation (the tag grouped by as an expression, which the rule leaves alone).
fn both(db: &Database, sql: &str, tag: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let plan = plan_text(db, &format!("EXPLAIN {sql}"));
    assert!(plan.contains("RunAggregateExec"), "{sql}\n{plan}");
    // `concat` would make a null level '', which is not a level to rank.
    let general = match tag {
        "level" => replace_word(sql, tag, "nullif(level, '')"),
        _ => replace_word(sql, tag, &format!("concat({tag}, '')")),
    };
    let plan = plan_text(db, &format!("EXPLAIN {general}"));
    assert!(!plan.contains("RunAggregateExec"), "{general}\n{plan}");
    (
        text(&db.sql(sql).unwrap()),
        text(&db.sql(&general).unwrap()),
    )
}

/// `sql` with each whole word `word` (not `level` in `level_rank`) put as `with`.
fn replace_word(sql: &str, word: &str, with: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find(word) {
        let before = match i {
            0 => out.chars().last(),
            _ => rest[..i].chars().last(),
        };
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        out.push_str(match is_word(before) || is_word(after) {
            true => word,
            false => with,
        });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn tsbs_shapes_answer_as_hash_aggregation_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let rows: Vec<_> = (0..3000i64)
        .map(|i| {
            let usage = ((i * 37) % 101) as i8;
            let extra = (i % 7 != 0).then_some((i % 13) as i8);
            (i / 4 * 10, (i % 4) as u8, usage, extra)
        })
        .collect();
    load(&db, &rows, 1700);
    for sql in [
        // double-groupby
        format!(
            "SELECT time_bucket('3600 seconds', time) AS hour, hostname, {AGGREGATES} \
             FROM cpu WHERE time >= '1970-01-01T00:10:00Z' GROUP BY hour, hostname \
             ORDER BY hour, hostname"
        ),
        // single-groupby over two hosts, minutes
        format!(
            "SELECT time_bucket('60 seconds', time) AS minute, {AGGREGATES} FROM cpu \
             WHERE hostname IN ('h1', 'h2') GROUP BY minute, hostname ORDER BY minute, hostname"
        ),
        // a tag shared by several series
        format!("SELECT region, {AGGREGATES} FROM cpu GROUP BY region ORDER BY region"),
    ] {
        let tag = if sql.contains("GROUP BY region") {
            "region"
        } else {
            "hostname"
        };
        let (runs, general) = both(&db, &sql, tag);
        assert!(!runs.is_empty());
        assert_eq!(runs, general, "{sql}");
    }
    // EXPLAIN ANALYZE shows the rows in and the runs out.
    let plan = plan_text(
        &db,
        "EXPLAIN ANALYZE SELECT time_bucket('3600 seconds', time) AS hour, hostname, \
         max(usage) FROM cpu GROUP BY hour, hostname",
    );
    // 3 hours x 4 hosts, each group one run: nothing split.
    let line = plan
        .lines()
        .find(|l| l.contains("RunAggregateExec"))
        .unwrap();
    assert!(
        line.contains("output_rows=12") && line.contains("input_rows=3.00 K"),
        "{line}"
    );
    assert!(!line.contains("output_batches=0"), "{line}");
    let scan = plan
        .lines()
        .find(|l| l.contains("SextantScanExec"))
        .unwrap();
    assert!(!scan.contains("output_batches=0"), "{scan}");
}

#[test]
fn count_of_null_zeros_nan_and_missing_tags_answer_as_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut points = Vec::new();
    for (t, usage) in [
        (1, 0.0),
        (2, -0.0),
        (3, 1.0),
        (4, f64::NAN),
        (5, 2.0),
        (6, -0.0),
    ] {
        points.push(
            Point::metric("cpu")
                .tag("hostname", "h0")
                .field("usage", usage)
                .time(t),
        );
        // A series without the tag: a null group key.
        points.push(Point::metric("cpu").field("usage", usage).time(t));
    }
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    let sql = "SELECT hostname, min(usage) AS lo, max(usage) AS hi, count(NULL) AS nothing, \
               count(*) AS n FROM cpu GROUP BY hostname ORDER BY hostname NULLS FIRST";
    let (runs, general) = both(&db, sql, "hostname");
    assert_eq!(runs, general);
    assert_eq!(runs[0][3], "0", "{runs:?}");
}

#[test]
fn other_groups_and_aggregates_keep_hash_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    load(
        &db,
        &[(1, 0, 5, Some(1)), (2, 1, 6, None), (3, 0, 7, Some(2))],
        1,
    );
    for sql in [
        // A field as a group: no runs to find.
        "SELECT usage, count(*) FROM cpu GROUP BY usage",
        // A month bucket has no fixed width.
        "SELECT time_bucket(INTERVAL '1 month', time) AS m, max(usage) FROM cpu GROUP BY m",
        // DISTINCT, FILTER, and an aggregate it does not fold.
        "SELECT hostname, count(DISTINCT usage) FROM cpu GROUP BY hostname",
        "SELECT hostname, count(*) FILTER (WHERE usage > 5) FROM cpu GROUP BY hostname",
        "SELECT hostname, stddev(usage) FROM cpu GROUP BY hostname",
        // No group at all.
        "SELECT max(usage) FROM cpu",
    ] {
        let plan = plan_text(&db, &format!("EXPLAIN {sql}"));
        assert!(!plan.contains("RunAggregateExec"), "{sql}\n{plan}");
        assert!(!text(&db.sql(sql).unwrap()).is_empty(), "{sql}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the rows, gaps, nulls, bucket width and origin, runs answer as hashing.
    #[test]
    fn runs_equal_hash_aggregation(
        rows in proptest::collection::vec(
            (0i64..5_000, 0u8..4, any::<i8>(), proptest::option::of(any::<i8>())),
            1..400,
        ),
        stride in 1i64..900,
        origin in -500i64..500,
        by_region in any::<bool>(),
        flush_at in 0usize..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        // One row with `extra`, so that the column exists.
        let rows: Vec<_> = std::iter::once((0, 0, 0, Some(1))).chain(rows).collect();
        load(&db, &rows, flush_at);
        let tag = if by_region { "region" } else { "hostname" };
        let sql = format!(
            "SELECT date_bin(INTERVAL '{stride} seconds', time, \
             TIMESTAMP '1970-01-01T00:00:00Z' + INTERVAL '{origin} seconds') AS b, {tag}, \
             {AGGREGATES} FROM cpu GROUP BY b, {tag} ORDER BY b, {tag}"
        );
        let (runs, general) = both(&db, &sql, tag);
        prop_assert_eq!(runs, general, "{}", sql);
    }

    /// Whatever the levels (or none), services and times, log queries with a level
    /// group or a filter answer as hashing.
    #[test]
    fn log_runs_equal_hash_aggregation(
        rows in proptest::collection::vec(
            (0i64..2_000, 0u8..3, proptest::option::of(0u8..6)),
            1..300,
        ),
        stride in 1i64..600,
        flush_at in 0usize..300,
    ) {
        // Rows none of which has a level make a table without a `level` column, which
        // the queries name.
        prop_assume!(rows.iter().any(|r| r.2.is_some()));
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        load_logs(&db, &rows, flush_at);
        for (sql, group) in log_queries(stride) {
            let (runs, general) = both(&db, &sql, group);
            prop_assert_eq!(runs, general, "{}", sql);
        }
    }
}

/// Log rows `(second, service, level)`, level `None` for a row without one; the first
/// `flush_at` flushed to a segment, the rest in memory.
fn load_logs(db: &Database, rows: &[(i64, u8, Option<u8>)], flush_at: usize) {
    let points: Vec<Point> = rows
        .iter()
        .enumerate()
        .map(|(i, &(t, service, level))| {
            let mut p = Point::event("logs")
                .tag("service", format!("s{service}"))
                .field("latency", f64::from(t as i32 % 97))
                .time(t * 1_000_000_000);
            // A field some rows lack, for counts that skip nulls; the first row has it,
            // so that the table has the column whatever the times.
            if i == 0 || t % 5 != 0 {
                p = p.field("code", (t % 4) as f64);
            }
            if let Some(l) = level {
                p = p.level(Level::ALL[usize::from(l) % Level::ALL.len()]);
            }
            p
        })
        .collect();
    let (older, newer) = points.split_at(flush_at.min(points.len()));
    db.write_points(older).unwrap();
    db.flush().unwrap();
    db.write_points(newer).unwrap();
}

/// The log queries the rule takes: a level group (changing within runs) and a filter
/// between the scan and the aggregate. Each answer is checked against hashing.
fn log_queries(stride: i64) -> Vec<(String, &'static str)> {
    let bucket = format!("time_bucket(INTERVAL '{stride} seconds', time)");
    vec![
        // count-per-level-per-hour
        (
            format!(
                "SELECT {bucket} AS b, level, count(*) AS n, max(latency) AS hi FROM logs \
                 GROUP BY b, level ORDER BY b, level_rank(level) NULLS FIRST"
            ),
            "level",
        ),
        // Counts alone by level are counted where they lie, not put in order.
        (
            format!(
                "SELECT {bucket} AS b, level, count(*) AS n FROM logs \
                 GROUP BY b, level ORDER BY b, level_rank(level) NULLS FIRST"
            ),
            "level",
        ),
        (
            "SELECT service, level, count(*) AS n, count(code) AS c FROM logs \
             GROUP BY service, level ORDER BY service, level_rank(level) NULLS FIRST"
                .to_string(),
            "service",
        ),
        (
            "SELECT level, count(*) AS n, count(NULL) AS z FROM logs GROUP BY level \
             ORDER BY level_rank(level) NULLS FIRST"
                .to_string(),
            "level",
        ),
        // errors-per-service-per-minute
        (
            format!(
                "SELECT {bucket} AS b, service, count(*) AS n, avg(latency) AS a FROM logs \
                 WHERE level = 'error' GROUP BY b, service ORDER BY b, service"
            ),
            "service",
        ),
        // A tag, the level and a filter together; the level alone.
        (
            "SELECT service, level, count(*) AS n, sum(latency) AS s FROM logs \
             WHERE latency > 10 GROUP BY service, level ORDER BY service, level_rank(level) NULLS FIRST"
                .to_string(),
            "service",
        ),
        (
            "SELECT level, count(*) AS n, min(latency) AS lo FROM logs GROUP BY level \
             ORDER BY level_rank(level) NULLS FIRST"
                .to_string(),
            "level",
        ),
    ]
}

#[test]
fn log_levels_and_filters_answer_as_hash_aggregation_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let rows: Vec<_> = (0..3000i64)
        .map(|i| {
            let level = (i % 11 != 0).then_some(((i * 7) % 6) as u8);
            (i / 3, (i % 3) as u8, level)
        })
        .collect();
    load_logs(&db, &rows, 1900);
    for (sql, group) in log_queries(60) {
        let (runs, general) = both(&db, &sql, group);
        assert!(!runs.is_empty(), "{sql}");
        assert_eq!(runs, general, "{sql}");
    }
    // The level group's six values and the rows without one, each counted once.
    let levels = text(
        &db.sql("SELECT level, count(*) FROM logs GROUP BY level ORDER BY level_rank(level) NULLS FIRST")
            .unwrap(),
    );
    assert_eq!(levels.len(), 7, "{levels:?}");
    let total: u64 = levels.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 3000);
}

#[test]
fn a_second_changing_group_keeps_hash_aggregation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    load_logs(&db, &[(1, 0, Some(1)), (2, 1, Some(4)), (3, 0, None)], 1);
    for sql in [
        "SELECT level, latency, count(*) FROM logs GROUP BY level, latency",
        "SELECT level, concat(service, '') AS s, count(*) FROM logs GROUP BY level, s",
    ] {
        let plan = plan_text(&db, &format!("EXPLAIN {sql}"));
        assert!(!plan.contains("RunAggregateExec"), "{sql}\n{plan}");
    }
}
