//! CSV encoding (RFC 4180): a header row, then one line per row; fields that hold a comma,
//! a double quote or a line break are quoted, with quotes doubled.

use super::{LogEvent, push_f64, push_trace_id};
use crate::time::write_rfc3339;
use crate::workload::cpu::CpuHost;

/// Appends `value` as one CSV field, quoted if needed.
pub fn push_field(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for b in value.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// The header line: `time` then the given column names.
pub fn header<'a>(columns: impl IntoIterator<Item = &'a &'a str>) -> Vec<u8> {
    let mut out = b"time".to_vec();
    for c in columns {
        out.push(b',');
        push_field(&mut out, c);
    }
    out.push(b'\n');
    out
}

/// A host's tags as `,tag,...,tag` (what follows the time in each of its rows).
pub fn cpu_prefix(host: &CpuHost) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in host.tags() {
        out.push(b',');
        push_field(&mut out, tag);
    }
    out
}

/// Appends one cpu row.
pub fn cpu_row(out: &mut Vec<u8>, time: i64, prefix: &[u8], values: impl Iterator<Item = f64>) {
    write_rfc3339(out, time);
    out.extend_from_slice(prefix);
    for v in values {
        out.push(b',');
        push_f64(out, v);
    }
    out.push(b'\n');
}

/// Appends one logs row; a missing duration is an empty field.
pub fn logs_row(out: &mut Vec<u8>, e: &LogEvent<'_>) {
    write_rfc3339(out, e.time);
    for s in [e.service, e.host, e.env, e.level, e.message] {
        out.push(b',');
        push_field(out, s);
    }
    out.push(b',');
    push_trace_id(out, &e.trace_id);
    out.push(b',');
    if let Some(d) = e.duration_ms {
        push_f64(out, d);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_commas_quotes_and_newlines_are_quoted() {
        let mut out = Vec::new();
        for (i, v) in ["plain", "a,b", "say \"hi\"", "two\nlines", ""]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            push_field(&mut out, v);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\","
        );
    }

    #[test]
    fn logs_row_has_eight_fields_and_empty_missing_duration() {
        let e = LogEvent {
            time: 1_451_606_400_000_000_001,
            service: "auth",
            host: "host_1",
            env: "production",
            level: "error",
            message: "core: failed, with \"quotes\"",
            trace_id: [0xab; 16],
            duration_ms: None,
        };
        let mut out = Vec::new();
        logs_row(&mut out, &e);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2016-01-01T00:00:00.000000001Z,auth,host_1,production,error,\
             \"core: failed, with \"\"quotes\"\"\",abababababababababababababababab,\n"
        );
    }
}
