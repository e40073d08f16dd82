//! The alert evaluation benchmark: what a round of rules costs.
//!
//! The TSBS cpu-only rows (WORKLOADS.md §1) are written into a database opened for one
//! core (one query partition, one runtime thread). 100 rules of the shapes on-call
//! engineers write (a threshold per host on the average, maximum or minimum of a field;
//! per region, datacenter or service; one host alone; a count of hosts above a limit),
//! each over the last 5 minutes before its evaluation time, are loaded once (parsed and
//! planned) and evaluated in rounds at successive minutes of the data's last hour, as
//! the evaluator's background thread would. Beside it, in the same run, the same 100
//! statements through `Database::sql` with the time written in (parsed and planned each
//! time), which is what a rule engine outside the database pays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sextant_alerts::{Evaluator, Options as AlertOptions, Rule};
use sextant_engine::Config;
use sextant_query::{Database, QueryOptions};

use crate::ingest::{WriteOptions, write_workload};
use crate::time::{NANOS_PER_DAY, NANOS_PER_SECOND, REFERENCE_START_NS};
use crate::workload::cpu::{self, CpuConfig};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct AlertBenchOptions {
    /// Hosts.
    pub scale: u32,
    /// Days of rows.
    pub days: f64,
    /// Seed of the rows.
    pub seed: u64,
    /// Rules.
    pub rules: usize,
    /// Rounds timed (after one untimed).
    pub rounds: usize,
    /// Directory of the database; emptied first, removed at the end.
    pub dir: PathBuf,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct AlertBenchReport {
    /// Rows in the database.
    pub rows: u64,
    /// Seconds of each timed round of the evaluator, sorted.
    pub rounds: Vec<f64>,
    /// Seconds of each round of the same statements through `Database::sql`, sorted.
    pub replanned: Vec<f64>,
    /// Instances active after the last round (pending or firing).
    pub active: usize,
    /// Rule evaluations that failed (none expected).
    pub errors: usize,
}

impl AlertBenchReport {
    /// The figures for people, as `sextant-bench alerts` prints them, of a run with `opts`.
    pub fn text(&self, opts: &AlertBenchOptions) -> String {
        let mut out = String::new();
        self.write_text(opts, &mut out)
            .expect("writing to a String does not fail");
        out
    }

    fn write_text(&self, opts: &AlertBenchOptions, out: &mut String) -> std::fmt::Result {
        use std::fmt::Write;
        let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize] * 1e3;
        writeln!(
            out,
            "sextant-bench alerts --scale {} --days {} --seed {} --rules {} --rounds {}",
            opts.scale, opts.days, opts.seed, opts.rules, opts.rounds
        )?;
        writeln!(
            out,
            "{} rules over the last 5 minutes of cpu-only ({} rows), one core (1 partition, 1 query thread), {} rounds:",
            opts.rules,
            self.rows,
            self.rounds.len()
        )?;
        writeln!(
            out,
            "  evaluator (planned once)   p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms per round",
            pct(&self.rounds, 0.5),
            pct(&self.rounds, 0.9),
            pct(&self.rounds, 1.0)
        )?;
        writeln!(
            out,
            "  Database::sql (re-planned) p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms per round",
            pct(&self.replanned, 0.5),
            pct(&self.replanned, 0.9),
            pct(&self.replanned, 1.0)
        )?;
        writeln!(
            out,
            "  instances active after the last round: {}; failed evaluations: {}",
            self.active, self.errors
        )?;
        Ok(())
    }
}

