//! A real Alertmanager, through its `POST /api/v2/alerts`, as Prometheus sends to it.

use std::time::Duration;

use serde_json::{Value, json};

use super::webhook::{agent, post};
use super::{Notification, Notifier, Status, rfc3339};
use crate::state::nanos;

/// Sends a rule's alerts to an Alertmanager as Prometheus does: every alert firing,
/// again every minute while it fires (Prometheus' `resend_delay`), with `endsAt` set
/// four resend periods (or evaluation intervals, if longer) ahead, so that Alertmanager
/// resolves them itself should Sextant stop; and each resolved alert once, with its
/// `endsAt`. Alertmanager groups, deduplicates and routes them.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    url: String,
    resend: Duration,
    agent: ureq::Agent,
}

impl Alertmanager {
    /// The Alertmanager at `base` (such as `http://localhost:9093`).
    pub fn new(base: &str) -> Alertmanager {
        Alertmanager {
            url: format!("{}/api/v2/alerts", base.trim_end_matches('/')),
            resend: Duration::from_secs(60),
            agent: agent(),
        }
    }

    /// Sets how often firing alerts are sent again. Default: 1 minute.
    pub fn resend_delay(mut self, every: Duration) -> Alertmanager {
        self.resend = every;
        self
    }
}

/// The body of `POST /api/v2/alerts` for a notification.
pub fn body(n: &Notification, resend: Duration) -> Value {
    let ahead = nanos(resend.max(n.interval).saturating_mul(4));
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let ends = match (a.status, a.ends_at) {
                (Status::Resolved, Some(t)) => t,
                _ => n.time.saturating_add(ahead),
            };
            json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(ends),
                "generatorURL": "",
            })
        })
        .collect();
    Value::Array(alerts)
}

impl Notifier for Alertmanager {
    fn name(&self) -> String {
        format!("alertmanager {}", self.url)
    }

    fn repeat_interval(&self) -> Option<Duration> {
        Some(self.resend)
    }

    fn send(&self, n: &Notification) -> Result<(), String> {
        post(&self.agent, &self.url, &body(n, self.resend))
    }
}
