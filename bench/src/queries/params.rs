//! The parameters of the TSBS devops queries: time windows and their SQL literals, random
//! hosts, and the small seeded generator they are drawn with.

use std::fmt::Write as _;

/// A small seeded random number generator (SplitMix64): the same seed gives the same query
/// parameters on every platform and release, without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Nanoseconds in a second.
pub const SECOND: i64 = 1_000_000_000;
/// Nanoseconds in a minute.
pub const MINUTE: i64 = 60 * SECOND;
/// Nanoseconds in an hour.
pub const HOUR: i64 = 60 * MINUTE;

/// A half-open time range `[start_ns, end_ns)`, ns since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// First instant, inclusive.
    pub start_ns: i64,
    /// Last instant, exclusive.
    pub end_ns: i64,
}

impl Window {
    /// `[start_ns, end_ns)`.
    pub fn new(start_ns: i64, end_ns: i64) -> Self {
        Window { start_ns, end_ns }
    }

    /// Whether `t` lies in the window.
    pub fn contains(&self, t: i64) -> bool {
        self.start_ns <= t && t < self.end_ns
    }

    /// A window of `len_ns` inside `self` whose start is drawn uniformly, in whole seconds,
    /// from `[start, end - len)` (TSBS's `RandWindow`).
    ///
    /// # Panics
    /// If `self` is not longer than `len_ns`.
    pub fn random_sub(&self, rng: &mut Rng, len_ns: i64) -> Window {
        let room = self.end_ns - len_ns - self.start_ns;
        assert!(room > 0, "a {len_ns} ns window does not fit in {self:?}");
        let offset = rng.range(0, (room / SECOND).max(1) as u64) as i64 * SECOND;
        Window::new(self.start_ns + offset, self.start_ns + offset + len_ns)
    }

    /// [`Window::random_sub`], or the whole of `self` when it is not longer than `len_ns`
    /// (small benchmark data sets).
    pub fn random_sub_or_all(&self, rng: &mut Rng, len_ns: i64) -> Window {
        if self.end_ns - self.start_ns > len_ns {
            self.random_sub(rng, len_ns)
        } else {
            *self
        }
    }

    /// The SQL conjunction `time >= '<start>' AND time < '<end>'`.
    pub fn sql(&self) -> String {
        time_between(&sql_time(self.start_ns), &sql_time(self.end_ns))
    }
}

/// `time >= <start> AND time < <end>`, of two SQL expressions (literals or parameters).
pub(super) fn time_between(start: &str, end: &str) -> String {
    format!("time >= {start} AND time < {end}")
}

/// A timestamp as a quoted SQL literal in TimescaleDB's form, `'2016-01-01 07:11:42'` (UTC,
/// with a 9-digit fraction when not a whole second).
pub fn sql_time(ns: i64) -> String {
    let secs = ns.div_euclid(SECOND);
    let nanos = ns.rem_euclid(SECOND);
    let (y, mo, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "'{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if nanos != 0 {
        let _ = write!(out, ".{nanos:09}");
    }
    out.push('\'');
    out
}

/// A string as a quoted SQL literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `n` distinct host indexes of `0..scale`, in draw order (a partial Fisher-Yates shuffle).
///
/// # Panics
/// If `n > scale`.
pub fn random_hosts(rng: &mut Rng, scale: u32, n: usize) -> Vec<u32> {
    assert!(
        n <= scale as usize,
        "cannot draw {n} distinct hosts of {scale}"
    );
    let mut all: Vec<u32> = (0..scale).collect();
    for i in 0..n {
        let j = rng.range(i as u64, u64::from(scale)) as usize;
        all.swap(i, j);
    }
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_time_is_timescale_form() {
        let t = 1_451_606_400 * SECOND + 7 * HOUR + 11 * MINUTE + 42 * SECOND;
        assert_eq!(sql_time(t), "'2016-01-01 07:11:42'");
        assert_eq!(sql_time(t + 5), "'2016-01-01 07:11:42.000000005'");
    }

    #[test]
    fn random_windows_fit_and_hosts_are_distinct() {
        let data = Window::new(0, 16 * HOUR);
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let w = data.random_sub(&mut rng, 12 * HOUR);
            assert!(w.start_ns >= 0 && w.end_ns <= 16 * HOUR);
            let mut hosts = random_hosts(&mut rng, 20, 8);
            hosts.sort_unstable();
            hosts.dedup();
            assert_eq!(hosts.len(), 8);
        }
    }
}
