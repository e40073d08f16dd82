//! Printing answers: aligned tables for people, CSV and JSON lines for programs.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::{Error, Result};

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with a row count.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row (JSON lines).
    Json,
}

/// Writes `batches` to `out` in `format`.
pub fn print(batches: &[RecordBatch], format: Format, out: &mut dyn Write) -> Result<()> {
    let io = |e| Error::io("writing", "standard output", e);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match format {
        Format::Table => {
            if batches.is_empty() {
                writeln!(out, "(0 rows)").map_err(io)?;
            } else {
                let table = pretty_format_batches(batches)?;
                let noun = if rows == 1 { "row" } else { "rows" };
                writeln!(out, "{table}\n({rows} {noun})").map_err(io)?;
            }
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}
