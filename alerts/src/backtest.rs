//! Backtests: a rule run over a past range at its interval, without side effects.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::evaluator::Evaluator;
use crate::state::{Instances, Labels, Transition, nanos};

/// Most evaluations a backtest runs.
pub const MAX_EVALUATIONS: i64 = 100_000;

/// A time span, ns since the Unix epoch: `start` included, `end` excluded; `end` is
/// `None` when the span was still open at the end of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The evaluation that began it.
    pub start: i64,
    /// The evaluation that ended it.
    pub end: Option<i64>,
}

/// One instance's history in a backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceHistory {
    /// Its labels.
    pub labels: Labels,
    /// When it was pending (the condition held, not yet for `for`).
    pub pending: Vec<Span>,
    /// When it was firing.
    pub firing: Vec<Span>,
}

/// What a rule would have done over a past range.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    /// The rule.
    pub rule: String,
    /// The first evaluation time.
    pub from: i64,
    /// The last evaluation time is at most this.
    pub to: i64,
    /// Evaluations run.
    pub evaluations: u64,
    /// Each instance that was ever pending or firing, in the order first seen.
    pub instances: Vec<InstanceHistory>,
    /// Notifications a notifier told only of changes would have been sent: one per
    /// evaluation at which an instance fired or resolved (a rule's instances are grouped).
    pub notifications: u64,
    /// The first time an instance fired.
    pub first_firing: Option<i64>,
    /// Evaluations that failed, with why.
    pub errors: Vec<(i64, String)>,
}

impl Evaluator {
    /// Evaluates `rule` at `from`, `from + interval`, ... up to `to` (ns since the Unix
    /// epoch) as if each were now, on a fresh state: nothing is written and nobody is
    /// told. "Would this rule have caught last Tuesday's incident, and how noisy would it
    /// have been?"
    pub fn backtest(&self, rule: &str, from: i64, to: i64) -> Result<Backtest> {
        if to < from {
            return Err(Error::InvalidInput(format!(
                "the backtest's end ({to}) is before its start ({from})"
            )));
        }
        let (compiled, db) = self.slot_rule(rule)?;
        let r = &compiled.rule;
        let every = nanos(r.interval).max(1);
        let evaluations = (to - from) / every + 1;
        if evaluations > MAX_EVALUATIONS {
            return Err(Error::InvalidInput(format!(
                "the backtest would run {evaluations} evaluations at the rule's interval; at most {MAX_EVALUATIONS} are run at once: shorten the range"
            )));
        }
        let mut state = Instances::default();
        let mut report = Backtest {
            rule: r.name.clone(),
            from,
            to,
            evaluations: 0,
            instances: Vec::new(),
            notifications: 0,
            first_firing: None,
            errors: Vec::new(),
        };
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut t = from;
        while t <= to {
            report.evaluations += 1;
            let stepped = db
                .runtime()
                .block_on(compiled.run(db.session(), t, self.timeout(r)))
                .and_then(|samples| state.step(samples, t, r.for_, r.keep_firing_for));
            match stepped {
                Err(e) => report.errors.push((t, e)),
                Ok(changes) => {
                    let mut notify = false;
                    for c in changes {
                        let i = *index
                            .entry(c.instance.fingerprint.clone())
                            .or_insert_with(|| {
                                report.instances.push(InstanceHistory {
                                    labels: c.instance.labels.clone(),
                                    pending: Vec::new(),
                                    firing: Vec::new(),
                                });
                                report.instances.len() - 1
                            });
                        let h = &mut report.instances[i];
                        match c.transition {
                            Transition::Pending => h.pending.push(Span {
                                start: t,
                                end: None,
                            }),
                            Transition::Firing => {
                                close(&mut h.pending, t);
                                h.firing.push(Span {
                                    start: t,
                                    end: None,
                                });
                                report.first_firing.get_or_insert(t);
                                notify = true;
                            }
                            Transition::Resolved => {
                                close(&mut h.firing, t);
                                notify = true;
                            }
                            Transition::Cleared => close(&mut h.pending, t),
                        }
                    }
                    report.notifications += u64::from(notify);
                }
            }
            t = match t.checked_add(every) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(report)
    }
}

fn close(spans: &mut [Span], t: i64) {
    if let Some(last) = spans.last_mut()
        && last.end.is_none()
    {
        last.end = Some(t);
    }
}
