//! Rules evaluated against a database: states, history, restarts, errors, log alerts.

use std::sync::Arc;
use std::time::Duration;

use arrow_cast::display::array_value_to_string;
use parking_lot::Mutex;
use sextant_alerts::notify::Notification;
use sextant_alerts::state::{State, Transition};
use sextant_alerts::{Error, Evaluator, Options, Rule, rule};
use sextant_engine::{Level, LogRecord, Point};
use sextant_query::Database;

const MIN: i64 = 60_000_000_000;

const HIGH_CPU: &str = "SELECT host, avg(usage_user) AS value FROM cpu \
    WHERE time > eval_time() - INTERVAL '5 minutes' AND time <= eval_time() \
    GROUP BY host HAVING avg(usage_user) > 90";

/// Host `a` at 95 % from minute 0 to 10, host `b` at 10 % throughout (0 to 30).
fn cpu(db: &Database) {
    let mut points = Vec::new();
    for m in 0..=30 {
        if m <= 10 {
            points.push(
                Point::metric("cpu")
                    .tag("host", "a")
                    .field("usage_user", 95.0)
                    .time(m * MIN),
            );
        }
        points.push(
            Point::metric("cpu")
                .tag("host", "b")
                .field("usage_user", 10.0)
                .time(m * MIN),
        );
    }
    db.write_points(&points).unwrap();
}

fn rows(db: &Database, sql: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in db.sql(sql).unwrap() {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).unwrap())
                    .collect(),
            );
        }
    }
    out
}

fn transitions(outcome: &sextant_alerts::Outcome) -> Vec<Transition> {
    outcome.changes.iter().map(|c| c.transition).collect()
}

#[test]
fn an_instance_goes_pending_firing_resolved_and_each_step_is_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let rule = Rule::new("HighCpu", HIGH_CPU)
        .for_duration(Duration::from_secs(120))
        .severity("critical")
        .label("team", "infra")
        .annotation("summary", "{{ labels.host }} at {{ value | round(1) }} %");
    let ev = Evaluator::new(Arc::clone(&db), vec![rule], Options::default()).unwrap();

    let o = ev.evaluate_rule_at("HighCpu", MIN).unwrap();
    assert_eq!(transitions(&o), [Transition::Pending], "{o:?}");
    let inst = &o.changes[0].instance;
    assert_eq!(inst.labels["host"], "a");
    assert_eq!(inst.labels["alertname"], "HighCpu");
    assert_eq!(inst.labels["severity"], "critical");
    assert_eq!(inst.labels["team"], "infra");
    assert_eq!(inst.value, Some(95.0));
    assert!(transitions(&ev.evaluate_rule_at("HighCpu", 2 * MIN).unwrap()).is_empty());
    let o = ev.evaluate_rule_at("HighCpu", 3 * MIN).unwrap();
    assert_eq!(transitions(&o), [Transition::Firing]);
    let alerts = ev.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].instance.state, State::Firing);
    assert_eq!(alerts[0].annotations["summary"], "a at 95 %");
    // Host a stops at minute 10: the window (10, 15] of minute 15 is empty.
    assert!(transitions(&ev.evaluate_rule_at("HighCpu", 14 * MIN).unwrap()).is_empty());
    let o = ev.evaluate_rule_at("HighCpu", 15 * MIN).unwrap();
    assert_eq!(transitions(&o), [Transition::Resolved]);
    assert!(ev.alerts().is_empty());

    let history = rows(
        &db,
        "SELECT state, host, CAST(level AS VARCHAR), value, annotations, time FROM alerts ORDER BY time",
    );
    let states: Vec<_> = history
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("pending", "a", "info"),
            ("firing", "a", "error"),
            ("resolved", "a", "info")
        ]
    );
    assert_eq!(history[1][3], "95.0");
    assert!(history[1][4].contains("a at 95 %"), "{}", history[1][4]);
}

