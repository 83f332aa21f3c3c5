//! Shared memory links between two processes on one machine: two SPSC byte rings in a sealed
//! `memfd`, zero-copy for the reader.
//!
//! **Rendezvous.** A listener binds an abstract unix socket (`\0tamtam-shm/<name>`; Linux
//! only, nothing in the file system). A client creates a `memfd`, sizes it, writes the
//! header, seals its size (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, so the peer can never
//! shrink it under our mapping and make us fault), and passes the fd over the socket
//! (`SCM_RIGHTS`). The listener validates everything (seals, size, header) before use, and
//! copies every bound into its own memory: later writes to the header by the peer change
//! nothing. The socket stays open for the life of the link: when a peer process dies (even
//! by `kill -9`) the kernel closes its end, and the survivor sees end-of-file at once.
//! The memory goes away when both processes unmap it, so **nothing stale is ever left
//! behind**: no file, no socket path, whoever dies first and however.
//!
//! **Dead-man.** Each side also stamps `CLOCK_MONOTONIC` into its slot of the header at
//! least every [`HEARTBEAT_EVERY`]; a peer whose stamp is older than `dead_after` is hung
//! (alive but not running its cycle) and the link closes.
//!
//! **Layout** (little-endian host; every offset 64-byte aligned; rings are powers of two):
//!
//! ```text
//! 0      header page   magic "TTSHMv1\0" u64 | version u32 | ring_bytes u32 | frame_len_max u32
//!                      @64  side 0 (client): pid u32 | closed u32 | heartbeat_ns u64 | features u32
//!                      @128 side 1 (server): pid u32 | closed u32 | heartbeat_ns u64 | features u32
//! 4096   ring 0 control (client → server): head u64 @+0 | tail u64 @+128 | waiting u32 @+256
//!                                          | doorbell u32 @+384
//! 8192   ring 0 data (ring_bytes)
//! ...    ring 1 control (server → client), ring 1 data
//! ```
//!
//! A ring record is `len u32 | kind u32 | frame (len bytes) | padding to 8`. `head` and
//! `tail` count bytes since the start and only grow; a record never wraps: when it would,
//! the writer fills the end with a padding record (kind 1) and starts again at 0. The writer
//! publishes `head` with Release after writing records (once per cycle: batching), the
//! reader loads it with Acquire, hands each frame to the bus **in place**, and publishes
//! `tail` with Release only after the frames were handled, so a slice lent to the bus is
//! never overwritten while in use. The writer's only shared read is `tail` (Acquire), and
//! only when its cached copy shows no room. A record the reader cannot account for (length
//! outside `48..=frame_len_max`, unknown kind, crossing the end, beyond `head`) means the
//! ring is corrupt: the link closes.
//!
//! **Waiting.** A station's shard sleeps in its reactor (epoll or io_uring), which cannot wait
//! on a futex, so each ring has an **eventfd doorbell**: the client creates both (one per
//! ring) and passes them with the memfd; the reader of a ring watches its doorbell
//! ([`ExternalLink::readiness_fd`]). Before the shard parks, the reader raises the ring's
//! `doorbell` word ([`ExternalLink::before_park`]); the writer, after publishing, takes the
//! word back (swap to 0) and, if it was raised, writes the eventfd: one syscall per park of
//! the peer, none per message while the reader is busy. The reader never reads the eventfd:
//! the reactor watches it edge-triggered, so a leftover count wakes nothing. Each side sets
//! bit 0 of its `features` word once it rings doorbells; a reader parks on its doorbell only
//! when the peer's bit is set (else the shard polls the link every millisecond). An embedding
//! without a reactor uses [`ShmLink::wait_readable`]: spin, then a futex on the ring's
//! `waiting` word (an event count: the writer wakes the futex after publishing if the reader
//! announced that it sleeps). SeqCst fences on both sides of either scheme prevent a lost
//! wake-up.
//!
//! **Trust.** The peer is a process of the same user on the same machine. A broken peer
//! cannot make this side read or write outside the mapping, fault, block, or allocate, and
//! corrupt records close the link. A frame lent in place could still be modified by a
//! *malicious* peer while the bus reads it (the bus's CRC check may then pass on bytes that
//! change afterwards); shared memory is not a boundary against hostile code.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use tamtam_engine::core::wire::frame::BASE_HEADER_LEN;

use tamtam_engine::driver::Readiness;

use crate::{DropKind, ExternalLink, ExternalListener, LinkCounters, closed, monotonic_ns};

/// The header's magic.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TTSHMv1\0");
/// The layout version.
pub const VERSION: u32 = 1;
/// Bytes of the header page.
pub const HEADER_BYTES: usize = 4096;
/// Bytes of one ring's control page.
pub const CONTROL_BYTES: usize = 4096;
/// Bytes of a record header.
pub const RECORD_HEADER: usize = 8;
/// Smallest ring.
pub const RING_BYTES_MIN: u32 = 4096;
/// Largest ring accepted from a peer.
pub const RING_BYTES_MAX: u32 = 1 << 30;
/// Heartbeat stamps are written at least this often (while the link is polled).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(10);
/// The socket is checked for a dead peer this often.
const SOCKET_CHECK_EVERY: Duration = Duration::from_millis(5);
/// Record kind: a frame.
const KIND_FRAME: u32 = 0;
/// Record kind: padding up to the end of the ring.
const KIND_PAD: u32 = 1;

const SIDE_OFFSET: [usize; 2] = [64, 128];
const PID: usize = 0;
const CLOSED: usize = 4;
const HEARTBEAT: usize = 8;
const FEATURES: usize = 16;
/// Bit of `features`: this side rings the peer's doorbell after publishing.
const FEATURE_DOORBELL: u32 = 1;
const HEAD: usize = 0;
const TAIL: usize = 128;
const WAITING: usize = 256;
const DOORBELL: usize = 384;

const _: () = assert!(RING_BYTES_MIN.is_power_of_two());
const _: () = assert!(WAITING + 4 <= DOORBELL);
const _: () = assert!(DOORBELL + 4 <= CONTROL_BYTES);
const _: () = assert!(SIDE_OFFSET[0] + FEATURES + 4 <= SIDE_OFFSET[1]);
const _: () = assert!(SIDE_OFFSET[1] + FEATURES + 4 <= HEADER_BYTES);

/// Bytes a record of a `len`-byte frame occupies.
pub const fn record_len(len: usize) -> usize {
    RECORD_HEADER + len.div_ceil(8) * 8
}

/// Bytes of a segment with two rings of `ring_bytes`.
pub const fn segment_len(ring_bytes: u32) -> usize {
    HEADER_BYTES + 2 * (CONTROL_BYTES + ring_bytes as usize)
}

/// Settings of shared memory links.
#[derive(Debug, Clone)]
pub struct ShmConfig {
    /// Bytes of each direction's ring (a power of two; the client chooses).
    pub ring_bytes: u32,
    /// Largest frame carried.
    pub frame_len_max: u32,
    /// A peer whose heartbeat is older than this is hung; the link closes.
    pub dead_after: Duration,
    /// A client whose server has not attached within this time gives up.
    pub attach_timeout: Duration,
    /// Ring the peer's eventfd doorbell when it is parked, and offer ours (module docs:
    /// waiting). Without, a station's shard polls the link every millisecond while idle
    /// (only for comparisons: `tamtam bench`'s `shm` scenario).
    pub doorbells: bool,
}

