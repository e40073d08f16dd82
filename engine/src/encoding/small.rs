//! The codecs of booleans (and validity bitmaps) and of `u8` columns (log levels).

use arrow_buffer::{BooleanBuffer, Buffer};

use super::bytes::Reader;
use super::pack::{Plane, Zstd, read_plane, read_plane_range, write_plane};
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

/// See [`super::encode_u8`]. The plane's rANS gets resume points as integer deltas do
/// ([`Options::resume_every`]), so that a range inside a block (a time window's rows)
/// decodes from the last one before it.
pub(super) fn encode_u8(values: &[u8], opts: &Options, out: &mut Vec<u8>) {
    match values.split_first() {
        None => out.push(codec::EMPTY),
        Some((&first, rest)) if rest.iter().all(|&v| v == first) => {
            out.extend_from_slice(&[codec::U8_CONST, first]);
        }
        Some(_) => {
            // Spaced as a delta block of as many rows (`count - 1` residuals), so that
            // its points fall on the rows of the time column's.
            let every = opts
                .resume_every
                .and_then(|min| super::resume_spacing(values.len() - 1, min));
            out.push(codec::U8_BYTES);
            write_plane(out, values, every, &mut Zstd::new(opts.zstd_level));
        }
    }
}

/// See [`super::decode_u8_range`]: bytes `[from, to)` (`from <= to <= count`) and the
/// index of the first byte decoded to get them.
pub(super) fn decode_u8(
    tag: u8,
    mut r: Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let out = match tag {
        codec::EMPTY if count == 0 => (Vec::new(), 0),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        codec::U8_CONST => (vec![r.u8()?; to - from], from),
        codec::U8_BYTES => {
            let mut scratch = Vec::new();
            match read_plane_range(&mut r, count, from, to, &mut scratch)? {
                (Plane::Raw(b), _) => (b.to_vec(), from),
                (Plane::Scratch, start) => {
                    // The plane was decoded from `start`. (The plane readers return what
                    // was asked for; this guards the slicing.)
                    let skip = from
                        .checked_sub(start)
                        .filter(|&skip| start + scratch.len() == to && skip <= scratch.len())
                        .ok_or_else(|| {
                            DecodeError::malformed(format!(
                                "a byte plane decoded from {start} does not hold [{from}, {to})"
                            ))
                        })?;
                    scratch.drain(..skip);
                    (scratch, start)
                }
                (Plane::Fill(b), _) => (vec![b; to - from], from),
            }
        }
        other => return Err(codec::wrong(other, "u8")),
    };
    r.finish()?;
    Ok(out)
}
