//! The io_uring backend: one ring per shard, driven directly from the cycle loop.
//!
//! Layers, bottom up:
//!
//! - **Ring access.** [`UringReactor::new`] sets the ring up with
//!   `SINGLE_ISSUER | DEFER_TASKRUN | R_DISABLED` when the kernel accepts it (6.1+), else
//!   `COOP_TASKRUN`, else no optional flags; it probes every opcode and feature it relies on and
//!   fails with an error naming what is missing, so [`super::reactor::open`] falls back to epoll.
//!   Stream and datagram receives use one provided-buffer ring (`IORING_REGISTER_PBUF_RING`).
//! - **Ops as types.** Each operation is a type that builds its SQE (`AcceptOp`, `RecvOp`,
//!   `SendOp`…). Queued and in-flight ops live in an `OpTable` slab; an SQE's `user_data`
//!   is the op's slab index, and the values from `USER_DATA_RESERVED_MIN` up mark internal
//!   entries (the waker's eventfd read, the teardown cancel).
//! - **Submit and complete.** The shard queues work during its cycle (`send_stream`,
//!   `file_write`…) without entering the kernel. [`Reactor::poll`] builds the send SQEs, makes
//!   one `io_uring_enter` (submit and wait, with an `EXT_ARG` timespec when waiting), and drains
//!   the CQ through the callback. It submits early only when the SQ is full.
//!
//! Ownership: an op owns everything the kernel may read or write for it (buffers, iovecs,
//! `msghdr`, socket addresses) from the moment its SQE is queued until its final CQE (for a
//! multishot op, the first CQE without `IORING_CQE_F_MORE`) has been handled, whatever the
//! requester did meanwhile. A socket being closed keeps its slot and its descriptor until every
//! op naming it has completed: closing submits an `AsyncCancel` matching the descriptor and waits
//! for the cancelled ops' completions. Dropping the reactor cancels everything and drains the
//! ring; if the kernel does not give every op back in time, the remaining buffers are leaked
//! rather than freed under the kernel.
//!
//! Zero-copy: a stream send of at least [`UringConfig::zero_copy_send_min`] bytes uses
//! `SENDMSG_ZC`; its op keeps the buffers past the result CQE until the notification CQE says
//! the kernel no longer reads them (it lets go of the socket at the result, so a close need not
//! wait; a stream closed with a notification pending is reset rather than drained, so the
//! kernel frees the queued data). The notification reports whether the kernel copied after all
//! (always on loopback); a stream told so stops asking. Spool writes use fixed buffers
//! registered with the ring (see [`super::direct`]).
//!
//! Threads: with `SINGLE_ISSUER` the kernel accepts submissions from one thread only. The ring
//! is created disabled (`R_DISABLED`) and enabled by the first [`Reactor::poll`], so a station
//! can build the reactor on one thread and run it on its shard thread; every later `poll` must
//! come from that thread. Only `poll` (and `Drop`) enter the kernel.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::mem;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, Probe, cqueue, opcode, squeue, types};

use super::direct::{DIRECT_BUF_LEN_DEFAULT, DirectPool, is_direct_aligned};
use super::net;
use super::reactor::{DirectBuffers, DirectWrite, EventFd, IoEvent, Reactor, Token, Waker};

/// `user_data` of the waker's eventfd read.
const USER_DATA_WAKER: u64 = u64::MAX;
/// `user_data` of the cancel-everything entry submitted by `Drop`.
const USER_DATA_CANCEL_ALL: u64 = u64::MAX - 1;
/// `user_data` of the cancels of watches (their completions carry nothing).
const USER_DATA_UNWATCH: u64 = u64::MAX - 2;
/// `user_data` values from here up are internal entries, never slab indexes.
const USER_DATA_RESERVED_MIN: u64 = u64::MAX - 15;
const _: () = assert!(USER_DATA_CANCEL_ALL >= USER_DATA_RESERVED_MIN);
const _: () = assert!(USER_DATA_UNWATCH >= USER_DATA_RESERVED_MIN);

/// The provided-buffer group every receive selects from.
const BUFFER_GROUP: u16 = 0;
/// Buffers one stream send batches into a single `sendmsg` SQE.
const IOVECS_MAX: usize = 64;
/// Datagram sends in flight per UDP socket; the rest wait in its queue.
const DATAGRAMS_IN_FLIGHT_MAX: usize = 32;
/// File reads and writes larger than this go to the kernel in pieces.
const FILE_CHUNK_MAX: usize = 1 << 30;
/// Rounds of CQ draining per poll (each takes everything the CQ holds).
const DRAIN_ROUNDS_MAX: usize = 8;
/// Extra enters per poll to flush completions the kernel parked after a CQ overflow.
const OVERFLOW_FLUSHES_MAX: usize = 4;
/// Pooled send headers kept for reuse (beyond this they are freed).
const POOL_MAX: usize = 256;
/// How long `Drop` waits for cancelled ops to come back before leaking their buffers.
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);
/// `IORING_ENTER_GETEVENTS`: reap completions (and run deferred task work) in this enter.
const ENTER_GETEVENTS: u32 = 1;
/// Bytes of a `struct io_uring_recvmsg_out` header at the start of a multishot recvmsg buffer.
const RECVMSG_HEADER_LEN: usize = 16;
/// `IORING_SEND_ZC_REPORT_USAGE`: the notification's result says whether data was copied.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a zero-copy notification's result.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// Sizes of a [`UringReactor`]'s rings and receive buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringConfig {
    /// Submission queue entries (a power of two). When the SQ fills during a cycle, `poll`
    /// submits early; ops queued outside `poll` wait in a userspace backlog.
    pub sq_entries: u32,
    /// Completion queue entries (a power of two, at least `sq_entries`). Multishot receives post
    /// many CQEs per SQE, so this is generous; overflow is survived but costs extra enters.
    pub cq_entries: u32,
    /// Provided receive buffers (a power of two, at most 32768), shared by every socket.
    pub buffer_count: u16,
    /// Bytes per provided buffer. Also bounds a received datagram: a buffer holds a 16-byte
    /// recvmsg header, the sender's address (128 bytes) and the payload.
    pub buffer_len: u32,
    /// Bytes per aligned buffer for direct spool writes (the bulk segment size; see
    /// [`super::direct`]). The pool holds [`super::direct::DIRECT_POOL_BYTES`] of them, registered with the
    /// ring when the kernel and `RLIMIT_MEMLOCK` allow.
    pub direct_buffer_len: usize,
    /// Stream sends of at least this many bytes use `SENDMSG_ZC` (the kernel sends from the
    /// buffers in place and says when it is done with them); 0 turns zero-copy off. Small
    /// sends copy faster than they pin pages, so the default is 16 KiB.
    pub zero_copy_send_min: usize,
}

impl Default for UringConfig {
    fn default() -> UringConfig {
        UringConfig {
            sq_entries: 256,
            cq_entries: 4096,
            buffer_count: 128,
            // 64 KiB for stream data, plus room for the recvmsg header and address so that the
            // largest UDP datagram (65,527 bytes over IPv6) fits in one buffer.
            buffer_len: 64 * 1024 + 512,
            direct_buffer_len: DIRECT_BUF_LEN_DEFAULT,
            zero_copy_send_min: 16 * 1024,
        }
    }
}

impl UringConfig {
    fn check(&self) -> io::Result<()> {
        let invalid = |what: &str| Err(io::Error::new(ErrorKind::InvalidInput, what.to_string()));
        if !self.sq_entries.is_power_of_two() || self.sq_entries < 2 {
            return invalid("io_uring sq_entries must be a power of two, at least 2");
        }
        if !self.cq_entries.is_power_of_two() || self.cq_entries < self.sq_entries {
            return invalid("io_uring cq_entries must be a power of two, at least sq_entries");
        }
        if !self.buffer_count.is_power_of_two() || self.buffer_count > 32768 {
            return invalid("io_uring buffer_count must be a power of two, at most 32768");
        }
        if (self.buffer_len as usize) < RECVMSG_HEADER_LEN + NAME_LEN + 64 {
            return invalid("io_uring buffer_len must be at least 208 bytes");
        }
        Ok(())
    }
}

/// How the ring was set up: the first variant the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UringSetup {
    /// `SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL | R_DISABLED` (Linux 6.1+): completions are
    /// posted only while the shard reaps them, never by interrupting it; the first `poll`
    /// enables the ring and binds it to its thread.
    DeferTaskrun,
    /// `COOP_TASKRUN | SUBMIT_ALL` (Linux 5.19+): completion work runs when the shard next
    /// enters the kernel, without inter-processor interrupts.
    CoopTaskrun,
    /// No optional setup flags.
    Plain,
}

impl UringSetup {
    /// The order in which setups are tried.
    const PREFERENCE: [UringSetup; 3] = [
        UringSetup::DeferTaskrun,
        UringSetup::CoopTaskrun,
        UringSetup::Plain,
    ];
}

/// Counters of one io_uring reactor, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UringCounters {
    /// Multishot receives the kernel ended because the buffer ring ran dry (`ENOBUFS`),
    /// re-armed after their buffers were given back.
    pub recv_enobufs: u64,
    /// Multishot ops re-armed after the kernel ended them for another reason.
    pub multishot_rearms: u64,
    /// Stream sends resubmitted for the remainder after a short send.
    pub sends_short: u64,
    /// Submissions made before the end of a poll because the SQ was full.
    pub submits_early: u64,
    /// Times the CQ overflowed and its parked completions were flushed from the kernel.
    pub cq_overflows: u64,
    /// Direct (`O_DIRECT`) file writes made from the aligned pool.
    pub direct_writes: u64,
    /// Stream sends made with `SENDMSG_ZC` whose notification arrived.
    pub sends_zero_copy: u64,
    /// Of those, sends the kernel reported it copied anyway (the stream then stops asking).
    pub sends_zero_copy_copied: u64,
}

// ------------------------------------------------------------------------------------------
// The provided-buffer ring.

/// One entry of a provided-buffer ring (`struct io_uring_buf`). The ring's shared tail
/// (`struct io_uring_buf_ring::tail`) overlays `resv` of entry 0.
#[repr(C)]
struct BufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}
const _: () = assert!(mem::size_of::<BufEntry>() == 16);
/// Byte offset of the shared tail inside the ring.
const BUF_RING_TAIL_OFFSET: usize = 14;

/// Receive buffers the kernel picks from (`IORING_REGISTER_PBUF_RING`): `count` buffers of
/// `buffer_len` bytes in one mapping, and the ring of entries announcing which are free.
struct BufRing {
    entries: NonNull<BufEntry>,
    entries_bytes: usize,
    data: NonNull<u8>,
    data_bytes: usize,
    count: u16,
    buffer_len: u32,
    /// Our copy of the tail; published to the kernel by `provide`.
    tail: u16,
    /// Set when the kernel may still use the memory at drop: then it is never unmapped.
    leaked: bool,
}

// SAFETY: the mappings are owned by this value alone and carry no thread affinity; the kernel
// reads them regardless of which thread holds the reactor.
unsafe impl Send for BufRing {}

