//! The state of a rule's alert instances, stepped at each evaluation: Prometheus' state
//! machine, inactive -> pending -> firing -> resolved.
//!
//! - An instance the query returns for the first time becomes *pending*, or *firing* at
//!   once when the rule's `for` is 0. Its `active_at` is that evaluation's time.
//! - A pending instance fires at the first evaluation that returns it once `for` has
//!   passed since `active_at`; one that is not returned before then is cleared
//!   (*inactive*, no notification).
//! - A firing instance that is no longer returned is *resolved*, unless the rule has a
//!   `keep_firing_for`: then it goes on firing until that long has passed since the first
//!   evaluation that did not return it (returned again, it simply goes on firing).
//!
//! Times are the evaluation times, not the wall clock, so the machine behaves the same in
//! a backtest and when evaluations were missed: a gap between evaluations counts as time
//! passed (see the crate's documentation on restarts).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::time::Duration;

/// An instance's labels, by name.
pub type Labels = BTreeMap<String, String>;

/// One row of a rule's result: an instance whose condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Its labels, `alertname` included.
    pub labels: Labels,
    /// Its figure, when the rule has a value column.
    pub value: Option<f64>,
}

/// The state of an active instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// The condition holds, not yet for the rule's `for`.
    Pending,
    /// The condition has held for `for` (or is kept firing).
    Firing,
}

impl State {
    /// `pending` or `firing`, as in Prometheus' API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An active alert instance: pending or firing.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its labels, `alertname` included.
    pub labels: Labels,
    /// A hash of the labels, as 16 hex digits.
    pub fingerprint: String,
    /// Pending or firing.
    pub state: State,
    /// Its figure at the last evaluation that returned it.
    pub value: Option<f64>,
    /// When it became pending (or firing, with `for` 0), in ns since the Unix epoch.
    pub active_at: i64,
    /// When it fired, if it has.
    pub fired_at: Option<i64>,
    /// The last evaluation that returned it.
    pub last_seen: i64,
    /// The first evaluation that did not return it while it was kept firing.
    pub kept_firing_since: Option<i64>,
}

/// What happened to an instance at an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Inactive to pending.
    Pending,
    /// Pending (or, with `for` 0, inactive) to firing.
    Firing,
    /// Firing to inactive.
    Resolved,
    /// Pending to inactive, without having fired.
    Cleared,
}

impl Transition {
    /// The state named in the alerts table: `pending`, `firing`, `resolved`, `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Pending => "pending",
            Transition::Firing => "firing",
            Transition::Resolved => "resolved",
            Transition::Cleared => "inactive",
        }
    }
}

/// An instance's transition at an evaluation, with the instance as it was then.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The instance (for `Resolved` and `Cleared`, as it was before).
    pub instance: Instance,
    /// What happened.
    pub transition: Transition,
}

/// A rule's active instances, by fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instances {
    active: BTreeMap<String, Instance>,
}

impl Instances {
    /// The active instances.
    pub fn iter(&self) -> impl Iterator<Item = &Instance> {
        self.active.values()
    }

    /// How many are active.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Puts back an instance restored from the alerts table.
    pub(crate) fn restore(&mut self, instance: Instance) {
        self.active.insert(instance.fingerprint.clone(), instance);
    }

    /// Steps every instance to evaluation time `t`, given the samples the query returned
    /// then. Fails, changing nothing, if two samples have the same labels.
    pub fn step(
        &mut self,
        samples: Vec<Sample>,
        t: i64,
        for_: Duration,
        keep_firing_for: Duration,
    ) -> Result<Vec<Change>, String> {
        let for_ = nanos(for_);
        let keep = nanos(keep_firing_for);
        let mut present = BTreeMap::new();
        for s in samples {
            let fp = fingerprint(&s.labels);
            if let Some(other) = present.insert(fp, s) {
                return Err(format!(
                    "the query returned two rows with the same labels ({}); each row must differ in its label columns",
                    format_labels(&other.labels)
                ));
            }
        }
        let mut changes = Vec::new();
        // Instances not returned this time.
        let gone: Vec<String> = self
            .active
            .keys()
            .filter(|fp| !present.contains_key(*fp))
            .cloned()
            .collect();
        for fp in gone {
            let Entry::Occupied(mut e) = self.active.entry(fp) else {
                continue;
            };
            let inst = e.get_mut();
            match inst.state {
                State::Pending => changes.push(Change {
                    instance: e.remove(),
                    transition: Transition::Cleared,
                }),
                State::Firing => {
                    let since = *inst.kept_firing_since.get_or_insert(t);
                    if keep == 0 || t.saturating_sub(since) >= keep {
                        changes.push(Change {
                            instance: e.remove(),
                            transition: Transition::Resolved,
                        });
                    }
                }
            }
        }
        for (fp, s) in present {
            match self.active.entry(fp) {
                Entry::Occupied(mut e) => {
                    let inst = e.get_mut();
                    inst.value = s.value;
                    inst.last_seen = t;
                    inst.kept_firing_since = None;
                    if inst.state == State::Pending && t.saturating_sub(inst.active_at) >= for_ {
                        inst.state = State::Firing;
                        inst.fired_at = Some(t);
                        changes.push(Change {
                            instance: inst.clone(),
                            transition: Transition::Firing,
                        });
                    }
                }
                Entry::Vacant(e) => {
                    let firing = for_ == 0;
                    let inst = Instance {
                        fingerprint: e.key().clone(),
                        labels: s.labels,
                        state: if firing {
                            State::Firing
                        } else {
                            State::Pending
                        },
                        value: s.value,
                        active_at: t,
                        fired_at: firing.then_some(t),
                        last_seen: t,
                        kept_firing_since: None,
                    };
                    changes.push(Change {
                        instance: inst.clone(),
                        transition: if firing {
                            Transition::Firing
                        } else {
                            Transition::Pending
                        },
                    });
                    e.insert(inst);
                }
            }
        }
        Ok(changes)
    }
}

