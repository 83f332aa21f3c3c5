//! The portable backend: epoll readiness plus non-blocking sockets.
//!
//! Chosen when io_uring is unavailable (EPERM under Docker's default seccomp profile, ENOSYS on
//! old NAS kernels) or forced with `TAMTAM_IO=poll`. File operations run synchronously inside
//! [`Reactor::poll`] (regular files are always "ready" to epoll), so an fdatasync blocks this
//! shard's cycle for its duration; the io_uring backend does them asynchronously.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::direct::{DIRECT_BUF_LEN_DEFAULT, DirectPool, is_direct_aligned};
use super::reactor::{DirectBuffers, DirectWrite, EventFd, IoEvent, Reactor, Token, Waker};

const WAKER_TOKEN: u64 = u64::MAX;
/// Tokens of watched descriptors ([`Reactor::watch`]) have this bit set; the rest is the
/// index in [`PollReactor::watches`].
const WATCH_BIT: u64 = 1 << 62;
const READ_BUFFER_LEN: usize = 256 * 1024;
const EVENTS_MAX: usize = 256;
const IOVECS_MAX: usize = 64;

enum Socket {
    Listener(TcpListener),
    Stream {
        stream: TcpStream,
        out: VecDeque<Vec<u8>>,
        /// Bytes of `out[0]` already written.
        written: usize,
        queued: usize,
        connecting: bool,
        want_write: bool,
        /// In [`PollReactor::pending`].
        pending: bool,
    },
    Udp {
        socket: UdpSocket,
        out: VecDeque<(SocketAddr, Vec<u8>)>,
        want_write: bool,
        /// In [`PollReactor::pending`].
        pending: bool,
    },
}

enum FileOp {
    Write(RawFd, u64, Vec<u8>, u64),
    /// A direct write from pooled buffer `.2` of `.3` bytes.
    Direct(RawFd, u64, u16, usize, u64),
    Read(RawFd, u64, Vec<u8>, u64),
    Sync(RawFd, u64),
}

/// The epoll backend.
pub struct PollReactor {
    epoll: RawFd,
    waker: Arc<EventFd>,
    sockets: Vec<Option<Socket>>,
    free: Vec<usize>,
    events: Vec<libc::epoll_event>,
    buffer: Vec<u8>,
    files: VecDeque<FileOp>,
    /// Aligned buffers for direct writes, sized on first use.
    direct: DirectPool,
    connected: VecDeque<Token>,
    closed: VecDeque<(Token, Option<io::Error>)>,
    done: Vec<Vec<u8>>,
    /// Sockets with queued output, flushed at the next poll (instead of scanning every socket
    /// each poll). May hold stale tokens; each socket's `pending` flag is the truth.
    pending: Vec<Token>,
    /// Spare vector swapped with `pending` while flushing.
    flushing: Vec<Token>,
    /// Descriptors watched for readability (not owned), by watch index.
    watches: Vec<Option<RawFd>>,
}

