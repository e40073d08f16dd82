//! Telling someone: notifications of a rule's alerts, delivered by notifiers.
//!
//! After each evaluation of a rule that has instances firing or just resolved, the
//! evaluator makes one [`Notification`] for the rule (its instances grouped, as
//! Alertmanager groups by `alertname`) and offers it to every notifier. A notifier is
//! sent it when something changed (an instance fired or resolved) or, while instances go
//! on firing, once its [`Notifier::repeat_interval`] has passed since it was last sent
//! the rule's alerts.
//!
//! Each notifier has its own bounded queue and worker thread: a slow or failing receiver
//! delays neither the evaluations nor the other notifiers. A failed send is retried with
//! exponential backoff (see [`Delivery`]); a notification offered while the queue is
//! full is dropped and counted, and nothing queued is lost while it is retried.
//!
//! Notifiers here: [`Webhook`] (Alertmanager's webhook payload, for receivers written for
//! Alertmanager), [`Alertmanager`] (a real Alertmanager's `POST /api/v2/alerts`), and
//! any `Fn(&Notification) -> Result<(), String>` (a callback of the embedding program).

mod alertmanager;
mod dispatch;
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

pub use alertmanager::Alertmanager;
pub(crate) use dispatch::Dispatcher;
pub use dispatch::{Delivery, NotifierStats};
pub use webhook::Webhook;

use crate::state::Labels;

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The alert is firing.
    Firing,
    /// The alert stopped firing.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert instance in a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Firing or resolved.
    pub status: Status,
    /// Its labels, `alertname` included.
    pub labels: Labels,
    /// Its rendered annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it became active (pending), ns since the Unix epoch.
    pub starts_at: i64,
    /// When it resolved; `None` while firing.
    pub ends_at: Option<i64>,
    /// Its figure at the last evaluation that returned it.
    pub value: Option<f64>,
    /// A hash of its labels (16 hex digits).
    pub fingerprint: String,
}

/// A rule's alerts after one evaluation: every instance firing, and those that resolved
/// at this evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The rule.
    pub rule: String,
    /// The evaluation time, ns since the Unix epoch.
    pub time: i64,
    /// The rule's evaluation interval.
    pub interval: Duration,
    /// Whether an instance fired or resolved at this evaluation.
    pub changed: bool,
    /// The alerts, firing ones first.
    pub alerts: Vec<Alert>,
}

impl Notification {
    /// `Firing` if any alert fires, else `Resolved`.
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// The labels the group is formed by: `alertname`.
    pub fn group_labels(&self) -> Labels {
        Labels::from([(crate::ALERTNAME.to_string(), self.rule.clone())])
    }

    /// The labels every alert has with the same value.
    pub fn common_labels(&self) -> Labels {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// The annotations every alert has with the same value.
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }
}

fn common<'a>(mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Something that delivers notifications: implement it to receive them in the embedding
/// program, or use [`Webhook`] or [`Alertmanager`].
pub trait Notifier: Send + Sync + 'static {
    /// A short name for logs and statistics (`webhook http://...`).
    fn name(&self) -> String;

    /// How often the alerts of a rule that goes on firing are sent again; `None`: only
    /// when something changes. Default: `None`.
    fn repeat_interval(&self) -> Option<Duration> {
        None
    }

    /// Delivers one notification; an error is retried (see [`Delivery`]).
    fn send(&self, notification: &Notification) -> Result<(), String>;
}

impl<F> Notifier for F
where
    F: Fn(&Notification) -> Result<(), String> + Send + Sync + 'static,
{
    fn name(&self) -> String {
        "callback".to_string()
    }

    fn send(&self, notification: &Notification) -> Result<(), String> {
        self(notification)
    }
}

/// RFC 3339 with nanoseconds, as Alertmanager writes times.
pub(crate) fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_labels_are_those_every_alert_shares() {
        let alert = |host: &str| Alert {
            status: Status::Firing,
            labels: Labels::from([
                ("alertname".into(), "r".into()),
                ("host".into(), host.into()),
                ("dc".into(), "x".into()),
            ]),
            annotations: BTreeMap::new(),
            starts_at: 0,
            ends_at: None,
            value: None,
            fingerprint: String::new(),
        };
        let n = Notification {
            rule: "r".into(),
            time: 0,
            interval: Duration::from_secs(60),
            changed: true,
            alerts: vec![alert("a"), alert("b")],
        };
        let common = n.common_labels();
        assert_eq!(common.len(), 2);
        assert!(!common.contains_key("host"));
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.500Z");
    }
}
