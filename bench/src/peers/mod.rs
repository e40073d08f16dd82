//! Other embedded engines that the benchmarks set beside Sextant. Those linked into the
//! binary are each behind a cargo feature of its own, so that the default build compiles
//! none of them (tsink); DuckDB runs in a Python child process and needs no feature
//! ([`duckdb`]).
//!
//! A peer loads a workload's rows through its own API, as a competent user would (tsink
//! the cpu workloads, DuckDB the cpu and log workloads), and answers its queries
//! ([`crate::queries`]) through its native API (or SQL) as an
//! [`crate::query_bench::Answer`], so that answers compare across engines by checksum. A
//! query its API cannot express is [`Unanswered::NotAvailable`], never a made-up figure.

pub mod duckdb;
#[cfg(feature = "tsink")]
pub mod tsink;

/// Why a peer gave no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// The peer's API cannot express the query; the reason says what is missing.
    NotAvailable(&'static str),
    /// The peer failed while answering.
    Failed(crate::Error),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::NotAvailable(reason) => write!(f, "not available: {reason}"),
            Unanswered::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl From<crate::Error> for Unanswered {
    fn from(e: crate::Error) -> Self {
        Unanswered::Failed(e)
    }
}
