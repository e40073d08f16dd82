//! The `f64` codecs: integral floats as integers, all others as order-preserving bit keys.

use super::bytes::Reader;
use super::int::{decode_ints, encode_ints};
use super::{DecodeError, Options, codec};

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
        out.push(codec::F64_BITS);
        let keys: Vec<u64> = values.iter().map(|&v| key(v)).collect();
        encode_ints(&keys, false, opts, out);
    }
}

/// See [`super::decode_f64`].
pub(super) fn decode(input: &[u8], count: usize) -> Result<Vec<f64>, DecodeError> {
    let mut r = Reader::new(input);
    let tag = r.u8()?;
    let out = match tag {
        codec::EMPTY if count == 0 => Vec::new(),
        codec::EMPTY => return Err(DecodeError::EmptyBlock { expected: count }),
        _ if count == 0 => return Err(DecodeError::NotEmpty { codec: tag, min: 1 }),
        // Integers beyond 2^53 (never written) round to the nearest float.
        codec::F64_INT => decode_ints(&mut r, count, "f64")?
            .into_iter()
            .map(|v| v as i64 as f64)
            .collect(),
        codec::F64_BITS => decode_ints(&mut r, count, "f64")?
            .into_iter()
            .map(unkey)
            .collect(),
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
