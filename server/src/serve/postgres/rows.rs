//! Rows of an answer in PostgreSQL's text and binary formats, written from Arrow's
//! arrays.
//!
//! arrow-pg, datafusion-postgres' encoder, writes every value through generic calls: a
//! timestamp's format string is parsed again, and its time zone looked up, for each
//! value. That made a 100,000-row answer 7 to 10 times slower over PostgreSQL's protocol
//! than through the embedded API. [`Rows`] writes the same bytes as arrow-pg (the tests
//! compare the two on the same batches) for the types telemetry answers are made of:
//! booleans, integers, floats, strings (plain, view and dictionary) and timestamps
//! without a zone or in UTC, each column in the format the client asked for it in.
//! Answers with another type, or a column in text in a session whose `DateStyle` is not
//! ISO or whose `extra_float_digits` is below 1, are left to arrow-pg.
//!
//! In binary, one type differs from arrow-pg's: a column of Arrow `Int8`, which both
//! tell the client is `int2`, is written in two bytes, as `int2` is read. arrow-pg
//! writes one (PostgreSQL's `"char"`), which a client cannot read; it still does so in
//! the answers it writes (queries with parameters, answers with a type not written
//! here).
//!
//! Times are sent to the microsecond, as PostgreSQL holds them. A time with a fraction
//! of a microsecond before 2000 is cut as arrow-pg cuts it in each format: down in text
//! (`...59.999999`), toward 2000 in binary (microseconds since 2000, truncated), so the
//! two differ by a microsecond there.
//!
//! [`Rows::writer`] writes a batch's rows as whole DataRow messages into the connection's
//! write buffer, a buffer's worth at a time, for the answers Sextant sends itself
//! ([`super::direct`]). [`Rows::encode`] writes them into one buffer cut into pgwire's
//! messages, for the answers pgwire sends: an Execute with a row limit.

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::temporal_conversions::as_datetime;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait, PrimitiveArray,
    RecordBatch, StringViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, ArrowTimestampType, DataType, Field, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type,
};
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::results::{FieldFormat, FieldInfo};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::format::FormatOptions;

use self::num_like::Float as _;

/// arrow-pg's format of a timestamp (pgwire's for `DateStyle` ISO): microseconds always
/// written, then `+00` for a time in UTC.
const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.6f";
const TIMESTAMP_UTC: &str = "%Y-%m-%d %H:%M:%S%.6f%:::z";

/// Writes the rows of an answer's batches; built once per answer from its schema.
#[derive(Debug)]
pub(super) struct Rows {
    /// The type the client is told each column has, and the format it asked for. A
    /// batch's arrays are written by their own Arrow type (a plan may give a string
    /// column as plain, view or dictionary whatever its schema says), which must be one
    /// that becomes this type.
    columns: Vec<(Type, FieldFormat)>,
}

/// The column types [`Rows`] writes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Boolean,
    Integer,
    Float,
    Text,
    Timestamp { utc: bool },
}

