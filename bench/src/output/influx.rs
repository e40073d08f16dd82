//! InfluxDB line protocol: `measurement[,tag=value...] field=value[,field=value...] ns`.
//!
//! Escaping follows the protocol: in measurements, commas and spaces are escaped with a
//! backslash; in tag keys, tag values and field keys, commas, equals signs and spaces; in
//! string field values (double-quoted), double quotes and backslashes. Numbers are written
//! as floats (no `i` suffix). Line protocol cannot carry a line break in a tag value.

use super::{LogEvent, push_f64, push_i64, push_trace_id};

/// Appends a measurement name, escaping commas and spaces.
pub fn push_measurement(out: &mut Vec<u8>, name: &str) {
    for b in name.bytes() {
        if matches!(b, b',' | b' ') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Appends a tag key, tag value or field key, escaping commas, equals signs and spaces.
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    for b in key.bytes() {
        if matches!(b, b',' | b'=' | b' ') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Appends a string field value in double quotes, escaping double quotes and backslashes.
pub fn push_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The series key `measurement,key=value,...` (tags in the order given).
pub fn series_key<'a>(
    measurement: &str,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    push_measurement(&mut out, measurement);
    for (key, value) in tags {
        out.push(b',');
        push_key(&mut out, key);
        out.push(b'=');
        push_key(&mut out, value);
    }
    out
}

/// Appends one cpu line: the host's series key, the 10 fields, the timestamp.
pub fn cpu_line(
    out: &mut Vec<u8>,
    series_key: &[u8],
    values: impl Iterator<Item = f64>,
    time: i64,
) {
    out.extend_from_slice(series_key);
    for (i, (name, v)) in crate::workload::cpu::FIELDS.iter().zip(values).enumerate() {
        out.push(if i == 0 { b' ' } else { b',' });
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        push_f64(out, v);
    }
    out.push(b' ');
    push_i64(out, time);
    out.push(b'\n');
}

/// Appends one logs line: tags service, host, env; string fields level, message, trace_id;
/// float field duration_ms when present.
pub fn logs_line(out: &mut Vec<u8>, e: &LogEvent<'_>) {
    out.extend_from_slice(&series_key(
        crate::workload::logs::TABLE,
        [("service", e.service), ("host", e.host), ("env", e.env)],
    ));
    out.extend_from_slice(b" level=");
    push_string(out, e.level);
    out.extend_from_slice(b",message=");
    push_string(out, e.message);
    out.extend_from_slice(b",trace_id=\"");
    push_trace_id(out, &e.trace_id);
    out.push(b'"');
    if let Some(d) = e.duration_ms {
        out.extend_from_slice(b",duration_ms=");
        push_f64(out, d);
    }
    out.push(b' ');
    push_i64(out, e.time);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_escape_spaces_commas_and_equals() {
        let key = series_key("my cpu,x", [("host name", "a b,c=d"), ("k=1", "plain")]);
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r"my\ cpu\,x,host\ name=a\ b\,c\=d,k\=1=plain"
        );
    }

    #[test]
    fn string_fields_escape_quotes_and_backslashes_but_keep_spaces_commas_equals() {
        let mut out = Vec::new();
        push_string(&mut out, r#"say "hi", a=b \ done"#);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""say \"hi\", a=b \\ done""#
        );
    }

    #[test]
    fn logs_line_omits_a_missing_duration() {
        let mut e = LogEvent {
            time: 1_451_606_400_123_456_789,
            service: "api gateway",
            host: "host_1",
            env: "production",
            level: "warn",
            message: "core: slow \"GET\" took 5ms",
            trace_id: [0x01; 16],
            duration_ms: None,
        };
        let mut out = Vec::new();
        logs_line(&mut out, &e);
        e.duration_ms = Some(12.5);
        logs_line(&mut out, &e);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"logs,service=api\ gateway,host=host_1,env=production level="warn",message="core: slow \"GET\" took 5ms",trace_id="01010101010101010101010101010101" 1451606400123456789"#
        );
        assert!(lines[1].ends_with(r#"",duration_ms=12.5 1451606400123456789"#));
    }

    #[test]
    fn cpu_line_writes_fields_in_order_with_ns_time() {
        let mut out = Vec::new();
        let key = series_key("cpu", [("hostname", "host_0")]);
        cpu_line(
            &mut out,
            &key,
            (0..10).map(f64::from),
            1_451_606_400_000_000_000,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "cpu,hostname=host_0 usage_user=0,usage_system=1,usage_idle=2,usage_nice=3,\
             usage_iowait=4,usage_irq=5,usage_softirq=6,usage_steal=7,usage_guest=8,\
             usage_guest_nice=9 1451606400000000000\n"
        );
    }
}
