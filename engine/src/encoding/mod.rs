//! Column codecs: how the values of one column block become bytes and back.
//!
//! TODO-DOC
#![forbid(unsafe_code)]

mod ans;
mod bytes;
mod error;
mod float;
mod int;
mod pack;
mod small;
mod string;
#[cfg(test)]
mod tests;

use arrow_buffer::BooleanBuffer;

pub use error::DecodeError;

use bytes::{Reader, put_varint};

/// How the encoders compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The zstd level tried on each plane (zstd's scale: 1 fastest to 22 smallest, negative
    /// levels faster still). A plane is stored compressed only when that makes it smaller.
    /// Default: 3 (see the module docs for the measurements behind it).
    pub zstd_level: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options { zstd_level: 3 }
    }
}

/// The codec bytes: the first byte of every block (and of the integer block nested in a
/// float block).
mod codec {
    use super::DecodeError;

    /// No values.
    pub(super) const EMPTY: u8 = 0x00;
    /// Integers: one value repeated.
    pub(super) const INT_CONST: u8 = 0x01;
    /// Integers: first value and zigzagged deltas.
    pub(super) const INT_DELTA: u8 = 0x02;
    /// Integers: minimum and offsets from it.
    pub(super) const INT_FOR: u8 = 0x03;
    /// Integers: first value and one constant step.
    pub(super) const INT_STEP: u8 = 0x04;
    /// Integers: first value, first step and zigzagged deltas of deltas.
    pub(super) const INT_DOD: u8 = 0x05;
    /// Floats that are all integers, as an integer block.
    pub(super) const F64_INT: u8 = 0x10;
    /// Floats as an integer block of their order-preserving bit keys.
    pub(super) const F64_BITS: u8 = 0x11;
    /// Floats as deltas of their keys with as many raw low bits as the previous value's
    /// exponent calls for.
    pub(super) const F64_SCALED: u8 = 0x12;
    /// Booleans: one value repeated.
    pub(super) const BOOL_CONST: u8 = 0x20;
    /// Booleans: a bitmap plane.
    pub(super) const BOOL_BITS: u8 = 0x21;
    /// Bytes: one value repeated.
    pub(super) const U8_CONST: u8 = 0x28;
    /// Bytes: one plane.
    pub(super) const U8_BYTES: u8 = 0x29;
    /// Strings: lengths and concatenated bytes.
    pub(super) const STR_PLAIN: u8 = 0x30;
    /// Strings: a dictionary and indices into it.
    pub(super) const STR_DICT: u8 = 0x31;

    /// The codec's name, for messages.
    pub(super) fn name(codec: u8) -> &'static str {
        match codec {
            EMPTY => "empty",
            INT_CONST => "integer constant",
            INT_DELTA => "integer delta",
            INT_FOR => "integer frame of reference",
            INT_STEP => "integer constant step",
            INT_DOD => "integer delta of deltas",
            F64_INT => "integral floats",
            F64_BITS => "float bits",
            F64_SCALED => "scaled float deltas",
            BOOL_CONST => "boolean constant",
            BOOL_BITS => "boolean bitmap",
            U8_CONST => "byte constant",
            U8_BYTES => "byte plane",
            STR_PLAIN => "plain strings",
            STR_DICT => "dictionary strings",
            _ => "unknown",
        }
    }

    /// The error for codec byte `codec` found where a `column` block was expected.
    pub(super) fn wrong(codec: u8, column: &'static str) -> DecodeError {
        match name(codec) {
            "unknown" => DecodeError::UnknownCodec { codec },
            name => DecodeError::WrongCodec {
                codec,
                name,
                column,
            },
        }
    }
}

/// Inserts the value count after the codec byte of the block that starts at `start`.
fn seal(out: &mut Vec<u8>, start: usize, count: usize) {
    let mut varint = Vec::with_capacity(10);
    put_varint(&mut varint, count as u64);
    let at = (start + 1).min(out.len());
    out.splice(at..at, varint);
}

/// Reads a block's codec byte and value count, and checks the count.
fn open(input: &[u8], count: usize) -> Result<(u8, Reader<'_>), DecodeError> {
    let mut r = Reader::new(input);
    let codec = r.u8()?;
    let found = r.varint()?;
    if found != count as u64 {
        return Err(DecodeError::CountMismatch {
            expected: count,
            found,
        });
    }
    Ok((codec, r))
}

