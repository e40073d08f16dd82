//! SQL over Sextant tables: catalog, read-your-writes, levels, pushdown, errors, limits.

use std::time::Duration;

use sextant_engine::{Config, Level, LogRecord, Point};
use sextant_query::{Database, Error, QueryOptions};

mod common;
use common::text;

fn sample(db: &Database) {
    let mut points = Vec::new();
    for (i, host) in ["a", "b", "c"].iter().enumerate() {
        for m in 0..10i64 {
            points.push(
                Point::metric("cpu")
                    .tag("host", *host)
                    .field("usage", (i as i64 * 10 + m) as f64)
                    .time(m * 60_000_000_000),
            );
        }
    }
    for (t, level, msg) in [
        (1, Level::Info, "started"),
        (2, Level::Warn, "slow disk"),
        (3, Level::Error, "disk full"),
        (4, Level::Debug, "retry"),
        (5, Level::Fatal, "giving up"),
    ] {
        points.push(
            LogRecord::new("logs", level, msg)
                .tag("service", "api")
                .time(t)
                .into(),
        );
    }
    db.write_points(&points).unwrap();
}

#[test]
fn catalog_lists_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let tables = text(&db.sql("SHOW TABLES").unwrap());
    assert!(
        tables.iter().any(|r| r.contains(&"cpu".to_string())),
        "{tables:?}"
    );
    assert!(
        tables.iter().any(|r| r.contains(&"logs".to_string())),
        "{tables:?}"
    );
    let cols = text(&db.sql("DESCRIBE cpu").unwrap());
    let names: Vec<&str> = cols.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["time", "host", "usage"]);
    assert!(cols[0][1].contains("Timestamp(ns"), "{cols:?}");
    let info = text(
        &db.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'logs' ORDER BY ordinal_position",
        )
        .unwrap(),
    );
    assert_eq!(
        info,
        vec![
            vec!["time"],
            vec!["level"],
            vec!["service"],
            vec!["message"]
        ]
    );
}

#[test]
fn rows_are_visible_to_the_next_query_from_memory_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let count = |db: &Database| text(&db.sql("SELECT count(*) FROM cpu").unwrap())[0][0].clone();
    assert_eq!(count(&db), "30");
    db.flush().unwrap();
    db.write_points(&[Point::metric("cpu")
        .tag("host", "d")
        .field("usage", 1.0)
        .time(0)])
        .unwrap();
    assert_eq!(count(&db), "31");
    // A new column appears in the next query.
    db.write_points(&[Point::metric("cpu")
        .tag("host", "d")
        .field("temp", 40.0)
        .time(1)])
        .unwrap();
    let rows = text(
        &db.sql("SELECT temp FROM cpu WHERE temp IS NOT NULL")
            .unwrap(),
    );
    assert_eq!(rows, vec![vec!["40.0"]]);
}

#[test]
fn levels_compare_by_severity_ignoring_case() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let q = |sql: &str| text(&db.sql(sql).unwrap());
    assert_eq!(
        q("SELECT message FROM logs WHERE level >= 'warn' ORDER BY time"),
        vec![vec!["slow disk"], vec!["disk full"], vec!["giving up"]]
    );
    assert_eq!(
        q("SELECT message FROM logs WHERE level < 'INFO'"),
        vec![vec!["retry"]]
    );
    assert_eq!(
        q("SELECT message FROM logs WHERE level IN ('error', 'Fatal') ORDER BY time"),
        vec![vec!["disk full"], vec!["giving up"]]
    );
    assert_eq!(
        q("SELECT level FROM logs WHERE message = 'disk full'"),
        vec![vec!["error"]]
    );
    let err = db
        .sql("SELECT * FROM logs WHERE level > 'loud'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"loud\" is not a log level"), "{err}");
}

