//! Latency summaries of repeated runs.

use std::time::Duration;

/// The latencies of one query on one engine over the timed runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Every run's seconds, in run order.
    pub runs_secs: Vec<f64>,
}

impl Latency {
    /// The summary of `runs` (in run order).
    pub fn new(runs: &[Duration]) -> Latency {
        Latency {
            runs_secs: runs.iter().map(Duration::as_secs_f64).collect(),
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut s = self.runs_secs.clone();
        s.sort_by(f64::total_cmp);
        s
    }

    /// The median, seconds (see [`median`]; 0 with no runs).
    pub fn p50(&self) -> f64 {
        median(self.runs_secs.clone()).unwrap_or(0.0)
    }

    /// The 95th percentile by nearest rank, seconds (the slowest run when there are fewer
    /// than 20).
    pub fn p95(&self) -> f64 {
        let s = self.sorted();
        if s.is_empty() {
            return 0.0;
        }
        let rank = (s.len() * 95).div_ceil(100).max(1);
        s[rank - 1]
    }

    /// The slowest run, seconds.
    pub fn max(&self) -> f64 {
        self.runs_secs.iter().copied().fold(0.0, f64::max)
    }
}

/// The median of `values`: the mean of the two middle ones when their number is even;
/// `None` when there are none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The geometric mean of `values` (1 when empty): the fair average of ratios.
pub fn geometric_mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0u32), |(s, n), v| (s + v.ln(), n + 1));
    if n == 0 {
        1.0
    } else {
        (sum / f64::from(n)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Latency {
        Latency::new(
            &v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn median_p95_and_max_of_runs() {
        let l = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(l.p50(), 0.003);
        assert_eq!(l.p95(), 0.005);
        assert_eq!(l.max(), 0.005);
        assert_eq!(ms(&[4, 1, 2, 3]).p50(), 0.0025);
        let twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(ms(&twenty).p95(), 0.019);
    }

    #[test]
    fn geometric_mean_of_ratios() {
        assert!((geometric_mean([2.0, 0.5]) - 1.0).abs() < 1e-12);
        assert!((geometric_mean([4.0, 1.0]) - 2.0).abs() < 1e-12);
        assert_eq!(geometric_mean([]), 1.0);
    }
}
