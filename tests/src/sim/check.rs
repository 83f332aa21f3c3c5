//! The invariant checker. The simulator feeds it everything it observes (operations the
//! application issued, deliveries the tees recorded, events, every frame a station put on the
//! wire, queue gauges) and it records every broken invariant as a violation.
//!
//! The invariants, numbered as in the simulator's brief:
//!
//! 1. No ACKed message lost: every `Event::Delivered` matches a handler delivery at that
//!    destination (in some incarnation of it) that happened earlier.
//! 2. No duplicate handler delivery within one receiver incarnation, key
//!    `(receiver, incarnation, sender, request_id)`; and every delivery is intact, of a message
//!    that was sent, at a station and port that may receive it.
//! 3. Streams: each copy is transmitted once by its origin; a forwarder never transmits more
//!    copies than it received; no frame is transmitted or delivered claiming more lifetime than
//!    it has left (its age counted in cycles of the stations that held it), or with lifetime 0;
//!    no frame is delivered twice to one receiver incarnation.
//! 4. Bulk: every segment a receiver acknowledges is in its spool, every write carries the
//!    source's bytes, and a `BulkSent` (or a handler's `on_bulk`) means the spool holds the
//!    object, finished, byte-identical.
//! 5. Fairness: in one cycle's transmit batch, no run of more than
//!    `consecutive_per_recipient_max` originated fast-lane DATA frames to one recipient while a
//!    frame to another recipient follows.
//! 6. Every bounded queue within its bound (the bus's [`Gauges`]).
//! 7. Liveness (checked at the end by the simulator with [`Checker::check_end`]).
//! 8. Replies match requests: same route id as the request, from a station that got it.
//! 9. Traces: see [`Checker::check_trace`].
//!
//! Corrupted frames must be rejected: every corrupted frame handed to a station produces
//! exactly one `Event::Malformed`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use tamtam_engine::core::bus::EVENTS_MAX;
use tamtam_engine::core::control::{AuditRecord, SegmentMap, TraceEvent};
use tamtam_engine::core::registry;
use tamtam_engine::core::trace::{TraceCollector, TraceKey};
use tamtam_engine::core::wire::frame::{Flags, Header, Lane, PacketType};
use tamtam_engine::core::{BulkReceived, BusConfig, Event, Gauges};

use super::app::{Kind, Seen};
use super::disk::Disk;
use super::params::{
    MS, PORT_AI, PORT_APP, PORT_BULK, PORT_CLIENT, PORT_GROUP, PORT_LANGUAGE, PORT_SERVICE,
    PORT_STREAM, Params, distances,
};

/// How a fast-lane operation was addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// To one station and port.
    Station {
        /// Destination station id.
        dest: u32,
        /// Port.
        port: u16,
    },
    /// To any server of a port (language ports may fall back to the AI port).
    Service {
        /// Port.
        port: u16,
    },
    /// To every member of the group.
    Group,
    /// To every server of a port.
    Broadcast {
        /// Port.
        port: u16,
    },
    /// To a port nobody serves: must never be delivered.
    Nobody {
        /// Destination station id.
        dest: u32,
    },
    /// A statistics request to a station's Reporter (port 2).
    Reporter {
        /// Destination station id.
        dest: u32,
    },
}

/// A fast-lane operation the application issued.
#[derive(Debug, Clone)]
pub struct Op {
    /// Payload tag.
    pub tag: u64,
    /// Sending station id.
    pub sender: u32,
    /// Its incarnation.
    pub incarnation: u32,
    /// The request id `send` returned.
    pub request_id: u64,
    /// Addressing.
    pub kind: OpKind,
    /// ACK required.
    pub ack: bool,
    /// Trace requested.
    pub traced: bool,
    /// Route id chosen by the application, if any.
    pub route_id: Option<u32>,
    /// Send time.
    pub sent_at: u64,
    /// A request: servers answer.
    pub expects_reply: bool,
    /// The sending port (where replies go).
    pub from_port: u16,
    /// Outcome events seen (Delivered or DeadLettered), over all destinations.
    pub outcomes: u32,
    /// Destinations that reported Delivered.
    pub acked_by: Vec<u32>,
    /// Stations whose handler got the request, with the route id they saw.
    pub served_by: Vec<(u32, u32)>,
}

/// A bulk transfer the application started.
#[derive(Debug, Clone)]
pub struct BulkOp {
    /// Sending station id.
    pub sender: u32,
    /// Its incarnation.
    pub incarnation: u32,
    /// Transfer id.
    pub transfer: u64,
    /// Destination station id.
    pub dest: u32,
    /// Spool key at the receiver.
    pub key: String,
    /// Object name.
    pub name: String,
    /// The bytes.
    pub object: Arc<Vec<u8>>,
    /// `Some(true)` once BulkSent, `Some(false)` once BulkFailed.
    pub finished: Option<bool>,
    /// Start time.
    pub started_at: u64,
}