/// Reads a whole block that is one INT block.
fn decode_int_block(
    input: &[u8],
    count: usize,
    column: &'static str,
) -> Result<Vec<u64>, DecodeError> {
    let (codec, mut r) = open(input, count)?;
    let values = int::decode_int_body(codec, &mut r, count, column)?;
    r.finish()?;
    Ok(values)
}

/// Appends the encoding of timestamps (any unit; nanoseconds in Sextant). Regular series
/// (constant step, or a constant step broken only where one series ends and the next
/// begins) cost almost nothing.
pub fn encode_time(values: &[i64], opts: &Options, out: &mut Vec<u8>) {
    encode_i64(values, opts, out);
}

/// Decodes `count` timestamps written by [`encode_time`].
pub fn decode_time(input: &[u8], count: usize) -> Result<Vec<i64>, DecodeError> {
    let values = decode_int_block(input, count, "time")?;
    Ok(values.into_iter().map(|v| v as i64).collect())
}

/// Appends the encoding of signed integers.
pub fn encode_i64(values: &[i64], opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    let unsigned: Vec<u64> = values.iter().map(|&v| v as u64).collect();
    int::encode_ints(&unsigned, true, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` signed integers written by [`encode_i64`].
pub fn decode_i64(input: &[u8], count: usize) -> Result<Vec<i64>, DecodeError> {
    let values = decode_int_block(input, count, "i64")?;
    Ok(values.into_iter().map(|v| v as i64).collect())
}

/// Appends the encoding of unsigned integers.
pub fn encode_u64(values: &[u64], opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    int::encode_ints(values, false, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` unsigned integers written by [`encode_u64`].
pub fn decode_u64(input: &[u8], count: usize) -> Result<Vec<u64>, DecodeError> {
    decode_int_block(input, count, "u64")
}

/// Appends the encoding of floats. Every value round-trips bit for bit: NaNs with any
/// payload, `-0.0`, infinities and subnormals included.
pub fn encode_f64(values: &[f64], opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    float::encode(values, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` floats written by [`encode_f64`].
pub fn decode_f64(input: &[u8], count: usize) -> Result<Vec<f64>, DecodeError> {
    let (codec, r) = open(input, count)?;
    float::decode(codec, r, count)
}

/// Appends the encoding of booleans; also used for validity bitmaps. The buffer may be a
/// slice (start at any bit offset).
pub fn encode_bool(values: &BooleanBuffer, opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    small::encode_bool(values, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` booleans written by [`encode_bool`]; the buffer starts at bit offset 0.
pub fn decode_bool(input: &[u8], count: usize) -> Result<BooleanBuffer, DecodeError> {
    let (codec, r) = open(input, count)?;
    small::decode_bool(codec, r, count)
}

/// Appends the encoding of bytes (log levels and other small enumerations).
pub fn encode_u8(values: &[u8], opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    small::encode_u8(values, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` bytes written by [`encode_u8`].
pub fn decode_u8(input: &[u8], count: usize) -> Result<Vec<u8>, DecodeError> {
    let (codec, r) = open(input, count)?;
    small::decode_u8(codec, r, count)
}

/// Appends the encoding of byte strings laid out as in Arrow: value `i` is
/// `data[offsets[i]..offsets[i + 1]]`, so `offsets` has one entry more than there are
/// values and need not start at 0 (a sliced array).
///
/// # Panics
///
/// If `offsets` is not a valid Arrow offsets array for `data` (empty, decreasing, negative or
/// past the end of `data`).
pub fn encode_strings(offsets: &[i32], data: &[u8], opts: &Options, out: &mut Vec<u8>) {
    assert!(
        !offsets.is_empty(),
        "Arrow offsets hold one entry more than there are values"
    );
    let start = out.len();
    string::encode(offsets, data, opts, out);
    seal(out, start, offsets.len() - 1);
}

/// Decodes `count` strings written by [`encode_strings`] into Arrow offsets (starting at 0,
/// `count + 1` of them) and bytes. Whether the bytes are UTF-8 is left to the caller.
pub fn decode_strings(input: &[u8], count: usize) -> Result<(Vec<i32>, Vec<u8>), DecodeError> {
    let (codec, r) = open(input, count)?;
    string::decode(codec, r, count)
}
