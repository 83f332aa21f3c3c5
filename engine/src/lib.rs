//! # tamtam-engine
//!
//! The TamTam engine: the sans-IO Safari Bus core ([`core`]) and, later, the runtime drivers
//! that run it on cores, sockets and files. See `DESIGN.md` and `spec/` at the repository root.
//!
//! The core never imports the driver; the driver adapts the core to real I/O.

pub mod core;
pub mod driver;
