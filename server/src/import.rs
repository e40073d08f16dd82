//! `sextant import`: line protocol, JSON-lines and CSV files into a database.
//!
//! CSV files have a header row naming the columns: `time` (RFC 3339 text, or an integer
//! in `--precision` units), the tags named by `--tags`, and fields (the rest, typed by
//! looking at the whole file: numbers, booleans or text). A CSV file is one table, named
//! by `--table` or the file's stem.
//!
//! A file is read in pieces of at most [`PIECE_BYTES`] cut at line ends (a progress bar
//! on a terminal counts them), each parsed by `sextant-ingest` and written as one atomic
//! write; a bad line is reported with its number in the file and its reason, and the
//! file's good lines are kept.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use sextant_engine::Config;
use sextant_ingest::{Outcome, Rejected, jsonl, line_protocol};
use sextant_query::{Database, QueryOptions};

use crate::{Error, Result};

/// The most bytes parsed and written at once.
const PIECE_BYTES: usize = 8 << 20;
/// The most rejected lines printed per file (all are counted).
const SHOWN_REJECTIONS: usize = 20;

#[derive(Debug, Clone, Copy)]
enum Kind {
    LineProtocol,
    JsonLines,
    Csv,
}

/// How CSV files are read.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Columns that are tags.
    pub tags: Vec<String>,
    /// The table; by default each file's stem.
    pub table: Option<String>,
    /// Event rather than metric tables.
    pub events: bool,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        match path.extension()?.to_str()? {
            "lp" | "txt" | "influx" => Some(Kind::LineProtocol),
            "jsonl" | "json" | "ndjson" => Some(Kind::JsonLines),
            "csv" => Some(Kind::Csv),
            _ => None,
        }
    }
}

