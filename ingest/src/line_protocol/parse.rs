//! The line protocol parser: bytes in, engine batches and rejected lines out.

use std::borrow::Cow;

use super::rows::{Shape, add};
use super::{Error, Options, Outcome};
use crate::Schemas;
use crate::columns::{Tables, Value};
use crate::outcome::snippet;

/// Parses a request of line protocol into one engine batch per measurement (metric
/// tables), keeping good lines and reporting bad ones (see the [module docs](super)).
///
/// `now` (nanoseconds since the Unix epoch) is the time of lines without a timestamp.
/// `schemas` gives the stored tables' schemas, so that a line whose field types conflict
/// with them is rejected alone: pass an engine [`Snapshot`](sextant_engine::Snapshot), or
/// [`NoSchemas`](crate::NoSchemas).
///
/// Fails as a whole only when the request is longer than
/// [`Options::max_request_bytes`].
pub fn parse(
    input: &[u8],
    options: &Options,
    now: i64,
    schemas: &dyn Schemas,
) -> Result<Outcome, Error> {
    if input.len() > options.max_request_bytes {
        return Err(Error::RequestTooLarge {
            bytes: input.len(),
            limit: options.max_request_bytes,
        });
    }
    let mut out = Outcome::new();
    let mut tables = Tables::new(schemas);
    let mut line = Line::default();
    let mut shape = Shape::default();
    let mut pos = 0;
    let mut number = 1;
    while pos < input.len() {
        let (end, inner_newlines) = line_end(input, pos);
        let this = number;
        number += 1 + inner_newlines;
        let mut raw = &input[pos..end];
        pos = end + 1;
        if let [rest @ .., b'\r'] = raw {
            raw = rest;
        }
        let start = raw.iter().position(|b| !matches!(b, b' ' | b'\t'));
        let Some(start) = start else { continue };
        if raw[start] == b'#' {
            continue;
        }
        if raw.len() > options.max_line_bytes {
            let (bytes, limit) = (raw.len(), options.max_line_bytes);
            out.reject(
                this,
                Error::LineTooLong { bytes, limit },
                options.max_errors,
            );
            continue;
        }
        let text = match std::str::from_utf8(&raw[start..]) {
            Ok(text) => text,
            Err(e) => {
                let offset = start + e.valid_up_to();
                out.reject(this, Error::NotUtf8 { offset }, options.max_errors);
                continue;
            }
        };
        let added = if parse_shaped(text, &shape, &mut line) {
            add(&mut tables, &mut shape, &line, options, now, true)
        } else {
            parse_line(text, &mut line)
                .and_then(|()| add(&mut tables, &mut shape, &line, options, now, false))
        };
        match added {
            Ok(()) => out.rows += 1,
            Err(e) => out.reject(this, e, options.max_errors),
        }
    }
    out.batches = tables.finish().map_err(|e| Error::Engine(e.to_string()))?;
    Ok(out)
}

