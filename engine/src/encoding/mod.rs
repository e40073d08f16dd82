//! Column codecs: how the values of one column block become bytes and back.
//!
//! # Contract
//!
//! - Each `encode_*` appends one self-describing block to `out` holding exactly the values
//!   given. Its first byte names the codec the encoder chose for these values (constant,
//!   delta, integral floats, dictionary, ...), so the choice is made per block. Nulls are
//!   never passed in: the segment layer stores validity separately, with [`encode_bool`].
//! - Each `decode_*` takes exactly such a block and the number of values it holds, and
//!   returns the values, or a [`DecodeError`] for any input that is not a valid encoding (a
//!   wrong count, a block of another column kind, a truncated, damaged or padded block). It
//!   never panics, never reads out of bounds, and never allocates more than `count` calls
//!   for: a plane's size is derived from `count` and checked against the zstd frame header
//!   before decompressing. Strings are the exception, since `count` does not bound their
//!   bytes: their total length must be at most `i32::MAX` (Arrow offsets), and zstd-coded
//!   string bytes past 16 MiB are decompressed into a buffer that grows only as bytes
//!   actually come out (below that, the length is allocated up front).
//! - The numeric and byte decoders also come as `decode_*_prefix`, which return only the
//!   first `want` of the block's values, exactly as the whole decode's first `want`, and
//!   stop decoding where the codec allows (every codec but zstd planes decodes in order).
//!   The numeric and byte ones come as `decode_*_range` too, which return values
//!   `[from, to)` and start decoding at `from` where the codec allows (constants, steps,
//!   frames of reference, raw planes), at the last resume point at or before it for
//!   resumable deltas and byte planes (whose rANS has resume points), and at the first
//!   value otherwise.
//!   A prefix decode checks what it reads and the block's framing, but not the parts of
//!   entropy-coded planes past the prefix: damage there can go unnoticed, which is why
//!   segments checksum every block before decoding it.
//! - Encodings are deterministic for given values and options (the encoder's choices use
//!   integer arithmetic only, and zstd is deterministic for a given level and version).
//!
//! # Byte layout
//!
//! Integers are little-endian. `varint` is unsigned LEB128. `zigzag(d) = (d << 1) ^ (d >>
//! 63)` (arithmetic shift) of a difference taken with wrapping arithmetic in two's
//! complement, and `unzigzag` its inverse; every sum below wraps too.
//!
//! ```text
//! BLOCK      := codec:u8 count:varint BODY          -- count must equal the count asked for
//! INT        := codec:u8 BODY                        -- nested: the count is the outer one
//!
//! PACK(n)    := k:u8 planes:u8 LOW PLANE(n){planes}  -- n unsigned residuals r[0..n]
//!   k <= 64 raw low bits per residual; planes byte planes above them, k + 8*(planes-1) < 64
//!   LOW      := ceil(n*k / 8) bytes: r[i] mod 2^k at bit i*k, least significant bit first
//!   plane p holds byte p of r[i] >> k, so r[i] = low[i] | sum_p plane_p[i] << (k + 8p)
//!
//! PLANE(m)   := 0x00 BYTES(m)                        -- raw
//!             | 0x01 len:u32 ZSTD(len)               -- one zstd frame decompressing to m bytes
//!             | 0x02 b:u8                            -- m copies of b
//!             | 0x03 len:u32 ANS(len)                -- static rANS, see below
//!             | 0x04 len:u32 ANSR(len)               -- static rANS with resume points
//!
//! ANS        := top:u8 FREQ{top+1} STATE{4} WORD*
//!   FREQ     := varint (1 or 2 bytes), the frequencies of bytes 0..=top out of 4096, sum 4096
//!   STATE    := u32 >= 2^16, the four lanes' initial states; WORD := u16, refill words
//!   byte i is decoded by lane i mod 4; with x that lane's state and [c, c+f) the slots of
//!   the byte s for which c <= x mod 4096 < c+f: x := f*(x >> 12) + (x mod 4096) - c, then
//!   if x < 2^16, x := (x << 16) | next WORD. At the end every lane is 2^16 and no WORD is
//!   left.
//!
//! ANSR       := top:u8 FREQ{top+1} every:varint RESUME{(m-1)/every} STATE{4} WORD*
//!   every    := a positive multiple of 4
//!   RESUME j := STATE{4} word:varint    -- j from 1: the lanes' states before byte
//!               j*every is decoded, and the index of the next WORD; a decode may start
//!               there instead of at byte 0. A whole decode checks that it passes each.
//! ```
//!
//! A resumable integer delta (`0x06`) holds, at each resume point `j`, the value from which
//! residual `j * every` on is added up; with its planes' resume points (the writer gives
//! them the same `every`), a decode of values `[from, to)` starts at the last point at or
//! before `from` (value `j * every`) instead of at the first value. A whole decode checks
//! every point's value. The writer uses it in place of `0x02` when the deltas cut into
//! [`RESUME_STRETCHES`] stretches give stretches of at least [`Options::resume_every`],
//! and counts the points' bytes when it chooses the codec.
//!
//! | codec | name | kinds | body | values |
//! |---|---|---|---|---|
//! | `0x00` | empty | all | nothing | none (count 0; the only encoding of 0 values) |
//! | `0x01` | integer constant | int | `v:u64` | `v` repeated |
//! | `0x02` | integer delta | int | `first:u64 PACK(count-1)` | `v[0] = first`, `v[i] = v[i-1] + unzigzag(r[i-1])` |
//! | `0x03` | integer frame of reference | int | `base:u64 PACK(count)` | `v[i] = base + r[i]` |
//! | `0x04` | integer constant step | int | `first:u64 step:u64` | `v[i] = first + i*step` |
//! | `0x05` | integer delta of deltas | int, count >= 2 | `first:u64 step:u64 PACK(count-2)` | `v[0] = first`, `d = step`, `v[1] = first + d`, then `d += unzigzag(r[i-2])`, `v[i] = v[i-1] + d` |
//! | `0x06` | resumable integer delta | int | `first:u64 every:varint POINT{(count-2)/every} PACK(count-1)` | as `0x02`; `POINT j` (from 1) `:= varint zigzag(v[j*every] - first)`, see below |
//! | `0x10` | integral floats | f64 | `INT` | `v[i] = int[i] as i64 as f64` |
//! | `0x11` | float bits | f64 | `INT` of keys | `v[i] = unkey(int[i])` |
//! | `0x12` | scaled float deltas | f64, count >= 3 | `first:u64 bias:u16 len:u32 LOW2(len) PACK(count-1)` | see below |
//! | `0x20` | boolean constant | bool | `b:u8` (0 or 1) | `b` repeated |
//! | `0x21` | boolean bitmap | bool | `PLANE(ceil(count/8))` | bit `i` (least significant first); the padding bits are 0 |
//! | `0x28` | byte constant | u8 | `b:u8` | `b` repeated |
//! | `0x29` | byte plane | u8 | `PLANE(count)` | the plane's bytes |
//! | `0x30` | plain strings | string | `INT(count lengths) PLANE(sum of lengths)` | the bytes, cut at the lengths |
//! | `0x31` | dictionary strings | string | `entries:u32 INT(entries lengths) PLANE(their sum) INT(count indices)` | entry `index[i]`; `1 <= entries <= count`, indices `< entries` |
//!
//! "int" is the `i64`, `u64` and time columns (whose blocks are identical: the same values
//! as two's complement bits), and the `INT` nested in floats and strings (which has no
//! count of its own, and never the empty codec when the count is not 0).
//!
//! Float keys order the bit patterns like the numbers: `key(b) = !b` if the sign bit is
//! set, else `b ^ 2^63`. Integral floats (`0x10`) are written only when every value is an
//! integer of magnitude at most 2^53 and none is `-0.0`, so every float, NaN payloads
//! included, comes back bit for bit.
//!
//! Scaled float deltas (`0x12`): `key[0] = first`. For `i >= 1`, let `e` be the biased
//! exponent (bits 52..62) of value `i - 1`, `k = min(max(bias - e, 0), 56)` and
//! `h = r[i-1]` the PACK's residual. Then `z = h` if `k = 0`, `z = 0` if `h = 0`, and
//! otherwise `z = ((h - 1) << k) | the next k bits of LOW2`, read least significant bit
//! first from a cursor that starts at 0 and must end in the last byte of LOW2 (`len =
//! ceil(bits read / 8)`); and `key[i] = key[i-1] + unzigzag(z)`. A step of the same size
//! spans more ulps the smaller the value, so this keeps as many raw low bits as the level
//! of the series calls for, and what is entropy-coded has the same spread at every level.
//! A zero residual (a repeated value, as where a walk is clamped) costs no raw bits.
//!
//! # How the encoder chooses
//!
//! - Integers: a constant or constant step if the values are one; otherwise the smallest by
//!   an order-0 entropy estimate of delta, delta of deltas and frame of reference.
//! - PACK: `k` is tried around the point below which 99 % of the residuals have at most 8
//!   significant bits, and at 0; the smallest estimate wins.
//! - PLANE: the smallest of raw, fill, rANS and zstd at [`Options::zstd_level`]. zstd wins
//!   where matches pay (long runs, repeated text); rANS where the bytes are independent
//!   draws from a skewed distribution (the deltas of a random walk), where zstd's Huffman
//!   codes and spurious short matches cost 4 % (level 19) to 30 % (level 3) more. A plane
//!   with resume points is stored as zstd only if that saves an eighth, since zstd
//!   decodes from the plane's first byte.
//! - Floats: integral floats when possible; otherwise both float bits and scaled deltas are
//!   encoded and the smaller is kept.
//! - Strings: a dictionary when at most half the values are distinct and it comes out
//!   smaller than the plain layout.
//!
//! # Measurements
//!
//! Bytes per value on the reference workloads (WORKLOADS.md: 128 series x 8,640 epochs of
//! one field, rows sorted by series then time, cut into blocks), seed 42, zstd level 3;
//! `cargo run --release --example codec_bench` of the codec scratch crate:
//!
//! | data | 4,096 | 16,384 | 65,536 | pco 1.1 (65,536) |
//! |---|---|---|---|---|
//! | TSBS random walk, truncated, as f64 (entropy of the steps 0.269) | 0.287 | 0.277 | 0.272 | 0.396 |
//! | the same walk, not truncated ("noisy floats") | 6.196 | 6.175 | 6.162 | 6.243 |
//! | 10 s timestamps, 8,640 per series | 0.024 | 0.013 | 0.003 | |
//! | log messages, 200 templates, 93 bytes each | 25.7 | 25.6 | 25.6 | |
//! | log levels (u8) | 0.219 | 0.214 | 0.212 | |
//!
//! Decoding one f64 column of 65,536-value blocks runs at 270 to 290 million values per
//! second on one core for the integral walk (pco 1.1: 85 to 180), and 45 to 60 million for
//! the noisy one, whose scaled deltas decode one after the other (pco: 140 to 220).
//! Encoding runs at 15 to 30 million values per second for the integral walk and 2 to 3
//! million for the noisy one (both float layouts are encoded and the smaller kept). These
//! rates come from runs on a shared two-core machine, hence the ranges; sizes are exact.
//!
//! The default zstd level, 3, was chosen by measurement: levels 1, 3, 9 and 19 give the
//! same sizes within 0.3 % on the numeric columns, where rANS codes almost every plane,
//! while encoding gets 2.5 (level 9) to 10 times (level 19) slower. For log messages,
//! levels 1, 3, 9 and 19 give 27.0, 25.6, 23.8 and 19.4 bytes per value, encoding 0.5 to
//! 1.05, 0.5 to 0.86, 0.2 to 0.34 and 0.01 million values per second.
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
    /// Default: 3, chosen by measurement (see "Measurements" in the module docs).
    pub zstd_level: i32,
    /// Integer deltas (and the integral floats written as them) and byte planes (log
    /// levels) get resume points, from which a decode of a range can start instead of at
    /// the block's first value: they are cut into [`RESUME_STRETCHES`] stretches of equal
    /// length (rounded up to a multiple of 4), where those are at least this long (see
    /// [`resume_spacing`]).
    /// `None` writes none. The planes' rANS gets them too only where the spacing is a
    /// multiple of 4 (otherwise their decode starts at their first byte). Default:
    /// [`RESUME_EVERY`].
    pub resume_every: Option<usize>,
}

