//! The reference workloads' queries (WORKLOADS.md §1 TSBS devops, §2 application logs), run
//! as SQL through `sextant-query` over generated data, give the answers computed from the
//! generated rows in plain Rust.
//!
//! Each data set is generated once per test binary with a fixed seed and written through
//! the columnar API: the older part flushed to segments (two of them, with small blocks),
//! the newest part left in memory, so that query windows cross both paths. Each test draws
//! its query's parameters from a seed of its own, runs the SQL, computes the answer by
//! iterating the rows (filters, buckets and aggregates in `BTreeMap`s, no SQL), and compares
//! row by row: integral maxima and counts exactly, averages to a relative 1e-9, in the
//! query's order where it has one and as sorted multisets where it has none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use sextant_bench::workload::cpu::{self, CpuConfig, CpuGenerator, CpuHost};
use sextant_bench::workload::logs::{self, Incident, Level, LogsConfig, LogsGenerator};
use sextant_engine::{Config, Durability, TableKind};
use sextant_query::{Database, QueryOptions};
use sextant_tests::tsbs::{
    CPU_FIELDS, DEVOPS, DevopsKind, DevopsQuery, HOUR, LASTPOINT_ROW_NUMBER, MINUTE, Window,
    devops_index,
};
use sextant_tests::{Cell, Rng, batch_rows, log_queries};

/// The seed of the data and of the query parameters.
const SEED: u64 = 2016;
/// Hosts of the cpu data set.
const SCALE: u32 = 20;
/// Hours of cpu data: long enough for 12-hour windows to move.
const CPU_HOURS: i64 = 16;
/// Log events per second.
const LOG_RATE: u32 = 5;
/// Hours of log data, around an incident.
const LOG_HOURS: i64 = 4;
/// Relative tolerance for averages, which DataFusion sums in another order.
const AVG_TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// Fixtures.

/// Opens a database in a fresh directory under the target's temporary directory, with small
/// blocks and flushes only when asked.
fn open_database(prefix: &str) -> (tempfile::TempDir, Database) {
    // The fixtures live in statics, which are never dropped, so the directory outlives the
    // run; it is under `target/tmp`, and the next run removes it.
    remove_stale_fixtures(prefix);
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory");
    let config = Config::new(dir.path())
        .durability(Durability::Never)
        .background_flush(false)
        .block_rows(1024);
    // Two partitions, and every scan split across them however small: the answers of
    // series divided between partitions are what these tests check.
    let options = QueryOptions {
        target_partitions: 2,
        single_partition_rows: 0,
        ..QueryOptions::default()
    };
    let db = Database::open_with(config, options).expect("open database");
    (dir, db)
}

