//! The terminal tables of a run: the loading phases, then the queries.

use std::fmt::Write as _;

use super::report::{NOT_AVAILABLE, RunReport};
use crate::measure::geometric_mean;
use crate::memory::PeakScope;

/// Milliseconds, printed with about 3 significant digits.
pub fn ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// A count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

impl RunReport {
    /// The whole terminal report: a line on the data, the ingest table, the query table.
    pub fn table(&self) -> String {
        let w = &self.workload;
        let size = match (w.scale, w.events_per_second) {
            (Some(scale), _) => format!("scale {scale}"),
            (None, Some(eps)) => format!("{eps} events/s"),
            (None, None) => String::new(),
        };
        let s = &self.settings;
        let mut out = format!(
            "{}: {size} x {} days, seed {}: {} rows; {} writer thread(s), {}-row batches, sync {}\n\n",
            w.name,
            w.days,
            w.seed,
            count(w.rows),
            s.threads,
            s.batch_rows,
            s.sync
        );
        out.push_str(&self.ingest_table());
        out.push('\n');
        out.push_str(&self.query_table());
        out
    }

    /// The loading phases.
    pub fn ingest_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:<6} {:>13} {:>8} {:>12} {:>12} {:>14} {:>8}  peak RSS",
            "engine", "phase", "rows", "secs", "rows/s", "values/s", "bytes on disk", "B/value"
        );
        for p in &self.ingest {
            let peak = match (p.peak_rss_bytes, p.peak_rss_scope) {
                (Some(b), PeakScope::Phase) => mib(b),
                (Some(b), _) => format!("{} (process so far)", mib(b)),
                (None, _) => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<8} {:<6} {:>13} {:>8.2} {:>12} {:>12} {:>14} {:>8}  {peak}",
                p.engine,
                p.phase,
                count(p.rows),
                p.secs,
                count(p.rows_per_sec.round() as u64),
                count(p.values_per_sec.round() as u64),
                p.bytes_on_disk.map_or("-".to_owned(), count),
                p.bytes_per_value
                    .map_or("-".to_owned(), |b| format!("{b:.3}")),
            );
        }
        for p in &self.ingest {
            if let Some(note) = &p.note {
                let _ = writeln!(out, "  {} {}: {note}", p.engine, p.phase);
            }
        }
        out
    }

    /// The queries: per engine p50, p95 and max; per peer the ratio of p50s; the answer.
    pub fn query_table(&self) -> String {
        let engines = &self.settings.engines;
        let mut out = format!(
            "queries: {}; p50, p95 and max of {} timed runs after {} warm-up(s), engines taking turns in a rotating order\n",
            self.query_set,
            self.settings.runs,
            self.settings.warmup.max(1)
        );
        match self.settings.plan_cache_size {
            0 => out.push_str(
                "sextant parses and plans every run, as the peers do (--plan-cache-size 0)\n",
            ),
            n => {
                let _ = writeln!(
                    out,
                    "sextant keeps the plans of up to {n} SQL texts, so its runs after the first skip parsing and, where a plan can run again, planning (--plan-cache-size 0: every run planned, as the peers' are)"
                );
            }
        }
        let mut head = format!("{:<30} {:>7}", "query", "rows");
        let mut unit = format!("{:<30} {:>7}", "", "");
        for e in engines {
            let _ = write!(head, " | {:>8} {:>8} {:>8}", e, "p95", "max");
            let _ = write!(unit, " | {:>8} {:>8} {:>8}", "p50 ms", "ms", "ms");
        }
        for e in engines.iter().skip(1) {
            let _ = write!(head, " | {:>7}", "ratio");
            let _ = write!(unit, " | {:>7}", format!("s/{}", &e[..e.len().min(1)]));
        }
        let _ = writeln!(out, "{head}  answers");
        let _ = writeln!(out, "{unit}");
        let mut reasons = Vec::new();
        for q in &self.queries {
            let rows = q
                .engine(&engines[0])
                .and_then(|e| e.rows)
                .map_or("-".to_owned(), count);
            let mut line = format!("{:<30} {rows:>7}", q.name);
            for e in engines {
                match q.engine(e) {
                    Some(r) if r.status != NOT_AVAILABLE => {
                        let f = |v: Option<f64>| v.map_or("-".to_owned(), ms);
                        let _ = write!(
                            line,
                            " | {:>8} {:>8} {:>8}",
                            f(r.p50_ms),
                            f(r.p95_ms),
                            f(r.max_ms)
                        );
                    }
                    other => {
                        let _ = write!(line, " | {:>8} {:>8} {:>8}", NOT_AVAILABLE, "", "");
                        if let Some(reason) = other.and_then(|r| r.reason.as_ref()) {
                            reasons.push(format!("{} on {e}: n/a, {reason}", q.name));
                        }
                    }
                }
            }
            for e in engines.iter().skip(1) {
                let ratio = q.engine(e).and_then(|r| r.sextant_ratio);
                let _ = write!(
                    line,
                    " | {:>7}",
                    ratio.map_or(NOT_AVAILABLE.to_owned(), |r| format!("{r:.2}"))
                );
            }
            let verdict = match (&q.mismatch, q.engine(&engines[0])) {
                (Some(_), _) => "MISMATCH".to_owned(),
                (None, Some(e)) => format!("agree {}", e.checksum.as_deref().unwrap_or("-")),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "{line}  {verdict}");
        }
        for e in engines.iter().skip(1) {
            let ratios: Vec<f64> = self
                .queries
                .iter()
                .filter_map(|q| q.engine(e).and_then(|r| r.sextant_ratio))
                .collect();
            if !ratios.is_empty() {
                let _ = writeln!(
                    out,
                    "geometric mean of sextant/{e} p50 ratios over {} queries: {:.2} (below 1: sextant faster)",
                    ratios.len(),
                    geometric_mean(ratios)
                );
            }
        }
        for r in reasons {
            let _ = writeln!(out, "{r}");
        }
        for q in &self.queries {
            if let Some(m) = &q.mismatch {
                let _ = writeln!(out, "!!! CHECKSUM MISMATCH in {}: {m}", q.name);
            }
        }
        out
    }

    /// The `EXPLAIN ANALYZE` output of each query on each engine, where recorded.
    pub fn plans(&self) -> String {
        let mut out = String::new();
        for q in &self.queries {
            for e in &q.engines {
                if let Some(plan) = &e.explain {
                    let _ = writeln!(out, "== {} on {}\n{plan}", q.name, e.engine);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_printed_for_people() {
        assert_eq!(ms(0.1234), "0.12");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(1234.0), "1234");
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(123), "123");
        assert_eq!(mib(3 << 20), "3.0 MiB");
    }
}
