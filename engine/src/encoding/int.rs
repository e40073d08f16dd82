//! The integer codecs, shared by `i64`, `u64` and time columns and nested inside the float
//! codecs: constant, constant step, delta, delta of deltas, frame of reference.

use super::bytes::{Reader, put_u64, put_varint};
use super::pack::{Residuals, Zstd, plan, read_pack_range, read_pack_residuals, write_pack};
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
pub(super) fn decode_ints_range<T: FromInt>(
    r: &mut Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
    column: &'static str,
) -> Result<(Vec<T>, usize), DecodeError> {
    let tag = r.u8()?;
    decode_int_body(tag, r, count, from, to, column)
}

/// Reads the rest of an INT block whose codec byte `tag` has been read, and returns
/// values `[from, to)` (`to` at most `count`) of its `count` values and the first value
/// decoded to get them. Constants, steps and
/// frames of reference are read from `from` on, resumable deltas from their last resume
/// point at or before it, other deltas from their first value.
pub(super) fn decode_int_body<T: FromInt>(
    tag: u8,
    r: &mut Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
    column: &'static str,
) -> Result<(Vec<T>, usize), DecodeError> {
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
        codec::INT_CONST => Ok((vec![T::from_int(r.u64()?); to - from], from)),
        codec::INT_STEP => {
            let (first, step) = (r.u64()?, r.u64()?);
            let mut v = first.wrapping_add(step.wrapping_mul(from as u64));
            let out = (from..to)
                .map(|_| {
                    let o = T::from_int(v);
                    v = v.wrapping_add(step);
                    o
                })
                .collect();
            Ok((out, from))
        }
        codec::INT_DELTA => {
            let first = r.u64()?;
            let out = add_up_deltas(r, count, (0, first), from, to, None)?;
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
            let check = whole.then_some((every, values.as_slice()));
            let out = add_up_deltas(r, count, (start, base), from, to, check)?;
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
            Ok((out.into_iter().map(T::from_int).collect(), 0))
        }
        _ => {
            let base = r.u64()?;
            let mut out = Vec::with_capacity(to - from);
            read_pack_range(r, count, from, to, &mut out)?;
            let out = out.into_iter().map(|o| T::from_int(o.wrapping_add(base)));
            Ok((out.collect(), from))
        }
    }
}

/// What an INT block decodes into: the integers themselves, or floats that hold them.
pub(super) trait FromInt: Copy {
    /// The value of the integer `v` (two's complement where signed).
    fn from_int(v: u64) -> Self;
}

impl FromInt for u64 {
    #[inline(always)]
    fn from_int(v: u64) -> u64 {
        v
    }
}

/// Integers beyond 2^53 (never written) round to the nearest float.
impl FromInt for f64 {
    #[inline(always)]
    fn from_int(v: u64) -> f64 {
        v as i64 as f64
    }
}

/// Reads the PACK of a delta block of `count` values whose value `start` is `base`, and
/// returns values `[from, to)` (`start <= from` unless `from == to`): the residual of value
/// `i + 1` is the zigzagged difference from value `i`. With `check`, a whole decode
/// (`start` and `from` 0) also checks that value `(i + 1) * every` is `points[i]`.
fn add_up_deltas<T: FromInt>(
    r: &mut Reader<'_>,
    count: usize,
    (start, base): (usize, u64),
    from: usize,
    to: usize,
    check: Option<(usize, &[u64])>,
) -> Result<Vec<T>, DecodeError> {
    // Residuals `[start, to - 1)` give values `start + 1 .. to`.
    let end = to.saturating_sub(1);
    let residuals = read_pack_residuals(r, count - 1, start.min(end), end)?;
    let mut out = Vec::with_capacity(to - from);
    if from >= to {
        return Ok(out);
    }
    match &residuals {
        Residuals::Bytes { bytes, start: s } => {
            let bytes = &bytes[start - s..end - s];
            add_up(bytes, base, from - start, check, &mut out)?;
        }
        Residuals::Wide(wide) => add_up(wide, base, from - start, check, &mut out)?,
    }
    Ok(out)
}

/// Adds up `residuals` from `base` and appends every value after the first `skip`
/// residuals (the value they reach first) to `out`; see [`add_up_deltas`] for `check`.
fn add_up<R: Copy + Into<u64>, T: FromInt>(
    residuals: &[R],
    base: u64,
    skip: usize,
    check: Option<(usize, &[u64])>,
    out: &mut Vec<T>,
) -> Result<(), DecodeError> {
    debug_assert!(
        check.is_none() || skip == 0,
        "points are checked from value 0"
    );
    let (skipped, rest) = residuals.split_at(skip);
    let mut v = base;
    for &z in skipped {
        v = v.wrapping_add(unzigzag(z.into()));
    }
    out.push(T::from_int(v));
    let mut add = |piece: &[R], v: &mut u64| {
        out.extend(piece.iter().map(|&z| {
            *v = v.wrapping_add(unzigzag(z.into()));
            T::from_int(*v)
        }));
    };
    match check {
        None => add(rest, &mut v),
        Some((every, points)) => {
            // Points come first: `zip` takes a piece only when there is a point for it.
            let mut pieces = rest.chunks(every);
            for (&point, piece) in points.iter().zip(&mut pieces) {
                add(piece, &mut v);
                if v != point {
                    return Err(DecodeError::malformed(
                        "a resume point's value does not match the deltas".to_string(),
                    ));
                }
            }
            pieces.for_each(|piece| add(piece, &mut v));
        }
    }
    Ok(())
}
