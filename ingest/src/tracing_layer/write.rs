//! The writer thread: takes every recording thread's shard at each pass and writes its
//! rows as column batches.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use sextant_engine::schema::validate_name;
use sextant_engine::{Engine, TableKind};

use super::Shared;
use super::capture::{Kind, Shard, Val};
use crate::columns::{Tables, Value};

/// The rows of one pass, built into column batches and written `batch_rows` at a time.
pub(super) struct Pass<'e> {
    engine: &'e Engine,
    shared: &'e Shared,
    /// Columns of the row being added: reused from row to row.
    scratch: Vec<(Cow<'static, str>, Col)>,
}

/// A column value of the row being added; text is a range of the shard's text.
#[derive(Clone)]
enum Col {
    Level(sextant_engine::Level),
    Tag(Cow<'static, str>),
    /// The layer's `service` option.
    Service,
    Text(std::ops::Range<usize>),
    Spans(std::sync::Arc<str>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl<'e> Pass<'e> {
    pub(super) fn new(engine: &'e Engine, shared: &'e Shared) -> Self {
        Pass {
            engine,
            shared,
            scratch: Vec::new(),
        }
    }

    /// Writes every row of `shard`, `batch_rows` at a time; counts the rows written,
    /// refused (a column whose type conflicts) and failed (the write failed).
    pub(super) fn write(&mut self, shard: &Shard) {
        let batch_rows = self.shared.options.batch_rows.max(1);
        for chunk in shard.rows.chunks(batch_rows) {
            let snapshot = self.engine.snapshot();
            let mut tables = Tables::new(&snapshot);
            let mut rows = 0u64;
            for row in chunk {
                self.columns_of(shard, row);
                if self.add(&mut tables, shard, row) {
                    rows += 1;
                } else {
                    self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            let written = tables
                .finish()
                .and_then(|batches| self.engine.write_batches(batches));
            let counter = match written {
                Ok(()) => &self.shared.counters.written,
                Err(_) => &self.shared.counters.failed,
            };
            counter.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// Fills `scratch` with the row's columns, each name once (a repeated field keeps
    /// its last value) and every name one the engine accepts.
    fn columns_of(&mut self, shard: &Shard, row: &super::capture::Row) {
        let options = &self.shared.options;
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.push(("level".into(), Col::Level(row.level)));
        scratch.push(("target".into(), Col::Tag(Cow::Borrowed(row.target))));
        if options.service.is_some() {
            scratch.push(("service".into(), Col::Service));
        }
        match &row.kind {
            Kind::Event { message } => {
                scratch.push(("message".into(), Col::Text(message.clone())));
            }
            Kind::Span {
                name,
                duration_ns,
                busy_ns,
            } => {
                scratch.push(("name".into(), Col::Tag(Cow::Borrowed(name))));
                scratch.push(("duration_ns".into(), Col::U64(*duration_ns)));
                scratch.push(("busy_ns".into(), Col::U64(*busy_ns)));
            }
        }
        if let Some(spans) = &row.spans {
            scratch.push(("spans".into(), Col::Spans(spans.clone())));
        }
        for (name, value) in &shard.values[row.values.clone()] {
            let value = match value {
                Val::I64(x) => Col::I64(*x),
                Val::U64(x) => Col::U64(*x),
                Val::F64(x) => Col::F64(*x),
                Val::Bool(x) => Col::Bool(*x),
                Val::Str(r) => Col::Text(r.clone()),
            };
            let name = column_name(name);
            match scratch.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => *v = value,
                None => scratch.push((name, value)),
            }
        }
    }

    /// Adds the row in `scratch` to its table; false when its columns conflict with the
    /// table's.
    fn add(&self, tables: &mut Tables<'_>, shard: &Shard, row: &super::capture::Row) -> bool {
        let table = match row.kind {
            Kind::Event { .. } => self.shared.options.table.as_str(),
            Kind::Span { .. } => match &self.shared.options.spans_table {
                Some(t) => t.as_str(),
                None => return false,
            },
        };
        let Ok(t) = tables.table(table, TableKind::Event) else {
            return false;
        };
        let service = self.shared.options.service.as_deref().unwrap_or("");
        let value = |v| value(v, shard, service);
        let columns = self
            .scratch
            .iter()
            .map(|(n, v)| (n.as_ref(), value(v).column_type()));
        if tables.check(t, columns).is_err() {
            return false;
        }
        let values = self.scratch.iter().map(|(n, v)| (n.as_ref(), value(v)));
        tables.push(t, row.time, values);
        true
    }
}

/// A field's column name: the field name, with each character the engine does not
/// accept in names replaced by `_`.
fn column_name(name: &'static str) -> Cow<'static, str> {
    if validate_name("column", name).is_ok() {
        return Cow::Borrowed(name);
    }
    let mut fixed: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fixed.is_empty() || fixed.starts_with('.') {
        fixed.insert(0, '_');
    }
    fixed.truncate(sextant_engine::schema::MAX_NAME_LEN);
    Cow::Owned(fixed)
}

/// The column value `v` stands for.
fn value<'a>(v: &'a Col, shard: &'a Shard, service: &'a str) -> Value<'a> {
    match v {
        Col::Level(l) => Value::Level(*l),
        Col::Tag(s) => Value::Tag(s),
        Col::Service => Value::Tag(service),
        Col::Text(r) => Value::Str(shard.text.get(r.clone()).unwrap_or("")),
        Col::Spans(s) => Value::Str(s),
        Col::I64(x) => Value::I64(*x),
        Col::U64(x) => Value::U64(*x),
        Col::F64(x) => Value::F64(*x),
        Col::Bool(x) => Value::Bool(*x),
    }
}