impl Rows {
    /// The writer of an answer with `schema`, whose columns the client is told are
    /// `fields`, or `None` if arrow-pg must write it (see the module's documentation).
    pub fn new(schema: &Schema, fields: &[FieldInfo], options: &FormatOptions) -> Option<Self> {
        if schema.fields().len() != fields.len() {
            return None;
        }
        let any_text = fields.iter().any(|info| info.format() == FieldFormat::Text);
        if any_text
            && (!is_iso(&options.date_style) || options.extra_float_digits.clamp(-15, 3) < 1)
        {
            return None;
        }
        let columns = schema
            .fields()
            .iter()
            .zip(fields)
            .map(|(field, info)| {
                if marks_a_type(field) {
                    return None;
                }
                let kind = kind_of(field.data_type())?;
                let pg_type = expected_type(kind, field.data_type());
                (pg_type == *info.datatype()).then_some((pg_type, info.format()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { columns })
    }

    /// The rows of `batch`, as the messages that carry them (for pgwire to send).
    pub fn encode(&self, batch: &RecordBatch) -> PgWireResult<Vec<DataRow>> {
        let (cells, field_count) = self.cells_of(batch)?;
        let rows = batch.num_rows();
        let mut buf = BytesMut::with_capacity(rows * (8 + 16 * cells.len()));
        let mut ends = Vec::with_capacity(rows);
        for row in 0..rows {
            write_row(&cells, row, &mut buf)?;
            ends.push(buf.len());
        }
        let mut start = 0;
        Ok(ends
            .into_iter()
            .map(|end| {
                let data = buf.split_to(end - start);
                start = end;
                DataRow::new(data, field_count)
            })
            .collect())
    }

    /// Writes the rows of `batch` to `out` as whole DataRow messages, the bytes pgwire's
    /// codec writes for [`Rows::encode`]'s messages, and returns how many. On an error
    /// `out` is left as it was.
    #[cfg(test)]
    pub fn write(&self, batch: &RecordBatch, out: &mut BytesMut) -> PgWireResult<usize> {
        self.writer(batch)?.write(out, usize::MAX)
    }

    /// The writer of `batch`'s rows as whole DataRow messages, a few at a time.
    pub fn writer<'a>(&self, batch: &'a RecordBatch) -> PgWireResult<BatchWriter<'a>> {
        let (cells, field_count) = self.cells_of(batch)?;
        Ok(BatchWriter {
            cells,
            field_count,
            rows: batch.num_rows(),
            next: 0,
        })
    }

    /// The writers of `batch`'s columns, and how many there are as a message gives it.
    fn cells_of<'a>(
        &self,
        batch: &'a RecordBatch,
    ) -> PgWireResult<(Vec<Box<dyn Cells + 'a>>, i16)> {
        if batch.num_columns() != self.columns.len() {
            return Err(encoding_error(format!(
                "a batch of {} columns in an answer of {}",
                batch.num_columns(),
                self.columns.len()
            )));
        }
        let cells = batch
            .columns()
            .iter()
            .zip(&self.columns)
            .map(|(array, (pg_type, format))| {
                let data_type = array.data_type();
                match kind_of(data_type) {
                    Some(kind) if expected_type(kind, data_type) == *pg_type => match format {
                        FieldFormat::Text => cells(array),
                        FieldFormat::Binary => binary_cells(array),
                    },
                    _ => Err(encoding_error(format!(
                        "a column of {data_type} in an answer whose schema makes it {pg_type}"
                    ))),
                }
            })
            .collect::<PgWireResult<Vec<_>>>()?;
        let field_count = i16::try_from(cells.len())
            .map_err(|_| encoding_error(format!("{} columns are too many", cells.len())))?;
        Ok((cells, field_count))
    }
}

/// The type byte of a DataRow message.
const DATA_ROW: u8 = b'D';

/// A batch's rows, written as whole DataRow messages (see [`Rows::writer`]).
pub(super) struct BatchWriter<'a> {
    cells: Vec<Box<dyn Cells + 'a>>,
    field_count: i16,
    rows: usize,
    /// The first row not yet written.
    next: usize,
}

impl BatchWriter<'_> {
    /// Writes the next rows to `out` until it holds at least `limit` bytes or every row
    /// is written, and returns how many it wrote: the bytes pgwire's codec writes for
    /// [`Rows::encode`]'s messages. On an error `out` is left as it was.
    pub fn write(&mut self, out: &mut BytesMut, limit: usize) -> PgWireResult<usize> {
        let start = out.len();
        let first = self.next;
        // Room for the rows a limit lets in, as far as a row's size can be guessed.
        let guess = 15 + 16 * self.cells.len();
        let wanted = limit.saturating_sub(start) / guess + 1;
        out.reserve(guess * wanted.min(self.rows - self.next));
        while self.next < self.rows && out.len() < limit {
            let at = out.len();
            out.put_u8(DATA_ROW);
            out.put_i32(0);
            out.put_i16(self.field_count);
            let written = write_row(&self.cells, self.next, out).and_then(|()| {
                // The length counts itself and what follows, not the message's type.
                i32::try_from(out.len() - at - 1).map_err(|_| too_long())
            });
            match written {
                Ok(len) => out[at + 1..at + 5].copy_from_slice(&len.to_be_bytes()),
                Err(e) => {
                    out.truncate(start);
                    self.next = first;
                    return Err(e);
                }
            }
            self.next += 1;
        }
        Ok(self.next - first)
    }

    /// Whether every row is written.
    pub fn is_done(&self) -> bool {
        self.next == self.rows
    }
}

