//! What handlers see and use: [`Service`] (a handler on a port), [`Tee`] (middleware that
//! observes every delivered message first), [`Message`], [`Context`] and [`Outgoing`].
//!
//! Handlers run in the deliver phase of a cycle and must not block. What they emit through the
//! [`Context`] enters the bus in the commit phase of the same cycle, never re-entrantly.

use super::time::Instant;
use super::wire::frame::{Flags, Header, Lane, RecipientKind};

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// One station.
    Station(u32),
    /// Any one station serving the port: this station if it serves it, else the reachable
    /// server with the fewest unresolved messages from this station (ties at random).
    Service,
    /// Every member of the group whose id is the port.
    Group,
    /// Every station serving the port.
    Broadcast,
}

impl Recipient {
    /// The wire recipient kind.
    pub fn kind(self) -> RecipientKind {
        match self {
            Recipient::Station(_) => RecipientKind::Station,
            Recipient::Service => RecipientKind::Service,
            Recipient::Group => RecipientKind::Group,
            Recipient::Broadcast => RecipientKind::Broadcast,
        }
    }
}

/// A message to send on the fast lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Who it is for.
    pub to: Recipient,
    /// The recipient port.
    pub port: u16,
    /// The sending port, where replies and ACK events go.
    pub from_port: u16,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Whether the recipient must acknowledge (default true; false is fire-and-forget).
    pub ack: bool,
    /// Whether every station on the way reports trace events.
    pub trace: bool,
    /// Scheduling priority, 0 lowest.
    pub priority: u8,
    /// Conversation id; chosen by the bus when `None`. Replies carry the request's.
    pub route_id: Option<u32>,
    /// This answers a request (`REPLY` flag).
    pub reply: bool,
    /// The payload is a TPF message.
    pub tpf: bool,
}

/// The port API sends come from when no handler port is given.
pub const CLIENT_PORT: u16 = u16::MAX;

impl Outgoing {
    fn new(to: Recipient, port: u16, payload: Vec<u8>) -> Outgoing {
        Outgoing {
            to,
            port,
            from_port: CLIENT_PORT,
            payload,
            ack: true,
            trace: false,
            priority: 0,
            route_id: None,
            reply: false,
            tpf: false,
        }
    }

    /// A message for `port` on station `station`.
    pub fn to_station(station: u32, port: u16, payload: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing::new(Recipient::Station(station), port, payload.into())
    }

    /// A message for any one server of `port`.
    pub fn to_service(port: u16, payload: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing::new(Recipient::Service, port, payload.into())
    }

    /// A message for every member of group `port`.
    pub fn to_group(port: u16, payload: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing::new(Recipient::Group, port, payload.into())
    }

    /// A message for every server of `port`.
    pub fn broadcast(port: u16, payload: impl Into<Vec<u8>>) -> Outgoing {
        Outgoing::new(Recipient::Broadcast, port, payload.into())
    }

    /// Sets the sending port.
    #[must_use]
    pub fn from_port(mut self, port: u16) -> Outgoing {
        self.from_port = port;
        self
    }

    /// Sends without requiring an ACK.
    #[must_use]
    pub fn no_ack(mut self) -> Outgoing {
        self.ack = false;
        self
    }

    /// Requests trace reports from every station on the way.
    #[must_use]
    pub fn traced(mut self) -> Outgoing {
        self.trace = true;
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: u8) -> Outgoing {
        self.priority = priority;
        self
    }

    /// Sets the conversation id.
    #[must_use]
    pub fn route(mut self, route_id: u32) -> Outgoing {
        self.route_id = Some(route_id);
        self
    }

    /// Marks the payload as TPF.
    #[must_use]
    pub fn tpf(mut self) -> Outgoing {
        self.tpf = true;
        self
    }

    /// A message whose payload is `value` encoded as TPF (flagged `TPF`), for `port` on
    /// `to`. This is what `Station::send_message` uses.
    pub fn message<T: tamtam_tpf::TpfMessage>(
        to: Recipient,
        port: u16,
        value: &T,
    ) -> Result<Outgoing, tamtam_tpf::Error> {
        let mut payload = vec![0u8; value.encoded_len()];
        let n = value.encode(&mut payload)?;
        payload.truncate(n);
        let mut message = Outgoing::new(to, port, payload);
        message.tpf = true;
        Ok(message)
    }

    pub(crate) fn flags(&self) -> Flags {
        let mut flags = Flags::NONE;
        if self.ack {
            flags = flags | Flags::ACK_REQUIRED;
        }
        if self.trace {
            flags = flags | Flags::TRACE_REQUESTED;
        }
        if self.reply {
            flags = flags | Flags::REPLY;
        }
        if self.tpf {
            flags = flags | Flags::TPF;
        }
        flags
    }
}