impl Default for ShmConfig {
    fn default() -> Self {
        ShmConfig {
            ring_bytes: 4 << 20,
            frame_len_max: crate::frame_len_max_for(
                tamtam_engine::core::wire::frame::PAYLOAD_LEN_MAX_DEFAULT,
            ),
            dead_after: Duration::from_secs(2),
            attach_timeout: Duration::from_secs(5),
            doorbells: true,
        }
    }
}

impl ShmConfig {
    fn check(&self) -> io::Result<()> {
        let ok = self.ring_bytes.is_power_of_two()
            && (RING_BYTES_MIN..=RING_BYTES_MAX).contains(&self.ring_bytes)
            && self.frame_len_max as usize >= BASE_HEADER_LEN
            && record_len(self.frame_len_max as usize) <= self.ring_bytes as usize;
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "shm config: ring_bytes {} must be a power of two in {RING_BYTES_MIN}..={RING_BYTES_MAX} \
                     holding one record of frame_len_max {}",
                    self.ring_bytes, self.frame_len_max
                ),
            ))
        }
    }
}

/// The mapping and the bounds copied out of it at attach time.
struct Segment {
    /// Owns the mapping (unmapped on drop); never dereferenced after `new`.
    _map: MmapMut,
    /// The mapping's first byte, taken once from a unique borrow: every later access, in
    /// this process, goes through this pointer (atomics, copies, lent frames), never through
    /// a reference to the whole mapping, which the peer process writes concurrently.
    base: *mut u8,
    len: usize,
    ring_bytes: usize,
}

// SAFETY: the segment owns its mapping; `base` only aliases it. The link that owns the
// segment is used by one thread at a time; the memory is shared with the peer process by
// design and every shared word is accessed atomically (module docs).
unsafe impl Send for Segment {}

impl Segment {
    fn new(mut map: MmapMut, ring_bytes: usize) -> Segment {
        let base = map.as_mut_ptr();
        let len = map.len();
        assert!(segment_len(ring_bytes as u32) <= len);
        Segment {
            _map: map,
            base,
            len,
            ring_bytes,
        }
    }

    fn base(&self) -> *mut u8 {
        self.base
    }

    fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned (the map is page-aligned); the memory lives as long
        // as `self.map`; every access to this word, in both processes, is atomic.
        unsafe { AtomicU64::from_ptr(self.base().add(offset).cast()) }
    }

    fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len);
        // SAFETY: as in `atomic_u64`, with 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.base().add(offset).cast()) }
    }

    fn control(&self, ring: usize) -> usize {
        HEADER_BYTES + ring * (CONTROL_BYTES + self.ring_bytes)
    }

    fn data(&self, ring: usize) -> usize {
        self.control(ring) + CONTROL_BYTES
    }

    fn side(&self, side: usize, field: usize) -> usize {
        SIDE_OFFSET[side] + field
    }

    /// A ring's data area.
    fn ring_memory(&self, ring: usize) -> Mapped<'_> {
        let offset = self.data(ring);
        assert!(offset + self.ring_bytes <= self.len);
        Mapped {
            // SAFETY: in bounds of the mapping (asserted).
            base: unsafe { self.base().add(offset) },
            len: self.ring_bytes,
            _segment: std::marker::PhantomData,
        }
    }
}

/// One end of a shared memory link.
pub struct ShmLink {
    name: String,
    segment: Segment,
    /// 0: client (writes ring 0), 1: server (writes ring 1).
    side: usize,
    socket: UnixStream,
    /// Largest frame sent to the peer.
    frame_len_max_out: usize,
    dead_after_ns: u64,
    writer: ring::RingWriter,
    reader: ring::RingReader,
    /// The head last published.
    published: u64,
    last_beat_ns: u64,
    last_socket_check: Instant,
    attach_deadline: Option<Instant>,
    peer_gone: Option<String>,
    counters: Arc<LinkCounters>,
    /// The eventfd the peer writes when it publishes while we are parked (ours to watch).
    bell_in: Option<OwnedFd>,
    /// The eventfd we write when we publish while the peer is parked.
    bell_out: Option<OwnedFd>,
    /// We raised the incoming ring's `doorbell` word and have not lowered it since.
    armed: bool,
}

impl ShmLink {
    fn new(
        name: String,
        segment: Segment,
        side: usize,
        socket: UnixStream,
        config: &ShmConfig,
        frame_len_max_in: u32,
        bells: Option<(OwnedFd, OwnedFd)>,
    ) -> ShmLink {
        let now = Instant::now();
        let ring_bytes = segment.ring_bytes;
        let mut link = ShmLink {
            name,
            segment,
            side,
            socket,
            frame_len_max_out: config.frame_len_max as usize,
            dead_after_ns: config.dead_after.as_nanos() as u64,
            writer: ring::RingWriter::new(ring_bytes),
            reader: ring::RingReader::new(ring_bytes, frame_len_max_in as usize),
            published: 0,
            last_beat_ns: 0,
            last_socket_check: now,
            attach_deadline: (side == 0).then(|| now + config.attach_timeout),
            peer_gone: None,
            counters: LinkCounters::shared(),
            armed: false,
            bell_in: None,
            bell_out: None,
        };
        let s = &link.segment;
        s.atomic_u32(s.side(side, PID))
            .store(std::process::id(), Ordering::Relaxed);
        if let Some((bell_in, bell_out)) = bells {
            // Relaxed: the peer only needs to see the bit eventually; until it does, it polls.
            s.atomic_u32(s.side(side, FEATURES))
                .store(FEATURE_DOORBELL, Ordering::Relaxed);
            link.bell_in = Some(bell_in);
            link.bell_out = Some(bell_out);
        }
        link.beat(monotonic_ns());
        link
    }

