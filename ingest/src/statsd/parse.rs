//! The StatsD line parser: one metric per line, borrowed from the packet.

use super::Error;
use crate::outcome::snippet;

/// The type of a StatsD metric, from the code after the value's `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `c`: a count added up over the interval.
    Counter,
    /// `g`: a value that stays until changed; `+n`/`-n` change it by n.
    Gauge,
    /// `ms`: a duration, summarised over the interval.
    Timer,
    /// `h`: a value summarised over the interval like a timer.
    Histogram,
    /// `d`: DogStatsD's distribution, summarised here like a histogram.
    Distribution,
    /// `s`: a set member; the interval's distinct members are counted.
    Set,
}

impl Kind {
    /// The kind of a type code (`c`, `g`, `ms`, `h`, `d`, `s`).
    pub fn from_code(code: &str) -> Option<Kind> {
        Some(match code {
            "c" => Kind::Counter,
            "g" => Kind::Gauge,
            "ms" => Kind::Timer,
            "h" => Kind::Histogram,
            "d" => Kind::Distribution,
            "s" => Kind::Set,
            _ => return None,
        })
    }

    /// The value of the `metric_type` tag Telegraf gives this kind.
    pub fn metric_type(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Timer => "timing",
            Kind::Histogram => "histogram",
            Kind::Distribution => "distribution",
            Kind::Set => "set",
        }
    }

    /// Whether values of this kind are summarised (count, mean, percentiles, ...).
    pub fn is_summary(self) -> bool {
        matches!(self, Kind::Timer | Kind::Histogram | Kind::Distribution)
    }
}

/// One value of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A number: a count, a gauge's new value or a sample.
    Number(f64),
    /// A gauge's `+n` or `-n`: a change of its value.
    Delta(f64),
    /// A set member.
    Member(&'a str),
}

/// One parsed StatsD line.
///
/// `name:value[:value...]|type[|@rate][|#tag:value,tag2...]`, and Telegraf's
/// `name,tag=value:...` tags in the name too.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    name: &'a str,
    kind: Kind,
    sample_rate: f64,
    values: &'a str,
    name_tags: &'a str,
    dog_tags: &'a str,
}

impl<'a> Metric<'a> {
    /// The metric's name (without tags written into it).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its type.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The sample rate (`@0.1`: one in ten was sent), in (0, 1]; 1 when absent.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// The values of the line (DogStatsD packs several as `1:2:3|h`).
    pub fn values(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let kind = self.kind;
        let mut whole = Some(self.values);
        let mut packed = self.values.split(':');
        std::iter::from_fn(move || {
            if kind == Kind::Set {
                return whole.take().map(Value::Member);
            }
            packed
                .next()
                .map(|v| number(kind, v).expect("validated when parsed"))
        })
    }

    /// The tags: Telegraf-style `name,key=value` ones, then DogStatsD's `#key:value`
    /// (a DogStatsD tag without a value gets the value `true`, as in Telegraf).
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let name_tags = self
            .name_tags
            .split(',')
            .filter_map(|t| t.split_once('='))
            .filter(|(k, _)| !k.is_empty());
        let dog_tags = self
            .dog_tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once(':') {
                Some((k, "")) => (k, "true"),
                Some((k, v)) => (k, v),
                None => (t, "true"),
            })
            .filter(|(k, _)| !k.is_empty());
        name_tags.chain(dog_tags)
    }
}

fn number(kind: Kind, text: &str) -> Result<Value<'static>, ()> {
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|c| c.is_ascii_digit());
    let x: f64 = match text.parse() {
        Ok(x) if ok && f64::is_finite(x) => x,
        _ => return Err(()),
    };
    if kind == Kind::Gauge && (text.starts_with('+') || text.starts_with('-')) {
        return Ok(Value::Delta(x));
    }
    Ok(Value::Number(x))
}