/// Maps `bytes` of private anonymous memory.
fn map_anonymous(bytes: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping touches no existing memory.
    let address = unsafe {
        libc::mmap(
            ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(address.cast()).ok_or_else(|| io::Error::from(ErrorKind::OutOfMemory))
}

impl BufRing {
    fn new(count: u16, buffer_len: u32) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        let page = 4096;
        let entries_bytes = (count as usize * mem::size_of::<BufEntry>()).next_multiple_of(page);
        let data_bytes = count as usize * buffer_len as usize;
        let entries = map_anonymous(entries_bytes)?.cast::<BufEntry>();
        let data = match map_anonymous(data_bytes) {
            Ok(data) => data,
            Err(e) => {
                // SAFETY: `entries` was mapped just above with this length and is unused.
                unsafe { libc::munmap(entries.as_ptr().cast(), entries_bytes) };
                return Err(e);
            }
        };
        Ok(BufRing {
            entries,
            entries_bytes,
            data,
            data_bytes,
            count,
            buffer_len,
            tail: 0,
            leaked: false,
        })
    }

    fn ring_address(&self) -> u64 {
        self.entries.as_ptr() as u64
    }

    /// Hands buffer `bid` to the kernel.
    fn provide(&mut self, bid: u16) {
        assert!(bid < self.count, "buffer id {bid} out of range");
        let slot = (self.tail & (self.count - 1)) as usize;
        let address = self.data.as_ptr() as u64 + bid as u64 * self.buffer_len as u64;
        // SAFETY: `slot < count`, so the entry lies inside the mapping. The kernel reads only
        // entries between its head and the published tail, and this one is at the tail, so it
        // is ours to write. Only `addr`, `len` and `bid` are written, never the shared tail that
        // overlays entry 0's `resv`.
        unsafe {
            let entry = self.entries.as_ptr().add(slot);
            ptr::addr_of_mut!((*entry).addr).write(address);
            ptr::addr_of_mut!((*entry).len).write(self.buffer_len);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the shared tail is the 2-aligned u16 at byte 14 of the page-aligned ring,
        // inside the mapping; the kernel only reads it.
        let tail = unsafe {
            &*self
                .entries
                .as_ptr()
                .cast::<u8>()
                .add(BUF_RING_TAIL_OFFSET)
                .cast::<AtomicU16>()
        };
        // Release: the entry written above must be visible to the kernel before a tail that
        // covers it.
        tail.store(self.tail, Ordering::Release);
    }

    fn provide_all(&mut self) {
        for bid in 0..self.count {
            self.provide(bid);
        }
    }

    /// The first `len` bytes of buffer `bid`.
    ///
    /// # Safety
    ///
    /// The kernel must have handed `bid` back in a CQE, and the buffer must not have been
    /// provided again since.
    unsafe fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count, "buffer id {bid} out of range");
        assert!(len <= self.buffer_len as usize);
        // SAFETY: the range lies inside the data mapping (asserted above) and, per the caller,
        // the kernel does not write to it until it is provided again.
        unsafe {
            std::slice::from_raw_parts(
                self.data
                    .as_ptr()
                    .add(bid as usize * self.buffer_len as usize),
                len,
            )
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: both mappings were made by `BufRing::new` with these lengths, and no op that
        // could use them is left in the kernel (otherwise `leaked` is set).
        unsafe {
            libc::munmap(self.data.as_ptr().cast(), self.data_bytes);
            libc::munmap(self.entries.as_ptr().cast(), self.entries_bytes);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Ops as types. Each builds its SQE from storage it owns; that storage is boxed or on the heap
// so that moving the op (into or inside the slab) never moves what the kernel points at.

/// Bytes reserved for the sender's address in a multishot recvmsg buffer.
const NAME_LEN: usize = mem::size_of::<libc::sockaddr_storage>();

/// A `msghdr` the kernel reads.
struct MessageHeader(libc::msghdr);

// SAFETY: the header's pointers (if any) point into storage owned by the same op, which moves
// between threads together with it.
unsafe impl Send for MessageHeader {}

/// Multishot accept on a listener: one CQE per accepted connection.
struct AcceptOp {
    listener: Token,
}

impl AcceptOp {
    fn sqe(&self, fd: RawFd) -> squeue::Entry {
        opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }
}

/// Multishot receive on a stream into the provided buffers: one CQE per filled buffer.
struct RecvOp {
    stream: Token,
}

impl RecvOp {
    fn sqe(&self, fd: RawFd) -> squeue::Entry {
        opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP).build()
    }
}

/// Multishot recvmsg on a UDP socket into the provided buffers: one CQE per datagram. The
/// header only sizes the name and control areas the kernel lays out in each buffer.
struct RecvMsgOp {
    socket: Token,
    header: Box<MessageHeader>,
}

impl RecvMsgOp {
    fn new(socket: Token) -> RecvMsgOp {
        // SAFETY: msghdr is plain old data; all-zero (null pointers, zero lengths) is valid.
        let mut header: libc::msghdr = unsafe { mem::zeroed() };
        header.msg_namelen = NAME_LEN as libc::socklen_t;
        RecvMsgOp {
            socket,
            header: Box::new(MessageHeader(header)),
        }
    }

    fn sqe(&self, fd: RawFd) -> squeue::Entry {
        opcode::RecvMsgMulti::new(types::Fd(fd), &self.header.0, BUFFER_GROUP).build()
    }
}

/// Connect a stream; owns the peer address until the CQE.
struct ConnectOp {
    stream: Token,
    address: Box<libc::sockaddr_storage>,
    address_len: libc::socklen_t,
}

impl ConnectOp {
    fn sqe(&self, fd: RawFd) -> squeue::Entry {
        let address: *const libc::sockaddr_storage = &*self.address;
        opcode::Connect::new(types::Fd(fd), address.cast(), self.address_len).build()
    }
}

/// The header and iovecs of one stream send.
struct SendMessage {
    header: libc::msghdr,
    iovecs: [libc::iovec; IOVECS_MAX],
}

// SAFETY: the pointers point into this value and into buffers owned by the same `SendOp`.
unsafe impl Send for SendMessage {}

impl SendMessage {
    fn new() -> Box<SendMessage> {
        Box::new(SendMessage {
            // SAFETY: msghdr is plain old data; all-zero is valid.
            header: unsafe { mem::zeroed() },
            iovecs: [libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; IOVECS_MAX],
        })
    }
}

/// A `sendmsg` of up to [`IOVECS_MAX`] queued buffers of one stream, in order. After a short
/// send the same op is resubmitted for the remainder.
struct SendOp {
    stream: Token,
    /// Buffers not yet fully sent, owned until the op ends.
    buffers: VecDeque<Vec<u8>>,
    /// Bytes of `buffers[0]` already sent.
    written: usize,
    message: Box<SendMessage>,
    /// Sent with `SENDMSG_ZC`: the kernel reads the buffers in place, so they stay owned
    /// until its notification CQE, after the result CQE.
    zero_copy: bool,
    /// A zero-copy send's result, kept while the notification is awaited.
    result: Option<i32>,
}

impl SendOp {
    fn sqe(&mut self, fd: RawFd) -> squeue::Entry {
        assert!(!self.buffers.is_empty());
        assert!(self.buffers.len() <= IOVECS_MAX);
        let message = &mut *self.message;
        for (i, buffer) in self.buffers.iter().enumerate() {
            let start = if i == 0 { self.written } else { 0 };
            let part = &buffer[start..];
            message.iovecs[i] = libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            };
        }
        message.header.msg_iov = message.iovecs.as_mut_ptr();
        message.header.msg_iovlen = self.buffers.len();
        // MSG_WAITALL makes the kernel retry a partial send itself (io_uring treats it so for
        // stream sockets); MSG_NOSIGNAL turns a broken pipe into EPIPE instead of SIGPIPE.
        let flags = (libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32;
        if self.zero_copy {
            // Ask the notification to say whether the kernel had to copy after all (loopback
            // and some devices do), so the stream can stop asking for zero-copy.
            opcode::SendMsgZc::new(types::Fd(fd), &message.header)
                .flags(flags)
                .ioprio(SEND_ZC_REPORT_USAGE)
                .build()
        } else {
            opcode::SendMsg::new(types::Fd(fd), &message.header)
                .flags(flags)
                .build()
        }
    }

    /// Accounts `sent` bytes; buffers sent in full go to `done`.
    fn advance(&mut self, mut sent: usize, done: &mut Vec<Vec<u8>>) {
        while sent > 0 {
            let left = self.buffers[0].len() - self.written;
            if sent >= left {
                sent -= left;
                self.written = 0;
                done.push(
                    self.buffers
                        .pop_front()
                        .expect("sent bytes belong to a buffer"),
                );
            } else {
                self.written += sent;
                sent = 0;
            }
        }
    }

    fn remaining(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum::<usize>() - self.written
    }
}

/// The header, iovec and destination of one datagram send.
struct DatagramMessage {
    header: libc::msghdr,
    iovec: libc::iovec,
    address: libc::sockaddr_storage,
}

// SAFETY: the pointers point into this value and into the datagram owned by the same op.
unsafe impl Send for DatagramMessage {}

/// A `sendmsg` of one datagram.
struct DatagramOp {
    socket: Token,
    datagram: Vec<u8>,
    message: Box<DatagramMessage>,
}

impl DatagramOp {
    fn sqe(&mut self, fd: RawFd) -> squeue::Entry {
        let message = &mut *self.message;
        message.iovec = libc::iovec {
            iov_base: self.datagram.as_ptr().cast_mut().cast(),
            iov_len: self.datagram.len(),
        };
        message.header.msg_iov = &mut message.iovec;
        message.header.msg_iovlen = 1;
        message.header.msg_name = ptr::addr_of_mut!(message.address).cast();
        opcode::SendMsg::new(types::Fd(fd), &message.header)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Write,
    Read,
    Sync,
}

/// A positioned read or write of a caller's file (resubmitted until the buffer is done or the
/// file ends), or an fdatasync.
struct FileOp {
    kind: FileKind,
    fd: RawFd,
    offset: u64,
    buffer: Vec<u8>,
    /// Bytes transferred so far.
    done: usize,
    tag: u64,
    /// A direct write's pooled buffer (then `buffer` is empty).
    direct: Option<DirectSlot>,
}

/// The pooled aligned buffer a direct write is made from ([`DirectPool`]).
struct DirectSlot {
    /// Index in the pool, and in the ring's registered buffers when `fixed`.
    index: u16,
    /// The buffer's address (stable while the pool lives; kept as an integer so the op stays
    /// `Send`).
    address: usize,
    /// Bytes to write.
    len: usize,
    /// Written with `WRITE_FIXED` from the registered buffer.
    fixed: bool,
}

impl FileOp {
    /// Bytes the op transfers in all.
    fn len(&self) -> usize {
        self.direct.as_ref().map_or(self.buffer.len(), |d| d.len)
    }

    fn sqe(&mut self) -> squeue::Entry {
        let fd = types::Fd(self.fd);
        let len = (self.len() - self.done).min(FILE_CHUNK_MAX) as u32;
        let offset = self.offset + self.done as u64;
        if let Some(direct) = &self.direct {
            let address = (direct.address + self.done) as *const u8;
            return if direct.fixed {
                opcode::WriteFixed::new(fd, address, len, direct.index)
                    .offset(offset)
                    .build()
            } else {
                opcode::Write::new(fd, address, len).offset(offset).build()
            };
        }
        match self.kind {
            FileKind::Write => opcode::Write::new(fd, self.buffer[self.done..].as_ptr(), len)
                .offset(offset)
                .build(),
            FileKind::Read => opcode::Read::new(fd, self.buffer[self.done..].as_mut_ptr(), len)
                .offset(offset)
                .build(),
            FileKind::Sync => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
        }
    }
}

/// Cancels every op on a socket being closed. The socket's descriptor stays open until this
/// and the cancelled ops have completed, so the cancel never matches a reused descriptor.
struct CancelOp {
    socket: Token,
}

impl CancelOp {
    fn sqe(&self, fd: RawFd) -> squeue::Entry {
        opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build()
    }
}

/// A multishot poll for readability on a watched descriptor ([`Reactor::watch`]): one CQE per
/// signal, nothing reported; re-armed when the kernel ends it while the watch lasts.
struct WatchOp {
    /// Index in [`UringReactor::watches`].
    watch: usize,
    fd: RawFd,
}

impl WatchOp {
    fn sqe(&self) -> squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd), libc::POLLIN as u32)
            .multi(true)
            .build()
    }
}

/// A watched descriptor and its poll op in flight (a slab index), if any.
struct Watch {
    fd: RawFd,
    op: Option<usize>,
}

/// An op from the moment its SQE is queued until its final CQE has been handled.
enum Op {
    Watch(WatchOp),
    Accept(AcceptOp),
    Recv(RecvOp),
    RecvMsg(RecvMsgOp),
    Connect(ConnectOp),
    Send(SendOp),
    Datagram(DatagramOp),
    File(FileOp),
    Cancel(CancelOp),
}

impl Op {
    /// The socket the op works on (file ops name the caller's descriptor instead).
    fn socket(&self) -> Option<Token> {
        match self {
            Op::Accept(op) => Some(op.listener),
            Op::Recv(op) => Some(op.stream),
            Op::RecvMsg(op) => Some(op.socket),
            Op::Connect(op) => Some(op.stream),
            Op::Send(op) => Some(op.stream),
            Op::Datagram(op) => Some(op.socket),
            Op::Cancel(op) => Some(op.socket),
            Op::File(_) | Op::Watch(_) => None,
        }
    }

    /// The SQE (without `user_data`); `fd` is the socket's descriptor for socket ops.
    fn sqe(&mut self, fd: RawFd) -> squeue::Entry {
        match self {
            Op::Accept(op) => op.sqe(fd),
            Op::Recv(op) => op.sqe(fd),
            Op::RecvMsg(op) => op.sqe(fd),
            Op::Connect(op) => op.sqe(fd),
            Op::Send(op) => op.sqe(fd),
            Op::Datagram(op) => op.sqe(fd),
            Op::Cancel(op) => op.sqe(fd),
            Op::File(op) => op.sqe(),
            Op::Watch(op) => op.sqe(),
        }
    }
}

/// The in-flight slab: `user_data` is the index. A slot is busy from `insert` to `release`;
/// in between, its op may be taken out to handle a CQE and restored if the op goes on.
#[derive(Default)]
struct OpTable {
    slots: Vec<Option<Op>>,
    free: Vec<usize>,
    busy: usize,
}

impl OpTable {
    fn insert(&mut self, op: Op) -> usize {
        self.busy += 1;
        match self.free.pop() {
            Some(index) => {
                debug_assert!(self.slots[index].is_none());
                self.slots[index] = Some(op);
                index
            }
            None => {
                self.slots.push(Some(op));
                let index = self.slots.len() - 1;
                assert!((index as u64) < USER_DATA_RESERVED_MIN);
                index
            }
        }
    }

    fn take(&mut self, index: usize) -> Option<Op> {
        self.slots.get_mut(index).and_then(Option::take)
    }

    fn restore(&mut self, index: usize, op: Op) {
        debug_assert!(self.slots[index].is_none());
        self.slots[index] = Some(op);
    }

    /// Ends a taken op's life: its slot becomes free.
    fn release(&mut self, index: usize) {
        debug_assert!(self.slots[index].is_none());
        debug_assert!(!self.free.contains(&index));
        self.busy -= 1;
        self.free.push(index);
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Op> {
        self.slots.get_mut(index).and_then(Option::as_mut)
    }

    fn len(&self) -> usize {
        self.busy
    }
}

// ------------------------------------------------------------------------------------------
// Sockets.

struct StreamIo {
    stream: TcpStream,
    /// Buffers queued and not yet handed to a send op.
    out: VecDeque<Vec<u8>>,
    /// Bytes queued and not yet written (in `out` and in the send op in flight).
    queued: usize,
    connecting: bool,
    /// A send op is in flight (at most one per stream keeps the bytes in order).
    sending: bool,
    /// Listed in `send_ready`.
    scheduled: bool,
    /// Large sends use `SENDMSG_ZC` (cleared for good when the kernel reports that it
    /// copied the data anyway: loopback, or a device without scatter-gather).
    zero_copy: bool,
    /// A zero-copy send has its result and waits for the kernel's notification.
    notification_pending: bool,
}

impl StreamIo {
    fn new(stream: TcpStream, connecting: bool) -> StreamIo {
        StreamIo {
            stream,
            out: VecDeque::new(),
            queued: 0,
            connecting,
            sending: false,
            scheduled: false,
            zero_copy: true,
            notification_pending: false,
        }
    }
}

struct UdpIo {
    socket: UdpSocket,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Datagram send ops in flight.
    sending: usize,
    scheduled: bool,
}

enum SocketIo {
    Listener(TcpListener),
    Stream(StreamIo),
    Udp(UdpIo),
}

impl SocketIo {
    fn fd(&self) -> RawFd {
        match self {
            SocketIo::Listener(listener) => listener.as_raw_fd(),
            SocketIo::Stream(io) => io.stream.as_raw_fd(),
            SocketIo::Udp(io) => io.socket.as_raw_fd(),
        }
    }
}

struct Socket {
    io: SocketIo,
    /// Closed by the shard or after an error: no new ops, waiting for `in_flight` to reach 0.
    closing: bool,
    /// Ops (queued or in the kernel) that name this socket.
    in_flight: u32,
}

/// A socket slot. The generation is part of the token, so a token of a closed socket never
/// names the next socket in the same slot.
struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

fn token_of(index: usize, generation: u32) -> Token {
    (u64::from(generation) << 32) | index as u64
}

fn slot_socket_mut(slots: &mut [Slot], token: Token) -> Option<&mut Socket> {
    let slot = slots.get_mut(token as u32 as usize)?;
    if slot.generation != (token >> 32) as u32 {
        return None;
    }
    slot.socket.as_mut()
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        ErrorKind::Unsupported,
        format!("io_uring lacks {what}; use the epoll backend (TAMTAM_IO=poll)"),
    )
}

/// Names the likely cause of an `io_uring_setup` failure. EPERM and ENOSYS (io_uring blocked or
/// absent) keep the kinds `PermissionDenied` and `Unsupported`.
/// `RLIMIT_MEMLOCK` in words ("64 KiB", "unlimited").
fn memlock_limit() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return "unknown".into();
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        format!("{} KiB", limit.rlim_cur / 1024)
    }
}

