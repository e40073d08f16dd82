//! The `f64` codecs: integral floats as integers, all others as order-preserving bit keys.

use super::bytes::{Reader, put_u32, put_u64};
use super::int::{decode_ints_range, encode_ints, unzigzag, zigzag};
use super::pack::{Zstd, plan, read_pack, write_pack};
use super::{DecodeError, Options, codec};

/// Most raw low bits F64_SCALED takes per value (so that one 8-byte load reads them).
const MAX_SCALED_BITS: u32 = 56;
/// F64_SCALED scales the residual of value `i` by the exponent of value `i - LAG` (or of
/// the first value). Part of the format. Measured on the noisy walk: 1 gives the smallest
/// blocks; 4 makes them 0.2 % larger but decodes 1.45 times as fast, since the decoder then
/// works on several values at once instead of strictly one after the other.
const LAG: usize = 1;

/// Largest magnitude up to which every integer is a float (2^53).
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Whether `v` is an integer that converts to `i64` and back exactly, and is not `-0.0`.
#[inline]
fn is_integral(v: f64) -> bool {
    v.trunc() == v && v.abs() <= EXACT_LIMIT && !(v == 0.0 && v.is_sign_negative())
}

/// The bit pattern of `v` mapped so that unsigned order follows numeric order (NaNs with the
/// sign bit set sort first, the others last).
#[inline]
fn key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b ^ (1 << 63) }
}

/// Inverse of [`key`].
#[inline]
fn unkey(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k ^ (1 << 63) } else { !k })
}

/// See [`super::encode_f64`].
pub(super) fn encode(values: &[f64], opts: &Options, out: &mut Vec<u8>) {
    if values.is_empty() {
        out.push(codec::EMPTY);
    } else if values.iter().all(|&v| is_integral(v)) {
        out.push(codec::F64_INT);
        let ints: Vec<u64> = values.iter().map(|&v| v as i64 as u64).collect();
        encode_ints(&ints, true, opts, out);
    } else {
        let keys: Vec<u64> = values.iter().map(|&v| key(v)).collect();
        let mut bits = vec![codec::F64_BITS];
        encode_ints(&keys, false, opts, &mut bits);
        let mut scaled = Vec::new();
        let ok = encode_scaled(&keys, opts, &mut scaled);
        if ok && scaled.len() < bits.len() {
            out.extend_from_slice(&scaled);
        } else {
            out.extend_from_slice(&bits);
        }
    }
}

/// The biased binary exponent (0..=2047) of the float whose key is `k`.
#[inline]
fn exponent_of_key(k: u64) -> u32 {
    // unkey without a branch: negative floats have keys with the top bit clear.
    let flip = (k >> 63).wrapping_sub(1);
    (((k ^ flip) >> 52) & 0x7ff) as u32
}

/// Raw low bits of the residual that follows a value of biased exponent `e`.
#[inline]
fn scaled_bits(e: u32, bias: u32) -> u32 {
    bias.saturating_sub(e).min(MAX_SCALED_BITS)
}

/// The entropy-coded part of residual `z` with `k` raw low bits: with raw bits, 0 stands
/// for a zero residual (a repeated value, which then has no raw bits) and `1 + (z >> k)` for
/// any other.
#[inline]
fn scaled_high(z: u64, k: u32) -> u64 {
    match (k, z) {
        (0, z) => z,
        (_, 0) => 0,
        (k, z) => (z >> k) + 1,
    }
}

/// Appends F64_SCALED for `keys` (at least two); false if it does not apply.
///
/// A step of the same size costs more ulps the smaller the value, so the delta to a value
/// whose predecessor `LAG` places back has exponent `e` keeps `bias - e` low bits raw and
/// entropy-codes the rest, which then has about the same spread whatever the level of the
/// series.
fn encode_scaled(keys: &[u64], opts: &Options, out: &mut Vec<u8>) -> bool {
    if keys.len() < 3 {
        return false;
    }
    let z: Vec<u64> = keys
        .windows(2)
        .map(|w| zigzag(w[1].wrapping_sub(w[0])))
        .collect();
    let e: Vec<u32> = (1..keys.len())
        .map(|i| exponent_of_key(keys[i.saturating_sub(LAG)]))
        .collect();
    // The bias that would leave about 7 significant bits above the raw ones, by median.
    let mut ideal: Vec<u32> = z
        .iter()
        .zip(&e)
        .map(|(&z, &e)| (e + (64 - z.leading_zeros())).saturating_sub(7))
        .collect();
    let mid = ideal.len() / 2;
    let b0 = *ideal.select_nth_unstable(mid).1;
    let mut best: Option<(usize, u32, Vec<u64>)> = None;
    for bias in b0.saturating_sub(2)..=(b0 + 2).min(2047 + 64) {
        let mut raw_bits = 0u64;
        let high: Vec<u64> = z
            .iter()
            .zip(&e)
            .map(|(&z, &e)| {
                let k = scaled_bits(e, bias);
                if k > 0 && z != 0 {
                    raw_bits += u64::from(k);
                }
                scaled_high(z, k)
            })
            .collect();
        let est = raw_bits.div_ceil(8) as usize + plan(&high).est;
        if best.as_ref().is_none_or(|b| est < b.0) {
            best = Some((est, bias, high));
        }
    }
    let Some((_, bias, high)) = best else {
        return false;
    };
    // Low bits, in value order.
    let mut low = Vec::new();
    let mut acc: u128 = 0;
    let mut have = 0u32;
    for (&z, &e) in z.iter().zip(&e) {
        let k = scaled_bits(e, bias);
        if k == 0 || z == 0 {
            continue;
        }
        acc |= u128::from(z & (u64::MAX.checked_shr(64 - k).unwrap_or(0))) << have;
        have += k;
        if have >= 64 {
            low.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            have -= 64;
        }
    }
    low.extend_from_slice(&acc.to_le_bytes()[..have.div_ceil(8) as usize]);
    let Ok(low_len) = u32::try_from(low.len()) else {
        return false;
    };
    out.push(codec::F64_SCALED);
    put_u64(out, keys[0]);
    out.extend_from_slice(&(bias as u16).to_le_bytes());
    put_u32(out, low_len);
    out.extend_from_slice(&low);
    write_pack(
        out,
        &high,
        plan(&high),
        None,
        &mut Zstd::new(opts.zstd_level),
    );
    true
}

