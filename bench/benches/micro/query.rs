//! SQL through sextant-query: planning TSBS queries (SQL text to an optimized physical plan,
//! nothing executed), the stages of planning a small one (parsing and resolving names,
//! the logical optimizer, physical planning with its optimizer), and executing the
//! single-host types as SQL text and as prepared statements, on the fixture's 100 hosts x
//! 1 day, compacted.

use criterion::{BenchmarkId, Criterion, Throughput};
use sextant_bench::queries::{devops_index, draw};

use crate::fixture::{Fixture, SEED};

/// The query types planned: a one-host one, an all-host aggregate, and lastpoint (which
/// Sextant's optimizer rule rewrites).
const PLANNED: [&str; 3] = ["single-groupby-1-1-1", "double-groupby-all", "lastpoint"];
/// The query type whose planning is taken apart.
const EXECUTED: &str = "single-groupby-1-1-1";
/// The single-host query types, each executed as SQL text and as a prepared statement.
const SINGLE_HOST: [&str; 4] = [
    "single-groupby-1-1-1",
    "single-groupby-1-1-12",
    "single-groupby-1-8-1",
    "high-cpu-1",
];
/// Parameter draws a prepared statement cycles through in "execute-prepared-varied".
const DRAWS: u64 = 16;

pub fn bench(c: &mut Criterion, fixture: &Fixture) {
    // Compacted, as a database is once its writes have settled and as `sextant-bench run`
    // measures it.
    fixture.db.compact("cpu").expect("the table compacts");
    let sql_of = |name: &str| {
        let index = devops_index(name).expect("a TSBS query type");
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
    let analyzed = fixture
        .db
        .sql(&format!("EXPLAIN ANALYZE {sql}"))
        .expect("the query runs");
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&analyzed).expect("printable")
    );
    for name in SINGLE_HOST {
        single_host(&mut group, fixture, name);
    }
    // The latest row of every host, as TSBS writes it and as a join users write: the
    // join's scan of cpu reads only what its hash table's keys let through.
    let lastpoint = sql_of("lastpoint");
    let mut lastpoint_join = String::from(LASTPOINT_JOIN);
    lastpoint_join.push_str(" ORDER BY hostname");
    let answer = |batches: &[arrow_array::RecordBatch]| {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .expect("printable")
            .to_string()
    };
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

/// Executes the single-host query type `name` four ways: as SQL text seen before (its
/// resolved plan taken from the plan cache, and its physical plan run again), as SQL never
/// seen ("execute-uncached", the plan cache emptied each time), as a prepared statement
/// run with the same values ("execute-prepared"), and as one run with a new host and
/// window each time ("execute-prepared-varied", as a dashboard over many hosts runs it).
fn single_host(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    fixture: &Fixture,
    name: &str,
) {
    let index = devops_index(name).expect("a TSBS query type");
    let drawn = draw(index, SEED, &fixture.config);
    let sql = drawn.sql();
    let rows: usize = fixture
        .db
        .sql(&sql)
        .expect("the query runs")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    println!("query/execute/{name}: {rows} rows: {sql}");
    group.bench_function(BenchmarkId::new("execute", name), |b| {
        b.iter(|| fixture.db.sql(&sql).expect("the query runs"))
    });
    group.bench_function(BenchmarkId::new("execute-uncached", name), |b| {
        b.iter(|| {
            fixture.db.forget_plans();
            fixture.db.sql(&sql).expect("the query runs")
        })
    });
    let (statement, values) = drawn.prepared();
    let prepared = fixture
        .db
        .prepare(&statement)
        .expect("the statement prepares");
    // (The answer tests check prepared answers against the SQL text's.)
    group.bench_function(BenchmarkId::new("execute-prepared", name), |b| {
        b.iter(|| fixture.db.execute(&prepared, &values).expect("it runs"))
    });
    let varied: Vec<_> = (0..DRAWS)
        .map(|k| draw(index, SEED + k, &fixture.config).prepared().1)
        .collect();
    let mut next = varied.iter().cycle();
    group.bench_function(BenchmarkId::new("execute-prepared-varied", name), |b| {
        b.iter(|| {
            let values = next.next().expect("a cycle never ends");
            fixture.db.execute(&prepared, values).expect("it runs")
        })
    });
}
