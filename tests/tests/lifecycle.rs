//! Retention and deletes: what readers see at once, what compaction removes, and what
//! survives reopening and crashes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sextant_engine::{
    Clock, Config, Delete, Durability, Engine, Error, Level, LogRecord, Point, Retention, RowMatch,
    ScanRequest,
};
use sextant_tests::{Cell, copy_dir, scan_rows};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_nanos(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Engine {
    Config::new(dir)
        .durability(Durability::Always)
        .background_flush(false)
        .background_compaction(false)
        .block_rows(8)
        .clock(clock.clone())
        .open()
        .unwrap()
}

fn clock_at(t: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock(AtomicI64::new(t)))
}

/// Ten days of hourly rows of two hosts, each day flushed into its own segment.
fn write_days(e: &Engine) {
    for day in 0..10 {
        let mut points = Vec::new();
        for h in 0..24 {
            for host in ["a", "b"] {
                points.push(
                    Point::metric("cpu")
                        .tag("host", host)
                        .field("v", (day * 24 + h) as f64)
                        .time(day * DAY + h * HOUR),
                );
            }
        }
        e.write_points(&points).unwrap();
        e.flush().unwrap();
    }
}

/// The times of the rows a scan of `table` returns, by host.
fn times(e: &Engine, table: &str, host: &str) -> Vec<i64> {
    let req = ScanRequest::new(table)
        .columns(["time"])
        .tag_eq("host", host);
    scan_rows(&e.snapshot(), &req)
        .unwrap()
        .into_iter()
        .map(|r| match r[0] {
            Cell::Int(t) => t,
            ref other => panic!("not a time: {other:?}"),
        })
        .collect()
}

fn segment_rows(e: &Engine, table: &str) -> u64 {
    e.snapshot().stats(table).unwrap().segment_rows()
}

#[test]
fn retention_hides_rows_older_than_the_reference_time_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(10 * DAY);
    let e = open(dir.path(), &clock);
    write_days(&e);
    e.set_retention("cpu", Retention::keep(Duration::from_secs(3 * 86400)))
        .unwrap();
    // The newest row is at 10 days - 1 hour; the clock at 10 days: the reference is the
    // newest row, so rows from 7 days - 1 hour on are kept.
    let kept = times(&e, "cpu", "a");
    assert_eq!(kept.first(), Some(&(7 * DAY - HOUR)));
    assert_eq!(kept.len(), 3 * 24 + 1);
    // A clock years ahead changes nothing: age is measured from the newest row.
    clock.0.store(1000 * DAY, Ordering::SeqCst);
    assert_eq!(times(&e, "cpu", "a"), kept);
    // A clock behind the data keeps more: nothing expires past clock - retention.
    clock.0.store(5 * DAY, Ordering::SeqCst);
    assert_eq!(times(&e, "cpu", "a").first(), Some(&(2 * DAY)));
    // It holds across reopen (the manifest keeps it), and compaction drops what expired.
    clock.0.store(10 * DAY, Ordering::SeqCst);
    e.close().unwrap();
    let e = open(dir.path(), &clock);
    assert_eq!(
        e.retention("cpu"),
        Some(Retention::keep(Duration::from_secs(3 * 86400)))
    );
    assert_eq!(times(&e, "cpu", "a"), kept);
    assert_eq!(e.snapshot().stats("cpu").unwrap().segments.len(), 10);
    e.compact("cpu").unwrap();
    // Days 0 to 5 are whole expired segments, dropped without rewriting; day 6 is cut.
    let stats = e.snapshot().stats("cpu").unwrap();
    assert_eq!(segment_rows(&e, "cpu"), 2 * kept.len() as u64);
    assert!(stats.segments.len() <= 4, "{}", stats.segments.len());
    assert_eq!(times(&e, "cpu", "a"), kept);
    // Removing the retention shows nothing again: expired rows are gone for good.
    e.set_retention("cpu", Retention::forever()).unwrap();
    assert_eq!(e.retention("cpu"), None);
    assert_eq!(times(&e, "cpu", "a"), kept);
}

