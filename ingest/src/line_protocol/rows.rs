//! From a parsed line to a row of its table: names, duplicates and types checked.

use sextant_engine::schema::{MAX_COLUMNS, MAX_NAME_LEN, TIME_COLUMN, validate_name};
use sextant_engine::{ColumnType, TableKind};

use super::parse::Line;
use super::{Error, Options, Precision};
use crate::columns::{Conflict, Tables, Value};
use crate::outcome::snippet;

const NAME_RULE: &str =
    "a column name is 1 to 128 bytes without control characters, and not \"time\"";
const TABLE_RULE: &str =
    "a table name is 1 to 128 ASCII letters, digits, '_', '-' or '.', not starting with '.'";

/// The names and types of the last line accepted whole (no repeated field): a line of
/// the same measurement, keys and types in the same order passes every check that
/// depends on them, so those are skipped (most lines of a request repeat a shape).
#[derive(Debug, Default)]
pub(super) struct Shape {
    table: String,
    tags: Vec<String>,
    fields: Vec<(String, ColumnType)>,
    /// The column of the request's table each tag and field of the last line of this
    /// shape went to: the next line of the shape is pushed there without name lookups.
    positions: Vec<usize>,
    /// Scratch: the indices of the fields a line keeps.
    keep: Vec<usize>,
    /// No name holds a byte that line protocol escapes (see [`Shape::is_plain`]).
    plain: bool,
}

impl Shape {
    pub(super) fn table(&self) -> &str {
        &self.table
    }

    pub(super) fn tags(&self) -> &[String] {
        &self.tags
    }

    pub(super) fn fields(&self) -> &[(String, ColumnType)] {
        &self.fields
    }

    /// Whether a line has been remembered and none of its names holds a comma, an equals
    /// sign, a space or a backslash: such a name is written as it is, and ends where the
    /// next of those bytes is (what [`parse_shaped`](super::parse::parse_shaped) needs).
    pub(super) fn is_plain(&self) -> bool {
        self.plain
    }

    /// The shape of `line` (which must have no repeated field).
    #[cfg(test)]
    pub(super) fn of(line: &Line<'_>) -> Shape {
        let mut shape = Shape::default();
        shape.remember(line);
        shape
    }

    pub(super) fn matches(&self, line: &Line<'_>) -> bool {
        self.table == line.measurement
            && self.tags.len() == line.tags.len()
            && self.fields.len() == line.fields.len()
            && self.tags.iter().zip(&line.tags).all(|(a, (b, _))| a == b)
            && self
                .fields
                .iter()
                .zip(&line.fields)
                .all(|((a, ty), (b, v))| a == b && *ty == v.value().column_type())
    }

    fn remember(&mut self, line: &Line<'_>) {
        self.table.clear();
        self.table.push_str(&line.measurement);
        self.tags.clear();
        self.tags
            .extend(line.tags.iter().map(|(k, _)| k.to_string()));
        self.fields.clear();
        let fields = line.fields.iter();
        self.fields
            .extend(fields.map(|(k, v)| (k.to_string(), v.value().column_type())));
        let plain = |name: &str| {
            !name
                .bytes()
                .any(|b| matches!(b, b',' | b'=' | b' ' | b'\\'))
        };
        self.plain = plain(&self.table)
            && self.tags.iter().all(|k| plain(k))
            && self.fields.iter().all(|(k, _)| plain(k));
    }
}

fn check_key(what: &'static str, key: &str) -> Result<(), Error> {
    let control = if key.is_ascii() {
        key.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        key.chars().any(char::is_control)
    };
    if key.len() > MAX_NAME_LEN || key == TIME_COLUMN || control {
        return Err(Error::BadName {
            what,
            name: snippet(key, 64),
            reason: NAME_RULE,
        });
    }
    Ok(())
}