/// Removes the fixture directories earlier runs left behind: those older than an hour, so
/// never one that a run going on at the same time uses.
fn remove_stale_fixtures(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(prefix)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `batches` to `table`, flushing after the batches that cross 40 % and 70 % of
/// `total` rows, so the rest stays in memory; checks that both paths hold rows.
fn write_split(
    db: &Database,
    table: &str,
    kind: TableKind,
    total: usize,
    batches: impl Iterator<Item = RecordBatch>,
) {
    let mut written = 0;
    let mut flush_at = vec![total * 7 / 10, total * 4 / 10];
    for batch in batches {
        db.write_arrow(table, kind, &batch).expect("write_arrow");
        written += batch.num_rows();
        if flush_at.last().is_some_and(|&at| written >= at) {
            flush_at.pop();
            db.flush().expect("flush");
        }
    }
    assert_eq!(written, total);
    let stats = db.engine().snapshot().stats(table).expect("stats");
    assert_eq!(stats.segments.len(), 2, "{table}: two flushed segments");
    assert!(stats.memory_rows > 0, "{table}: rows left in memory");
    assert_eq!(
        stats.segment_rows() as usize + stats.memory_rows,
        total,
        "{table}: every row written once"
    );
}

/// One generated cpu row.
#[derive(Debug, Clone)]
struct CpuRow {
    time: i64,
    host: u32,
    fields: [f64; 10],
}

/// The cpu data set: the database and the rows written to it.
struct CpuData {
    _dir: tempfile::TempDir,
    db: Database,
    hosts: Vec<CpuHost>,
    rows: Vec<CpuRow>,
    range: Window,
}

static CPU: LazyLock<CpuData> = LazyLock::new(|| {
    let config = CpuConfig::new(SCALE, CPU_HOURS as f64 / 24.0).with_seed(SEED);
    let range = Window::new(config.start_ns, config.end_ns);
    let total = config.rows() as usize;
    let generator = CpuGenerator::new(config).expect("cpu generator");
    let hosts = generator.hosts().to_vec();
    let (dir, db) = open_database("tsbs_queries_cpu");
    let mut rows = Vec::with_capacity(total);
    let batches = generator.batches(4000).map(|batch| {
        for i in 0..batch.len() {
            rows.push(CpuRow {
                time: batch.time[i],
                host: batch.host[i],
                fields: std::array::from_fn(|f| batch.fields[f][i]),
            });
        }
        batch.to_record_batch(&hosts).expect("record batch")
    });
    write_split(&db, cpu::TABLE, TableKind::Metric, total, batches);
    CpuData {
        _dir: dir,
        db,
        hosts,
        rows,
        range,
    }
});

/// One generated log event.
#[derive(Debug, Clone)]
struct LogRow {
    time: i64,
    service: String,
    host: String,
    level: Level,
    message: String,
    trace_id: String,
}

/// The logs data set: the database, the rows written to it and an incident inside them.
struct LogData {
    _dir: tempfile::TempDir,
    db: Database,
    services: Vec<String>,
    rows: Vec<LogRow>,
    range: Window,
    incident: Incident,
}

static LOGS: LazyLock<LogData> = LazyLock::new(|| {
    // Hours around the first incident of the day that leaves room on both sides.
    let day = LogsConfig::new(LOG_RATE, 1.0).with_seed(SEED);
    let incident = LogsGenerator::new(day.clone())
        .expect("logs generator")
        .incidents()
        .into_iter()
        .find(|i| i.start_ns >= day.start_ns + 2 * HOUR && i.end_ns <= day.end_ns - 3 * HOUR)
        .expect("an incident in the middle of the day");
    let start = incident.start_ns - incident.start_ns.rem_euclid(HOUR) - HOUR;
    let config = LogsConfig {
        start_ns: start,
        end_ns: start + LOG_HOURS * HOUR,
        ..day
    };
    let range = Window::new(config.start_ns, config.end_ns);
    let total = config.rows() as usize;
    let generator = LogsGenerator::new(config).expect("logs generator");
    let tags = generator.tags().clone();
    let (dir, db) = open_database("tsbs_queries_logs");
    let mut rows = Vec::with_capacity(total);
    let batches = generator.batches(2000).map(|batch| {
        for i in 0..batch.len() {
            let host = batch.host[i] as usize;
            rows.push(LogRow {
                time: batch.time[i],
                service: tags.services[batch.service[i] as usize].clone(),
                host: tags.hosts[host].name.clone(),
                level: batch.level[i],
                message: batch.message(i).to_owned(),
                trace_id: logs::trace_id_hex(&batch.trace_id[i]),
            });
        }
        batch.to_record_batch(&tags).expect("record batch")
    });
    write_split(&db, logs::TABLE, TableKind::Event, total, batches);
    LogData {
        _dir: dir,
        db,
        services: tags.services,
        rows,
        range,
        incident,
    }
});

// ---------------------------------------------------------------------------------------
// Running and comparing.

/// The expected answer of a query.
#[derive(Debug)]
struct Expected {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
    /// Whether the query fixes the order of its rows (else both sides are sorted).
    ordered: bool,
    /// Relative tolerance for floats; 0 compares them exactly.
    tolerance: f64,
}

fn names(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| (*c).to_owned()).collect()
}

