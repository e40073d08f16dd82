//! The evaluator: runs the rules, steps their instances, writes the alerts table,
//! offers notifications.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use sextant_query::Database;

use crate::compiled::{Compiled, register_eval_time};
use crate::error::{Error, Result, RuleError};
use crate::history;
use crate::notify::{Alert, Delivery, Dispatcher, Notification, Notifier, NotifierStats, Status};
use crate::rule::{Rule, check_shape};
use crate::state::{Change, Instance, Instances, Labels, State, Transition, nanos};
use crate::template;

/// Where alert history goes and who is told.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The event table of transitions and errors (see [`crate::history`]). Default:
    /// `alerts`.
    pub table: String,
    /// Who is told of firing and resolved alerts. Default: nobody.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Queues and retries of the notifiers.
    pub delivery: Delivery,
    /// Whether the instances active before a restart are read back from the table.
    /// Default: yes.
    pub restore: bool,
    /// The longest a rule's query may run; a rule's interval is its limit when shorter.
    /// Default: none (the interval).
    pub query_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            table: "alerts".to_string(),
            notifiers: Vec::new(),
            delivery: Delivery::default(),
            restore: true,
            query_timeout: None,
        }
    }
}

impl Options {
    /// Adds a notifier.
    pub fn notifier(mut self, n: impl Notifier) -> Options {
        self.notifiers.push(Arc::new(n));
        self
    }

    /// Sets the alerts table.
    pub fn table(mut self, table: impl Into<String>) -> Options {
        self.table = table.into();
        self
    }

    /// Sets whether active instances are restored from the table (see
    /// [`Options::restore`]).
    pub fn restore(mut self, restore: bool) -> Options {
        self.restore = restore;
        self
    }

    /// Sets the longest a rule's query may run (see [`Options::query_timeout`]).
    pub fn query_timeout(mut self, limit: Duration) -> Options {
        self.query_timeout = Some(limit);
        self
    }

    /// Sets the notifiers' queues and retries.
    pub fn delivery(mut self, delivery: Delivery) -> Options {
        self.delivery = delivery;
        self
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("table", &self.table)
            .field(
                "notifiers",
                &self.notifiers.iter().map(|n| n.name()).collect::<Vec<_>>(),
            )
            .field("delivery", &self.delivery)
            .field("restore", &self.restore)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}

/// What one evaluation of one rule did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The rule.
    pub rule: String,
    /// The evaluation time, ns since the Unix epoch.
    pub time: i64,
    /// The instances' transitions.
    pub changes: Vec<Change>,
    /// Why the rule could not be evaluated, if it could not (its instances are then
    /// left as they were).
    pub error: Option<String>,
    /// How long the evaluation took.
    pub duration: Duration,
}

/// An active alert, as `/api/v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// The rule.
    pub rule: String,
    /// The instance.
    pub instance: Instance,
    /// Its annotations, rendered with its last value.
    pub annotations: BTreeMap<String, String>,
}

/// Whether a rule's last evaluation worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation worked.
    Ok,
    /// The last evaluation failed.
    Err,
}

/// A rule and how its evaluations go.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    /// The rule.
    pub rule: Rule,
    /// Whether its last evaluation worked.
    pub health: Health,
    /// The last evaluation's error.
    pub last_error: Option<String>,
    /// The last evaluation time.
    pub last_evaluation: Option<i64>,
    /// How long the last evaluation took.
    pub last_duration: Duration,
    /// Evaluations so far.
    pub evaluations: u64,
    /// Evaluations the background thread skipped because it was late (see
    /// [`Evaluator::start`]).
    pub missed: u64,
    /// Its active instances.
    pub active: usize,
}

#[derive(Debug, Default)]
struct RuleState {
    instances: Instances,
    last_error: Option<String>,
    last_evaluation: Option<i64>,
    last_duration: Duration,
    evaluations: u64,
    missed: u64,
}

#[derive(Debug)]
struct Slot {
    compiled: Compiled,
    /// Held through an evaluation: a rule's evaluations run one at a time.
    running: Mutex<()>,
    state: Mutex<RuleState>,
}