/// Parses one line of a StatsD packet (without its line end).
///
/// ```
/// use sextant_ingest::statsd::{parse_line, Kind, Value};
/// let m = parse_line("api.requests:1|c|@0.5|#route:/users,canary").unwrap();
/// assert_eq!((m.name(), m.kind(), m.sample_rate()), ("api.requests", Kind::Counter, 0.5));
/// assert_eq!(m.values().collect::<Vec<_>>(), [Value::Number(1.0)]);
/// assert_eq!(m.tags().collect::<Vec<_>>(), [("route", "/users"), ("canary", "true")]);
/// ```
pub fn parse_line(line: &str) -> Result<Metric<'_>, Error> {
    let Some((bucket, rest)) = line.split_once(':') else {
        return Err(Error::MissingValue {
            line: snippet(line, 64),
        });
    };
    let (name, name_tags) = bucket.split_once(',').unwrap_or((bucket, ""));
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    let mut sections = rest.split('|');
    let values = sections.next().unwrap_or("");
    let Some(code) = sections.next() else {
        return Err(Error::MissingType {
            name: snippet(name, 64),
        });
    };
    let kind = Kind::from_code(code).ok_or_else(|| Error::UnknownType {
        code: snippet(code, 16),
    })?;
    let mut metric = Metric {
        name,
        kind,
        sample_rate: 1.0,
        values,
        name_tags,
        dog_tags: "",
    };
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            metric.sample_rate = match rate.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1.0 => r,
                _ => {
                    return Err(Error::InvalidSampleRate {
                        text: snippet(section, 32),
                    });
                }
            };
        } else if let Some(tags) = section.strip_prefix('#') {
            metric.dog_tags = tags;
        } else if section.starts_with("c:") || section.starts_with("e:") || section.starts_with('T')
        {
            // DogStatsD's container id, external data and timestamp: not used.
        } else {
            return Err(Error::UnknownSection {
                text: snippet(section, 32),
            });
        }
    }
    if values.is_empty() {
        return Err(Error::MissingValue {
            line: snippet(line, 64),
        });
    }
    if kind != Kind::Set {
        for v in values.split(':') {
            number(kind, v).map_err(|()| Error::InvalidValue {
                value: snippet(v, 32),
                kind: kind.metric_type(),
            })?;
        }
    }
    Ok(metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_code_is_parsed() {
        for (code, kind) in [
            ("c", Kind::Counter),
            ("g", Kind::Gauge),
            ("ms", Kind::Timer),
            ("h", Kind::Histogram),
            ("d", Kind::Distribution),
            ("s", Kind::Set),
        ] {
            let line = format!("x:1|{code}");
            assert_eq!(parse_line(&line).unwrap().kind(), kind);
        }
        assert_eq!(
            parse_line("x:1|q").unwrap_err().to_string(),
            "the type \"q\" is not a StatsD type; the types are c, g, ms, h, d and s"
        );
    }

    #[test]
    fn gauge_signs_are_deltas_and_other_signs_are_numbers() {
        fn g(s: &str) -> Vec<Value<'_>> {
            parse_line(s).unwrap().values().collect()
        }
        assert_eq!(g("x:+4|g"), [Value::Delta(4.0)]);
        assert_eq!(g("x:-4|g"), [Value::Delta(-4.0)]);
        assert_eq!(g("x:4|g"), [Value::Number(4.0)]);
        assert_eq!(g("x:-4|c"), [Value::Number(-4.0)]);
        assert_eq!(g("x:1:2.5:3|h"), [1.0, 2.5, 3.0].map(Value::Number));
        assert_eq!(g("x:a:b|s"), [Value::Member("a:b")]);
    }

    #[test]
    fn sample_rates_and_tags_are_read_in_any_order() {
        let m = parse_line("x,env=prod:2|ms|#a:1,b|@0.25|c:abc|T1700000000").unwrap();
        assert_eq!(m.sample_rate(), 0.25);
        let tags: Vec<_> = m.tags().collect();
        assert_eq!(tags, [("env", "prod"), ("a", "1"), ("b", "true")]);
    }

    #[test]
    fn malformed_lines_have_sentences() {
        let err = |s: &str| parse_line(s).unwrap_err().to_string();
        assert!(
            err("novalue").contains("has no value"),
            "{}",
            err("novalue")
        );
        assert!(err(":1|c").contains("no metric name"));
        assert!(err("x:1").contains("no type"));
        assert_eq!(
            err("x:abc|c"),
            "the value \"abc\" is not a number, which a counter needs"
        );
        assert!(err("x:1|c|@0").contains("sample rate"));
        assert!(err("x:1|c|@1.5").contains("sample rate"));
        assert!(err("x:1|c|zz").contains("\"zz\""));
        assert!(err("x:|c").contains("has no value"));
        assert!(err("x:nan|g").contains("not a number"));
    }
}