/// Checks a parsed line against the request so far and the stored tables, and appends
/// it to its table. `shaped`: the line is known to be of `shape`
/// ([`parse_shaped`](super::parse::parse_shaped) read it).
pub(super) fn add(
    tables: &mut Tables<'_>,
    shape: &mut Shape,
    line: &Line<'_>,
    options: &Options,
    now: i64,
    shaped: bool,
) -> Result<(), Error> {
    let table = line.measurement.as_ref();
    let time = match line.time {
        None => now,
        Some(t) => t
            .checked_mul(options.precision.nanos())
            .ok_or(Error::TimestampOutOfRange {
                value: t,
                unit: unit_name(options.precision),
            })?,
    };
    debug_assert!(
        !shaped || shape.matches(line),
        "a shaped line has the shape"
    );
    let same = shaped || shape.matches(line);
    // The indices of the fields kept: a field key repeated keeps its last value.
    let mut keep = std::mem::take(&mut shape.keep);
    keep.clear();
    if same {
        keep.extend(0..line.fields.len());
    } else {
        check_names(line, &mut keep)?;
    }
    let t = tables
        .table(table, TableKind::Metric)
        .map_err(|c| conflict(table, "", c))?;
    let tags = line.tags.iter().map(|(k, v)| (k.as_ref(), Value::Tag(v)));
    let fields = keep.iter().map(|&i| {
        let (k, v) = &line.fields[i];
        (k.as_ref(), v.value())
    });
    if same {
        let values = tags.chain(fields).map(|(_, v)| v);
        tables.push_at(t, time, &shape.positions, values);
    } else {
        let types = tags.clone().chain(fields.clone());
        tables
            .check(t, types.map(|(k, v)| (k, v.column_type())))
            .map_err(|(column, c)| conflict(table, column, c))?;
        if keep.len() == line.fields.len() {
            shape.remember(line);
            shape.positions.clear();
            tables.push_noting(t, time, tags.chain(fields), Some(&mut shape.positions));
        } else {
            tables.push(t, time, tags.chain(fields));
        }
    }
    shape.keep = keep;
    Ok(())
}

/// Checks the line's names and pushes the indices of the fields to keep onto `keep`.
fn check_names(line: &Line<'_>, keep: &mut Vec<usize>) -> Result<(), Error> {
    let table = line.measurement.as_ref();
    if validate_name("table", table).is_err() {
        return Err(Error::BadName {
            what: "measurement",
            name: snippet(table, 64),
            reason: TABLE_RULE,
        });
    }
    // Sorted tags (as clients write them) cannot repeat; others are compared pairwise,
    // or through a set when there are many.
    let sorted = line.tags.windows(2).all(|w| w[0].0 < w[1].0);
    let many = !sorted && line.tags.len() > 16;
    let mut seen_tags = ahash::AHashSet::new();
    for (i, (key, _)) in line.tags.iter().enumerate() {
        check_key("tag key", key)?;
        let repeated = if sorted {
            false
        } else if many {
            !seen_tags.insert(key.as_ref())
        } else {
            line.tags[..i].iter().any(|(k, _)| k == key)
        };
        if repeated {
            return Err(Error::DuplicateKey {
                key: snippet(key, 64),
            });
        }
    }
    let large = line.fields.len() > 16;
    let mut seen = ahash::AHashSet::new();
    for i in (0..line.fields.len()).rev() {
        let key = &line.fields[i].0;
        let repeated = if large {
            !seen.insert(key.as_ref())
        } else {
            keep.iter().any(|&j| &line.fields[j].0 == key)
        };
        if !repeated {
            check_key("field key", key)?;
            if line.tags.iter().any(|(k, _)| k == key) {
                return Err(Error::DuplicateKey {
                    key: snippet(key, 64),
                });
            }
            keep.push(i);
        }
    }
    keep.reverse();
    Ok(())
}

fn unit_name(precision: Precision) -> &'static str {
    match precision {
        Precision::Nanoseconds => "nanoseconds",
        Precision::Microseconds => "microseconds",
        Precision::Milliseconds => "milliseconds",
        Precision::Seconds => "seconds",
    }
}

fn conflict(table: &str, column: &str, c: Conflict) -> Error {
    match c {
        Conflict::Type {
            existing,
            offered,
            stored,
        } => Error::TypeConflict {
            table: table.to_string(),
            column: column.to_string(),
            existing,
            offered,
            stored,
        },
        Conflict::Kind { existing } => Error::KindConflict {
            table: table.to_string(),
            existing,
        },
        Conflict::TooManyColumns => Error::TooManyColumns {
            table: table.to_string(),
            limit: MAX_COLUMNS,
        },
    }
}
