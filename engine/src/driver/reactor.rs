//! The I/O backend interface of a shard, and what a backend reports.
//!
//! A [`Reactor`] owns sockets and files and every buffer the kernel may touch until the
//! operation completes. The shard loop submits work (send, file write…) during its cycle, then
//! calls [`Reactor::poll`] once per cycle, which submits everything in one batch, waits at most
//! the given timeout, and reports completions through a callback. Two backends implement it:
//! io_uring ([`super::uring`]) and epoll ([`super::poll`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

/// Identifies a socket or file inside a reactor.
pub type Token = u64;

/// A completed operation or an arrival.
#[derive(Debug)]
pub enum IoEvent<'a> {
    /// A listener accepted a stream.
    Accepted {
        /// The listener.
        listener: Token,
        /// The new stream.
        stream: Token,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// An outgoing connection is established.
    Connected {
        /// The stream.
        stream: Token,
    },
    /// Bytes arrived on a stream (borrowed from the reactor's receive buffer).
    Data {
        /// The stream.
        stream: Token,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A datagram arrived.
    Datagram {
        /// The socket.
        socket: Token,
        /// The sender.
        from: SocketAddr,
        /// The datagram.
        bytes: &'a [u8],
    },
    /// A stream closed (by the peer, or after an error; the token is gone).
    Closed {
        /// The stream.
        stream: Token,
        /// The error, if it failed.
        error: Option<io::Error>,
    },
    /// A file operation finished: `result` is bytes transferred, `buffer` is handed back.
    File {
        /// The caller's tag.
        tag: u64,
        /// Bytes transferred or the error.
        result: io::Result<usize>,
        /// The buffer of a read or write, returned for reuse.
        buffer: Vec<u8>,
    },
}

/// Wakes a reactor parked in [`Reactor::poll`] from another thread (an eventfd doorbell).
#[derive(Debug, Clone)]
pub struct Waker {
    fd: Arc<EventFd>,
}

/// An owned eventfd.
#[derive(Debug)]
pub struct EventFd(RawFd);

impl EventFd {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall with valid flags; the fd is owned by the returned value.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(EventFd(fd))
    }

    /// The raw descriptor (to register with epoll or io_uring).
    pub fn raw(&self) -> RawFd {
        self.0
    }

    /// Consumes pending wake-ups.
    pub fn drain(&self) {
        let mut value = 0u64;
        // SAFETY: reads 8 bytes into a valid u64 from an fd we own; errors (EAGAIN) are fine.
        unsafe {
            libc::read(self.0, (&mut value as *mut u64).cast(), 8);
        }
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this value and closed exactly once.
        unsafe {
            libc::close(self.0);
        }
    }
}

impl Waker {
    /// A waker over `fd`.
    pub fn new(fd: Arc<EventFd>) -> Waker {
        Waker { fd }
    }

    /// Wakes the reactor (idempotent, never blocks).
    pub fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64 to an fd kept alive by the Arc. EAGAIN (the
        // counter is saturated) means a wake-up is pending already.
        unsafe {
            libc::write(self.fd.raw(), (&one as *const u64).cast(), 8);
        }
    }
}

/// An I/O backend for one shard.
pub trait Reactor: Send {
    /// A short name ("io_uring" or "epoll").
    fn name(&self) -> &'static str;

    /// Listens on a TCP address; returns the listener and the bound address.
    fn listen_tcp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)>;

    /// Starts connecting to a TCP address; [`IoEvent::Connected`] or [`IoEvent::Closed`]
    /// follows.
    fn connect_tcp(&mut self, addr: SocketAddr) -> io::Result<Token>;

    /// Binds a UDP socket; returns it and the bound address.
    fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)>;

    /// Queues `parts` to be written, in order, to a stream. The reactor owns the buffers
    /// until written; they come back through [`Reactor::reclaim`].
    fn send_stream(&mut self, stream: Token, parts: Vec<u8>) -> io::Result<()>;

    /// Queues one datagram.
    fn send_datagram(&mut self, socket: Token, to: SocketAddr, datagram: Vec<u8>)
    -> io::Result<()>;

    /// Bytes queued on a stream and not yet written (for backpressure).
    fn queued_bytes(&self, stream: Token) -> usize;

    /// Closes a socket.
    fn close(&mut self, token: Token);

    /// Writes `buffer` at `offset` of file `fd`; [`IoEvent::File`] with `tag` follows.
    fn file_write(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64);

    /// Writes `bytes` at `offset` of file `fd`, a descriptor opened with `O_DIRECT`, from a
    /// copy in one of the reactor's aligned buffers ([`super::direct`]); [`IoEvent::File`]
    /// with `tag` and an empty buffer follows only when this returns
    /// [`DirectWrite::Submitted`]; otherwise nothing was done.
    fn file_write_direct(&mut self, fd: RawFd, offset: u64, bytes: &[u8], tag: u64) -> DirectWrite;

    /// The reactor's aligned buffers for direct writes.
    fn direct_buffers(&self) -> DirectBuffers;

    /// Reads `buffer.len()` bytes at `offset` of file `fd`; [`IoEvent::File`] follows.
    fn file_read(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64);

    /// Makes file `fd`'s data durable (fdatasync); [`IoEvent::File`] follows.
    fn file_sync(&mut self, fd: RawFd, tag: u64);

    /// Submits everything queued, waits at most `timeout` (None: do not wait), and reports
    /// every completion through `on_event`. Returns the number of events.
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> io::Result<usize>;

    /// A waker for this reactor.
    fn waker(&self) -> Waker;

    /// Watches `fd` (owned by the caller, open until [`Reactor::unwatch`]) for readability,
    /// edge-triggered: each time it signals readable (an eventfd written, bytes arriving), a
    /// parked [`Reactor::poll`] returns. Nothing is reported through `on_event`: the caller
    /// looks at the source itself after every poll. An external link's readiness descriptor
    /// is watched this way (see [`super::link::ExternalLink::readiness_fd`]).
    fn watch(&mut self, fd: RawFd) -> io::Result<Token>;

    /// Stops watching (before the caller closes the descriptor).
    fn unwatch(&mut self, watch: Token);

    /// Hands back written buffers for reuse.
    fn reclaim(&mut self, into: &mut Vec<Vec<u8>>);
}