/// A stream copy's identity: `(sender, request_id, seq, destination)`.
pub type StreamKey = (u32, u64, u32, u32);

/// Counters for the run summary.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Application operations issued.
    pub ops: u64,
    /// Handler deliveries of fast-lane messages.
    pub delivered: u64,
    /// Delivered events.
    pub acked: u64,
    /// DeadLettered events.
    pub dead_lettered: u64,
    /// Replies delivered.
    pub replies: u64,
    /// Stream frames delivered.
    pub stream_delivered: u64,
    /// Bulk transfers sent / failed.
    pub bulk_sent: u64,
    /// Bulk transfers failed.
    pub bulk_failed: u64,
    /// Corrupted frames handed to stations.
    pub corrupted: u64,
    /// Frames transmitted.
    pub frames: u64,
    /// Traced packets checked hop by hop.
    pub traces_checked: u64,
    /// Largest control queue seen (no bound of its own).
    pub control_max: usize,
    /// Largest fire-and-forget queue seen (no bound of its own).
    pub unreliable_max: usize,
    /// Largest timer heap seen.
    pub timers_max: usize,
}

/// The checker.
pub struct Checker {
    /// Broken invariants, in the order found.
    pub violations: Vec<String>,
    /// Counters.
    pub counts: Counts,
    configs: Vec<BusConfig>,
    serves: Vec<HashSet<u16>>,
    /// Every fast-lane operation by tag.
    pub ops: BTreeMap<u64, Op>,
    by_request: HashMap<(u32, u64), u64>,
    by_route: HashMap<u32, u64>,
    delivered_ever: HashMap<(u32, u32, u64), u64>,
    delivered_inc: HashSet<(u32, u32, u32, u64)>,
    outcomes: HashMap<(u32, u64, u32), bool>,
    dead_letters: HashMap<(u32, u64), u32>,
    /// Stream frames sent: the cycle of `stream_send` and the lifetime the source's
    /// Orchestrator planned for the stream (its Terminator's distance may raise it).
    stream_sent: HashMap<(u32, u64, u32), (u64, u8)>,
    stream_origin_tx: HashSet<StreamKey>,
    stream_rx: HashMap<(usize, StreamKey), Vec<(u64, u64)>>,
    stream_delivered: HashSet<(u32, u32, StreamKey)>,
    /// Every bulk transfer.
    pub bulk_ops: Vec<BulkOp>,
    bulk_by_transfer: HashMap<(u32, u64), usize>,
    objects: HashMap<String, Arc<Vec<u8>>>,
    corrupted: Vec<u64>,
    malformed: Vec<u64>,
    edges: Vec<(usize, usize)>,
}

impl Checker {
    /// A checker for the run `params` describes.
    pub fn new(params: &Params) -> Checker {
        let n = params.stations.len();
        let roles = &params.roles;
        let serves = (0..n)
            .map(|i| {
                let mut ports: HashSet<u16> = [PORT_APP, PORT_BULK, PORT_CLIENT].into();
                if roles.service.contains(&i) {
                    ports.insert(PORT_SERVICE);
                }
                if roles.language == Some(i) {
                    ports.insert(PORT_LANGUAGE);
                }
                if roles.ai.contains(&i) {
                    ports.insert(PORT_AI);
                }
                if roles.group.contains(&i) {
                    ports.insert(PORT_GROUP);
                }
                if roles.subscribers.contains(&i) {
                    ports.insert(PORT_STREAM);
                }
                ports
            })
            .collect();
        Checker {
            violations: Vec::new(),
            counts: Counts::default(),
            configs: params.stations.iter().map(|s| s.config.clone()).collect(),
            serves,
            ops: BTreeMap::new(),
            by_request: HashMap::new(),
            by_route: HashMap::new(),
            delivered_ever: HashMap::new(),
            delivered_inc: HashSet::new(),
            outcomes: HashMap::new(),
            dead_letters: HashMap::new(),
            stream_sent: HashMap::new(),
            stream_origin_tx: HashSet::new(),
            stream_rx: HashMap::new(),
            stream_delivered: HashSet::new(),
            bulk_ops: Vec::new(),
            bulk_by_transfer: HashMap::new(),
            objects: HashMap::new(),
            corrupted: vec![0; n],
            malformed: vec![0; n],
            edges: params.edges.clone(),
        }
    }

    fn fail(&mut self, now: u64, what: String) {
        if self.violations.len() < 50 {
            self.violations
                .push(format!("t={:.3}ms: {what}", now as f64 / MS as f64));
        }
    }

    /// Whether station index `station` serves `port` in this run.
    pub fn serves(&self, station: usize, port: u16) -> bool {
        port == registry::REPORTER || self.serves[station].contains(&port)
    }

