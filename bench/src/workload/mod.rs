//! The reference workloads of WORKLOADS.md, generated deterministically from a seed.

pub mod cpu;
pub mod logs;
mod rng;
pub mod source;

/// Arrow field metadata key that marks a column's role (`"tag"` or `"level"`); the same
/// key as `sextant_engine::schema::ROLE_KEY`.
pub const ROLE_KEY: &str = "sextant.role";
