//! Unit tests of alert rules, as `promtool test rules` runs them: input series and
//! events, evaluation times, and the alerts expected firing at each.
//!
//! ```toml
//! # Rule files under test, relative to this file.
//! rule_files = ["rules.toml"]
//! # Time between evaluations, and between the values of an input series (default 1m).
//! evaluation_interval = "1m"
//!
//! # A metric series: one value per interval from time 0, in promtool's expanding
//! # notation: `1+2x3` is 1 3 5 7, `5x2` is 5 5 5, `_` is missing, `_x3` three missing.
//! [[series]]
//! table = "cpu"
//! tags = { host = "a" }
//! field = "usage_user"          # default: value
//! values = "50 95x10 _x3 20"
//!
//! # Events (logs): how many at each interval from time 0, in the same notation.
//! [[events]]
//! table = "logs"
//! level = "error"               # default: info
//! tags = { service = "api" }
//! message = "request failed"    # default: empty
//! counts = "0 2x5 0"
//!
//! # At `eval_time`, the alerts of rule `alertname` firing are exactly these (each
//! # rule is evaluated at every interval from 0 up to the last eval_time).
//! [[alert_test]]
//! eval_time = "5m"
//! alertname = "HighCpu"
//! [[alert_test.exp_alerts]]
//! exp_labels = { host = "a", severity = "critical" }   # `alertname` left out
//! exp_annotations = { summary = "a at 95 %" }          # compared when given
//! ```
//!
//! An `alert_test` without `exp_alerts` expects none firing.

mod notation;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sextant_engine::{Level, LogRecord, Point};
use sextant_query::Database;

pub use notation::expand;

