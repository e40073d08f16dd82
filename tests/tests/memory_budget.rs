//! One memory budget for rows in memory and queries' working memory: a query past the
//! room left fails naming the budget, memory queries hold pushes back on writes, and
//! Sextant's own operators (gap filling) and compactions are charged too.

use sextant_engine::{Config, Durability, Error, Point};
use sextant_query::{Database, QueryOptions};

const SECOND: i64 = 1_000_000_000;

fn points(hosts: usize, per_host: usize) -> Vec<Point> {
    let mut out = Vec::with_capacity(hosts * per_host);
    for h in 0..hosts {
        for i in 0..per_host {
            out.push(
                Point::metric("cpu")
                    .tag("host", format!("host-{h:04}"))
                    .field("usage", (h * 31 + i * 7) as f64)
                    .time(i as i64 * SECOND),
            );
        }
    }
    out
}

fn open(dir: &std::path::Path, budget: usize, limit: Option<usize>) -> Database {
    let config = Config::new(dir)
        .durability(Durability::Never)
        .background_flush(false)
        .background_compaction(false)
        .memory_budget(budget);
    let options = QueryOptions {
        memory_limit: limit,
        ..QueryOptions::default()
    };
    Database::open_with(config, options).unwrap()
}

/// A query whose sort must hold every row it is given.
const SORT_ALL: &str = "SELECT host, time, usage FROM cpu ORDER BY usage DESC, host, time";
/// A small sort: DataFusion's sort still reserves 10 MiB up front for merging.
const SORT_ONE_HOST: &str =
    "SELECT time, usage FROM cpu WHERE host = 'host-0001' ORDER BY usage DESC, time";

#[test]
fn a_query_past_the_room_rows_leave_fails_naming_the_budget_and_runs_once_they_are_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 20 << 20, None);
    // About 14 MiB of rows in memory: the sort's 10 MiB do not fit beside them.
    for chunk in points(200, 2000).chunks(20_000) {
        db.write_points(chunk).unwrap();
    }
    let held = db.engine().memory_used();
    assert!(held > 12 << 20, "rows in memory: {held}");
    let err = db.sql(SORT_ONE_HOST).unwrap_err().to_string();
    assert!(err.contains("memory budget of 20971520 bytes"), "{err}");
    assert_eq!(
        db.engine().memory_reserved(),
        0,
        "a failed query gives it all back"
    );
    // Flushed, the rows leave memory and the same query fits.
    db.flush().unwrap();
    let rows: usize = db
        .sql(SORT_ONE_HOST)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 2000);
    assert_eq!(
        db.engine().memory_reserved(),
        0,
        "a finished query gives it all back"
    );
}

#[test]
fn the_query_memory_limit_applies_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 1 << 30, Some(8 << 20));
    db.write_points(&points(200, 500)).unwrap();
    db.flush().unwrap();
    let err = db.sql(SORT_ALL).unwrap_err().to_string();
    assert!(err.contains("query memory limit of 8388608 bytes"), "{err}");
}

#[test]
fn memory_queries_hold_pushes_back_on_writes_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), 1 << 20, None);
    let e = db.engine();
    // A query holds most of the budget.
    e.try_reserve_memory(900 << 10).unwrap();
    // More than the budget leaves is refused, naming rows, queries and budget.
    let err = e.try_reserve_memory(200 << 10).unwrap_err();
    match &err {
        Error::MemoryBudget {
            reserved, budget, ..
        } => assert_eq!((*reserved, *budget), (900 << 10, 1 << 20)),
        other => panic!("expected MemoryBudget, got {other:?}"),
    }
    // A write that fits the budget but not beside the query: flushing frees the rows
    // but not the query's memory, so it is pushed back rather than taken.
    let write = points(100, 100);
    let err = db.write_points(&write).unwrap_err();
    match &err {
        sextant_query::Error::Engine(Error::Backpressure { queries, .. }) => {
            assert_eq!(*queries, 900 << 10, "{err}")
        }
        other => panic!("expected Backpressure, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("reserved by queries, compactions and log buffers"),
        "{err}"
    );
    e.release_memory(900 << 10);
    assert_eq!(e.memory_reserved(), 0);
    db.write_points(&write).unwrap();
}

