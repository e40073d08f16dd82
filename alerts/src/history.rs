//! The alerts table: every transition of every instance, and every rule error, as an
//! event row; read back on start to restore the instances that were active.
//!
//! A row of the table (an event table, default name `alerts`):
//!
//! | column | kind | what |
//! |---|---|---|
//! | `time` | time | the evaluation time |
//! | `level` | level | `warn` when firing (`error` for severity `critical` or `page`), `error` for a rule error, else `info` |
//! | `alertname` | tag | the rule |
//! | `state` | tag | `pending`, `firing`, `resolved`, `inactive` (pending cleared) or `error` |
//! | *label* | tag | each instance label, but those named like a column of this table or with a name the engine does not take as a column (anything but ASCII letters, digits, `_`, `-`, `.`; such labels are in `labels` only) |
//! | `message` | string | a sentence: what happened, or the rule's error |
//! | `value` | f64 | the instance's figure |
//! | `active_at` | i64 | when the instance became active, ns since the Unix epoch |
//! | `fingerprint` | string | the hash of its labels |
//! | `labels` | string | every label, as a JSON object |
//! | `annotations` | string | the rendered annotations, as a JSON object |

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use datafusion::common::TableReference;
use sextant_engine::schema::validate_name;
use sextant_engine::{Level, Point};
use sextant_query::Database;

use crate::compiled::{ALERTNAME, SEVERITY};
use crate::error::Result;
use crate::state::{Change, Instance, Labels, State, Transition, format_labels};

/// Columns of the alerts table: labels of these names are kept in `labels` only.
const RESERVED: [&str; 11] = [
    "time",
    "level",
    ALERTNAME,
    "state",
    "message",
    "value",
    "active_at",
    "fingerprint",
    "labels",
    "annotations",
    "error",
];

/// The row of one transition.
pub(crate) fn change_row(
    table: &str,
    rule: &str,
    t: i64,
    change: &Change,
    annotations: &BTreeMap<String, String>,
) -> Point {
    let inst = &change.instance;
    let level = match change.transition {
        Transition::Firing => match inst.labels.get(SEVERITY).map(String::as_str) {
            Some("critical" | "page") => Level::Error,
            _ => Level::Warn,
        },
        _ => Level::Info,
    };
    let mut shown = inst.labels.clone();
    shown.remove(ALERTNAME);
    let mut message = format!("{rule} {}", change.transition.as_str());
    if !shown.is_empty() {
        message.push_str(&format!(": {}", format_labels(&shown)));
    }
    if let Some(v) = inst.value {
        message.push_str(&format!(", value {v}"));
    }
    let mut p = Point::event(table)
        .time(t)
        .level(level)
        .tag(ALERTNAME, rule)
        .tag("state", change.transition.as_str());
    for (k, v) in &inst.labels {
        if !RESERVED.contains(&k.as_str()) && validate_name("column", k).is_ok() {
            p = p.tag(k.as_str(), v.as_str());
        }
    }
    p = p
        .field("message", message)
        .field("active_at", inst.active_at)
        .field("fingerprint", inst.fingerprint.as_str())
        .field("labels", json(&inst.labels))
        .field("annotations", json(annotations));
    if let Some(v) = inst.value {
        p = p.field("value", v);
    }
    p
}

/// The row of a rule's error.
pub(crate) fn error_row(table: &str, rule: &str, t: i64, error: &str) -> Point {
    Point::event(table)
        .time(t)
        .level(Level::Error)
        .tag(ALERTNAME, rule)
        .tag("state", "error")
        .field("message", format!("{rule} could not be evaluated: {error}"))
}

fn json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).expect("a map of strings is JSON")
}

/// The instances active at the last transition written for each of `rules`, from the
/// alerts table (none if it does not exist yet), as (rule, instance).
pub(crate) fn restore(
    db: &Database,
    table: &str,
    rules: &[&str],
) -> Result<Vec<(String, Instance)>> {
    let reference = TableReference::bare(table);
    if rules.is_empty() || !db.session().table_exist(reference.clone()).unwrap_or(false) {
        return Ok(Vec::new());
    }
    let names = rules
        .iter()
        .map(|r| format!("'{}'", r.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    // Columns appear with the first row that has them: a table of rule errors only has
    // no `fingerprint`, one whose rules never had a value column no `value`.
    let schema = db
        .runtime()
        .block_on(db.session().table(reference))
        .map(|df| df.schema().clone())
        .map_err(sextant_query::Error::from)?;
    let has = |c: &str| schema.has_column_with_unqualified_name(c);
    if !["alertname", "state", "fingerprint", "labels", "active_at"]
        .iter()
        .all(|c| has(c))
    {
        return Ok(Vec::new());
    }
    let value = if has("value") {
        "value"
    } else {
        "CAST(NULL AS DOUBLE) AS value"
    };
    let sql = format!(
        "SELECT alertname, state, labels, active_at, {value}, fingerprint, time \
         FROM {quoted} WHERE fingerprint IS NOT NULL AND alertname IN ({names}) \
         ORDER BY time"
    );
    let batches = db.sql(&sql)?;
    let mut last: BTreeMap<(String, String), Instance> = BTreeMap::new();
    for batch in &batches {
        read_rows(batch, &mut last);
    }
    Ok(last
        .into_iter()
        .map(|((rule, _), inst)| (rule, inst))
        .collect())
}

fn read_rows(batch: &RecordBatch, last: &mut BTreeMap<(String, String), Instance>) {
    let text = |i: usize| {
        arrow_cast::cast(batch.column(i), &arrow_schema::DataType::Utf8)
            .expect("tags and strings cast to Utf8")
    };
    let (rules, states, labels, fps) = (text(0), text(1), text(2), text(5));
    let (rules, states, labels, fps) = (
        rules.as_string::<i32>(),
        states.as_string::<i32>(),
        labels.as_string::<i32>(),
        fps.as_string::<i32>(),
    );
    let active_at = batch.column(3).as_primitive_opt::<Int64Type>();
    let values = batch.column(4).as_primitive_opt::<Float64Type>();
    let times = arrow_cast::cast(
        batch.column(6),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
    )
    .expect("time casts to nanoseconds");
    let times = times.as_primitive::<arrow_array::types::TimestampNanosecondType>();
    for row in 0..batch.num_rows() {
        if rules.is_null(row) || fps.is_null(row) || states.is_null(row) {
            continue;
        }
        let key = (rules.value(row).to_string(), fps.value(row).to_string());
        let t = times.value(row);
        let state = match states.value(row) {
            "pending" => State::Pending,
            "firing" => State::Firing,
            _ => {
                last.remove(&key);
                continue;
            }
        };
        let Some(labels) = (!labels.is_null(row))
            .then(|| serde_json::from_str::<Labels>(labels.value(row)).ok())
            .flatten()
        else {
            continue;
        };
        let inst = Instance {
            fingerprint: key.1.clone(),
            labels,
            state,
            value: values.and_then(|v| v.is_valid(row).then(|| v.value(row))),
            active_at: active_at.map_or(t, |a| if a.is_valid(row) { a.value(row) } else { t }),
            fired_at: (state == State::Firing).then_some(t),
            last_seen: t,
            kept_firing_since: None,
        };
        last.insert(key, inst);
    }
}
