//! Other embedded engines that the benchmarks set beside Sextant, each behind a cargo
//! feature of its own so that the default build compiles none of them.
//!
//! A peer loads the cpu-only rows through its own API, as a competent user would, and
//! answers the TSBS devops queries ([`crate::queries`]) through its native API as an
//! [`crate::query_bench::Answer`], so that answers compare across engines by checksum. A
//! query its API cannot express is [`Unanswered::NotAvailable`], never a made-up figure.

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