/// Writes row `row` of `cells` to `out`: each value's length (-1 for NULL), then its
/// bytes.
fn write_row(cells: &[Box<dyn Cells + '_>], row: usize, out: &mut BytesMut) -> PgWireResult<()> {
    for column in cells {
        column.write_cell(row, out)?;
    }
    Ok(())
}

fn too_long() -> PgWireError {
    encoding_error("a row longer than 2 GiB cannot be sent".to_string())
}

/// Whether `field`'s metadata makes it a type arrow-pg writes its own way: PostgreSQL's
/// `oid`, `"char"` and pgvector's `vector` (keys `pg.`), or an Arrow extension type.
/// Other metadata, such as the role Sextant gives tag and level columns, changes nothing.
fn marks_a_type(field: &Field) -> bool {
    field
        .metadata()
        .keys()
        .any(|key| key.starts_with("pg.") || key.starts_with("ARROW:extension"))
}

/// Whether pgwire reads `date_style` as ISO: its first word, before `, `, is `ISO`, or
/// is no style it knows (it then falls back to ISO).
fn is_iso(date_style: &str) -> bool {
    let style = date_style
        .split_once(", ")
        .map_or(date_style, |(style, _)| style);
    !matches!(
        style.trim().to_lowercase().as_str(),
        "sql" | "german" | "postgres"
    )
}

/// How a column of `data_type` is written, if [`Rows`] writes it.
fn kind_of(data_type: &DataType) -> Option<Kind> {
    Some(match data_type {
        DataType::Boolean => Kind::Boolean,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Kind::Integer,
        DataType::Float32 | DataType::Float64 => Kind::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        // Written as their values; arrow-pg gives them their values' type.
        DataType::Dictionary(key, value) if key.is_dictionary_key_type() => kind_of(value)?,
        // Zones whose offset is always zero; arrow-pg looks each value's offset up.
        DataType::Timestamp(_, None) => Kind::Timestamp { utc: false },
        DataType::Timestamp(_, Some(zone)) if matches!(zone.as_ref(), "UTC" | "+00:00") => {
            Kind::Timestamp { utc: true }
        }
        _ => return None,
    })
}

/// The PostgreSQL type arrow-pg gives a column: the client is told it, and what is
/// written must be what it reads.
fn expected_type(kind: Kind, data_type: &DataType) -> Type {
    if let DataType::Dictionary(_, value) = data_type {
        return expected_type(kind, value);
    }
    match (kind, data_type) {
        (Kind::Boolean, _) => Type::BOOL,
        (Kind::Integer, DataType::Int8 | DataType::Int16 | DataType::UInt8) => Type::INT2,
        (Kind::Integer, DataType::Int32 | DataType::UInt16) => Type::INT4,
        (Kind::Integer, _) => Type::INT8,
        (Kind::Float, DataType::Float32) => Type::FLOAT4,
        (Kind::Float, _) => Type::FLOAT8,
        (Kind::Text, _) => Type::TEXT,
        (Kind::Timestamp { utc: false }, _) => Type::TIMESTAMP,
        (Kind::Timestamp { utc: true }, _) => Type::TIMESTAMPTZ,
    }
}

/// One column of a batch, written a value at a time.
trait Cells: Send {
    /// Writes row `row`'s value, or returns false if it is NULL (nothing written).
    fn write(&self, row: usize, out: &mut BytesMut) -> bool;

    /// Writes row `row` as a DataRow carries it: the value's length (-1 for NULL), then
    /// the value. Columns whose values have one width write the length without
    /// measuring it.
    fn write_cell(&self, row: usize, out: &mut BytesMut) -> PgWireResult<()> {
        let at = out.len();
        out.put_i32(-1);
        if self.write(row, out) {
            let len = i32::try_from(out.len() - at - 4).map_err(|_| too_long())?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}

/// The writer of `array`'s values in text, by its Arrow type: one [`kind_of`] takes.
fn cells<'a>(array: &'a ArrayRef) -> PgWireResult<Box<dyn Cells + 'a>> {
    Ok(match array.data_type() {
        DataType::Boolean => Box::new(array.as_boolean()),
        DataType::Int8 => Box::new(Integers(array.as_primitive::<Int8Type>())),
        DataType::Int16 => Box::new(Integers(array.as_primitive::<Int16Type>())),
        DataType::Int32 => Box::new(Integers(array.as_primitive::<Int32Type>())),
        DataType::Int64 => Box::new(Integers(array.as_primitive::<Int64Type>())),
        DataType::UInt8 => Box::new(Integers(array.as_primitive::<UInt8Type>())),
        DataType::UInt16 => Box::new(Integers(array.as_primitive::<UInt16Type>())),
        DataType::UInt32 => Box::new(Integers(array.as_primitive::<UInt32Type>())),
        DataType::Float32 => Box::new(Floats(array.as_primitive::<Float32Type>())),
        DataType::Float64 => Box::new(Floats(array.as_primitive::<Float64Type>())),
        DataType::Utf8 => Box::new(array.as_string::<i32>()),
        DataType::LargeUtf8 => Box::new(array.as_string::<i64>()),
        DataType::Utf8View => Box::new(array.as_string_view()),
        DataType::Dictionary(..) => {
            Dictionary::of(array, cells(array.as_any_dictionary().values())?)
        }
        DataType::Timestamp(unit, zone) => {
            let utc = zone.is_some();
            match unit {
                TimeUnit::Second => timestamps::<TimestampSecondType>(array, utc),
                TimeUnit::Millisecond => timestamps::<TimestampMillisecondType>(array, utc),
                TimeUnit::Microsecond => timestamps::<TimestampMicrosecondType>(array, utc),
                TimeUnit::Nanosecond => timestamps::<TimestampNanosecondType>(array, utc),
            }
        }
        other => {
            return Err(encoding_error(format!(
                "a column of {other}, which is not written here"
            )));
        }
    })
}

fn timestamps<'a, T: ArrowTimestampType>(array: &'a ArrayRef, utc: bool) -> Box<dyn Cells + 'a> {
    Box::new(Timestamps {
        array: array.as_primitive::<T>(),
        utc,
    })
}

