//! `sextant-bench compare old.json new.json`: two run reports metric by metric.

use std::fmt::Write as _;

use super::report::RunReport;

/// Whether a larger figure is better (rates) or worse (latency, size, memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Rates.
    Higher,
    /// Latencies, sizes, memory.
    Lower,
}

/// One metric in both reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What is measured, e.g. `sextant write rows/s`, `lastpoint p50 ms (parquet)`.
    pub metric: String,
    /// The engine the figure is of: `sextant`, `parquet`, `tsink`.
    pub engine: String,
    /// The old figure, if the old report has it.
    pub old: Option<f64>,
    /// The new figure, if the new report has it.
    pub new: Option<f64>,
    /// Which direction is an improvement.
    pub better: Better,
}

/// How a metric moved, given a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Better by more than the threshold.
    Better,
    /// Worse by more than the threshold.
    Worse,
    /// Within the threshold.
    Same,
    /// Missing in one of the reports.
    Missing,
}

impl Change {
    /// The relative change, new over old minus one (`None` when one is missing or old is 0).
    pub fn relative(&self) -> Option<f64> {
        match (self.old, self.new) {
            (Some(o), Some(n)) if o != 0.0 => Some(n / o - 1.0),
            _ => None,
        }
    }

    /// The verdict at `threshold` (a fraction: 0.05 for 5 %).
    pub fn verdict(&self, threshold: f64) -> Verdict {
        let Some(r) = self.relative() else {
            return Verdict::Missing;
        };
        if r.abs() <= threshold {
            return Verdict::Same;
        }
        match (r > 0.0, self.better) {
            (true, Better::Higher) | (false, Better::Lower) => Verdict::Better,
            _ => Verdict::Worse,
        }
    }

    /// The word for the verdict: `faster`/`slower` for rates and latencies,
    /// `smaller`/`larger` for sizes and memory.
    pub fn word(&self, threshold: f64) -> &'static str {
        let size = self.metric.contains("bytes") || self.metric.contains("RSS");
        match (self.verdict(threshold), size) {
            (Verdict::Better, false) => "faster",
            (Verdict::Worse, false) => "SLOWER",
            (Verdict::Better, true) => "smaller",
            (Verdict::Worse, true) => "LARGER",
            (Verdict::Same, _) => "",
            (Verdict::Missing, _) => "missing",
        }
    }
}

/// Every metric of either report: per loading phase rows/s, bytes per value and peak RSS;
/// per query and engine the p50.
pub fn changes(old: &RunReport, new: &RunReport) -> Vec<Change> {
    let mut out = Vec::new();
    let mut phases: Vec<(String, String)> = Vec::new();
    for p in old.ingest.iter().chain(&new.ingest) {
        let key = (p.engine.clone(), p.phase.clone());
        if !phases.contains(&key) {
            phases.push(key);
        }
    }
    for (engine, phase) in &phases {
        let find = |r: &RunReport| {
            r.ingest
                .iter()
                .find(|p| &p.engine == engine && &p.phase == phase)
                .cloned()
        };
        let (o, n) = (find(old), find(new));
        let name = format!("{engine} {phase}");
        out.push(Change {
            metric: format!("{name} rows/s"),
            engine: engine.clone(),
            old: o.as_ref().map(|p| p.rows_per_sec),
            new: n.as_ref().map(|p| p.rows_per_sec),
            better: Better::Higher,
        });
        let bpv = |p: &Option<super::Phase>| p.as_ref().and_then(|p| p.bytes_per_value);
        if bpv(&o).is_some() || bpv(&n).is_some() {
            out.push(Change {
                metric: format!("{name} bytes/value"),
                engine: engine.clone(),
                old: bpv(&o),
                new: bpv(&n),
                better: Better::Lower,
            });
        }
        let rss = |p: &Option<super::Phase>| p.as_ref().and_then(|p| p.peak_rss_bytes);
        out.push(Change {
            metric: format!("{name} peak RSS MiB"),
            engine: engine.clone(),
            old: rss(&o).map(|b| b as f64 / f64::from(1 << 20)),
            new: rss(&n).map(|b| b as f64 / f64::from(1 << 20)),
            better: Better::Lower,
        });
    }
    let mut queries: Vec<(String, String)> = Vec::new();
    for q in old.queries.iter().chain(&new.queries) {
        for e in &q.engines {
            let key = (q.name.clone(), e.engine.clone());
            if !queries.contains(&key) {
                queries.push(key);
            }
        }
    }
    for (query, engine) in &queries {
        let p50 = |r: &RunReport| {
            r.queries
                .iter()
                .find(|q| &q.name == query)
                .and_then(|q| q.engine(engine))
                .and_then(|e| e.p50_ms)
        };
        out.push(Change {
            metric: format!("{query} p50 ms ({engine})"),
            engine: engine.clone(),
            old: p50(old),
            new: p50(new),
            better: Better::Lower,
        });
    }
    out
}

/// What `compare --fail-if-worse` fails on, given `threshold` (a fraction), each a phrase:
/// Sextant's metrics (not its peers', whose figures move with the machine rather than with
/// Sextant's changes) worse beyond the threshold or missing from the new run, answers that
/// disagree in the new run, and runs of different workloads.
pub fn sextant_regressions(old: &RunReport, new: &RunReport, threshold: f64) -> Vec<String> {
    if old.workload != new.workload {
        let describe = |w: &super::report::WorkloadInfo| {
            format!(
                "{} scale {:?} events/s {:?} days {} seed {} rows {}",
                w.name, w.scale, w.events_per_second, w.days, w.seed, w.rows
            )
        };
        return vec![format!(
            "the runs are of different workloads ({} and {})",
            describe(&old.workload),
            describe(&new.workload)
        )];
    }
    let mut out: Vec<String> = changes(old, new)
        .into_iter()
        .filter(|c| c.engine == "sextant")
        .filter_map(|c| match (c.verdict(threshold), c.old, c.new) {
            (Verdict::Worse, ..) => Some(c.metric),
            (Verdict::Missing, Some(_), None) => Some(format!("{} (missing)", c.metric)),
            _ => None,
        })
        .collect();
    out.extend(
        new.disagreements()
            .into_iter()
            .map(|q| format!("{q} (answers differ)")),
    );
    out
}

/// The comparison as a table; `threshold` is a fraction.
pub fn table(old: &RunReport, new: &RunReport, threshold: f64) -> String {
    let mut out = String::new();
    if old.workload != new.workload {
        let _ = writeln!(
            out,
            "note: the workloads differ: {} {:?} vs {} {:?}",
            old.workload.name, old.command, new.workload.name, new.command
        );
    }
    let _ = writeln!(
        out,
        "{:<48} {:>12} {:>12} {:>9}  (threshold {:.1}%)",
        "metric",
        "old",
        "new",
        "change",
        threshold * 100.0
    );
    let figure = |v: Option<f64>| match v {
        None => "-".to_owned(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    };
    for c in changes(old, new) {
        let change = c
            .relative()
            .map_or("-".to_owned(), |r| format!("{:+.1}%", r * 100.0));
        let _ = writeln!(
            out,
            "{:<48} {:>12} {:>12} {:>9}  {}",
            c.metric,
            figure(c.old),
            figure(c.new),
            change,
            c.word(threshold)
        );
    }
    out
}

/// Reads a threshold written as `5%`, `5` (both 5 %) or `0.5%`; a fraction.
pub fn parse_threshold(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!(
            "expected a percentage such as 5% or 2.5, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests;