    // ------------------------------------------------------------------------------------
    // Inputs from the application
    // ------------------------------------------------------------------------------------

    /// The application issued a fast-lane operation.
    pub fn on_op(&mut self, op: Op) {
        self.counts.ops += 1;
        if let Some(previous) = self.by_request.insert((op.sender, op.request_id), op.tag) {
            self.fail(
                op.sent_at,
                format!(
                    "station {} reused request id {:#x} (ops {previous} and {})",
                    op.sender, op.request_id, op.tag
                ),
            );
        }
        if let OpKind::Reporter { .. } = op.kind {
            if let Some(route) = op.route_id {
                self.by_route.insert(route, op.tag);
            }
        }
        self.ops.insert(op.tag, op);
    }

    /// The application sent stream frame `seq` of stream `request_id` at the station's cycle
    /// count `cycle` (between cycles), with the planned `lifetime`.
    pub fn on_stream_send(
        &mut self,
        sender: u32,
        request_id: u64,
        seq: u32,
        cycle: u64,
        lifetime: u8,
    ) {
        self.stream_sent
            .insert((sender, request_id, seq), (cycle, lifetime));
    }

    /// The lifetime planned for a sent stream frame (the sender's configured one if unknown).
    fn stream_life(&self, sender: u32, request_id: u64, seq: u32) -> u64 {
        self.stream_sent
            .get(&(sender, request_id, seq))
            .map(|&(_, life)| u64::from(life))
            .unwrap_or_else(|| u64::from(self.configs[sender as usize - 1].stream_lifetime))
    }

    /// The application started a bulk transfer.
    pub fn on_bulk_op(&mut self, op: BulkOp) {
        self.objects.insert(op.name.clone(), op.object.clone());
        self.bulk_by_transfer
            .insert((op.sender, op.transfer), self.bulk_ops.len());
        self.bulk_ops.push(op);
    }

    /// The object named `name`, if the application sent one.
    pub fn object(&self, name: &str) -> Option<&Arc<Vec<u8>>> {
        self.objects.get(name)
    }

    // ------------------------------------------------------------------------------------
    // Deliveries (tee records)
    // ------------------------------------------------------------------------------------

    /// Station index `station` (incarnation `inc`) delivered `seen` during its cycle `cycle`.
    pub fn on_delivery(&mut self, station: usize, inc: u32, now: u64, cycle: u64, seen: &Seen) {
        let me = station as u32 + 1;
        let h = &seen.header;
        if h.lane == Lane::Stream {
            self.on_stream_delivery(station, inc, now, cycle, seen);
            return;
        }
        if h.recipient_port == registry::DEAD_LETTER {
            self.on_dead_letter_delivery(me, now, seen);
            return;
        }
        if h.lane != Lane::Fast || h.packet_type != PacketType::Data {
            self.fail(
                now,
                format!("station {me} delivered a non-data frame to a handler: {h:?}"),
            );
            return;
        }
        self.counts.delivered += 1;
        if !self
            .delivered_inc
            .insert((me, inc, h.sender_id, h.request_id))
        {
            self.fail(
                now,
                format!(
                    "duplicate delivery at station {me} incarnation {inc}: sender {} request {:#x} port {} flags {:?}",
                    h.sender_id, h.request_id, h.recipient_port, h.flags
                ),
            );
        }
        self.delivered_ever
            .entry((me, h.sender_id, h.request_id))
            .or_insert(now);

        if h.flags.contains(Flags::REPLY) {
            self.on_reply(me, now, seen);
            return;
        }
        let Some(payload) = seen.payload else {
            self.fail(
                now,
                format!("station {me} delivered a damaged payload: {h:?}"),
            );
            return;
        };
        let Some(&tag) = self.by_request.get(&(h.sender_id, h.request_id)) else {
            self.fail(
                now,
                format!(
                    "station {me} delivered a message nobody sent: sender {} request {:#x}",
                    h.sender_id, h.request_id
                ),
            );
            return;
        };
        if payload.tag != tag {
            self.fail(
                now,
                format!(
                    "station {me} delivered request {:#x} of {} with the payload of op {} (expected op {tag})",
                    h.request_id, h.sender_id, payload.tag
                ),
            );
            return;
        }
        let op = self.ops[&tag].clone();
        let port = h.recipient_port;
        let legit = match op.kind {
            OpKind::Station { dest, port: p } => dest == me && p == port,
            OpKind::Service { port: p } => {
                (port == p || (p == PORT_LANGUAGE && port == PORT_AI)) && self.serves(station, port)
            }
            OpKind::Group => port == PORT_GROUP && self.serves(station, port),
            OpKind::Broadcast { port: p } => port == p && self.serves(station, port),
            OpKind::Reporter { dest } => dest == me && port == registry::REPORTER,
            OpKind::Nobody { .. } => false,
        };
        if !legit {
            self.fail(
                now,
                format!(
                    "op {tag} ({:?}) from station {} delivered at station {me} port {port}",
                    op.kind, op.sender
                ),
            );
        }
        if h.route_id != op.route_id.unwrap_or(h.route_id) {
            self.fail(
                now,
                format!(
                    "op {tag} delivered with route id {} ≠ {:?}",
                    h.route_id, op.route_id
                ),
            );
        }
        if op.expects_reply {
            if let Some(op) = self.ops.get_mut(&tag) {
                op.served_by.push((me, h.route_id));
            }
        }
    }