/// What [`Reactor::file_write_direct`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectWrite {
    /// Copied into an aligned buffer and queued; [`IoEvent::File`] follows.
    Submitted,
    /// Every aligned buffer is in flight: try again after a completion.
    Busy,
    /// Not possible: `offset` or the length is not a multiple of
    /// [`super::direct::DIRECT_ALIGN`], `bytes` is longer than a pooled buffer, or the
    /// reactor is shutting down. Write through [`Reactor::file_write`] instead.
    Unsuitable,
}

/// A reactor's aligned buffers for direct writes ([`Reactor::direct_buffers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBuffers {
    /// Registered with the kernel (io_uring fixed buffers: no page pinning per write).
    pub registered: bool,
    /// Bytes in the pool (0: allocated on demand, as the epoll backend does).
    pub bytes: usize,
    /// Why registration failed, when it did (with the `RLIMIT_MEMLOCK` in force).
    pub error: Option<String>,
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when the kernel allows it, else epoll. `TAMTAM_IO=poll` forces epoll,
    /// `TAMTAM_IO=uring` forces io_uring.
    #[default]
    Auto,
    /// io_uring only.
    Uring,
    /// epoll only.
    Poll,
}

impl Backend {
    /// The backend named by `TAMTAM_IO` (`poll`, `uring`), or `self`.
    pub fn from_env(self) -> Backend {
        match std::env::var("TAMTAM_IO").as_deref() {
            Ok("poll") | Ok("epoll") => Backend::Poll,
            Ok("uring") | Ok("io_uring") => Backend::Uring,
            _ => self,
        }
    }
}

/// Builds a reactor for `backend` with default sizes; see [`open_with`].
pub fn open(backend: Backend) -> io::Result<Box<dyn Reactor>> {
    open_with(backend, super::uring::UringConfig::default())
}