#[test]
fn retention_by_level_and_tag_takes_the_first_matching_rule() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(100 * DAY);
    let e = open(dir.path(), &clock);
    let levels = [Level::Debug, Level::Info, Level::Warn, Level::Error];
    let mut records = Vec::new();
    for day in 0..=100 {
        for level in levels {
            for service in ["api", "batch"] {
                records.push(
                    LogRecord::new("logs", level, format!("day {day}"))
                        .tag("service", service)
                        .time(day * DAY)
                        .into(),
                );
            }
        }
    }
    e.write_points(&records).unwrap();
    let retention = Retention::keep(Duration::from_secs(30 * 86400))
        .rule(
            RowMatch::all().levels(Level::Trace, Level::Debug),
            Duration::from_secs(86400),
        )
        .rule(
            RowMatch::all().tag_eq("service", "batch"),
            Duration::from_secs(3 * 86400),
        )
        .rule(
            RowMatch::all().levels(Level::Warn, Level::Fatal),
            Duration::from_secs(90 * 86400),
        );
    // Levels need an event table; tags must be tags.
    let err = e
        .set_retention(
            "cpu_missing_is_fine",
            Retention::forever().rule(RowMatch::all().tag_eq("x", "y"), Duration::ZERO),
        )
        .map(|_| ());
    assert!(
        err.is_ok(),
        "a table not yet written takes any rules: {err:?}"
    );
    e.set_retention("logs", retention.clone()).unwrap();
    let check = |e: &Engine| {
        let req = ScanRequest::new("logs").columns(["time", "level", "service"]);
        let rows = scan_rows(&e.snapshot(), &req).unwrap();
        let count = |level: Level, service: &str| {
            rows.iter()
                .filter(|r| {
                    r[1] == Cell::Int(level.rank().into()) && r[2] == Cell::Str(service.into())
                })
                .count()
        };
        // debug: 1 day (days 99 and 100) whatever the service.
        assert_eq!(count(Level::Debug, "api"), 2);
        assert_eq!(count(Level::Debug, "batch"), 2);
        // batch: 3 days for info, warn and error (the batch rule comes first).
        assert_eq!(count(Level::Info, "batch"), 4);
        assert_eq!(count(Level::Error, "batch"), 4);
        // api: warn and error 90 days, info the default 30.
        assert_eq!(count(Level::Warn, "api"), 91);
        assert_eq!(count(Level::Error, "api"), 91);
        assert_eq!(count(Level::Info, "api"), 31);
    };
    check(&e);
    e.compact("logs").unwrap();
    check(&e);
    e.close().unwrap();
    let e = open(dir.path(), &clock);
    check(&e);
    let err = e
        .set_retention(
            "logs",
            Retention::forever().rule(RowMatch::all().tag_eq("level", "x"), Duration::ZERO),
        )
        .unwrap_err();
    assert!(err.to_string().contains("not a tag"), "{err}");
}

#[test]
fn retention_by_level_is_refused_on_a_metric_table() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    write_days(&e);
    let err = e
        .set_retention(
            "cpu",
            Retention::forever().rule(
                RowMatch::all().levels(Level::Trace, Level::Info),
                Duration::ZERO,
            ),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("metric table"), "{err}");
}

#[test]
fn deletes_hide_rows_at_once_keep_later_writes_and_survive_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    write_days(&e);
    // More rows of day 9, still in memory.
    let late: Vec<Point> = (0..24)
        .map(|h| {
            Point::metric("cpu")
                .tag("host", "a")
                .field("w", 1.0)
                .time(9 * DAY + h * HOUR + 1)
        })
        .collect();
    e.write_points(&late).unwrap();
    let all_a = times(&e, "cpu", "a").len();
    let all_b = times(&e, "cpu", "b").len();
    // Host a, days 2 to 9 (so rows in segments and in memory).
    e.delete(
        "cpu",
        &Delete::all()
            .time_range(2 * DAY, 10 * DAY)
            .tag_eq("host", "a"),
    )
    .unwrap();
    let want_a: Vec<i64> = (0..2 * 24).map(|h| h * HOUR).collect();
    assert_eq!(times(&e, "cpu", "a"), want_a);
    assert_eq!(times(&e, "cpu", "b").len(), all_b);
    assert!(all_a > want_a.len());
    // A row written after the delete, matching it, stays.
    e.write_points(&[Point::metric("cpu")
        .tag("host", "a")
        .field("v", 1.0)
        .time(5 * DAY)])
        .unwrap();
    let mut want_a2 = want_a.clone();
    want_a2.push(5 * DAY);
    assert_eq!(times(&e, "cpu", "a"), want_a2);
    // A crash now (the directory copied while open): WAL replay applies the delete to the
    // rows it brings back, not to the later write.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    let c = open(crashed.path(), &clock);
    assert_eq!(times(&c, "cpu", "a"), want_a2);
    c.close().unwrap();
    // A clean reopen, then compaction, which removes the rows from the segments.
    e.close().unwrap();
    let e = open(dir.path(), &clock);
    assert_eq!(times(&e, "cpu", "a"), want_a2);
    let before = segment_rows(&e, "cpu");
    e.compact("cpu").unwrap();
    assert_eq!(times(&e, "cpu", "a"), want_a2);
    assert_eq!(times(&e, "cpu", "b").len(), all_b);
    assert_eq!(segment_rows(&e, "cpu"), (want_a2.len() + all_b) as u64);
    assert!(segment_rows(&e, "cpu") < before);
    e.close().unwrap();
    let e = open(dir.path(), &clock);
    assert_eq!(times(&e, "cpu", "a"), want_a2);
}