impl Cells for &BooleanArray {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.is_null(row) {
            return false;
        }
        out.put_u8(if self.value(row) { b't' } else { b'f' });
        true
    }
}

struct Integers<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

impl<T: ArrowPrimitiveType> Cells for Integers<'_, T>
where
    T::Native: itoa::Integer,
{
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.0.is_null(row) {
            return false;
        }
        out.put_slice(itoa::Buffer::new().format(self.0.value(row)).as_bytes());
        true
    }
}

struct Floats<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

impl<T: ArrowPrimitiveType> Cells for Floats<'_, T>
where
    T::Native: zmij::Float + num_like::Float,
{
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.0.is_null(row) {
            return false;
        }
        let value = self.0.value(row);
        // pgwire's text for `extra_float_digits` >= 1: Ryu's shortest form, with its own
        // words for the values Ryu does not write. zmij writes the same digits twice as
        // fast, and a positive exponent with a sign (`1e+300`) where Ryu has none.
        if value.is_nan() {
            out.put_slice(b"NaN");
        } else if value.is_infinite() {
            out.put_slice(if value.is_negative() { b"-inf" } else { b"inf" });
        } else if value.is_zero() {
            out.put_u8(b'0');
        } else {
            let mut buffer = zmij::Buffer::new();
            let text = buffer.format_finite(value).as_bytes();
            match text.windows(2).position(|pair| pair == b"e+") {
                Some(e) => {
                    out.put_slice(&text[..=e]);
                    out.put_slice(&text[e + 2..]);
                }
                None => out.put_slice(text),
            }
        }
        true
    }
}

/// The few questions [`Floats`] asks of f32 and f64.
mod num_like {
    pub trait Float: Copy {
        fn is_nan(self) -> bool;
        fn is_infinite(self) -> bool;
        fn is_negative(self) -> bool;
        /// Zero of either sign.
        fn is_zero(self) -> bool;
    }