#[test]
fn a_restart_neither_fires_again_nor_forgets_a_firing_alert() {
    let dir = tempfile::tempdir().unwrap();
    let told: Arc<Mutex<Vec<Notification>>> = Arc::default();
    let options = || {
        let told = Arc::clone(&told);
        Options::default().notifier(move |n: &Notification| {
            told.lock().push(n.clone());
            Ok(())
        })
    };
    let rule = || Rule::new("HighCpu", HIGH_CPU).for_duration(Duration::from_secs(60));
    {
        let db = Arc::new(Database::open(dir.path()).unwrap());
        cpu(&db);
        let ev = Evaluator::new(Arc::clone(&db), vec![rule()], options()).unwrap();
        ev.evaluate_at(MIN);
        ev.evaluate_at(2 * MIN);
        assert_eq!(ev.alerts()[0].instance.state, State::Firing);
        drop(ev);
        Arc::try_unwrap(db).unwrap().close().unwrap();
    }
    // The webhook-like callback heard of it once.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(told.lock().len(), 1);

    let db = Arc::new(Database::open(dir.path()).unwrap());
    let ev = Evaluator::new(Arc::clone(&db), vec![rule()], options()).unwrap();
    let restored = ev.alerts();
    assert_eq!(restored.len(), 1, "the firing alert is restored");
    assert_eq!(restored[0].instance.state, State::Firing);
    assert_eq!(restored[0].instance.active_at, MIN);
    assert_eq!(restored[0].instance.labels["host"], "a");
    // Still true after the restart: no transition, no notification.
    let o = ev.evaluate_rule_at("HighCpu", 5 * MIN).unwrap();
    assert!(o.changes.is_empty(), "{o:?}");
    drop(ev);
    assert_eq!(told.lock().len(), 1, "no notification after the restart");
    let firing = rows(&db, "SELECT count(*) FROM alerts WHERE state = 'firing'");
    assert_eq!(firing[0][0], "1");
}

#[test]
fn a_restored_pending_instance_counts_the_downtime_toward_for() {
    let dir = tempfile::tempdir().unwrap();
    let rule = || Rule::new("HighCpu", HIGH_CPU).for_duration(Duration::from_secs(180));
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let ev = Evaluator::new(Arc::clone(&db), vec![rule()], Options::default()).unwrap();
    assert_eq!(transitions(&ev.evaluate_at(MIN)[0]), [Transition::Pending]);
    drop(ev);
    let ev = Evaluator::new(Arc::clone(&db), vec![rule()], Options::default()).unwrap();
    assert_eq!(ev.alerts()[0].instance.state, State::Pending);
    // Down from minute 1 to 5: `for` (3 minutes) has passed since minute 1.
    assert_eq!(
        transitions(&ev.evaluate_at(5 * MIN)[0]),
        [Transition::Firing]
    );
}

#[test]
fn a_rule_that_fails_is_in_error_with_a_row_saying_why_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let rules = vec![
        // Integer division by zero fails when the query runs, not when it is planned.
        Rule::new(
            "Broken",
            "SELECT host, 1 / (count(*) - count(*)) AS value FROM cpu GROUP BY host",
        ),
        Rule::new(
            "Twins",
            "SELECT 'x' AS host, 1.0 AS value UNION ALL SELECT 'x', 2.0",
        ),
        Rule::new("HighCpu", HIGH_CPU),
    ];
    let ev = Evaluator::new(Arc::clone(&db), rules, Options::default()).unwrap();
    let outcomes = ev.evaluate_at(2 * MIN);
    let broken = outcomes[0].error.as_deref().unwrap();
    assert!(broken.contains("Divide by zero"), "{broken}");
    let twins = outcomes[1].error.as_deref().unwrap();
    assert!(twins.contains("same labels"), "{twins}");
    assert_eq!(transitions(&outcomes[2]), [Transition::Firing]);
    // The same error again writes no second row.
    ev.evaluate_at(3 * MIN);
    let errors = rows(
        &db,
        "SELECT alertname, message FROM alerts WHERE state = 'error' ORDER BY alertname",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0][1].starts_with("Broken could not be evaluated: "),
        "{errors:?}"
    );
    let status = ev.rules();
    assert_eq!(status[0].health, sextant_alerts::Health::Err);
    assert_eq!(status[2].health, sextant_alerts::Health::Ok);
    assert_eq!(status[0].evaluations, 2);
}