/// Where the line starting at `start` ends (the index of its `\n`, or the input's end),
/// and how many newlines it holds inside string field values.
fn line_end(input: &[u8], start: usize) -> (usize, usize) {
    // Most lines hold no double quote, so no string value: they end at the first newline.
    let newline = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |p| start + p);
    if memchr::memchr(b'"', &input[start..newline]).is_none() {
        return (newline, 0);
    }
    let first = input[start..]
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'));
    let next_newline = |from: usize| {
        input[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(input.len(), |p| from + p)
    };
    match first {
        None => return (input.len(), 0),
        Some(f) if input[start + f] == b'#' => return (next_newline(start), 0),
        _ => {}
    }
    let (mut i, mut in_fields, mut after_equals) = (start, false, false);
    // Inside a string value: where it opened, and the newlines seen in it.
    let mut string: Option<(usize, usize)> = None;
    let mut newlines = 0;
    while i < input.len() {
        let b = input[i];
        if let Some((_, seen)) = &mut string {
            match b {
                b'\\' if i + 1 < input.len() => {
                    if input[i + 1] == b'\n' {
                        *seen += 1;
                    }
                    i += 2;
                    continue;
                }
                b'"' => {
                    newlines += *seen;
                    string = None;
                }
                b'\n' => *seen += 1,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'\n' => return (i, newlines),
            b'\\' if i + 1 < input.len() && input[i + 1] != b'\n' => {
                i += 2;
                after_equals = false;
                continue;
            }
            b' ' => in_fields = true,
            b'=' if in_fields => {
                after_equals = true;
                i += 1;
                continue;
            }
            b'"' if after_equals => string = Some((i, 0)),
            _ => {}
        }
        after_equals = false;
        i += 1;
    }
    match string {
        // An unterminated string: the line ends at the first newline after its quote,
        // so that one stray quote costs one line, not the rest of the request.
        Some((opened, _)) => (next_newline(opened), newlines),
        None => (input.len(), newlines),
    }
}

/// A field value as parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field<'a> {
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(Cow<'a, str>),
}

impl Field<'_> {
    pub(super) fn value(&self) -> Value<'_> {
        match self {
            Field::F64(x) => Value::F64(*x),
            Field::I64(x) => Value::I64(*x),
            Field::U64(x) => Value::U64(*x),
            Field::Bool(x) => Value::Bool(*x),
            Field::Str(s) => Value::Str(s),
        }
    }
}

/// One parsed line, its vectors reused from line to line.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(PartialEq))]
pub(super) struct Line<'a> {
    pub measurement: Cow<'a, str>,
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub fields: Vec<(Cow<'a, str>, Field<'a>)>,
    pub time: Option<i64>,
}

fn is_escapable(b: u8) -> bool {
    matches!(b, b',' | b'=' | b' ' | b'\\')
}

/// Reads a measurement, key or tag value from `pos` up to the first unescaped byte that
/// `stop` accepts, unescaping it.
fn read_name<'a>(s: &'a str, pos: &mut usize, stop: impl Fn(u8) -> bool) -> Cow<'a, str> {
    let b = s.as_bytes();
    let start = *pos;
    let mut escaped = false;
    while *pos < b.len() {
        match b[*pos] {
            b'\\' if *pos + 1 < b.len() && is_escapable(b[*pos + 1]) => {
                escaped = true;
                *pos += 2;
            }
            c if stop(c) => break,
            _ => *pos += 1,
        }
    }
    let raw = &s[start..*pos];
    if !escaped {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(&n) if c == '\\' && n.is_ascii() && is_escapable(n as u8) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Parses one line (without its line end; leading spaces removed) into `line`.
pub(super) fn parse_line<'a>(s: &'a str, line: &mut Line<'a>) -> Result<(), Error> {
    let b = s.as_bytes();
    let mut pos = 0;
    line.tags.clear();
    line.fields.clear();
    line.time = None;
    line.measurement = read_name(s, &mut pos, |c| c == b',' || c == b' ');
    if line.measurement.is_empty() {
        return Err(Error::MissingMeasurement);
    }
    while pos < b.len() && b[pos] == b',' {
        pos += 1;
        let key = read_name(s, &mut pos, |c| matches!(c, b',' | b' ' | b'='));
        if key.is_empty() {
            return Err(Error::EmptyKey { what: "tag" });
        }
        if pos >= b.len() || b[pos] != b'=' {
            return Err(missing_value("tag", &key));
        }
        pos += 1;
        let value = read_name(s, &mut pos, |c| c == b',' || c == b' ');
        if value.is_empty() {
            return Err(missing_value("tag", &key));
        }
        line.tags.push((key, value));
    }
    skip_spaces(b, &mut pos);
    if pos >= b.len() {
        return Err(Error::MissingFields);
    }
    loop {
        let key = read_name(s, &mut pos, |c| matches!(c, b',' | b' ' | b'='));
        if key.is_empty() {
            return Err(Error::EmptyKey { what: "field" });
        }
        if pos >= b.len() || b[pos] != b'=' {
            return Err(missing_value("field", &key));
        }
        pos += 1;
        let value = read_field_value(s, &mut pos, &key)?;
        line.fields.push((key, value));
        if pos < b.len() && b[pos] == b',' {
            pos += 1;
        } else {
            break;
        }
    }
    read_time(s, pos, line)
}