    macro_rules! float {
        ($t:ty) => {
            impl Float for $t {
                fn is_nan(self) -> bool {
                    <$t>::is_nan(self)
                }
                fn is_infinite(self) -> bool {
                    <$t>::is_infinite(self)
                }
                fn is_negative(self) -> bool {
                    self.is_sign_negative()
                }
                fn is_zero(self) -> bool {
                    self == 0.0
                }
            }
        };
    }

    float!(f32);
    float!(f64);
}

impl<O: OffsetSizeTrait> Cells for &GenericStringArray<O> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.is_null(row) {
            return false;
        }
        out.put_slice(self.value(row).as_bytes());
        true
    }
}

impl Cells for &StringViewArray {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.is_null(row) {
            return false;
        }
        out.put_slice(self.value(row).as_bytes());
        true
    }
}

/// A dictionary's column: a row is NULL if its key is, or the value the key names.
struct Dictionary<'a> {
    /// The keys' nulls.
    nulls: Option<NullBuffer>,
    /// Each row's index into the values.
    rows: Vec<usize>,
    values: Box<dyn Cells + 'a>,
}

impl<'a> Dictionary<'a> {
    /// The writer of dictionary `array`, whose values `values` writes.
    fn of(array: &'a ArrayRef, values: Box<dyn Cells + 'a>) -> Box<dyn Cells + 'a> {
        let dictionary = array.as_any_dictionary();
        // An all-null dictionary may have no values (an outer join's missing side,
        // `new_null_array`), which `normalized_keys` refuses.
        let rows = if dictionary.values().is_empty() {
            Vec::new()
        } else {
            dictionary.normalized_keys()
        };
        Box::new(Self {
            nulls: array.nulls().cloned(),
            rows,
            values,
        })
    }
}

impl Cells for Dictionary<'_> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        // A key with no value to point at (possible only with no values) is written as
        // NULL, as the row has nothing else to show.
        !self.nulls.as_ref().is_some_and(|nulls| nulls.is_null(row))
            && self
                .rows
                .get(row)
                .is_some_and(|&value| self.values.write(value, out))
    }
}

struct Timestamps<'a, T: ArrowTimestampType> {
    array: &'a PrimitiveArray<T>,
    /// Whether the time is in UTC, written with its offset (`+00`).
    utc: bool,
}

impl<T: ArrowTimestampType> Cells for Timestamps<'_, T> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.array.is_null(row) {
            return false;
        }
        let value = self.array.value(row);
        let (seconds, nanos) = match T::UNIT {
            TimeUnit::Second => (value, 0),
            TimeUnit::Millisecond => (value.div_euclid(1_000), value.rem_euclid(1_000) * 1_000_000),
            TimeUnit::Microsecond => (
                value.div_euclid(1_000_000),
                value.rem_euclid(1_000_000) * 1_000,
            ),
            TimeUnit::Nanosecond => (
                value.div_euclid(1_000_000_000),
                value.rem_euclid(1_000_000_000),
            ),
        };
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        if !(0..=9999).contains(&year) {
            // Years chrono writes with a sign, and times it cannot hold (NULL, as
            // arrow-pg sends them): its own format, as arrow-pg writes them.
            return write_with_chrono::<T>(value, self.utc, out);
        }
        let of_day = seconds.rem_euclid(86_400);
        let mut text = *b"0000-00-00 00:00:00.000000+00";
        // All below 10^6, and of_day below 86,400: u32 arithmetic.
        let of_day = of_day as u32;
        put_digits(&mut text[0..4], year as u32);
        put_digits(&mut text[5..7], month);
        put_digits(&mut text[8..10], day);
        put_digits(&mut text[11..13], of_day / 3_600);
        put_digits(&mut text[14..16], of_day / 60 % 60);
        put_digits(&mut text[17..19], of_day % 60);
        put_digits(&mut text[20..26], (nanos / 1_000) as u32);
        out.put_slice(if self.utc { &text } else { &text[..26] });
        true
    }
}