/// The shortest stretch between two resume points; see [`Options::resume_every`].
pub const RESUME_EVERY: usize = 1024;

/// Stretches a resumable block is cut into; see [`Options::resume_every`]. A query whose
/// time window starts inside a block decodes at most one stretch before it. Each point
/// costs about 19 bytes (four rANS states, a word index and a value) per entropy-coded
/// plane: 3.1 % of a compacted TSBS block (12 hours, 4,320 rows at 0.28 bytes per value)
/// for two points, against 6.3 % for points every 1,024 values.
///
/// Measured on TSBS cpu-only at scale 100 (`sextant-bench run --scale 100 --runs 20`,
/// Sextant alone, rounds alternating the builds; medians in ms; bytes per value after
/// compaction). First against no resume points, three rounds:
///
/// | points | bytes per value | double-groupby-all | cpu-max-all-8 | double-groupby-1 | double-groupby-5 |
/// |---|---|---|---|---|---|
/// | none | 0.283 | 18.0 | 2.67 | 3.85 | 7.61 |
/// | every 1,024 values | 0.301 | 13.9 | 2.22 | 3.51 | 8.10 |
/// | every 2,048 values | 0.292 | 16.4 | 2.42 | 3.74 | 8.16 |
///
/// Then every 1,024 values against three stretches (two points in a 12-hour block, at
/// 1,440 and 2,880), three rounds with the decoder's tables kept per thread:
///
/// | points | bytes per value | double-groupby-all | cpu-max-all-8 | double-groupby-1 | double-groupby-5 |
/// |---|---|---|---|---|---|
/// | every 1,024 values | 0.301 | 13.6 | 2.17 | 3.60 | 8.14 |
/// | three stretches | 0.292 | 14.3 | 2.18 | 3.44 | 7.68 |
///
/// Three stretches keep most of the gain at half the bytes, and keep the engine's goal
/// of at most 0.30 bytes per value on this workload. A window starting inside a 12-hour
/// block decodes at most 1,440 rows before it (at 2,048 values, up to 2,048; at 1,024,
/// up to 1,024). double-groupby-5's window starts in the first rows of its block, so it
/// skips nothing and pays only for the bigger blocks.
pub const RESUME_STRETCHES: usize = 3;

