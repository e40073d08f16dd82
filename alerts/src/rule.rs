//! Alert rules and the TOML file they are written in.
//!
//! ```toml
//! # Default evaluation interval of the rules below (default: 1m).
//! interval = "30s"
//!
//! [[rule]]
//! name = "HighCpu"
//! sql = """
//! SELECT hostname, avg(usage_user) AS value
//! FROM cpu
//! WHERE time > eval_time() - INTERVAL '5 minutes'
//! GROUP BY hostname
//! HAVING avg(usage_user) > 90
//! """
//! for = "5m"                # how long the condition must hold before firing (default 0s)
//! keep_firing_for = "2m"    # firing goes on this long after the condition stops (default 0s)
//! interval = "1m"           # overrides the file's interval
//! severity = "warning"      # becomes the label `severity`
//! labels = { team = "infra" }
//! annotations = { summary = "CPU of {{ labels.hostname }} at {{ value | round(1) }} %" }
//! ```
//!
//! Durations are written as `90s`, `5m`, `1h 30m`, `2d` (humantime's syntax: `ms`, `s`,
//! `m`, `h`, `d`, `w`; `M` is months).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result, RuleError};

/// The name of the column holding an instance's figure, unless a rule names another.
pub const DEFAULT_VALUE_COLUMN: &str = "value";

/// The longest interval, `for` or `keep_firing_for`: 10 years.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Evaluation interval of a rule that gives none, in a file that gives none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// An alert rule.
///
/// Its SQL returns one row per alert instance whose condition holds at the evaluation
/// time (the threshold is part of the SQL). Every column but the value column is a label
/// identifying the instance (shown as text; a null leaves the label out); the value
/// column, when the result has one, is the instance's figure. `eval_time()` (and
/// `now()`) in the SQL is the evaluation time, so a backtest sees each past time as
/// "now".
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// The rule's name: the label `alertname` of its instances. Unique in a rule set.
    pub name: String,
    /// The query; see above.
    pub sql: String,
    /// How often the rule is evaluated. Default: the file's `interval`, else 1 minute.
    pub interval: Duration,
    /// How long the condition must hold (instance pending) before the instance fires.
    /// Default: 0 (fires at the first evaluation that returns it).
    pub for_: Duration,
    /// How long a firing instance goes on firing after its condition stopped holding.
    /// Default: 0 (resolved at the first evaluation that no longer returns it).
    pub keep_firing_for: Duration,
    /// The label `severity` of the instances, when given.
    pub severity: Option<String>,
    /// Labels added to every instance (a column of the same name wins).
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`, `runbook_url`, ...), each a template; see
    /// [`crate::template`].
    pub annotations: BTreeMap<String, String>,
    /// The column holding the figure. Default: `value`; a result without it gives
    /// instances without a figure.
    pub value_column: String,
}

impl Rule {
    /// A rule with every optional setting at its default.
    pub fn new(name: impl Into<String>, sql: impl Into<String>) -> Rule {
        Rule {
            name: name.into(),
            sql: sql.into(),
            interval: DEFAULT_INTERVAL,
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            severity: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            value_column: DEFAULT_VALUE_COLUMN.to_string(),
        }
    }

    /// Sets the evaluation interval.
    pub fn interval(mut self, interval: Duration) -> Rule {
        self.interval = interval;
        self
    }

    /// Sets `for`: how long the condition must hold before the instance fires.
    pub fn for_duration(mut self, d: Duration) -> Rule {
        self.for_ = d;
        self
    }

    /// Sets `keep_firing_for`.
    pub fn keep_firing_for(mut self, d: Duration) -> Rule {
        self.keep_firing_for = d;
        self
    }

    /// Sets the severity label.
    pub fn severity(mut self, severity: impl Into<String>) -> Rule {
        self.severity = Some(severity.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Rule {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Adds an annotation template.
    pub fn annotation(mut self, name: impl Into<String>, template: impl Into<String>) -> Rule {
        self.annotations.insert(name.into(), template.into());
        self
    }

    /// Names the value column.
    pub fn value_column(mut self, column: impl Into<String>) -> Rule {
        self.value_column = column.into();
        self
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    interval: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: Option<String>,
    sql: Option<String>,
    interval: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    value_column: Option<String>,
}

/// Reads the rules of a TOML rule file (see the module's example). Only the file's shape
/// is checked here: [`crate::Evaluator::new`] checks the SQL against the database.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<Rule>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

/// Parses the rules of a TOML rule file given as text; see [`load`].
pub fn parse(text: &str) -> Result<Vec<Rule>> {
    let file: FileToml = toml::from_str(text).map_err(|e| Error::Syntax(e.to_string()))?;
    let mut errors = Vec::new();
    let default_interval = match &file.interval {
        None => DEFAULT_INTERVAL,
        Some(s) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                errors.push(err(
                    "(file)",
                    "interval",
                    "the interval must be more than 0",
                ));
                DEFAULT_INTERVAL
            }
            Err(m) => {
                errors.push(err("(file)", "interval", m));
                DEFAULT_INTERVAL
            }
        },
    };
    let mut rules = Vec::with_capacity(file.rules.len());
    for (i, r) in file.rules.into_iter().enumerate() {
        let label = r.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
        let Some(name) = r.name else {
            errors.push(err(&label, "name", "every rule needs a name"));
            continue;
        };
        let Some(sql) = r.sql else {
            errors.push(err(&label, "sql", "every rule needs its SQL query"));
            continue;
        };
        let mut duration = |field: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(s) => parse_duration(&s).unwrap_or_else(|m| {
                errors.push(err(&label, field, m));
                default
            }),
        };
        let interval = duration("interval", r.interval, default_interval);
        let for_ = duration("for", r.for_, Duration::ZERO);
        let keep_firing_for = duration("keep_firing_for", r.keep_firing_for, Duration::ZERO);
        rules.push(Rule {
            name,
            sql,
            interval,
            for_,
            keep_firing_for,
            severity: r.severity,
            labels: r.labels,
            annotations: r.annotations,
            value_column: r
                .value_column
                .unwrap_or_else(|| DEFAULT_VALUE_COLUMN.to_string()),
        });
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// Parses a duration such as `90s`, `5m` or `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it as 30s, 5m, 1h 30m or 2d"))
}

