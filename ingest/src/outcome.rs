//! What a parse of one request gives back: the engine batches of its good lines and the
//! reasons its bad lines were rejected.

use std::fmt;

use sextant_engine::TableBatch;

/// The result of parsing one request: batches ready for
/// [`Engine::write_batches`](sextant_engine::Engine::write_batches), and the lines that
/// were rejected (InfluxDB's partial-write behaviour: good lines are kept).
#[derive(Debug)]
pub struct Outcome<E> {
    /// One batch per table, in order of the table's first line.
    pub batches: Vec<TableBatch>,
    /// Rows accepted (the rows of `batches`).
    pub rows: usize,
    /// The first rejected lines, with their number and reason, at most
    /// the parser's `max_errors` of them.
    pub rejected: Vec<Rejected<E>>,
    /// How many lines were rejected in all (may exceed `rejected.len()`).
    pub rejected_lines: usize,
}

impl<E> Outcome<E> {
    /// Whether every line was accepted.
    pub fn is_complete(&self) -> bool {
        self.rejected_lines == 0
    }

    pub(crate) fn new() -> Self {
        Outcome {
            batches: Vec::new(),
            rows: 0,
            rejected: Vec::new(),
            rejected_lines: 0,
        }
    }

    pub(crate) fn reject(&mut self, line: usize, error: E, max_errors: usize) {
        self.rejected_lines += 1;
        if self.rejected.len() < max_errors {
            self.rejected.push(Rejected { line, error });
        }
    }
}

/// A line that was rejected: its 1-based line number and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected<E> {
    /// The line's number, counting from 1 (blank and comment lines count). For Prometheus
    /// remote write, the time series' position in the request, from 1; for a StatsD
    /// flush, which has no lines, 0.
    pub line: usize,
    /// Why it was rejected.
    pub error: E,
}

impl<E: fmt::Display> fmt::Display for Rejected<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.error)
    }
}

/// At most `max` characters of `text`, with `...` when cut: for quoting input in errors.
pub(crate) fn snippet(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}...", &text[..i]),
    }
}