impl PollReactor {
    /// A new epoll reactor.
    pub fn new() -> io::Result<PollReactor> {
        // SAFETY: plain syscall; the fd is owned by the reactor and closed in Drop.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        let waker = Arc::new(EventFd::new()?);
        let reactor = PollReactor {
            epoll,
            waker,
            sockets: Vec::new(),
            free: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_MAX],
            buffer: vec![0; READ_BUFFER_LEN],
            files: VecDeque::new(),
            direct: DirectPool::empty(),
            connected: VecDeque::new(),
            closed: VecDeque::new(),
            done: Vec::new(),
            pending: Vec::new(),
            flushing: Vec::new(),
            watches: Vec::new(),
        };
        reactor.ctl(
            libc::EPOLL_CTL_ADD,
            reactor.waker.raw(),
            libc::EPOLLIN as u32,
            WAKER_TOKEN,
        )?;
        Ok(reactor)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd, valid target fd, pointer to a live event struct.
        let rc = unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn insert(&mut self, socket: Socket, events: u32) -> io::Result<Token> {
        let fd = match &socket {
            Socket::Listener(l) => l.as_raw_fd(),
            Socket::Stream { stream, .. } => stream.as_raw_fd(),
            Socket::Udp { socket, .. } => socket.as_raw_fd(),
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.sockets.push(None);
                self.sockets.len() - 1
            }
        };
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, index as u64)?;
        self.sockets[index] = Some(socket);
        Ok(index as Token)
    }

    fn socket_fd(socket: &Socket) -> RawFd {
        match socket {
            Socket::Listener(l) => l.as_raw_fd(),
            Socket::Stream { stream, .. } => stream.as_raw_fd(),
            Socket::Udp { socket, .. } => socket.as_raw_fd(),
        }
    }

    fn set_write_interest(&mut self, token: Token, want: bool) {
        let Some(Some(socket)) = self.sockets.get_mut(token as usize) else {
            return;
        };
        let flag = match socket {
            Socket::Stream { want_write, .. } | Socket::Udp { want_write, .. } => want_write,
            Socket::Listener(_) => return,
        };
        if *flag == want {
            return;
        }
        *flag = want;
        let fd = Self::socket_fd(socket);
        let mut events = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        if want {
            events |= libc::EPOLLOUT as u32;
        }
        let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, events, token);
    }

    /// Writes as much queued data as the socket takes. Returns Err on a fatal error.
    fn flush(&mut self, token: Token) -> io::Result<()> {
        let Some(Some(socket)) = self.sockets.get_mut(token as usize) else {
            return Ok(());
        };
        let mut blocked = false;
        match socket {
            Socket::Stream {
                stream,
                out,
                written,
                queued,
                connecting,
                ..
            } => {
                if *connecting {
                    return Ok(());
                }
                while !out.is_empty() {
                    let mut slices = [IoSlice::new(&[]); IOVECS_MAX];
                    let mut n = 0;
                    for (i, buffer) in out.iter().take(IOVECS_MAX).enumerate() {
                        slices[i] = IoSlice::new(if i == 0 { &buffer[*written..] } else { buffer });
                        n = i + 1;
                    }
                    match stream.write_vectored(&slices[..n]) {
                        Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
                        Ok(mut sent) => {
                            *queued -= sent;
                            while sent > 0 {
                                let left = out[0].len() - *written;
                                if sent >= left {
                                    sent -= left;
                                    *written = 0;
                                    let buffer = out.pop_front().expect("non-empty");
                                    self.done.push(buffer);
                                } else {
                                    *written += sent;
                                    sent = 0;
                                }
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            blocked = true;
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Socket::Udp { socket, out, .. } => {
                while let Some((to, datagram)) = out.front() {
                    match socket.send_to(datagram, *to) {
                        Ok(_) => {
                            let (_, buffer) = out.pop_front().expect("non-empty");
                            self.done.push(buffer);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            blocked = true;
                            break;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            // A datagram that cannot be sent (unreachable peer, too large) is
                            // dropped: the bus's ACK and resend cover loss.
                            let (_, buffer) = out.pop_front().expect("non-empty");
                            self.done.push(buffer);
                        }
                    }
                }
            }
            Socket::Listener(_) => {}
        }
        self.set_write_interest(token, blocked);
        Ok(())
    }

    fn close_with(&mut self, token: Token, error: Option<io::Error>) {
        if let Some(socket) = self.sockets.get_mut(token as usize).and_then(Option::take) {
            let fd = Self::socket_fd(&socket);
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
            self.free.push(token as usize);
            if matches!(socket, Socket::Stream { .. }) {
                self.closed.push_back((token, error));
            }
        }
    }

    fn run_file_ops(&mut self, on_event: &mut dyn FnMut(IoEvent<'_>)) -> usize {
        let mut n = 0;
        while let Some(op) = self.files.pop_front() {
            n += 1;
            match op {
                FileOp::Write(fd, offset, buffer, tag) => {
                    let result = pwrite_all(fd, &buffer, offset);
                    on_event(IoEvent::File {
                        tag,
                        result,
                        buffer,
                    });
                }
                FileOp::Direct(fd, offset, index, len, tag) => {
                    let result = pwrite_all(fd, &self.direct.bytes(index)[..len], offset);
                    self.direct.give_back(index);
                    on_event(IoEvent::File {
                        tag,
                        result,
                        buffer: Vec::new(),
                    });
                }
                FileOp::Read(fd, offset, mut buffer, tag) => {
                    let result = pread_all(fd, &mut buffer, offset);
                    on_event(IoEvent::File {
                        tag,
                        result,
                        buffer,
                    });
                }
                FileOp::Sync(fd, tag) => {
                    // SAFETY: plain syscall on a caller-provided fd.
                    let rc = unsafe { libc::fdatasync(fd) };
                    let result = if rc < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(0)
                    };
                    on_event(IoEvent::File {
                        tag,
                        result,
                        buffer: Vec::new(),
                    });
                }
            }
        }
        n
    }
}

/// `pwrite` until everything is written.
pub(crate) fn pwrite_all(fd: RawFd, mut buffer: &[u8], mut offset: u64) -> io::Result<usize> {
    let total = buffer.len();
    while !buffer.is_empty() {
        // SAFETY: the pointer and length describe a live slice; fd is the caller's.
        let rc = unsafe {
            libc::pwrite(
                fd,
                buffer.as_ptr().cast(),
                buffer.len(),
                offset as libc::off_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            return Err(io::Error::from(ErrorKind::WriteZero));
        }
        buffer = &buffer[rc as usize..];
        offset += rc as u64;
    }
    Ok(total)
}

/// `pread` until the buffer is full or end of file; returns the bytes read.
pub(crate) fn pread_all(fd: RawFd, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        // SAFETY: the pointer and length describe a live, writable slice; fd is the caller's.
        let rc = unsafe {
            libc::pread(
                fd,
                buffer[done..].as_mut_ptr().cast(),
                buffer.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            break;
        }
        done += rc as usize;
    }
    Ok(done)
}

impl Drop for PollReactor {
    fn drop(&mut self) {
        self.sockets.clear();
        // SAFETY: the epoll fd is owned by the reactor and closed exactly once.
        unsafe {
            libc::close(self.epoll);
        }
    }
}

const READ_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;

impl Reactor for PollReactor {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn listen_tcp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let token = self.insert(Socket::Listener(listener), libc::EPOLLIN as u32)?;
        Ok((token, local))
    }

    fn connect_tcp(&mut self, addr: SocketAddr) -> io::Result<Token> {
        let socket = super::net::connect_nonblocking(addr)?;
        let token = self.insert(
            Socket::Stream {
                stream: socket,
                out: VecDeque::new(),
                written: 0,
                queued: 0,
                connecting: true,
                want_write: true,
                pending: false,
            },
            READ_EVENTS | libc::EPOLLOUT as u32,
        )?;
        Ok(token)
    }

    fn bind_udp(&mut self, addr: SocketAddr) -> io::Result<(Token, SocketAddr)> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let token = self.insert(
            Socket::Udp {
                socket,
                out: VecDeque::new(),
                want_write: false,
                pending: false,
            },
            READ_EVENTS,
        )?;
        Ok((token, local))
    }

    fn send_stream(&mut self, stream: Token, bytes: Vec<u8>) -> io::Result<()> {
        match self.sockets.get_mut(stream as usize) {
            Some(Some(Socket::Stream {
                out,
                queued,
                pending,
                ..
            })) => {
                *queued += bytes.len();
                out.push_back(bytes);
                if !*pending {
                    *pending = true;
                    self.pending.push(stream);
                }
                Ok(())
            }
            _ => Err(io::Error::from(ErrorKind::NotConnected)),
        }
    }

    fn send_datagram(
        &mut self,
        socket: Token,
        to: SocketAddr,
        datagram: Vec<u8>,
    ) -> io::Result<()> {
        match self.sockets.get_mut(socket as usize) {
            Some(Some(Socket::Udp { out, pending, .. })) => {
                out.push_back((to, datagram));
                if !*pending {
                    *pending = true;
                    self.pending.push(socket);
                }
                Ok(())
            }
            _ => Err(io::Error::from(ErrorKind::NotConnected)),
        }
    }

    fn queued_bytes(&self, stream: Token) -> usize {
        match self.sockets.get(stream as usize) {
            Some(Some(Socket::Stream { queued, .. })) => *queued,
            _ => 0,
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(socket) = self.sockets.get_mut(token as usize).and_then(Option::take) {
            let fd = Self::socket_fd(&socket);
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
            self.free.push(token as usize);
        }
    }

    fn file_write(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64) {
        self.files.push_back(FileOp::Write(fd, offset, buffer, tag));
    }

    fn file_write_direct(&mut self, fd: RawFd, offset: u64, bytes: &[u8], tag: u64) -> DirectWrite {
        if !is_direct_aligned(offset, bytes.len()) {
            return DirectWrite::Unsuitable;
        }
        if self.direct.buffer_len() < bytes.len() && self.direct.available() == self.direct.len() {
            // Nothing lent: (re)size the pool to the writes actually made.
            self.direct = DirectPool::new(bytes.len().max(DIRECT_BUF_LEN_DEFAULT));
        }
        let Some((index, _)) = self.direct.lend(bytes) else {
            return DirectWrite::Busy;
        };
        self.files
            .push_back(FileOp::Direct(fd, offset, index, bytes.len(), tag));
        DirectWrite::Submitted
    }

    fn direct_buffers(&self) -> DirectBuffers {
        DirectBuffers {
            registered: false,
            bytes: self.direct.len() * self.direct.buffer_len(),
            error: None,
        }
    }

    fn file_read(&mut self, fd: RawFd, offset: u64, buffer: Vec<u8>, tag: u64) {
        self.files.push_back(FileOp::Read(fd, offset, buffer, tag));
    }

    fn file_sync(&mut self, fd: RawFd, tag: u64) {
        self.files.push_back(FileOp::Sync(fd, tag));
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut dyn FnMut(IoEvent<'_>),
    ) -> io::Result<usize> {
        // Submit: flush every socket with queued output (those still blocked, or still
        // connecting, stay listed for the next poll).
        let mut flushing = std::mem::replace(&mut self.pending, std::mem::take(&mut self.flushing));
        for &token in &flushing {
            let ready = match self.sockets.get_mut(token as usize) {
                Some(Some(Socket::Stream {
                    pending: pending @ true,
                    connecting,
                    ..
                })) => {
                    *pending = false;
                    !*connecting
                }
                Some(Some(Socket::Udp {
                    pending: pending @ true,
                    ..
                })) => {
                    *pending = false;
                    true
                }
                _ => continue,
            };
            if ready {
                if let Err(e) = self.flush(token) {
                    self.close_with(token, Some(e));
                    continue;
                }
            }
            let still = match self.sockets.get_mut(token as usize) {
                Some(Some(Socket::Stream { out, pending, .. })) if !out.is_empty() && !*pending => {
                    *pending = true;
                    true
                }
                Some(Some(Socket::Udp { out, pending, .. })) if !out.is_empty() && !*pending => {
                    *pending = true;
                    true
                }
                _ => false,
            };
            if still {
                self.pending.push(token);
            }
        }
        flushing.clear();
        self.flushing = flushing;
        let mut count = self.run_file_ops(on_event);
        while let Some(stream) = self.connected.pop_front() {
            on_event(IoEvent::Connected { stream });
            count += 1;
        }
        while let Some((stream, error)) = self.closed.pop_front() {
            on_event(IoEvent::Closed { stream, error });
            count += 1;
        }
        let timeout_ms = if count > 0 {
            0
        } else {
            match timeout {
                None => 0,
                Some(t) => t.as_millis().min(i32::MAX as u128) as i32,
            }
        };
        if timeout_ms == 0 && self.sockets.len() == self.free.len() {
            // No socket is registered (a station with only external links): a non-blocking
            // epoll_wait could only report the waker, which a non-parked shard does not need.
            return Ok(count);
        }
        // SAFETY: valid epoll fd; the events buffer is live and its length is passed.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                return Ok(count);
            }
            return Err(e);
        }
        for i in 0..n as usize {
            let event = self.events[i];
            let token = event.u64;
            let flags = event.events;
            if token == WAKER_TOKEN {
                self.waker.drain();
                continue;
            }
            if token & WATCH_BIT != 0 {
                // The watcher looks at its source after every poll; waking was the point.
                continue;
            }
            count += 1;
            self.handle_ready(token, flags, on_event);
        }
        while let Some((stream, error)) = self.closed.pop_front() {
            on_event(IoEvent::Closed { stream, error });
        }
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
        // Edge-triggered: a descriptor that stays readable (an eventfd nobody drains) wakes
        // the poll once per signal, never in a loop.
        let events = (libc::EPOLLIN | libc::EPOLLET) as u32;
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, WATCH_BIT | index as u64)?;
        self.watches[index] = Some(fd);
        Ok(WATCH_BIT | index as u64)
    }

    fn unwatch(&mut self, watch: Token) {
        let index = (watch & !WATCH_BIT) as usize;
        if let Some(fd) = self.watches.get_mut(index).and_then(Option::take) {
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
    }

    fn reclaim(&mut self, into: &mut Vec<Vec<u8>>) {
        into.append(&mut self.done);
    }
}

impl PollReactor {
    fn handle_ready(&mut self, token: Token, flags: u32, on_event: &mut dyn FnMut(IoEvent<'_>)) {
        let index = token as usize;
        let Some(Some(socket)) = self.sockets.get_mut(index) else {
            return;
        };
        match socket {
            Socket::Listener(_) => self.accept_all(token, on_event),
            Socket::Stream {
                stream, connecting, ..
            } => {
                if *connecting
                    && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
                {
                    match stream.take_error() {
                        Ok(None) if flags & libc::EPOLLERR as u32 == 0 => {
                            *connecting = false;
                            let _ = stream.set_nodelay(true);
                            on_event(IoEvent::Connected { stream: token });
                        }
                        Ok(Some(e)) | Err(e) => {
                            self.close_with(token, Some(e));
                            return;
                        }
                        Ok(None) => {
                            self.close_with(
                                token,
                                Some(io::Error::from(ErrorKind::ConnectionRefused)),
                            );
                            return;
                        }
                    }
                }
                if flags & libc::EPOLLOUT as u32 != 0 {
                    if let Err(e) = self.flush(token) {
                        self.close_with(token, Some(e));
                        return;
                    }
                }
                if flags
                    & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                    != 0
                {
                    self.read_stream(token, on_event);
                }
            }
            Socket::Udp { .. } => {
                if flags & libc::EPOLLOUT as u32 != 0 {
                    let _ = self.flush(token);
                }
                if flags & libc::EPOLLIN as u32 != 0 {
                    self.read_udp(token, on_event);
                }
            }
        }
    }

    fn accept_all(&mut self, token: Token, on_event: &mut dyn FnMut(IoEvent<'_>)) {
        // Bounded: at most 64 accepts per readiness, the rest next cycle.
        for _ in 0..64 {
            let Some(Some(Socket::Listener(listener))) = self.sockets.get(token as usize) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.set_nodelay(true);
                    let new = Socket::Stream {
                        stream,
                        out: VecDeque::new(),
                        written: 0,
                        queued: 0,
                        connecting: false,
                        want_write: false,
                        pending: false,
                    };
                    if let Ok(stream) = self.insert(new, READ_EVENTS) {
                        on_event(IoEvent::Accepted {
                            listener: token,
                            stream,
                            peer,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_stream(&mut self, token: Token, on_event: &mut dyn FnMut(IoEvent<'_>)) {
        // Bounded work per readiness: at most 16 reads, then yield to the cycle.
        for _ in 0..16 {
            let Some(Some(Socket::Stream { stream, .. })) = self.sockets.get_mut(token as usize)
            else {
                return;
            };
            match stream.read(&mut self.buffer) {
                Ok(0) => {
                    self.close_with(token, None);
                    return;
                }
                Ok(n) => on_event(IoEvent::Data {
                    stream: token,
                    bytes: &self.buffer[..n],
                }),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close_with(token, Some(e));
                    return;
                }
            }
        }
    }

    fn read_udp(&mut self, token: Token, on_event: &mut dyn FnMut(IoEvent<'_>)) {
        for _ in 0..64 {
            let Some(Some(Socket::Udp { socket, .. })) = self.sockets.get(token as usize) else {
                return;
            };
            match socket.recv_from(&mut self.buffer) {
                Ok((n, from)) => on_event(IoEvent::Datagram {
                    socket: token,
                    from,
                    bytes: &self.buffer[..n],
                }),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}
