//! The simulated application: self-checking payloads, the services every station runs, and a
//! tee that records every delivery for the invariant checker.
//!
//! Handlers run inside the bus's deliver phase and cannot reach the simulator, so they write
//! what they see into a per-station [`StationLog`] that the simulator drains after each cycle.

use std::sync::{Arc, Mutex, MutexGuard};

use tamtam_engine::core::rng::Rng;
use tamtam_engine::core::wire::frame::Header;
use tamtam_engine::core::{BulkReceived, Context, Message, Service, Tee};

/// What an application payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A one-way message.
    Plain = 1,
    /// A request: the server answers with a [`Kind::Reply`].
    Request = 2,
    /// A reply; its tag is the request's.
    Reply = 3,
    /// A stream frame.
    Stream = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Plain,
            2 => Kind::Request,
            3 => Kind::Reply,
            4 => Kind::Stream,
            _ => return None,
        })
    }
}

/// A decoded application payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// What it is.
    pub kind: Kind,
    /// The operation tag (unique per application operation in a run).
    pub tag: u64,
    /// Replies: `server station << 16 | server port`; streams: the stream sequence.
    pub aux: u64,
}

const PAYLOAD_HEAD: usize = 1 + 8 + 8;

/// Encodes a payload: `kind u8 | tag u64 | aux u64 | body | crc32c u32`, where the body is
/// `body_len` bytes drawn from the tag, and the CRC covers everything before it. Any change to
/// the bytes (or a payload swapped with another message's) fails [`decode`].
pub fn encode(kind: Kind, tag: u64, aux: u64, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD_HEAD + body_len + 4);
    out.push(kind as u8);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&aux.to_le_bytes());
    let mut rng = Rng::new(tag ^ aux.rotate_left(17));
    out.extend((0..body_len).map(|_| rng.next_u64() as u8));
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and verifies a payload made by [`encode`]; `None` if it is not intact.
pub fn decode(bytes: &[u8]) -> Option<Payload> {
    if bytes.len() < PAYLOAD_HEAD + 4 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let kind = Kind::from_u8(body[0])?;
    let tag = u64::from_le_bytes(body[1..9].try_into().ok()?);
    let aux = u64::from_le_bytes(body[9..17].try_into().ok()?);
    let mut rng = Rng::new(tag ^ aux.rotate_left(17));
    if !body[PAYLOAD_HEAD..]
        .iter()
        .all(|&b| b == rng.next_u64() as u8)
    {
        return None;
    }
    Some(Payload { kind, tag, aux })
}

/// One delivery a tee observed (it runs right before the handler, for every delivered
/// message, stream frame, reply and dead letter).
#[derive(Debug, Clone)]
pub struct Seen {
    /// The header as delivered (stream frames: `lifetime` is what remains at delivery).
    pub header: Header,
    /// The payload, if it is one of ours and intact.
    pub payload: Option<Payload>,
    /// The raw payload when it is not ours (Reporter answers, audit records).
    pub raw: Option<Vec<u8>>,
}

/// What one station's handlers and tee saw since the simulator last drained it.
#[derive(Debug, Default)]
pub struct StationLog {
    /// Deliveries, in order.
    pub seen: Vec<Seen>,
    /// Completed inbound bulk objects.
    pub bulk: Vec<BulkReceived>,
    /// Replies a handler could not emit (the cycle's emit budget was spent).
    pub replies_refused: u64,
}

/// A station's log, shared between its handlers and the simulator.
pub type SharedLog = Arc<Mutex<StationLog>>;

/// Locks a log; a poisoned lock means a handler panicked, which the test reports anyway.
pub fn lock(log: &SharedLog) -> MutexGuard<'_, StationLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tee recording every delivery of its station.
pub struct Recorder {
    /// Where it writes.
    pub log: SharedLog,
}

impl Tee for Recorder {
    fn observe(&mut self, message: &Message<'_>) {
        let payload = decode(message.payload);
        let raw = payload.is_none().then(|| message.payload.to_vec());
        lock(&self.log).seen.push(Seen {
            header: *message.header,
            payload,
            raw,
        });
    }
}

/// The handler of every application port: answers requests, keeps bulk completions.
pub struct AppService {
    /// Where bulk completions go.
    pub log: SharedLog,
}

impl Service for AppService {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &Message<'_>) {
        let Some(payload) = decode(message.payload) else {
            return;
        };
        if payload.kind == Kind::Request && !message.is_reply() {
            let aux = u64::from(ctx.station_id()) << 16 | u64::from(ctx.port());
            let answer = encode(Kind::Reply, payload.tag, aux, 8);
            if !ctx.reply(message, answer) {
                lock(&self.log).replies_refused += 1;
            }
        }
    }

    fn on_stream(&mut self, _ctx: &mut Context<'_>, _frame: &Message<'_>) {}

    fn on_bulk(&mut self, _ctx: &mut Context<'_>, object: &BulkReceived) {
        lock(&self.log).bulk.push(object.clone());
    }
}

/// The DEAD_LETTER handler: the tee already records what arrives.
pub struct DeadLetterSink;

impl Service for DeadLetterSink {
    fn on_message(&mut self, _ctx: &mut Context<'_>, _message: &Message<'_>) {}
}
