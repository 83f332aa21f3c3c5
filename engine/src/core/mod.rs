//! The sans-IO Safari Bus core: no syscalls, clocks, threads or OS randomness below this
//! module. Time and seeds are inputs; the same code runs under io_uring, under the poll driver
//! and inside the deterministic simulator.

pub mod bulk;
pub mod bus;
pub mod config;
pub mod control;
pub mod dedup;
pub mod hash;
pub mod orchestrator;
mod port_table;
pub mod registry;
pub mod rng;
pub mod routing;
mod seqmap;
pub mod service;
pub mod stats;
pub mod streams;
pub mod time;
mod timers;
pub mod trace;
pub mod wire;

pub use bus::{
    Bus, CycleReport, Event, Gauges, JournalEntry, LinkId, Progress, SendError, ServeError,
    Transmit,
};
pub use config::BusConfig;
pub use service::{BulkReceived, Context, Message, Outgoing, Recipient, Service, Tee};
pub use time::{Duration, Instant};

#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
