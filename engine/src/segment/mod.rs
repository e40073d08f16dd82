//! Segments: immutable, columnar files of a table's rows sorted by series and time.
//!
//! ```text
//! SEGMENT := HEADER BLOCK* META TRAILER
//! ```
//! See docs/FORMAT.md for every byte.

pub(crate) mod filter;
pub mod format;
mod reader;
pub(crate) mod writer;

pub use format::{BlockMeta, SegmentMeta, SeriesMeta, Stats};
pub use reader::{LastValues, Segment};

#[cfg(test)]
mod tests;
