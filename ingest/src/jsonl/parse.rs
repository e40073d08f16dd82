//! The JSON lines parser.

use std::borrow::Cow;

use ahash::AHashSet;
use serde_json::{Map, Value as Json};
use sextant_engine::schema::{LEVEL_COLUMN, MAX_COLUMNS, MAX_NAME_LEN, TIME_COLUMN, validate_name};
use sextant_engine::{Level, TableKind};

use super::time::{from_epoch_float, from_epoch_int, parse_rfc3339};
use super::{Error, Options, Outcome};
use crate::Schemas;
use crate::columns::{Conflict, Tables, Value as Cell};
use crate::outcome::snippet;

const TABLE_KEYS: [&str; 2] = ["_table", "table"];
const TIME_KEYS: [&str; 4] = ["time", "timestamp", "ts", "@timestamp"];
const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "levelname", "loglevel"];
/// The column of the message.
pub(super) const MESSAGE_COLUMN: &str = "message";
/// Deepest nesting flattened into field names.
const MAX_DEPTH: usize = 16;

/// Parses a request of JSON lines into one batch per event table (see the
/// [module docs](super) for the mapping), keeping good lines and reporting bad ones.
///
/// `now` (nanoseconds since the Unix epoch) is the time of lines without one; `schemas`
/// gives the stored tables' schemas, so that a line whose types conflict with them is
/// rejected alone (an engine [`Snapshot`](sextant_engine::Snapshot), or
/// [`NoSchemas`](crate::NoSchemas)).
pub fn parse(
    input: &[u8],
    options: &Options,
    now: i64,
    schemas: &dyn Schemas,
) -> Result<Outcome, Error> {
    if input.len() > options.max_request_bytes {
        return Err(Error::RequestTooLarge {
            bytes: input.len(),
            limit: options.max_request_bytes,
        });
    }
    let tag_keys: AHashSet<&str> = options.tag_keys.iter().map(String::as_str).collect();
    let mut tables = Tables::new(schemas);
    let mut out = Outcome::new();
    for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            continue;
        }
        let result = if raw.len() > options.max_line_bytes {
            Err(Error::LineTooLong {
                bytes: raw.len(),
                limit: options.max_line_bytes,
            })
        } else {
            match serde_json::from_slice::<Json>(raw) {
                Ok(Json::Object(map)) => add(&mut tables, &map, options, &tag_keys, now),
                Ok(other) => Err(Error::NotAnObject {
                    found: json_kind(&other),
                }),
                Err(e) => Err(Error::InvalidJson {
                    reason: e.to_string(),
                }),
            }
        };
        match result {
            Ok(()) => out.rows += 1,
            Err(e) => out.reject(i + 1, e, options.max_errors),
        }
    }
    out.batches = tables.finish().map_err(|e| Error::Engine(e.to_string()))?;
    Ok(out)
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A field value, borrowed from the line where it can be.
#[derive(Debug, Clone)]
enum Val<'a> {
    Str(Cow<'a, str>),
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
}

impl Val<'_> {
    fn cell(&self) -> Cell<'_> {
        match self {
            Val::Str(s) => Cell::Str(s),
            Val::F64(x) => Cell::F64(*x),
            Val::I64(x) => Cell::I64(*x),
            Val::U64(x) => Cell::U64(*x),
            Val::Bool(x) => Cell::Bool(*x),
        }
    }
}

fn first<'m>(
    map: &'m Map<String, Json>,
    keys: &[&'static str],
) -> Option<(&'static str, &'m Json)> {
    keys.iter().find_map(|&k| map.get(k).map(|v| (k, v)))
}