/// Imports `files` into the database in `data`; exit code 1 if any line was rejected.
pub fn run(
    data: &Path,
    precision: &str,
    csv: &CsvOptions,
    files: &[std::path::PathBuf],
) -> Result<ExitCode> {
    let precision = line_protocol::Precision::from_param(precision).ok_or_else(|| {
        Error::Usage(format!(
            "--precision {precision:?} is not one of ns, us, ms, s"
        ))
    })?;
    // Every file is checked for a known kind before anything is written.
    let kinds = files
        .iter()
        .map(|f| {
            Kind::of(f).ok_or_else(|| {
                Error::Usage(format!(
                    "{}: unknown kind of file; line protocol ends in .lp, .txt or .influx, JSON lines in .jsonl, .json or .ndjson, CSV in .csv",
                    f.display()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let db = Database::open_with(Config::new(data), QueryOptions::default())?;
    let lp_options = line_protocol::Options::default().precision(precision);
    let json_options = jsonl::Options::default();
    let mut total = Summary::default();
    for (file, kind) in files.iter().zip(kinds) {
        let bytes = std::fs::read(file).map_err(|e| Error::io("reading", file, e))?;
        let mut summary = Summary::default();
        if let Kind::Csv = kind {
            summary.rows = import_csv(&db, file, &bytes, precision, csv)?;
            println!("{}: {summary}", file.display());
            total.rows += summary.rows;
            continue;
        }
        let bar = progress(file, bytes.len() as u64);
        let mut first_line = 0;
        for piece in pieces(&bytes) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            let snapshot = db.engine().snapshot();
            let refused = |e: &dyn Display| Error::Refused {
                path: file.clone(),
                reason: e.to_string(),
            };
            match kind {
                Kind::LineProtocol => {
                    let outcome = line_protocol::parse(piece, &lp_options, now, &snapshot)
                        .map_err(|e| refused(&e))?;
                    summary.take(&db, file, first_line, outcome)?;
                }
                Kind::JsonLines => {
                    let outcome = jsonl::parse(piece, &json_options, now, &snapshot)
                        .map_err(|e| refused(&e))?;
                    summary.take(&db, file, first_line, outcome)?;
                }
                Kind::Csv => unreachable!("CSV files are read whole above"),
            }
            first_line += piece.iter().filter(|&&b| b == b'\n').count();
            bar.inc(piece.len() as u64);
        }
        bar.finish_and_clear();
        println!("{}: {summary}", file.display());
        total.rows += summary.rows;
        total.rejected += summary.rejected;
    }
    db.flush()?;
    if files.len() > 1 {
        println!("in all: {total}");
    }
    Ok(if total.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar of a file's bytes on standard error, drawn only when that is a
/// terminal: bytes done, rate, time left.
fn progress(file: &Path, bytes: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(bytes);
    let template = format!(
        "{} {{elapsed_precise}} [{{bar:40}}] {{binary_bytes}}/{{binary_total_bytes}} ({{binary_bytes_per_sec}}, eta {{eta}})",
        file.display()
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Writes a CSV file as one table; returns the rows written. A file that does not read
/// as CSV, or whose times do not parse, is refused whole with the reason.
fn import_csv(
    db: &Database,
    file: &Path,
    bytes: &[u8],
    precision: line_protocol::Precision,
    options: &CsvOptions,
) -> Result<usize> {
    use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
    use datafusion::arrow::compute::{cast, kernels::numeric::mul};
    use datafusion::arrow::csv::reader::{Format, ReaderBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    let refused = |reason: String| Error::Refused {
        path: file.to_path_buf(),
        reason,
    };
    let table = match &options.table {
        Some(t) => t.clone(),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| refused("the file name makes no table name; give --table".into()))?
            .to_string(),
    };
    let kind = if options.events {
        sextant_engine::TableKind::Event
    } else {
        sextant_engine::TableKind::Metric
    };
    // Types from the whole file, so that no later row fails to fit them.
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(std::io::Cursor::new(bytes), None)
        .map_err(|e| refused(format!("not CSV with a header row: {e}")))?;
    if schema.index_of("time").is_err() {
        return Err(refused("the header has no `time` column".into()));
    }
    for tag in &options.tags {
        if schema.index_of(tag).is_err() {
            return Err(refused(format!(
                "--tags names {tag:?}, which the header lacks"
            )));
        }
    }
    let reader = ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(64 * 1024)
        .build(std::io::Cursor::new(bytes))
        .map_err(|e| refused(e.to_string()))?;
    let ns_per_unit: i64 = match precision {
        line_protocol::Precision::Nanoseconds => 1,
        line_protocol::Precision::Microseconds => 1_000,
        line_protocol::Precision::Milliseconds => 1_000_000,
        line_protocol::Precision::Seconds => 1_000_000_000,
    };
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| refused(e.to_string()))?;
        let schema = batch.schema();
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if name == "time" {
                let time: ArrayRef = match column.data_type() {
                    DataType::Int64 => {
                        mul(column, &Int64Array::new_scalar(ns_per_unit)).map_err(|e| {
                            refused(format!("times past the range of nanoseconds: {e}"))
                        })?
                    }
                    DataType::Utf8 | DataType::Timestamp(_, _) => cast(
                        column,
                        &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    )
                    .map_err(|e| refused(format!("a time that does not parse: {e}")))?,
                    other => {
                        return Err(refused(format!(
                            "the time column holds {other}, not RFC 3339 times or integers"
                        )));
                    }
                };
                if time.null_count() > 0 {
                    return Err(refused("a row has no time".into()));
                }
                fields.push(Field::new("time", time.data_type().clone(), false));
                columns.push(time);
            } else if options.tags.iter().any(|t| t == name) {
                let tag = cast(column, &DataType::Utf8).map_err(|e| refused(e.to_string()))?;
                let metadata = [("sextant.role".to_string(), "tag".to_string())].into();
                fields.push(Field::new(name, DataType::Utf8, true).with_metadata(metadata));
                columns.push(tag);
            } else if column.data_type() == &DataType::Null {
                continue; // a column empty in every row
            } else {
                fields.push(field.as_ref().clone().with_nullable(true));
                columns.push(Arc::clone(column));
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| refused(e.to_string()))?;
        db.write_arrow(&table, kind, &batch)?;
        rows += batch.num_rows();
    }
    Ok(rows)
}

#[derive(Debug, Default)]
struct Summary {
    rows: usize,
    rejected: usize,
}

impl Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} row{} written, {} line{} rejected",
            self.rows,
            s(self.rows),
            self.rejected,
            s(self.rejected)
        )
    }
}

impl Summary {
    /// Writes a piece's good lines and reports its bad ones, numbered in the file.
    fn take<E: Display>(
        &mut self,
        db: &Database,
        file: &Path,
        first_line: usize,
        outcome: Outcome<E>,
    ) -> Result<()> {
        for Rejected { line, error } in &outcome.rejected {
            if self.rejected < SHOWN_REJECTIONS {
                eprintln!("{}:{}: {error}", file.display(), first_line + line);
            }
            self.rejected += 1;
        }
        // Rejections past the parser's own limit are counted, not shown.
        self.rejected += outcome.rejected_lines - outcome.rejected.len();
        if !outcome.batches.is_empty() {
            db.engine().write_batches(outcome.batches)?;
        }
        self.rows += outcome.rows;
        Ok(())
    }
}

/// `bytes` in pieces of at most [`PIECE_BYTES`] (unless one line is longer), each ending
/// at a line end or the end of the input.
fn pieces(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = if rest.len() <= PIECE_BYTES {
            rest.len()
        } else {
            match rest[..PIECE_BYTES].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1),
            }
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_end_at_line_ends_and_cover_the_input() {
        let line = b"cpu,host=a v=1 1\n";
        let input: Vec<u8> = line.repeat(PIECE_BYTES / line.len() * 2 + 3);
        let parts: Vec<&[u8]> = pieces(&input).collect();
        assert!(parts.len() >= 3);
        assert!(
            parts
                .iter()
                .all(|p| p.ends_with(b"\n") && p.len() <= PIECE_BYTES)
        );
        assert_eq!(parts.concat(), input);
        assert_eq!(pieces(b"no newline").collect::<Vec<_>>(), [b"no newline"]);
    }
}