fn logs(db: &Database) {
    // Service api: 10 events a minute, 2 of them errors (20 %), minutes 0 to 9.
    // Service web: 10 events a minute, none errors, one fatal at minute 7.
    let mut points: Vec<Point> = Vec::new();
    for m in 0..10i64 {
        for i in 0..10i64 {
            let t = m * MIN + i * 1_000_000_000;
            let level = if i < 2 { Level::Error } else { Level::Info };
            points.push(
                LogRecord::new("logs", level, "request")
                    .tag("service", "api")
                    .time(t)
                    .into(),
            );
            let level = if m == 7 && i == 0 {
                Level::Fatal
            } else {
                Level::Info
            };
            points.push(
                LogRecord::new("logs", level, "request")
                    .tag("service", "web")
                    .time(t)
                    .into(),
            );
        }
    }
    db.write_points(&points).unwrap();
}

#[test]
fn log_level_rules_error_rate_per_service_and_any_fatal_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    logs(&db);
    let rules = rule::parse(
        r#"
        [[rule]]
        name = "ErrorRate"
        sql = """
        SELECT service,
               100.0 * sum(CASE WHEN level >= 'error' THEN 1 ELSE 0 END) / count(*) AS value
        FROM logs
        WHERE time > eval_time() - INTERVAL '5 minutes' AND time <= eval_time()
        GROUP BY service
        HAVING 100.0 * sum(CASE WHEN level >= 'error' THEN 1 ELSE 0 END) / count(*) > 5
        """
        for = "2m"
        annotations = { summary = "{{ labels.service }}: {{ value | round(1) }} % errors" }

        [[rule]]
        name = "AnyFatal"
        sql = """
        SELECT service, count(*) AS value FROM logs
        WHERE level = 'fatal' AND time > eval_time() - INTERVAL '1 minute' AND time <= eval_time()
        GROUP BY service
        """
        severity = "page"
        "#,
    )
    .unwrap();
    let ev = Evaluator::new(Arc::clone(&db), rules, Options::default()).unwrap();
    let mut fired = Vec::new();
    for m in 1..=12 {
        for o in ev.evaluate_at(m * MIN) {
            assert!(o.error.is_none(), "{o:?}");
            for c in o.changes {
                fired.push((
                    m,
                    o.rule.clone(),
                    c.instance.labels["service"].clone(),
                    c.transition,
                ));
            }
        }
    }
    use Transition::*;
    let s = |m, r: &str, svc: &str, t| (m, r.to_string(), svc.to_string(), t);
    assert_eq!(
        fired,
        [
            s(1, "ErrorRate", "api", Pending),
            s(3, "ErrorRate", "api", Firing),
            s(7, "AnyFatal", "web", Firing),
            s(8, "AnyFatal", "web", Resolved),
            // The last events are at minute 9 (and some seconds): gone from the last
            // 5 minutes at minute 15, not yet at 12.
        ]
    );
    // At minute 12 the window (7, 12] holds 9 events of minute 7 (its first, an error,
    // is at 7:00 exactly) and 20 of minutes 8 and 9: 5 errors in 29.
    let alerts = ev.alerts();
    assert_eq!(alerts[0].annotations["summary"], "api: 17.2 % errors");
}