/// A duration in ns, as the times here are, saturating at `i64::MAX` (292 years).
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A stable hash of a label set (FNV-1a over the sorted names and values), as 16 hex
/// digits: the same labels give the same fingerprint in every process and version.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `a="x", b="y"`, for messages.
pub fn format_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    fn sample(host: &str, v: f64) -> Sample {
        Sample {
            labels: Labels::from([
                ("alertname".into(), "r".into()),
                ("host".into(), host.into()),
            ]),
            value: Some(v),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<Transition> {
        changes.iter().map(|c| c.transition).collect()
    }

    #[test]
    fn pending_fires_after_for_and_resolves_when_gone() {
        let mut s = Instances::default();
        let f = Duration::from_secs(120);
        let z = Duration::ZERO;
        let c = s.step(vec![sample("a", 1.0)], 0, f, z).unwrap();
        assert_eq!(kinds(&c), [Transition::Pending]);
        assert!(
            s.step(vec![sample("a", 2.0)], MIN, f, z)
                .unwrap()
                .is_empty()
        );
        let c = s.step(vec![sample("a", 3.0)], 2 * MIN, f, z).unwrap();
        assert_eq!(kinds(&c), [Transition::Firing]);
        assert_eq!(c[0].instance.active_at, 0);
        assert_eq!(c[0].instance.fired_at, Some(2 * MIN));
        assert_eq!(c[0].instance.value, Some(3.0));
        let c = s.step(vec![], 3 * MIN, f, z).unwrap();
        assert_eq!(kinds(&c), [Transition::Resolved]);
        assert!(s.is_empty());
    }

    #[test]
    fn pending_that_stops_holding_is_cleared_without_firing() {
        let mut s = Instances::default();
        let f = Duration::from_secs(300);
        s.step(vec![sample("a", 1.0)], 0, f, Duration::ZERO)
            .unwrap();
        let c = s.step(vec![], MIN, f, Duration::ZERO).unwrap();
        assert_eq!(kinds(&c), [Transition::Cleared]);
        // Back again: pending anew, its clock restarted.
        let c = s
            .step(vec![sample("a", 1.0)], 2 * MIN, f, Duration::ZERO)
            .unwrap();
        assert_eq!(kinds(&c), [Transition::Pending]);
        assert_eq!(c[0].instance.active_at, 2 * MIN);
    }

    #[test]
    fn for_zero_fires_at_once() {
        let mut s = Instances::default();
        let c = s
            .step(
                vec![sample("a", 1.0), sample("b", 1.0)],
                5,
                Duration::ZERO,
                Duration::ZERO,
            )
            .unwrap();
        assert_eq!(kinds(&c), [Transition::Firing, Transition::Firing]);
    }

    #[test]
    fn keep_firing_for_counts_from_the_first_evaluation_without_the_instance() {
        let mut s = Instances::default();
        let keep = Duration::from_secs(120);
        s.step(vec![sample("a", 1.0)], 0, Duration::ZERO, keep)
            .unwrap();
        assert!(
            s.step(vec![], MIN, Duration::ZERO, keep)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.step(vec![], 2 * MIN, Duration::ZERO, keep)
                .unwrap()
                .is_empty()
        );
        let c = s.step(vec![], 3 * MIN, Duration::ZERO, keep).unwrap();
        assert_eq!(kinds(&c), [Transition::Resolved]);
        // Returned again while kept: goes on firing, the keep clock reset.
        s.step(vec![sample("a", 1.0)], 4 * MIN, Duration::ZERO, keep)
            .unwrap();
        s.step(vec![], 5 * MIN, Duration::ZERO, keep).unwrap();
        assert!(
            s.step(vec![sample("a", 1.0)], 6 * MIN, Duration::ZERO, keep)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.step(vec![], 7 * MIN, Duration::ZERO, keep)
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.iter().next().unwrap().state, State::Firing);
    }

    #[test]
    fn two_rows_with_the_same_labels_are_an_error_that_changes_nothing() {
        let mut s = Instances::default();
        let e = s
            .step(
                vec![sample("a", 1.0), sample("a", 2.0)],
                0,
                Duration::ZERO,
                Duration::ZERO,
            )
            .unwrap_err();
        assert!(e.contains("host=\"a\""), "{e}");
        assert!(s.is_empty());
    }

    #[test]
    fn fingerprints_are_stable_and_tell_labels_apart() {
        let a = Labels::from([("a".into(), "bc".into())]);
        let b = Labels::from([("ab".into(), "c".into())]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_eq!(fingerprint(&Labels::new()), "cbf29ce484222325");
    }
}