#[test]
fn gap_filling_is_charged_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    // Two points a day apart per host, filled every second: 86,401 rows per host made
    // from two.
    let db = open(dir.path(), 1 << 30, Some(16 << 20));
    let mut rows = Vec::new();
    for h in 0..20 {
        for t in [0, 86_400 * SECOND] {
            rows.push(
                Point::metric("cpu")
                    .tag("host", format!("h{h:02}"))
                    .field("usage", 1.0)
                    .time(t),
            );
        }
    }
    db.write_points(&rows).unwrap();
    let sql = "SELECT date_bin_gapfill(INTERVAL '1 second', time) AS s, host, locf(avg(usage)) \
               FROM cpu WHERE time >= '1970-01-01T00:00:00Z' AND time <= '1970-01-02T00:00:00Z' \
               GROUP BY s, host";
    let err = db.sql(sql).unwrap_err().to_string();
    assert!(
        err.contains("GapFillExec") && err.contains("query memory limit"),
        "{err}"
    );
    // One host's day fits.
    let one = sql.replace("GROUP BY", "AND host = 'h00' GROUP BY");
    let filled: usize = db.sql(&one).unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(filled, 86_401);
}

/// Four segments of 200 hosts' rows, from second `from` on.
fn four_segments(db: &Database, from: i64) {
    for round in 0..4 {
        let batch: Vec<Point> = (0..200 * 500)
            .map(|i| {
                Point::metric("cpu")
                    .tag("host", format!("host-{:04}", i % 200))
                    .field("usage", i as f64)
                    .time((from + round * 500 + (i / 200) as i64) * SECOND)
            })
            .collect();
        db.write_points(&batch).unwrap();
        db.engine().flush().unwrap();
    }
}

#[test]
fn compaction_reserves_its_buffers_in_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 24 << 20;
    let db = open(dir.path(), budget, None);
    let e = db.engine();
    four_segments(&db, 0);
    assert_eq!(e.segments("cpu").unwrap().len(), 4);
    // Rows in memory leave less room than the merge's buffers (blocks of 16,384 rows of
    // two 8-byte columns, per input and for the output, about 1.5 MiB): they are flushed
    // to make room, as for a write.
    let filler: Vec<Point> = (0..1000)
        .map(|i| {
            Point::metric("filler")
                .tag("pad", format!("{i:0>64}"))
                .field("v", 1.0)
        })
        .collect();
    while e.memory_used() + (1 << 20) < budget {
        db.write_points(&filler).unwrap();
    }
    e.compact("cpu").unwrap();
    assert_eq!(e.segments("cpu").unwrap().len(), 1);
    assert!(
        e.memory_used() < 1 << 20,
        "rows flushed: {}",
        e.memory_used()
    );
    assert_eq!(e.memory_reserved(), 0, "a merge gives its memory back");

    // When queries hold the room, a requested merge fails naming the budget.
    four_segments(&db, 10_000);
    let held = budget - (1 << 20);
    e.try_reserve_memory(held).unwrap();
    let err = e.compact("cpu").unwrap_err();
    assert!(
        matches!(err, Error::MemoryBudget { needed, .. } if needed > 1 << 20),
        "{err}"
    );
    assert_eq!(e.memory_reserved(), held, "a refused merge holds nothing");
    assert_eq!(e.segments("cpu").unwrap().len(), 5, "nothing merged");
    e.release_memory(held);
    e.compact("cpu").unwrap();
    assert_eq!(e.segments("cpu").unwrap().len(), 1);
    assert_eq!(e.memory_reserved(), 0);
}