fn add(
    tables: &mut Tables<'_>,
    map: &Map<String, Json>,
    options: &Options,
    tag_keys: &AHashSet<&str>,
    now: i64,
) -> Result<(), Error> {
    let mut consumed: Vec<&str> = Vec::with_capacity(4);
    let table = match first(map, &TABLE_KEYS) {
        Some((k, Json::String(t))) => {
            consumed.push(k);
            t.as_str()
        }
        _ => options.default_table.as_str(),
    };
    let time = match first(map, &TIME_KEYS) {
        Some((k, v)) => {
            consumed.push(k);
            parse_time(v)?
        }
        None => now,
    };
    let level = match first(map, &LEVEL_KEYS) {
        Some((k, v)) => {
            consumed.push(k);
            parse_level(v)?
        }
        None => options.default_level,
    };
    let message: Option<Cow<'_, str>> = match first(map, &["message", "msg"]) {
        Some((k, v)) => {
            consumed.push(k);
            match v {
                Json::String(s) => Some(Cow::Borrowed(s)),
                Json::Null => None,
                other => Some(Cow::Owned(other.to_string())),
            }
        }
        None => match map.get("event") {
            Some(Json::String(s)) => {
                consumed.push("event");
                Some(Cow::Borrowed(s))
            }
            _ => None,
        },
    };

    let mut tags: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    let mut fields: Vec<(Cow<'_, str>, Val<'_>)> = Vec::new();
    for (k, v) in map {
        if consumed.contains(&k.as_str()) {
            continue;
        }
        match (k.as_str(), v) {
            ("tags", Json::Object(inner)) => {
                for (tk, tv) in inner {
                    if let Some(text) = tag_text(tv) {
                        tags.push((Cow::Borrowed(tk), text));
                    }
                }
            }
            ("tags", _) => return Err(Error::NotAnObjectKey { key: "tags" }),
            ("fields", Json::Object(inner)) => {
                for (fk, fv) in inner {
                    flatten(Cow::Borrowed(fk), fv, &mut fields, 0);
                }
            }
            ("fields", _) => return Err(Error::NotAnObjectKey { key: "fields" }),
            (key, v) if tag_keys.contains(key) => {
                if let Some(text) = tag_text(v) {
                    tags.push((Cow::Borrowed(k), text));
                }
            }
            _ => flatten(Cow::Borrowed(k), v, &mut fields, 0),
        }
    }

    if validate_name("table", table).is_err() {
        return Err(Error::BadName {
            what: "table",
            name: snippet(table, 64),
            reason: "a table name is 1 to 128 ASCII letters, digits, '_', '-' or '.', not starting with '.'",
        });
    }
    let mut names: AHashSet<&str> = AHashSet::with_capacity(tags.len() + fields.len() + 2);
    names.insert(LEVEL_COLUMN);
    if message.is_some() {
        names.insert(MESSAGE_COLUMN);
    }
    let keys = tags
        .iter()
        .map(|(k, _)| ("tag key", k))
        .chain(fields.iter().map(|(k, _)| ("field key", k)));
    for (what, key) in keys {
        if key.is_empty()
            || key.len() > MAX_NAME_LEN
            || key == TIME_COLUMN
            || key.chars().any(char::is_control)
        {
            return Err(Error::BadName {
                what,
                name: snippet(key, 64),
                reason: "a column name is 1 to 128 bytes without control characters, and not \"time\"",
            });
        }
        if !names.insert(key) {
            return Err(Error::DuplicateKey {
                key: snippet(key, 64),
            });
        }
    }

    let t = tables
        .table(table, TableKind::Event)
        .map_err(|c| conflict(table, String::new(), c))?;
    let head = std::iter::once((LEVEL_COLUMN, Cell::Level(level)))
        .chain(message.as_deref().map(|m| (MESSAGE_COLUMN, Cell::Str(m))));
    let row = head
        .chain(tags.iter().map(|(k, v)| (k.as_ref(), Cell::Tag(v))))
        .chain(fields.iter().map(|(k, v)| (k.as_ref(), v.cell())));
    tables
        .check(t, row.clone().map(|(k, v)| (k, v.column_type())))
        .map_err(|(column, c)| conflict(table, column.to_string(), c))?;
    tables.push(t, time, row);
    Ok(())
}

fn tag_text(v: &Json) -> Option<Cow<'_, str>> {
    match v {
        Json::Null => None,
        Json::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

fn flatten<'a>(
    key: Cow<'a, str>,
    v: &'a Json,
    out: &mut Vec<(Cow<'a, str>, Val<'a>)>,
    depth: usize,
) {
    let value = match v {
        Json::Null => return,
        Json::Bool(b) => Val::Bool(*b),
        Json::String(s) => Val::Str(Cow::Borrowed(s)),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Val::I64(i),
            (None, Some(u)) => Val::U64(u),
            _ => Val::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::Object(inner) if depth < MAX_DEPTH && !inner.is_empty() => {
            for (k, v) in inner {
                flatten(Cow::Owned(format!("{key}.{k}")), v, out, depth + 1);
            }
            return;
        }
        other => Val::Str(Cow::Owned(other.to_string())),
    };
    out.push((key, value));
}

fn parse_time(v: &Json) -> Result<i64, Error> {
    let nanos = match v {
        Json::Number(n) => match n.as_i64() {
            Some(i) => from_epoch_int(i),
            None => n.as_f64().and_then(from_epoch_float),
        },
        Json::String(s) => parse_rfc3339(s).or_else(|| {
            let numeric = !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-');
            match s.parse::<i64>() {
                Ok(i) if numeric => from_epoch_int(i),
                _ if numeric => s.parse::<f64>().ok().and_then(from_epoch_float),
                _ => None,
            }
        }),
        _ => None,
    };
    nanos.ok_or_else(|| Error::InvalidTime {
        value: snippet(&v.to_string(), 64),
    })
}

fn parse_level(v: &Json) -> Result<Level, Error> {
    let invalid = || Error::InvalidLevel {
        value: snippet(&v.to_string(), 64),
    };
    let number = match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "trace" | "verbose" => return Ok(Level::Trace),
            "debug" | "dbg" => return Ok(Level::Debug),
            "info" | "information" | "notice" => return Ok(Level::Info),
            "warn" | "warning" => return Ok(Level::Warn),
            "error" | "err" | "dpanic" => return Ok(Level::Error),
            "fatal" | "critical" | "crit" | "panic" | "alert" | "emerg" | "emergency" => {
                return Ok(Level::Fatal);
            }
            other => other.parse::<f64>().ok(),
        },
        _ => None,
    };
    match number {
        Some(x) if (10.0..20.0).contains(&x) => Ok(Level::Trace),
        Some(x) if (20.0..30.0).contains(&x) => Ok(Level::Debug),
        Some(x) if (30.0..40.0).contains(&x) => Ok(Level::Info),
        Some(x) if (40.0..50.0).contains(&x) => Ok(Level::Warn),
        Some(x) if (50.0..60.0).contains(&x) => Ok(Level::Error),
        Some(x) if x >= 60.0 && x.is_finite() => Ok(Level::Fatal),
        _ => Err(invalid()),
    }
}

fn conflict(table: &str, column: String, c: Conflict) -> Error {
    let table = table.to_string();
    match c {
        Conflict::Type {
            existing,
            offered,
            stored,
        } => Error::TypeConflict {
            table,
            column,
            existing,
            offered,
            stored,
        },
        Conflict::Kind { existing } => Error::KindConflict { table, existing },
        Conflict::TooManyColumns => Error::TooManyColumns {
            table,
            limit: MAX_COLUMNS,
        },
    }
}