    fn on_reply(&mut self, me: u32, now: u64, seen: &Seen) {
        self.counts.replies += 1;
        let h = &seen.header;
        let tag = match seen.payload {
            Some(p) if p.kind == Kind::Reply => p.tag,
            Some(p) => {
                self.fail(now, format!("station {me} got a reply carrying {p:?}"));
                return;
            }
            // A Reporter answer (statistics): matched by route id.
            None if h.sender_port == registry::REPORTER => match self.by_route.get(&h.route_id) {
                Some(&tag) => tag,
                None => {
                    self.fail(
                        now,
                        format!(
                            "station {me} got a Reporter answer for unknown route {}",
                            h.route_id
                        ),
                    );
                    return;
                }
            },
            None => {
                self.fail(now, format!("station {me} got a damaged reply: {h:?}"));
                return;
            }
        };
        let Some(op) = self.ops.get(&tag).cloned() else {
            self.fail(now, format!("station {me} got a reply to unknown op {tag}"));
            return;
        };
        if op.sender != me || h.recipient_port != op.from_port {
            self.fail(
                now,
                format!(
                    "reply to op {tag} (from station {} port {}) delivered at station {me} port {}",
                    op.sender, op.from_port, h.recipient_port
                ),
            );
        }
        let matched = match op.kind {
            OpKind::Reporter { dest } => h.sender_id == dest && Some(h.route_id) == op.route_id,
            _ => op
                .served_by
                .iter()
                .any(|&(server, route)| server == h.sender_id && route == h.route_id),
        };
        if !matched {
            self.fail(
                now,
                format!(
                    "reply to op {tag} from station {} route {} matches no delivery of the request (served by {:?})",
                    h.sender_id, h.route_id, op.served_by
                ),
            );
        }
    }

    fn on_dead_letter_delivery(&mut self, me: u32, now: u64, seen: &Seen) {
        let raw = seen.raw.as_deref().unwrap_or(&[]);
        match AuditRecord::decode_prefix(raw) {
            Ok((record, _)) => {
                let count = self
                    .dead_letters
                    .entry((me, record.request_id))
                    .or_default();
                if *count == 0 {
                    self.fail(
                        now,
                        format!(
                            "station {me} DEAD_LETTER got request {:#x} without a DeadLettered event",
                            record.request_id
                        ),
                    );
                } else {
                    *count -= 1;
                }
            }
            Err(e) => self.fail(
                now,
                format!("station {me} DEAD_LETTER got a bad audit record: {e}"),
            ),
        }
    }

    fn on_stream_delivery(&mut self, station: usize, inc: u32, now: u64, cycle: u64, seen: &Seen) {
        let me = station as u32 + 1;
        let h = &seen.header;
        self.counts.stream_delivered += 1;
        let key: StreamKey = (h.sender_id, h.request_id, h.sequence, me);
        if !self.stream_delivered.insert((me, inc, key)) {
            self.fail(
                now,
                format!("stream frame {key:?} delivered twice at station {me} incarnation {inc}"),
            );
        }
        match seen.payload {
            Some(p) if p.kind == Kind::Stream && p.aux == u64::from(h.sequence) => {}
            other => self.fail(
                now,
                format!("stream frame {key:?} delivered with payload {other:?}"),
            ),
        }
        if h.lifetime == 0 {
            self.fail(
                now,
                format!("stream frame {key:?} delivered with lifetime 0"),
            );
        }
        if h.recipient_port != PORT_STREAM || !self.serves(station, PORT_STREAM) {
            self.fail(
                now,
                format!(
                    "stream frame {key:?} delivered at station {me} port {}, not a subscriber",
                    h.recipient_port
                ),
            );
        }
        let life = self.stream_life(h.sender_id, h.request_id, h.sequence);
        // The frame's age in cycles: of the stations that held it, from `stream_send` on.
        let age = if h.sender_id == me {
            self.stream_sent
                .get(&(h.sender_id, h.request_id, h.sequence))
                .map(|&(sent, _)| cycle - sent)
        } else {
            self.stream_rx
                .get(&(station, key))
                .and_then(|rx| rx.iter().map(|&(at, age)| age + (cycle - at)).min())
        };
        match age {
            Some(age) if u64::from(h.lifetime) + age > life => self.fail(
                now,
                format!(
                    "stream frame {key:?} delivered at station {me} aged {age} cycles with lifetime {} left (lifetime {life})",
                    h.lifetime
                ),
            ),
            Some(_) => {}
            None => self.fail(
                now,
                format!("stream frame {key:?} delivered at station {me} but never sent to it"),
            ),
        }
    }