/// The spacing of the resume points of a block of `n` deltas: `n` cut into
/// [`RESUME_STRETCHES`] stretches, rounded up to a multiple of 4; none if those would be
/// shorter than `min` (or empty). Shorter blocks (the ones background compaction writes
/// while a day is still filling, at scale 1000 a few thousand rows each) would pay as
/// much per point for less to skip.
fn resume_spacing(n: usize, min: usize) -> Option<usize> {
    let every = n.div_ceil(RESUME_STRETCHES).next_multiple_of(4);
    (every >= min.max(1) && n > every).then_some(every)
}

impl Default for Options {
    fn default() -> Self {
        Options {
            zstd_level: 3,
            resume_every: Some(RESUME_EVERY),
        }
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
    /// Integers: first value, resume points and zigzagged deltas, whose entropy-coded
    /// planes have resume points too.
    pub(super) const INT_DELTA_RESUMABLE: u8 = 0x06;
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
            INT_DELTA_RESUMABLE => "resumable integer delta",
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

/// Reads a whole block that is one INT block, and returns values `[from, to)` of its
/// `count` values and the first value decoded to get them.
fn decode_int_block(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
    column: &'static str,
) -> Result<(Vec<u64>, usize), DecodeError> {
    let (codec, mut r) = open(input, count)?;
    let values = int::decode_int_body(codec, &mut r, count, from, to, column)?;
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
    decode_time_prefix(input, count, count)
}

/// The first `want` (at most `count`) of the `count` timestamps of a block written by
/// [`encode_time`]; see the contract in the module docs.
pub fn decode_time_prefix(
    input: &[u8],
    count: usize,
    want: usize,
) -> Result<Vec<i64>, DecodeError> {
    Ok(decode_time_range(input, count, 0, want)?.0)
}

/// The spacing of the values from which a decode of a range of an integer or time block
/// starts (at the last one at or before the range): 1 for constant and constant-step
/// blocks, the resume points' spacing for resumable deltas; `None` for the others (whose
/// decode of a range may start at their first value) and for bytes that are not such a
/// block. Reads only the block's header, and checks nothing else.
pub fn range_start_spacing(input: &[u8]) -> Option<usize> {
    let mut r = Reader::new(input);
    let codec = r.u8().ok()?;
    r.varint().ok()?;
    match codec {
        codec::INT_CONST | codec::INT_STEP => Some(1),
        codec::INT_DELTA_RESUMABLE => {
            r.u64().ok()?;
            let every = r.varint().ok()?;
            usize::try_from(every).ok().filter(|&e| e > 0)
        }
        _ => None,
    }
}

/// Timestamps `[from, to)` (`to` at most `count`) of the `count` of a block written by
/// [`encode_time`], and the index of the first value decoded to get them (at most
/// `from`); see the contract in the module docs.
pub fn decode_time_range(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<i64>, usize), DecodeError> {
    let (values, start) = decode_int_block(input, count, from, to, "time")?;
    Ok((values.into_iter().map(|v| v as i64).collect(), start))
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
    decode_i64_prefix(input, count, count)
}

/// The first `want` (at most `count`) of the `count` signed integers of a block written by
/// [`encode_i64`].
pub fn decode_i64_prefix(input: &[u8], count: usize, want: usize) -> Result<Vec<i64>, DecodeError> {
    Ok(decode_i64_range(input, count, 0, want)?.0)
}

/// Signed integers `[from, to)` (`to` at most `count`) of the `count` of a block written
/// by [`encode_i64`], and the index of the first value decoded to get them.
pub fn decode_i64_range(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<i64>, usize), DecodeError> {
    let (values, start) = decode_int_block(input, count, from, to, "i64")?;
    Ok((values.into_iter().map(|v| v as i64).collect(), start))
}

/// Appends the encoding of unsigned integers.
pub fn encode_u64(values: &[u64], opts: &Options, out: &mut Vec<u8>) {
    let start = out.len();
    int::encode_ints(values, false, opts, out);
    seal(out, start, values.len());
}

/// Decodes `count` unsigned integers written by [`encode_u64`].
pub fn decode_u64(input: &[u8], count: usize) -> Result<Vec<u64>, DecodeError> {
    decode_u64_prefix(input, count, count)
}

/// The first `want` (at most `count`) of the `count` unsigned integers of a block written
/// by [`encode_u64`].
pub fn decode_u64_prefix(input: &[u8], count: usize, want: usize) -> Result<Vec<u64>, DecodeError> {
    Ok(decode_u64_range(input, count, 0, want)?.0)
}

/// Unsigned integers `[from, to)` (`to` at most `count`) of the `count` of a block
/// written by [`encode_u64`], and the index of the first value decoded to get them.
pub fn decode_u64_range(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<u64>, usize), DecodeError> {
    decode_int_block(input, count, from, to, "u64")
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
    decode_f64_prefix(input, count, count)
}

/// The first `want` (at most `count`) of the `count` floats of a block written by
/// [`encode_f64`].
pub fn decode_f64_prefix(input: &[u8], count: usize, want: usize) -> Result<Vec<f64>, DecodeError> {
    Ok(decode_f64_range(input, count, 0, want)?.0)
}

/// Floats `[from, to)` (`to` at most `count`) of the `count` of a block written by
/// [`encode_f64`], and the index of the first value decoded to get them.
pub fn decode_f64_range(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<f64>, usize), DecodeError> {
    let (codec, r) = open(input, count)?;
    float::decode(codec, r, count, from, to)
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
    decode_u8_prefix(input, count, count)
}

/// The first `want` (at most `count`) of the `count` bytes of a block written by
/// [`encode_u8`].
pub fn decode_u8_prefix(input: &[u8], count: usize, want: usize) -> Result<Vec<u8>, DecodeError> {
    decode_u8_range(input, count, 0, want.min(count)).map(|(bytes, _)| bytes)
}

/// Bytes `[from, to)` (`to` at most `count`) of the `count` of a block written by
/// [`encode_u8`], and the index of the first byte decoded to get them (at most `from`: a
/// resume point of the plane's rANS, or 0).
pub fn decode_u8_range(
    input: &[u8],
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let to = to.min(count);
    let (codec, r) = open(input, count)?;
    small::decode_u8(codec, r, count, from.min(to), to)
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