/// Parses a line of `shape` (the last line accepted whole) into `line`, comparing its
/// names where they stand instead of scanning for their ends: true when the line has the
/// shape's measurement, tag keys and field keys in the same order, and its fields the
/// same types, and no error. Otherwise false, with `line` in any state: the caller then
/// parses the line with [`parse_line`], which finds what differs or is wrong.
///
/// When it returns true, `line` is what [`parse_line`] gives, because the shape's names
/// hold no byte that is escaped or ends a name ([`Shape::is_plain`]): such a name written
/// in place, followed by the byte that ends it, is read as exactly that name.
pub(super) fn parse_shaped<'a>(s: &'a str, shape: &Shape, line: &mut Line<'a>) -> bool {
    if !shape.is_plain() {
        return false;
    }
    let b = s.as_bytes();
    line.tags.clear();
    line.fields.clear();
    line.time = None;
    let Some(mut pos) = name_at(b, 0, shape.table()) else {
        return false;
    };
    line.measurement = Cow::Borrowed(&s[..pos]);
    for key in shape.tags() {
        if b.get(pos) != Some(&b',') {
            return false;
        }
        let start = pos + 1;
        let Some(end) = key_at(b, start, key) else {
            return false;
        };
        pos = end + 1;
        let value = read_name(s, &mut pos, |c| c == b',' || c == b' ');
        if value.is_empty() {
            return false;
        }
        line.tags.push((Cow::Borrowed(&s[start..end]), value));
    }
    if b.get(pos) != Some(&b' ') {
        return false;
    }
    skip_spaces(b, &mut pos);
    for (i, (key, ty)) in shape.fields().iter().enumerate() {
        if i > 0 {
            if b.get(pos) != Some(&b',') {
                return false;
            }
            pos += 1;
        }
        let start = pos;
        let Some(end) = key_at(b, start, key) else {
            return false;
        };
        pos = end + 1;
        match read_field_value(s, &mut pos, key) {
            Ok(value) if value.value().column_type() == *ty => {
                line.fields.push((Cow::Borrowed(&s[start..end]), value));
            }
            _ => return false,
        }
    }
    // More fields than the shape's fail here too: the timestamp cannot start with ','.
    read_time(s, pos, line).is_ok()
}

/// Where `key` ends if the text at `pos` starts with it and then `=`.
fn key_at(b: &[u8], pos: usize, key: &str) -> Option<usize> {
    name_at(b, pos, key).filter(|&end| b.get(end) == Some(&b'='))
}

/// Where `name` ends if the text at `pos` starts with it.
fn name_at(b: &[u8], pos: usize, name: &str) -> Option<usize> {
    let end = pos.checked_add(name.len())?;
    same_bytes(b.get(pos..end)?, name.as_bytes()).then_some(end)
}

/// `a == b` for slices of equal length, inlined: names are short, and a call to
/// `memcmp` per name cost more than the comparison.
#[inline]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    // Whole words, then the last eight bytes (overlapping the previous word).
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// Reads the optional timestamp from `pos` (after the fields) to the end of the line.
fn read_time(s: &str, mut pos: usize, line: &mut Line<'_>) -> Result<(), Error> {
    let b = s.as_bytes();
    skip_spaces(b, &mut pos);
    if pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos] != b' ' {
            pos += 1;
        }
        let text = &s[start..pos];
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Error::InvalidTimestamp {
                value: snippet(text, 64),
            });
        }
        let time = text.parse::<i64>().map_err(|_| Error::InvalidTimestamp {
            value: snippet(text, 64),
        })?;
        line.time = Some(time);
        skip_spaces(b, &mut pos);
        if pos < b.len() {
            return Err(Error::TrailingText {
                text: snippet(&s[pos..], 64),
            });
        }
    }
    Ok(())
}