/// The column names and rows of an answer, with dictionary columns (tags, levels) read
/// as their strings.
fn rows_of(batches: &[RecordBatch]) -> (Vec<String>, Vec<Vec<Cell>>) {
    let batches: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Dictionary(_, _) => {
                        arrow_cast::cast(c, &DataType::Utf8).expect("cast dictionary")
                    }
                    _ => c.clone(),
                })
                .collect::<Vec<_>>();
            RecordBatch::try_from_iter(b.schema().fields().iter().map(|f| f.name()).zip(columns))
                .expect("batch")
        })
        .collect();
    let columns = match batches.first() {
        Some(b) => b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        None => Vec::new(),
    };
    (columns, batch_rows(&batches))
}

fn cells_match(got: &Cell, want: &Cell, tolerance: f64) -> bool {
    match (got, want) {
        (Cell::Float(g), Cell::Float(w)) if tolerance > 0.0 => {
            (g - w).abs() <= tolerance * w.abs().max(1.0)
        }
        (Cell::Float(g), Cell::Float(w)) => g.to_bits() == w.to_bits(),
        _ => got == want,
    }
}

fn sort_rows(rows: &mut [Vec<Cell>]) {
    rows.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in results"));
}

/// Runs `sql` twice and checks each answer against `expected`, with a message that shows
/// the SQL and the first differing row. The second run is of the plan kept by the first
/// (see `sextant_query::Database::sql`).
fn check(name: &str, db: &Database, sql: &str, expected: Expected) {
    let run = || db.sql(sql);
    check_runs(
        name,
        sql,
        expected,
        &[("first run", &run), ("run again", &run)],
    );
}

/// An attempt at a query's answer: what it is (shown when it fails) and how it is run.
type Attempt<'a> = (
    &'a str,
    &'a dyn Fn() -> sextant_query::Result<Vec<RecordBatch>>,
);