    // ------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------

    /// Station index `station` reported `event`.
    pub fn on_event(&mut self, station: usize, now: u64, event: &Event, disks: &[Disk]) {
        let me = station as u32 + 1;
        match event {
            Event::Delivered {
                request_id,
                destination,
                ..
            } => {
                self.counts.acked += 1;
                self.on_outcome(me, *request_id, *destination, true, now);
                if !self
                    .delivered_ever
                    .contains_key(&(*destination, me, *request_id))
                {
                    self.fail(
                        now,
                        format!(
                            "station {me} got Delivered for request {request_id:#x} to station {destination}, which never delivered it"
                        ),
                    );
                }
            }
            Event::DeadLettered { record, .. } => {
                self.counts.dead_lettered += 1;
                self.on_outcome(me, record.request_id, record.destination, false, now);
                *self
                    .dead_letters
                    .entry((me, record.request_id))
                    .or_default() += 1;
            }
            Event::Reply { payload, .. } => {
                // The tee recorded the delivery already; the event is the application's view.
                // (Reporter requests come from a handler port, so their answers never
                // become events.)
                if super::app::decode(payload).is_none_or(|p| p.kind != Kind::Reply) {
                    self.fail(now, format!("station {me} got a damaged Reply event"));
                }
            }
            Event::Malformed { .. } => self.malformed[station] += 1,
            Event::BulkSent { transfer } => {
                self.counts.bulk_sent += 1;
                self.on_bulk_end(me, *transfer, true, now, disks);
            }
            Event::BulkFailed { transfer, .. } => {
                self.counts.bulk_failed += 1;
                self.on_bulk_end(me, *transfer, false, now, disks);
            }
            Event::BulkProgress(p) => {
                if p.bytes_done > p.bytes_total {
                    self.fail(
                        now,
                        format!("station {me} bulk progress past the end: {p:?}"),
                    );
                }
            }
            // A moved service message ends as Delivered or DeadLettered at its new server.
            Event::Rerouted { .. } | Event::PeerUp { .. } | Event::PeerDown { .. } => {}
        }
    }

    fn on_outcome(
        &mut self,
        me: u32,
        request_id: u64,
        destination: u32,
        delivered: bool,
        now: u64,
    ) {
        if let Some(previous) = self
            .outcomes
            .insert((me, request_id, destination), delivered)
        {
            self.fail(
                now,
                format!(
                    "station {me} request {request_id:#x} to {destination}: second outcome (delivered={delivered}, before delivered={previous})"
                ),
            );
        }
        let Some(&tag) = self.by_request.get(&(me, request_id)) else {
            // A message a handler emitted (a reply): no operation of the application's.
            return;
        };
        let op = self.ops.get_mut(&tag).expect("indexed");
        op.outcomes += 1;
        if delivered {
            op.acked_by.push(destination);
        }
        let op = op.clone();
        if !op.ack {
            self.fail(
                now,
                format!("station {me} got an outcome for fire-and-forget op {tag}"),
            );
        }
        if delivered && matches!(op.kind, OpKind::Nobody { .. }) {
            self.fail(
                now,
                format!("op {tag} to a port nobody serves was reported Delivered"),
            );
        }
    }

    fn on_bulk_end(&mut self, me: u32, transfer: u64, sent: bool, now: u64, disks: &[Disk]) {
        let Some(&i) = self.bulk_by_transfer.get(&(me, transfer)) else {
            self.fail(
                now,
                format!("station {me} reported the end of unknown transfer {transfer:#x}"),
            );
            return;
        };
        if let Some(previous) = self.bulk_ops[i].finished {
            self.fail(
                now,
                format!(
                    "transfer {transfer:#x} of station {me} ended twice (sent={sent}, before sent={previous})"
                ),
            );
        }
        self.bulk_ops[i].finished = Some(sent);
        if sent {
            let op = self.bulk_ops[i].clone();
            let disk = &disks[op.dest as usize - 1];
            match disk.spool.get(&op.key) {
                Some(object) if object.finished => {
                    if object.bytes().as_deref() != Some(op.object.as_slice()) {
                        self.fail(
                            now,
                            format!(
                                "transfer {transfer:#x} ({}) reported sent but station {}'s spool holds different bytes",
                                op.name, op.dest
                            ),
                        );
                    }
                }
                _ => self.fail(
                    now,
                    format!(
                        "transfer {transfer:#x} ({}) reported sent but station {}'s spool has not finished it",
                        op.name, op.dest
                    ),
                ),
            }
        }
    }

