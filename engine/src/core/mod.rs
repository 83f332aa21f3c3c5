//! The sans-IO Safari Bus core: no syscalls, clocks, threads or OS randomness below this
//! module. Time and seeds are inputs; the same code runs under io_uring, under the poll driver
//! and inside the deterministic simulator.

pub mod registry;
pub mod wire;
