//! Notifications to a real HTTP receiver on loopback: the webhook payload, Alertmanager's
//! API, retries, the queue's bound.

mod receiver;

use std::sync::Arc;
use std::time::Duration;

use receiver::Receiver;
use sextant_alerts::notify::{Alertmanager, Delivery, Webhook};
use sextant_alerts::{Evaluator, Options, Rule};
use sextant_engine::Point;
use sextant_query::Database;

const MIN: i64 = 60_000_000_000;

const HIGH: &str = "SELECT host, max(usage_user) AS value FROM cpu \
    WHERE time > eval_time() - INTERVAL '1 minute' AND time <= eval_time() \
    GROUP BY host HAVING max(usage_user) > 90";

/// Hosts a and b high at minute 1, only a at minute 2, none at minute 3.
fn db(dir: &std::path::Path) -> Arc<Database> {
    let db = Database::open(dir).unwrap();
    let p = |host: &str, v: f64, m: i64| {
        Point::metric("cpu")
            .tag("host", host)
            .field("usage_user", v)
            .time(m * MIN)
    };
    db.write_points(&[
        p("a", 95.0, 1),
        p("b", 99.0, 1),
        p("a", 97.0, 2),
        p("b", 5.0, 2),
        p("a", 1.0, 3),
        p("b", 1.0, 3),
    ])
    .unwrap();
    Arc::new(db)
}

fn rule() -> Rule {
    Rule::new("HighCpu", HIGH)
        .label("team", "infra")
        .annotation("summary", "{{ labels.host }} is hot")
        .annotation("runbook_url", "https://runbooks/cpu")
}

#[test]
fn the_webhook_gets_alertmanagers_payload_one_per_rule_and_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, Duration::ZERO);
    let options = Options::default()
        .notifier(Webhook::new(format!("{}/hook", receiver.url)))
        .delivery(Delivery::for_tests());
    let ev = Evaluator::new(db(dir.path()), vec![rule()], options).unwrap();
    for m in 1..=4 {
        ev.evaluate_at(m * MIN);
    }
    let got = receiver.wait_for(3);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].path, "/hook");
    let first = &got[0].body;
    assert_eq!(first["version"], "4");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["receiver"], "sextant");
    assert_eq!(first["groupLabels"]["alertname"], "HighCpu");
    assert_eq!(first["commonLabels"]["team"], "infra");
    assert!(first["commonLabels"].get("host").is_none());
    assert_eq!(
        first["commonAnnotations"]["runbook_url"],
        "https://runbooks/cpu"
    );
    let alerts = first["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "both hosts in one notification");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["host"], "a");
    assert_eq!(alerts[0]["annotations"]["summary"], "a is hot");
    assert_eq!(alerts[0]["startsAt"], "1970-01-01T00:01:00Z");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);
    // Minute 2: b resolved, a still firing.
    let second = &got[1].body;
    assert_eq!(second["status"], "firing");
    let statuses: Vec<_> = second["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["host"].as_str().unwrap(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("a", "firing"), ("b", "resolved")]);
    assert_eq!(second["alerts"][1]["endsAt"], "1970-01-01T00:02:00Z");
    // Minute 3: a resolved; minute 4: nothing to say.
    assert_eq!(got[2].body["status"], "resolved");
    drop(ev);
    assert_eq!(
        receiver.wait_for(3).len(),
        3,
        "nothing more after the workers stopped"
    );
}

#[test]
fn a_failing_receiver_is_retried_until_it_takes_the_notification() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(3, Duration::ZERO);
    let options = Options::default()
        .notifier(Webhook::new(receiver.url.clone()))
        .delivery(Delivery::for_tests());
    let ev = Evaluator::new(db(dir.path()), vec![rule()], options).unwrap();
    ev.evaluate_at(MIN);
    let got = receiver.wait_for(1);
    assert_eq!(got.len(), 1);
    assert_eq!(*receiver.attempts.lock(), 4);
    // The worker counts the send once the answer is in.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ev.notifier_stats()[0].sent == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = &ev.notifier_stats()[0];
    assert_eq!(
        (stats.sent, stats.retries, stats.failed),
        (1, 3, 0),
        "{stats:?}"
    );
    assert!(
        stats.last_error.as_deref().unwrap().contains("500"),
        "{stats:?}"
    );
}

#[test]
fn a_slow_receiver_delays_no_evaluation_and_a_full_queue_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Receiver::start(0, Duration::from_millis(300));
    let fast = Receiver::start(0, Duration::ZERO);
    let mut delivery = Delivery::for_tests();
    delivery.queue = 4;
    let options = Options::default()
        .notifier(Webhook::new(slow.url.clone()).repeat_interval(Some(Duration::ZERO)))
        .notifier(Webhook::new(fast.url.clone()).repeat_interval(Some(Duration::ZERO)))
        .delivery(delivery);
    let rule = Rule::new("Always", "SELECT 'x' AS host, 1.0 AS value");
    let ev = Evaluator::new(db(dir.path()), vec![rule], options).unwrap();
    let mut evaluating = Duration::ZERO;
    for m in 1..=12 {
        let started = std::time::Instant::now();
        ev.evaluate_at(m * MIN);
        evaluating += started.elapsed();
        // Time for the fast receiver to take each one.
        std::thread::sleep(Duration::from_millis(30));
    }
    // Twelve evaluations do not wait for twelve 300 ms answers (3.6 s).
    assert!(evaluating < Duration::from_millis(3000), "{evaluating:?}");
    assert_eq!(
        fast.wait_for(12).len(),
        12,
        "the fast receiver hears of every one"
    );
    let stats = ev.notifier_stats();
    assert_eq!(stats[1].dropped, 0, "{stats:?}");
    // The slow one: one in flight, four queued, the rest dropped.
    assert!(stats[0].dropped >= 4, "{stats:?}");
    drop(ev);
    let slow_got = slow.wait_for(12 - stats[0].dropped as usize).len() as u64;
    assert_eq!(
        slow_got + stats[0].dropped,
        12,
        "what was queued was delivered"
    );
}

#[test]
fn alertmanager_gets_v2_alerts_resent_while_firing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, Duration::ZERO);
    let options = Options::default()
        .notifier(
            Alertmanager::new(&format!("{}/", receiver.url)).resend_delay(Duration::from_secs(60)),
        )
        .delivery(Delivery::for_tests());
    let rule = rule().interval(Duration::from_secs(30));
    let ev = Evaluator::new(db(dir.path()), vec![rule], options).unwrap();
    // 1:00 fires a and b; 1:30 a and b still (data at 1:00 within the last minute):
    // not resent before a minute; 2:00 b resolves: sent.
    ev.evaluate_at(MIN);
    ev.evaluate_at(MIN + MIN / 2);
    ev.evaluate_at(2 * MIN);
    let got = receiver.wait_for(2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].path, "/api/v2/alerts");
    let alerts = got[0].body.as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["alertname"], "HighCpu");
    assert_eq!(alerts[0]["startsAt"], "1970-01-01T00:01:00Z");
    // Firing: endsAt four resend periods ahead.
    assert_eq!(alerts[0]["endsAt"], "1970-01-01T00:05:00Z");
    let resolved = &got[1].body.as_array().unwrap()[1];
    assert_eq!(resolved["labels"]["host"], "b");
    assert_eq!(resolved["endsAt"], "1970-01-01T00:02:00Z");
}
