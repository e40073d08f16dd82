//! The JSON a server shows: Prometheus' `/api/v1/alerts` and `/api/v1/rules` shapes, and
//! a backtest's report; and the times such APIs take.

use serde_json::{Value, json};

use crate::backtest::{Backtest, Span};
use crate::evaluator::{ActiveAlert, Evaluator, Health};
use crate::notify::rfc3339;

/// `{"status": "success", "data": {"alerts": [...]}}`: every pending and firing instance
/// with `labels`, `annotations`, `state`, `activeAt` and `value` (text, as Prometheus
/// gives it).
pub fn alerts(ev: &Evaluator) -> Value {
    let alerts: Vec<Value> = ev.alerts().iter().map(alert).collect();
    json!({"status": "success", "data": {"alerts": alerts}})
}

fn alert(a: &ActiveAlert) -> Value {
    json!({
        "labels": a.instance.labels,
        "annotations": a.annotations,
        "state": a.instance.state.as_str(),
        "activeAt": rfc3339(a.instance.active_at),
        "value": a.instance.value.map_or(String::new(), |v| v.to_string()),
    })
}

/// `{"status": "success", "data": {"groups": [{"name": ..., "rules": [...]}]}}`: the rules,
/// one group named `group`, each with its query, `for`, labels, annotations, health,
/// last error, last evaluation, and its active alerts.
pub fn rules(ev: &Evaluator, group: &str) -> Value {
    let alerts = ev.alerts();
    let rules: Vec<Value> = ev
        .rules()
        .iter()
        .map(|s| {
            let r = &s.rule;
            let mine: Vec<Value> = alerts
                .iter()
                .filter(|a| a.rule == r.name)
                .map(alert)
                .collect();
            let state = if mine.iter().any(|a| a["state"] == "firing") {
                "firing"
            } else if mine.is_empty() {
                "inactive"
            } else {
                "pending"
            };
            json!({
                "type": "alerting",
                "name": r.name,
                "query": r.sql,
                "duration": r.for_.as_secs_f64(),
                "keepFiringFor": r.keep_firing_for.as_secs_f64(),
                "interval": r.interval.as_secs_f64(),
                "labels": r.labels,
                "annotations": r.annotations,
                "state": state,
                "alerts": mine,
                "health": match s.health {
                    Health::Unknown => "unknown",
                    Health::Ok => "ok",
                    Health::Err => "err",
                },
                "lastError": s.last_error.clone().unwrap_or_default(),
                "lastEvaluation": s.last_evaluation.map_or(Value::Null, |t| rfc3339(t).into()),
                "evaluationTime": s.last_duration.as_secs_f64(),
                "evaluations": s.evaluations,
                "missedEvaluations": s.missed,
            })
        })
        .collect();
    json!({"status": "success", "data": {"groups": [{"name": group, "rules": rules}]}})
}

/// A backtest as JSON: times in RFC 3339, spans as `{"start", "end"}` (`end` null when
/// still open at the range's end).
pub fn backtest(b: &Backtest) -> Value {
    let span = |s: &Span| json!({"start": rfc3339(s.start), "end": s.end.map(rfc3339)});
    json!({
        "rule": b.rule,
        "from": rfc3339(b.from),
        "to": rfc3339(b.to),
        "evaluations": b.evaluations,
        "notifications": b.notifications,
        "firstFiring": b.first_firing.map(rfc3339),
        "instances": b.instances.iter().map(|i| json!({
            "labels": i.labels,
            "pending": i.pending.iter().map(span).collect::<Vec<_>>(),
            "firing": i.firing.iter().map(span).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "errors": b.errors.iter().map(|(t, e)| json!({"time": rfc3339(*t), "error": e})).collect::<Vec<_>>(),
    })
}

/// A time (ns since the Unix epoch) in RFC 3339, UTC, as the APIs show times.
pub fn format_time(nanos: i64) -> String {
    rfc3339(nanos)
}

/// Reads a time: RFC 3339 (`2026-12-01T14:00:00Z`), `now`, or `now-` followed by a
/// duration (`now-6h`), relative to `now` (ns since the Unix epoch).
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let d = crate::rule::parse_duration(ago)?;
        return Ok(now.saturating_sub(crate::state::nanos(d)));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| {
            format!("{text:?} is not a time: write it as 2026-12-01T14:00:00Z, now, or now-6h")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc3339_or_relative_to_now() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z", 0), Ok(60_000_000_000));
        assert_eq!(parse_time("now", 5), Ok(5));
        assert_eq!(parse_time("now-1m", 120_000_000_000), Ok(60_000_000_000));
        assert!(
            parse_time("yesterday", 0)
                .unwrap_err()
                .contains("not a time")
        );
    }
}
