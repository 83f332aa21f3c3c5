//! # tamtam-transports
//!
//! TamTam's non-socket transports. Each module is a **sans-IO framer** (pure: bytes in →
//! frames out, frames in → bytes out, bounded, fuzzable) plus a thin **adapter** implementing
//! the engine's [`ExternalLink`] / [`ExternalListener`], which the station's shard loop drives
//! every cycle (`poll_recv` → bus, bus frames → `send`, then `flush`).
//!
//! | module | framer | adapter | limit on one frame |
//! |---|---|---|---|
//! | [`memory`] | `u32` length prefix in a byte ring | in-process SPSC pair ([`rtrb`]) | refused at `send`, counted |
//! | [`websocket`] | one frame per binary message (RFC 6455, `tungstenite`) | non-blocking TCP, server and client | close 1009, link closed |
//! | [`serial`] | COBS + `0x00` delimiter ([`cobs`]) | any tty (`serialport`), non-blocking | dropped until the next delimiter, link survives |
//! | [`shm`] | SPSC byte rings in a sealed memfd | two processes, abstract unix socket rendezvous | refused at `send`; a corrupt ring closes the link |
//! | [`file`](mod@file) | CRC-checked batch files ([`file::BatchWriter`], [`file::check_batch`]) | spool directories, atomic rename | the whole file is rejected, link survives |
//!
//! Adapters never block the shard: every fd is non-blocking, every buffer has a fixed bound,
//! and an error closes the link (the bus's reliability resends what was not acknowledged).
//! Every adapter counts what it drops in shared [`LinkCounters`] and logs it with the peer
//! named, a bounded number of times.
//!
//! [`Redial`] turns a dialing function into an [`ExternalListener`] that reconnects with
//! backoff whenever its link closes; [`fault`] wraps any link with a seeded fault hook.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use tamtam_engine::driver::{ExternalLink, ExternalListener};

pub mod cobs;
pub mod fault;
pub mod file;
pub mod memory;
pub mod serial;
pub mod shm;
pub mod websocket;

/// Bytes of frame header the bus adds to a payload at most (base header + segment extension).
pub const FRAME_OVERHEAD_MAX: u32 = tamtam_engine::core::wire::frame::SEGMENTED_HEADER_LEN as u32;

/// The largest frame a link must carry for a bus whose `payload_len_max` is `payload_len_max`.
pub const fn frame_len_max_for(payload_len_max: u32) -> u32 {
    payload_len_max + FRAME_OVERHEAD_MAX
}

/// Counters of one link, shared (`Arc`) so that tests and applications can read them while
/// the shard owns the link. Every counter only grows. Relaxed ordering throughout: each
/// counter is an independent statistic, read for reporting, never used to synchronise.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Complete frames handed to the bus.
    pub frames_received: AtomicU64,
    /// Bytes of those frames.
    pub bytes_received: AtomicU64,
    /// Frames accepted by `send`.
    pub frames_sent: AtomicU64,
    /// Bytes of those frames (before framing).
    pub bytes_sent: AtomicU64,
    /// Bytes written to the medium (with framing overhead: prefixes, COBS, delimiters,
    /// WebSocket headers, file headers).
    pub wire_bytes_sent: AtomicU64,
    /// Bytes read from the medium.
    pub wire_bytes_received: AtomicU64,
    /// Received frames dropped as malformed (bad COBS, checksum, truncated, garbage).
    pub malformed: AtomicU64,
    /// Frames dropped because they exceed the link's limit (either direction).
    pub oversize: AtomicU64,
    /// Frames refused by `send` because the bounded send buffer was full.
    pub send_full: AtomicU64,
}

/// A plain copy of [`LinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// See [`LinkCounters::frames_received`].
    pub frames_received: u64,
    /// See [`LinkCounters::bytes_received`].
    pub bytes_received: u64,
    /// See [`LinkCounters::frames_sent`].
    pub frames_sent: u64,
    /// See [`LinkCounters::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`LinkCounters::wire_bytes_sent`].
    pub wire_bytes_sent: u64,
    /// See [`LinkCounters::wire_bytes_received`].
    pub wire_bytes_received: u64,
    /// See [`LinkCounters::malformed`].
    pub malformed: u64,
    /// See [`LinkCounters::oversize`].
    pub oversize: u64,
    /// See [`LinkCounters::send_full`].
    pub send_full: u64,
}

impl LinkCounters {
    /// A fresh, shared set of counters.
    pub fn shared() -> Arc<LinkCounters> {
        Arc::new(LinkCounters::default())
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            wire_bytes_sent: get(&self.wire_bytes_sent),
            wire_bytes_received: get(&self.wire_bytes_received),
            malformed: get(&self.malformed),
            oversize: get(&self.oversize),
            send_full: get(&self.send_full),
        }
    }

    /// Frames dropped as malformed or oversized (what [`ExternalLink::dropped`] reports).
    pub fn dropped(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed) + self.oversize.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, frame_len: usize) {
        Self::add(&self.frames_received, 1);
        Self::add(&self.bytes_received, frame_len as u64);
    }

    pub(crate) fn sent(&self, frame_len: usize) {
        Self::add(&self.frames_sent, 1);
        Self::add(&self.bytes_sent, frame_len as u64);
    }

    /// Counts a dropped frame and logs it with the peer named. Logs the first
    /// [`DROP_LOGS_FULL`] drops of a link, then every 1000th, so a hostile peer cannot flood
    /// the log.
    pub(crate) fn drop_frame(&self, kind: DropKind, peer: &str, why: fmt::Arguments<'_>) {
        let counter = match kind {
            DropKind::Malformed => &self.malformed,
            DropKind::Oversize => &self.oversize,
            DropKind::SendFull => &self.send_full,
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if kind != DropKind::SendFull && (n <= DROP_LOGS_FULL || n % 1000 == 0) {
            eprintln!("tamtam transport {peer}: dropped {kind} frame #{n}: {why}");
        }
    }
}

