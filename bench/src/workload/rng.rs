//! Seeded random streams and a fast, platform-independent normal sampler.
//!
//! Every random stream of the generators is a `Xoshiro256PlusPlus` seeded from
//! [`stream_seed`]`(seed, stream, index)`, so a value never depends on thread count, batch
//! size or hash-map order. Xoshiro256++ and its SplitMix64 seeding are fixed algorithms
//! (unlike `rand::rngs::SmallRng`, which may change between releases and differs on 32-bit
//! targets).
//!
//! The normal sampler uses only `+ - * /` and `sqrt`, which IEEE 754 rounds exactly, so
//! the same seed gives the same bits on every platform (no `libm` `exp`/`ln` in the path).

use std::sync::OnceLock;

use rand::SeedableRng;
pub(crate) use rand_xoshiro::Xoshiro256PlusPlus as Rng;

/// Stream identifiers, so that the streams of one seed never overlap.
pub(crate) mod stream {
    /// Per-host tags and random walks of the cpu workload.
    pub const CPU_HOST: u64 = 1;
    /// Tag tables of the logs workload.
    pub const LOGS_SETUP: u64 = 2;
    /// One second of log events.
    pub const LOGS_SECOND: u64 = 3;
    /// One day's incidents of the logs workload.
    pub const LOGS_INCIDENTS: u64 = 4;
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit seed of stream `stream`, item `index` (a host, a second, a day) of `seed`.
pub(crate) fn stream_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix(mix(mix(seed ^ 0x5e87_a470_0000_0000).wrapping_add(stream)).wrapping_add(index))
}

/// A random stream for item `index` of stream `stream` of `seed`.
pub(crate) fn rng_for(seed: u64, stream: u64, index: u64) -> Rng {
    Rng::seed_from_u64(stream_seed(seed, stream, index))
}

