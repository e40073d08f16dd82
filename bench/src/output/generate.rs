//! `sextant-bench generate` in the text formats: a workload's rows streamed to a file or
//! standard output as CSV or line protocol, or generated and dropped (the generator's own
//! speed). Parquet files are written by [`super::parquet`].

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{CpuWriter, Format, LogsWriter};
use crate::ingest::progress;
use crate::workload::cpu::{CpuBatch, CpuGenerator};
use crate::workload::logs::{LogBatch, LogsGenerator};
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Where the rows went (`-` for standard output).
    pub out: PathBuf,
    /// Rows generated.
    pub rows: u64,
    /// Bytes written; `None` when the rows were dropped.
    pub bytes: Option<u64>,
    /// Seconds of the whole generation, writing included.
    pub secs: f64,
}

impl std::fmt::Display for Generated {
    /// One line: rows, megabytes, where, seconds and millions of rows per second.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, secs) = (self.rows, self.secs);
        let rate = rows as f64 / secs.max(1e-9);
        match self.bytes {
            Some(bytes) => write!(
                f,
                "wrote {rows} rows, {:.1} MB, to {} in {secs:.2} s ({:.2} M rows/s)",
                bytes as f64 / 1e6,
                self.out.display(),
                rate / 1e6
            ),
            None => write!(
                f,
                "generated {rows} rows in {secs:.2} s ({:.2} M rows/s)",
                rate / 1e6
            ),
        }
    }
}

/// Generates `spec` in batches of `batch_rows` rows and writes them to `out` (`-` for
/// standard output) in `format`, or drops them when `format` is `None`; a progress bar on
/// standard error when `show_progress`.
pub fn generate(
    spec: &WorkloadSpec,
    format: Option<Format>,
    out: &Path,
    batch_rows: usize,
    show_progress: bool,
) -> Result<Generated> {
    let write_err = |source: io::Error| Error::Write {
        path: out.to_path_buf(),
        source,
    };
    let started = Instant::now();
    let (rows, bytes) = match spec {
        WorkloadSpec::Cpu(config) => {
            let mut generator = CpuGenerator::new(config.clone())?;
            let bar = progress(show_progress, generator.remaining_rows());
            let mut sink = match format {
                None => None,
                Some(f) => Some(
                    CpuWriter::new(open(out).map_err(write_err)?, f, generator.hosts())
                        .map_err(write_err)?,
                ),
            };
            let mut batch = CpuBatch::default();
            let mut rows = 0u64;
            while generator.fill(&mut batch, batch_rows) > 0 {
                if let Some(w) = &mut sink {
                    w.write(&batch).map_err(write_err)?;
                }
                rows += batch.len() as u64;
                bar.inc(batch.len() as u64);
            }
            bar.finish_and_clear();
            let bytes = match sink {
                None => None,
                Some(w) => Some(w.finish().map_err(write_err)?.count),
            };
            (rows, bytes)
        }
        WorkloadSpec::Logs(config) => {
            let mut generator = LogsGenerator::new(config.clone())?;
            let bar = progress(show_progress, generator.remaining_rows());
            let mut sink = match format {
                None => None,
                Some(f) => Some(
                    LogsWriter::new(open(out).map_err(write_err)?, f, generator.tags())
                        .map_err(write_err)?,
                ),
            };
            let mut batch = LogBatch::default();
            let mut rows = 0u64;
            while generator.fill(&mut batch, batch_rows) > 0 {
                if let Some(w) = &mut sink {
                    w.write(&batch).map_err(write_err)?;
                }
                rows += batch.len() as u64;
                bar.inc(batch.len() as u64);
            }
            bar.finish_and_clear();
            let bytes = match sink {
                None => None,
                Some(w) => Some(w.finish().map_err(write_err)?.count),
            };
            (rows, bytes)
        }
    };
    Ok(Generated {
        out: out.to_path_buf(),
        rows,
        bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// A writer that counts the bytes it passes on.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> std::fmt::Debug for Counting<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("count", &self.count)
            .finish()
    }
}

/// `path` (`-`: standard output) for writing, buffered, counting its bytes.
fn open(path: &Path) -> io::Result<Counting<Box<dyn Write>>> {
    let inner: Box<dyn Write> = if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    };
    Ok(Counting { inner, count: 0 })
}
