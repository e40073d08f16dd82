//! The benchmark's output: a table for people and a JSON document with stable field names.
//!
//! JSON layout (times in milliseconds, sizes in bytes):
//!
//! ```text
//! { "command", "scale", "days", "seed", "runs", "target_partitions", "rows",
//!   "sextant": { "write_secs", "flush_secs", "segment_bytes", "segments" },
//!   "parquet": { "write_secs", "bytes", "row_groups", "row_group_rows" },
//!   "geomean_ratio", "all_agree",
//!   "queries": [ { "name", "sql", "rows", "agree", "difference", "ratio",
//!                  "sextant": { "p50_ms", "p95_ms", "max_ms", "runs_ms", "rows", "checksum" },
//!                  "parquet": { ...the same } } ] }
//! ```

use std::fmt::Write as _;

use super::{EngineResult, QueryReport};

/// Milliseconds, printed with about 3 significant digits.
fn ms(secs: f64) -> String {
    let ms = secs * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

impl QueryReport {
    /// The table: one line per query type, then the geometric mean of the ratios.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>7}  answers",
            "query", "rows", "sextant", "p95", "max", "parquet", "p95", "max", "ratio"
        );
        let _ = writeln!(
            out,
            "{:<22} {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>7}",
            "", "", "p50 ms", "ms", "ms", "p50 ms", "ms", "ms", "s/p"
        );
        for r in &self.results {
            let (s, p) = (&r.sextant.latency, &r.parquet.latency);
            let verdict = match r.difference() {
                None => format!("agree {:016x}", r.sextant.answer.checksum),
                Some(_) => "DIFFER".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<22} {:>7} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>7.2}  {verdict}",
                r.name,
                r.sextant.answer.rows(),
                ms(s.p50()),
                ms(s.p95()),
                ms(s.max()),
                ms(p.p50()),
                ms(p.p95()),
                ms(p.max()),
                r.ratio(),
            );
        }
        let _ = writeln!(
            out,
            "geometric mean of the ratios (sextant / parquet p50): {:.2}",
            self.geomean_ratio()
        );
        for r in &self.results {
            if let Some(d) = r.difference() {
                let _ = writeln!(
                    out,
                    "!!! ANSWERS DIFFER for {}: {d}\n!!!   sextant {:016x} ({} rows), parquet {:016x} ({} rows)\n!!!   {}",
                    r.name,
                    r.sextant.answer.checksum,
                    r.sextant.answer.rows(),
                    r.parquet.answer.checksum,
                    r.parquet.answer.rows(),
                    r.sql
                );
            }
        }
        out
    }

    /// The `EXPLAIN ANALYZE` output of each query on both engines, where it was asked for.
    pub fn plans(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            for (engine, e) in [("sextant", &r.sextant), ("parquet", &r.parquet)] {
                if let Some(plan) = &e.explain {
                    let _ = writeln!(out, "== {} on {engine}\n{plan}", r.name);
                }
            }
        }
        out
    }

    /// The JSON document (see the module docs); `command` is the command line.
    pub fn json(&self, command: &str) -> String {
        let o = &self.options;
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"command\": {},", string(command));
        let _ = writeln!(out, "  \"scale\": {},", o.scale);
        let _ = writeln!(out, "  \"days\": {},", number(o.days));
        let _ = writeln!(out, "  \"seed\": {},", o.seed);
        let _ = writeln!(out, "  \"runs\": {},", o.runs);
        let _ = writeln!(out, "  \"target_partitions\": {},", o.target_partitions);
        let _ = writeln!(out, "  \"rows\": {},", self.sextant.rows);
        let s = &self.sextant;
        let _ = writeln!(
            out,
            "  \"sextant\": {{\"write_secs\": {}, \"flush_secs\": {}, \"segment_bytes\": {}, \"segments\": {}}},",
            number(s.write_secs),
            number(s.flush_secs),
            s.segment_bytes,
            s.segments
        );
        let p = &self.parquet;
        let _ = writeln!(
            out,
            "  \"parquet\": {{\"write_secs\": {}, \"bytes\": {}, \"row_groups\": {}, \"row_group_rows\": {}}},",
            number(p.write_secs),
            p.bytes,
            p.row_groups,
            o.row_group_rows
        );
        let _ = writeln!(
            out,
            "  \"geomean_ratio\": {},",
            number(self.geomean_ratio())
        );
        let _ = writeln!(out, "  \"all_agree\": {},", self.disagreements().is_empty());
        out.push_str("  \"queries\": [");
        for (i, r) in self.results.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            let difference = r.difference();
            let _ = write!(
                out,
                "    {{\"name\": {}, \"sql\": {}, \"rows\": {}, \"agree\": {}, \"difference\": {}, \"ratio\": {},\n     \"sextant\": {},\n     \"parquet\": {}}}",
                string(r.name),
                string(&r.sql),
                r.sextant.answer.rows(),
                difference.is_none(),
                difference.as_deref().map_or("null".to_owned(), string),
                number(r.ratio()),
                engine(&r.sextant),
                engine(&r.parquet)
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}

/// One engine's figures as a JSON object.
fn engine(e: &EngineResult) -> String {
    let l = &e.latency;
    let runs: Vec<String> = l.runs_secs.iter().map(|s| number(s * 1e3)).collect();
    format!(
        "{{\"p50_ms\": {}, \"p95_ms\": {}, \"max_ms\": {}, \"runs_ms\": [{}], \"rows\": {}, \"checksum\": \"{:016x}\"}}",
        number(l.p50() * 1e3),
        number(l.p95() * 1e3),
        number(l.max() * 1e3),
        runs.join(", "),
        e.answer.rows(),
        e.answer.checksum
    )
}

/// A finite number as JSON (`null` otherwise), to microsecond-ish precision.
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1e6).round() / 1e6)
    } else {
        "null".to_owned()
    }
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_and_numbers_are_escaped() {
        assert_eq!(string("a \"b\"\n\\"), r#""a \"b\"\n\\""#);
        assert_eq!(string("\u{1}"), r#""\u0001""#);
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.0012345678), "0.001235");
        assert_eq!(number(f64::NAN), "null");
    }

    #[test]
    fn milliseconds_keep_about_three_digits() {
        assert_eq!(ms(0.000_123_4), "0.12");
        assert_eq!(ms(0.012_34), "12.3");
        assert_eq!(ms(1.234), "1234");
    }
}
