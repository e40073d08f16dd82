//! A webhook receiving Alertmanager's webhook payload, so receivers written for
//! Alertmanager work unchanged.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Notification, Notifier, Status, rfc3339};

/// Posts each notification as JSON in the shape of Alertmanager's webhook payload
/// (version 4): `status`, `groupLabels`, `commonLabels`, `commonAnnotations`, and
/// `alerts[]` with `status`, `labels`, `annotations`, `startsAt`, `endsAt` and
/// `fingerprint`. The receiver is `sextant`.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    repeat: Option<Duration>,
    agent: ureq::Agent,
}

impl Webhook {
    /// A webhook posting to `url` (http or https), sent again every 4 hours while a
    /// rule's alerts go on firing (Alertmanager's default `repeat_interval`).
    pub fn new(url: impl Into<String>) -> Webhook {
        Webhook {
            url: url.into(),
            repeat: Some(Duration::from_secs(4 * 3600)),
            agent: agent(),
        }
    }

    /// Sets how often firing alerts are sent again; `None`: only on changes.
    pub fn repeat_interval(mut self, every: Option<Duration>) -> Webhook {
        self.repeat = every;
        self
    }
}

pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

pub(super) fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(), String> {
    match agent.post(url).send_json(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::StatusCode(code)) => Err(format!("{url} answered HTTP {code}")),
        Err(e) => Err(format!("posting to {url}: {e}")),
    }
}

/// The webhook payload of a notification.
pub fn payload(n: &Notification) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.status.as_str(),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": match (a.status, a.ends_at) {
                    (Status::Resolved, Some(t)) => rfc3339(t),
                    _ => "0001-01-01T00:00:00Z".to_string(),
                },
                "generatorURL": "",
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={:?}}}", n.rule),
        "truncatedAlerts": 0,
        "status": n.status().as_str(),
        "receiver": "sextant",
        "groupLabels": n.group_labels(),
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": "",
        "alerts": alerts,
    })
}

impl Notifier for Webhook {
    fn name(&self) -> String {
        format!("webhook {}", self.url)
    }

    fn repeat_interval(&self) -> Option<Duration> {
        self.repeat
    }

    fn send(&self, n: &Notification) -> Result<(), String> {
        post(&self.agent, &self.url, &payload(n))
    }
}
