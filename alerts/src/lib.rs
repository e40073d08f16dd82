//! Alert rules in SQL over a Sextant database, evaluated in-process.
//!
//! A rule's query returns one row per alert instance whose condition holds at the
//! evaluation time (`eval_time()` in the SQL); its instances go through Prometheus'
//! states, pending, firing, resolved ([`state`]), honouring `for` and
//! `keep_firing_for`. Every transition is written to an `alerts` event table
//! ([`history`]), so alert history is queryable in SQL, and read back on start, so a
//! restart neither fires an alert again nor forgets one. Firing and resolved alerts go to
//! notifiers ([`notify`]): a callback, a webhook with Alertmanager's payload, or an
//! Alertmanager. A rule can be backtested over past data without side effects
//! ([`Evaluator::backtest`]).
//!
//! ```
//! use std::sync::Arc;
//! use sextant_alerts::{Evaluator, Options, rule};
//! use sextant_engine::{Level, LogRecord};
//! use sextant_query::Database;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let db = Arc::new(Database::open(dir.path())?);
//! db.write_points(&[LogRecord::new("logs", Level::Fatal, "out of memory")
//!     .tag("service", "api")
//!     .time(1_000_000_000)
//!     .into()])?;
//! let rules = rule::parse(r#"
//!     [[rule]]
//!     name = "AnyFatal"
//!     sql = """
//!       SELECT service, count(*) AS value FROM logs
//!       WHERE level = 'fatal' AND time > eval_time() - INTERVAL '5 minutes'
//!         AND time <= eval_time()
//!       GROUP BY service
//!     """
//!     severity = "critical"
//!     annotations = { summary = "{{ value }} fatal events in {{ labels.service }}" }
//! "#)?;
//! let alerts = Evaluator::new(Arc::clone(&db), rules, Options::default())?;
//! let outcome = &alerts.evaluate_at(60_000_000_000)[0];
//! assert_eq!(outcome.changes.len(), 1); // firing at once: no `for`
//! let firing = alerts.alerts();
//! assert_eq!(firing[0].annotations["summary"], "1 fatal events in api");
//! let history = db.sql("SELECT state FROM alerts")?;
//! assert_eq!(history[0].num_rows(), 1);
//! # Ok(()) }
//! ```
//!
//! # Restarts and missed evaluations
//!
//! The instances active at the last transition written to the alerts table are restored
//! when an [`Evaluator`] is created. Evaluations missed while the process was down are
//! not replayed; the state machine counts the gap as time passed: a pending instance
//! whose condition still holds at the first evaluation after the restart fires if `for`
//! has passed since it became pending (else it stays pending); one whose condition no
//! longer holds is cleared. A firing instance goes on firing, with no new notification,
//! if its condition still holds, and otherwise resolves (after `keep_firing_for`, counted
//! from that first evaluation). [`backtest`](Evaluator::backtest) shows what the missed
//! evaluations would have found.

pub mod api;
mod backtest;
mod compiled;
pub mod error;
mod evaluator;
pub mod history;
pub mod notify;
pub mod rule;
pub mod state;
pub mod template;
pub mod unit;

pub use backtest::{Backtest, InstanceHistory, Span};
pub use compiled::{ALERTNAME, SEVERITY};
pub use error::{Error, Result, RuleError};
pub use evaluator::{ActiveAlert, Evaluator, Health, Options, Outcome, RuleStatus, Running};
pub use rule::Rule;
