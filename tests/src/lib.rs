//! # tamtam-tests
//!
//! Cross-crate integration tests and the deterministic simulator ([`sim`]) that proves the
//! Safari Bus core under faults. The tests themselves live in `tests/tests/`.

pub mod sim;
