//! Shared helpers for Sextant integration tests.