#[test]
fn a_rule_file_is_checked_as_a_whole_against_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let rules = vec![
        Rule::new("NoColumn", "SELECT nohost FROM cpu"),
        Rule::new("Garbled", "SELEKT host FROM cpu"),
        Rule::new("Words", "SELECT host, 'high' AS value FROM cpu"),
        Rule::new("Typo", "SELECT host, 1 AS value FROM cpu")
            .annotation("summary", "{{ labels.hots }}"),
        Rule::new("Writes", "CREATE TABLE x (a INT)"),
        Rule::new("Named", "SELECT host FROM cpu").value_column("usage"),
        Rule::new("Typo", "SELECT 1 AS value"),
        Rule::new("Fine", HIGH_CPU),
    ];
    let e = Evaluator::new(Arc::clone(&db), rules, Options::default()).unwrap_err();
    let Error::Invalid(errors) = &e else {
        panic!("{e}")
    };
    let found: Vec<_> = errors
        .iter()
        .map(|e| (e.rule.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("Typo", "name"),
            ("NoColumn", "sql"),
            ("Garbled", "sql"),
            ("Words", "value_column"),
            ("Typo", "annotations.summary"),
            ("Writes", "sql"),
            ("Named", "value_column"),
        ],
        "{e}"
    );
    assert!(e.to_string().contains("nohost"), "{e}");
}

#[test]
fn a_backtest_gives_the_spans_first_firing_and_notifications_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let rule = Rule::new("HighCpu", HIGH_CPU).for_duration(Duration::from_secs(120));
    let ev = Evaluator::new(Arc::clone(&db), vec![rule], Options::default()).unwrap();
    let b = ev.backtest("HighCpu", MIN, 20 * MIN).unwrap();
    assert_eq!(b.evaluations, 20);
    assert_eq!(b.first_firing, Some(3 * MIN));
    assert_eq!(b.notifications, 2, "firing, then resolved");
    assert_eq!(b.instances.len(), 1);
    let h = &b.instances[0];
    assert_eq!(h.labels["host"], "a");
    assert_eq!(
        h.pending,
        [sextant_alerts::Span {
            start: MIN,
            end: Some(3 * MIN)
        }]
    );
    assert_eq!(
        h.firing,
        [sextant_alerts::Span {
            start: 3 * MIN,
            end: Some(15 * MIN)
        }]
    );
    assert!(b.errors.is_empty());
    assert!(
        ev.alerts().is_empty(),
        "the evaluator's own state is untouched"
    );
    assert!(
        !db.session().table_exist("alerts").unwrap(),
        "nothing written"
    );
    assert!(matches!(
        ev.backtest("Nope", 0, 1),
        Err(Error::NoSuchRule(_))
    ));
}

#[test]
fn the_background_thread_evaluates_at_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let rule = Rule::new("Always", "SELECT 1.0 AS value").interval(Duration::from_millis(20));
    let ev = Arc::new(Evaluator::new(Arc::clone(&db), vec![rule], Options::default()).unwrap());
    let running = ev.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ev.rules()[0].evaluations < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    running.stop();
    let status = &ev.rules()[0];
    assert!(status.evaluations >= 3, "{status:?}");
    assert_eq!(ev.alerts()[0].instance.state, State::Firing);
    let t = status.last_evaluation.unwrap();
    assert_eq!(
        t % 20_000_000,
        0,
        "evaluation times are aligned to the interval"
    );
}

#[test]
fn a_rule_over_a_table_not_created_yet_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let ev = Evaluator::new(
        Arc::clone(&db),
        vec![Rule::new("HighCpu", HIGH_CPU)],
        Options::default(),
    )
    .unwrap();
    assert_eq!(ev.warnings().len(), 1);
    assert!(
        ev.warnings()[0].message.contains("cpu"),
        "{:?}",
        ev.warnings()
    );
    let o = ev.evaluate_at(MIN).remove(0);
    assert!(o.error.as_deref().unwrap().contains("no table"), "{o:?}");
    cpu(&db);
    let o = ev.evaluate_at(2 * MIN).remove(0);
    assert!(o.error.is_none(), "{o:?}");
    assert_eq!(transitions(&o), [Transition::Firing]);
}