    /// A handler at station id `me` got a completed bulk object.
    pub fn on_bulk_received(&mut self, me: u32, now: u64, object: &BulkReceived, disk: &Disk) {
        let Some(expected) = self.objects.get(&object.name).cloned() else {
            self.fail(
                now,
                format!("station {me} received unknown object {}", object.name),
            );
            return;
        };
        if !self
            .bulk_ops
            .iter()
            .any(|op| op.name == object.name && op.dest == me && op.sender == object.sender)
        {
            self.fail(
                now,
                format!(
                    "station {me} received object {} from station {}, which never sent it there",
                    object.name, object.sender
                ),
            );
        }
        let ok = disk
            .spool
            .get(&object.spool_key)
            .filter(|o| o.finished)
            .and_then(|o| o.bytes())
            .is_some_and(|bytes| bytes == *expected);
        if !ok || object.len != expected.len() as u64 {
            self.fail(
                now,
                format!(
                    "station {me} handler got object {} but the spool does not hold it intact",
                    object.name
                ),
            );
        }
    }

    // ------------------------------------------------------------------------------------
    // The wire
    // ------------------------------------------------------------------------------------

    /// Station index `station` transmitted a frame during cycle `cycle`. Returns the age in
    /// cycles a stream frame has when it leaves (carried to the next station), else `None`.
    pub fn on_transmit(
        &mut self,
        station: usize,
        now: u64,
        cycle: u64,
        header: &Header,
        payload: &[u8],
        disk: &Disk,
    ) -> Option<u64> {
        self.counts.frames += 1;
        let me = station as u32 + 1;
        match (header.lane, header.packet_type) {
            (Lane::Stream, PacketType::Stream) => {
                let key: StreamKey = (
                    header.sender_id,
                    header.request_id,
                    header.sequence,
                    header.recipient_id,
                );
                let life = self.stream_life(header.sender_id, header.request_id, header.sequence);
                let age = if header.sender_id == me && !header.flags.contains(Flags::FORWARDED) {
                    if !self.stream_origin_tx.insert(key) {
                        self.fail(
                            now,
                            format!("stream frame {key:?} transmitted twice by its origin"),
                        );
                    }
                    match self.stream_sent.get(&(
                        header.sender_id,
                        header.request_id,
                        header.sequence,
                    )) {
                        Some(&(sent, _)) => cycle - sent,
                        None => {
                            self.fail(now, format!("stream frame {key:?} sent by nobody"));
                            return None;
                        }
                    }
                } else {
                    // Which received copy is this? Take the oldest copy it is honest about (a
                    // later transmission can only be honest about a younger one), else the
                    // youngest: the check never blames a forwarder for a pairing it chose.
                    let rx = self.stream_rx.entry((station, key)).or_default();
                    let claimed = u64::from(header.lifetime);
                    let aged = |&(at, age): &(u64, u64)| age + (cycle - at);
                    let best = rx
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| claimed + aged(r) <= life)
                        .max_by_key(|(_, r)| aged(r))
                        .or_else(|| rx.iter().enumerate().min_by_key(|(_, r)| aged(r)))
                        .map(|(i, _)| i);
                    match best {
                        Some(i) => {
                            let (at, age) = rx.swap_remove(i);
                            age + (cycle - at)
                        }
                        None => {
                            self.fail(
                                now,
                                format!(
                                    "station {me} forwarded stream frame {key:?} more often than it received it"
                                ),
                            );
                            return None;
                        }
                    }
                };
                if header.lifetime == 0 || u64::from(header.lifetime) + age > life {
                    self.fail(
                        now,
                        format!(
                            "station {me} transmitted stream frame {key:?} aged {age} cycles claiming lifetime {} (lifetime {life})",
                            header.lifetime
                        ),
                    );
                }
                Some(age)
            }
            (Lane::Bulk, PacketType::Ack) if header.sender_id == me => {
                self.check_bulk_map(me, now, header, payload, disk);
                None
            }
            _ => None,
        }
    }

    fn check_bulk_map(&mut self, me: u32, now: u64, header: &Header, payload: &[u8], disk: &Disk) {
        let Some(&i) = self
            .bulk_by_transfer
            .get(&(header.recipient_id, header.request_id))
        else {
            return;
        };
        let key = self.bulk_ops[i].key.clone();
        let map = match SegmentMap::decode(payload) {
            Ok(map) => map,
            Err(e) => {
                self.fail(now, format!("station {me} sent a bad segment map: {e}"));
                return;
            }
        };
        let Some(object) = disk.spool.get(&key) else {
            self.fail(
                now,
                format!("station {me} acknowledged segments of {key} without a spool"),
            );
            return;
        };
        if map.complete && !object.finished {
            self.fail(
                now,
                format!("station {me} reported {key} complete before it was durable"),
            );
        }
        let claimed = (0..map.base).chain(
            map.ranges
                .iter()
                .flat_map(|&(first, count)| first..first + count),
        );
        for segment in claimed {
            if !object.segments.contains_key(&segment) {
                self.fail(
                    now,
                    format!(
                        "station {me} acknowledged segment {segment} of {key}, which its spool does not hold"
                    ),
                );
                return;
            }
        }
    }

    /// A stream frame reached station index `station` (not corrupted) when its cycle count was
    /// `cycle`, aged `age` cycles.
    pub fn on_stream_receive(&mut self, station: usize, key: StreamKey, cycle: u64, age: u64) {
        self.stream_rx
            .entry((station, key))
            .or_default()
            .push((cycle, age));
    }

    /// Station index `station` crashed: its volatile receive records are gone.
    pub fn on_crash(&mut self, station: usize) {
        self.stream_rx.retain(|(s, _), _| *s != station);
    }

    /// A corrupted frame was handed to station index `station`.
    pub fn on_corrupted(&mut self, station: usize) {
        self.counts.corrupted += 1;
        self.corrupted[station] += 1;
    }

    /// Checks the fairness bound on one cycle's batch: the recipients of the fast-lane DATA
    /// frames station index `station` originated, in transmit order.
    pub fn check_batch(&mut self, station: usize, now: u64, recipients: &[u32]) {
        let quantum = self.configs[station].consecutive_per_recipient_max as usize;
        let mut i = 0;
        while i < recipients.len() {
            let mut j = i;
            while j < recipients.len() && recipients[j] == recipients[i] {
                j += 1;
            }
            if j - i > quantum && j < recipients.len() {
                self.fail(
                    now,
                    format!(
                        "station {} sent {} consecutive fast frames to station {} (quantum {quantum}) while station {} waited: batch {recipients:?}",
                        station + 1,
                        j - i,
                        recipients[i],
                        recipients[j]
                    ),
                );
                return;
            }
            i = j;
        }
    }

    /// Checks station index `station`'s queues against their bounds.
    pub fn check_gauges(&mut self, station: usize, now: u64, g: &Gauges) {
        let c = &self.configs[station];
        let bounds: [(&str, usize, usize); 15] = [
            ("outbox", g.outbox, c.outbox_capacity),
            (
                "channel pending",
                g.channel_pending_max,
                c.channel_window as usize,
            ),
            ("port queue", g.port_queue_max, c.port_queue_capacity),
            ("stream queue", g.stream_queue_max, c.stream_queue_capacity),
            ("stream out", g.stream_out, 64 * c.stream_queue_capacity),
            ("link queue", g.link_queue_max, c.link_queue_capacity),
            ("forward queue", g.forward, c.link_queue_capacity),
            ("events", g.events, EVENTS_MAX),
            ("trace queue", g.trace, c.trace_queue_capacity),
            ("receive windows", g.receive_windows, c.stations_max),
            ("token caches", g.token_caches, 16 * c.stream_cache_tokens),
            ("transfers out", g.transfers_out, c.transfers_max),
            ("transfers in", g.transfers_in, c.transfers_max),
            (
                "bulk in flight",
                g.bulk_in_flight_max,
                c.bulk_window as usize,
            ),
            (
                "bulk writes",
                g.bulk_writing_max,
                2 * c.bulk_window as usize,
            ),
        ];
        for (name, value, bound) in bounds {
            if value > bound {
                self.fail(
                    now,
                    format!(
                        "station {} {name} holds {value}, bound {bound}",
                        station + 1
                    ),
                );
            }
        }
        self.counts.control_max = self.counts.control_max.max(g.control);
        self.counts.unreliable_max = self.counts.unreliable_max.max(g.unreliable);
        self.counts.timers_max = self.counts.timers_max.max(g.timers);
    }

    // ------------------------------------------------------------------------------------
    // End of run
    // ------------------------------------------------------------------------------------

    /// Every corrupted frame a station got must have been rejected (one Malformed each).
    pub fn check_malformed(&mut self, now: u64) {
        for station in 0..self.corrupted.len() {
            if self.corrupted[station] != self.malformed[station] {
                let (c, m) = (self.corrupted[station], self.malformed[station]);
                self.fail(
                    now,
                    format!(
                        "station {} got {c} corrupted frames but reported {m} malformed",
                        station + 1
                    ),
                );
            }
        }
    }

    /// Liveness at the end of the run: every ACK-required operation of a surviving incarnation
    /// (`alive[station] = incarnation`) has exactly one outcome per destination, and every bulk
    /// transfer of a surviving incarnation ended.
    pub fn check_end(&mut self, now: u64, alive: &[u32]) {
        let mut missing = Vec::new();
        for op in self.ops.values() {
            if !op.ack || alive[op.sender as usize - 1] != op.incarnation {
                continue;
            }
            let single = matches!(
                op.kind,
                OpKind::Station { .. }
                    | OpKind::Service { .. }
                    | OpKind::Nobody { .. }
                    | OpKind::Reporter { .. }
            );
            if single && op.outcomes != 1 {
                missing.push(format!(
                    "op {} ({:?} from station {} sent at {:.1} ms, request {:#x}) has {} outcomes",
                    op.tag,
                    op.kind,
                    op.sender,
                    op.sent_at as f64 / MS as f64,
                    op.request_id,
                    op.outcomes
                ));
            }
        }
        for op in &self.bulk_ops {
            if alive[op.sender as usize - 1] == op.incarnation && op.finished.is_none() {
                missing.push(format!(
                    "transfer {:#x} ({} B, station {} → {}) started at {:.1} ms never ended",
                    op.transfer,
                    op.object.len(),
                    op.sender,
                    op.dest,
                    op.started_at as f64 / MS as f64
                ));
            }
        }
        for m in missing.into_iter().take(10) {
            self.fail(now, format!("liveness: {m}"));
        }
    }

    /// Checks the trace of a traced op delivered to `dest`: when `strict` (the packet lived in
    /// the fault-free phase and no frame was dropped) the collector's route leads from the
    /// sender over links of the graph to the destination, and when also `stable` (no
    /// neighbour was declared dead meanwhile) it visits nothing else, in as many hops as the
    /// shortest path; otherwise only that every hop it names is a link of the graph.
    pub fn check_trace(
        &mut self,
        now: u64,
        collector: &TraceCollector,
        op: &Op,
        dest: u32,
        strict: bool,
        stable: bool,
    ) {
        let edges = std::mem::take(&mut self.edges);
        self.check_trace_on(now, collector, op, (dest, strict, stable), &edges);
        self.edges = edges;
    }

    fn check_trace_on(
        &mut self,
        now: u64,
        collector: &TraceCollector,
        op: &Op,
        (dest, strict, stable): (u32, bool, bool),
        edges: &[(usize, usize)],
    ) {
        let distance =
            distances(self.configs.len(), edges, op.sender as usize - 1)[dest as usize - 1];
        let Some(route_id) = op.route_id else {
            return;
        };
        let key = TraceKey {
            route_id,
            sender_id: op.sender,
            request_id: op.request_id,
            packet_type: PacketType::Data,
        };
        let adjacent = |a: u32, b: u32| {
            let (a, b) = (a as usize - 1, b as usize - 1);
            edges.contains(&(a.min(b), a.max(b)))
        };
        let route = collector.route(&key);
        let mut text = String::new();
        for hop in &route {
            let _ = write!(text, "{}{:?}→{:?} ", hop.node, hop.events, hop.next_hop);
        }
        for hop in &route {
            if let Some(next) = hop.next_hop {
                if next != hop.node && !adjacent(hop.node, next) {
                    self.fail(
                        now,
                        format!(
                            "trace of op {} names a hop {}→{next} that is no link: {text}",
                            op.tag, hop.node
                        ),
                    );
                    return;
                }
            }
        }
        if !strict {
            return;
        }
        self.counts.traces_checked += 1;
        // The chain: from the sender, follow each hop's (last) next hop. Off the chain, a
        // station may have carried an earlier copy along another route; only a stable
        // topology rules that out.
        let mut chain = vec![op.sender];
        let mut at = op.sender;
        while let Some(next) = route
            .iter()
            .find(|h| h.node == at)
            .and_then(|h| h.next_hop)
            .filter(|&n| n != at && !chain.contains(&n))
        {
            chain.push(next);
            at = next;
        }
        let chain_ok = chain.last() == Some(&dest)
            && route.iter().any(|h| h.node == dest)
            && (!stable || (route.len() == chain.len() && chain.len() as u32 == distance + 1));
        // The destination reported the packet's arrival (its later reports may be cut off by
        // the collector's per-flow bound when many retries were reported before).
        let events_ok = route.last().is_some_and(|h| {
            h.events.contains(&TraceEvent::Received) || h.events.contains(&TraceEvent::Claimed)
        });
        if !chain_ok || !events_ok {
            self.fail(
                now,
                format!(
                    "trace of op {} ({} → {dest}, {distance} hops) does not rebuild the route: {text}",
                    op.tag, op.sender
                ),
            );
        }
    }

    /// Outcome destinations of an op (for the trace check).
    pub fn op_by_tag(&self, tag: u64) -> Option<&Op> {
        self.ops.get(&tag)
    }
}
