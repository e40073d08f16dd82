//! SQL through sextant-query: planning TSBS queries (SQL text to an optimized physical plan,
//! nothing executed), the stages of planning a small one (parsing and resolving names,
//! the logical optimizer, physical planning with its optimizer), and executing it as SQL
//! text and as a prepared statement, on the fixture's 100 hosts x 1 day.

use criterion::{BenchmarkId, Criterion, Throughput};
use datafusion::common::ScalarValue;
use sextant_bench::queries::DEVOPS;
use sextant_bench::queries::draw;

use crate::fixture::{Fixture, SEED};

/// The query types planned: a one-host one, an all-host aggregate, and lastpoint (which
/// Sextant's optimizer rule rewrites).
const PLANNED: [&str; 3] = ["single-groupby-1-1-1", "double-groupby-all", "lastpoint"];
/// The query type executed.
const EXECUTED: &str = "single-groupby-1-1-1";

pub fn bench(c: &mut Criterion, fixture: &Fixture) {
    let sql_of = |name: &str| {
        let index = DEVOPS
            .iter()
            .position(|(n, _)| *n == name)
            .expect("a TSBS query type");
        draw(index, SEED, &fixture.config).sql()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let session = fixture.db.session();
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(1));
    for name in PLANNED {
        let sql = sql_of(name);
        group.bench_function(BenchmarkId::new("plan", name), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let df = session.sql(&sql).await.expect("the query plans");
                    df.create_physical_plan().await.expect("a physical plan")
                })
            })
        });
    }
    let sql = sql_of(EXECUTED);
    // The stages of planning it.
    let state = session.state();
    group.bench_function(BenchmarkId::new("plan-parse", EXECUTED), |b| {
        b.iter(|| {
            runtime
                .block_on(state.create_logical_plan(&sql))
                .expect("the query parses")
        })
    });
    let logical = runtime
        .block_on(state.create_logical_plan(&sql))
        .expect("the query parses");
    group.bench_function(BenchmarkId::new("plan-optimize", EXECUTED), |b| {
        b.iter(|| state.optimize(&logical).expect("the plan optimizes"))
    });
    let optimized = state.optimize(&logical).expect("the plan optimizes");
    group.bench_function(BenchmarkId::new("plan-physical", EXECUTED), |b| {
        b.iter(|| {
            runtime
                .block_on(
                    state
                        .query_planner()
                        .create_physical_plan(&optimized, &state),
                )
                .expect("a physical plan")
        })
    });
    group.bench_function(BenchmarkId::new("session-state", EXECUTED), |b| {
        b.iter(|| session.state())
    });
    let rows: usize = fixture
        .db
        .sql(&sql)
        .expect("the query runs")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    println!("query/execute/{EXECUTED}: {rows} rows: {sql}");
    let analyzed = fixture
        .db
        .sql(&format!("EXPLAIN ANALYZE {sql}"))
        .expect("the query runs");
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&analyzed).expect("printable")
    );
    // SQL text run again takes its resolved plan from the plan cache; "execute-uncached"
    // forgets it each time, as SQL never seen before.
    group.bench_function(BenchmarkId::new("execute", EXECUTED), |b| {
        b.iter(|| fixture.db.sql(&sql).expect("the query runs"))
    });
    group.bench_function(BenchmarkId::new("execute-uncached", EXECUTED), |b| {
        b.iter(|| {
            fixture.db.forget_plans();
            fixture.db.sql(&sql).expect("the query runs")
        })
    });
    // The same query prepared once, its host and window as parameters.
    let index = DEVOPS
        .iter()
        .position(|(n, _)| *n == EXECUTED)
        .expect("a TSBS query type");
    let drawn = draw(index, SEED, &fixture.config);
    let prepared = fixture
        .db
        .prepare(
            "SELECT time_bucket('60 seconds', time) AS minute, max(usage_user) AS max_usage_user \
             FROM cpu WHERE hostname = $1 AND time >= $2 AND time < $3 \
             GROUP BY minute ORDER BY minute",
        )
        .expect("the statement prepares");
    let time = |ns| ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()));
    let params = [
        ScalarValue::from(drawn.hostnames()[0].as_str()),
        time(drawn.window.start_ns),
        time(drawn.window.end_ns),
    ];
    let answer = |batches: &[arrow_array::RecordBatch]| {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .expect("printable")
            .to_string()
    };
    assert_eq!(
        answer(&fixture.db.execute(&prepared, &params).expect("it runs")),
        answer(&fixture.db.sql(&sql).expect("the query runs")),
        "the prepared statement answers as the SQL does"
    );
    group.bench_function(BenchmarkId::new("execute-prepared", EXECUTED), |b| {
        b.iter(|| fixture.db.execute(&prepared, &params).expect("it runs"))
    });
    // The latest row of every host, as TSBS writes it and as a join users write: the
    // join's scan of cpu reads only what its hash table's keys let through.
    let lastpoint = sql_of("lastpoint");
    let mut lastpoint_join = String::from(LASTPOINT_JOIN);
    lastpoint_join.push_str(" ORDER BY hostname");
    let sorted = |sql: &str| {
        fixture
            .db
            .sql(&format!("SELECT * FROM ({sql}) ORDER BY hostname"))
            .expect("the query runs")
    };
    assert_eq!(
        answer(&sorted(&lastpoint)),
        answer(&sorted(LASTPOINT_JOIN)),
        "both forms of lastpoint give the latest row of each host"
    );
    let analyzed = fixture
        .db
        .sql(&format!("EXPLAIN ANALYZE {lastpoint_join}"))
        .expect("the query runs");
    println!("query/execute/lastpoint-join: {lastpoint_join}");
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&analyzed).expect("printable")
    );
    group.bench_function(BenchmarkId::new("execute", "lastpoint"), |b| {
        b.iter(|| fixture.db.sql(&lastpoint).expect("the query runs"))
    });
    group.bench_function(BenchmarkId::new("execute", "lastpoint-join"), |b| {
        b.iter(|| fixture.db.sql(&lastpoint_join).expect("the query runs"))
    });
    group.finish();
}

/// lastpoint as a join of the table with each host's latest time.
const LASTPOINT_JOIN: &str = "SELECT c.* FROM cpu c JOIN \
    (SELECT hostname, max(time) AS time FROM cpu GROUP BY hostname) l \
    ON c.hostname = l.hostname AND c.time = l.time";
