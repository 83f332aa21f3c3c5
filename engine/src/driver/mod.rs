//! The runtime: the shard cycle loop on a real clock and real I/O, the io_uring and epoll
//! backends behind one [`reactor::Reactor`] interface, the disk spool, the durable outbox, and
//! the [`Station`] embedding API. The core (`crate::core`) never imports anything from here.

pub mod clock;
pub mod direct;
pub mod link;
pub mod net;
pub mod outbox;
pub mod poll;
pub mod reactor;
pub mod spool;
pub mod station;
pub mod uring;

pub use link::{ExternalLink, ExternalListener, Readiness};
pub use reactor::Backend;
pub use station::{BulkHandle, Outcome, Station, StationBuilder, StationError, TraceKeyQuery};
