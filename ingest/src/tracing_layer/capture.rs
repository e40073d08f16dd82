//! What the recording thread does: events and closed spans appended to its own shard,
//! without allocating once the shard's buffers have grown to their working size.

use std::fmt::{self, Write as _};
use std::ops::Range;
use std::sync::Arc;

use sextant_engine::Level;
use tracing::field::{Field, Visit};

/// A field value as captured: text is a range of [`Shard::text`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(Range<usize>),
}

/// What kind of row a captured row is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// An event, with its message (a range of [`Shard::text`]).
    Event { message: Range<usize> },
    /// A closed span: its name, nanoseconds from creation to close, and nanoseconds it
    /// was entered.
    Span {
        name: &'static str,
        duration_ns: u64,
        busy_ns: u64,
    },
}

/// One captured row.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) kind: Kind,
    /// Nanoseconds since the Unix epoch: when the event was recorded, when the span was
    /// created.
    pub(super) time: i64,
    pub(super) level: Level,
    pub(super) target: &'static str,
    /// The names of the enclosing spans, outermost first, joined by `>`.
    pub(super) spans: Option<Arc<str>>,
    /// The row's fields: a range of [`Shard::values`].
    pub(super) values: Range<usize>,
}

/// The rows one thread has recorded and the writer has not yet taken. The writer swaps a
/// whole shard for an empty one, so the buffers' capacity is kept and reused.
#[derive(Debug, Default)]
pub(super) struct Shard {
    /// Set by the writer's last pass: nothing more is taken from this shard.
    pub(super) closed: bool,
    /// Whether the shard's memory is reserved in the engine's budget (kept by the
    /// writer's swaps: see `write_loop`).
    pub(super) reserved: bool,
    pub(super) rows: Vec<Row>,
    pub(super) values: Vec<(&'static str, Val)>,
    pub(super) text: String,
}

impl Shard {
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.values.clear();
        self.text.clear();
    }

    /// Whether the shard holds `rows` rows or `bytes` bytes of text.
    pub(super) fn is_full(&self, rows: usize, bytes: usize) -> bool {
        self.rows.len() >= rows || self.text.len() >= bytes
    }

    /// Appends an event's row, its fields recorded by `record`.
    pub(super) fn push_event(
        &mut self,
        time: i64,
        level: tracing::Level,
        target: &'static str,
        spans: Option<Arc<str>>,
        record: impl FnOnce(&mut dyn Visit),
    ) {
        let first = self.values.len();
        let mut visitor = EventFields {
            shard: self,
            message: None,
            fatal: false,
        };
        record(&mut visitor);
        let (message, fatal) = (visitor.message, visitor.fatal);
        let message = message.unwrap_or(self.text.len()..self.text.len());
        let level = if fatal { Level::Fatal } else { level_of(level) };
        let values = first..self.values.len();
        self.rows.push(Row {
            kind: Kind::Event { message },
            time,
            level,
            target,
            spans,
            values,
        });
    }

    /// Appends a closed span's row; its fields are copied from `fields`.
    pub(super) fn push_span(&mut self, span: &SpanRow, duration_ns: u64, busy_ns: u64) {
        let first = self.values.len();
        for (name, value) in &span.fields {
            let value = match value {
                Owned::I64(x) => Val::I64(*x),
                Owned::U64(x) => Val::U64(*x),
                Owned::F64(x) => Val::F64(*x),
                Owned::Bool(x) => Val::Bool(*x),
                Owned::Str(s) => Val::Str(self.push_text(format_args!("{s}"))),
            };
            self.values.push((name, value));
        }
        self.rows.push(Row {
            kind: Kind::Span {
                name: span.name,
                duration_ns,
                busy_ns,
            },
            time: span.start,
            level: level_of(span.level),
            target: span.target,
            spans: span.parent.clone(),
            values: first..self.values.len(),
        });
    }

    /// Appends formatted text, returning its range.
    fn push_text(&mut self, args: fmt::Arguments<'_>) -> Range<usize> {
        let start = self.text.len();
        // A `Debug` implementation may fail; what it wrote until then is kept.
        let _ = self.text.write_fmt(args);
        start..self.text.len()
    }
}

pub(super) fn level_of(level: tracing::Level) -> Level {
    match level {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::ERROR => Level::Error,
    }
}

/// Columns every row sets itself: a field of the same name is left out.
pub(super) fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "time" | "level" | "target" | "service" | "spans" | "message"
    )
}

/// Records an event's fields straight into the shard.
struct EventFields<'s> {
    shard: &'s mut Shard,
    message: Option<Range<usize>>,
    fatal: bool,
}

impl EventFields<'_> {
    fn push(&mut self, field: &Field, value: Val) {
        self.shard.values.push((field.name(), value));
    }

    fn text(&mut self, field: &Field, args: fmt::Arguments<'_>) {
        if field.name() == "message" {
            self.message = Some(self.shard.push_text(args));
        } else if !is_reserved(field.name()) {
            let range = self.shard.push_text(args);
            self.push(field, Val::Str(range));
        }
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format_args!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !is_reserved(field.name()) {
            self.push(field, Val::I64(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !is_reserved(field.name()) {
            self.push(field, Val::U64(value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if !is_reserved(field.name()) {
            self.push(field, Val::F64(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "fatal" {
            self.fatal = value;
        } else if !is_reserved(field.name()) {
            self.push(field, Val::Bool(value));
        }
    }
}

/// A span's field value, kept on the span until it closes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Owned {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(String),
}

/// What a span keeps for its row in the spans table.
#[derive(Debug)]
pub(super) struct SpanRow {
    pub(super) name: &'static str,
    pub(super) target: &'static str,
    pub(super) level: tracing::Level,
    /// Nanoseconds since the Unix epoch at creation.
    pub(super) start: i64,
    /// The enclosing spans' path.
    pub(super) parent: Option<Arc<str>>,
    /// The span's fields, the latest value of each.
    pub(super) fields: Vec<(&'static str, Owned)>,
}

impl SpanRow {
    /// A row that only collects fields (for [`SpanRow::merge`]).
    pub(super) fn fields_only() -> SpanRow {
        SpanRow {
            name: "",
            target: "",
            level: tracing::Level::INFO,
            start: 0,
            parent: None,
            fields: Vec::new(),
        }
    }

    /// Takes `other`'s fields, replacing values of the same name.
    pub(super) fn merge(&mut self, other: SpanRow) {
        for (name, value) in other.fields {
            self.set_named(name, value);
        }
    }

    fn set(&mut self, field: &Field, value: Owned) {
        self.set_named(field.name(), value);
    }

    fn set_named(&mut self, name: &'static str, value: Owned) {
        if is_reserved(name) || is_span_column(name) {
            return;
        }
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name, value)),
        }
    }
}

/// Columns a span's row sets besides those of every row.
pub(super) fn is_span_column(name: &str) -> bool {
    matches!(name, "name" | "duration_ns" | "busy_ns")
}

impl Visit for SpanRow {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Owned::Str(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, Owned::Str(format!("{value:?}")));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Owned::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Owned::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Owned::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Owned::Bool(value));
    }
}
