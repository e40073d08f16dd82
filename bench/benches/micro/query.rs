//! SQL through sextant-query: planning TSBS queries (SQL text to an optimized physical plan,
//! nothing executed) and executing a small one, on the fixture's 100 hosts x 1 day.

use criterion::{BenchmarkId, Criterion, Throughput};
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
    let rows: usize = fixture
        .db
        .sql(&sql)
        .expect("the query runs")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    println!("query/execute/{EXECUTED}: {rows} rows: {sql}");
    group.bench_function(BenchmarkId::new("execute", EXECUTED), |b| {
        b.iter(|| fixture.db.sql(&sql).expect("the query runs"))
    });
    group.finish();
}