/// Logs of three services whose alphabetical and severity orders disagree.
fn services(db: &Database) {
    let mut points = Vec::new();
    for (t, service, level, msg) in [
        (1, "api", Level::Info, "started"),
        (2, "api", Level::Warn, "slow disk"),
        (3, "api", Level::Error, "disk full"),
        (4, "db", Level::Debug, "retry"),
        (5, "db", Level::Trace, "poll"),
        (6, "web", Level::Fatal, "giving up"),
        (7, "web", Level::Info, "hello"),
        (8, "api", Level::Debug, "cache miss"),
        (9, "api", Level::Debug, "cache hit"),
    ] {
        points.push(
            LogRecord::new("logs", level, msg)
                .tag("service", service)
                .time(t)
                .into(),
        );
    }
    db.write_points(&points).unwrap();
}

#[test]
fn min_and_max_of_levels_go_by_severity() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    services(&db);
    let q = |sql: &str| text(&db.sql(sql).unwrap());
    assert_eq!(
        q("SELECT service, min(level), max(level) FROM logs GROUP BY service ORDER BY service"),
        vec![
            vec!["api", "debug", "error"],
            vec!["db", "trace", "debug"],
            vec!["web", "info", "fatal"]
        ]
    );
    assert_eq!(
        q("SELECT min(level) AS lo, max(level) AS hi FROM logs"),
        vec![vec!["trace", "fatal"]]
    );
    // The results are levels still: they compare and sort by severity.
    assert_eq!(
        q(
            "SELECT service FROM logs GROUP BY service HAVING max(level) >= 'error' ORDER BY service"
        ),
        vec![vec!["api"], vec!["web"]]
    );
    assert_eq!(
        q("SELECT service, max(level) AS worst FROM logs GROUP BY service ORDER BY worst DESC"),
        vec![
            vec!["web", "fatal"],
            vec!["api", "error"],
            vec!["db", "debug"]
        ]
    );
    db.flush().unwrap();
    assert_eq!(
        q("SELECT max(level) FROM logs WHERE service = 'db'"),
        vec![vec!["debug"]]
    );
}

#[test]
fn window_and_aggregate_order_by_level_go_by_severity() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    services(&db);
    let q = |sql: &str| text(&db.sql(sql).unwrap());
    assert_eq!(
        q(
            "SELECT message, row_number() OVER (ORDER BY level DESC, time) AS n FROM logs ORDER BY n"
        ),
        vec![
            vec!["giving up", "1"],
            vec!["disk full", "2"],
            vec!["slow disk", "3"],
            vec!["started", "4"],
            vec!["hello", "5"],
            vec!["retry", "6"],
            vec!["cache miss", "7"],
            vec!["cache hit", "8"],
            vec!["poll", "9"]
        ]
    );
    // Peers are rows of the same level.
    assert_eq!(
        q(
            "SELECT message, rank() OVER (ORDER BY level) FROM logs WHERE service = 'api' ORDER BY time"
        ),
        vec![
            vec!["started", "3"],
            vec!["slow disk", "4"],
            vec!["disk full", "5"],
            vec!["cache miss", "1"],
            vec!["cache hit", "1"]
        ]
    );
    // A sliding frame: the error leaves the window at the last row.
    assert_eq!(
        q(
            "SELECT message, max(level) OVER (PARTITION BY service ORDER BY time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM logs WHERE service = 'api' ORDER BY time"
        ),
        vec![
            vec!["started", "info"],
            vec!["slow disk", "warn"],
            vec!["disk full", "error"],
            vec!["cache miss", "error"],
            vec!["cache hit", "debug"]
        ]
    );
    assert_eq!(
        q(
            "SELECT array_agg(message ORDER BY level DESC) FROM logs WHERE service = 'web' OR service = 'db'"
        ),
        vec![vec!["[giving up, hello, retry, poll]"]]
    );
}

