//! The writer thread: takes every recording thread's shard at each pass and writes its
//! rows as column batches.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use std::time::{Duration, Instant};

use sextant_engine::schema::{MAX_NAME_LEN, TIME_COLUMN};
use sextant_engine::{ColumnType, Engine, Error as EngineError, TableBatch, TableKind};

use super::Shared;
use super::capture::{Kind, Shard, Val, is_reserved, is_span_column};
use crate::columns::{Conflict, Tables, Value};

/// How long a write pushed back by the memory budget is retried.
const BACKPRESSURE_WAIT: Duration = Duration::from_secs(10);

/// The rows of one pass, built into column batches and written `batch_rows` at a time.
pub(super) struct Pass<'e> {
    engine: &'e Engine,
    shared: &'e Shared,
    /// Columns of the row being added: reused from row to row.
    scratch: Vec<(Cow<'static, str>, Col)>,
    /// How many of `scratch`'s columns are the ones every row sets (before its fields).
    fixed: usize,
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
            fixed: 0,
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
                .and_then(|batches| self.write_batches(batches));
            let counter = match written {
                Ok(()) => &self.shared.counters.written,
                Err(e) => {
                    *self.shared.last_error.lock() = Some(e.to_string());
                    &self.shared.counters.failed
                }
            };
            counter.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// Writes `batches`, waiting while the memory budget pushes back, for up to about
    /// [`BACKPRESSURE_WAIT`].
    fn write_batches(&self, batches: Vec<TableBatch>) -> sextant_engine::Result<()> {
        let started = Instant::now();
        loop {
            match self.engine.write_batches(batches.clone()) {
                Err(EngineError::Backpressure { retry_after, .. })
                    if started.elapsed() < BACKPRESSURE_WAIT =>
                {
                    std::thread::sleep(
                        retry_after.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                    );
                }
                other => return other,
            }
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
        self.fixed = scratch.len();
        for (name, value) in &shard.values[row.values.clone()] {
            let value = match value {
                Val::I64(x) => Col::I64(*x),
                Val::U64(x) => Col::U64(*x),
                Val::F64(x) => Col::F64(*x),
                Val::Bool(x) => Col::Bool(*x),
                Val::Str(r) => Col::Text(r.clone()),
            };
            let name = column_name(name);
            let span = matches!(row.kind, Kind::Span { .. });
            if is_reserved(&name) || (span && is_span_column(&name)) {
                continue;
            }
            match scratch.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => *v = value,
                None => scratch.push((name, value)),
            }
        }
    }

    /// Adds the row in `scratch` to its table; false when its columns conflict with the
    /// table's.
    fn add(&mut self, tables: &mut Tables<'_>, shard: &Shard, row: &super::capture::Row) -> bool {
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
        // A conflicting field is converted when nothing is lost, else left out; the
        // columns every row sets (the first `fixed`) are never left out.
        let fixed = self.fixed;
        loop {
            let columns = self
                .scratch
                .iter()
                .map(|(n, v)| (n.as_ref(), value(v, shard, service).column_type()));
            let (found, conflict) = match tables.check(t, columns) {
                Ok(()) => break,
                Err((name, conflict)) => {
                    let found = self.scratch.iter().position(|(n, _)| n == name);
                    (found, conflict)
                }
            };
            let Some(i) = found else {
                return false;
            };
            if i < fixed {
                return false;
            }
            match (conflict, &self.scratch[i].1) {
                (Conflict::Type { existing, .. }, v) if convert(v, existing).is_some() => {
                    let converted = convert(v, existing).expect("checked");
                    self.scratch[i].1 = converted;
                }
                (Conflict::Type { .. }, _) => {
                    self.scratch.remove(i);
                }
                _ => return false,
            }
        }
        let values = (self.scratch.iter()).map(|(n, v)| (n.as_ref(), value(v, shard, service)));
        tables.push(t, row.time, values);
        true
    }
}

/// `v` as a value of column type `ty`, when nothing is lost.
fn convert(v: &Col, ty: ColumnType) -> Option<Col> {
    match (v, ty) {
        (Col::U64(x), ColumnType::I64) => i64::try_from(*x).ok().map(Col::I64),
        (Col::I64(x), ColumnType::U64) => u64::try_from(*x).ok().map(Col::U64),
        (Col::I64(x), ColumnType::F64) => {
            let f = *x as f64;
            (f as i64 == *x && f.abs() < 9.0e15).then_some(Col::F64(f))
        }
        (Col::U64(x), ColumnType::F64) => {
            let f = *x as f64;
            (f as u64 == *x && f < 9.0e15).then_some(Col::F64(f))
        }
        _ => None,
    }
}

/// A field's column name: the field name, with control characters (which the engine
/// does not accept in column names) replaced by `_`, cut to the engine's longest name;
/// `time` becomes `_time`.
fn column_name(name: &'static str) -> Cow<'static, str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.chars().any(char::is_control)
        && name != TIME_COLUMN;
    if ok {
        return Cow::Borrowed(name);
    }
    let mut fixed: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if fixed.is_empty() || fixed == TIME_COLUMN {
        fixed.insert(0, '_');
    }
    while fixed.len() > MAX_NAME_LEN {
        fixed.pop();
    }
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
