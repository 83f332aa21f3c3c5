//! WebSocket (RFC 6455) links: one TamTam frame per binary message, over `tungstenite`
//! without an async runtime, on non-blocking TCP.
//!
//! - **Framer.** [`WsFramer`] runs the handshake and the message layer over any
//!   `Read + Write` stream that answers `WouldBlock` when it has nothing (a non-blocking
//!   `TcpStream` in the adapter; an in-memory pipe in tests and the fuzz target). Time is an
//!   input (`now`), so the keepalive logic is testable without sleeping.
//! - **Limits.** The largest message and the largest WebSocket frame are both
//!   `frame_len_max` (tungstenite's `max_message_size` / `max_frame_size`): a peer announcing
//!   more is answered with close code 1009 and the link is closed (the frame header is checked
//!   before the payload is buffered, so an oversized or endless message costs at most
//!   `frame_len_max` bytes). Protocol violations (invalid opcode, unmasked client frame,
//!   reserved bits, bad UTF-8 in a close reason) get close code 1002 and close the link.
//!   A text message is not a TamTam frame: it is dropped and counted, the link survives;
//!   so is a binary message that is not a valid v1 frame (checked here, with the peer named,
//!   before the bus sees it).
//! - **Keepalive.** A ping every `keepalive_interval`; a peer from which no complete message
//!   (pong included) arrived for `keepalive_timeout` is dead and the link closes. A peer that
//!   stalls in the middle of a message is dead in the same way. A handshake that does not
//!   complete within `handshake_timeout` closes the connection.
//! - **Close.** Dropping a link sends a close frame (1000) if the socket takes it; a close
//!   from the peer is answered (tungstenite does it) and then closes the link.
//! - **Back-pressure.** Frames sent during the handshake wait in a small bounded queue; after
//!   it, tungstenite's write buffer is bounded by `send_buffer_bytes`: a full buffer makes
//!   `send` answer `Ok(false)` (dropped and counted; the bus resends).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tamtam_engine::core::wire::frame::{DecodeOptions, FrameView};
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::server::{NoCallback, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Bytes, Message, WebSocket};

use crate::{DropKind, ExternalLink, ExternalListener, LinkCounters, closed};

pub use tungstenite::protocol::Role;

/// Settings of WebSocket links.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Largest frame (and so WebSocket message) accepted or sent.
    pub frame_len_max: u32,
    /// A ping is sent at this interval.
    pub keepalive_interval: Duration,
    /// A peer silent this long (no complete message, no pong) is declared dead.
    pub keepalive_timeout: Duration,
    /// A handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// Bytes waiting to be written at most (tungstenite's `max_write_buffer_size`).
    pub send_buffer_bytes: usize,
    /// Frames queued while the handshake runs at most.
    pub handshake_queue_frames: usize,
    /// The request path a client asks for.
    pub path: String,
}

impl Default for WsConfig {
    fn default() -> Self {
        let frame_len_max =
            crate::frame_len_max_for(tamtam_engine::core::wire::frame::PAYLOAD_LEN_MAX_DEFAULT);
        WsConfig {
            frame_len_max,
            keepalive_interval: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            send_buffer_bytes: 2 * frame_len_max as usize + WRITE_BATCH_BYTES,
            handshake_queue_frames: 64,
            path: "/".into(),
        }
    }
}

/// Bytes tungstenite gathers before writing to the socket on its own (every cycle flushes).
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// tungstenite's read buffer per connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Framing overhead of one server→client binary message at most (2 + 8 header bytes; a
/// client adds a 4-byte mask).
pub const MESSAGE_OVERHEAD_MAX: usize = 14;

impl WsConfig {
    fn tungstenite(&self) -> WebSocketConfig {
        assert!(self.send_buffer_bytes >= WRITE_BATCH_BYTES + self.frame_len_max as usize);
        let limit = Some(self.frame_len_max as usize);
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BATCH_BYTES)
            .max_write_buffer_size(self.send_buffer_bytes)
            .max_message_size(limit)
            .max_frame_size(limit)
    }
}

enum Phase<S: Read + Write> {
    Server(MidHandshake<ServerHandshake<S, NoCallback>>),
    Client(MidHandshake<ClientHandshake<S>>),
    Open(WebSocket<S>),
    /// Failed or closed; the stream is kept so that what was last written can be inspected
    /// (tests), and is closed when the framer is dropped.
    Closed(S),
    Done,
}

