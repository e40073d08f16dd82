//! `sextant-bench compare old.json new.json`: two run reports metric by metric, each
//! possibly the median of several rounds ([`median_of`]).

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
    if let Some(differ) = plan_caches_differ(old, new) {
        return vec![differ];
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

/// A phrase saying that Sextant kept the plans of a different number of SQL texts in the
/// two runs (planning every run or not changes its query times many times over), if so.
fn plan_caches_differ(old: &RunReport, new: &RunReport) -> Option<String> {
    let (a, b) = (old.settings.plan_cache_size, new.settings.plan_cache_size);
    (a != b).then(|| format!("the runs differ in Sextant's plan cache ({a} and {b} SQL texts)"))
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
    if let Some(differ) = plan_caches_differ(old, new) {
        let _ = writeln!(out, "note: {differ}");
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

/// One report from several rounds of one run (the same build and command, run several
/// times, alternated with the other build's rounds): each compared figure (a phase's
/// rows/s, bytes per value and peak RSS, a query's p50 per engine) is the median of the
/// rounds', and a query's answers agree only if they agree in every round. A figure that
/// one round lacks is missing from the merge (a phase of one round only is left out), so
/// that `--fail-if-worse` fails on it as on a single report that lacks it. Rounds of
/// other workloads or settings are refused. The rest (commands, p95s, checksums) is from
/// the first round that has it.
///
/// One round is not enough to gate on: sub-millisecond p50s of one build move by 10 %
/// from run to run, so that `--fail-if-worse` failed 4 of 5 comparisons of a build with
/// itself at scale 100 (`--runs 20`).
pub fn median_of(rounds: &[RunReport]) -> Result<RunReport, String> {
    let Some(first) = rounds.first() else {
        return Err("there are no rounds to take the median of".to_owned());
    };
    for (i, r) in rounds.iter().enumerate().skip(1) {
        if r.workload != first.workload {
            return Err(format!(
                "round {} is of workload {} {:?} days {} seed {}, round 1 of {} {:?} days {} seed {}",
                i + 1,
                r.workload.name,
                r.workload.scale.or(r.workload.events_per_second),
                r.workload.days,
                r.workload.seed,
                first.workload.name,
                first.workload.scale.or(first.workload.events_per_second),
                first.workload.days,
                first.workload.seed,
            ));
        }
        if r.settings != first.settings || r.query_set != first.query_set {
            return Err(format!(
                "round {} was run with other settings than round 1 ({:?} and {:?})",
                i + 1,
                r.command,
                first.command
            ));
        }
    }
    let mut out = first.clone();
    // Every phase and query of any round, in the order they first appear.
    out.ingest.clear();
    for p in rounds.iter().flat_map(|r| &r.ingest) {
        let is_p = |q: &&super::Phase| q.engine == p.engine && q.phase == p.phase;
        if out.ingest.iter().any(|q| is_p(&q)) {
            continue;
        }
        let all: Option<Vec<&super::Phase>> =
            rounds.iter().map(|r| r.ingest.iter().find(is_p)).collect();
        let Some(all) = all else { continue };
        let mut phase = p.clone();
        phase.rows_per_sec = median(all.iter().map(|p| Some(p.rows_per_sec))).unwrap_or(0.0);
        phase.bytes_per_value = median(all.iter().map(|p| p.bytes_per_value));
        phase.peak_rss_bytes = median(all.iter().map(|p| p.peak_rss_bytes.map(|b| b as f64)))
            .map(|b| b.round() as u64);
        out.ingest.push(phase);
    }
    out.queries.clear();
    for q in rounds.iter().flat_map(|r| &r.queries) {
        if out.queries.iter().any(|o| o.name == q.name) {
            continue;
        }
        let same: Vec<Option<&super::report::QueryResult>> = rounds
            .iter()
            .map(|r| r.queries.iter().find(|o| o.name == q.name))
            .collect();
        let mut query = q.clone();
        query.engines.clear();
        for e in same.iter().flatten().flat_map(|o| &o.engines) {
            if query.engines.iter().any(|x| x.engine == e.engine) {
                continue;
            }
            let mut engine = e.clone();
            engine.p50_ms = median(
                same.iter()
                    .map(|o| o.and_then(|o| o.engine(&e.engine)).and_then(|e| e.p50_ms)),
            );
            query.engines.push(engine);
        }
        let disagree = same.iter().flatten().find(|o| !o.agree);
        query.agree = disagree.is_none();
        if let Some(o) = disagree {
            query.mismatch = o.mismatch.clone();
        }
        out.queries.push(query);
    }
    out.all_agree = rounds.iter().all(|r| r.all_agree);
    Ok(out)
}

/// The median of `values` (see [`crate::measure::median`]); `None` when there are none or
/// one is missing.
fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    crate::measure::median(values.collect::<Option<_>>()?)
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