fn err(rule: &str, field: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        rule: rule.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checks what can be checked of rules without a database: names present and unique,
/// intervals above 0, label names not empty.
pub(crate) fn check_shape(rules: &[Rule], errors: &mut Vec<RuleError>) {
    let mut seen = std::collections::HashSet::new();
    for r in rules {
        if r.name.trim().is_empty() {
            errors.push(err(&r.name, "name", "the name must not be empty"));
        } else if !seen.insert(r.name.as_str()) {
            errors.push(err(
                &r.name,
                "name",
                "another rule has the same name; names must be unique",
            ));
        }
        if r.interval.is_zero() {
            errors.push(err(&r.name, "interval", "the interval must be more than 0"));
        }
        for (field, d) in [
            ("interval", r.interval),
            ("for", r.for_),
            ("keep_firing_for", r.keep_firing_for),
        ] {
            if d > MAX_DURATION {
                errors.push(err(
                    &r.name,
                    field,
                    "more than 10 years is not a useful duration here",
                ));
            }
        }
        if r.sql.trim().is_empty() {
            errors.push(err(&r.name, "sql", "the SQL query is empty"));
        }
        for name in r.labels.keys() {
            if name.is_empty() {
                errors.push(err(&r.name, "labels", "a label name is empty"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_file_is_read_with_its_defaults() {
        let rules = parse(
            r#"
            interval = "30s"
            [[rule]]
            name = "A"
            sql = "SELECT 1 AS value"
            for = "5m"
            [[rule]]
            name = "B"
            sql = "SELECT 1"
            interval = "2m"
            keep_firing_for = "1h 30m"
            severity = "critical"
            labels = { team = "db" }
            annotations = { summary = "x" }
            value_column = "n"
            "#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].interval, Duration::from_secs(30));
        assert_eq!(rules[0].for_, Duration::from_secs(300));
        assert_eq!(rules[0].value_column, "value");
        assert_eq!(rules[1].interval, Duration::from_secs(120));
        assert_eq!(rules[1].keep_firing_for, Duration::from_secs(5400));
        assert_eq!(rules[1].severity.as_deref(), Some("critical"));
        assert_eq!(rules[1].labels["team"], "db");
        assert_eq!(rules[1].value_column, "n");
    }

    #[test]
    fn every_bad_duration_is_named_with_its_rule_and_field() {
        let e = parse(
            r#"
            [[rule]]
            name = "A"
            sql = "SELECT 1"
            for = "5x"
            [[rule]]
            sql = "SELECT 1"
            [[rule]]
            name = "C"
            sql = "SELECT 1"
            interval = "soon"
            "#,
        )
        .unwrap_err();
        let Error::Invalid(errors) = &e else {
            panic!("{e}")
        };
        assert_eq!(errors.len(), 3, "{e}");
        assert_eq!(
            (errors[0].rule.as_str(), errors[0].field.as_str()),
            ("A", "for")
        );
        assert_eq!(
            (errors[1].rule.as_str(), errors[1].field.as_str()),
            ("#2", "name")
        );
        assert_eq!(
            (errors[2].rule.as_str(), errors[2].field.as_str()),
            ("C", "interval")
        );
        assert!(e.to_string().contains("3 problems"), "{e}");
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_place() {
        let e = parse("[[rule]]\nname = \"A\"\nsql = \"SELECT 1\"\nfour = \"5m\"\n").unwrap_err();
        assert!(matches!(e, Error::Syntax(_)), "{e}");
        assert!(e.to_string().contains("four"), "{e}");
    }
}