use crate::error::{Error, Result};
use crate::evaluator::{Evaluator, Options};
use crate::rule::{self, parse_duration};
use crate::state::{Labels, State, format_labels, nanos};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<PathBuf>,
    evaluation_interval: Option<String>,
    #[serde(default)]
    series: Vec<SeriesToml>,
    #[serde(default)]
    events: Vec<EventsToml>,
    #[serde(default)]
    alert_test: Vec<AlertTestToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesToml {
    table: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    field: Option<String>,
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsToml {
    table: String,
    level: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    message: Option<String>,
    counts: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestToml {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedToml {
    #[serde(default)]
    exp_labels: Labels,
    exp_annotations: Option<BTreeMap<String, String>>,
}

/// One `alert_test` that did not get what it expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The rule.
    pub alertname: String,
    /// The evaluation time, from 0.
    pub eval_time: Duration,
    /// What differs, one sentence per line.
    pub differences: Vec<String>,
}

/// The result of a test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `alert_test`s run.
    pub tests: usize,
    /// Those that failed.
    pub failures: Vec<Failure>,
}

/// Runs the tests of a file in a database of its own (a temporary directory).
pub fn run_file(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: TestFile =
        toml::from_str(&text).map_err(|e| Error::Syntax(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rules = Vec::new();
    for f in &file.rule_files {
        rules.extend(rule::load(base.join(f))?);
    }
    let interval = match &file.evaluation_interval {
        None => Duration::from_secs(60),
        Some(s) => parse_duration(s).map_err(Error::InvalidInput)?,
    };
    if interval.is_zero() {
        return Err(Error::InvalidInput(
            "evaluation_interval must be more than 0".into(),
        ));
    }
    let step = nanos(interval);
    // Removed when dropped, whatever the tests found.
    let dir = tempfile::tempdir().map_err(|source| Error::Read {
        path: std::env::temp_dir(),
        source,
    })?;
    let db = Arc::new(Database::open(dir.path())?);
    write_inputs(&db, &file, step)?;
    let ev = Evaluator::new(Arc::clone(&db), rules, Options::default().restore(false))?;
    run_tests(&ev, &file.alert_test, step)
}

fn write_inputs(db: &Database, file: &TestFile, step: i64) -> Result<()> {
    let mut points = Vec::new();
    for s in &file.series {
        let values = expand(&s.values)
            .map_err(|e| Error::InvalidInput(format!("series of table {}: {e}", s.table)))?;
        let field = s.field.as_deref().unwrap_or("value");
        for (i, v) in values.into_iter().enumerate() {
            let Some(v) = v else { continue };
            let mut p = Point::metric(&s.table)
                .field(field, v)
                .time(i as i64 * step);
            for (k, val) in &s.tags {
                p = p.tag(k.as_str(), val.as_str());
            }
            points.push(p);
        }
    }
    for e in &file.events {
        let counts = expand(&e.counts)
            .map_err(|why| Error::InvalidInput(format!("events of table {}: {why}", e.table)))?;
        let level = match &e.level {
            None => Level::Info,
            Some(l) => Level::parse(l)?,
        };
        for (i, c) in counts.into_iter().enumerate() {
            let n = c.unwrap_or(0.0);
            if n < 0.0 || n.fract() != 0.0 || n > 100_000.0 {
                return Err(Error::InvalidInput(format!(
                    "events of table {}: a count must be a whole number from 0 to 100,000, not {n}",
                    e.table
                )));
            }
            for _ in 0..n as u64 {
                let mut r = LogRecord::new(&e.table, level, e.message.clone().unwrap_or_default())
                    .time(at(i, step)?);
                for (k, val) in &e.tags {
                    r = r.tag(k.as_str(), val.as_str());
                }
                points.push(r.into());
            }
        }
    }
    if !points.is_empty() {
        db.write_points(&points)?;
    }
    Ok(())
}

/// The time of the `i`th value.
fn at(i: usize, step: i64) -> Result<i64> {
    i64::try_from(i)
        .ok()
        .and_then(|i| i.checked_mul(step))
        .ok_or_else(|| Error::InvalidInput("an input runs past the year 2262".into()))
}

fn run_tests(ev: &Evaluator, tests: &[AlertTestToml], step: i64) -> Result<Report> {
    let mut checks: BTreeMap<i64, Vec<&AlertTestToml>> = BTreeMap::new();
    for t in tests {
        let at = parse_duration(&t.eval_time).map_err(Error::InvalidInput)?;
        let at = nanos(at);
        if at % step != 0 {
            return Err(Error::InvalidInput(format!(
                "eval_time {} is not a multiple of the evaluation interval",
                t.eval_time
            )));
        }
        if !ev.rules().iter().any(|r| r.rule.name == t.alertname) {
            return Err(Error::NoSuchRule(t.alertname.clone()));
        }
        checks.entry(at).or_default().push(t);
    }
    let mut report = Report {
        tests: tests.len(),
        failures: Vec::new(),
    };
    let Some(&last) = checks.keys().next_back() else {
        return Ok(report);
    };
    if last / step > 1_000_000 {
        return Err(Error::InvalidInput(format!(
            "the last eval_time is {} evaluations away; at most 1,000,000 are run",
            last / step
        )));
    }
    let mut t = 0;
    while t <= last {
        ev.evaluate_at(t);
        for test in checks.get(&t).into_iter().flatten() {
            let differences = compare(ev, test);
            if !differences.is_empty() {
                report.failures.push(Failure {
                    alertname: test.alertname.clone(),
                    eval_time: Duration::from_nanos(t as u64),
                    differences,
                });
            }
        }
        t = match t.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(report)
}

fn compare(ev: &Evaluator, test: &AlertTestToml) -> Vec<String> {
    let status = ev.rules();
    let mut out = Vec::new();
    if let Some(e) = status
        .iter()
        .find(|r| r.rule.name == test.alertname)
        .and_then(|r| r.last_error.clone())
    {
        out.push(format!("the rule failed: {e}"));
    }
    let mut got: Vec<(Labels, BTreeMap<String, String>)> = ev
        .alerts()
        .into_iter()
        .filter(|a| a.rule == test.alertname && a.instance.state == State::Firing)
        .map(|a| {
            let mut labels = a.instance.labels;
            labels.remove(crate::ALERTNAME);
            (labels, a.annotations)
        })
        .collect();
    for exp in &test.exp_alerts {
        match got.iter().position(|(l, _)| *l == exp.exp_labels) {
            None => out.push(format!(
                "expected firing, not found: {{{}}}",
                format_labels(&exp.exp_labels)
            )),
            Some(i) => {
                let (labels, annotations) = got.remove(i);
                if let Some(want) = &exp.exp_annotations
                    && want != &annotations
                {
                    out.push(format!(
                        "annotations of {{{}}}: expected {want:?}, got {annotations:?}",
                        format_labels(&labels)
                    ));
                }
            }
        }
    }
    for (labels, _) in got {
        out.push(format!(
            "firing but not expected: {{{}}}",
            format_labels(&labels)
        ));
    }
    out
}
