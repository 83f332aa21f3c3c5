//! Links that are not reactor sockets: WebSocket, serial lines, shared memory, spool
//! directories, in-process memory. A transport implements [`ExternalLink`] (one connection)
//! and, if it accepts connections, [`ExternalListener`]; the shard loop drives them every
//! cycle inside its own thread: it drains received frames into the bus, hands the bus's
//! frames to `send`, and polls the listener for new links. Framing (length prefix, COBS,
//! WebSocket messages, files) is the transport's business: the shard sees whole frames.
//!
//! A transport that can block must not: `poll_recv` and `send` return at once, buffering
//! internally up to its bounds, and report a dead peer as an error (the link is then removed
//! and the bus's reliability takes over).

use std::io;

/// One connection of a non-socket transport.
pub trait ExternalLink: Send {
    /// A short description for logs ("ws 127.0.0.1:5555", "serial /dev/pts/3").
    fn describe(&self) -> String;

    /// Calls `on_frame` for each complete frame received since the last call (at most
    /// `frames_max`). Returns `Ok(true)` if anything was received. An error closes the link.
    fn poll_recv(&mut self, frames_max: usize, on_frame: &mut dyn FnMut(&[u8]))
    -> io::Result<bool>;

    /// Queues one frame for sending. `Ok(false)` means the link's bounded send buffer is full
    /// (the frame was dropped and counted; the bus resends what needs resending). An error
    /// closes the link.
    fn send(&mut self, frame: &[u8]) -> io::Result<bool>;

    /// Pushes buffered output towards the peer; called once per cycle after `send`s.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Frames dropped because they were malformed or oversized (counted, peer named by
    /// `describe`).
    fn dropped(&self) -> u64 {
        0
    }
}

/// A transport endpoint that accepts connections (a WebSocket server, a shared-memory
/// rendezvous, a spool directory watcher).
pub trait ExternalListener: Send {
    /// A short description for logs.
    fn describe(&self) -> String;

    /// Returns a newly accepted link, if any (never blocks).
    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>>;
}