fn setup_error(error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(libc::EPERM) => io::Error::new(
            ErrorKind::PermissionDenied,
            "io_uring_setup: permission denied (io_uring blocked by a seccomp filter such as \
             Docker's default profile, or by the kernel.io_uring_disabled sysctl); use \
             TAMTAM_IO=poll",
        ),
        Some(libc::ENOSYS) => io::Error::new(
            ErrorKind::Unsupported,
            "io_uring_setup: not implemented (kernel without io_uring); use TAMTAM_IO=poll",
        ),
        Some(libc::ENOMEM) => io::Error::new(
            ErrorKind::OutOfMemory,
            "io_uring_setup: no memory for the rings (locked-memory limit, see ulimit -l, or \
             memory cgroup); lower UringConfig sizes or use TAMTAM_IO=poll",
        ),
        _ => io::Error::new(error.kind(), format!("io_uring_setup: {error}")),
    }
}

/// Opcodes the backend needs, with the name an error reports when one is missing.
const OPCODES_REQUIRED: [(u8, &str); 11] = [
    (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD"),
    (opcode::Accept::CODE, "IORING_OP_ACCEPT"),
    (opcode::Recv::CODE, "IORING_OP_RECV"),
    (opcode::RecvMsg::CODE, "IORING_OP_RECVMSG"),
    (opcode::SendMsg::CODE, "IORING_OP_SENDMSG"),
    (opcode::Connect::CODE, "IORING_OP_CONNECT"),
    (opcode::Read::CODE, "IORING_OP_READ"),
    (opcode::Write::CODE, "IORING_OP_WRITE"),
    (opcode::Fsync::CODE, "IORING_OP_FSYNC"),
    (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
    // Multishot recv and recvmsg (Linux 6.0) have no probe bit of their own; SEND_ZC arrived
    // in the same release, so its presence stands for them.
    (
        opcode::SendZc::CODE,
        "multishot recv/recvmsg (Linux 6.0; probed through IORING_OP_SEND_ZC)",
    ),
];

/// The io_uring backend. See the module documentation.
pub struct UringReactor {
    ring: IoUring,
    setup: UringSetup,
    /// False until the first poll enables an `R_DISABLED` ring.
    enabled: bool,
    /// The kernel has been given at least one SQE.
    entered: bool,
    ops: OpTable,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    buffers: BufRing,
    /// SQEs queued while the SQ was full (outside `poll`, or behind earlier backlog entries);
    /// `poll` moves them to the SQ in order.
    backlog: VecDeque<squeue::Entry>,
    /// Sockets with output to hand to new send ops at the next poll.
    send_ready: Vec<Token>,
    /// Written buffers, for `reclaim`.
    done: Vec<Vec<u8>>,
    // Pools of send headers. Boxed on purpose: a pooled box is handed to an op whose SQE points
    // into it, and the kernel's view of it must not move when the op does.
    #[allow(clippy::vec_box)]
    send_messages: Vec<Box<SendMessage>>,
    send_queues: Vec<VecDeque<Vec<u8>>>,
    #[allow(clippy::vec_box)]
    datagram_messages: Vec<Box<DatagramMessage>>,
    waker: Arc<EventFd>,
    /// The 8 bytes the waker's eventfd read writes into.
    waker_value: Box<u64>,
    waker_armed: bool,
    /// Watched descriptors, by watch index (the watch's token).
    watches: Vec<Option<Watch>>,
    completions: Vec<cqueue::Entry>,
    /// The CQ's dropped-completion counter as last seen.
    cq_dropped: u32,
    /// Set by `Drop`: completions release resources only; nothing is re-armed or reported.
    shutting_down: bool,
    counters: UringCounters,
    /// Aligned buffers for direct spool writes (registered with the ring when allowed).
    direct: DirectPool,
    /// Why registering `direct` failed, if it did.
    direct_error: Option<String>,
    /// [`UringConfig::zero_copy_send_min`], 0 when the kernel lacks `SENDMSG_ZC`.
    zero_copy_send_min: usize,
}

impl UringReactor {
    /// A reactor with the default [`UringConfig`].
    ///
    /// Fails when io_uring is blocked or absent (`PermissionDenied` for EPERM, `Unsupported`
    /// for ENOSYS) or lacks something this backend needs (`Unsupported`, naming it), so that
    /// [`super::reactor::open`] can fall back to epoll.
    pub fn new() -> io::Result<UringReactor> {
        UringReactor::with_config(UringConfig::default())
    }

    /// A reactor with the given sizes. Fails as [`UringReactor::new`] does, and with
    /// `InvalidInput` for sizes that are not powers of two or too small.
    pub fn with_config(config: UringConfig) -> io::Result<UringReactor> {
        UringReactor::with_setups(config, &UringSetup::PREFERENCE)
    }

    /// A reactor set up with the first of `setups` the kernel accepts.
    fn with_setups(config: UringConfig, setups: &[UringSetup]) -> io::Result<UringReactor> {
        config.check()?;
        let (ring, setup) = UringReactor::build_ring(&config, setups)?;
        let send_msg_zc = UringReactor::check_kernel(&ring)?;
        let mut buffers = BufRing::new(config.buffer_count, config.buffer_len)?;
        // SAFETY: the ring memory stays mapped until the buffer group is unregistered in Drop,
        // or is leaked if the kernel might still use it.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buffers.ring_address(),
                config.buffer_count,
                BUFFER_GROUP,
                0,
            )
        }
        .map_err(|e| {
            unsupported(&format!(
                "provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19): {e}"
            ))
        })?;
        buffers.provide_all();
        let mut direct = DirectPool::new(config.direct_buffer_len);
        let iovecs: Vec<libc::iovec> = direct
            .regions()
            .into_iter()
            .map(|(address, len)| libc::iovec {
                iov_base: address as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // SAFETY: the pool's buffers stay allocated, unmoved, for the reactor's life; the ring
        // (dropped first, being the first field) releases the registration before they are
        // freed, and `Drop` leaks them if the kernel may still write from them.
        let direct_error = match unsafe { ring.submitter().register_buffers(&iovecs) } {
            Ok(()) => {
                direct.set_registered(true);
                None
            }
            Err(e) => Some(format!(
                "io_uring could not register {} KiB of spool buffers ({e}); RLIMIT_MEMLOCK is {}",
                direct.len() * direct.buffer_len() / 1024,
                memlock_limit()
            )),
        };
        let mut reactor = UringReactor {
            ring,
            setup,
            enabled: setup != UringSetup::DeferTaskrun,
            entered: false,
            ops: OpTable::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            buffers,
            backlog: VecDeque::new(),
            send_ready: Vec::new(),
            done: Vec::new(),
            send_messages: Vec::new(),
            send_queues: Vec::new(),
            datagram_messages: Vec::new(),
            waker: Arc::new(EventFd::new()?),
            waker_value: Box::new(0),
            waker_armed: false,
            watches: Vec::new(),
            completions: Vec::with_capacity(config.cq_entries as usize),
            cq_dropped: 0,
            shutting_down: false,
            counters: UringCounters::default(),
            direct,
            direct_error,
            zero_copy_send_min: if send_msg_zc {
                config.zero_copy_send_min
            } else {
                0
            },
        };
        reactor.arm_waker();
        Ok(reactor)
    }

    fn build_ring(
        config: &UringConfig,
        setups: &[UringSetup],
    ) -> io::Result<(IoUring, UringSetup)> {
        let mut last = None;
        for &setup in setups {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(config.cq_entries);
            match setup {
                UringSetup::DeferTaskrun => {
                    builder
                        .setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_submit_all()
                        .setup_r_disabled();
                }
                UringSetup::CoopTaskrun => {
                    builder.setup_coop_taskrun().setup_submit_all();
                }
                UringSetup::Plain => {}
            }
            match builder.build(config.sq_entries) {
                Ok(ring) => return Ok((ring, setup)),
                // EINVAL: this kernel does not know a flag; try fewer.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
                Err(e) => return Err(setup_error(e)),
            }
        }
        Err(setup_error(last.unwrap_or_else(|| {
            io::Error::new(ErrorKind::InvalidInput, "no io_uring setup to try")
        })))
    }

    /// Checks what the backend needs; returns whether `SENDMSG_ZC` (Linux 6.1) is there.
    fn check_kernel(ring: &IoUring) -> io::Result<bool> {
        let params = ring.params();
        if !params.is_feature_nodrop() {
            return Err(unsupported("IORING_FEAT_NODROP (Linux 5.5)"));
        }
        if !params.is_feature_ext_arg() {
            return Err(unsupported("IORING_FEAT_EXT_ARG (Linux 5.11)"));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| unsupported(&format!("IORING_REGISTER_PROBE (Linux 5.6): {e}")))?;
        for (code, name) in OPCODES_REQUIRED {
            if !probe.is_supported(code) {
                return Err(unsupported(name));
            }
        }
        Ok(probe.is_supported(opcode::SendMsgZc::CODE))
    }

    /// True when no SQE waits to be submitted and no op but the waker's read and the
    /// watches' polls is in the kernel, and the CQ holds nothing.
    fn nothing_to_reap(&mut self) -> bool {
        if !self.backlog.is_empty() || !self.ring.submission().is_empty() {
            return false;
        }
        let watching = self
            .watches
            .iter()
            .filter(|w| w.as_ref().is_some_and(|w| w.op.is_some()))
            .count();
        self.ops.len() == watching
            && self.ring.completion().is_empty()
            && !self.ring.submission().cq_overflow()
    }

    /// How the ring was set up.
    pub fn setup(&self) -> UringSetup {
        self.setup
    }

    /// Counters since creation.
    pub fn counters(&self) -> UringCounters {
        self.counters
    }

    /// Ops queued or in the kernel (the waker's read excluded).
    pub fn ops_in_flight(&self) -> usize {
        self.ops.len()
    }

    fn socket_mut(&mut self, token: Token) -> Option<&mut Socket> {
        slot_socket_mut(&mut self.slots, token)
    }

    /// The socket exists, is not closing, and the reactor is not being dropped.
    fn is_open(&mut self, token: Token) -> bool {
        !self.shutting_down && self.socket_mut(token).is_some_and(|s| !s.closing)
    }

    fn open_stream_mut(&mut self, token: Token) -> Option<&mut StreamIo> {
        match self.socket_mut(token) {
            Some(Socket {
                io: SocketIo::Stream(io),
                closing: false,
                ..
            }) => Some(io),
            _ => None,
        }
    }

    fn insert_socket(&mut self, io: SocketIo) -> Token {
        let index = match self.free_slots.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    socket: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        debug_assert!(slot.socket.is_none());
        slot.socket = Some(Socket {
            io,
            closing: false,
            in_flight: 0,
        });
        token_of(index, slot.generation)
    }

    /// Frees a closing socket's slot, closing its descriptor. Only when no op names it.
    fn remove_socket(&mut self, token: Token) {
        let index = token as u32 as usize;
        let slot = &mut self.slots[index];
        let socket = slot.socket.take().expect("removing a live socket");
        assert!(socket.closing);
        assert_eq!(socket.in_flight, 0);
        if let SocketIo::Stream(io) = &socket.io
            && io.notification_pending
        {
            // Zero-copy data still queued in the kernel pins our buffers until it is sent or
            // dropped; a graceful close would keep it queued as long as the peer does not
            // read. Reset the connection instead, so the kernel frees it (and notifies) now.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on a socket we own, with a valid linger struct and its size.
            unsafe {
                libc::setsockopt(
                    io.stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(index);
    }

    /// Queues an SQE: into the SQ if it has room and nothing waits before it, else into the
    /// backlog. Never enters the kernel.
    fn push(&mut self, entry: squeue::Entry) {
        if self.backlog.is_empty() {
            // SAFETY: every pointer in an entry points into storage owned by an op in
            // `self.ops` (or into `waker_value`), which stays allocated until the op's final
            // CQE has been handled or, failing that, is leaked.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
        }
        self.backlog.push_back(entry);
    }

    /// Puts an op in the slab and queues its SQE.
    fn start(&mut self, mut op: Op) {
        let fd = match op.socket() {
            Some(token) => {
                let socket = self
                    .socket_mut(token)
                    .expect("an op is started only on a live socket");
                socket.in_flight += 1;
                socket.io.fd()
            }
            None => -1,
        };
        let entry = op.sqe(fd);
        let index = self.ops.insert(op);
        self.push(entry.user_data(index as u64));
    }

    /// Queues the SQE of an op that stays in its slot (the rest of a short send or file
    /// transfer).
    fn restart(&mut self, index: usize) {
        let token = self.ops.get_mut(index).and_then(|op| op.socket());
        let fd = match token {
            Some(token) => self.socket_mut(token).expect("live socket").io.fd(),
            None => -1,
        };
        let entry = self.ops.get_mut(index).expect("restarted op").sqe(fd);
        self.push(entry.user_data(index as u64));
    }

    /// Ends a taken op: frees its slot and, once no op names a closing socket, the socket.
    fn finish(&mut self, index: usize, socket: Option<Token>) {
        self.ops.release(index);
        let Some(token) = socket else {
            return;
        };
        let socket = self.socket_mut(token).expect("an op's socket outlives it");
        socket.in_flight -= 1;
        if socket.closing && socket.in_flight == 0 {
            self.remove_socket(token);
        }
    }

    fn arm_waker(&mut self) {
        let buffer: *mut u64 = &mut *self.waker_value;
        let entry = opcode::Read::new(types::Fd(self.waker.raw()), buffer.cast(), 8)
            .build()
            .user_data(USER_DATA_WAKER);
        self.waker_armed = true;
        self.push(entry);
    }

    fn schedule(&mut self, token: Token) {
        let Some(socket) = self.socket_mut(token) else {
            return;
        };
        if socket.closing {
            return;
        }
        let scheduled = match &mut socket.io {
            SocketIo::Stream(io) => &mut io.scheduled,
            SocketIo::Udp(io) => &mut io.scheduled,
            SocketIo::Listener(_) => return,
        };
        if !*scheduled {
            *scheduled = true;
            self.send_ready.push(token);
        }
    }

    /// Marks a socket closing, gives back its unsent buffers and cancels its ops; the
    /// descriptor is closed when the last of them completes.
    fn begin_close(&mut self, token: Token) {
        let done = &mut self.done;
        let Some(socket) = slot_socket_mut(&mut self.slots, token) else {
            return;
        };
        if socket.closing {
            return;
        }
        socket.closing = true;
        match &mut socket.io {
            SocketIo::Stream(io) => {
                done.extend(io.out.drain(..));
                io.queued = 0;
            }
            SocketIo::Udp(io) => done.extend(io.out.drain(..).map(|(_, datagram)| datagram)),
            SocketIo::Listener(_) => {}
        }
        if socket.in_flight == 0 {
            self.remove_socket(token);
        } else {
            self.start(Op::Cancel(CancelOp { socket: token }));
        }
    }

    /// Closes a socket after end of stream or an error; streams report `Closed`.
    fn close_with(
        &mut self,
        token: Token,
        error: Option<io::Error>,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let Some(socket) = self.socket_mut(token) else {
            return 0;
        };
        let is_stream = matches!(socket.io, SocketIo::Stream(_));
        self.begin_close(token);
        if is_stream {
            on_event(IoEvent::Closed {
                stream: token,
                error,
            });
            return 1;
        }
        0
    }

    // ---- submit -------------------------------------------------------------------------

    /// Hands queued output to send ops: one batched `sendmsg` per stream without one in
    /// flight, and datagrams up to the per-socket limit.
    fn prepare_sends(&mut self) {
        let mut ready = mem::take(&mut self.send_ready);
        for &token in &ready {
            self.prepare_send(token);
        }
        ready.clear();
        debug_assert!(self.send_ready.is_empty());
        self.send_ready = ready;
    }

    fn prepare_send(&mut self, token: Token) {
        let done = &mut self.done;
        let Some(socket) = slot_socket_mut(&mut self.slots, token) else {
            return;
        };
        if socket.closing {
            return;
        }
        match &mut socket.io {
            SocketIo::Listener(_) => {}
            SocketIo::Stream(io) => {
                io.scheduled = false;
                if io.sending || io.connecting {
                    return;
                }
                let mut buffers = self.send_queues.pop().unwrap_or_default();
                while buffers.len() < IOVECS_MAX {
                    let Some(buffer) = io.out.pop_front() else {
                        break;
                    };
                    if buffer.is_empty() {
                        done.push(buffer);
                    } else {
                        buffers.push_back(buffer);
                    }
                }
                if buffers.is_empty() {
                    self.send_queues.push(buffers);
                    return;
                }
                io.sending = true;
                let zero_copy = io.zero_copy
                    && self.zero_copy_send_min > 0
                    && buffers.iter().map(Vec::len).sum::<usize>() >= self.zero_copy_send_min;
                let message = self.send_messages.pop().unwrap_or_else(SendMessage::new);
                self.start(Op::Send(SendOp {
                    stream: token,
                    buffers,
                    written: 0,
                    message,
                    zero_copy,
                    result: None,
                }));
            }
            SocketIo::Udp(io) => {
                io.scheduled = false;
                while let Some((to, datagram)) = self.next_datagram(token) {
                    let mut message = self.datagram_messages.pop().unwrap_or_else(|| {
                        Box::new(DatagramMessage {
                            // SAFETY: msghdr, iovec and sockaddr_storage are plain old data;
                            // all-zero is valid for each.
                            header: unsafe { mem::zeroed() },
                            iovec: libc::iovec {
                                iov_base: ptr::null_mut(),
                                iov_len: 0,
                            },
                            // SAFETY: as above.
                            address: unsafe { mem::zeroed() },
                        })
                    });
                    let (address, address_len) = net::sockaddr(to);
                    message.address = address;
                    message.header.msg_namelen = address_len;
                    self.start(Op::Datagram(DatagramOp {
                        socket: token,
                        datagram,
                        message,
                    }));
                }
            }
        }
    }

    /// The next queued datagram of a UDP socket, if it may have another send in flight.
    fn next_datagram(&mut self, token: Token) -> Option<(SocketAddr, Vec<u8>)> {
        let Some(Socket {
            io: SocketIo::Udp(io),
            closing: false,
            ..
        }) = self.socket_mut(token)
        else {
            return None;
        };
        // Several sends in flight may reorder datagrams when the socket buffer is full; UDP
        // promises no order, and the bus does not rely on it.
        if io.sending >= DATAGRAMS_IN_FLIGHT_MAX {
            return None;
        }
        let datagram = io.out.pop_front()?;
        io.sending += 1;
        Some(datagram)
    }

    /// Moves the backlog into the SQ, submitting early whenever the SQ is full.
    fn flush_backlog(&mut self) -> io::Result<()> {
        while let Some(entry) = self.backlog.front() {
            // SAFETY: as in `push`: the entry's storage is owned by its op until completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.backlog.pop_front();
                continue;
            }
            self.counters.submits_early += 1;
            self.entered = true;
            match self.ring.submit() {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if is_transient(&e) => return Ok(()),
                Err(e) => return Err(enter_error(e)),
            }
        }
        Ok(())
    }

    /// The one enter of a poll: submits the SQ and reaps, waiting up to `wait` for a
    /// completion when given.
    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        self.entered = true;
        let result = match wait {
            Some(wait) => {
                let timespec = types::Timespec::from(wait);
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => {
                let to_submit = self.ring.submission().len() as u32;
                // SAFETY: a plain io_uring_enter on our ring with no extra argument; GETEVENTS
                // with min_complete 0 runs deferred completion work without waiting.
                unsafe {
                    self.ring.submitter().enter::<libc::sigset_t>(
                        to_submit,
                        0,
                        ENTER_GETEVENTS,
                        None,
                    )
                }
            }
        };
        match result {
            Ok(_) => Ok(()),
            // ETIME: the wait timed out.
            Err(e) if e.raw_os_error() == Some(libc::ETIME) || is_transient(&e) => Ok(()),
            Err(e) => Err(enter_error(e)),
        }
    }

    // ---- complete -----------------------------------------------------------------------

    /// Handles everything in the CQ; returns the events reported.
    fn drain(&mut self, on_event: &mut dyn FnMut(IoEvent<'_>)) -> usize {
        let mut count = 0;
        let mut completions = mem::take(&mut self.completions);
        for _ in 0..DRAIN_ROUNDS_MAX {
            completions.clear();
            completions.extend(self.ring.completion());
            if completions.is_empty() {
                break;
            }
            for cqe in &completions {
                count += self.complete(cqe, on_event);
            }
        }
        completions.clear();
        self.completions = completions;
        count
    }

    fn complete(&mut self, cqe: &cqueue::Entry, on_event: &mut dyn FnMut(IoEvent<'_>)) -> usize {
        let user_data = cqe.user_data();
        let result = cqe.result();
        let flags = cqe.flags();
        if user_data == USER_DATA_WAKER {
            self.waker_armed = false;
            if !self.shutting_down {
                self.arm_waker();
            }
            return 0;
        }
        if user_data >= USER_DATA_RESERVED_MIN {
            return 0;
        }
        let index = user_data as usize;
        let Some(op) = self.ops.take(index) else {
            debug_assert!(false, "a CQE for free slot {index}");
            return 0;
        };
        match op {
            Op::Accept(op) => self.accept_done(index, op, result, flags, on_event),
            Op::Recv(op) => self.recv_done(index, op, result, flags, on_event),
            Op::RecvMsg(op) => self.recv_msg_done(index, op, result, flags, on_event),
            Op::Connect(op) => self.connect_done(index, op, result, on_event),
            Op::Send(op) => self.send_done(index, op, result, flags, on_event),
            Op::Datagram(op) => {
                self.datagram_done(index, op);
                0
            }
            Op::File(op) => self.file_done(index, op, result, on_event),
            Op::Cancel(op) => {
                self.finish(index, Some(op.socket));
                0
            }
            Op::Watch(op) => {
                self.watch_done(index, op, flags);
                0
            }
        }
    }

    fn start_watch(&mut self, watch: usize) {
        let Some(Some(w)) = self.watches.get(watch) else {
            return;
        };
        let op = WatchOp { watch, fd: w.fd };
        let entry = op.sqe();
        let index = self.ops.insert(Op::Watch(op));
        self.push(entry.user_data(index as u64));
        if let Some(Some(w)) = self.watches.get_mut(watch) {
            w.op = Some(index);
        }
    }

    fn watch_done(&mut self, index: usize, op: WatchOp, flags: u32) {
        if cqueue::more(flags) {
            self.ops.restore(index, Op::Watch(op));
            return;
        }
        self.ops.release(index);
        // The kernel ended the poll (an error, an overflow, or our cancel): re-arm it if the
        // watch still lasts and this was its op.
        let current = matches!(
            self.watches.get(op.watch),
            Some(Some(Watch { op: Some(i), .. })) if *i == index
        );
        if current {
            if let Some(Some(w)) = self.watches.get_mut(op.watch) {
                w.op = None;
            }
            if !self.shutting_down {
                self.counters.multishot_rearms += 1;
                self.start_watch(op.watch);
            }
        }
    }

    fn accept_done(
        &mut self,
        index: usize,
        op: AcceptOp,
        result: i32,
        flags: u32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let listener = op.listener;
        let mut events = 0;
        if result >= 0 {
            // SAFETY: a successful accept CQE carries a new descriptor nothing else owns; the
            // stream closes it unless it is kept.
            let stream = unsafe { TcpStream::from_raw_fd(result) };
            if self.is_open(listener) {
                events += self.accepted(listener, stream, on_event);
            }
        }
        if cqueue::more(flags) {
            self.ops.restore(index, Op::Accept(op));
            return events;
        }
        self.finish(index, Some(listener));
        if self.is_open(listener) {
            self.counters.multishot_rearms += 1;
            self.start(Op::Accept(op));
        }
        events
    }

    fn accepted(
        &mut self,
        listener: Token,
        stream: TcpStream,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        // A connection reset before we saw it has no peer: dropping it closes it.
        let Ok(peer) = stream.peer_addr() else {
            return 0;
        };
        let _ = stream.set_nodelay(true);
        let token = self.insert_socket(SocketIo::Stream(StreamIo::new(stream, false)));
        self.start(Op::Recv(RecvOp { stream: token }));
        on_event(IoEvent::Accepted {
            listener,
            stream: token,
            peer,
        });
        1
    }

    fn recv_done(
        &mut self,
        index: usize,
        op: RecvOp,
        result: i32,
        flags: u32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let stream = op.stream;
        let mut events = 0;
        debug_assert!(result <= 0 || cqueue::buffer_select(flags).is_some());
        if let Some(bid) = cqueue::buffer_select(flags) {
            if result > 0 && self.is_open(stream) {
                // SAFETY: the kernel filled `result` bytes of buffer `bid` and handed it to us;
                // it is provided again only after the callback returns.
                let bytes = unsafe { self.buffers.bytes(bid, result as usize) };
                on_event(IoEvent::Data { stream, bytes });
                events += 1;
            }
            self.buffers.provide(bid);
        }
        if cqueue::more(flags) {
            self.ops.restore(index, Op::Recv(op));
            return events;
        }
        self.finish(index, Some(stream));
        if !self.is_open(stream) {
            return events;
        }
        match result {
            0 => events += self.close_with(stream, None, on_event),
            r if r > 0 || r == -libc::ENOBUFS => {
                if r == -libc::ENOBUFS {
                    self.counters.recv_enobufs += 1;
                } else {
                    self.counters.multishot_rearms += 1;
                }
                self.start(Op::Recv(op));
            }
            r => {
                let error = io::Error::from_raw_os_error(-r);
                events += self.close_with(stream, Some(error), on_event);
            }
        }
        events
    }

    fn recv_msg_done(
        &mut self,
        index: usize,
        op: RecvMsgOp,
        result: i32,
        flags: u32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let socket = op.socket;
        let mut events = 0;
        if let Some(bid) = cqueue::buffer_select(flags) {
            if result >= 0 && self.is_open(socket) {
                // SAFETY: as in `recv_done`.
                let bytes = unsafe { self.buffers.bytes(bid, result as usize) };
                if let Ok(message) = types::RecvMsgOut::parse(bytes, &op.header.0) {
                    // A datagram larger than a buffer arrives truncated: drop it, as the bus
                    // covers loss.
                    let from = net::socket_addr_from_bytes(message.name_data());
                    if let (false, Some(from)) = (message.is_payload_truncated(), from) {
                        on_event(IoEvent::Datagram {
                            socket,
                            from,
                            bytes: message.payload_data(),
                        });
                        events += 1;
                    }
                }
            }
            self.buffers.provide(bid);
        }
        if cqueue::more(flags) {
            self.ops.restore(index, Op::RecvMsg(op));
            return events;
        }
        self.finish(index, Some(socket));
        if self.is_open(socket) {
            // Errors on an unconnected UDP socket are transient: re-arm after any of them.
            if result == -libc::ENOBUFS {
                self.counters.recv_enobufs += 1;
            } else {
                self.counters.multishot_rearms += 1;
            }
            self.start(Op::RecvMsg(op));
        }
        events
    }

    fn connect_done(
        &mut self,
        index: usize,
        op: ConnectOp,
        result: i32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let stream = op.stream;
        self.finish(index, Some(stream));
        if !self.is_open(stream) {
            return 0;
        }
        if result < 0 {
            let error = io::Error::from_raw_os_error(-result);
            return self.close_with(stream, Some(error), on_event);
        }
        let io = self.open_stream_mut(stream).expect("open stream");
        io.connecting = false;
        let _ = io.stream.set_nodelay(true);
        let has_output = !io.out.is_empty();
        self.start(Op::Recv(RecvOp { stream }));
        if has_output {
            self.schedule(stream);
        }
        on_event(IoEvent::Connected { stream });
        1
    }

    fn send_done(
        &mut self,
        index: usize,
        mut op: SendOp,
        result: i32,
        flags: u32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let stream = op.stream;
        let result = if op.zero_copy {
            match op.result {
                None if cqueue::more(flags) => {
                    // The result; the buffers stay the kernel's until the notification. The
                    // op no longer needs the socket (nothing is left to cancel), so it lets
                    // go of it: a close need not wait for the notification, which may only
                    // come once the socket is gone (a peer that never reads).
                    op.result = Some(result);
                    self.ops.restore(index, Op::Send(op));
                    if let Some(socket) = self.socket_mut(stream) {
                        if let SocketIo::Stream(io) = &mut socket.io {
                            io.notification_pending = true;
                        }
                        socket.in_flight -= 1;
                        if socket.closing && socket.in_flight == 0 {
                            self.remove_socket(stream);
                        }
                    }
                    return 0;
                }
                None => result,
                Some(sent) => {
                    // The notification: the kernel is done with the buffers.
                    self.counters.sends_zero_copy += 1;
                    let copied = result as u32 & NOTIF_USAGE_ZC_COPIED != 0;
                    if copied {
                        self.counters.sends_zero_copy_copied += 1;
                    }
                    match self.socket_mut(stream) {
                        Some(socket) => {
                            // Hold the socket again for what follows (a retry or the end).
                            socket.in_flight += 1;
                            if let SocketIo::Stream(io) = &mut socket.io {
                                io.notification_pending = false;
                                io.zero_copy &= !copied;
                            }
                        }
                        None => {
                            // The socket was closed meanwhile: only the buffers are left.
                            self.recycle_send(op);
                            self.ops.release(index);
                            return 0;
                        }
                    }
                    sent
                }
            }
        } else {
            result
        };
        if result > 0 {
            let sent = result as usize;
            op.advance(sent, &mut self.done);
            if let Some(io) = self.open_stream_mut(stream) {
                io.queued -= sent;
            }
        }
        let open = self.is_open(stream);
        let remaining = op.remaining();
        let retry = result > 0 || result == -libc::EINTR || result == -libc::EAGAIN;
        if open && remaining > 0 && retry {
            if result > 0 {
                self.counters.sends_short += 1;
            }
            op.result = None;
            self.ops.restore(index, Op::Send(op));
            self.restart(index);
            return 0;
        }
        // The op ends: unsent buffers (after an error or a close) go back unsent.
        self.recycle_send(op);
        if let Some(io) = self.open_stream_mut(stream) {
            io.sending = false;
        }
        self.finish(index, Some(stream));
        if !open {
            return 0;
        }
        if result < 0 || remaining > 0 {
            let error = if result < 0 {
                io::Error::from_raw_os_error(-result)
            } else {
                io::Error::from(ErrorKind::WriteZero)
            };
            return self.close_with(stream, Some(error), on_event);
        }
        if self
            .open_stream_mut(stream)
            .is_some_and(|io| !io.out.is_empty())
        {
            self.schedule(stream);
        }
        0
    }

    /// Hands an ended send op's buffers back (for `reclaim`) and pools its queue and header.
    fn recycle_send(&mut self, op: SendOp) {
        let SendOp {
            mut buffers,
            message,
            ..
        } = op;
        self.done.extend(buffers.drain(..));
        if self.send_queues.len() < POOL_MAX {
            self.send_queues.push(buffers);
        }
        if self.send_messages.len() < POOL_MAX {
            self.send_messages.push(message);
        }
    }

    fn datagram_done(&mut self, index: usize, op: DatagramOp) {
        // A datagram that cannot be sent (unreachable peer, too large) is dropped, as with
        // epoll: the bus's ACK and resend cover loss.
        let DatagramOp {
            socket,
            datagram,
            message,
        } = op;
        self.done.push(datagram);
        if self.datagram_messages.len() < POOL_MAX {
            self.datagram_messages.push(message);
        }
        let mut more = false;
        if let Some(Socket {
            io: SocketIo::Udp(io),
            ..
        }) = self.socket_mut(socket)
        {
            io.sending -= 1;
            more = !io.out.is_empty();
        }
        self.finish(index, Some(socket));
        if more {
            self.schedule(socket);
        }
    }

    fn file_done(
        &mut self,
        index: usize,
        mut op: FileOp,
        result: i32,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> usize {
        let retry = !self.shutting_down;
        let outcome = if result < 0 {
            if retry && (result == -libc::EINTR || result == -libc::EAGAIN) {
                self.ops.restore(index, Op::File(op));
                self.restart(index);
                return 0;
            }
            Err(io::Error::from_raw_os_error(-result))
        } else {
            op.done += result as usize;
            match op.kind {
                FileKind::Sync => Ok(0),
                _ if op.done == op.len() => Ok(op.done),
                _ if retry && result > 0 => {
                    self.ops.restore(index, Op::File(op));
                    self.restart(index);
                    return 0;
                }
                FileKind::Write => Err(io::Error::from(ErrorKind::WriteZero)),
                // End of file: a short read.
                FileKind::Read => Ok(op.done),
            }
        };
        self.finish(index, None);
        if let Some(direct) = op.direct.take() {
            self.direct.give_back(direct.index);
        }
        on_event(IoEvent::File {
            tag: op.tag,
            result: outcome,
            buffer: op.buffer,
        });
        1
    }

    /// Fails when the kernel had to drop completions (CQ overflow with no memory to park
    /// them): ops would then never finish.
    fn check_dropped(&mut self) -> io::Result<()> {
        let dropped = self.ring.completion().overflow();
        if dropped != self.cq_dropped {
            let lost = dropped.wrapping_sub(self.cq_dropped);
            self.cq_dropped = dropped;
            return Err(io::Error::other(format!(
                "io_uring dropped {lost} completions (CQ overflow); ops are lost"
            )));
        }
        Ok(())
    }

    // ---- teardown -----------------------------------------------------------------------

    /// Cancels every op and waits for all of them to come back. Returns false if some are
    /// still in the kernel (their memory must then be leaked).
    fn shutdown(&mut self) -> bool {
        self.shutting_down = true;
        // Entries still in the backlog never reached the kernel.
        for entry in mem::take(&mut self.backlog) {
            let user_data = entry.get_user_data();
            if user_data == USER_DATA_WAKER {
                self.waker_armed = false;
            } else if user_data < USER_DATA_RESERVED_MIN {
                let index = user_data as usize;
                if let Some(op) = self.ops.take(index) {
                    let socket = op.socket();
                    drop(op);
                    self.finish(index, socket);
                }
            }
        }
        if !self.entered || (self.ops.len() == 0 && !self.waker_armed) {
            // Nothing was ever submitted, or everything has completed. Unsubmitted SQEs left
            // in the SQ die with the ring.
            return true;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(USER_DATA_CANCEL_ALL);
        // SAFETY: the cancel entry points at no memory.
        while unsafe { self.ring.submission().push(&cancel) }.is_err() {
            if self.ring.submit().is_err() {
                return false;
            }
        }
        let deadline = Instant::now() + TEARDOWN_WAIT;
        loop {
            if self.enter(Some(Duration::from_millis(10))).is_err() {
                return false;
            }
            self.drain(&mut |_| {});
            self.reset_streams_awaiting_notifications();
            if self.ops.len() == 0 && !self.waker_armed {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Closes (with a reset: see `remove_socket`) every stream whose only op left is a
    /// zero-copy send awaiting its notification, which may otherwise never come.
    fn reset_streams_awaiting_notifications(&mut self) {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let Some(socket) = slot.socket.as_mut() else {
                continue;
            };
            if socket.in_flight == 0
                && matches!(&socket.io, SocketIo::Stream(io) if io.notification_pending)
            {
                socket.closing = true;
                let token = token_of(index, slot.generation);
                self.remove_socket(token);
            }
        }
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

fn enter_error(error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(libc::EEXIST) => io::Error::new(
            error.kind(),
            "io_uring_enter: EEXIST: the ring is bound to the thread that first polled it \
             (IORING_SETUP_SINGLE_ISSUER); poll it from that thread only",
        ),
        Some(libc::EBADR) => io::Error::other(
            "io_uring_enter: EBADR: the kernel dropped completions (CQ overflow); ops are lost",
        ),
        _ => io::Error::new(error.kind(), format!("io_uring_enter: {error}")),
    }
}

impl Drop for UringReactor {
    fn drop(&mut self) {
        if self.shutdown() {
            // Nothing of ours is in the kernel: the buffer ring can go. (After a failure to
            // unregister, closing the ring releases it.)
            let _ = self.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
            return;
        }
        eprintln!(
            "tamtam io_uring: {} ops still in the kernel at drop; leaking their buffers",
            self.ops.len()
        );
        mem::forget(mem::take(&mut self.ops));
        mem::forget(mem::replace(&mut self.direct, DirectPool::empty()));
        self.buffers.leaked = true;
        Box::leak(mem::replace(&mut self.waker_value, Box::new(0)));
    }
}

impl Reactor for UringReactor {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn listen_tcp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let token = self.insert_socket(SocketIo::Listener(listener));
        self.start(Op::Accept(AcceptOp { listener: token }));
        Ok((token, local))
    }

    fn connect_tcp(&mut self, addr: SocketAddr) -> io::Result<Token> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // A blocking socket: io_uring connects, sends and receives without blocking anyway,
        // arming its own poll when the socket is not ready.
        // SAFETY: plain syscall; on success the descriptor is owned by the stream built below.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket nothing else owns.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let token = self.insert_socket(SocketIo::Stream(StreamIo::new(stream, true)));
        let (address, address_len) = net::sockaddr(addr);
        self.start(Op::Connect(ConnectOp {
            stream: token,
            address: Box::new(address),
            address_len,
        }));
        Ok(token)
    }

    fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)> {
        let socket = UdpSocket::bind(addr)?;
        let local = socket.local_addr()?;
        let token = self.insert_socket(SocketIo::Udp(UdpIo {
            socket,
            out: VecDeque::new(),
            sending: 0,
            scheduled: false,
        }));
        self.start(Op::RecvMsg(RecvMsgOp::new(token)));
        Ok((token, local))
    }

    fn send_stream(&mut self, stream: Token, bytes: Vec<u8>) -> io::Result<()> {
        let Some(io) = self.open_stream_mut(stream) else {
            return Err(io::Error::from(ErrorKind::NotConnected));
        };
        io.queued += bytes.len();
        io.out.push_back(bytes);
        if !io.sending && !io.connecting {
            self.schedule(stream);
        }
        Ok(())
    }

    fn send_datagram(
        &mut self,
        socket: Token,
        to: SocketAddr,
        datagram: Vec<u8>,
    ) -> io::Result<()> {
        match self.socket_mut(socket) {
            Some(Socket {
                io: SocketIo::Udp(io),
                closing: false,
                ..
            }) => {
                io.out.push_back((to, datagram));
                self.schedule(socket);
                Ok(())
            }
            _ => Err(io::Error::from(ErrorKind::NotConnected)),
        }
    }

    fn queued_bytes(&self, stream: Token) -> usize {
        let Some(slot) = self.slots.get(stream as u32 as usize) else {
            return 0;
        };
        match &slot.socket {
            Some(Socket {
                io: SocketIo::Stream(io),
                closing: false,
                ..
            }) if slot.generation == (stream >> 32) as u32 => io.queued,
            _ => 0,
        }
    }

    fn close(&mut self, token: Token) {
        self.begin_close(token);
    }

    fn file_write(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64) {
        self.start(Op::File(FileOp {
            kind: FileKind::Write,
            fd,
            offset,
            buffer,
            done: 0,
            tag,
            direct: None,
        }));
    }

    fn file_write_direct(&mut self, fd: RawFd, offset: u64, bytes: &[u8], tag: u64) -> DirectWrite {
        if self.shutting_down
            || !is_direct_aligned(offset, bytes.len())
            || bytes.len() > self.direct.buffer_len()
        {
            return DirectWrite::Unsuitable;
        }
        let Some((index, address)) = self.direct.lend(bytes) else {
            return DirectWrite::Busy;
        };
        self.counters.direct_writes += 1;
        self.start(Op::File(FileOp {
            kind: FileKind::Write,
            fd,
            offset,
            buffer: Vec::new(),
            done: 0,
            tag,
            direct: Some(DirectSlot {
                index,
                address: address as usize,
                len: bytes.len(),
                fixed: self.direct.registered(),
            }),
        }));
        DirectWrite::Submitted
    }

    fn direct_buffers(&self) -> DirectBuffers {
        DirectBuffers {
            registered: self.direct.registered(),
            bytes: self.direct.len() * self.direct.buffer_len(),
            error: self.direct_error.clone(),
        }
    }

    fn file_read(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64) {
        self.start(Op::File(FileOp {
            kind: FileKind::Read,
            fd,
            offset,
            buffer,
            done: 0,
            tag,
            direct: None,
        }));
    }

    fn file_sync(&mut self, fd: RawFd, tag: u64) {
        self.start(Op::File(FileOp {
            kind: FileKind::Sync,
            fd,
            offset: 0,
            buffer: Vec::new(),
            done: 0,
            tag,
            direct: None,
        }));
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> io::Result<usize> {
        if !self.enabled {
            // The ring was created disabled so that this thread, not the creating one, becomes
            // its single issuer.
            self.ring
                .submitter()
                .register_enable_rings()
                .map_err(|e| io::Error::new(e.kind(), format!("io_uring enable rings: {e}")))?;
            self.enabled = true;
        }
        self.prepare_sends();
        self.flush_backlog()?;
        if timeout.is_none_or(|t| t.is_zero()) && self.nothing_to_reap() {
            // Nothing submitted, and the only ops in the kernel are the waker's read and the
            // watches, whose completions matter only to end a park: a non-blocking poll has
            // nothing to gain from entering the kernel. (A station whose links are all
            // in-memory or shared-memory rings spins without a syscall per turn.)
            return Ok(0);
        }
        self.enter(timeout.filter(|t| !t.is_zero()))?;
        let mut count = self.drain(on_event);
        for _ in 0..OVERFLOW_FLUSHES_MAX {
            if !self.ring.submission().cq_overflow() {
                break;
            }
            self.counters.cq_overflows += 1;
            self.enter(None)?;
            count += self.drain(on_event);
        }
        self.check_dropped()?;
        Ok(count)
    }

    fn waker(&self) -> Waker {
        Waker::new(self.waker.clone())
    }

    fn watch(&mut self, fd: RawFd) -> io::Result<Token> {
        let index = match self.watches.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.watches.push(None);
                self.watches.len() - 1
            }
        };
        self.watches[index] = Some(Watch { fd, op: None });
        self.start_watch(index);
        Ok(index as Token)
    }

    fn unwatch(&mut self, watch: Token) {
        let Some(w) = self.watches.get_mut(watch as usize).and_then(Option::take) else {
            return;
        };
        if let Some(index) = w.op {
            // The op keeps its slot until its final CQE (ECANCELED); the kernel holds its own
            // reference to the file, so the caller may close the descriptor at once.
            let cancel = opcode::AsyncCancel::new(index as u64)
                .build()
                .user_data(USER_DATA_UNWATCH);
            self.push(cancel);
        }
    }

    fn reclaim(&mut self, into: &mut Vec<Vec<u8>>) {
        into.append(&mut self.done);
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the io_uring backend keeps the epoll backend's observable behaviour and its own
    //! ownership rules (buffers held until completion, descriptors closed only after every op
    //! on them ended). Method: loopback sockets and temp files in one process, one reactor per
    //! test; every test probes the kernel first and skips with a message when io_uring is not
    //! available. Waits poll until a condition holds, with a generous deadline.

    use super::*;
    use crate::driver::reactor::{self, Backend};
    use std::io::{Read, Write};

    const WAIT: Duration = Duration::from_secs(20);

    /// An event with its bytes copied out of the reactor's buffer.
    #[derive(Debug)]
    enum Seen {
        Accepted { listener: Token, stream: Token },
        Connected(Token),
        Data(Token, Vec<u8>),
        Datagram(Token, SocketAddr, Vec<u8>),
        Closed(Token, Option<ErrorKind>),
        File(u64, Result<usize, ErrorKind>, Vec<u8>),
    }

    impl From<IoEvent<'_>> for Seen {
        fn from(event: IoEvent<'_>) -> Seen {
            match event {
                IoEvent::Accepted {
                    listener, stream, ..
                } => Seen::Accepted { listener, stream },
                IoEvent::Connected { stream } => Seen::Connected(stream),
                IoEvent::Data { stream, bytes } => Seen::Data(stream, bytes.to_vec()),
                IoEvent::Datagram {
                    socket,
                    from,
                    bytes,
                } => Seen::Datagram(socket, from, bytes.to_vec()),
                IoEvent::Closed { stream, error } => Seen::Closed(stream, error.map(|e| e.kind())),
                IoEvent::File {
                    tag,
                    result,
                    buffer,
                } => Seen::File(tag, result.map_err(|e| e.kind()), buffer),
            }
        }
    }

    /// Runs `body` on a fresh reactor in each setup mode this kernel accepts, so that the
    /// fallback setups are tested too; skips (with a message) the modes it refuses.
    fn for_each_setup(config: UringConfig, mut body: impl FnMut(UringReactor)) {
        for setup in UringSetup::PREFERENCE {
            match UringReactor::with_setups(config, &[setup]) {
                Ok(reactor) => {
                    eprintln!("io_uring setup {setup:?}");
                    body(reactor);
                }
                Err(e) => eprintln!("skipped io_uring setup {setup:?}: {e}"),
            }
        }
    }

    /// Polls until `step` (which sees each poll's events and may act on the reactor) says done.
    fn poll_until(
        reactor: &mut UringReactor,
        mut step: impl FnMut(&mut UringReactor, Vec<Seen>) -> bool,
    ) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut seen = Vec::new();
            reactor
                .poll(Some(Duration::from_millis(5)), &mut |event| {
                    seen.push(Seen::from(event))
                })
                .expect("poll");
            if step(reactor, seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached in {WAIT:?}"
            );
        }
    }

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().expect("valid address")
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
            .collect()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tamtam-uring-{name}-{}", std::process::id()))
    }

    /// Reads until end of stream or reset: proves the other end's descriptor was closed.
    fn assert_peer_sees_close(peer: &mut std::net::TcpStream) {
        peer.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut sink = Vec::new();
        match peer.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
    }

    fn connect_pair(reactor: &mut UringReactor) -> (Token, Token, Token) {
        let (listener, addr) = reactor.listen_tcp(local()).expect("listen");
        let client = reactor.connect_tcp(addr).expect("connect");
        let mut server = None;
        let mut connected = false;
        poll_until(reactor, |_, seen| {
            for event in seen {
                match event {
                    Seen::Accepted {
                        listener: from,
                        stream,
                    } => {
                        assert_eq!(from, listener);
                        server = Some(stream);
                    }
                    Seen::Connected(stream) => {
                        assert_eq!(stream, client);
                        connected = true;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            server.is_some() && connected
        });
        (listener, client, server.expect("accepted"))
    }

    #[test]
    fn accept_connect_and_echo_small_and_large_writes() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let (_, client, server) = connect_pair(&mut reactor);
            // 2000 frames of 1..300 bytes with five of 1 MiB and more among them.
            let mut expected = Vec::new();
            let mut buffers_sent = 0;
            for i in 0..2000usize {
                let len = if i % 400 == 7 {
                    (1 << 20) + i * 1000
                } else {
                    1 + i % 300
                };
                let frame = pattern(len, i as u8);
                expected.extend_from_slice(&frame);
                reactor.send_stream(client, frame).expect("send");
                buffers_sent += 1;
            }
            assert_eq!(reactor.queued_bytes(client), expected.len());
            let mut echoed = Vec::new();
            poll_until(&mut reactor, |reactor, seen| {
                for event in seen {
                    match event {
                        Seen::Data(stream, bytes) if stream == server => {
                            reactor.send_stream(server, bytes).expect("echo");
                            buffers_sent += 1;
                        }
                        Seen::Data(stream, bytes) if stream == client => {
                            echoed.extend_from_slice(&bytes)
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                echoed.len() >= expected.len()
                    && reactor.queued_bytes(client) == 0
                    && reactor.queued_bytes(server) == 0
            });
            assert_eq!(echoed.len(), expected.len());
            assert!(echoed == expected, "echoed bytes differ from those sent");
            let mut reclaimed = Vec::new();
            reactor.reclaim(&mut reclaimed);
            assert_eq!(reclaimed.len(), buffers_sent);
            // Two multishot receives and the multishot accept stay armed.
            assert_eq!(reactor.ops_in_flight(), 3);
            eprintln!("counters: {:?}", reactor.counters());
        });
    }

    /// Goal: large sends go out zero-copy and their buffers come back only after the
    /// kernel's notification; a stream the kernel reports copying for (loopback always does)
    /// stops asking; `zero_copy_send_min: 0` never asks. Method: 1 MiB sends over loopback,
    /// checked byte for byte, with the counters.
    #[test]
    fn large_sends_go_zero_copy_until_the_kernel_reports_copying() {
        for min in [16 * 1024, 0] {
            let config = UringConfig {
                zero_copy_send_min: min,
                ..UringConfig::default()
            };
            for_each_setup(config, |mut reactor| {
                let (_, client, server) = connect_pair(&mut reactor);
                let mut expected = Vec::new();
                let mut received = Vec::new();
                for i in 0..6u8 {
                    let frame = pattern(1 << 20, i);
                    expected.extend_from_slice(&frame);
                    reactor.send_stream(client, frame).expect("send");
                    // One send op per poll: several ops, not one batch.
                    reactor
                        .poll(None, &mut |event| {
                            if let IoEvent::Data { bytes, .. } = event {
                                received.extend_from_slice(bytes);
                            }
                        })
                        .expect("poll");
                }
                poll_until(&mut reactor, |reactor, seen| {
                    for event in seen {
                        if let Seen::Data(stream, bytes) = event {
                            assert_eq!(stream, server);
                            received.extend_from_slice(&bytes);
                        }
                    }
                    received.len() >= expected.len() && reactor.queued_bytes(client) == 0
                });
                assert!(received == expected, "bytes differ");
                let mut reclaimed = Vec::new();
                reactor.reclaim(&mut reclaimed);
                assert_eq!(
                    reclaimed.len(),
                    6,
                    "every buffer back after its notification"
                );
                let counters = reactor.counters();
                eprintln!("min {min}: {counters:?}");
                if min == 0 || reactor.zero_copy_send_min == 0 {
                    assert_eq!(counters.sends_zero_copy, 0);
                } else {
                    assert!(counters.sends_zero_copy >= 1, "{counters:?}");
                    if counters.sends_zero_copy_copied > 0 {
                        // Copied once: the stream stopped asking.
                        assert_eq!(counters.sends_zero_copy, 1, "{counters:?}");
                    }
                }
            });
        }
    }

    #[test]
    fn peer_close_and_refused_connect_report_closed() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let (listener, addr) = reactor.listen_tcp(local()).expect("listen");
            let mut peer = std::net::TcpStream::connect(addr).expect("connect");
            peer.write_all(b"hello").expect("write");
            drop(peer);
            let mut stream = None;
            let mut data = Vec::new();
            let mut closed = false;
            poll_until(&mut reactor, |_, seen| {
                for event in seen {
                    match event {
                        Seen::Accepted {
                            listener: from,
                            stream: s,
                        } => {
                            assert_eq!(from, listener);
                            stream = Some(s);
                        }
                        Seen::Data(s, bytes) => {
                            assert_eq!(Some(s), stream);
                            data.extend_from_slice(&bytes);
                        }
                        Seen::Closed(s, error) => {
                            assert_eq!(Some(s), stream);
                            assert_eq!(error, None);
                            closed = true;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                closed
            });
            assert_eq!(data, b"hello");
            let stream = stream.expect("accepted");
            assert!(reactor.send_stream(stream, vec![1]).is_err());

            let unused = {
                let probe = std::net::TcpListener::bind(local()).expect("bind");
                probe.local_addr().expect("address")
            };
            let refused = reactor.connect_tcp(unused).expect("connect starts");
            reactor
                .send_stream(refused, b"queued".to_vec())
                .expect("queued while connecting");
            let mut error = None;
            poll_until(&mut reactor, |_, seen| {
                let Some(event) = seen.into_iter().next() else {
                    return false;
                };
                let Seen::Closed(s, e) = event else {
                    panic!("unexpected {event:?}");
                };
                assert_eq!(s, refused);
                error = e;
                true
            });
            assert_eq!(error, Some(ErrorKind::ConnectionRefused));
            assert_eq!(reactor.queued_bytes(refused), 0);
            let mut reclaimed = Vec::new();
            reactor.reclaim(&mut reclaimed);
            assert_eq!(reclaimed, vec![b"queued".to_vec()]);
            // Only the listener's multishot accept is left.
            assert_eq!(reactor.ops_in_flight(), 1);
        });
    }

    #[test]
    fn datagrams_both_ways_including_a_large_one() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let (a, a_addr) = reactor.bind_udp(local()).expect("bind a");
            let (b, b_addr) = reactor.bind_udp(local()).expect("bind b");
            // Windows of ten keep the burst well inside the receive buffer, so loopback drops none.
            let mut windows: Vec<Vec<Vec<u8>>> = (0..10)
                .map(|w| {
                    (0..10)
                        .map(|i| pattern(1 + (w * 10 + i) * 13, (w * 10 + i) as u8))
                        .collect()
                })
                .collect();
            windows.push(vec![pattern(65_000, 77)]);
            for window in windows {
                for datagram in &window {
                    reactor
                        .send_datagram(a, b_addr, datagram.clone())
                        .expect("send");
                }
                let mut echoed = Vec::new();
                poll_until(&mut reactor, |reactor, seen| {
                    for event in seen {
                        match event {
                            Seen::Datagram(socket, from, bytes) if socket == b => {
                                assert_eq!(from, a_addr);
                                reactor.send_datagram(b, from, bytes).expect("echo");
                            }
                            Seen::Datagram(socket, from, bytes) if socket == a => {
                                assert_eq!(from, b_addr);
                                echoed.push(bytes);
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    echoed.len() == window.len()
                });
                let mut sent = window.clone();
                sent.sort();
                echoed.sort();
                assert!(echoed == sent, "echoed datagrams differ");
            }
            let mut reclaimed = Vec::new();
            reactor.reclaim(&mut reclaimed);
            assert!(reclaimed.len() >= 200, "{}", reclaimed.len());
        });
    }

    #[test]
    fn file_write_read_sync_and_errors() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let path = temp_path("file");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("open");
            let fd = file.as_raw_fd();
            let first = pattern(10_000, 1);
            let second = pattern(3 << 20, 2);
            let total = first.len() + second.len();
            reactor.file_write(fd, 0, first.clone(), 1);
            reactor.file_write(fd, first.len() as u64, second.clone(), 2);
            reactor.file_write(-1, 0, vec![1], 3);
            reactor.file_sync(-1, 4);
            type Results = std::collections::BTreeMap<u64, (Result<usize, ErrorKind>, Vec<u8>)>;
            fn collect(results: &mut Results, seen: Vec<Seen>, want: usize) -> bool {
                for event in seen {
                    match event {
                        Seen::File(tag, result, buffer) => {
                            results.insert(tag, (result, buffer));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                results.len() == want
            }
            let mut results = Results::new();
            poll_until(&mut reactor, |_, seen| collect(&mut results, seen, 4));
            assert_eq!(results[&1].0, Ok(first.len()));
            assert_eq!(results[&2].0, Ok(second.len()));
            assert!(
                results[&2].1 == second,
                "the write buffer comes back unchanged"
            );
            assert!(results[&3].0.is_err());
            assert!(results[&4].0.is_err());
            reactor.file_sync(fd, 5);
            reactor.file_read(fd, 0, vec![0; total], 6);
            reactor.file_read(fd, total as u64 - 100, vec![0; 4096], 7);
            poll_until(&mut reactor, |_, seen| collect(&mut results, seen, 7));
            assert_eq!(results[&5].0, Ok(0));
            assert_eq!(results[&6].0, Ok(total));
            let mut both = first.clone();
            both.extend_from_slice(&second);
            assert!(results[&6].1 == both, "read back what was written");
            // A read that meets the end of the file is short.
            assert_eq!(results[&7].0, Ok(100));
            assert_eq!(results[&7].1[..100], both[total - 100..]);
            assert!(std::fs::read(&path).expect("read") == both);
            assert_eq!(reactor.ops_in_flight(), 0);
            let _ = std::fs::remove_file(&path);
        });
    }

    #[test]
    fn waker_ends_a_park_from_another_thread() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            // An idle poll parks for its timeout: the waker's read completes only on a wake.
            let start = Instant::now();
            reactor
                .poll(Some(Duration::from_millis(200)), &mut |_| {})
                .expect("poll");
            let parked = start.elapsed();
            assert!(parked >= Duration::from_millis(150), "parked {parked:?}");
            // No timeout: no wait.
            let start = Instant::now();
            reactor.poll(None, &mut |_| {}).expect("poll");
            reactor
                .poll(Some(Duration::ZERO), &mut |_| {})
                .expect("poll");
            assert!(start.elapsed() < Duration::from_millis(100));
            for _ in 0..3 {
                let waker = reactor.waker();
                let thread = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    waker.wake();
                    waker.wake();
                });
                let start = Instant::now();
                reactor.poll(Some(WAIT), &mut |_| {}).expect("poll");
                let woken = start.elapsed();
                assert!(woken < WAIT / 2, "woken after {woken:?}");
                thread.join().expect("waker thread");
            }
        });
    }

    #[test]
    fn close_with_ops_in_flight_keeps_buffers_until_completion() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let peer_listener = std::net::TcpListener::bind(local()).expect("bind");
            let client = reactor
                .connect_tcp(peer_listener.local_addr().expect("address"))
                .expect("connect");
            poll_until(&mut reactor, |_, seen| {
                seen.iter()
                    .any(|e| matches!(e, Seen::Connected(s) if *s == client))
            });
            let (mut peer, _) = peer_listener.accept().expect("accept");
            // Far more than the socket buffers hold: the peer never reads, so a send stays in
            // flight.
            for i in 0..32 {
                reactor.send_stream(client, vec![i; 1 << 20]).expect("send");
            }
            for _ in 0..20 {
                reactor
                    .poll(Some(Duration::from_millis(5)), &mut |e| panic!("{e:?}"))
                    .expect("poll");
            }
            assert!(reactor.queued_bytes(client) > 0);
            // The multishot receive and a send.
            assert_eq!(reactor.ops_in_flight(), 2);
            reactor.close(client);
            reactor.close(client);
            assert_eq!(reactor.queued_bytes(client), 0);
            assert!(reactor.send_stream(client, vec![1]).is_err());
            // An explicit close reports nothing; the cancelled ops come back with their buffers.
            poll_until(&mut reactor, |reactor, seen| {
                assert!(seen.is_empty(), "{seen:?}");
                reactor.ops_in_flight() == 0
            });
            let mut reclaimed = Vec::new();
            reactor.reclaim(&mut reclaimed);
            assert_eq!(reclaimed.len(), 32);
            assert_peer_sees_close(&mut peer);

            // A connect closed before it was even submitted.
            let early = reactor
                .connect_tcp(peer_listener.local_addr().expect("address"))
                .expect("connect");
            reactor.close(early);
            // A listener and a UDP socket with their multishot ops armed.
            let (listener, listen_addr) = reactor.listen_tcp(local()).expect("listen");
            let (udp, udp_addr) = reactor.bind_udp(local()).expect("bind");
            reactor.poll(None, &mut |e| panic!("{e:?}")).expect("poll");
            reactor.close(listener);
            reactor.close(udp);
            poll_until(&mut reactor, |reactor, seen| {
                assert!(seen.is_empty(), "{seen:?}");
                reactor.ops_in_flight() == 0
            });
            // Their descriptors are closed: the addresses can be bound again.
            std::net::TcpListener::bind(listen_addr).expect("listener address free");
            std::net::UdpSocket::bind(udp_addr).expect("udp address free");
        });
    }

    #[test]
    fn tiny_buffer_ring_runs_dry_and_rearms_without_losing_bytes() {
        let config = UringConfig {
            buffer_count: 2,
            buffer_len: 1024,
            ..UringConfig::default()
        };
        for_each_setup(config, |mut reactor| {
            let (_, addr) = reactor.listen_tcp(local()).expect("listen");
            let expected = pattern(4 << 20, 9);
            let data = expected.clone();
            let sender = std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).expect("connect");
                stream.write_all(&data).expect("write");
            });
            let mut received = Vec::new();
            let mut closed = false;
            poll_until(&mut reactor, |_, seen| {
                for event in seen {
                    match event {
                        Seen::Accepted { .. } => {}
                        Seen::Data(_, bytes) => {
                            assert!(bytes.len() <= 1024);
                            received.extend_from_slice(&bytes);
                        }
                        Seen::Closed(_, error) => {
                            assert_eq!(error, None);
                            closed = true;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                closed
            });
            sender.join().expect("sender");
            assert_eq!(received.len(), expected.len());
            assert!(
                received == expected,
                "received bytes differ from those sent"
            );
            let counters = reactor.counters();
            assert!(counters.recv_enobufs > 0, "{counters:?}");
        });
    }

    #[test]
    fn full_submission_queue_spills_to_the_backlog_in_order() {
        let config = UringConfig {
            sq_entries: 4,
            cq_entries: 64,
            ..UringConfig::default()
        };
        for_each_setup(config, |mut reactor| {
            let sockets: Vec<(Token, SocketAddr)> = (0..8)
                .map(|_| reactor.bind_udp(local()).expect("bind"))
                .collect();
            for (i, (socket, _)) in sockets.iter().enumerate() {
                let (_, next) = sockets[(i + 1) % sockets.len()];
                reactor
                    .send_datagram(*socket, next, vec![i as u8; 100])
                    .expect("send");
            }
            let mut got = Vec::new();
            poll_until(&mut reactor, |_, seen| {
                for event in seen {
                    match event {
                        Seen::Datagram(socket, from, bytes) => got.push((socket, from, bytes[0])),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                got.len() == sockets.len()
            });
            for (socket, from, first) in got {
                let i = sockets
                    .iter()
                    .position(|(s, _)| *s == socket)
                    .expect("ours");
                let previous = (i + sockets.len() - 1) % sockets.len();
                assert_eq!(from, sockets[previous].1);
                assert_eq!(first as usize, previous);
            }
            assert!(reactor.counters().submits_early > 0);
        });
    }

    #[test]
    fn a_tiny_completion_queue_overflows_without_losing_datagrams() {
        // 4 CQ entries against 64 datagrams waiting before the first poll: the multishot
        // recvmsg posts more completions than the CQ holds; the kernel parks them (or ends the
        // multishot op, which is re-armed) and nothing is lost.
        let config = UringConfig {
            sq_entries: 2,
            cq_entries: 4,
            ..UringConfig::default()
        };
        for_each_setup(config, |mut reactor| {
            let (socket, addr) = reactor.bind_udp(local()).expect("bind");
            reactor.poll(None, &mut |e| panic!("{e:?}")).expect("poll");
            let sender = std::net::UdpSocket::bind(local()).expect("sender");
            for i in 0..64u8 {
                sender.send_to(&[i; 100], addr).expect("send");
            }
            let mut got = Vec::new();
            poll_until(&mut reactor, |_, seen| {
                for event in seen {
                    match event {
                        Seen::Datagram(s, _, bytes) => {
                            assert_eq!(s, socket);
                            got.push(bytes[0]);
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                got.len() == 64
            });
            got.sort_unstable();
            assert_eq!(got, (0..64).collect::<Vec<u8>>());
            eprintln!("counters: {:?}", reactor.counters());
        });
    }

    #[test]
    fn drop_with_ops_in_flight_closes_every_descriptor() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let peer_listener = std::net::TcpListener::bind(local()).expect("bind");
            let (_, listen_addr) = reactor.listen_tcp(local()).expect("listen");
            let (_, udp_addr) = reactor.bind_udp(local()).expect("bind");
            let client = reactor
                .connect_tcp(peer_listener.local_addr().expect("address"))
                .expect("connect");
            poll_until(&mut reactor, |_, seen| {
                seen.iter()
                    .any(|e| matches!(e, Seen::Connected(s) if *s == client))
            });
            let (mut peer, _) = peer_listener.accept().expect("accept");
            for i in 0..16 {
                reactor.send_stream(client, vec![i; 1 << 20]).expect("send");
            }
            let path = temp_path("drop");
            let file = std::fs::File::create(&path).expect("create");
            reactor.file_write(file.as_raw_fd(), 0, vec![7; 1 << 20], 1);
            reactor
                .poll(Some(Duration::from_millis(20)), &mut |_| {})
                .expect("poll");
            assert!(reactor.ops_in_flight() >= 4);
            drop(reactor);
            assert_peer_sees_close(&mut peer);
            std::net::TcpListener::bind(listen_addr).expect("listener address free");
            std::net::UdpSocket::bind(udp_addr).expect("udp address free");
            let _ = std::fs::remove_file(&path);
        });
    }

    #[test]
    fn drop_before_the_first_poll_frees_everything() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            let (_, listen_addr) = reactor.listen_tcp(local()).expect("listen");
            let (_, udp_addr) = reactor.bind_udp(local()).expect("bind");
            let stream = reactor.connect_tcp(listen_addr).expect("connect");
            reactor.send_stream(stream, vec![1; 100]).expect("queued");
            drop(reactor);
            std::net::TcpListener::bind(listen_addr).expect("listener address free");
            std::net::UdpSocket::bind(udp_addr).expect("udp address free");
        });
    }

    #[test]
    fn the_first_polling_thread_owns_the_ring() {
        for_each_setup(UringConfig::default(), |mut reactor| {
            // Built here, run on another thread, as a station does.
            let (_, addr) = reactor.listen_tcp(local()).expect("listen");
            let runner = std::thread::spawn(move || {
                let peer = std::net::TcpStream::connect(addr).expect("connect");
                poll_until(&mut reactor, |_, seen| {
                    seen.iter().any(|e| matches!(e, Seen::Accepted { .. }))
                });
                drop(peer);
                reactor
            });
            let mut reactor = runner.join().expect("runner");
            // Polled on a third thread: a single-issuer ring refuses, with a clear error.
            let setup = reactor.setup();
            let intruder = std::thread::spawn(move || {
                let result = reactor.poll(None, &mut |_| {});
                (reactor, result)
            });
            let (reactor, result) = intruder.join().expect("intruder");
            if setup == UringSetup::DeferTaskrun {
                let error = result.expect_err("another thread cannot submit");
                assert!(error.to_string().contains("SINGLE_ISSUER"), "{error}");
            }
            // Dropped away from its issuer thread, the reactor cannot drain the ring: it leaks
            // what the kernel may still use rather than free it.
            drop(reactor);
        });
    }

    /// Makes `io_uring_setup` fail with `errno` on the calling thread only (seccomp filters
    /// without TSYNC are per thread), as Docker's default profile does with EPERM.
    fn block_io_uring_setup(errno: i32) {
        let statement = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        };
        let filter = [
            // Load the syscall number (offset 0 of struct seccomp_data).
            statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
            statement(
                libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
                libc::SYS_io_uring_setup as u32,
                0,
                1,
            ),
            statement(
                libc::BPF_RET | libc::BPF_K,
                libc::SECCOMP_RET_ERRNO | errno as u32,
                0,
                0,
            ),
            statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: plain prctl calls; the program points at a live filter array, which the
        // kernel copies.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ),
                0,
                "{}",
                io::Error::last_os_error()
            );
        }
    }

    #[test]
    fn blocked_or_absent_io_uring_falls_back_to_epoll() {
        for (errno, kind) in [
            (libc::EPERM, ErrorKind::PermissionDenied),
            (libc::ENOSYS, ErrorKind::Unsupported),
        ] {
            std::thread::spawn(move || {
                block_io_uring_setup(errno);
                let error = UringReactor::new()
                    .err()
                    .expect("io_uring_setup is blocked");
                assert_eq!(error.kind(), kind, "{error}");
                assert!(error.to_string().contains("TAMTAM_IO=poll"), "{error}");
                match Backend::Auto.from_env() {
                    Backend::Uring => assert!(reactor::open(Backend::Auto).is_err()),
                    _ => {
                        let fallback = reactor::open(Backend::Auto).expect("auto falls back");
                        assert_eq!(fallback.name(), "epoll");
                    }
                }
                if Backend::Uring.from_env() == Backend::Uring {
                    assert!(reactor::open(Backend::Uring).is_err());
                }
            })
            .join()
            .expect("blocked thread");
        }
    }

    #[test]
    fn open_prefers_io_uring_and_setup_errors_are_recognisable() {
        let eperm = setup_error(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(eperm.kind(), ErrorKind::PermissionDenied);
        assert!(eperm.to_string().contains("TAMTAM_IO=poll"));
        let enosys = setup_error(io::Error::from_raw_os_error(libc::ENOSYS));
        assert_eq!(enosys.kind(), ErrorKind::Unsupported);
        let bad = UringConfig {
            buffer_count: 3,
            ..UringConfig::default()
        };
        assert_eq!(
            UringReactor::with_config(bad).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
        if std::env::var_os("TAMTAM_IO").is_some() || UringReactor::new().is_err() {
            return;
        }
        assert_eq!(
            reactor::open(Backend::Auto).expect("auto").name(),
            "io_uring"
        );
        assert_eq!(
            reactor::open(Backend::Uring).expect("uring").name(),
            "io_uring"
        );
        assert_eq!(reactor::open(Backend::Poll).expect("poll").name(), "epoll");
    }
}