#[test]
fn time_and_tag_filters_are_pushed_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    db.flush().unwrap();
    let sql = "SELECT host, usage FROM cpu WHERE host IN ('a', 'c') AND time >= '1970-01-01T00:02:00Z' AND time < '1970-01-01T00:04:00Z' ORDER BY host, usage";
    assert_eq!(
        text(&db.sql(sql).unwrap()),
        vec![
            vec!["a", "2.0"],
            vec!["a", "3.0"],
            vec!["c", "22.0"],
            vec!["c", "23.0"]
        ]
    );
    let plan = text(&db.sql(&format!("EXPLAIN {sql}")).unwrap());
    let physical = plan
        .iter()
        .map(|r| r.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        physical.contains("SextantScanExec: table=cpu"),
        "{physical}"
    );
    assert!(physical.contains("host IN (a, c)"), "{physical}");
    assert!(
        physical.contains("time=[120000000000, 239999999999]"),
        "{physical}"
    );
    assert!(
        !physical.contains("FilterExec"),
        "pushed filters are exact: {physical}"
    );
}

#[test]
fn explain_analyze_shows_what_the_scan_pruned_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    db.flush().unwrap();
    let rows = text(
        &db.sql("EXPLAIN ANALYZE SELECT max(usage) FROM cpu WHERE host = 'b'")
            .unwrap(),
    );
    let out = rows
        .iter()
        .map(|r| r.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    for metric in [
        "segments_total",
        "segments_pruned",
        "blocks_read",
        "blocks_pruned",
        "values_decoded",
    ] {
        assert!(out.contains(metric), "{metric} missing from {out}");
    }
}

#[test]
fn errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let err = db.sql("SELECT * FROM nope").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    let err = db.sql("SELECT nope FROM cpu").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    let err = db.sql("SELEC 1").unwrap_err();
    assert!(matches!(err, Error::Query(_)), "{err}");
}

#[test]
fn limit_stops_the_scan_early() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    sample(&db);
    let rows = text(&db.sql("SELECT usage FROM cpu LIMIT 4").unwrap());
    assert_eq!(rows.len(), 4);
}

#[test]
fn a_query_over_its_timeout_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let options = QueryOptions {
        timeout: Some(Duration::from_millis(1)),
        ..QueryOptions::default()
    };
    let db = Database::open_with(Config::new(dir.path()), options).unwrap();
    sample(&db);
    // A cross join large enough to outlast the timeout.
    let err = db
        .sql("SELECT count(*) FROM cpu a, cpu b, cpu c, cpu d, cpu e WHERE a.usage + b.usage + c.usage + d.usage + e.usage < 0")
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.to_string().contains("timeout of 1ms"), "{err}");
}

#[test]
fn a_query_over_its_memory_limit_fails_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let options = QueryOptions {
        memory_limit: Some(64 * 1024),
        ..QueryOptions::default()
    };
    let db = Database::open_with(Config::new(dir.path()), options).unwrap();
    let points: Vec<Point> = (0..20_000i64)
        .map(|i| {
            Point::metric("m")
                .tag("k", format!("key-{i}"))
                .field("v", i as f64)
                .time(i)
        })
        .collect();
    db.write_points(&points).unwrap();
    let err = db
        .sql("SELECT k, v FROM m ORDER BY v DESC")
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("resources exhausted") || err.contains("memory"),
        "{err}"
    );
}

#[test]
fn series_without_a_tag_read_it_as_null_beside_series_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut points = Vec::new();
    for t in 0..4i64 {
        points.push(
            Point::metric("cpu")
                .tag("host", "a")
                .field("usage", 1.0)
                .time(t),
        );
        points.push(Point::metric("cpu").field("usage", 2.0).time(t));
        points.push(
            Point::metric("cpu")
                .tag("host", "b")
                .tag("dc", "x")
                .field("usage", 3.0)
                .time(t),
        );
    }
    db.write_points(&points).unwrap();
    let sql = "SELECT host, dc, count(*) AS n, sum(usage) AS s FROM cpu \
               GROUP BY host, dc ORDER BY host NULLS FIRST, dc";
    assert_eq!(
        text(&db.sql(sql).unwrap()),
        [
            ["", "", "4", "8.0"],
            ["a", "", "4", "4.0"],
            ["b", "x", "4", "12.0"]
        ]
    );
    let nulls = "SELECT count(*) FROM cpu WHERE host IS NULL OR dc IS NULL";
    assert_eq!(text(&db.sql(nulls).unwrap()), [["8"]]);
    db.flush().unwrap();
    assert_eq!(text(&db.sql(nulls).unwrap()), [["8"]]);
    assert_eq!(
        text(&db.sql(sql).unwrap()),
        [
            ["", "", "4", "8.0"],
            ["a", "", "4", "4.0"],
            ["b", "x", "4", "12.0"]
        ]
    );
}