/// The rules of the benchmark: `n` of them, cycling through the shapes.
pub fn rules(n: usize) -> Vec<Rule> {
    const WINDOW: &str = "time > eval_time() - INTERVAL '5 minutes' AND time <= eval_time()";
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let field = cpu::FIELDS[i % cpu::FIELDS.len()];
        let limit = 50 + (i * 7) % 45;
        let (sql, value) = match i % 8 {
            0 => (
                format!(
                    "SELECT hostname, avg({field}) AS value FROM cpu WHERE {WINDOW} GROUP BY hostname HAVING avg({field}) > {limit}"
                ),
                true,
            ),
            1 => (
                format!(
                    "SELECT hostname, max({field}) AS value FROM cpu WHERE {WINDOW} GROUP BY hostname HAVING max({field}) > {limit}"
                ),
                true,
            ),
            2 => (
                format!(
                    "SELECT region, avg({field}) AS value FROM cpu WHERE {WINDOW} GROUP BY region HAVING avg({field}) > {}",
                    limit / 2
                ),
                true,
            ),
            3 => (
                format!(
                    "SELECT datacenter, max({field}) AS value FROM cpu WHERE {WINDOW} GROUP BY datacenter HAVING max({field}) > {limit}"
                ),
                true,
            ),
            4 => (
                format!(
                    "SELECT service, min({field}) AS value FROM cpu WHERE {WINDOW} GROUP BY service HAVING min({field}) < {}",
                    100 - limit
                ),
                true,
            ),
            5 => (
                format!(
                    "SELECT hostname, avg({field}) AS value FROM cpu WHERE hostname = 'host_{}' AND {WINDOW} GROUP BY hostname HAVING avg({field}) > {}",
                    i % 100,
                    limit / 2
                ),
                true,
            ),
            6 => (
                format!(
                    "SELECT count(DISTINCT hostname) AS value FROM cpu WHERE {field} > 90 AND {WINDOW} HAVING count(DISTINCT hostname) > {}",
                    limit / 10
                ),
                true,
            ),
            _ => (
                format!(
                    "SELECT hostname, service FROM cpu WHERE {field} > 99 AND {WINDOW} GROUP BY hostname, service"
                ),
                false,
            ),
        };
        let mut rule = Rule::new(format!("rule_{i:03}"), sql)
            .for_duration(std::time::Duration::from_secs(120))
            .severity(if i % 3 == 0 { "critical" } else { "warning" })
            .annotation(
                "summary",
                "{{ rule }}:{% for k, v in labels | items %} {{ k }}={{ v }}{% endfor %}",
            );
        if value {
            rule = rule.annotation("value", "{{ value | round(2) }}");
        }
        out.push(rule);
    }
    out
}

/// Runs the benchmark.
pub fn run(opts: &AlertBenchOptions) -> Result<AlertBenchReport> {
    crate::measure::remove(&opts.dir)?;
    let config = CpuConfig::new(opts.scale, opts.days).with_seed(opts.seed);
    let rows = {
        let engine = Config::new(&opts.dir).open()?;
        let written = write_workload(
            &engine,
            &WorkloadSpec::Cpu(config),
            &WriteOptions {
                batch_rows: 10_000,
                threads: 1,
                progress: false,
            },
        )?;
        engine.close()?;
        written.rows
    };
    let one_core = QueryOptions {
        target_partitions: 1,
        ..QueryOptions::default()
    };
    let db = Arc::new(
        Database::open_with(Config::new(&opts.dir), one_core)
            .map_err(|e| Error::Query(Box::new(e)))?,
    );
    let rules = rules(opts.rules);
    let options = AlertOptions::default().table("bench_alerts");
    let evaluator = Evaluator::new(Arc::clone(&db), rules.clone(), options)
        .map_err(|e| Error::Alerts(Box::new(e)))?;
    let end = REFERENCE_START_NS + (opts.days * NANOS_PER_DAY as f64) as i64;
    let minute = 60 * NANOS_PER_SECOND;
    let first = end - (opts.rounds as i64 + 2) * minute;
    let mut errors = 0;
    let mut rounds = Vec::with_capacity(opts.rounds);
    let mut replanned = Vec::with_capacity(opts.rounds);
    for round in 0..=opts.rounds {
        let t = first + round as i64 * minute;
        let started = Instant::now();
        errors += evaluator
            .evaluate_at(t)
            .iter()
            .filter(|o| o.error.is_some())
            .count();
        let secs = started.elapsed().as_secs_f64();
        // The same statements, parsed and planned each time, with the time written in.
        let literal = format!("to_timestamp_nanos({t})");
        let started = Instant::now();
        for r in &rules {
            db.sql(&r.sql.replace("eval_time()", &literal))
                .map_err(|e| Error::Query(Box::new(e)))?;
        }
        let direct = started.elapsed().as_secs_f64();
        if round > 0 {
            rounds.push(secs);
            replanned.push(direct);
        }
    }
    let active = evaluator.alerts().len();
    drop(evaluator);
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close().map_err(|e| Error::Query(Box::new(e)))?;
    }
    crate::measure::remove(&opts.dir)?;
    rounds.sort_by(f64::total_cmp);
    replanned.sort_by(f64::total_cmp);
    Ok(AlertBenchReport {
        rows,
        rounds,
        replanned,
        active,
        errors,
    })
}
