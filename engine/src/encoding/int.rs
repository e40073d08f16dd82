//! The integer codecs, shared by `i64`, `u64` and time columns and nested inside the float
//! codecs: constant, constant step, delta, delta of deltas, frame of reference.

use super::bytes::{Reader, put_u64};
use super::pack::{Zstd, plan, read_pack, write_pack};
use super::{DecodeError, Options, codec};

/// Zigzag mapping of a two's complement difference: small magnitudes become small numbers.
#[inline]
pub(super) fn zigzag(d: u64) -> u64 {
    let s = d as i64;
    ((s << 1) ^ (s >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(super) fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ 0u64.wrapping_sub(z & 1)
}

/// Appends an INT block holding `values`. `signed` says in which order the frame of reference
/// takes its minimum (the bytes decode the same either way: arithmetic wraps).
pub(super) fn encode_ints(values: &[u64], signed: bool, opts: &Options, out: &mut Vec<u8>) {
    let Some((&first, _)) = values.split_first() else {
        out.push(codec::EMPTY);
        return;
    };
    if values.iter().all(|&v| v == first) {
        out.push(codec::INT_CONST);
        put_u64(out, first);
        return;
    }
    let deltas: Vec<u64> = values.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let step = deltas[0];
    if deltas.iter().all(|&d| d == step) {
        out.push(codec::INT_STEP);
        put_u64(out, first);
        put_u64(out, step);
        return;
    }
    // From here on there are at least three values.
    let delta: Vec<u64> = deltas.iter().map(|&d| zigzag(d)).collect();
    let dod: Vec<u64> = deltas
        .windows(2)
        .map(|w| zigzag(w[1].wrapping_sub(w[0])))
        .collect();
    let base = if signed {
        values.iter().map(|&v| v as i64).min().unwrap_or(0) as u64
    } else {
        values.iter().copied().min().unwrap_or(0)
    };
    let offsets: Vec<u64> = values.iter().map(|&v| v.wrapping_sub(base)).collect();

    let candidates = [
        (codec::INT_DELTA, plan(&delta), 8),
        (codec::INT_DOD, plan(&dod), 16),
        (codec::INT_FOR, plan(&offsets), 8),
    ];
    let mut best = candidates[0];
    for c in &candidates[1..] {
        if c.1.est + c.2 < best.1.est + best.2 {
            best = *c;
        }
    }
    let mut zstd = Zstd::new(opts.zstd_level);
    out.push(best.0);
    match best.0 {
        codec::INT_DELTA => {
            put_u64(out, first);
            write_pack(out, &delta, best.1, &mut zstd);
        }
        codec::INT_DOD => {
            put_u64(out, first);
            put_u64(out, step);
            write_pack(out, &dod, best.1, &mut zstd);
        }
        _ => {
            put_u64(out, base);
            write_pack(out, &offsets, best.1, &mut zstd);
        }
    }
}

/// Reads an INT block of `count` values; `column` names the column kind for errors.
pub(super) fn decode_ints(
    r: &mut Reader<'_>,
    count: usize,
    column: &'static str,
) -> Result<Vec<u64>, DecodeError> {
    decode_ints_prefix(r, count, count, column)
}

/// Reads an INT block of `count` values and returns the first `want` of them; the reader
/// is past the whole block.
pub(super) fn decode_ints_prefix(
    r: &mut Reader<'_>,
    count: usize,
    want: usize,
    column: &'static str,
) -> Result<Vec<u64>, DecodeError> {
    let tag = r.u8()?;
    decode_int_body(tag, r, count, want, column)
}

/// Reads the rest of an INT block whose codec byte `tag` has been read, and returns the
/// first `want` (at most `count`) of its `count` values.
pub(super) fn decode_int_body(
    tag: u8,
    r: &mut Reader<'_>,
    count: usize,
    want: usize,
    column: &'static str,
) -> Result<Vec<u64>, DecodeError> {
    let want = want.min(count);
    let min = match tag {
        codec::EMPTY => {
            return if count == 0 {
                Ok(Vec::new())
            } else {
                Err(DecodeError::EmptyBlock { expected: count })
            };
        }
        codec::INT_CONST | codec::INT_STEP | codec::INT_DELTA | codec::INT_FOR => 1,
        codec::INT_DOD => 2,
        other => return Err(codec::wrong(other, column)),
    };
    if count < min {
        return Err(if count == 0 {
            DecodeError::NotEmpty { codec: tag, min }
        } else {
            DecodeError::malformed(format!(
                "codec {tag} ({}) holds at least {min} values, {count} were asked for",
                codec::name(tag)
            ))
        });
    }
    match tag {
        codec::INT_CONST => Ok(vec![r.u64()?; want]),
        codec::INT_STEP => {
            let (first, step) = (r.u64()?, r.u64()?);
            let mut out = vec![0u64; want];
            let mut v = first;
            for o in &mut out {
                *o = v;
                v = v.wrapping_add(step);
            }
            Ok(out)
        }
        codec::INT_DELTA => {
            let first = r.u64()?;
            let mut out = Vec::with_capacity(want.max(1));
            out.push(first);
            read_pack(r, count - 1, want.saturating_sub(1), &mut out)?;
            let mut v = first;
            for o in &mut out[1..] {
                v = v.wrapping_add(unzigzag(*o));
                *o = v;
            }
            out.truncate(want);
            Ok(out)
        }
        codec::INT_DOD => {
            let (first, step) = (r.u64()?, r.u64()?);
            let mut v = first.wrapping_add(step);
            let mut out = Vec::with_capacity(want.max(2));
            out.extend([first, v]);
            read_pack(r, count - 2, want.saturating_sub(2), &mut out)?;
            let mut d = step;
            for o in &mut out[2..] {
                d = d.wrapping_add(unzigzag(*o));
                v = v.wrapping_add(d);
                *o = v;
            }
            out.truncate(want);
            Ok(out)
        }
        _ => {
            let base = r.u64()?;
            let mut out = Vec::with_capacity(want);
            read_pack(r, count, want, &mut out)?;
            for o in &mut out {
                *o = o.wrapping_add(base);
            }
            Ok(out)
        }
    }
}
