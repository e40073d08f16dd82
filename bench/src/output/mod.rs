//! Writers of workload batches as CSV (with a header row) or InfluxDB line protocol, of
//! whole workloads in those formats ([`generate`]), and of whole workloads as Parquet
//! files sorted by series then time ([`parquet`]).

pub mod csv;
pub mod generate;
pub mod influx;
pub mod parquet;

use std::io::{self, Write};

use crate::workload::cpu::{self, CpuBatch, CpuHost};
use crate::workload::logs::{self, LogBatch, LogTags};

/// An output text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma-separated values with a header row; times as RFC 3339 UTC; RFC 4180 quoting.
    Csv,
    /// InfluxDB line protocol: `measurement,tags fields timestamp` with ns timestamps.
    Influx,
}

/// Appends `v` as text: integral values of magnitude below 2^53 without a decimal point
/// (`42`), others in Rust's shortest round-trip form (`42.125`), never in exponent form.
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        push_i64(out, v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends `v` in decimal.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes cpu batches; each host's tags are encoded once.
#[derive(Debug)]
pub struct CpuWriter<W: Write> {
    out: W,
    format: Format,
    /// Per host: CSV `,tag,...,tag,` or line protocol `cpu,key=value,...`.
    prefixes: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl<W: Write> CpuWriter<W> {
    /// A writer for the rows of `hosts`; writes the CSV header at once.
    pub fn new(mut out: W, format: Format, hosts: &[CpuHost]) -> io::Result<Self> {
        let prefixes = hosts
            .iter()
            .map(|host| match format {
                Format::Csv => csv::cpu_prefix(host),
                Format::Influx => {
                    influx::series_key(cpu::TABLE, cpu::TAGS.iter().copied().zip(host.tags()))
                }
            })
            .collect();
        if format == Format::Csv {
            out.write_all(&csv::header(cpu::TAGS.iter().chain(&cpu::FIELDS)))?;
        }
        Ok(CpuWriter {
            out,
            format,
            prefixes,
            buf: Vec::new(),
        })
    }

    /// Writes a batch's rows.
    pub fn write(&mut self, batch: &CpuBatch) -> io::Result<()> {
        self.buf.clear();
        for i in 0..batch.len() {
            let prefix = &self.prefixes[batch.host[i] as usize];
            let values = batch.fields.iter().map(|f| f[i]);
            match self.format {
                Format::Csv => csv::cpu_row(&mut self.buf, batch.time[i], prefix, values),
                Format::Influx => influx::cpu_line(&mut self.buf, prefix, values, batch.time[i]),
            }
        }
        self.out.write_all(&self.buf)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes logs batches.
#[derive(Debug)]
pub struct LogsWriter<W: Write> {
    out: W,
    format: Format,
    tags: LogTags,
    buf: Vec<u8>,
}

impl<W: Write> LogsWriter<W> {
    /// A writer for events tagged from `tags`; writes the CSV header at once.
    pub fn new(mut out: W, format: Format, tags: &LogTags) -> io::Result<Self> {
        if format == Format::Csv {
            let columns = logs::TAGS
                .iter()
                .chain(&["level", "message", "trace_id", "duration_ms"]);
            out.write_all(&csv::header(columns))?;
        }
        Ok(LogsWriter {
            out,
            format,
            tags: tags.clone(),
            buf: Vec::new(),
        })
    }

    /// Writes a batch's events.
    pub fn write(&mut self, batch: &LogBatch) -> io::Result<()> {
        self.buf.clear();
        for i in 0..batch.len() {
            let host = &self.tags.hosts[batch.host[i] as usize];
            let event = logs_event(
                batch,
                i,
                &self.tags.services[batch.service[i] as usize],
                &host.name,
                host.env,
            );
            match self.format {
                Format::Csv => csv::logs_row(&mut self.buf, &event),
                Format::Influx => influx::logs_line(&mut self.buf, &event),
            }
        }
        self.out.write_all(&self.buf)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One log event with its tags resolved, as the encoders take it.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    /// ns since the epoch.
    pub time: i64,
    /// The `service` tag.
    pub service: &'a str,
    /// The `host` tag.
    pub host: &'a str,
    /// The `env` tag.
    pub env: &'a str,
    /// The level's name.
    pub level: &'a str,
    /// The message.
    pub message: &'a str,
    /// The trace id's 16 bytes.
    pub trace_id: [u8; 16],
    /// The duration, if any.
    pub duration_ms: Option<f64>,
}

fn logs_event<'a>(
    batch: &'a LogBatch,
    i: usize,
    service: &'a str,
    host: &'a str,
    env: &'a str,
) -> LogEvent<'a> {
    LogEvent {
        time: batch.time[i],
        service,
        host,
        env,
        level: batch.level[i].as_str(),
        message: batch.message(i),
        trace_id: batch.trace_id[i],
        duration_ms: batch.duration_ms[i],
    }
}

/// Appends the 32 lower-case hex digits of a trace id.
pub(crate) fn push_trace_id(out: &mut Vec<u8>, id: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in id {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        push_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_print_integral_values_without_a_point() {
        assert_eq!(f(0.0), "0");
        assert_eq!(f(100.0), "100");
        assert_eq!(f(-7.0), "-7");
        assert_eq!(f(42.125), "42.125");
        assert_eq!(f(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(f(1e-7), "0.0000001");
        let mut out = Vec::new();
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, i64::MIN.to_string().as_bytes());
    }
}