    /// Connects to the listener named `name` (see [`ShmListener::bind`]); returns at once.
    pub fn connect(name: &str, config: &ShmConfig) -> io::Result<ShmLink> {
        config.check()?;
        let label = format!("shm {name}");
        let socket = unix_connect(&socket_name(name)).map_err(|e| closed(e.kind(), &label, e))?;
        let len = segment_len(config.ring_bytes);
        let memfd = create_memfd(len).map_err(|e| closed(e.kind(), &label, e))?;
        // SAFETY: a fresh memfd of `len` bytes that only this process and the peer map; its
        // size is sealed below before the peer gets it.
        let mut map = unsafe { MmapMut::map_mut(&std::fs::File::from(memfd.try_clone()?))? };
        map[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        map[8..12].copy_from_slice(&VERSION.to_le_bytes());
        map[12..16].copy_from_slice(&config.ring_bytes.to_le_bytes());
        map[16..20].copy_from_slice(&config.frame_len_max.to_le_bytes());
        seal(&memfd).map_err(|e| closed(e.kind(), &label, e))?;
        let segment = Segment::new(map, config.ring_bytes as usize);
        // The doorbells of ring 0 (read by the server) and ring 1 (read by us).
        let bells = if config.doorbells {
            let bell_server = create_eventfd().map_err(|e| closed(e.kind(), &label, e))?;
            let bell_client = create_eventfd().map_err(|e| closed(e.kind(), &label, e))?;
            Some((bell_client, bell_server))
        } else {
            None
        };
        let mut fds = vec![memfd.as_raw_fd()];
        if let Some((bell_client, bell_server)) = &bells {
            fds.extend([bell_server.as_raw_fd(), bell_client.as_raw_fd()]);
        }
        let link = ShmLink::new(
            label.clone(),
            segment,
            0,
            socket,
            config,
            config.frame_len_max,
            bells,
        );
        send_fds(&link.socket, &fds).map_err(|e| closed(e.kind(), &label, e))?;
        Ok(link)
    }

    /// This link's counters.
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    fn beat(&self, now_ns: u64) {
        let s = &self.segment;
        // Relaxed: a liveness stamp, read for its value only.
        s.atomic_u64(s.side(self.side, HEARTBEAT))
            .store(now_ns, Ordering::Relaxed);
    }

    fn ring_out(&self) -> usize {
        self.side
    }

    fn ring_in(&self) -> usize {
        1 - self.side
    }

    /// Writes one record without publishing it; false if the ring has no room.
    pub fn write(&mut self, frame: &[u8]) -> bool {
        debug_assert!(frame.len() <= self.frame_len_max_out);
        let ring = self.ring_out();
        let mut memory = self.segment.ring_memory(ring);
        let tail = self.segment.atomic_u64(self.segment.control(ring) + TAIL);
        // Acquire pairs with the reader's Release of `tail`: its reads of the records before
        // `tail` are done before we overwrite them.
        self.writer
            .write(&mut memory, frame, || tail.load(Ordering::Acquire))
    }

    /// Makes the records written so far visible to the reader, and wakes it if it sleeps.
    pub fn publish(&mut self) {
        let head = self.writer.head();
        if head == self.published {
            return;
        }
        self.published = head;
        let control = self.segment.control(self.ring_out());
        // Release: the records' bytes are visible before the new head.
        self.segment
            .atomic_u64(control + HEAD)
            .store(head, Ordering::Release);
        // SeqCst fence between the head store and the `waiting` load; the reader has the
        // mirror fence between its `waiting` store and its head load (Dekker): at least one
        // of the two sees the other's write, so a sleeping reader is always woken.
        fence(Ordering::SeqCst);
        let waiting = self.segment.atomic_u32(control + WAITING);
        if waiting.load(Ordering::Relaxed) != 0 {
            futex_wake(waiting);
        }
        if let Some(bell) = &self.bell_out {
            let doorbell = self.segment.atomic_u32(control + DOORBELL);
            // The swap claims the ring: one write per park of the reader, however many
            // publishes follow. Relaxed: the fence above orders it after the head store.
            if doorbell.load(Ordering::Relaxed) != 0 && doorbell.swap(0, Ordering::Relaxed) != 0 {
                eventfd_write(bell);
            }
        }
    }

    /// Lowers the incoming ring's doorbell word if we raised it (the peer need not ring
    /// while we are running).
    fn disarm(&mut self) {
        if self.armed {
            self.armed = false;
            let control = self.segment.control(self.ring_in());
            self.segment
                .atomic_u32(control + DOORBELL)
                .store(0, Ordering::Relaxed);
        }
    }

    /// Whether the peer rings our doorbell (its `features` bit is set).
    fn peer_rings(&self) -> bool {
        let s = &self.segment;
        s.atomic_u32(s.side(1 - self.side, FEATURES))
            .load(Ordering::Relaxed)
            & FEATURE_DOORBELL
            != 0
    }

    /// Writes `bytes` into the outgoing ring as they are, at the head, and publishes them, as
    /// a broken peer would (bad-input tests). False if they do not fit before the ring's end
    /// or the ring has no room.
    #[doc(hidden)]
    pub fn inject_raw(&mut self, bytes: &[u8]) -> bool {
        let ring = self.ring_out();
        let mut memory = self.segment.ring_memory(ring);
        let tail = self.segment.atomic_u64(self.segment.control(ring) + TAIL);
        let ok = self
            .writer
            .write_raw(&mut memory, bytes, || tail.load(Ordering::Acquire));
        self.publish();
        ok
    }

    /// Writes and publishes one frame; false if the ring has no room.
    pub fn send_now(&mut self, frame: &[u8]) -> bool {
        let ok = self.write(frame);
        self.publish();
        ok
    }

    /// Whether a record is waiting to be read.
    pub fn readable(&self) -> bool {
        let control = self.segment.control(self.ring_in());
        self.segment
            .atomic_u64(control + HEAD)
            .load(Ordering::Acquire)
            != self.reader.tail()
    }

    /// Waits until a record is readable or `timeout` passes: spins briefly, then sleeps on
    /// the ring's futex. Returns whether a record is readable.
    pub fn wait_readable(&self, timeout: Duration) -> bool {
        for _ in 0..2000 {
            if self.readable() {
                return true;
            }
            std::hint::spin_loop();
        }
        let control = self.segment.control(self.ring_in());
        let waiting = self.segment.atomic_u32(control + WAITING);
        let deadline = Instant::now() + timeout;
        loop {
            waiting.store(1, Ordering::Relaxed);
            // See `publish`: the mirror of its fence.
            fence(Ordering::SeqCst);
            if self.readable() {
                waiting.store(0, Ordering::Relaxed);
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                waiting.store(0, Ordering::Relaxed);
                return false;
            }
            futex_wait(waiting, 1, left.min(Duration::from_millis(100)));
            waiting.store(0, Ordering::Relaxed);
            if self.readable() {
                return true;
            }
        }
    }

    /// Hands up to `frames_max` frames to `on_frame`, in place; returns how many. An error
    /// means the ring is corrupt.
    pub fn read(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<usize> {
        let ring = self.ring_in();
        let control = self.segment.control(ring);
        let memory = self.segment.ring_memory(ring);
        let head = self.segment.atomic_u64(control + HEAD);
        let before = self.reader.tail();
        let (mut frames, mut bytes) = (0u64, 0u64);
        // Acquire pairs with the writer's Release: the records before `head` are visible.
        let result = self.reader.read(
            &memory,
            || head.load(Ordering::Acquire),
            frames_max,
            &mut |frame| {
                frames += 1;
                bytes += frame.len() as u64;
                on_frame(frame);
            },
        );
        let tail = self.reader.tail();
        if tail != before {
            // Counted once per batch: shared atomics are not free at millions per second.
            LinkCounters::add(&self.counters.frames_received, frames);
            LinkCounters::add(&self.counters.bytes_received, bytes);
            LinkCounters::add(&self.counters.wire_bytes_received, tail - before);
            // Release: our reads of the records (and the bus's use of the frames lent in
            // place) are done before the writer may reuse them.
            self.segment
                .atomic_u64(control + TAIL)
                .store(tail, Ordering::Release);
        }
        result.map_err(|error| self.corrupt(format_args!("{error}")))
    }

    fn corrupt(&self, why: std::fmt::Arguments<'_>) -> io::Error {
        self.counters.drop_frame(
            DropKind::Malformed,
            &self.name,
            format_args!("corrupt ring: {why}"),
        );
        closed(
            io::ErrorKind::InvalidData,
            &self.name,
            format_args!("corrupt ring: {why}"),
        )
    }

    /// Dead-man checks: the socket (a dead process), the closed flag, the heartbeat (a hung
    /// process). Sets `peer_gone`.
    fn check_peer(&mut self, now: Instant, now_ns: u64) -> io::Result<()> {
        if self.peer_gone.is_some() {
            return Ok(());
        }
        let s = &self.segment;
        let peer = 1 - self.side;
        // Acquire pairs with the Release in `Drop`.
        if s.atomic_u32(s.side(peer, CLOSED)).load(Ordering::Acquire) != 0 {
            self.peer_gone = Some("peer closed the link".into());
            return Ok(());
        }
        let beat = s
            .atomic_u64(s.side(peer, HEARTBEAT))
            .load(Ordering::Relaxed);
        if beat == 0 {
            if self.attach_deadline.is_some_and(|d| now > d) {
                return Err(closed(
                    io::ErrorKind::TimedOut,
                    &self.name,
                    "the server never attached",
                ));
            }
        } else {
            self.attach_deadline = None;
            let age = now_ns.saturating_sub(beat);
            if age > self.dead_after_ns {
                self.peer_gone = Some(format!(
                    "peer hung: no heartbeat for {} ms",
                    age / 1_000_000
                ));
                return Ok(());
            }
        }
        if now.saturating_duration_since(self.last_socket_check) >= SOCKET_CHECK_EVERY {
            self.last_socket_check = now;
            let mut byte = 0u8;
            // SAFETY: one writable byte; MSG_PEEK|MSG_DONTWAIT never blocks or consumes.
            let n = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    (&mut byte as *mut u8).cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                self.peer_gone = Some("peer process gone (socket closed)".into());
            } else if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    self.peer_gone = Some(format!("peer socket: {e}"));
                }
            }
        }
        Ok(())
    }
}