/// A series lacking a tag after series that have it (`{a=1, host=x}` sorts before
/// `{b=1}`): the tag column's nulls come after its values, in memory and from segments.
#[test]
fn a_series_without_a_tag_after_series_with_it_reads_null() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let mut points = Vec::new();
    for t in 0..3i64 {
        points.push(
            Point::metric("m")
                .tag("a", "1")
                .tag("host", "x")
                .field("v", 1.0)
                .time(t),
        );
        points.push(Point::metric("m").tag("b", "1").field("v", 2.0).time(t));
        points.push(
            Point::metric("m")
                .tag("c", "1")
                .tag("host", "y")
                .field("v", 3.0)
                .time(t),
        );
    }
    db.write_points(&points).unwrap();
    let sql = "SELECT host, count(*), sum(v) FROM m GROUP BY host ORDER BY host NULLS FIRST";
    let want = [["", "3", "6.0"], ["x", "3", "3.0"], ["y", "3", "9.0"]];
    assert_eq!(text(&db.sql(sql).unwrap()), want);
    let rows = "SELECT host, v FROM m WHERE time = to_timestamp_nanos(0) ORDER BY v";
    let want_rows = [["x", "1.0"], ["", "2.0"], ["y", "3.0"]];
    assert_eq!(text(&db.sql(rows).unwrap()), want_rows);
    db.flush().unwrap();
    assert_eq!(text(&db.sql(sql).unwrap()), want);
    assert_eq!(text(&db.sql(rows).unwrap()), want_rows);
}

/// A scan runs as one partition only when it decodes few rows: a short window over a
/// block that many series share decodes it whole, and is split.
#[test]
fn scans_split_by_the_rows_they_decode() {
    let dir = tempfile::tempdir().unwrap();
    let options = QueryOptions {
        target_partitions: 2,
        single_partition_rows: 1_000,
        ..QueryOptions::default()
    };
    let db = Database::open_with(Config::new(dir.path()), options).unwrap();
    // Ten hosts, a row a second for 200 seconds, in one segment.
    let mut points = Vec::new();
    for h in 0..10 {
        for s in 0..200i64 {
            points.push(
                Point::metric("cpu")
                    .tag("host", format!("h{h}"))
                    .field("usage", s as f64)
                    .time(s * 1_000_000_000),
            );
        }
    }
    db.write_points(&points).unwrap();
    db.flush().unwrap();
    let partitions = |sql: &str| {
        let plan = common::plan_text(&db, &format!("EXPLAIN {sql}"));
        let scan = plan
            .lines()
            .find(|l| l.contains("SextantScanExec"))
            .unwrap_or_else(|| panic!("{plan}"))
            .to_owned();
        scan.split("partitions=").nth(1).unwrap()[..1].to_owned()
    };
    // Ten seconds of every host return 100 rows but decode the 2,000 of their block (of
    // the last host, the block's last series, only its first ten).
    let window =
        "SELECT host, max(usage) FROM cpu WHERE time < '1970-01-01T00:00:10Z' GROUP BY host";
    assert_eq!(partitions(window), "2");
    // All of one host decodes its 200 rows.
    let one = "SELECT max(usage) FROM cpu WHERE host = 'h0'";
    assert_eq!(partitions(one), "1");
}