/// Reads the body of F64_SCALED (after its codec byte) holding `count` values, and returns
/// the first `want` (at least 1, at most `count`).
fn decode_scaled(r: &mut Reader<'_>, count: usize, want: usize) -> Result<Vec<f64>, DecodeError> {
    let first = r.u64()?;
    let bias = u16::from_le_bytes([r.u8()?, r.u8()?]);
    if bias > 2047 + 64 {
        return Err(DecodeError::malformed(format!(
            "the exponent bias {bias} is over 2111"
        )));
    }
    let bias = u32::from(bias);
    let low_len = r.u32()? as usize;
    let src = r.take(low_len)?;
    let mut low = Vec::with_capacity(low_len + 8);
    low.extend_from_slice(src);
    low.resize(low_len + 8, 0);
    let mut keys = Vec::with_capacity(want);
    keys.push(first);
    read_pack(r, count - 1, want - 1, &mut keys)?;
    let mut bit = 0usize;
    let mut prev = first;
    let mut raw_bits = [0u8; 2048];
    for (e, k) in raw_bits.iter_mut().enumerate() {
        *k = scaled_bits(e as u32, bias) as u8;
    }
    for i in 1..want {
        let k = u32::from(raw_bits[exponent_of_key(keys[i.saturating_sub(LAG)]) as usize]);
        let h = keys[i];
        let z = if k == 0 || h == 0 {
            h
        } else {
            let byte = (bit / 8).min(low_len);
            let mut word = [0u8; 8];
            word.copy_from_slice(&low[byte..byte + 8]);
            let raw = (u64::from_le_bytes(word) >> (bit % 8)) & (u64::MAX >> (64 - k));
            bit += k as usize;
            ((h - 1) << k) | raw
        };
        prev = prev.wrapping_add(unzigzag(z));
        keys[i] = prev;
    }
    // Only a whole block is checked to use its low bits exactly; a prefix uses fewer.
    if bit.div_ceil(8) > low_len || (want == count && bit.div_ceil(8) != low_len) {
        return Err(DecodeError::malformed(format!(
            "the raw low bits take {} bytes, {low_len} were stored",
            bit.div_ceil(8)
        )));
    }
    Ok(keys.into_iter().map(unkey).collect())
}

/// Values `[from, to)` of a float block of `count` values, and the first value decoded to
/// get them; see [`super::decode_f64_range`].
pub(super) fn decode(
    tag: u8,
    mut r: Reader<'_>,
    count: usize,
    from: usize,
    to: usize,
) -> Result<(Vec<f64>, usize), DecodeError> {
    let to = to.min(count);
    let from = from.min(to);
    let out = match tag {
        codec::EMPTY if count == 0 => (Vec::new(), 0),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        // Decoded straight into floats (see `FromInt for f64`).
        codec::F64_INT => decode_ints_range::<f64>(&mut r, count, from, to, "f64")?,
        codec::F64_BITS => {
            let (keys, start) = decode_ints_range::<u64>(&mut r, count, from, to, "f64")?;
            (keys.into_iter().map(unkey).collect(), start)
        }
        codec::F64_SCALED if count < 3 => {
            return Err(DecodeError::malformed(format!(
                "codec {tag} holds at least 3 values, {count} were asked for"
            )));
        }
        codec::F64_SCALED if to == 0 => {
            decode_scaled(&mut r, count, 1)?;
            (Vec::new(), 0)
        }
        // Scaled deltas are decoded from the first value.
        codec::F64_SCALED => {
            let mut keys = decode_scaled(&mut r, count, to)?;
            keys.drain(..from);
            (keys, 0)
        }
        other => return Err(codec::wrong(other, "f64")),
    };
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_preserves_order_and_round_trips() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1e300,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} !< {}", w[0], w[1]);
        }
        for v in vals {
            assert_eq!(unkey(key(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn integral_excludes_negative_zero_and_large() {
        assert!(is_integral(0.0));
        assert!(!is_integral(-0.0));
        assert!(is_integral(EXACT_LIMIT));
        assert!(is_integral(-EXACT_LIMIT));
        assert!(!is_integral(EXACT_LIMIT * 2.0));
        assert!(!is_integral(f64::INFINITY));
        assert!(!is_integral(f64::NAN));
        assert!(!is_integral(0.5));
    }
}