impl Drop for ShmLink {
    fn drop(&mut self) {
        let s = &self.segment;
        // Release: everything we published is visible before the peer sees us closed.
        s.atomic_u32(s.side(self.side, CLOSED))
            .store(1, Ordering::Release);
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl ExternalLink for ShmLink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        self.disarm();
        let now_ns = monotonic_ns();
        if now_ns.saturating_sub(self.last_beat_ns) >= HEARTBEAT_EVERY.as_nanos() as u64 {
            self.last_beat_ns = now_ns;
            self.beat(now_ns);
            self.check_peer(Instant::now(), now_ns)?;
        }
        let frames = self.read(frames_max, on_frame)?;
        if frames == 0 {
            if let Some(why) = &self.peer_gone {
                // Everything the peer published was delivered; now the link closes.
                return Err(closed(io::ErrorKind::ConnectionAborted, &self.name, why));
            }
        }
        Ok(frames > 0)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if let Some(why) = &self.peer_gone {
            return Err(closed(io::ErrorKind::ConnectionAborted, &self.name, why));
        }
        if frame.len() > self.frame_len_max_out {
            self.counters.drop_frame(
                DropKind::Oversize,
                &self.name,
                format_args!(
                    "frame of {} bytes exceeds the link limit of {}",
                    frame.len(),
                    self.frame_len_max_out
                ),
            );
            return Ok(false);
        }
        let before = self.writer.head();
        if !self.write(frame) {
            self.counters
                .drop_frame(DropKind::SendFull, &self.name, format_args!("ring full"));
            return Ok(false);
        }
        LinkCounters::add(&self.counters.wire_bytes_sent, self.writer.head() - before);
        self.counters.sent(frame.len());
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.publish();
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.counters.dropped()
    }

    fn readiness_fd(&self) -> Option<RawFd> {
        self.bell_in.as_ref().map(AsRawFd::as_raw_fd)
    }

    fn before_park(&mut self) -> Readiness {
        if self.bell_in.is_none() || !self.peer_rings() {
            return Readiness::Poll;
        }
        if self.peer_gone.is_some() {
            return Readiness::Ready;
        }
        let control = self.segment.control(self.ring_in());
        self.segment
            .atomic_u32(control + DOORBELL)
            .store(1, Ordering::Relaxed);
        self.armed = true;
        // The mirror of the fence in `publish` (Dekker): either the writer sees the raised
        // word and rings, or we see its new head here.
        fence(Ordering::SeqCst);
        if self.readable() {
            self.disarm();
            return Readiness::Ready;
        }
        Readiness::Armed
    }
}

/// Accepts shared memory links on an abstract unix socket.
pub struct ShmListener {
    name: String,
    socket: OwnedFd,
    config: ShmConfig,
    /// Connections whose memfd has not arrived yet, with their deadline.
    pending: Vec<(UnixStream, Instant)>,
    counters: Arc<LinkCounters>,
}

/// Connections waiting for their memfd at most.
const PENDING_MAX: usize = 16;
/// A connection must pass its memfd within this time.
const PENDING_TIMEOUT: Duration = Duration::from_secs(2);

impl ShmListener {
    /// Listens as `name` (an abstract socket: no file is created, nothing is left behind).
    pub fn bind(name: &str, config: &ShmConfig) -> io::Result<ShmListener> {
        config.check()?;
        let label = format!("shm listener {name}");
        let socket = unix_listen(&socket_name(name)).map_err(|e| closed(e.kind(), &label, e))?;
        Ok(ShmListener {
            name: name.to_owned(),
            socket,
            config: config.clone(),
            pending: Vec::new(),
            counters: LinkCounters::shared(),
        })
    }

