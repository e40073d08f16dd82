//! The query set of each workload, with parameters drawn from a seed: the 15 TSBS devops
//! types for cpu-only, the 6 log queries of WORKLOADS.md §2 for logs, and four exact
//! (max, filter and latest-row) devops types for noisy floats, whose point is storage.

use super::logs;
use super::{DEVOPS, DevopsKind, DevopsQuery, HOUR, MINUTE, Rng, SECOND, Window};
use crate::error::invalid;
use crate::workload::cpu::CpuConfig;
use crate::workload::logs::{LogBatch, LogsConfig, LogsGenerator, trace_id_hex};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// One benchmark query with its parameters drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchQuery {
    /// The query's name (`single-groupby-1-1-1`, `trace-rows`).
    pub name: String,
    /// The SQL Sextant runs.
    pub sql: String,
    /// The same query in plain SQL, where [`BenchQuery::sql`] relies on Sextant's level
    /// semantics (severity comparisons, `level_rank`); `None` when `sql` is plain already.
    pub portable_sql: Option<String>,
    /// Whether the SQL fixes the order of the answer's rows (otherwise answers are compared
    /// as sorted multisets).
    pub ordered: bool,
    /// The devops query with its parameters, for peers that answer through a native API
    /// rather than SQL; `None` for the log queries.
    pub devops: Option<DevopsQuery>,
}

impl BenchQuery {
    fn devops(name: &str, query: DevopsQuery) -> BenchQuery {
        BenchQuery {
            name: name.to_owned(),
            sql: query.sql(),
            portable_sql: None,
            ordered: query.is_ordered(),
            devops: Some(query),
        }
    }
}

/// A workload's queries.
#[derive(Debug, Clone)]
pub struct QuerySet {
    /// The queries, in the set's order.
    pub queries: Vec<BenchQuery>,
    /// What the set is, for the report.
    pub note: &'static str,
}

/// The devops types run on noisy floats: exact answers (no float sums) over few and all
/// hosts, and the latest-row path.
pub const NOISY_FLOAT_QUERIES: [&str; 4] = [
    "single-groupby-5-1-12",
    "cpu-max-all-8",
    "high-cpu-all",
    "lastpoint",
];

/// The names of the log queries, in the order of WORKLOADS.md §2.
pub const LOG_QUERIES: [&str; 6] = [
    "errors-per-service-per-minute",
    "count-per-level-per-hour",
    "newest-warnings",
    "trace-rows",
    "messages-containing",
    "top-error-templates",
];

impl QuerySet {
    /// The queries of `spec` drawn from `seed`; only those named in `only` when it is not
    /// empty (an unknown name is an error that lists the names).
    pub fn for_workload(spec: &WorkloadSpec, seed: u64, only: &[String]) -> Result<QuerySet> {
        let (names, note): (Vec<&str>, _) = match spec {
            WorkloadSpec::Cpu(_) if spec.name() == "noisy-floats" => (
                NOISY_FLOAT_QUERIES.to_vec(),
                "4 TSBS devops types with exact answers (the point of noisy floats is storage)",
            ),
            WorkloadSpec::Cpu(_) => (
                DEVOPS.iter().map(|(n, _)| *n).collect(),
                "the 15 TSBS devops types",
            ),
            WorkloadSpec::Logs(_) => (LOG_QUERIES.to_vec(), "the 6 log queries of WORKLOADS.md"),
        };
        for name in only {
            if !names.contains(&name.as_str()) {
                return Err(invalid(
                    "queries",
                    format!(
                        "{} has no query {name:?}; its queries are {}",
                        spec.name(),
                        names.join(", ")
                    ),
                ));
            }
        }
        let picked = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
        let queries = match spec {
            WorkloadSpec::Cpu(config) => names
                .iter()
                .filter(|name| picked(name))
                .map(|name| {
                    let index = DEVOPS.iter().position(|(n, _)| n == name).expect("known");
                    BenchQuery::devops(name, draw(index, seed, config))
                })
                .collect(),
            WorkloadSpec::Logs(config) => log_queries(config, seed)?
                .into_iter()
                .filter(|q| picked(&q.name))
                .collect(),
        };
        Ok(QuerySet { queries, note })
    }
}

/// The parameters of devops query type `index` (of [`DEVOPS`]), drawn from a stream of its
/// own so that a subset of the types gets the same parameters as a full run.
pub fn draw(index: usize, seed: u64, config: &CpuConfig) -> DevopsQuery {
    let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(index as u64));
    let data = Window::new(config.start_ns, config.end_ns);
    let kind: DevopsKind = DEVOPS[index].1;
    DevopsQuery::draw(kind, &mut rng, config.scale, data)
}

