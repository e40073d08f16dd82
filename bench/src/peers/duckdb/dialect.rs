//! Sextant's TSBS SQL in DuckDB's dialect.
//!
//! The devops queries are written in TimescaleDB's shapes, which DuckDB reads as they are:
//! `time_bucket('60 seconds', time)` (DuckDB's `time_bucket(INTERVAL, TIMESTAMP)`, whose
//! buckets fall on the same minute and hour boundaries as Sextant's epoch-aligned ones),
//! `'2016-01-01 07:11:42'` literals compared with a `TIMESTAMP`, `hostname IN (...)` and
//! `DISTINCT ON`. What differs:
//!
//! - An aggregate without an alias is named after its text: DuckDB calls groupby-orderby-
//!   limit's column `max(usage_user)`, DataFusion `max(cpu.usage_user)`. The alias is
//!   added, so that the answers' headers agree.
//! - DuckDB's `TIMESTAMP` holds microseconds: a literal with a fraction finer than that
//!   would be rounded, so on such a table (the cpu workloads') the query is refused rather
//!   than answered differently (the query sets draw whole seconds). The log table's
//!   `TIMESTAMP_NS` takes any literal.

/// DuckDB's form of `sql`, or why DuckDB cannot run it as Sextant does (a sentence);
/// `nanoseconds` tells whether the table's `time` is a `TIMESTAMP_NS` (which takes any
/// literal) rather than a `TIMESTAMP`.
pub fn translate(sql: &str, nanoseconds: bool) -> Result<String, String> {
    if let Some(literal) = finer_than_microseconds(sql).filter(|_| !nanoseconds) {
        return Err(format!(
            "the literal {literal} is finer than a microsecond, which DuckDB's TIMESTAMP \
             cannot hold"
        ));
    }
    Ok(sql.replace(
        "max(usage_user) FROM",
        "max(usage_user) AS \"max(cpu.usage_user)\" FROM",
    ))
}

/// The first quoted timestamp literal of `sql` whose fraction has a non-zero digit past
/// the sixth.
fn finer_than_microseconds(sql: &str) -> Option<&str> {
    let mut rest = sql;
    while let Some(open) = rest.find('\'') {
        let after = &rest[open + 1..];
        let close = after.find('\'')?;
        let literal = &after[..close];
        if looks_like_timestamp(literal)
            && let Some((_, fraction)) = literal.split_once('.')
            && fraction.bytes().skip(6).any(|b| b != b'0')
        {
            return Some(&rest[open..open + close + 2]);
        }
        rest = &after[close + 1..];
    }
    None
}

/// `YYYY-MM-DD HH:MM:SS...`
fn looks_like_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::{DEVOPS, devops_index, draw};
    use crate::workload::cpu::CpuConfig;

    #[test]
    fn unaliased_max_gets_datafusions_name() {
        let config = CpuConfig::new(4, 0.5);
        let index = devops_index("groupby-orderby-limit").unwrap();
        let sql = draw(index, 1, &config).sql();
        let duck = translate(&sql, false).unwrap();
        assert!(
            duck.contains("max(usage_user) AS \"max(cpu.usage_user)\" FROM cpu"),
            "{duck}"
        );
    }

    #[test]
    fn every_devops_query_translates() {
        let config = CpuConfig::new(10, 1.0);
        for (index, (name, _)) in DEVOPS.iter().enumerate() {
            let sql = draw(index, 3, &config).sql();
            assert!(translate(&sql, false).is_ok(), "{name}: {sql}");
        }
    }

    #[test]
    fn sub_microsecond_literals_are_refused() {
        let ok = "SELECT * FROM cpu WHERE time < '2016-01-01 00:00:01.000001000'";
        assert_eq!(translate(ok, false).unwrap(), ok);
        let fine = "SELECT * FROM cpu WHERE time >= '2016-01-01 00:00:00' AND \
                    time < '2016-01-01 00:00:01.000000005'";
        let reason = translate(fine, false).unwrap_err();
        // A TIMESTAMP_NS column (the log table's) takes them.
        assert_eq!(translate(fine, true).unwrap(), fine);
        assert!(
            reason.contains("'2016-01-01 00:00:01.000000005'"),
            "{reason}"
        );
        // Other strings are not timestamps.
        assert!(translate("SELECT 'a.1234567891' FROM cpu", false).is_ok());
    }
}