#[test]
fn an_evaluation_before_the_last_one_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    let ev = Evaluator::new(
        Arc::clone(&db),
        vec![Rule::new("HighCpu", HIGH_CPU)],
        Options::default(),
    )
    .unwrap();
    ev.evaluate_at(5 * MIN);
    let o = ev.evaluate_at(MIN).remove(0);
    assert!(
        o.error
            .as_deref()
            .unwrap()
            .contains("before the rule's last evaluation"),
        "{o:?}"
    );
    let status = &ev.rules()[0];
    assert_eq!(status.health, sextant_alerts::Health::Ok);
    assert_eq!(status.last_evaluation, Some(5 * MIN));
    assert_eq!(
        rows(&db, "SELECT count(*) FROM alerts WHERE state = 'error'")[0][0],
        "0"
    );
}

#[test]
fn a_restart_after_only_rule_errors_starts_with_nothing_active() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    let rule = || vec![Rule::new("HighCpu", HIGH_CPU)];
    let ev = Evaluator::new(Arc::clone(&db), rule(), Options::default()).unwrap();
    assert!(ev.evaluate_at(MIN)[0].error.is_some(), "no table cpu yet");
    drop(ev);
    let ev = Evaluator::new(Arc::clone(&db), rule(), Options::default()).unwrap();
    assert!(ev.alerts().is_empty());
}

#[test]
fn labels_the_engine_takes_as_no_column_are_kept_in_the_labels_json_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    cpu(&db);
    // An unaliased expression as a label column, a name with a space, and `level`.
    let sql = "SELECT host, upper(host), 'x' AS \"the zone\", 'l' AS level, max(usage_user) AS value \
        FROM cpu WHERE time > eval_time() - INTERVAL '5 minutes' AND time <= eval_time() \
        GROUP BY host HAVING max(usage_user) > 90";
    let rule = || vec![Rule::new("Odd", sql)];
    let options = || Options::default().table("Alert_History");
    let ev = Evaluator::new(Arc::clone(&db), rule(), options()).unwrap();
    let o = ev.evaluate_at(MIN).remove(0);
    assert!(o.error.is_none(), "{o:?}");
    assert_eq!(transitions(&o), [Transition::Firing]);
    let labels = &o.changes[0].instance.labels;
    assert_eq!(labels["upper(cpu.host)"], "A");
    assert_eq!(labels["the zone"], "x");
    let stored = rows(&db, "SELECT host, labels FROM \"Alert_History\"");
    assert_eq!(stored[0][0], "a");
    assert!(stored[0][1].contains("\"the zone\":\"x\""), "{stored:?}");
    drop(ev);
    let ev = Evaluator::new(Arc::clone(&db), rule(), options()).unwrap();
    let restored = ev.alerts();
    assert_eq!(
        restored.len(),
        1,
        "restored from a table whose name has capitals"
    );
    assert_eq!(&restored[0].instance.labels, labels);
    assert!(
        ev.evaluate_at(2 * MIN)[0].changes.is_empty(),
        "no second firing"
    );
}

#[test]
fn rows_written_after_the_rules_were_loaded_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path()).unwrap());
    // The table exists, with host b only, when the rule is planned.
    db.write_points(&[Point::metric("cpu")
        .tag("host", "b")
        .field("usage_user", 10.0)
        .time(0)])
        .unwrap();
    let ev = Evaluator::new(
        Arc::clone(&db),
        vec![Rule::new("HighCpu", HIGH_CPU)],
        Options::default(),
    )
    .unwrap();
    assert!(transitions(&ev.evaluate_at(MIN).remove(0)).is_empty());
    cpu(&db);
    let o = ev.evaluate_at(2 * MIN).remove(0);
    assert!(o.error.is_none(), "{o:?}");
    assert_eq!(transitions(&o), [Transition::Firing], "{o:?}");
    db.flush().unwrap();
    let o = ev.evaluate_at(15 * MIN).remove(0);
    assert_eq!(transitions(&o), [Transition::Resolved], "{o:?}");
}