/// Drops of one kind logged individually before logging every 1000th only.
pub const DROP_LOGS_FULL: u64 = 10;

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropKind {
    Malformed,
    Oversize,
    SendFull,
}

impl fmt::Display for DropKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropKind::Malformed => "malformed",
            DropKind::Oversize => "oversized",
            DropKind::SendFull => "unsendable",
        })
    }
}

/// An error that closes a link, naming the peer.
pub(crate) fn closed(kind: io::ErrorKind, peer: &str, why: impl fmt::Display) -> io::Error {
    io::Error::new(kind, format!("{peer}: {why}"))
}

/// A function that opens a new link (it must not block: connects are started, not awaited).
pub type Dialer = Box<dyn FnMut() -> io::Result<Box<dyn ExternalLink>> + Send>;

/// Keeps one outgoing link up: dials at once, and again with exponential backoff (from
/// `backoff_min` to `backoff_max`) whenever the previous link was closed (dropped by the
/// shard after an error) or a dial failed. Add it to a station with
/// `StationBuilder::listener`.
pub struct Redial {
    name: String,
    dial: Dialer,
    alive: Option<Arc<AtomicBool>>,
    next_attempt: Instant,
    backoff: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    failures: u64,
}

impl Redial {
    /// Redials `name` with `dial`, backing off from 20 ms to 1 s.
    pub fn new(
        name: impl Into<String>,
        dial: impl FnMut() -> io::Result<Box<dyn ExternalLink>> + Send + 'static,
    ) -> Redial {
        Redial {
            name: name.into(),
            dial: Box::new(dial),
            alive: None,
            next_attempt: Instant::now(),
            backoff: Duration::from_millis(20),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            failures: 0,
        }
    }

    /// Sets the backoff bounds.
    ///
    /// # Panics
    /// If `min` is zero or above `max` (a configuration bug).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Redial {
        assert!(!min.is_zero());
        assert!(min <= max);
        self.backoff = min;
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }
}

impl ExternalListener for Redial {
    fn describe(&self) -> String {
        format!("redial {}", self.name)
    }

    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>> {
        if let Some(alive) = &self.alive {
            // Acquire pairs with the Release in `Tracked::drop`: once we see the link gone,
            // everything it did before dropping is visible (nothing depends on it, but it
            // keeps the protocol obviously ordered).
            if alive.load(Ordering::Acquire) {
                return Ok(None);
            }
            self.alive = None;
            self.next_attempt = Instant::now() + self.backoff;
        }
        let now = Instant::now();
        if now < self.next_attempt {
            return Ok(None);
        }
        match (self.dial)() {
            Ok(link) => {
                let alive = Arc::new(AtomicBool::new(true));
                self.alive = Some(alive.clone());
                self.backoff = self.backoff_min;
                self.failures = 0;
                Ok(Some(Box::new(Tracked { link, alive })))
            }
            Err(e) => {
                self.failures += 1;
                if self.failures <= DROP_LOGS_FULL || self.failures % 100 == 0 {
                    eprintln!(
                        "tamtam transport {}: dial failed (attempt {}): {e}",
                        self.name, self.failures
                    );
                }
                self.next_attempt = now + self.backoff;
                self.backoff = (self.backoff * 2).min(self.backoff_max);
                Ok(None)
            }
        }
    }
}

/// A dialed link that tells its [`Redial`] when it is dropped.
struct Tracked {
    link: Box<dyn ExternalLink>,
    alive: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Release: see the Acquire in `Redial::accept`.
        self.alive.store(false, Ordering::Release);
    }
}

impl ExternalLink for Tracked {
    fn describe(&self) -> String {
        self.link.describe()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        self.link.poll_recv(frames_max, on_frame)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        self.link.send(frame)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.link.flush()
    }

    fn dropped(&self) -> u64 {
        self.link.dropped()
    }
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process on the machine (the shared
/// memory heartbeats compare stamps written by two processes).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dead;
    impl ExternalLink for Dead {
        fn describe(&self) -> String {
            "dead".into()
        }
        fn poll_recv(&mut self, _: usize, _: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
            Ok(false)
        }
        fn send(&mut self, _: &[u8]) -> io::Result<bool> {
            Ok(true)
        }
    }

    #[test]
    fn redial_dials_again_only_after_the_link_is_dropped() {
        let dials = Arc::new(AtomicU64::new(0));
        let counted = dials.clone();
        let mut redial = Redial::new("test", move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(Dead) as Box<dyn ExternalLink>)
        })
        .backoff(Duration::from_millis(1), Duration::from_millis(1));
        let link = redial.accept().unwrap().expect("first dial is immediate");
        for _ in 0..10 {
            assert!(redial.accept().unwrap().is_none());
        }
        assert_eq!(dials.load(Ordering::Relaxed), 1);
        drop(link);
        let deadline = Instant::now() + Duration::from_secs(5);
        let again = loop {
            if let Some(link) = redial.accept().unwrap() {
                break link;
            }
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        };
        assert_eq!(dials.load(Ordering::Relaxed), 2);
        drop(again);
    }

    #[test]
    fn failed_dials_back_off() {
        let mut redial = Redial::new("nowhere", || Err(io::Error::other("refused")))
            .backoff(Duration::from_millis(50), Duration::from_secs(1));
        assert!(redial.accept().unwrap().is_none());
        assert_eq!(redial.failures, 1);
        // Within the backoff no new attempt is made.
        assert!(redial.accept().unwrap().is_none());
        assert_eq!(redial.failures, 1);
    }
}