/// The WebSocket framer over one stream: handshake, messages ↔ frames, keepalive, close.
///
/// Call order, every cycle: [`poll`](Self::poll) (handshake progress, received frames,
/// liveness), then [`send`](Self::send) for each outgoing frame, then
/// [`flush`](Self::flush) (pings, buffered output).
pub struct WsFramer<S: Read + Write> {
    name: String,
    phase: Phase<S>,
    config: WsConfig,
    options: DecodeOptions,
    started: Instant,
    last_heard: Instant,
    last_ping: Instant,
    queued: VecDeque<Vec<u8>>,
    counters: Arc<LinkCounters>,
}

impl<S: Read + Write> WsFramer<S> {
    fn new(name: String, phase: Phase<S>, config: &WsConfig, now: Instant) -> WsFramer<S> {
        WsFramer {
            name,
            phase,
            options: DecodeOptions {
                payload_len_max: config.frame_len_max,
                verify_checksum: true,
            },
            config: config.clone(),
            started: now,
            last_heard: now,
            last_ping: now,
            queued: VecDeque::new(),
            counters: LinkCounters::shared(),
        }
    }

    /// The server side of a connection whose handshake has not started.
    pub fn server(stream: S, name: String, config: &WsConfig, now: Instant) -> WsFramer<S> {
        let mid = ServerHandshake::start(stream, NoCallback, Some(config.tungstenite()));
        WsFramer::new(name, Phase::Server(mid), config, now)
    }

    /// The client side: asks for `url` (`ws://host:port/path`).
    pub fn client(
        stream: S,
        url: &str,
        name: String,
        config: &WsConfig,
        now: Instant,
    ) -> io::Result<WsFramer<S>> {
        use tungstenite::client::IntoClientRequest;
        let request = url
            .into_client_request()
            .map_err(|e| closed(io::ErrorKind::InvalidInput, &name, e))?;
        let mid = ClientHandshake::start(stream, request, Some(config.tungstenite()))
            .map_err(|e| closed(io::ErrorKind::InvalidInput, &name, e))?;
        Ok(WsFramer::new(name, Phase::Client(mid), config, now))
    }

    /// Both sides after a handshake done elsewhere (tests, fuzzing).
    pub fn open(stream: S, role: Role, name: String, config: &WsConfig, now: Instant) -> Self {
        let ws = WebSocket::from_raw_socket(stream, role, Some(config.tungstenite()));
        WsFramer::new(name, Phase::Open(ws), config, now)
    }

    /// Whether the handshake is done and the link carries messages.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// The counters.
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// The underlying stream, while there is one.
    pub fn stream_mut(&mut self) -> Option<&mut S> {
        match &mut self.phase {
            Phase::Server(mid) => Some(mid.get_mut().get_mut()),
            Phase::Client(mid) => Some(mid.get_mut().get_mut()),
            Phase::Open(ws) => Some(ws.get_mut()),
            Phase::Closed(stream) => Some(stream),
            Phase::Done => None,
        }
    }