    /// Counters shared by every link this listener accepts (their sum).
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// Validates a client's memfd and maps it.
    fn attach(
        &self,
        stream: UnixStream,
        mut fds: Vec<OwnedFd>,
        peer: String,
    ) -> io::Result<ShmLink> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if fds.is_empty() || fds.len() == 2 || fds.len() > 3 {
            return Err(invalid(format!(
                "{} descriptors passed, want 1 or 3",
                fds.len()
            )));
        }
        // A client without doorbells passes the memfd alone (it is then polled).
        let bells = if fds.len() == 3 {
            let bell_client = fds.pop().expect("3");
            let bell_server = fds.pop().expect("2");
            for bell in [&bell_server, &bell_client] {
                if !is_eventfd(bell) {
                    return Err(invalid("a doorbell is not an eventfd".into()));
                }
            }
            // Without doorbells of our own we neither watch nor ring (the peer then polls).
            self.config.doorbells.then_some((bell_server, bell_client))
        } else {
            None
        };
        let memfd = fds.pop().expect("1");
        // SAFETY: F_GET_SEALS on an fd we own; no memory is passed.
        let seals = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS) };
        let needed = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        if seals < 0 || seals & needed != needed {
            return Err(invalid(format!("memfd not sealed (seals {seals:#x})")));
        }
        let file = std::fs::File::from(memfd);
        let len = file.metadata()?.len() as usize;
        if len < HEADER_BYTES {
            return Err(invalid(format!(
                "segment of {len} bytes is smaller than its header"
            )));
        }
        // SAFETY: the size is sealed (checked above), so the mapping can never lose pages
        // under us; the contents are validated before use and every bound is copied out.
        let map = unsafe { MmapMut::map_mut(&file)? };
        let word = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4"));
        let magic = u64::from_le_bytes(map[0..8].try_into().expect("8"));
        let (version, ring_bytes, frame_len_max) = (word(8), word(12), word(16));
        if magic != MAGIC || version != VERSION {
            return Err(invalid(format!(
                "bad magic {magic:#x} or version {version}"
            )));
        }
        if !ring_bytes.is_power_of_two()
            || !(RING_BYTES_MIN..=RING_BYTES_MAX).contains(&ring_bytes)
            || len != segment_len(ring_bytes)
        {
            return Err(invalid(format!(
                "ring of {ring_bytes} bytes in a segment of {len} bytes"
            )));
        }
        // The client declared its limit: we accept frames up to it (they are read in place,
        // so a larger limit costs no memory; the bus applies its own payload limit), bounded
        // by what one record of the ring can hold, and never send more than it, nor more than
        // our own limit.
        let ring_frame_max = (ring_bytes as usize - RECORD_HEADER) as u32;
        if !(BASE_HEADER_LEN as u32..=ring_frame_max).contains(&frame_len_max) {
            return Err(invalid(format!(
                "frame_len_max {frame_len_max} outside 48..={ring_frame_max}"
            )));
        }
        let config = ShmConfig {
            ring_bytes,
            frame_len_max: self.config.frame_len_max.min(frame_len_max),
            ..self.config.clone()
        };
        let segment = Segment::new(map, ring_bytes as usize);
        let mut link = ShmLink::new(
            format!("shm {} ({peer})", self.name),
            segment,
            1,
            stream,
            &config,
            frame_len_max,
            bells,
        );
        link.counters = self.counters.clone();
        Ok(link)
    }

    /// Accepts a link (never blocks), as [`ExternalListener::accept`] does, but returns the
    /// concrete type (for the ring API: benchmarks, embeddings without a station).
    pub fn accept_link(&mut self) -> io::Result<Option<ShmLink>> {
        if self.pending.len() < PENDING_MAX {
            // SAFETY: accept4 on our listening socket; the returned fd is owned below.
            let fd = unsafe {
                libc::accept4(
                    self.socket.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh fd from accept4, owned by nobody else.
                let stream = unsafe { UnixStream::from_raw_fd(fd) };
                self.pending
                    .push((stream, Instant::now() + PENDING_TIMEOUT));
            } else {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        self.try_pending()
    }

    fn try_pending(&mut self) -> io::Result<Option<ShmLink>> {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            match recv_fds(&self.pending[i].0) {
                Ok(Some(fds)) => {
                    let (stream, _) = self.pending.swap_remove(i);
                    let peer = peer_pid(&stream)
                        .map(|pid| format!("pid {pid}"))
                        .unwrap_or_else(|| "unknown pid".into());
                    match self.attach(stream, fds, peer.clone()) {
                        Ok(link) => return Ok(Some(link)),
                        Err(e) => {
                            eprintln!(
                                "tamtam transport shm listener {}: refused {peer}: {e}",
                                self.name
                            );
                            continue;
                        }
                    }
                }
                Ok(None) if now < self.pending[i].1 => i += 1,
                Ok(None) | Err(_) => {
                    self.pending.swap_remove(i);
                }
            }
        }
        Ok(None)
    }
}

impl ExternalListener for ShmListener {
    fn describe(&self) -> String {
        format!("shm listener {}", self.name)
    }

    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>> {
        Ok(self
            .accept_link()?
            .map(|link| Box::new(link) as Box<dyn ExternalLink>))
    }

    // No readiness descriptor: the listener is polled (every millisecond while its shard is
    // idle). Watching the listening socket would let a killed process's io_uring, which the
    // kernel tears down asynchronously, hold the socket, and so its name, for a while after
    // the process died; the name must be free at once (see the module docs).
}

/// A new non-blocking eventfd (a doorbell).
fn create_eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with valid flags; the fd is owned on success.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` is an eventfd (the peer could pass anything).
fn is_eventfd(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventfd]")
}

/// Rings a doorbell. Never blocks in practice: a write blocks only when the counter would
/// pass 2^64 - 2, and each write adds 1 (the counter is never read: edge-triggered watch).
fn eventfd_write(bell: &OwnedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a valid u64 to an fd we own. EAGAIN (saturated) means a
    // signal is pending anyway.
    unsafe {
        libc::write(bell.as_raw_fd(), (&one as *const u64).cast(), 8);
    }
}

fn socket_name(name: &str) -> Vec<u8> {
    format!("tamtam-shm/{name}").into_bytes()
}

/// A `sockaddr_un` for the abstract name `name` and its length.
fn abstract_addr(name: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.len() + 1 > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "shm name too long",
        ));
    }
    // sun_path[0] stays 0: the abstract namespace.
    for (slot, &byte) in addr.sun_path[1..].iter_mut().zip(name) {
        *slot = byte as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    Ok((addr, len as libc::socklen_t))
}

fn unix_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned by the OwnedFd on success.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unix_listen(name: &[u8]) -> io::Result<OwnedFd> {
    let socket = unix_socket()?;
    let (addr, len) = abstract_addr(name)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain syscall on our socket.
    if unsafe { libc::listen(socket.as_raw_fd(), PENDING_MAX as i32) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn unix_connect(name: &[u8]) -> io::Result<UnixStream> {
    let socket = unix_socket()?;
    let (addr, len) = abstract_addr(name)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes. A non-blocking unix connect
    // completes at once or fails (EAGAIN when the listener's backlog is full).
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(socket))
}

fn create_memfd(len: usize) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name; the fd is owned on success.
    let fd = unsafe {
        libc::memfd_create(
            c"tamtam-shm".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(fd.try_clone()?).set_len(len as u64)?;
    Ok(fd)
}

fn seal(memfd: &OwnedFd) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Room for the fds of one control message.
const CMSG_SPACE: usize = 64;
/// Descriptors passed at most (memfd and two doorbells).
const FDS_MAX: usize = 3;

#[repr(C, align(8))]
struct CmsgBuffer([u8; CMSG_SPACE]);

fn send_fds(socket: &UnixStream, fds: &[i32]) -> io::Result<()> {
    assert!(!fds.is_empty() && fds.len() <= FDS_MAX);
    let mut byte = [1u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = CmsgBuffer([0; CMSG_SPACE]);
    // SAFETY: msghdr is plain old data; the pointers set below outlive the sendmsg call.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of_val(fds) as u32) } as usize;
    assert!(space <= CMSG_SPACE);
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` writable, aligned bytes, so the first header
    // exists and has room for one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of_val(fds) as u32) as _;
        for (k, &fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>().add(k), fd);
        }
    }
    // SAFETY: `msg` is fully initialised and its buffers are live.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n != 1 {
        return Err(if n < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::other("short sendmsg")
        });
    }
    Ok(())
}