/// A uniform f64 in [0, 1) from the top 53 bits of `r`.
#[inline]
pub(crate) fn unit_f64(r: u64) -> f64 {
    (r >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in [0, n) from 32 random bits (multiply-shift; bias < n / 2^32).
#[inline]
pub(crate) fn below(r32: u32, n: u32) -> u32 {
    ((u64::from(r32) * u64::from(n)) >> 32) as u32
}

/// Number of bins of the normal sampler's inverse CDF.
const BINS: usize = 4096;
const BIN_BITS: u32 = 12;
const FRAC_BITS: u32 = 32 - BIN_BITS;

/// A Normal(0, 1) sampler: the inverse CDF, linear between 4,097 knots at the quantiles
/// i / 4096, turned into a table once.
///
/// Each sample takes 32 random bits: 12 choose a bin (probability 1/4096 each) and 20 place
/// the value uniformly within it, so two samples come from one `u64`. The outermost bins
/// end at the 1/8192 and 8191/8192 quantiles (±3.67), which truncates the tails beyond
/// about 3.5 sigma; the knots are then scaled so the variance is exactly 1. For random-walk
/// steps the difference from a true normal is immaterial; the speed (about 1 ns a sample)
/// and bit-for-bit portability are what it is for.
#[derive(Debug)]
pub(crate) struct Normal {
    knots: [f64; BINS + 1],
}

impl Normal {
    /// The shared table, built on first use.
    pub(crate) fn get() -> &'static Normal {
        static TABLE: OnceLock<Normal> = OnceLock::new();
        TABLE.get_or_init(Normal::build)
    }

    fn build() -> Normal {
        let mut knots = [0.0; BINS + 1];
        let n = BINS as f64;
        knots[0] = inverse_normal_cdf_lower(0.5 / n);
        for (i, k) in knots.iter_mut().enumerate().take(BINS / 2).skip(1) {
            *k = inverse_normal_cdf_lower(i as f64 / n);
        }
        knots[BINS / 2] = 0.0;
        for i in 0..BINS / 2 {
            knots[BINS - i] = -knots[i];
        }
        // Within a bin the value is uniform on [a, b]: E[x^2] = (a^2 + ab + b^2) / 3.
        let var: f64 = knots
            .windows(2)
            .map(|w| (w[0] * w[0] + w[0] * w[1] + w[1] * w[1]) / 3.0)
            .sum::<f64>()
            / n;
        let scale = 1.0 / var.sqrt();
        for k in &mut knots {
            *k *= scale;
        }
        Normal { knots }
    }

    /// One sample from 32 random bits.
    #[inline(always)]
    pub(crate) fn sample(&self, r32: u32) -> f64 {
        let bin = (r32 >> FRAC_BITS) as usize;
        let frac =
            (f64::from(r32 & ((1 << FRAC_BITS) - 1)) + 0.5) * (1.0 / (1 << FRAC_BITS) as f64);
        // `bin` < 4096, so `bin + 1` <= 4096 is in bounds; the mask lets the compiler see it.
        let a = self.knots[bin & (BINS - 1)];
        let b = self.knots[(bin & (BINS - 1)) + 1];
        a + frac * (b - a)
    }

    /// Two samples from one `u64`.
    #[inline(always)]
    pub(crate) fn sample2(&self, r: u64) -> (f64, f64) {
        (self.sample((r >> 32) as u32), self.sample(r as u32))
    }
}

/// Acklam's rational approximation of the inverse normal CDF (relative error < 1.2e-9),
/// for p in (0, 0.5].
fn inverse_normal_cdf_lower(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    debug_assert!(p > 0.0 && p <= 0.5);
    if p < 0.024_25 {
        let q = (-2.0 * ln(p)).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

const LN_2: f64 = std::f64::consts::LN_2;

/// Natural logarithm of a positive, normal `x` from basic arithmetic only (bit-for-bit the
/// same on every platform, unlike `f64::ln`, which calls the platform's libm).
pub(crate) fn ln(x: f64) -> f64 {
    debug_assert!(x.is_normal() && x > 0.0);
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52)); // [1, 2)
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut term = t;
    let mut sum = 0.0;
    for k in 0..16 {
        sum += term / f64::from(2 * k + 1);
        term *= t2;
    }
    2.0 * sum + e as f64 * LN_2
}

/// `e^x` for |x| < 700 from basic arithmetic only (see [`ln`]).
pub(crate) fn exp(x: f64) -> f64 {
    debug_assert!(x.abs() < 700.0);
    let k = (x / LN_2).round();
    let r = x - k * LN_2; // |r| <= 0.35
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..20 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn ln_and_exp_match_libm_closely() {
        for &x in &[
            1e-300, 1e-9, 0.001, 0.024, 0.5, 1.0, 1.5, 2.0, 10.0, 12345.678,
        ] {
            let rel = (ln(x) - x.ln()).abs() / x.ln().abs().max(1.0);
            assert!(rel < 1e-14, "ln({x}) = {} vs {}", ln(x), x.ln());
        }
        for &x in &[-20.0, -1.0, -0.3, 0.0, 0.7, 1.0, 5.5, 30.0] {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-14, "exp({x}) = {} vs {}", exp(x), x.exp());
        }
    }

    #[test]
    fn inverse_cdf_hits_known_quantiles() {
        assert!((inverse_normal_cdf_lower(0.025) + 1.959_964).abs() < 1e-5);
        assert!((inverse_normal_cdf_lower(0.01) + 2.326_348).abs() < 1e-5);
        assert!((inverse_normal_cdf_lower(0.158_655_25) + 1.0).abs() < 1e-5);
        assert_eq!(inverse_normal_cdf_lower(0.5), 0.0);
    }

    #[test]
    fn normal_sampler_has_unit_variance_and_normal_shape() {
        let normal = Normal::get();
        let mut rng = rng_for(7, 99, 0);
        let n = 1_000_000;
        let (mut sum, mut sum2, mut within1, mut within2) = (0.0, 0.0, 0u32, 0u32);
        for _ in 0..n / 2 {
            let (a, b) = normal.sample2(rng.next_u64());
            for x in [a, b] {
                sum += x;
                sum2 += x * x;
                within1 += u32::from(x.abs() < 1.0);
                within2 += u32::from(x.abs() < 2.0);
            }
        }
        let n = f64::from(n);
        let mean = sum / n;
        let var = sum2 / n - mean * mean;
        assert!(mean.abs() < 0.005, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!((f64::from(within1) / n - 0.6827).abs() < 0.005);
        assert!((f64::from(within2) / n - 0.9545).abs() < 0.005);
    }

    #[test]
    fn streams_differ_by_seed_stream_and_index() {
        let a = stream_seed(1, 1, 0);
        assert_ne!(a, stream_seed(2, 1, 0));
        assert_ne!(a, stream_seed(1, 2, 0));
        assert_ne!(a, stream_seed(1, 1, 1));
        assert_eq!(a, stream_seed(1, 1, 0));
    }
}