/// The 6 log queries over the data of `config`, parameters drawn from `seed` (each from a
/// stream of its own): one-hour windows and services at random, a trace of several rows
/// from a random second, and the 15 minutes around the first incident (a random 15 minutes
/// when the data holds none).
pub fn log_queries(config: &LogsConfig, seed: u64) -> Result<Vec<BenchQuery>> {
    let generator = LogsGenerator::new(config.clone())?;
    let services = &generator.tags().services;
    let data = Window::new(config.start_ns, config.end_ns);
    let rng = |k: u64| Rng::new(seed.wrapping_mul(1000).wrapping_add(100 + k));
    let service = |rng: &mut Rng| services[rng.range(0, services.len() as u64) as usize].clone();

    let errors = data.random_sub_or_all(&mut rng(0), HOUR);
    let day_start = config.start_ns - config.start_ns.rem_euclid(24 * HOUR);
    let day = Window::new(day_start, day_start + 24 * HOUR);
    let warn_service = service(&mut rng(2));
    let trace = pick_trace(config, &mut rng(3))?;
    let mut r = rng(4);
    let word_service = service(&mut r);
    let word = ["timeout", "user", "cache", "failed"][r.range(0, 4) as usize];
    let word_window = data.random_sub_or_all(&mut r, HOUR);
    let incident = generator
        .incidents()
        .into_iter()
        .map(|i| Window::new(i.start_ns - 5 * MINUTE, i.start_ns + 10 * MINUTE))
        .find(|w| w.start_ns >= data.start_ns && w.end_ns <= data.end_ns)
        .unwrap_or_else(|| data.random_sub_or_all(&mut rng(5), 15 * MINUTE));

    let ordered = |name: &str, sql: String, portable: Option<String>| BenchQuery {
        name: name.to_owned(),
        sql,
        portable_sql: portable,
        ordered: true,
        devops: None,
    };
    Ok(vec![
        ordered(
            LOG_QUERIES[0],
            logs::errors_per_service_per_minute(errors),
            None,
        ),
        ordered(
            LOG_QUERIES[1],
            logs::count_per_level_per_hour(day),
            Some(logs::portable_count_per_level_per_hour(day)),
        ),
        ordered(
            LOG_QUERIES[2],
            logs::newest_warnings(&warn_service, 100),
            Some(logs::portable_newest_warnings(&warn_service, 100)),
        ),
        ordered(LOG_QUERIES[3], logs::trace_rows(&trace), None),
        ordered(
            LOG_QUERIES[4],
            logs::messages_containing(&word_service, word, word_window),
            None,
        ),
        ordered(
            LOG_QUERIES[5],
            logs::top_error_templates(incident, 10),
            None,
        ),
    ])
}

/// The trace id of an event of a random second of `config` whose trace has several events
/// in that second (any event's when none has). The events of a second do not depend on
/// the range they are generated with, so only that second is generated.
fn pick_trace(config: &LogsConfig, rng: &mut Rng) -> Result<String> {
    let seconds = config.seconds().max(1);
    let second = config.start_ns + rng.range(0, seconds) as i64 * SECOND;
    let mut one = config.clone();
    (one.start_ns, one.end_ns) = (second, second + SECOND);
    let mut generator = LogsGenerator::new(one)?;
    let mut batch = LogBatch::default();
    generator.fill(&mut batch, config.events_per_second as usize);
    let ids = &batch.trace_id;
    let first = rng.range(0, ids.len() as u64) as usize;
    let pick = (0..ids.len())
        .map(|k| (first + k) % ids.len())
        .find(|&i| ids.iter().filter(|id| **id == ids[i]).count() > 1)
        .unwrap_or(first);
    ids.get(pick)
        .map(trace_id_hex)
        .ok_or_else(|| Error::InvalidParameter {
            parameter: "events_per_second",
            reason: "the log data has no events".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_workload_has_its_query_set_and_unknown_names_are_refused() {
        let cpu = WorkloadSpec::Cpu(CpuConfig::new(2, 0.05));
        let set = QuerySet::for_workload(&cpu, 1, &[]).unwrap();
        assert_eq!(set.queries.len(), 15);
        let noisy = WorkloadSpec::Cpu(
            CpuConfig::new(2, 0.05).with_variant(crate::workload::cpu::CpuVariant::NoisyFloats),
        );
        assert_eq!(
            QuerySet::for_workload(&noisy, 1, &[])
                .unwrap()
                .queries
                .len(),
            4
        );
        let logs = WorkloadSpec::Logs(LogsConfig::new(20, 0.05));
        let set = QuerySet::for_workload(&logs, 1, &[]).unwrap();
        let names: Vec<&str> = set.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, LOG_QUERIES);
        assert!(
            set.queries[2]
                .portable_sql
                .as_ref()
                .unwrap()
                .contains("level IN")
        );
        let err = QuerySet::for_workload(&logs, 1, &["lastpoint".into()]).unwrap_err();
        assert!(err.to_string().contains("trace-rows"), "{err}");
    }

    #[test]
    fn a_subset_draws_the_same_parameters_as_the_full_set() {
        let cpu = WorkloadSpec::Cpu(CpuConfig::new(10, 1.0));
        let all = QuerySet::for_workload(&cpu, 7, &[]).unwrap();
        let one = QuerySet::for_workload(&cpu, 7, &["cpu-max-all-8".into()]).unwrap();
        assert_eq!(one.queries[0], all.queries[7]);
    }
}