/// Builds a reactor for `backend` (after `TAMTAM_IO`, see [`Backend::from_env`]); an io_uring
/// reactor gets the sizes in `uring`.
///
/// `Auto` tries io_uring and falls back to epoll on any error: io_uring blocked (EPERM under a
/// seccomp filter or `kernel.io_uring_disabled`), absent (ENOSYS on old kernels), or lacking a
/// feature the io_uring backend needs. `Uring` reports that error instead.
pub fn open_with(
    backend: Backend,
    uring: super::uring::UringConfig,
) -> io::Result<Box<dyn Reactor>> {
    match backend.from_env() {
        Backend::Poll => Ok(Box::new(super::poll::PollReactor::new()?)),
        Backend::Uring => Ok(Box::new(super::uring::UringReactor::with_config(uring)?)),
        Backend::Auto => match super::uring::UringReactor::with_config(uring) {
            Ok(reactor) => Ok(Box::new(reactor)),
            Err(_) => Ok(Box::new(super::poll::PollReactor::new()?)),
        },
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use std::time::Instant;

    /// Far longer than any wake-up takes: a poll that lasts half of it was not woken.
    const WAIT: Duration = Duration::from_secs(10);

    fn backends() -> Vec<Box<dyn Reactor>> {
        let mut reactors: Vec<Box<dyn Reactor>> = vec![Box::new(
            super::super::poll::PollReactor::new().expect("epoll"),
        )];
        match super::super::uring::UringReactor::new() {
            Ok(reactor) => reactors.push(Box::new(reactor)),
            Err(e) => eprintln!("io_uring unavailable here, epoll only: {e}"),
        }
        reactors
    }

    /// Goal: direct writes land at their offsets from the reactor's aligned pool, unaligned
    /// ones and those beyond the pool are refused without side effects, and every accepted
    /// one completes (the pool's buffers come back). Method: a 64 KiB-segment pattern written
    /// through an `O_DIRECT` descriptor on each backend, read back through the page cache.
    #[test]
    fn direct_writes_land_and_refusals_do_nothing() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        const SEGMENT: usize = 64 * 1024;
        for mut reactor in backends() {
            let name = reactor.name();
            let path =
                std::env::temp_dir().join(format!("tamtam-direct-{name}-{}", std::process::id()));
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) => {
                    eprintln!("O_DIRECT unsupported in {:?} ({e}): nothing to test", path);
                    return;
                }
            };
            let fd = file.as_raw_fd();
            let info = reactor.direct_buffers();
            if name == "io_uring" {
                assert!(
                    info.registered || info.error.is_some(),
                    "{name}: registered, or says why not: {info:?}"
                );
            }
            let unsuitable = DirectWrite::Unsuitable;
            let offset = reactor.file_write_direct(fd, 100, &[1u8; SEGMENT], 99);
            assert_eq!(offset, unsuitable, "{name}: offset");
            let length = reactor.file_write_direct(fd, 0, &[1u8; 1000], 99);
            assert_eq!(length, unsuitable, "{name}: length");
            let segment = |i: usize| vec![i as u8 + 1; SEGMENT];
            // Submit until the pool is exhausted (bounded: at most 1 MiB of 64 KiB buffers).
            let mut accepted = 0usize;
            loop {
                let offset = (accepted * SEGMENT) as u64;
                match reactor.file_write_direct(fd, offset, &segment(accepted), accepted as u64) {
                    DirectWrite::Submitted if accepted < 1024 => accepted += 1,
                    outcome => {
                        assert_eq!(outcome, DirectWrite::Busy, "{name}: the pool runs out");
                        break;
                    }
                }
            }
            assert!((2..1024).contains(&accepted), "{name}: pool of {accepted}");
            let mut done = std::collections::BTreeMap::new();
            let deadline = Instant::now() + WAIT;
            while done.len() < accepted && Instant::now() < deadline {
                reactor
                    .poll(Some(Duration::from_millis(10)), &mut |event| {
                        if let IoEvent::File { tag, result, .. } = event {
                            done.insert(tag, result.map_err(|e| e.kind()));
                        }
                    })
                    .expect("poll");
            }
            assert_eq!(
                done.len(),
                accepted,
                "{name}: every accepted write completes"
            );
            assert!(done.values().all(|r| *r == Ok(SEGMENT)), "{name}: {done:?}");
            assert!(!done.contains_key(&99), "{name}: refusals report nothing");
            // The buffers are back: as many writes are accepted again.
            let back = reactor.file_write_direct(fd, 0, &segment(0), 0);
            assert_eq!(back, DirectWrite::Submitted, "{name}: buffers back");
            let deadline = Instant::now() + WAIT;
            let mut again = false;
            while !again && Instant::now() < deadline {
                reactor
                    .poll(Some(Duration::from_millis(10)), &mut |event| {
                        again |= matches!(event, IoEvent::File { tag: 0, .. });
                    })
                    .expect("poll");
            }
            assert!(again, "{name}: the rewrite completes");
            let bytes = std::fs::read(&path).expect("read back");
            assert_eq!(bytes.len(), accepted * SEGMENT, "{name}");
            for (i, chunk) in bytes.chunks(SEGMENT).enumerate() {
                assert!(
                    chunk.iter().all(|&b| b == i as u8 + 1),
                    "{name}: segment {i}"
                );
            }
            drop(file);
            let _ = std::fs::remove_file(&path);
        }
    }

    /// Goal: a watched descriptor ends a park when another thread signals it, every time,
    /// even though nobody drains it (edge-triggered), and after an unwatch and a new watch.
    /// Method: a parked poll with a long timeout per signal, on each backend.
    #[test]
    fn a_watched_eventfd_ends_a_park_each_time_it_is_written() {
        for mut reactor in backends() {
            let name = reactor.name();
            let bell = Arc::new(EventFd::new().expect("eventfd"));
            let mut watch = reactor.watch(bell.raw()).expect("watch");
            // The first poll submits the watch (io_uring) before anything is written.
            reactor.poll(None, &mut |_| {}).expect("poll");
            for round in 0..4 {
                if round == 2 {
                    reactor.unwatch(watch);
                    reactor.poll(None, &mut |_| {}).expect("poll");
                    watch = reactor.watch(bell.raw()).expect("watch again");
                    reactor.poll(None, &mut |_| {}).expect("poll");
                }
                let ringer = Waker::new(bell.clone());
                let thread = std::thread::spawn(move || ringer.wake());
                let start = Instant::now();
                // Bounded: a missed signal shows as a poll that lasts WAIT.
                reactor.poll(Some(WAIT), &mut |_| {}).expect("poll");
                let took = start.elapsed();
                thread.join().expect("ringer");
                assert!(
                    took < WAIT / 2,
                    "{name}: round {round}: not woken ({took:?})"
                );
            }
            reactor.unwatch(watch);
        }
    }
}
