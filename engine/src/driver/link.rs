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
use std::os::fd::RawFd;

/// What an external link or listener answers when its shard is about to block in the reactor
/// ([`ExternalLink::before_park`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Input is waiting already: the shard must not block.
    Ready,
    /// Nothing is waiting, and the readiness descriptor will signal the next arrival: the
    /// shard may block as long as its timers allow.
    Armed,
    /// No readiness signal (or none now): the shard polls again within a millisecond.
    Poll,
}

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
    /// `describe`), since the link was created. The shard adds what this grows by to its
    /// station's `link_frames_dropped` statistic.
    fn dropped(&self) -> u64 {
        0
    }

    /// A descriptor that signals readable when input may have arrived (an eventfd doorbell,
    /// a socket), open for the link's whole life. The shard's reactor watches it
    /// edge-triggered, so an idle shard wakes as soon as the peer sends instead of polling the
    /// link every millisecond. `None` (the default): the link is polled.
    ///
    /// The reactor holds a reference to the descriptor's file while it watches it, and after
    /// a `kill -9` an io_uring is torn down by the kernel asynchronously: do not offer a
    /// descriptor whose closing others must observe at once (a listening socket whose name
    /// must be free, a socket whose end of stream is the peer's death notice).
    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }

    /// Called when the shard is about to block. A link with a readiness descriptor arms it
    /// (from now on, the next arrival must signal it) and answers [`Readiness::Armed`], or
    /// [`Readiness::Ready`] if input is already waiting (arrivals before arming signal
    /// nothing). The default answers [`Readiness::Poll`].
    fn before_park(&mut self) -> Readiness {
        Readiness::Poll
    }
}

/// A transport endpoint that accepts connections (a WebSocket server, a shared-memory
/// rendezvous, a spool directory watcher).
pub trait ExternalListener: Send {
    /// A short description for logs.
    fn describe(&self) -> String;

    /// Returns a newly accepted link, if any (never blocks).
    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>>;

    /// As [`ExternalLink::readiness_fd`]: signals readable when a connection may be waiting.
    fn readiness_fd(&self) -> Option<RawFd> {
        None
    }

    /// As [`ExternalLink::before_park`].
    fn before_park(&mut self) -> Readiness {
        Readiness::Poll
    }
}
