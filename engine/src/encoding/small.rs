//! The codecs of booleans (and validity bitmaps) and of `u8` columns (log levels).

use arrow_buffer::{BooleanBuffer, Buffer};

use super::bytes::Reader;
use super::pack::{Plane, Zstd, read_plane, read_plane_prefix, write_plane};
use super::{DecodeError, Options, codec};

/// See [`super::encode_bool`].
pub(super) fn encode_bool(values: &BooleanBuffer, opts: &Options, out: &mut Vec<u8>) {
    let n = values.len();
    if n == 0 {
        out.push(codec::EMPTY);
        return;
    }
    let set = values.count_set_bits();
    if set == 0 || set == n {
        out.extend_from_slice(&[codec::BOOL_CONST, u8::from(set == n)]);
        return;
    }
    let sliced = values.sliced();
    let mut bits = sliced.as_slice()[..n.div_ceil(8)].to_vec();
    if !n.is_multiple_of(8)
        && let Some(last) = bits.last_mut()
    {
        *last &= (1u8 << (n % 8)) - 1;
    }
    out.push(codec::BOOL_BITS);
    write_plane(out, &bits, None, &mut Zstd::new(opts.zstd_level));
}

/// See [`super::decode_bool`].
pub(super) fn decode_bool(
    tag: u8,
    mut r: Reader<'_>,
    count: usize,
) -> Result<BooleanBuffer, DecodeError> {
    let out = match tag {
        codec::EMPTY if count == 0 => BooleanBuffer::new_unset(0),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        codec::BOOL_CONST => match r.u8()? {
            0 => BooleanBuffer::new_unset(count),
            1 => BooleanBuffer::new_set(count),
            b => {
                return Err(DecodeError::malformed(format!(
                    "a constant boolean is {b}, not 0 or 1"
                )));
            }
        },
        codec::BOOL_BITS => {
            let len = count.div_ceil(8);
            let mut scratch = Vec::new();
            let mut bits = match read_plane(&mut r, len, &mut scratch)? {
                Plane::Raw(b) => b.to_vec(),
                Plane::Scratch => scratch,
                Plane::Fill(b) => vec![b; len],
            };
            if !count.is_multiple_of(8)
                && let Some(last) = bits.last_mut()
            {
                if *last >> (count % 8) != 0 {
                    return Err(DecodeError::malformed(
                        "the bits after the last boolean are not zero",
                    ));
                }
                *last &= (1u8 << (count % 8)) - 1;
            }
            BooleanBuffer::new(Buffer::from_vec(bits), 0, count)
        }
        other => return Err(codec::wrong(other, "bool")),
    };
    r.finish()?;
    Ok(out)
}

/// See [`super::encode_u8`].
pub(super) fn encode_u8(values: &[u8], opts: &Options, out: &mut Vec<u8>) {
    match values.split_first() {
        None => out.push(codec::EMPTY),
        Some((&first, rest)) if rest.iter().all(|&v| v == first) => {
            out.extend_from_slice(&[codec::U8_CONST, first]);
        }
        Some(_) => {
            out.push(codec::U8_BYTES);
            write_plane(out, values, None, &mut Zstd::new(opts.zstd_level));
        }
    }
}

/// See [`super::decode_u8_prefix`].
pub(super) fn decode_u8(
    tag: u8,
    mut r: Reader<'_>,
    count: usize,
    want: usize,
) -> Result<Vec<u8>, DecodeError> {
    let want = want.min(count);
    let out = match tag {
        codec::EMPTY if count == 0 => Vec::new(),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        codec::U8_CONST => vec![r.u8()?; want],
        codec::U8_BYTES => {
            let mut scratch = Vec::new();
            match read_plane_prefix(&mut r, count, want, &mut scratch)? {
                Plane::Raw(b) => b.to_vec(),
                Plane::Scratch => scratch,
                Plane::Fill(b) => vec![b; want],
            }
        }
        other => return Err(codec::wrong(other, "u8")),
    };
    r.finish()?;
    Ok(out)
}