fn missing_value(what: &'static str, key: &str) -> Error {
    Error::MissingValue {
        what,
        key: snippet(key, 64),
    }
}

fn skip_spaces(b: &[u8], pos: &mut usize) {
    while *pos < b.len() && b[*pos] == b' ' {
        *pos += 1;
    }
}

fn read_field_value<'a>(s: &'a str, pos: &mut usize, key: &str) -> Result<Field<'a>, Error> {
    let b = s.as_bytes();
    let invalid = |value: &str| Error::InvalidValue {
        key: snippet(key, 64),
        value: snippet(value, 64),
    };
    if *pos < b.len() && b[*pos] == b'"' {
        let start = *pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < b.len() && b[i] != b'"' {
            if b[i] == b'\\' && i + 1 < b.len() {
                escaped |= matches!(b[i + 1], b'"' | b'\\');
                i += 2;
            } else {
                i += 1;
            }
        }
        if i >= b.len() {
            return Err(Error::UnterminatedString {
                key: snippet(key, 64),
            });
        }
        let raw = &s[start..i];
        *pos = i + 1;
        if *pos < b.len() && !matches!(b[*pos], b',' | b' ') {
            let end = b[*pos..]
                .iter()
                .position(|&c| c == b',' || c == b' ')
                .map_or(b.len(), |p| *pos + p);
            return Err(invalid(&s[start - 1..end]));
        }
        if !escaped {
            return Ok(Field::Str(Cow::Borrowed(raw)));
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match chars.peek() {
                Some(&n) if c == '\\' && (n == '"' || n == '\\') => {
                    out.push(n);
                    chars.next();
                }
                _ => out.push(c),
            }
        }
        return Ok(Field::Str(Cow::Owned(out)));
    }
    let start = *pos;
    while *pos < b.len() && !matches!(b[*pos], b',' | b' ') {
        *pos += 1;
    }
    let text = &s[start..*pos];
    match text {
        "" => return Err(missing_value("field", key)),
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(Field::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(Field::Bool(false)),
        _ => {}
    }
    if let Some(x) = small_integer(text) {
        return Ok(Field::F64(x));
    }
    let out_of_range = |ty| Error::IntegerOutOfRange {
        key: snippet(key, 64),
        value: text.to_string(),
        ty,
    };
    if let Some(digits) = text.strip_suffix('i') {
        let unsigned = digits.strip_prefix('-').unwrap_or(digits);
        if unsigned.is_empty() || !unsigned.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid(text));
        }
        return digits
            .parse()
            .map(Field::I64)
            .map_err(|_| out_of_range("a signed 64-bit integer"));
    }
    if let Some(digits) = text.strip_suffix('u') {
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid(text));
        }
        return digits
            .parse()
            .map(Field::U64)
            .map_err(|_| out_of_range("an unsigned 64-bit integer"));
    }
    let number_like = matches!(text.as_bytes()[0], b'0'..=b'9' | b'-' | b'.')
        && text.bytes().any(|c| c.is_ascii_digit())
        && text
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'));
    match text.parse::<f64>() {
        Ok(x) if number_like && x.is_finite() => Ok(Field::F64(x)),
        _ => Err(invalid(text)),
    }
}

/// A float written as a plain integer of at most 15 digits (`58`, `-3`, `007`), which
/// most metrics are: such an integer is exactly a float, so this is what
/// `text.parse::<f64>()` gives, without its general parse. `None` for anything else.
pub(super) fn small_integer(text: &str) -> Option<f64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    // Below 10^15 < 2^53: exact.
    let x = value as f64;
    Some(if negative { -x } else { x })
}