#[test]
fn deleting_every_row_of_a_table_in_memory_leaves_it_empty_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    let points: Vec<Point> = (0..50)
        .map(|i| {
            Point::metric("m")
                .tag("k", "x")
                .field("v", i as f64)
                .time(i)
        })
        .collect();
    e.write_points(&points).unwrap();
    e.write_points(&[Point::metric("other").field("v", 1.0).time(1)])
        .unwrap();
    e.delete("m", &Delete::all()).unwrap();
    assert!(
        scan_rows(&e.snapshot(), &ScanRequest::new("m"))
            .unwrap()
            .is_empty()
    );
    e.flush().unwrap();
    assert_eq!(
        e.snapshot()
            .stats("m")
            .map(|s| s.segments.len())
            .unwrap_or(0),
        0
    );
    e.close().unwrap();
    // The table is still there, with its columns (the manifest keeps them), and empty:
    // a dashboard's query of it answers nothing rather than failing.
    let e = open(dir.path(), &clock);
    let schema = e
        .snapshot()
        .schema("m")
        .cloned()
        .expect("the table is kept");
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["time", "k", "v"]);
    let req = ScanRequest::new("m").columns(["time", "k", "v"]);
    assert!(scan_rows(&e.snapshot(), &req).unwrap().is_empty());
    assert_eq!(
        scan_rows(&e.snapshot(), &ScanRequest::new("other"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn deleting_the_only_row_of_an_untagged_write_leaves_a_scannable_table() {
    // A write without tags is one series with no key; deleting its rows left a chunk
    // whose series had no rows, and building its index panicked.
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    e.write_points(&[Point::metric("m").tag("k", "x").field("v", 1.0).time(0)])
        .unwrap();
    e.write_points(&[Point::metric("m").time(29)]).unwrap();
    e.delete("m", &Delete::all().time_range(0, 29)).unwrap();
    assert!(
        scan_rows(&e.snapshot(), &ScanRequest::new("m"))
            .unwrap()
            .is_empty()
    );
    e.flush().unwrap();
    assert!(
        scan_rows(&e.snapshot(), &ScanRequest::new("m"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn deletes_name_tags_and_tables_that_exist() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    write_days(&e);
    let err = e.delete("nope", &Delete::all()).unwrap_err();
    assert!(matches!(err, Error::NoSuchTable(_)), "{err}");
    let err = e
        .delete("cpu", &Delete::all().tag_eq("v", "1"))
        .unwrap_err();
    assert!(err.to_string().contains("not a tag"), "{err}");
    let err = e
        .delete("cpu", &Delete::all().tag_eq("region", "x"))
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchColumn { .. }), "{err}");
}

#[test]
fn scans_without_the_time_column_count_every_row_not_hidden() {
    // A scan that does not return time decodes it only to hide rows: the rows it returns
    // must be counted right either way.
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(0);
    let e = open(dir.path(), &clock);
    write_days(&e);
    let rows = |e: &Engine| {
        e.snapshot()
            .scan(&ScanRequest::new("cpu").columns(["v"]))
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum::<usize>()
    };
    assert_eq!(rows(&e), 480);
    e.delete(
        "cpu",
        &Delete::all().tag_eq("host", "a").time_range(0, DAY - 1),
    )
    .unwrap();
    assert_eq!(rows(&e), 480 - 24);
}

#[test]
fn lifecycle_changes_after_shutdown_are_refused_and_the_database_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::new(dir.path()).open().unwrap();
    let point = Point::metric("cpu")
        .tag("host", "a")
        .field("usage", 1.0)
        .time(0);
    e.write_points(std::slice::from_ref(&point)).unwrap();
    e.shutdown().unwrap();
    // Each would store a manifest naming a WAL file shutdown has removed.
    let keep = sextant_engine::Retention::keep(std::time::Duration::from_secs(60));
    assert!(e.set_retention("cpu", keep).is_err());
    assert!(e.delete("cpu", &sextant_engine::Delete::all()).is_err());
    assert!(e.compact("cpu").is_err());
    assert!(e.write_points(&[point]).is_err());
    drop(e);
    let e = Config::new(dir.path()).open().unwrap();
    assert_eq!(sextant_tests::scan_all(&e).unwrap().len(), 1);
}