/// Checks the answer of every attempt at the query `sql` against `expected`.
fn check_runs(name: &str, sql: &str, mut expected: Expected, attempts: &[Attempt<'_>]) {
    assert!(
        !expected.rows.is_empty(),
        "{name}: the drawn parameters select no rows, so the test would prove little; \
         change the seed\n  sql: {sql}"
    );
    if !expected.ordered {
        sort_rows(&mut expected.rows);
    }
    for (attempt, run) in attempts {
        let batches = run().unwrap_or_else(|e| panic!("{name} ({attempt}): {e}\n  sql: {sql}"));
        let (columns, mut got) = rows_of(&batches);
        if !expected.ordered {
            sort_rows(&mut got);
        }
        if !got.is_empty() {
            assert_eq!(
                columns, expected.columns,
                "{name} ({attempt}): columns\n  sql: {sql}"
            );
        }
        let row_differs = |(g, w): (&Vec<Cell>, &Vec<Cell>)| {
            g.len() != w.len()
                || g.iter()
                    .zip(w)
                    .any(|(g, w)| !cells_match(g, w, expected.tolerance))
        };
        let first = got.iter().zip(&expected.rows).position(row_differs);
        if got.len() != expected.rows.len() || first.is_some() {
            let first = first.unwrap_or(got.len().min(expected.rows.len()));
            panic!(
                "{name} ({attempt}): wrong answer\n  sql: {sql}\n  rows: got {}, expected {}\n  \
                 first difference at row {first}:\n    got      {:?}\n    expected {:?}",
                got.len(),
                expected.rows.len(),
                got.get(first),
                expected.rows.get(first),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// TSBS devops: the reference answers.

/// The start of the `width`-wide bucket holding `t` (date_bin from the Unix epoch).
fn bucket(t: i64, width: i64) -> i64 {
    t - t.rem_euclid(width)
}

/// The answer of a devops query, computed from the generated rows.
fn devops_expected(query: &DevopsQuery, data: &CpuData) -> Expected {
    let hosts: BTreeSet<u32> = query.hosts.iter().copied().collect();
    let window = query.window;
    let in_hosts = |r: &CpuRow| hosts.contains(&r.host);
    let hostname = |r: &CpuRow| data.hosts[r.host as usize].hostname.clone();
    match query.kind {
        DevopsKind::SingleGroupby { .. } | DevopsKind::CpuMaxAll { .. } => {
            let (width, label, metrics) = match query.kind {
                DevopsKind::SingleGroupby { metrics, .. } => (MINUTE, "minute", metrics),
                _ => (HOUR, "hour", CPU_FIELDS.len()),
            };
            let mut max: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for r in data
                .rows
                .iter()
                .filter(|r| in_hosts(r) && window.contains(r.time))
            {
                let m = max
                    .entry(bucket(r.time, width))
                    .or_insert_with(|| vec![f64::NEG_INFINITY; metrics]);
                for (m, v) in m.iter_mut().zip(&r.fields) {
                    *m = m.max(*v);
                }
            }
            let mut columns = vec![label.to_owned()];
            columns.extend(CPU_FIELDS[..metrics].iter().map(|f| format!("max_{f}")));
            Expected {
                columns,
                rows: max
                    .into_iter()
                    .map(|(t, m)| {
                        let mut row = vec![Cell::Int(t)];
                        row.extend(m.into_iter().map(Cell::Float));
                        row
                    })
                    .collect(),
                ordered: true,
                tolerance: 0.0,
            }
        }
        DevopsKind::DoubleGroupby { metrics } => {
            let mut sums: BTreeMap<(i64, String), (u64, Vec<f64>)> = BTreeMap::new();
            for r in data.rows.iter().filter(|r| window.contains(r.time)) {
                let (n, s) = sums
                    .entry((bucket(r.time, HOUR), hostname(r)))
                    .or_insert_with(|| (0, vec![0.0; metrics]));
                *n += 1;
                for (s, v) in s.iter_mut().zip(&r.fields) {
                    *s += v;
                }
            }
            let mut columns = names(&["hour", "hostname"]);
            columns.extend(CPU_FIELDS[..metrics].iter().map(|f| format!("mean_{f}")));
            Expected {
                columns,
                rows: sums
                    .into_iter()
                    .map(|((t, host), (n, s))| {
                        let mut row = vec![Cell::Int(t), Cell::Str(host)];
                        row.extend(s.into_iter().map(|s| Cell::Float(s / n as f64)));
                        row
                    })
                    .collect(),
                ordered: true,
                tolerance: AVG_TOLERANCE,
            }
        }
        DevopsKind::HighCpu { hosts: some } => Expected {
            columns: cpu_columns(),
            rows: data
                .rows
                .iter()
                .filter(|r| r.fields[0] > 90.0 && window.contains(r.time))
                .filter(|r| some.is_none() || in_hosts(r))
                .map(|r| cpu_row(r, &data.hosts))
                .collect(),
            ordered: false,
            tolerance: 0.0,
        },
        DevopsKind::Lastpoint => {
            let mut last: BTreeMap<String, &CpuRow> = BTreeMap::new();
            for r in &data.rows {
                let e = last.entry(hostname(r)).or_insert(r);
                if r.time > e.time {
                    *e = r;
                }
            }
            Expected {
                columns: cpu_columns(),
                rows: last.values().map(|r| cpu_row(r, &data.hosts)).collect(),
                ordered: true,
                tolerance: 0.0,
            }
        }
        DevopsKind::GroupbyOrderbyLimit => {
            let mut max: BTreeMap<i64, f64> = BTreeMap::new();
            for r in data.rows.iter().filter(|r| r.time < window.end_ns) {
                let m = max
                    .entry(bucket(r.time, MINUTE))
                    .or_insert(f64::NEG_INFINITY);
                *m = m.max(r.fields[0]);
            }
            Expected {
                columns: names(&["minute", "max(cpu.usage_user)"]),
                rows: max
                    .into_iter()
                    .rev()
                    .take(5)
                    .map(|(t, m)| vec![Cell::Int(t), Cell::Float(m)])
                    .collect(),
                ordered: true,
                tolerance: 0.0,
            }
        }
    }
}

/// The columns of `SELECT * FROM cpu`: time, the tags, the fields.
fn cpu_columns() -> Vec<String> {
    let mut columns = vec!["time".to_owned()];
    columns.extend(cpu::TAGS.iter().map(|t| (*t).to_owned()));
    columns.extend(CPU_FIELDS.iter().map(|f| (*f).to_owned()));
    columns
}

/// A whole cpu row as cells, in the order of [`cpu_columns`].
fn cpu_row(r: &CpuRow, hosts: &[CpuHost]) -> Vec<Cell> {
    let mut row = vec![Cell::Int(r.time)];
    row.extend(
        hosts[r.host as usize]
            .tags()
            .iter()
            .map(|t| Cell::Str((*t).to_owned())),
    );
    row.extend(r.fields.iter().map(|&v| Cell::Float(v)));
    row
}

/// Draws the parameters of the devops query `name` from its own seed, runs it and compares.
fn check_devops(name: &str) {
    let data = &*CPU;
    let index = devops_index(name).unwrap_or_else(|| panic!("{name} is not a TSBS devops query"));
    let mut rng = Rng::new(SEED * 100 + index as u64);
    let query = DevopsQuery::draw(DEVOPS[index].1, &mut rng, SCALE, data.range);
    let expected = devops_expected(&query, data);
    let sql = query.sql();
    // The same query as a prepared statement, its hosts and times as parameters.
    let (statement, values) = query.prepared();
    let prepared = data.db.prepare(&statement).unwrap_or_else(|e| {
        panic!("{name}: the statement does not prepare: {e}\n  sql: {statement}")
    });
    let run = || data.db.sql(&sql);
    let execute = || data.db.execute(&prepared, &values);
    // A failure of the prepared statement names it and its values.
    let as_prepared = format!("prepared: {statement} with {values:?}");
    let again = format!("{as_prepared}, run again");
    check_runs(
        name,
        &sql,
        expected,
        &[
            ("first run", &run),
            ("run again", &run),
            (&as_prepared, &execute),
            (&again, &execute),
        ],
    );
    // Run again with another draw's values, it answers as that draw's SQL text does.
    let other = DevopsQuery::draw(DEVOPS[index].1, &mut rng, SCALE, data.range);
    let (_, other_values) = other.prepared();
    let rows = |batches: sextant_query::Result<Vec<RecordBatch>>, what: &str| {
        let batches = batches.unwrap_or_else(|e| panic!("{name} ({what}): {e}"));
        let (columns, mut rows) = rows_of(&batches);
        if !other.is_ordered() {
            sort_rows(&mut rows);
        }
        (columns, rows)
    };
    assert_eq!(
        rows(
            data.db.execute(&prepared, &other_values),
            "prepared, other values"
        ),
        rows(data.db.sql(&other.sql()), "other values as SQL text"),
        "{name}: the prepared statement with other values {other_values:?}\n  sql: {statement}"
    );
}

#[test]
fn single_groupby_1_1_1_max_per_minute_matches_reference() {
    check_devops("single-groupby-1-1-1");
}

#[test]
fn single_groupby_1_1_12_max_per_minute_matches_reference() {
    check_devops("single-groupby-1-1-12");
}

#[test]
fn single_groupby_1_8_1_max_per_minute_matches_reference() {
    check_devops("single-groupby-1-8-1");
}

#[test]
fn single_groupby_5_1_1_max_per_minute_matches_reference() {
    check_devops("single-groupby-5-1-1");
}

#[test]
fn single_groupby_5_1_12_max_per_minute_matches_reference() {
    check_devops("single-groupby-5-1-12");
}

#[test]
fn single_groupby_5_8_1_max_per_minute_matches_reference() {
    check_devops("single-groupby-5-8-1");
}

#[test]
fn cpu_max_all_1_max_per_hour_matches_reference() {
    check_devops("cpu-max-all-1");
}

#[test]
fn cpu_max_all_8_max_per_hour_matches_reference() {
    check_devops("cpu-max-all-8");
}

#[test]
fn double_groupby_1_avg_per_hour_and_host_matches_reference() {
    check_devops("double-groupby-1");
}

#[test]
fn double_groupby_5_avg_per_hour_and_host_matches_reference() {
    check_devops("double-groupby-5");
}

#[test]
fn double_groupby_all_avg_per_hour_and_host_matches_reference() {
    check_devops("double-groupby-all");
}

#[test]
fn high_cpu_1_rows_above_90_of_one_host_match_reference() {
    check_devops("high-cpu-1");
}

#[test]
fn high_cpu_all_rows_above_90_of_all_hosts_match_reference() {
    check_devops("high-cpu-all");
}

#[test]
fn lastpoint_latest_row_per_host_matches_reference() {
    check_devops("lastpoint");
}

/// lastpoint written with `row_number()` instead of `DISTINCT ON`, which takes the full
/// scan rather than the latest-row one.
#[test]
fn lastpoint_row_number_form_matches_reference() {
    let data = &*CPU;
    let query = DevopsQuery::draw(
        DevopsKind::Lastpoint,
        &mut Rng::new(SEED),
        SCALE,
        data.range,
    );
    let expected = devops_expected(&query, data);
    check(
        "lastpoint (row_number)",
        &data.db,
        LASTPOINT_ROW_NUMBER,
        expected,
    );
}

#[test]
fn groupby_orderby_limit_newest_5_minutes_match_reference() {
    check_devops("groupby-orderby-limit");
}

// ---------------------------------------------------------------------------------------
// Application logs.

fn log_rng(query: u64) -> Rng {
    Rng::new(SEED * 1000 + query)
}

#[test]
fn logs_errors_per_service_per_minute_over_an_hour_match_reference() {
    let data = &*LOGS;
    let window = data.range.random_sub(&mut log_rng(1), HOUR);
    let mut counts: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for r in data.rows.iter().filter(|r| window.contains(r.time)) {
        if r.level == Level::Error {
            *counts
                .entry((bucket(r.time, MINUTE), r.service.as_str()))
                .or_default() += 1;
        }
    }
    let expected = Expected {
        columns: names(&["minute", "service", "errors"]),
        rows: counts
            .into_iter()
            .map(|((t, s), n)| vec![Cell::Int(t), Cell::Str(s.to_owned()), Cell::Int(n)])
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    let sql = log_queries::errors_per_service_per_minute(window);
    check("errors per service per minute", &data.db, &sql, expected);
}

/// Errors per (minute, service) in a random hour, for every (minute, service) with rows,
/// errors or not: the answer of the conditional-count forms below.
fn conditional_error_counts(data: &LogData) -> (Window, Expected) {
    let window = data.range.random_sub(&mut log_rng(1), HOUR);
    let mut counts: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for r in data.rows.iter().filter(|r| window.contains(r.time)) {
        *counts
            .entry((bucket(r.time, MINUTE), r.service.as_str()))
            .or_default() += i64::from(r.level == Level::Error);
    }
    let expected = Expected {
        columns: names(&["minute", "service", "errors"]),
        rows: counts
            .into_iter()
            .map(|((t, s), n)| vec![Cell::Int(t), Cell::Str(s.to_owned()), Cell::Int(n)])
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    (window, expected)
}

/// Errors per service per minute counted with an aggregate `FILTER (WHERE level = ...)`.
#[test]
fn logs_errors_per_service_per_minute_counted_with_filter_match_reference() {
    let data = &*LOGS;
    let (window, expected) = conditional_error_counts(data);
    let sql = format!(
        "SELECT time_bucket(INTERVAL '1 minute', time) AS minute, service, \
         count(*) FILTER (WHERE level = 'error') AS errors \
         FROM logs WHERE {} GROUP BY minute, service ORDER BY minute, service",
        window.sql()
    );
    check(
        "errors per service per minute, FILTER",
        &data.db,
        &sql,
        expected,
    );
}

/// Errors per service per minute counted with `sum(CASE WHEN level = ... THEN 1 ELSE 0
/// END)`, which puts the level comparison inside an aggregate's argument.
#[test]
fn logs_errors_per_service_per_minute_counted_with_case_match_reference() {
    let data = &*LOGS;
    let (window, expected) = conditional_error_counts(data);
    let sql = format!(
        "SELECT time_bucket(INTERVAL '1 minute', time) AS minute, service, \
         sum(CASE WHEN level = 'error' THEN 1 ELSE 0 END) AS errors \
         FROM logs WHERE {} GROUP BY minute, service ORDER BY minute, service",
        window.sql()
    );
    check(
        "errors per service per minute, CASE",
        &data.db,
        &sql,
        expected,
    );
}

/// The whole day that holds the log data.
fn log_day(data: &LogData) -> Window {
    let start = data.range.start_ns - data.range.start_ns.rem_euclid(24 * HOUR);
    Window::new(start, start + 24 * HOUR)
}

/// Rows per (hour, level) in `day`, by hour and severity.
fn count_per_level_per_hour_expected(data: &LogData, day: Window) -> Expected {
    let mut counts: BTreeMap<(i64, Level), i64> = BTreeMap::new();
    for r in data.rows.iter().filter(|r| day.contains(r.time)) {
        *counts.entry((bucket(r.time, HOUR), r.level)).or_default() += 1;
    }
    Expected {
        columns: names(&["hour", "level", "n"]),
        rows: counts
            .into_iter()
            .map(|((t, l), n)| vec![Cell::Int(t), Cell::Str(l.as_str().to_owned()), Cell::Int(n)])
            .collect(),
        ordered: true,
        tolerance: 0.0,
    }
}

#[test]
fn logs_count_per_level_per_hour_over_the_day_matches_reference() {
    let data = &*LOGS;
    let day = log_day(data);
    let expected = count_per_level_per_hour_expected(data, day);
    let sql = log_queries::count_per_level_per_hour(day);
    check("count per level per hour", &data.db, &sql, expected);
}

/// The same query ordered by the level column itself rather than `level_rank(level)`:
/// `level` is documented to compare by severity (query/src/functions/level.rs), so
/// `ORDER BY level` should order trace, debug, info, warn, error, fatal.
#[test]
fn logs_count_per_level_per_hour_order_by_level_sorts_by_severity() {
    let data = &*LOGS;
    let day = log_day(data);
    let expected = count_per_level_per_hour_expected(data, day);
    let sql = log_queries::count_per_level_per_hour(day)
        .replace("ORDER BY hour, level_rank(level)", "ORDER BY hour, level");
    check(
        "count per level per hour, ORDER BY level",
        &data.db,
        &sql,
        expected,
    );
}

/// A random service and its 100 newest rows at level warn or above.
fn newest_warnings_expected(data: &LogData) -> (&str, Expected) {
    let mut rng = log_rng(3);
    let service = &data.services[rng.range(0, data.services.len() as u64) as usize];
    let mut rows: Vec<&LogRow> = data
        .rows
        .iter()
        .filter(|r| &r.service == service && r.level >= Level::Warn)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.time));
    assert!(
        rows.len() > 100 && rows[..101].windows(2).all(|w| w[0].time != w[1].time),
        "the newest rows of {service} have distinct times, so their order is fixed"
    );
    let expected = Expected {
        columns: names(&["time", "host", "level", "message"]),
        rows: rows
            .iter()
            .take(100)
            .map(|r| {
                vec![
                    Cell::Int(r.time),
                    Cell::Str(r.host.clone()),
                    Cell::Str(r.level.as_str().to_owned()),
                    Cell::Str(r.message.clone()),
                ]
            })
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    (service, expected)
}

#[test]
fn logs_newest_100_warnings_of_a_service_match_reference() {
    let data = &*LOGS;
    let (service, expected) = newest_warnings_expected(data);
    let sql = log_queries::newest_warnings(service, 100);
    check("newest warnings of a service", &data.db, &sql, expected);
}

/// The same query with the level range written as `BETWEEN 'warn' AND 'fatal'`, which must
/// compare by severity like `>=` and `<=` do.
#[test]
fn logs_newest_100_warnings_with_level_between_match_reference() {
    let data = &*LOGS;
    let (service, expected) = newest_warnings_expected(data);
    let sql = log_queries::newest_warnings(service, 100)
        .replace("level >= 'warn'", "level BETWEEN 'warn' AND 'fatal'");
    check("newest warnings, level BETWEEN", &data.db, &sql, expected);
}

#[test]
fn logs_rows_of_one_trace_match_reference() {
    let data = &*LOGS;
    let mut rng = log_rng(4);
    // A random trace with more than one row (about half of the rows join a trace).
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for r in &data.rows {
        *sizes.entry(r.trace_id.as_str()).or_default() += 1;
    }
    let pick = std::iter::repeat_with(|| &data.rows[rng.range(0, data.rows.len() as u64) as usize])
        .take(1000)
        .find(|r| sizes[r.trace_id.as_str()] > 1)
        .expect("a trace of several rows");
    let mut rows: Vec<&LogRow> = data
        .rows
        .iter()
        .filter(|r| r.trace_id == pick.trace_id)
        .collect();
    rows.sort_by_key(|r| r.time);
    let expected = Expected {
        columns: names(&["time", "service", "host", "level", "message"]),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Int(r.time),
                    Cell::Str(r.service.clone()),
                    Cell::Str(r.host.clone()),
                    Cell::Str(r.level.as_str().to_owned()),
                    Cell::Str(r.message.clone()),
                ]
            })
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    let sql = log_queries::trace_rows(&pick.trace_id);
    check("rows of one trace", &data.db, &sql, expected);
}

#[test]
fn logs_messages_containing_a_word_for_a_service_in_an_hour_match_reference() {
    let data = &*LOGS;
    let mut rng = log_rng(5);
    let service = &data.services[rng.range(0, data.services.len() as u64) as usize];
    let word = ["timeout", "user", "cache", "failed"][rng.range(0, 4) as usize];
    let window = data.range.random_sub(&mut rng, HOUR);
    let mut rows: Vec<&LogRow> = data
        .rows
        .iter()
        .filter(|r| &r.service == service && window.contains(r.time))
        .filter(|r| r.message.contains(word))
        .collect();
    rows.sort_by_key(|r| r.time);
    let expected = Expected {
        columns: names(&["time", "host", "message"]),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Int(r.time),
                    Cell::Str(r.host.clone()),
                    Cell::Str(r.message.clone()),
                ]
            })
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    let sql = log_queries::messages_containing(service, word, window);
    check("messages containing a word", &data.db, &sql, expected);
}

#[test]
fn logs_top_10_error_templates_in_an_incident_window_match_reference() {
    let data = &*LOGS;
    let start = data.incident.start_ns - 5 * MINUTE;
    let window = Window::new(start, start + 15 * MINUTE);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for r in data.rows.iter().filter(|r| window.contains(r.time)) {
        if r.level >= Level::Error {
            *counts
                .entry(log_queries::template_of(&r.message))
                .or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, i64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let expected = Expected {
        columns: names(&["template", "n"]),
        rows: ranked
            .into_iter()
            .take(10)
            .map(|(t, n)| vec![Cell::Str(t), Cell::Int(n)])
            .collect(),
        ordered: true,
        tolerance: 0.0,
    };
    let sql = log_queries::top_error_templates(window, 10);
    check("top error templates", &data.db, &sql, expected);
}

/// The data sets are what the references assume: every row written, integral cpu values,
/// the incident inside the log range.
#[test]
fn generated_data_sets_have_the_expected_shape() {
    let cpu = &*CPU;
    assert_eq!(cpu.rows.len() as i64, SCALE as i64 * CPU_HOURS * 360);
    assert!(
        cpu.rows
            .iter()
            .all(|r| r.fields.iter().all(|v| v.fract() == 0.0))
    );
    let logs = &*LOGS;
    assert_eq!(
        logs.rows.len() as i64,
        i64::from(LOG_RATE) * LOG_HOURS * 3600
    );
    assert!(logs.range.contains(logs.incident.start_ns));
    assert!(logs.rows.iter().all(|r| logs.range.contains(r.time)));
}