/// Receives the fds a client passes (at most [`CMSG_SPACE`] bytes of them, every one owned
/// so none leaks); `Ok(None)` if they have not arrived yet.
fn recv_fds(socket: &UnixStream) -> io::Result<Option<Vec<OwnedFd>>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = CmsgBuffer([0; CMSG_SPACE]);
    // SAFETY: plain old data; the pointers set below outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_SPACE as _;
    // SAFETY: `msg` describes live, writable buffers.
    let n = unsafe {
        libc::recvmsg(
            socket.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
            return Ok(None);
        }
        return Err(e);
    }
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "closed before its memfd",
        ));
    }
    // Take ownership of every fd received (so none leaks).
    let mut received = Vec::new();
    // SAFETY: the kernel filled `msg_controllen` bytes of valid control messages; the CMSG
    // macros walk them within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let count =
                    ((*cmsg).cmsg_len as usize).saturating_sub(header) / mem::size_of::<i32>();
                for k in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<i32>().add(k));
                    received.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    match received.is_empty() {
        false => Ok(Some(received)),
        true => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no memfd in the message",
        )),
    }
}

fn peer_pid(stream: &UnixStream) -> Option<i32> {
    // SAFETY: ucred is plain old data; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut cred: libc::ucred = mem::zeroed();
        let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        (rc == 0).then_some(cred.pid)
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a shared (not private) futex on a live, aligned word of the mapping; the
    // kernel only reads it. Spurious returns are fine: callers re-check.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; waking never touches memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// One ring's data area inside the shared mapping.
struct Mapped<'a> {
    base: *mut u8,
    len: usize,
    _segment: std::marker::PhantomData<&'a Segment>,
}

impl ring::RingMemory for Mapped<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn load(&self, index: usize, out: &mut [u8]) {
        assert!(index + out.len() <= self.len);
        // SAFETY: in bounds (asserted); the bytes lie in the published region, which the
        // writer does not touch (module docs).
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(index), out.as_mut_ptr(), out.len()) }
    }

    fn lend(&self, index: usize, len: usize) -> &[u8] {
        assert!(index + len <= self.len);
        // SAFETY: in bounds (asserted) of a mapping that outlives `self`; the bytes lie in
        // the published region, untouched by the writer until the reader's tail passes them,
        // which happens only after the borrow ends (module docs, on trust).
        unsafe { std::slice::from_raw_parts(self.base.add(index), len) }
    }

    fn store(&mut self, index: usize, bytes: &[u8]) {
        assert!(index + bytes.len() <= self.len);
        // SAFETY: in bounds (asserted); the bytes lie in the free region, which the reader
        // does not read until `head` is published past them.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(index), bytes.len()) }
    }
}

/// The ring protocol without the shared memory: a writer and a reader state machine over
/// any [`RingMemory`](ring::RingMemory) (the mapping in a link; a plain slice in tests and the
/// `shm_ring` fuzz target). Positions are byte counts that only grow; the caller loads and
/// publishes the shared `head` and `tail` (the atomics stay out of here).
pub mod ring {
    use super::{BASE_HEADER_LEN, KIND_FRAME, KIND_PAD, RECORD_HEADER, record_len};

    /// Where a ring's bytes live.
    pub trait RingMemory {
        /// Bytes of the data area (a power of two).
        fn len(&self) -> usize;
        /// Whether the area is empty (never, for a valid ring).
        fn is_empty(&self) -> bool {
            self.len() == 0
        }
        /// Copies `out.len()` bytes from `index`.
        fn load(&self, index: usize, out: &mut [u8]);
        /// Lends `len` bytes at `index`.
        fn lend(&self, index: usize, len: usize) -> &[u8];
        /// Stores `bytes` at `index`.
        fn store(&mut self, index: usize, bytes: &[u8]);
    }

    impl RingMemory for [u8] {
        fn len(&self) -> usize {
            <[u8]>::len(self)
        }
        fn load(&self, index: usize, out: &mut [u8]) {
            out.copy_from_slice(&self[index..index + out.len()]);
        }
        fn lend(&self, index: usize, len: usize) -> &[u8] {
            &self[index..index + len]
        }
        fn store(&mut self, index: usize, bytes: &[u8]) {
            self[index..index + bytes.len()].copy_from_slice(bytes);
        }
    }