/// A timestamp as arrow-pg writes it, through chrono; false for one chrono cannot hold.
fn write_with_chrono<T: ArrowTimestampType>(value: i64, utc: bool, out: &mut BytesMut) -> bool {
    use std::fmt::Write;
    let Some(time) = as_datetime::<T>(value) else {
        return false;
    };
    let written = if utc {
        write!(
            out,
            "{}",
            time.and_utc().fixed_offset().format(TIMESTAMP_UTC)
        )
    } else {
        write!(out, "{}", time.format(TIMESTAMP))
    };
    written.is_ok()
}

/// `value`'s last `digits.len()` decimal digits, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let of_era = z.rem_euclid(146_097);
    let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The writer of `array`'s values in binary, by its Arrow type: one [`kind_of`] takes.
/// Each is written as the PostgreSQL type [`expected_type`] gives it (big-endian
/// integers of that type's width, IEEE floats, UTF-8 bytes, microseconds since 2000).
fn binary_cells<'a>(array: &'a ArrayRef) -> PgWireResult<Box<dyn Cells + 'a>> {
    Ok(match array.data_type() {
        DataType::Boolean => Box::new(BinaryBooleans(array.as_boolean())),
        DataType::Int8 => binary(array.as_primitive::<Int8Type>(), |v| {
            i16::from(v).to_be_bytes()
        }),
        DataType::Int16 => binary(array.as_primitive::<Int16Type>(), i16::to_be_bytes),
        DataType::Int32 => binary(array.as_primitive::<Int32Type>(), i32::to_be_bytes),
        DataType::Int64 => binary(array.as_primitive::<Int64Type>(), i64::to_be_bytes),
        DataType::UInt8 => binary(array.as_primitive::<UInt8Type>(), |v| {
            i16::from(v).to_be_bytes()
        }),
        DataType::UInt16 => binary(array.as_primitive::<UInt16Type>(), |v| {
            i32::from(v).to_be_bytes()
        }),
        DataType::UInt32 => binary(array.as_primitive::<UInt32Type>(), |v| {
            i64::from(v).to_be_bytes()
        }),
        DataType::Float32 => binary(array.as_primitive::<Float32Type>(), f32::to_be_bytes),
        DataType::Float64 => binary(array.as_primitive::<Float64Type>(), f64::to_be_bytes),
        // A string is its UTF-8 bytes in either format.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => cells(array)?,
        DataType::Dictionary(..) => {
            Dictionary::of(array, binary_cells(array.as_any_dictionary().values())?)
        }
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => binary_timestamps::<TimestampSecondType>(array),
            TimeUnit::Millisecond => binary_timestamps::<TimestampMillisecondType>(array),
            TimeUnit::Microsecond => binary_timestamps::<TimestampMicrosecondType>(array),
            TimeUnit::Nanosecond => binary_timestamps::<TimestampNanosecondType>(array),
        },
        other => {
            return Err(encoding_error(format!(
                "a column of {other}, which is not written here"
            )));
        }
    })
}

fn binary<'a, T: ArrowPrimitiveType, const N: usize>(
    array: &'a PrimitiveArray<T>,
    bytes: fn(T::Native) -> [u8; N],
) -> Box<dyn Cells + 'a> {
    Box::new(Binary { array, bytes })
}

/// A primitive column in binary: each value is the `N` bytes `bytes` gives.
struct Binary<'a, T: ArrowPrimitiveType, const N: usize> {
    array: &'a PrimitiveArray<T>,
    bytes: fn(T::Native) -> [u8; N],
}

impl<T: ArrowPrimitiveType, const N: usize> Cells for Binary<'_, T, N> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.array.is_null(row) {
            return false;
        }
        out.put_slice(&(self.bytes)(self.array.value(row)));
        true
    }

    fn write_cell(&self, row: usize, out: &mut BytesMut) -> PgWireResult<()> {
        if self.array.is_null(row) {
            out.put_i32(-1);
        } else {
            put_fixed(out, (self.bytes)(self.array.value(row)));
        }
        Ok(())
    }
}

