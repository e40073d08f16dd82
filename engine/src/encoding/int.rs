//! The integer codecs, shared by `i64`, `u64` and time columns and nested inside the float
//! codecs: constant, constant step, delta, delta of deltas, frame of reference.

use super::bytes::{Reader, put_u64, put_varint};
use super::pack::{Zstd, plan, read_pack_range, write_pack};
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

    // Deltas are resumable at a cost: a value and, in each entropy-coded plane, four
    // states and a word index (about 18 bytes) per resume point.
    let every = opts
        .resume_every
        .and_then(|min| super::resume_spacing(delta.len(), min));
    let delta_plan = plan(&delta);
    let points = every.map_or(0, |e| (delta.len() - 1) / e);
    let resume_cost = points * (1 + 18 * delta_plan.planes as usize);
    let candidates = [
        (codec::INT_DELTA, delta_plan, 8 + resume_cost),
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
    match (best.0, every) {
        (codec::INT_DELTA, Some(every)) => {
            out.push(codec::INT_DELTA_RESUMABLE);
            put_u64(out, first);
            put_varint(out, every as u64);
            for j in 1..=points {
                put_varint(out, zigzag(values[j * every].wrapping_sub(first)));
            }
            write_pack(out, &delta, best.1, Some(every), &mut zstd);
        }
        (codec::INT_DELTA, None) => {
            out.push(codec::INT_DELTA);
            put_u64(out, first);
            write_pack(out, &delta, best.1, None, &mut zstd);
        }
        (codec::INT_DOD, _) => {
            out.push(codec::INT_DOD);
            put_u64(out, first);
            put_u64(out, step);
            write_pack(out, &dod, best.1, None, &mut zstd);
        }
        _ => {
            out.push(codec::INT_FOR);
            put_u64(out, base);
            write_pack(out, &offsets, best.1, None, &mut zstd);
        }
    }
}

/// Reads an INT block of `count` values; `column` names the column kind for errors.
pub(super) fn decode_ints(
    r: &mut Reader<'_>,
    count: usize,
    column: &'static str,
) -> Result<Vec<u64>, DecodeError> {
    Ok(decode_ints_range(r, count, 0, count, column)?.0)
}

/// Reads an INT block of `count` values and returns values `[from, to)` of them (`to` at
/// most `count`) and the first value decoded to get them; the reader is past the whole
/// block.
pub(super) fn decode_ints_range(
    r: &mut Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
    column: &'static str,
) -> Result<(Vec<u64>, usize), DecodeError> {
    let tag = r.u8()?;
    decode_int_body(tag, r, count, from, to, column)
}

/// Reads the rest of an INT block whose codec byte `tag` has been read, and returns
/// values `[from, to)` (`to` at most `count`) of its `count` values and the first value
/// decoded to get them. Constants, steps and
/// frames of reference are read from `from` on, resumable deltas from their last resume
/// point at or before it, other deltas from their first value.
pub(super) fn decode_int_body(
    tag: u8,
    r: &mut Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
    column: &'static str,
) -> Result<(Vec<u64>, usize), DecodeError> {
    let to = to.min(count);
    let from = from.min(to);
    let min = match tag {
        codec::EMPTY => {
            return if count == 0 {
                Ok((Vec::new(), 0))
            } else {
                Err(DecodeError::EmptyBlock { expected: count })
            };
        }
        codec::INT_CONST
        | codec::INT_STEP
        | codec::INT_DELTA
        | codec::INT_FOR
        | codec::INT_DELTA_RESUMABLE => 1,
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
        codec::INT_CONST => Ok((vec![r.u64()?; to - from], from)),
        codec::INT_STEP => {
            let (first, step) = (r.u64()?, r.u64()?);
            let mut out = vec![0u64; to - from];
            let mut v = first.wrapping_add(step.wrapping_mul(from as u64));
            for o in &mut out {
                *o = v;
                v = v.wrapping_add(step);
            }
            Ok((out, from))
        }
        codec::INT_DELTA => {
            let first = r.u64()?;
            let mut out = Vec::with_capacity(to.max(1));
            out.push(first);
            read_pack_range(r, count - 1, 0, to.saturating_sub(1), &mut out)?;
            prefix_sum(&mut out);
            out.truncate(to);
            out.drain(..from);
            Ok((out, 0))
        }
        codec::INT_DELTA_RESUMABLE => {
            let first = r.u64()?;
            let every = r.varint()?;
            if every == 0 {
                return Err(DecodeError::malformed(
                    "resume points are 0 values apart".to_string(),
                ));
            }
            let every = usize::try_from(every).unwrap_or(usize::MAX);
            // Point `j` (from 1) holds value `j * every`, from which residual `j * every`
            // on is added up: value `from` is decoded from the last point at or before it.
            let points = (count - 1).saturating_sub(1) / every;
            let j = (from / every).min(points);
            // A whole decode keeps every point's value, to check them; a range only the
            // one it starts at.
            let whole = from == 0 && to == count;
            // (Each point takes at least a byte: no more are reserved than could be there.)
            let mut values = Vec::with_capacity(if whole { points.min(r.remaining()) } else { 0 });
            let mut base = first;
            for i in 1..=points {
                let v = first.wrapping_add(unzigzag(r.varint()?));
                if whole {
                    values.push(v);
                } else if i == j {
                    base = v;
                }
            }
            let start = j * every;
            let mut out = Vec::with_capacity(to - start.min(to) + 1);
            out.push(base);
            read_pack_range(r, count - 1, start, to.saturating_sub(1), &mut out)?;
            prefix_sum(&mut out);
            // A whole decode checks the resume points, which it does not use.
            if whole
                && values
                    .iter()
                    .enumerate()
                    .any(|(i, &v)| out[(i + 1) * every] != v)
            {
                return Err(DecodeError::malformed(
                    "a resume point's value does not match the deltas".to_string(),
                ));
            }
            // `out[i]` is value `start + i`.
            out.truncate(to.saturating_sub(start));
            out.drain(..from - start.min(from));
            Ok((out, start.min(from)))
        }
        codec::INT_DOD => {
            let (first, step) = (r.u64()?, r.u64()?);
            let mut v = first.wrapping_add(step);
            let mut out = Vec::with_capacity(to.max(2));
            out.extend([first, v]);
            read_pack_range(r, count - 2, 0, to.saturating_sub(2), &mut out)?;
            let mut d = step;
            for o in &mut out[2..] {
                d = d.wrapping_add(unzigzag(*o));
                v = v.wrapping_add(d);
                *o = v;
            }
            out.truncate(to);
            out.drain(..from);
            Ok((out, 0))
        }
        _ => {
            let base = r.u64()?;
            let mut out = Vec::with_capacity(to - from);
            read_pack_range(r, count, from, to, &mut out)?;
            for o in &mut out {
                *o = o.wrapping_add(base);
            }
            Ok((out, from))
        }
    }
}

/// Replaces residuals `out[1..]` by the running sum from `out[0]` of their unzigzagged
/// deltas.
fn prefix_sum(out: &mut [u64]) {
    let Some((first, rest)) = out.split_first_mut() else {
        return;
    };
    let mut v = *first;
    for o in rest {
        v = v.wrapping_add(unzigzag(*o));
        *o = v;
    }
}
