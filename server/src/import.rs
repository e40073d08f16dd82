//! `sextant import`: line protocol and JSON-lines files into a database.
//!
//! A file is read in pieces of at most [`PIECE_BYTES`] cut at line ends, each parsed by
//! `sextant-ingest` and written as one atomic write; a bad line is reported with its
//! number in the file and its reason, and the file's good lines are kept.

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
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        match path.extension()?.to_str()? {
            "lp" | "txt" | "influx" => Some(Kind::LineProtocol),
            "jsonl" | "json" | "ndjson" => Some(Kind::JsonLines),
            _ => None,
        }
    }
}

/// Imports `files` into the database in `data`; exit code 1 if any line was rejected.
pub fn run(data: &Path, precision: &str, files: &[std::path::PathBuf]) -> Result<ExitCode> {
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
                    "{}: unknown kind of file; line protocol ends in .lp, .txt or .influx, JSON lines in .jsonl, .json or .ndjson",
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
            }
            first_line += piece.iter().filter(|&&b| b == b'\n').count();
        }
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