/// A value of `N` bytes, after its length.
fn put_fixed<const N: usize>(out: &mut BytesMut, value: [u8; N]) {
    // N is a primitive's width, at most 8.
    out.put_i32(N as i32);
    out.put_slice(&value);
}

struct BinaryBooleans<'a>(&'a BooleanArray);

impl Cells for BinaryBooleans<'_> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.0.is_null(row) {
            return false;
        }
        out.put_u8(self.0.value(row).into());
        true
    }

    fn write_cell(&self, row: usize, out: &mut BytesMut) -> PgWireResult<()> {
        if self.0.is_null(row) {
            out.put_i32(-1);
        } else {
            put_fixed(out, [u8::from(self.0.value(row))]);
        }
        Ok(())
    }
}

fn binary_timestamps<'a, T: ArrowTimestampType>(array: &'a ArrayRef) -> Box<dyn Cells + 'a> {
    Box::new(BinaryTimestamps(array.as_primitive::<T>()))
}

/// A timestamp column in binary: microseconds since 2000-01-01 00:00 UTC, with or
/// without a zone (a `timestamptz` is its UTC instant, as PostgreSQL sends it; the
/// session's `TimeZone` does not matter in binary).
struct BinaryTimestamps<'a, T: ArrowTimestampType>(&'a PrimitiveArray<T>);

impl<T: ArrowTimestampType> Cells for BinaryTimestamps<'_, T> {
    fn write(&self, row: usize, out: &mut BytesMut) -> bool {
        if self.0.is_null(row) {
            return false;
        }
        match micros_since_2000::<T>(self.0.value(row)) {
            Some(micros) => {
                out.put_i64(micros);
                true
            }
            None => false,
        }
    }

    fn write_cell(&self, row: usize, out: &mut BytesMut) -> PgWireResult<()> {
        let micros = if self.0.is_null(row) {
            None
        } else {
            micros_since_2000::<T>(self.0.value(row))
        };
        match micros {
            Some(micros) => put_fixed(out, micros.to_be_bytes()),
            None => out.put_i32(-1),
        }
        Ok(())
    }
}

/// 2000-01-01, PostgreSQL's epoch, in seconds since 1970-01-01.
const PG_EPOCH: i64 = 946_684_800;

/// Times within this many seconds of 1970 (about 100,000 years), far inside what chrono
/// holds, are turned into PostgreSQL's binary here; others as arrow-pg does.
const NEAR: i64 = 3_155_760_000_000;

/// The time `value` (in `T`'s unit since 1970) in microseconds since PostgreSQL's epoch,
/// truncated toward zero (toward 2000) as chrono's `TimeDelta::num_microseconds` cuts
/// the time arrow-pg sends, hence `/` and not `div_euclid`; `None` (sent as NULL, as
/// arrow-pg sends it) for a time chrono cannot hold.
fn micros_since_2000<T: ArrowTimestampType>(value: i64) -> Option<i64> {
    let (per_second, near) = match T::UNIT {
        TimeUnit::Second => (1, NEAR),
        TimeUnit::Millisecond => (1_000, NEAR * 1_000),
        TimeUnit::Microsecond => (1_000_000, NEAR * 1_000_000),
        // Every i64 of nanoseconds is within 300 years of 1970.
        TimeUnit::Nanosecond => {
            let micros = match value.checked_sub(PG_EPOCH * 1_000_000_000) {
                Some(since_2000) => since_2000 / 1_000,
                // Times within 30 years of the earliest (before 1707): in i128, and
                // back within i64 once divided.
                None => ((i128::from(value) - i128::from(PG_EPOCH) * 1_000_000_000) / 1_000) as i64,
            };
            return Some(micros);
        }
    };
    if (-near..=near).contains(&value) {
        // Whole microseconds: no cut.
        return Some((value - PG_EPOCH * per_second) * (1_000_000 / per_second));
    }
    let epoch = as_datetime::<TimestampSecondType>(PG_EPOCH)?;
    as_datetime::<T>(value)?
        .signed_duration_since(epoch)
        .num_microseconds()
}

fn encoding_error(message: String) -> PgWireError {
    PgWireError::ApiError(message.into())
}

#[cfg(test)]
mod tests;