/// A message delivered to a handler or observed by a tee.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The frame header as received.
    pub header: &'a Header,
    /// The payload.
    pub payload: &'a [u8],
    /// When the bus received it.
    pub received_at: Instant,
}

impl Message<'_> {
    /// The original sender station.
    pub fn sender(&self) -> u32 {
        self.header.sender_id
    }

    /// The port it was sent to.
    pub fn port(&self) -> u16 {
        self.header.recipient_port
    }

    /// The port the sender sent it from.
    pub fn sender_port(&self) -> u16 {
        self.header.sender_port
    }

    /// The conversation id.
    pub fn route_id(&self) -> u32 {
        self.header.route_id
    }

    /// The sender's message id.
    pub fn request_id(&self) -> u64 {
        self.header.request_id
    }

    /// Whether this answers a request.
    pub fn is_reply(&self) -> bool {
        self.header.flags.contains(Flags::REPLY)
    }

    /// The lane.
    pub fn lane(&self) -> Lane {
        self.header.lane
    }

    /// How it was addressed.
    pub fn recipient_kind(&self) -> RecipientKind {
        self.header.recipient_kind
    }

    /// Whether the payload is flagged as TPF.
    pub fn is_tpf(&self) -> bool {
        self.header.flags.contains(Flags::TPF)
    }

    /// Decodes the payload as TPF message `T` (validated; schema and template must match).
    pub fn decode<T: tamtam_tpf::TpfMessage>(&self) -> Result<T, tamtam_tpf::Error> {
        T::decode(self.payload)
    }
}

/// A finished inbound bulk object, delivered to the handler of its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReceived {
    /// The sending station.
    pub sender: u32,
    /// The transfer id.
    pub transfer: u64,
    /// The object's name from the offer.
    pub name: String,
    /// Bytes in the object.
    pub len: u64,
    /// Where the spool keeps it (the runtime: a file path; the simulator: a key).
    pub spool_key: String,
}

/// What a handler can do while it handles a message: emit messages for the commit phase.
pub struct Context<'a> {
    pub(crate) now: Instant,
    pub(crate) station_id: u32,
    pub(crate) port: u16,
    pub(crate) outgoing: &'a mut Vec<Outgoing>,
    pub(crate) emitted_max: usize,
    pub(crate) dropped: &'a mut u64,
}

impl Context<'_> {
    /// The time of this cycle.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This station's id.
    pub fn station_id(&self) -> u32 {
        self.station_id
    }

    /// The port of the handler being run.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues `message` for the commit phase. Returns false (and counts a drop) when this
    /// cycle's emit budget is spent: a handler cannot flood the bus.
    pub fn send(&mut self, mut message: Outgoing) -> bool {
        if self.outgoing.len() >= self.emitted_max {
            *self.dropped += 1;
            return false;
        }
        if message.from_port == CLIENT_PORT {
            message.from_port = self.port;
        }
        self.outgoing.push(message);
        true
    }

    /// Answers `request` with `payload`: same conversation, to the requester's port.
    pub fn reply(&mut self, request: &Message<'_>, payload: impl Into<Vec<u8>>) -> bool {
        let mut out = Outgoing::to_station(request.sender(), request.sender_port(), payload)
            .from_port(request.port())
            .route(request.route_id());
        out.reply = true;
        out.trace = request.header.flags.contains(Flags::TRACE_REQUESTED);
        self.send(out)
    }
}

/// A handler serving a port. Runs in the deliver phase; must not block.
pub trait Service: Send {
    /// Handles one message.
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &Message<'_>);

    /// Handles one stream frame (stream ports only). Default: ignore.
    fn on_stream(&mut self, ctx: &mut Context<'_>, frame: &Message<'_>) {
        let _ = (ctx, frame);
    }

    /// Handles a completed, durable inbound bulk object. Default: ignore.
    fn on_bulk(&mut self, ctx: &mut Context<'_>, object: &BulkReceived) {
        let _ = (ctx, object);
    }
}

impl<F> Service for F
where
    F: FnMut(&mut Context<'_>, &Message<'_>) + Send,
{
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &Message<'_>) {
        self(ctx, message)
    }

    fn on_stream(&mut self, ctx: &mut Context<'_>, frame: &Message<'_>) {
        self(ctx, frame)
    }
}

/// Middleware that observes every message delivered on this station before its handler
/// (Logger, Reporter, and middleware on ports 11–100).
pub trait Tee: Send {
    /// Observes one message.
    fn observe(&mut self, message: &Message<'_>);
}