/// Evaluates a set of alert rules against a database.
///
/// Evaluate on request with [`evaluate_at`](Evaluator::evaluate_at), or run every rule
/// at its interval on a background thread with [`start`](Evaluator::start).
pub struct Evaluator {
    db: Arc<Database>,
    table: String,
    slots: Vec<Slot>,
    dispatchers: Vec<Dispatcher>,
    warnings: Vec<RuleError>,
    query_timeout: Option<Duration>,
    started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("table", &self.table)
            .field("rules", &self.slots.len())
            .field("notifiers", &self.dispatchers)
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// Checks every rule against the database (the SQL plans against the current tables
    /// and is read-only, the value column is a number, the annotations render), and
    /// restores the instances that were active. Every problem found is reported at once
    /// in [`Error::Invalid`], each naming its rule and field.
    pub fn new(db: Arc<Database>, rules: Vec<Rule>, options: Options) -> Result<Evaluator> {
        register_eval_time(db.session());
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        if let Err(e) = sextant_engine::schema::validate_name("table", &options.table) {
            errors.push(RuleError {
                rule: "(all)".to_string(),
                field: "table".to_string(),
                message: e.to_string(),
            });
        }
        check_shape(&rules, &mut errors);
        let mut slots = Vec::with_capacity(rules.len());
        for rule in rules {
            if let Some(compiled) = Compiled::new(&db, rule, &mut errors, &mut warnings) {
                slots.push(Slot {
                    compiled,
                    running: Mutex::new(()),
                    state: Mutex::new(RuleState::default()),
                });
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let dispatchers: Vec<Dispatcher> = options
            .notifiers
            .iter()
            .map(|n| Dispatcher::start(Arc::clone(n), options.delivery.clone()))
            .collect();
        if options.restore {
            let names: Vec<&str> = slots
                .iter()
                .map(|s| s.compiled.rule.name.as_str())
                .collect();
            let restored = history::restore(&db, &options.table, &names).unwrap_or_else(|e| {
                warnings.push(RuleError {
                    rule: "(all)".to_string(),
                    field: "table".to_string(),
                    message: format!(
                        "the active alerts could not be read back from the table {}: {e}; they start inactive",
                        options.table
                    ),
                });
                Vec::new()
            });
            for (rule, inst) in restored {
                let Some(slot) = slots.iter().find(|s| s.compiled.rule.name == rule) else {
                    continue;
                };
                if let Some(fired) = inst.fired_at {
                    for d in &dispatchers {
                        d.seed(&rule, fired);
                    }
                }
                slot.state.lock().instances.restore(inst);
            }
        }
        for w in &warnings {
            tracing::warn!(rule = %w.rule, "{}", w.message);
        }
        Ok(Evaluator {
            db,
            table: options.table,
            query_timeout: options.query_timeout,
            slots,
            dispatchers,
            warnings,
            started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// What was found doubtful but not wrong when the rules were loaded: rules reading
    /// tables that do not exist yet (planned once they do).
    pub fn warnings(&self) -> &[RuleError] {
        &self.warnings
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> Vec<RuleStatus> {
        self.slots
            .iter()
            .map(|s| {
                let st = s.state.lock();
                RuleStatus {
                    rule: s.compiled.rule.clone(),
                    health: match (&st.last_error, st.last_evaluation) {
                        (Some(_), _) => Health::Err,
                        (None, Some(_)) => Health::Ok,
                        (None, None) => Health::Unknown,
                    },
                    last_error: st.last_error.clone(),
                    last_evaluation: st.last_evaluation,
                    last_duration: st.last_duration,
                    evaluations: st.evaluations,
                    missed: st.missed,
                    active: st.instances.len(),
                }
            })
            .collect()
    }

    /// Every pending and firing instance, with its annotations rendered.
    pub fn alerts(&self) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for s in &self.slots {
            let rule = &s.compiled.rule;
            for inst in s.state.lock().instances.iter() {
                out.push(ActiveAlert {
                    rule: rule.name.clone(),
                    annotations: annotations(rule, &inst.labels, inst.value),
                    instance: inst.clone(),
                });
            }
        }
        out
    }

    /// What the notifiers have done.
    pub fn notifier_stats(&self) -> Vec<NotifierStats> {
        self.dispatchers.iter().map(Dispatcher::stats).collect()
    }

    /// The database the rules run on.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Evaluates every rule at time `t` (ns since the Unix epoch), one after another.
    /// Blocks: call it from a thread of its own, not from async code.
    pub fn evaluate_at(&self, t: i64) -> Vec<Outcome> {
        self.slots.iter().map(|s| self.evaluate(s, t)).collect()
    }

    /// Evaluates one rule at time `t`.
    pub fn evaluate_rule_at(&self, rule: &str, t: i64) -> Result<Outcome> {
        Ok(self.evaluate(self.slot(rule)?, t))
    }

    pub(crate) fn slot_rule(&self, rule: &str) -> Result<(&Compiled, &Database)> {
        Ok((&self.slot(rule)?.compiled, &self.db))
    }

    /// How long a rule's query may run: its interval, or the query timeout if shorter.
    pub(crate) fn timeout(&self, rule: &Rule) -> Duration {
        self.query_timeout
            .map_or(rule.interval, |q| q.min(rule.interval))
    }

    fn slot(&self, rule: &str) -> Result<&Slot> {
        self.slots
            .iter()
            .find(|s| s.compiled.rule.name == rule)
            .ok_or_else(|| Error::NoSuchRule(rule.to_string()))
    }

    fn evaluate(&self, slot: &Slot, t: i64) -> Outcome {
        let _running = slot.running.lock();
        let started = Instant::now();
        let rule = &slot.compiled.rule;
        let last = slot.state.lock().last_evaluation;
        if let Some(last) = last.filter(|&last| t < last) {
            // Refused without touching the rule's state: not an error of the rule.
            return Outcome {
                rule: rule.name.clone(),
                time: t,
                changes: Vec::new(),
                error: Some(format!(
                    "the evaluation time is before the rule's last evaluation ({}); a backtest evaluates past times",
                    crate::notify::rfc3339(last)
                )),
                duration: started.elapsed(),
            };
        }
        let result =
            self.db
                .runtime()
                .block_on(slot.compiled.run(self.db.session(), t, self.timeout(rule)));
        let mut st = slot.state.lock();
        let stepped = result.and_then(|samples| {
            st.instances
                .step(samples, t, rule.for_, rule.keep_firing_for)
        });
        st.last_evaluation = Some(t);
        st.evaluations += 1;
        let mut outcome = Outcome {
            rule: rule.name.clone(),
            time: t,
            changes: Vec::new(),
            error: None,
            duration: Duration::ZERO,
        };
        match stepped {
            Err(e) => {
                if st.last_error.as_ref() != Some(&e) {
                    tracing::warn!(rule = %rule.name, error = %e, "an alert rule could not be evaluated");
                    let row = history::error_row(&self.table, &rule.name, t, &e);
                    if let Err(w) = self.db.write_points(&[row]) {
                        tracing::error!(table = %self.table, error = %w, "writing the alerts table failed");
                    }
                }
                st.last_error = Some(e.clone());
                outcome.error = Some(e);
            }
            Ok(changes) => {
                st.last_error = None;
                let rows: Vec<_> = changes
                    .iter()
                    .map(|c| {
                        let a = annotations(rule, &c.instance.labels, c.instance.value);
                        history::change_row(&self.table, &rule.name, t, c, &a)
                    })
                    .collect();
                if !rows.is_empty()
                    && let Err(e) = self.db.write_points(&rows)
                {
                    tracing::error!(table = %self.table, error = %e, "writing the alerts table failed");
                    let e = format!("writing the alerts table: {e}");
                    st.last_error = Some(e.clone());
                    outcome.error = Some(e);
                }
                let changed = changes
                    .iter()
                    .any(|c| matches!(c.transition, Transition::Firing | Transition::Resolved));
                // Rendering every firing instance's annotations is work only a notifier
                // that is due needs.
                if self
                    .dispatchers
                    .iter()
                    .any(|d| d.due(&rule.name, t, changed))
                {
                    let n = notification(rule, t, &st.instances, &changes, changed);
                    for d in &self.dispatchers {
                        d.offer(&n);
                    }
                }
                outcome.changes = changes;
            }
        }
        outcome.duration = started.elapsed();
        st.last_duration = outcome.duration;
        outcome
    }

    /// Runs every rule at its interval on a background thread until the returned handle
    /// is stopped or dropped.
    ///
    /// Evaluation times are aligned to the interval (a 1-minute rule is evaluated at
    /// each whole minute of the wall clock). When the thread falls behind by more than an
    /// interval (evaluations slower than the interval, a suspended machine), the times
    /// missed are skipped, counted in [`RuleStatus::missed`], and the rule is evaluated
    /// at the latest due time: evaluations are never replayed, and the state machine
    /// counts the gap as time passed.
    ///
    /// Only the first call starts a thread; later ones return a handle that does nothing.
    pub fn start(self: &Arc<Self>) -> Running {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::warn!("the alert evaluator was started twice; the second start does nothing");
            return Running { stop, thread: None };
        }
        let thread = {
            let ev = Arc::clone(self);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sextant-alerts".into())
                .spawn(move || ev.run(&stop))
                .expect("spawning the alert evaluator thread")
        };
        Running {
            stop,
            thread: Some(thread),
        }
    }

    fn run(&self, stop: &(Mutex<bool>, Condvar)) {
        let now = wall_clock();
        let mut next: Vec<i64> = self
            .slots
            .iter()
            .map(|s| next_boundary(now, nanos(s.compiled.rule.interval).max(1)))
            .collect();
        loop {
            let now = wall_clock();
            for (i, slot) in self.slots.iter().enumerate() {
                if next[i] > now {
                    continue;
                }
                let every = nanos(slot.compiled.rule.interval).max(1);
                let behind = (now - next[i]) / every;
                let t = next[i] + behind * every;
                if behind > 0 {
                    slot.state.lock().missed += behind as u64;
                }
                let outcome = self.evaluate(slot, t);
                if outcome.changes.is_empty()
                    && slot
                        .state
                        .lock()
                        .last_evaluation
                        .is_some_and(|last| last > t)
                {
                    // Someone evaluated the rule at a later time on request: this time
                    // is skipped, and counted.
                    slot.state.lock().missed += 1;
                }
                next[i] = t.saturating_add(every);
            }
            let Some(&soonest) = next.iter().min() else {
                return;
            };
            let wait = Duration::from_nanos(soonest.saturating_sub(wall_clock()).max(0) as u64);
            let mut stopped = stop.0.lock();
            if *stopped {
                return;
            }
            stop.1.wait_for(&mut stopped, wait);
            if *stopped {
                return;
            }
        }
    }
}

/// The background evaluation of [`Evaluator::start`]; stops when dropped.
#[derive(Debug)]
pub struct Running {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the evaluations, waiting for one in progress to finish.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.halt();
    }
}

pub(crate) fn annotations(
    rule: &Rule,
    labels: &Labels,
    value: Option<f64>,
) -> BTreeMap<String, String> {
    rule.annotations
        .iter()
        .map(|(name, text)| {
            let shown = template::render(text, &rule.name, labels, value)
                .unwrap_or_else(|e| format!("(annotation {name} could not be rendered: {e})"));
            (name.clone(), shown)
        })
        .collect()
}

/// The notification of a rule after an evaluation: its firing instances and those that
/// resolved then.
fn notification(
    rule: &Rule,
    t: i64,
    instances: &Instances,
    changes: &[Change],
    changed: bool,
) -> Notification {
    let mut alerts: Vec<Alert> = instances
        .iter()
        .filter(|i| i.state == State::Firing)
        .map(|i| alert(rule, i, Status::Firing, None))
        .collect();
    alerts.extend(
        changes
            .iter()
            .filter(|c| c.transition == Transition::Resolved)
            .map(|c| alert(rule, &c.instance, Status::Resolved, Some(t))),
    );
    Notification {
        rule: rule.name.clone(),
        time: t,
        interval: rule.interval,
        changed,
        alerts,
    }
}

fn alert(rule: &Rule, i: &Instance, status: Status, ends_at: Option<i64>) -> Alert {
    Alert {
        status,
        labels: i.labels.clone(),
        annotations: annotations(rule, &i.labels, i.value),
        starts_at: i.active_at,
        ends_at,
        value: i.value,
        fingerprint: i.fingerprint.clone(),
    }
}

fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, nanos)
}

/// The first multiple of `every` after `t`.
fn next_boundary(t: i64, every: i64) -> i64 {
    (t / every + 1) * every
}