    fn fail(&mut self, error: tungstenite::Error) -> io::Error {
        use tungstenite::Error as E;
        use tungstenite::error::ProtocolError as P;
        let (kind, close) = match &error {
            E::ConnectionClosed | E::AlreadyClosed => (io::ErrorKind::ConnectionAborted, None),
            E::Protocol(P::ResetWithoutClosingHandshake) => (io::ErrorKind::ConnectionReset, None),
            E::Io(e) => (e.kind(), None),
            E::Capacity(e) => {
                self.counters.drop_frame(
                    DropKind::Oversize,
                    &self.name,
                    format_args!("{e} (limit {})", self.config.frame_len_max),
                );
                (io::ErrorKind::InvalidData, Some(CloseCode::Size))
            }
            E::Utf8(_) => {
                self.counters
                    .drop_frame(DropKind::Malformed, &self.name, format_args!("{error}"));
                (io::ErrorKind::InvalidData, Some(CloseCode::Invalid))
            }
            _ => {
                self.counters
                    .drop_frame(DropKind::Malformed, &self.name, format_args!("{error}"));
                (io::ErrorKind::InvalidData, Some(CloseCode::Protocol))
            }
        };
        if let (Some(code), Phase::Open(ws)) = (close, &mut self.phase) {
            let reason = match code {
                CloseCode::Size => "frame too large",
                _ => "protocol error",
            };
            // Best effort: the socket may not take it; the link closes either way.
            let _ = ws.close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = ws.flush();
        }
        self.phase = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Open(ws) => Phase::Closed(ws.into_inner()),
            _ => Phase::Done,
        };
        closed(kind, &self.name, error)
    }

    fn handshake_failed(&mut self, error: tungstenite::Error) -> io::Error {
        self.phase = Phase::Done;
        self.counters.drop_frame(
            DropKind::Malformed,
            &self.name,
            format_args!("handshake failed: {error}"),
        );
        closed(io::ErrorKind::ConnectionRefused, &self.name, error)
    }

    /// Runs the handshake as far as the stream allows.
    fn advance(&mut self, now: Instant) -> io::Result<()> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::Server(mid) => match mid.handshake() {
                Ok(ws) => Phase::Open(ws),
                Err(HandshakeError::Interrupted(mid)) => Phase::Server(mid),
                Err(HandshakeError::Failure(e)) => return Err(self.handshake_failed(e)),
            },
            Phase::Client(mid) => match mid.handshake() {
                Ok((ws, _response)) => Phase::Open(ws),
                Err(HandshakeError::Interrupted(mid)) => Phase::Client(mid),
                Err(HandshakeError::Failure(e)) => return Err(self.handshake_failed(e)),
            },
            other => other,
        };
        match &self.phase {
            Phase::Open(_) => {
                self.last_heard = now;
                self.last_ping = now;
                while let Some(frame) = self.queued.pop_front() {
                    if !self.write_frame(frame)? {
                        break;
                    }
                }
                self.queued.clear();
                Ok(())
            }
            Phase::Done | Phase::Closed(_) => {
                Err(closed(io::ErrorKind::NotConnected, &self.name, "closed"))
            }
            _ if now.saturating_duration_since(self.started) > self.config.handshake_timeout => {
                self.phase = Phase::Done;
                Err(closed(
                    io::ErrorKind::TimedOut,
                    &self.name,
                    format_args!(
                        "handshake not done within {:?}",
                        self.config.handshake_timeout
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Handshake progress, then up to `frames_max` received frames to `on_frame`, then the
    /// liveness check. An error closes the link.
    pub fn poll(
        &mut self,
        now: Instant,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        if !self.is_open() {
            self.advance(now)?;
            if !self.is_open() {
                return Ok(false);
            }
        }
        let mut frames = 0;
        while frames < frames_max {
            let Phase::Open(ws) = &mut self.phase else {
                break;
            };
            match ws.read() {
                Ok(Message::Binary(bytes)) => {
                    self.last_heard = now;
                    LinkCounters::add(&self.counters.wire_bytes_received, bytes.len() as u64);
                    match FrameView::decode(&bytes, self.options) {
                        Ok(_) => {
                            self.counters.received(bytes.len());
                            on_frame(&bytes);
                            frames += 1;
                        }
                        Err(error) => self.counters.drop_frame(
                            DropKind::Malformed,
                            &self.name,
                            format_args!("{error}"),
                        ),
                    }
                }
                Ok(Message::Text(text)) => {
                    self.last_heard = now;
                    self.counters.drop_frame(
                        DropKind::Malformed,
                        &self.name,
                        format_args!("text message of {} bytes (frames are binary)", text.len()),
                    );
                }
                Ok(_) => self.last_heard = now, // ping (answered by tungstenite), pong, close
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        let silent = now.saturating_duration_since(self.last_heard);
        if silent > self.config.keepalive_timeout {
            self.phase = Phase::Done;
            return Err(closed(
                io::ErrorKind::TimedOut,
                &self.name,
                format_args!("peer silent for {silent:?} (keepalive)"),
            ));
        }
        Ok(frames > 0)
    }

    /// Hands one frame to tungstenite; false if its write buffer is full.
    fn write_frame(&mut self, frame: Vec<u8>) -> io::Result<bool> {
        let Phase::Open(ws) = &mut self.phase else {
            return Ok(false);
        };
        let len = frame.len();
        match ws.write(Message::Binary(Bytes::from(frame))) {
            // A `WouldBlock` here means the message was buffered but the socket is full.
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(tungstenite::Error::WriteBufferFull(_)) => {
                self.counters.drop_frame(
                    DropKind::SendFull,
                    &self.name,
                    format_args!("write buffer full"),
                );
                return Ok(false);
            }
            Err(e) => return Err(self.fail(e)),
        }
        self.counters.sent(len);
        Ok(true)
    }

    /// Queues one frame as a binary message. `Ok(false)`: dropped (buffer full or frame over
    /// the limit), counted.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if frame.len() > self.config.frame_len_max as usize {
            self.counters.drop_frame(
                DropKind::Oversize,
                &self.name,
                format_args!(
                    "frame of {} bytes exceeds the link limit of {}",
                    frame.len(),
                    self.config.frame_len_max
                ),
            );
            return Ok(false);
        }
        match &self.phase {
            Phase::Open(_) => self.write_frame(frame.to_vec()),
            Phase::Done | Phase::Closed(_) => {
                Err(closed(io::ErrorKind::NotConnected, &self.name, "closed"))
            }
            _ => {
                if self.queued.len() >= self.config.handshake_queue_frames {
                    self.counters.drop_frame(
                        DropKind::SendFull,
                        &self.name,
                        format_args!("handshake queue full"),
                    );
                    return Ok(false);
                }
                self.queued.push_back(frame.to_vec());
                Ok(true)
            }
        }
    }

    /// Sends a ping when one is due and writes buffered output as far as the stream takes it.
    pub fn flush(&mut self, now: Instant) -> io::Result<()> {
        if !self.is_open() {
            return self.advance(now);
        }
        let Phase::Open(ws) = &mut self.phase else {
            return Ok(());
        };
        let mut result = Ok(());
        if now.saturating_duration_since(self.last_ping) >= self.config.keepalive_interval {
            self.last_ping = now;
            let stamp = Bytes::copy_from_slice(&(now.elapsed().as_nanos() as u64).to_le_bytes());
            result = ws.write(Message::Ping(stamp));
        }
        if result.is_ok() {
            result = ws.flush();
        }
        match result {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(tungstenite::Error::WriteBufferFull(_)) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Starts the closing handshake (close code 1000) and pushes it out as far as the
    /// stream takes it. Later calls to `poll` finish it.
    pub fn close(&mut self) {
        if let Phase::Open(ws) = &mut self.phase {
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }));
            let _ = ws.flush();
        }
    }
}

enum LinkState {
    /// A client whose TCP connect is in progress.
    Connecting {
        stream: TcpStream,
        url: String,
    },
    Framing(Box<WsFramer<TcpStream>>),
    Failed,
}

/// A WebSocket link over TCP (server side from [`WsListener`], or client side from
/// [`WsLink::connect`]).
pub struct WsLink {
    name: String,
    state: LinkState,
    config: WsConfig,
    counters: Arc<LinkCounters>,
    started: Instant,
}

impl WsLink {
    /// Starts a client connection to `addr` asking for `config.path`; returns at once (the
    /// connect and the handshake complete during later polls).
    pub fn connect(addr: SocketAddr, config: &WsConfig) -> io::Result<WsLink> {
        let name = format!("ws client {addr}");
        let stream = tamtam_engine::driver::net::connect_nonblocking(addr)
            .map_err(|e| closed(e.kind(), &name, e))?;
        stream.set_nodelay(true)?;
        Ok(WsLink {
            state: LinkState::Connecting {
                stream,
                url: format!("ws://{addr}{}", config.path),
            },
            name,
            config: config.clone(),
            counters: LinkCounters::shared(),
            started: Instant::now(),
        })
    }

    fn accepted(
        stream: TcpStream,
        peer: SocketAddr,
        config: &WsConfig,
        counters: Arc<LinkCounters>,
    ) -> io::Result<WsLink> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let name = format!("ws {peer}");
        let now = Instant::now();
        let mut framer = WsFramer::server(stream, name.clone(), config, now);
        framer.counters = counters.clone();
        Ok(WsLink {
            name,
            state: LinkState::Framing(Box::new(framer)),
            config: config.clone(),
            counters,
            started: now,
        })
    }

    /// This link's counters (shared with its framer).
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// Moves a client from "TCP connecting" to "handshaking" once the connect completed.
    fn progress_connect(&mut self, now: Instant) -> io::Result<()> {
        let LinkState::Connecting { stream, .. } = &self.state else {
            return Ok(());
        };
        let mut poll = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        let rc = unsafe { libc::poll(&mut poll, 1, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(closed(e.kind(), &self.name, e));
        }
        if rc == 0 {
            if now.saturating_duration_since(self.started) > self.config.handshake_timeout {
                self.state = LinkState::Failed;
                return Err(closed(
                    io::ErrorKind::TimedOut,
                    &self.name,
                    "connect timed out",
                ));
            }
            return Ok(());
        }
        if let Some(e) = stream.take_error()? {
            self.state = LinkState::Failed;
            return Err(closed(e.kind(), &self.name, e));
        }
        let LinkState::Connecting { stream, url } =
            std::mem::replace(&mut self.state, LinkState::Failed)
        else {
            unreachable!("checked above");
        };
        let mut framer = WsFramer::client(stream, &url, self.name.clone(), &self.config, now)?;
        framer.counters = self.counters.clone();
        self.state = LinkState::Framing(Box::new(framer));
        Ok(())
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        if let LinkState::Framing(framer) = &mut self.state {
            framer.close();
        }
    }
}

impl ExternalLink for WsLink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        let now = Instant::now();
        self.progress_connect(now)?;
        match &mut self.state {
            LinkState::Framing(framer) => framer.poll(now, frames_max, on_frame),
            LinkState::Connecting { .. } => Ok(false),
            LinkState::Failed => Err(closed(io::ErrorKind::NotConnected, &self.name, "failed")),
        }
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        match &mut self.state {
            LinkState::Framing(framer) => framer.send(frame),
            LinkState::Connecting { .. } => {
                self.counters.drop_frame(
                    DropKind::SendFull,
                    &self.name,
                    format_args!("connecting"),
                );
                Ok(false)
            }
            LinkState::Failed => Err(closed(io::ErrorKind::NotConnected, &self.name, "failed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let now = Instant::now();
        self.progress_connect(now)?;
        match &mut self.state {
            LinkState::Framing(framer) => framer.flush(now),
            _ => Ok(()),
        }
    }

    fn dropped(&self) -> u64 {
        self.counters.dropped()
    }
}

/// Accepts WebSocket connections on a TCP port; each becomes a link of the station.
pub struct WsListener {
    listener: TcpListener,
    local: SocketAddr,
    config: WsConfig,
    counters: Arc<LinkCounters>,
}

impl WsListener {
    /// Listens on `addr` (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    pub fn bind(addr: SocketAddr, config: &WsConfig) -> io::Result<WsListener> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| closed(e.kind(), &format!("ws listener {addr}"), e))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        Ok(WsListener {
            listener,
            local,
            config: config.clone(),
            counters: LinkCounters::shared(),
        })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Counters shared by every link this listener accepts (their sum).
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }
}

impl ExternalListener for WsListener {
    fn describe(&self) -> String {
        format!("ws listener {}", self.local)
    }

    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>> {
        match self.listener.accept() {
            Ok((stream, peer)) => Ok(Some(Box::new(WsLink::accepted(
                stream,
                peer,
                &self.config,
                self.counters.clone(),
            )?))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // A connection that died in the backlog, or no fds left: not the listener's end.
            Err(e) => Err(e),
        }
    }
}

/// An in-memory, non-blocking byte pipe end: reads answer `WouldBlock` when empty. Two ends
/// make a connection for tests and fuzzing of [`WsFramer`].
#[derive(Debug, Default)]
pub struct MemoryStream {
    /// Bytes waiting to be read by this end.
    pub input: VecDeque<u8>,
    /// Bytes written by this end.
    pub output: Vec<u8>,
    /// Bytes `output` holds at most before writes answer `WouldBlock`.
    pub output_max: usize,
    /// The peer closed: reads return end of file once `input` is empty.
    pub eof: bool,
}

impl MemoryStream {
    /// An empty stream whose output holds up to `output_max` bytes.
    pub fn new(output_max: usize) -> MemoryStream {
        MemoryStream {
            output_max,
            ..MemoryStream::default()
        }
    }
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            if self.eof {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.output_max.saturating_sub(self.output.len());
        if room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(buf.len());
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tamtam_engine::core::wire::frame::{Header, Lane, PacketType, encode_to_vec};

    fn frame(payload_len: usize, id: u64) -> Vec<u8> {
        let header = Header {
            request_id: id,
            ..Header::new(Lane::Fast, PacketType::Data)
        };
        encode_to_vec(&header, &vec![0xA5; payload_len]).unwrap()
    }

    fn config() -> WsConfig {
        WsConfig {
            frame_len_max: 4096,
            keepalive_interval: Duration::from_millis(100),
            keepalive_timeout: Duration::from_millis(500),
            send_buffer_bytes: WRITE_BATCH_BYTES + 2 * 4096,
            ..WsConfig::default()
        }
    }

    /// Moves bytes between the two ends' streams.
    fn shuttle(a: &mut WsFramer<MemoryStream>, b: &mut WsFramer<MemoryStream>) {
        let a_out = std::mem::take(&mut a.stream_mut().unwrap().output);
        let b_out = std::mem::take(&mut b.stream_mut().unwrap().output);
        b.stream_mut().unwrap().input.extend(a_out);
        a.stream_mut().unwrap().input.extend(b_out);
    }

    fn pair(now: Instant) -> (WsFramer<MemoryStream>, WsFramer<MemoryStream>) {
        let config = config();
        let mut client = WsFramer::client(
            MemoryStream::new(1 << 20),
            "ws://localhost/",
            "client".into(),
            &config,
            now,
        )
        .unwrap();
        let mut server =
            WsFramer::server(MemoryStream::new(1 << 20), "server".into(), &config, now);
        for _ in 0..10 {
            client.flush(now).unwrap();
            server.poll(now, 10, &mut |_| {}).unwrap();
            server.flush(now).unwrap();
            shuttle(&mut client, &mut server);
            client.poll(now, 10, &mut |_| {}).unwrap();
            shuttle(&mut client, &mut server);
            if client.is_open() && server.is_open() {
                break;
            }
        }
        assert!(client.is_open() && server.is_open());
        (client, server)
    }

    fn recv(framer: &mut WsFramer<MemoryStream>, now: Instant) -> io::Result<Vec<Vec<u8>>> {
        let mut got = Vec::new();
        framer.poll(now, 100, &mut |f| got.push(f.to_vec()))?;
        Ok(got)
    }

    #[test]
    fn handshake_then_frames_both_ways_and_queued_during_handshake() {
        let now = Instant::now();
        let config = config();
        let mut client = WsFramer::client(
            MemoryStream::new(1 << 20),
            "ws://localhost/",
            "client".into(),
            &config,
            now,
        )
        .unwrap();
        assert!(
            client.send(&frame(10, 1)).unwrap(),
            "queued during the handshake"
        );
        let mut server =
            WsFramer::server(MemoryStream::new(1 << 20), "server".into(), &config, now);
        let mut got = Vec::new();
        for _ in 0..10 {
            client.flush(now).unwrap();
            shuttle(&mut client, &mut server);
            got.extend(recv(&mut server, now).unwrap());
            server.flush(now).unwrap();
            shuttle(&mut client, &mut server);
            client.poll(now, 10, &mut |_| {}).unwrap();
        }
        assert_eq!(got, vec![frame(10, 1)]);
        assert!(server.send(&frame(20, 2)).unwrap());
        server.flush(now).unwrap();
        shuttle(&mut client, &mut server);
        assert_eq!(recv(&mut client, now).unwrap(), vec![frame(20, 2)]);
    }

    #[test]
    fn largest_message_passes_one_byte_more_closes_with_1009() {
        let now = Instant::now();
        let (mut client, mut server) = pair(now);
        let max = frame(4096 - 48, 1);
        assert_eq!(max.len(), 4096);
        assert!(client.send(&max).unwrap());
        client.flush(now).unwrap();
        shuttle(&mut client, &mut server);
        assert_eq!(recv(&mut server, now).unwrap(), vec![max]);
        // One byte more, sent raw (our own send refuses it).
        let Phase::Open(ws) = &mut client.phase else {
            panic!()
        };
        ws.write(Message::Binary(Bytes::from(vec![0u8; 4097])))
            .unwrap();
        ws.flush().unwrap();
        shuttle(&mut client, &mut server);
        let error = recv(&mut server, now).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(server.counters().snapshot().oversize, 1);
        // The close frame with code 1009 reached the client.
        shuttle(&mut client, &mut server);
        let Phase::Open(ws) = &mut client.phase else {
            panic!()
        };
        match ws.read() {
            Ok(Message::Close(Some(close))) => assert_eq!(close.code, CloseCode::Size),
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(
            !client.send(&frame(4097 - 48, 3)).unwrap(),
            "refused by send"
        );
    }

    #[test]
    fn text_and_invalid_frames_are_dropped_link_survives() {
        let now = Instant::now();
        let (mut client, mut server) = pair(now);
        let Phase::Open(ws) = &mut client.phase else {
            panic!()
        };
        ws.write(Message::text("hello")).unwrap();
        ws.write(Message::Binary(Bytes::from(vec![7u8; 100])))
            .unwrap();
        ws.flush().unwrap();
        assert!(client.send(&frame(5, 9)).unwrap());
        client.flush(now).unwrap();
        shuttle(&mut client, &mut server);
        assert_eq!(recv(&mut server, now).unwrap(), vec![frame(5, 9)]);
        assert_eq!(server.counters().snapshot().malformed, 2);
    }

    #[test]
    fn invalid_opcode_closes_with_1002() {
        let now = Instant::now();
        let (_client, mut server) = pair(now);
        // FIN + opcode 0x3 (reserved), masked, empty payload.
        server
            .stream_mut()
            .unwrap()
            .input
            .extend([0x83, 0x80, 1, 2, 3, 4]);
        let error = recv(&mut server, now).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(server.counters().snapshot().malformed, 1);
    }

    #[test]
    fn silent_peer_is_declared_dead_after_the_keepalive_timeout() {
        let now = Instant::now();
        let (mut client, mut server) = pair(now);
        // The client answers pings while it is polled.
        for step in 1..=10u64 {
            let t = now + Duration::from_millis(100 * step);
            server.flush(t).unwrap();
            shuttle(&mut client, &mut server);
            client.poll(t, 10, &mut |_| {}).unwrap();
            client.flush(t).unwrap();
            shuttle(&mut client, &mut server);
            recv(&mut server, t).unwrap();
        }
        // Then it stops answering.
        let later = now + Duration::from_millis(1000 + 600);
        server.flush(later).unwrap();
        let error = recv(&mut server, later).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_peer_stalled_mid_message_costs_bounded_memory_and_times_out() {
        let now = Instant::now();
        let (_client, mut server) = pair(now);
        // Header of a 4000-byte masked binary message, then only 10 bytes of it.
        let mut bytes = vec![0x82, 0xFE, 0x0F, 0xA0, 1, 2, 3, 4];
        bytes.extend([9u8; 10]);
        server.stream_mut().unwrap().input.extend(bytes);
        assert!(recv(&mut server, now).unwrap().is_empty());
        let later = now + Duration::from_millis(600);
        assert_eq!(
            recv(&mut server, later).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn handshake_garbage_and_timeout() {
        let now = Instant::now();
        let config = config();
        let mut server = WsFramer::server(MemoryStream::new(1 << 16), "s".into(), &config, now);
        server
            .stream_mut()
            .unwrap()
            .input
            .extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".iter().copied());
        assert!(recv(&mut server, now).is_err(), "not an upgrade request");
        let mut slow = WsFramer::server(MemoryStream::new(1 << 16), "s".into(), &config, now);
        assert!(recv(&mut slow, now).unwrap().is_empty());
        let later = now + config.handshake_timeout + Duration::from_millis(1);
        assert_eq!(
            recv(&mut slow, later).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn send_buffer_is_bounded() {
        let now = Instant::now();
        let (mut client, _server) = pair(now);
        client.stream_mut().unwrap().output_max = 0; // the socket takes nothing
        let mut accepted = 0;
        for i in 0..100 {
            if client.send(&frame(4000, i)).unwrap() {
                accepted += 1;
            }
        }
        assert!(accepted < 100);
        assert!(client.counters().snapshot().send_full > 0);
    }

    #[test]
    fn close_handshake_from_the_server_is_answered_by_the_client() {
        let now = Instant::now();
        let (mut client, mut server) = pair(now);
        server.close();
        shuttle(&mut client, &mut server);
        // The client sees the close (1000) and answers it; the server's link then ends and
        // closes the connection, which ends the client's.
        assert!(recv(&mut client, now).unwrap().is_empty());
        shuttle(&mut client, &mut server);
        assert_eq!(
            recv(&mut server, now).unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        client.stream_mut().unwrap().eof = true;
        assert_eq!(
            recv(&mut client, now).unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        assert_eq!(server.counters().snapshot().malformed, 0);
        assert_eq!(client.counters().snapshot().malformed, 0);
    }

    #[test]
    fn close_handshake_from_the_client_closes_the_server_link_cleanly() {
        let now = Instant::now();
        let (mut client, mut server) = pair(now);
        client.close();
        shuttle(&mut client, &mut server);
        let error = recv(&mut server, now).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(server.counters().snapshot().malformed, 0);
    }
}
