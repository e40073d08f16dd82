//! Decoding remote write bodies into engine batches, and encoding them (for clients and
//! tests).

use std::borrow::Cow;

use prost::Message;
use sextant_engine::schema::{MAX_COLUMNS, MAX_NAME_LEN, TIME_COLUMN, validate_name};
use sextant_engine::{ColumnType, TableKind};

use super::{Error, Options, Outcome, STALE_NAN, TimeSeries, WriteRequest};
use crate::Schemas;
use crate::columns::{Conflict, Tables, Value as Cell};
use crate::outcome::snippet;

/// The name of the field holding sample values.
const VALUE_FIELD: &str = "value";

/// Encodes a request as a remote write body: protobuf, then snappy's block format.
pub fn encode(request: &WriteRequest) -> Result<Vec<u8>, Error> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| Error::Snappy {
            reason: e.to_string(),
        })
}

/// Decodes a remote write body (snappy block format around a protobuf `WriteRequest`),
/// checking the limits of `options` before decompressing.
pub fn decode(body: &[u8], options: &Options) -> Result<WriteRequest, Error> {
    if body.len() > options.max_request_bytes {
        return Err(Error::RequestTooLarge {
            bytes: body.len(),
            limit: options.max_request_bytes,
            decompressed: false,
        });
    }
    let snappy = |e: snap::Error| Error::Snappy {
        reason: e.to_string(),
    };
    let len = snap::raw::decompress_len(body).map_err(snappy)?;
    if len > options.max_decompressed_bytes {
        return Err(Error::RequestTooLarge {
            bytes: len,
            limit: options.max_decompressed_bytes,
            decompressed: true,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(snappy)?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| Error::Protobuf {
        reason: e.to_string(),
    })
}

/// Parses a remote write body into one batch per metric table (see the
/// [module docs](super)), keeping good series and reporting bad ones by position.
///
/// `schemas` gives the stored tables' schemas, so that a series conflicting with them
/// is rejected alone.
pub fn parse(body: &[u8], options: &Options, schemas: &dyn Schemas) -> Result<Outcome, Error> {
    let request = decode(body, options)?;
    let mut tables = Tables::new(schemas);
    let mut out = Outcome::new();
    for (i, series) in request.timeseries.iter().enumerate() {
        match add_series(&mut tables, series) {
            Ok(rows) => out.rows += rows,
            Err(e) => out.reject(i + 1, e, options.max_errors),
        }
    }
    out.batches = tables.finish().map_err(|e| Error::Engine(e.to_string()))?;
    Ok(out)
}

fn add_series(tables: &mut Tables<'_>, series: &TimeSeries) -> Result<usize, Error> {
    let name = series
        .labels
        .iter()
        .find(|l| l.name == "__name__" && !l.value.is_empty())
        .ok_or(Error::MissingName)?;
    let table: Cow<'_, str> = if name.value.contains(':') {
        Cow::Owned(name.value.replace(':', "."))
    } else {
        Cow::Borrowed(&name.value)
    };
    if let Err(e) = validate_name("table", &table) {
        return Err(Error::BadName {
            name: snippet(&name.value, 64),
            reason: e.to_string(),
        });
    }
    let labels: Vec<(&str, &str)> = series
        .labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    let many = labels.len() > 16;
    let mut seen = ahash::AHashSet::new();
    for (i, (label, _)) in labels.iter().enumerate() {
        let reason = if label.is_empty()
            || label.len() > MAX_NAME_LEN
            || label.chars().any(char::is_control)
        {
            Some("a label name is 1 to 128 bytes without control characters")
        } else if *label == TIME_COLUMN || *label == VALUE_FIELD {
            Some("\"time\" and \"value\" are the table's time and value columns")
        } else if (many && !seen.insert(*label))
            || (!many && labels[..i].iter().any(|(l, _)| l == label))
        {
            Some("it appears twice in the series")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::BadLabel {
                name: snippet(label, 64),
                reason,
            });
        }
    }
    let mut samples = Vec::with_capacity(series.samples.len());
    for s in &series.samples {
        if s.value.to_bits() == STALE_NAN {
            continue;
        }
        let time = s
            .timestamp
            .checked_mul(1_000_000)
            .ok_or(Error::TimestampOutOfRange { ms: s.timestamp })?;
        samples.push((time, s.value));
    }
    if samples.is_empty() {
        return Ok(0);
    }
    let conflict = |column: &str, c: Conflict| match c {
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
    };
    let t = tables
        .table(&table, TableKind::Metric)
        .map_err(|c| conflict("", c))?;
    let types = labels
        .iter()
        .map(|(l, _)| (*l, ColumnType::Tag))
        .chain([(VALUE_FIELD, ColumnType::F64)]);
    tables
        .check(t, types)
        .map_err(|(column, c)| conflict(column, c))?;
    for &(time, value) in &samples {
        let row = labels
            .iter()
            .map(|(l, v)| (*l, Cell::Tag(v)))
            .chain([(VALUE_FIELD, Cell::F64(value))]);
        tables.push(t, time, row);
    }
    Ok(samples.len())
}