    /// Why a ring cannot be read: the writer broke the protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum RingError {
        /// The published head is behind the tail or more than a ring ahead of it.
        #[error("head {head} outside tail {tail}..=tail+ring")]
        Head {
            /// The head loaded.
            head: u64,
            /// The reader's tail.
            tail: u64,
        },
        /// A record the reader cannot account for.
        #[error("record kind {kind} length {len} at {index} (limit {limit})")]
        Record {
            /// Its kind.
            kind: u32,
            /// Its length.
            len: u32,
            /// Its index in the ring.
            index: usize,
            /// The frame limit.
            limit: usize,
        },
    }

    /// The writing side of one ring.
    #[derive(Debug)]
    pub struct RingWriter {
        ring_bytes: u64,
        head: u64,
        /// The reader's tail as last loaded (it only grows).
        tail_seen: u64,
    }

    impl RingWriter {
        /// A writer at position 0 of a ring of `ring_bytes` (a power of two).
        ///
        /// # Panics
        /// If `ring_bytes` is not a power of two of at least a record header.
        pub fn new(ring_bytes: usize) -> RingWriter {
            assert!(ring_bytes.is_power_of_two() && ring_bytes >= RECORD_HEADER);
            RingWriter {
                ring_bytes: ring_bytes as u64,
                head: 0,
                tail_seen: 0,
            }
        }

        /// Bytes written so far (what to publish as `head`).
        pub fn head(&self) -> u64 {
            self.head
        }

        fn room(&mut self, bytes: u64, load_tail: &mut impl FnMut() -> u64) -> bool {
            if self.head + bytes - self.tail_seen <= self.ring_bytes {
                return true;
            }
            let tail = load_tail();
            // A tail outside [last seen, head] is the reader's corruption: treat as full.
            if tail < self.tail_seen || tail > self.head {
                return false;
            }
            self.tail_seen = tail;
            self.head + bytes - self.tail_seen <= self.ring_bytes
        }

        fn record_header(
            memory: &mut (impl RingMemory + ?Sized),
            index: usize,
            len: u32,
            kind: u32,
        ) {
            let mut header = [0u8; RECORD_HEADER];
            header[..4].copy_from_slice(&len.to_le_bytes());
            header[4..].copy_from_slice(&kind.to_le_bytes());
            memory.store(index, &header);
        }

        /// Writes one frame as a record (not yet published); false if the ring has no room.
        /// `load_tail` reads the reader's published tail; it is called only when the last
        /// value seen shows no room.
        pub fn write(
            &mut self,
            memory: &mut (impl RingMemory + ?Sized),
            frame: &[u8],
            mut load_tail: impl FnMut() -> u64,
        ) -> bool {
            debug_assert_eq!(memory.len() as u64, self.ring_bytes);
            let size = record_len(frame.len());
            if size as u64 > self.ring_bytes {
                return false;
            }
            let mut index = (self.head & (self.ring_bytes - 1)) as usize;
            let to_end = self.ring_bytes as usize - index;
            if size > to_end {
                // Pad to the end, then start over at 0 (the padding stays written even if the
                // record does not fit yet: the next attempt starts at 0).
                if !self.room(to_end as u64, &mut load_tail) {
                    return false;
                }
                Self::record_header(memory, index, (to_end - RECORD_HEADER) as u32, KIND_PAD);
                self.head += to_end as u64;
                index = 0;
            }
            if !self.room(size as u64, &mut load_tail) {
                return false;
            }
            Self::record_header(memory, index, frame.len() as u32, KIND_FRAME);
            memory.store(index + RECORD_HEADER, frame);
            self.head += size as u64;
            true
        }

        /// Writes `bytes` as they are at the head (a broken writer, for tests); false if they
        /// cross the end of the ring or do not fit.
        pub fn write_raw(
            &mut self,
            memory: &mut (impl RingMemory + ?Sized),
            bytes: &[u8],
            mut load_tail: impl FnMut() -> u64,
        ) -> bool {
            let index = (self.head & (self.ring_bytes - 1)) as usize;
            let len = bytes.len().div_ceil(8) * 8;
            if index + len > self.ring_bytes as usize || !self.room(len as u64, &mut load_tail) {
                return false;
            }
            memory.store(index, bytes);
            self.head += len as u64;
            true
        }
    }

    /// The reading side of one ring.
    #[derive(Debug)]
    pub struct RingReader {
        ring_bytes: u64,
        frame_len_max: usize,
        tail: u64,
        /// The writer's head as last loaded.
        head_seen: u64,
    }

    impl RingReader {
        /// A reader at position 0 of a ring of `ring_bytes`, accepting frames of at most
        /// `frame_len_max` bytes.
        ///
        /// # Panics
        /// If `ring_bytes` is not a power of two of at least a record header.
        pub fn new(ring_bytes: usize, frame_len_max: usize) -> RingReader {
            assert!(ring_bytes.is_power_of_two() && ring_bytes >= RECORD_HEADER);
            RingReader {
                ring_bytes: ring_bytes as u64,
                frame_len_max,
                tail: 0,
                head_seen: 0,
            }
        }

        /// Bytes consumed so far (what to publish as `tail`, after the frames were used).
        pub fn tail(&self) -> u64 {
            self.tail
        }

        /// Hands up to `frames_max` frames, in place, to `on_frame`; returns how many.
        /// `load_head` reads the writer's published head; it is called only when the reader
        /// has caught up with the last value seen (so once per call when frames wait, and
        /// once more when they ran out before `frames_max`). Every frame lent lies inside `memory` and
        /// inside the published region; anything else is a [`RingError`] (the frames before it
        /// were delivered and the tail moved past them).
        pub fn read(
            &mut self,
            memory: &(impl RingMemory + ?Sized),
            mut load_head: impl FnMut() -> u64,
            frames_max: usize,
            on_frame: &mut dyn FnMut(&[u8]),
        ) -> Result<usize, RingError> {
            debug_assert_eq!(memory.len() as u64, self.ring_bytes);
            let mut frames = 0;
            // A padding record per frame at most (plus one) keeps the loop bounded even
            // against a writer that publishes nothing but padding.
            let mut records_left = frames_max.saturating_mul(2).saturating_add(1);
            loop {
                if self.tail == self.head_seen {
                    let head = load_head();
                    if head < self.tail || head - self.tail > self.ring_bytes {
                        return Err(RingError::Head {
                            head,
                            tail: self.tail,
                        });
                    }
                    self.head_seen = head;
                }
                if self.tail == self.head_seen || frames >= frames_max || records_left == 0 {
                    return Ok(frames);
                }
                records_left -= 1;
                let index = (self.tail & (self.ring_bytes - 1)) as usize;
                let to_end = self.ring_bytes as usize - index;
                let available = (self.head_seen - self.tail) as usize;
                let mut header = [0u8; RECORD_HEADER];
                if to_end < RECORD_HEADER || available < RECORD_HEADER {
                    return Err(RingError::Record {
                        kind: u32::MAX,
                        len: 0,
                        index,
                        limit: self.frame_len_max,
                    });
                }
                memory.load(index, &mut header);
                let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
                let kind = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
                let size = record_len(len as usize);
                match kind {
                    KIND_PAD if len as usize + RECORD_HEADER == to_end && to_end <= available => {
                        self.tail += to_end as u64;
                    }
                    KIND_FRAME
                        if (BASE_HEADER_LEN..=self.frame_len_max).contains(&(len as usize))
                            && size <= to_end
                            && size <= available =>
                    {
                        on_frame(memory.lend(index + RECORD_HEADER, len as usize));
                        self.tail += size as u64;
                        frames += 1;
                    }
                    _ => {
                        return Err(RingError::Record {
                            kind,
                            len,
                            index,
                            limit: self.frame_len_max,
                        });
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn records_wrap_with_padding_and_read_back_in_order() {
            let mut memory = vec![0u8; 1024];
            let mut writer = RingWriter::new(1024);
            let mut reader = RingReader::new(1024, 600);
            let mut tail = 0u64;
            let mut got = Vec::new();
            let mut expected = Vec::new();
            for i in 0..200usize {
                let frame = vec![i as u8; 48 + (i * 37) % 500];
                while !writer.write(&mut memory[..], &frame, || tail) {
                    let head = writer.head();
                    reader
                        .read(&memory[..], || head, 100, &mut |f| got.push(f.to_vec()))
                        .unwrap();
                    tail = reader.tail();
                }
                expected.push(frame);
            }
            let head = writer.head();
            reader
                .read(&memory[..], || head, 1000, &mut |f| got.push(f.to_vec()))
                .unwrap();
            assert_eq!(got, expected);
        }

        #[test]
        fn a_frame_larger_than_the_ring_is_refused() {
            let mut memory = vec![0u8; 256];
            let mut writer = RingWriter::new(256);
            assert!(!writer.write(&mut memory[..], &[1u8; 256], || 0));
            assert!(writer.write(&mut memory[..], &[1u8; 248], || 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static NAMES: AtomicUsize = AtomicUsize::new(0);

    fn unique() -> String {
        format!(
            "unit-{}-{}",
            std::process::id(),
            NAMES.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn config() -> ShmConfig {
        ShmConfig {
            ring_bytes: 4096,
            frame_len_max: 1000,
            dead_after: Duration::from_millis(300),
            attach_timeout: Duration::from_secs(2),
            doorbells: true,
        }
    }

    fn connected(config: &ShmConfig) -> (ShmLink, Box<dyn ExternalLink>) {
        let name = unique();
        let mut listener = ShmListener::bind(&name, config).unwrap();
        let client = ShmLink::connect(&name, config).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(server) = listener.accept().unwrap() {
                return (client, server);
            }
            assert!(Instant::now() < deadline, "listener never accepted");
        }
    }

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; len];
        f[0] = b'T';
        f
    }

    fn recv(link: &mut dyn ExternalLink) -> io::Result<Vec<Vec<u8>>> {
        let mut got = Vec::new();
        link.poll_recv(usize::MAX, &mut |f| got.push(f.to_vec()))?;
        Ok(got)
    }

    /// Waits up to `timeout` for `fd` to be readable (poll(2)); true if it is.
    fn readable_within(fd: RawFd, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    /// Reads (and so resets) an eventfd's counter; 0 if nothing was signalled.
    fn take_count(fd: RawFd) -> u64 {
        let mut value = 0u64;
        // SAFETY: 8 writable bytes; the eventfd is non-blocking (EAGAIN leaves 0).
        unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
        value
    }

    /// Goal: a parked reader's doorbell becomes readable as soon as the peer publishes, and a
    /// running (disarmed) reader costs the writer no syscall. Method: arm the server side
    /// through `before_park`, publish from the client, watch the eventfd with poll(2); then
    /// read (disarming) and publish many frames, and check that the counter did not move.
    #[test]
    fn doorbell_rings_once_per_park_and_never_while_running() {
        let (mut client, mut server) = connected(&config());
        let bell = server.readiness_fd().expect("the server has a doorbell");
        let client_bell = client.readiness_fd().expect("the client has a doorbell");
        assert_ne!(bell, client_bell);
        // Attached: both sides announce doorbells.
        assert_eq!(server.before_park(), Readiness::Armed);
        assert!(!readable_within(bell, Duration::ZERO), "nothing rang yet");
        assert!(client.send(&frame(64, 1)).unwrap());
        client.flush().unwrap();
        assert!(
            readable_within(bell, Duration::from_secs(5)),
            "the parked reader was not woken"
        );
        assert_eq!(take_count(bell), 1);
        // Running: the frame is read (which disarms); more frames ring nothing.
        assert_eq!(recv(server.as_mut()).unwrap().len(), 1);
        for i in 0..40u8 {
            assert!(client.send(&frame(64, i)).unwrap());
            client.flush().unwrap();
        }
        assert_eq!(take_count(bell), 0, "a running reader was rung");
        // Input waiting at park time: Ready, not Armed (an arrival before arming signals nothing).
        assert_eq!(server.before_park(), Readiness::Ready);
        assert_eq!(recv(server.as_mut()).unwrap().len(), 40);
        // The other direction, and one ring however many publishes follow the park.
        assert_eq!(client.before_park(), Readiness::Armed);
        for i in 0..3u8 {
            assert!(server.send(&frame(64, i)).unwrap());
            server.flush().unwrap();
        }
        assert!(readable_within(client_bell, Duration::from_secs(5)));
        assert_eq!(take_count(client_bell), 1);
        assert_eq!(recv(&mut client).unwrap().len(), 3);
    }

    /// Goal: a side without doorbells is polled, and so is its peer (which must not park
    /// waiting for a ring that never comes). Method: connect with doorbells off on either
    /// side and ask both ends.
    #[test]
    fn without_doorbells_both_sides_are_polled() {
        for (client_bells, server_bells) in [(false, true), (true, false)] {
            let name = unique();
            let mut listener = ShmListener::bind(
                &name,
                &ShmConfig {
                    doorbells: server_bells,
                    ..config()
                },
            )
            .unwrap();
            let mut client = ShmLink::connect(
                &name,
                &ShmConfig {
                    doorbells: client_bells,
                    ..config()
                },
            )
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut server = loop {
                if let Some(server) = listener.accept().unwrap() {
                    break server;
                }
                assert!(Instant::now() < deadline, "listener never accepted");
            };
            assert_eq!(server.before_park(), Readiness::Poll);
            assert_eq!(client.before_park(), Readiness::Poll);
            // And frames still cross.
            assert!(client.send(&frame(64, 7)).unwrap());
            client.flush().unwrap();
            assert_eq!(recv(server.as_mut()).unwrap().len(), 1);
        }
    }

    #[test]
    fn frames_cross_both_ways_and_wrap_many_times() {
        let (mut client, mut server) = connected(&config());
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..500usize {
            let f = frame(48 + (i * 13) % 900, i as u8);
            assert!(client.send(&f).unwrap());
            client.flush().unwrap();
            expected.push(f);
            got.extend(recv(server.as_mut()).unwrap());
        }
        assert_eq!(got, expected);
        assert!(server.send(&frame(100, 1)).unwrap());
        server.flush().unwrap();
        assert_eq!(recv(&mut client).unwrap(), vec![frame(100, 1)]);
    }

    #[test]
    fn full_ring_refuses_and_frames_are_invisible_until_published() {
        let (mut client, mut server) = connected(&config());
        let mut accepted = 0;
        while client.send(&frame(900, 1)).unwrap() {
            accepted += 1;
            assert!(accepted < 10);
        }
        assert_eq!(accepted, 4);
        assert!(
            recv(server.as_mut()).unwrap().is_empty(),
            "not published yet"
        );
        client.flush().unwrap();
        assert_eq!(recv(server.as_mut()).unwrap().len(), 4);
        assert!(client.send(&frame(900, 1)).unwrap(), "room again");
        assert!(!client.send(&frame(1001, 1)).unwrap(), "over the limit");
        let c = client.counters().snapshot();
        assert_eq!((c.send_full, c.oversize), (1, 1));
    }

    #[test]
    fn a_dropped_peer_is_noticed_after_its_last_frames() {
        let (mut client, mut server) = connected(&config());
        assert!(client.send(&frame(60, 3)).unwrap());
        client.flush().unwrap();
        drop(client);
        assert_eq!(recv(server.as_mut()).unwrap(), vec![frame(60, 3)]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match recv(server.as_mut()) {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
                    break;
                }
                Ok(_) => assert!(Instant::now() < deadline),
            }
        }
    }

    #[test]
    fn a_hung_peer_is_noticed_by_its_heartbeat() {
        let (mut client, server) = connected(&config());
        // The server never polls again: its heartbeat ages.
        let started = Instant::now();
        loop {
            match recv(&mut client) {
                Err(e) => {
                    assert!(e.to_string().contains("heartbeat"), "{e}");
                    break;
                }
                Ok(_) => assert!(started.elapsed() < Duration::from_secs(5)),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(server);
    }

    #[test]
    fn a_corrupt_record_closes_the_link() {
        let (mut client, mut server) = connected(&config());
        assert!(client.send(&frame(60, 3)).unwrap());
        // Overwrite the record's length with garbage, as a broken peer might.
        use ring::RingMemory;
        client
            .segment
            .ring_memory(0)
            .store(0, &u32::MAX.to_le_bytes());
        client.flush().unwrap();
        assert_eq!(
            recv(server.as_mut()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn a_garbage_head_closes_the_link() {
        let (client, mut server) = connected(&config());
        let control = client.segment.control(0);
        client
            .segment
            .atomic_u64(control + HEAD)
            .store(u64::MAX / 2, Ordering::Release);
        assert!(recv(server.as_mut()).is_err());
    }

    #[test]
    fn wait_readable_wakes_on_publish_from_another_thread() {
        let (client, server) = connected(&config());
        let waiter = std::thread::spawn(move || {
            let mut client_side = client;
            // Nothing yet: times out.
            assert!(!client_side.wait_readable(Duration::from_millis(20)));
            assert!(client_side.wait_readable(Duration::from_secs(10)));
            recv(&mut client_side).unwrap()
        });
        let mut server = server;
        std::thread::sleep(Duration::from_millis(50));
        assert!(server.send(&frame(80, 8)).unwrap());
        server.flush().unwrap();
        assert_eq!(waiter.join().unwrap(), vec![frame(80, 8)]);
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut bad = config();
        bad.ring_bytes = 5000;
        assert!(ShmListener::bind(&unique(), &bad).is_err());
        bad.ring_bytes = 4096;
        bad.frame_len_max = 5000;
        assert!(ShmLink::connect(&unique(), &bad).is_err());
    }

    #[test]
    fn no_listener_is_a_dial_error() {
        assert!(ShmLink::connect(&unique(), &config()).is_err());
    }
}
