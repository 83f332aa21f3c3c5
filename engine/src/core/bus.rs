//! The Safari Bus of one station: a deterministic, sans-IO state machine.
//!
//! # Call order (one cycle, the "tram stop")
//!
//! 1. Feed everything that arrived: [`Bus::handle_frame`] for each received frame,
//!    [`Bus::handle_io`] for each completed I/O request.
//! 2. Run [`Bus::cycle`] with the time read once at the top of the cycle. It runs the
//!    **deliver phase** (tees observe, then handlers consume, in role order) and then the
//!    **commit phase** (what handlers produced, ACKs, resends, bulk segments and stream frames
//!    enter the bus and are encoded for the links).
//! 3. Drain outputs: [`Bus::poll_transmit`] (frames for links), [`Bus::poll_io`] (spool and
//!    source I/O), [`Bus::poll_event`] (application events).
//! 4. Sleep until [`Bus::poll_timeout`] or the next input, then repeat.
//!
//! Nothing here reads a clock, draws OS randomness, spawns a thread or makes a syscall, so the
//! runtime, the poll driver and the simulator all run this same code. The normative behaviour
//! is `spec/model/SafariBus-v1.md` and the specs next to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::bulk::{
    InFlight, InState, InTransfer, IoFailure, IoId, IoOutcome, IoRequest, OutState, OutTransfer,
    SegmentSet, spool_key,
};
use super::config::BusConfig;
use super::control::{
    ACK_SEQS_MAX, AckList, Advert, AuditRecord, BulkOffer, Busy, ControlError, Nack, Reason,
    SegmentMap, TraceEvent, TraceReport,
};
use super::dedup::{ReceiveWindow, Verdict};
use super::hash::{FastMap, FastSet, FastState};
use super::orchestrator::{Pace, Pacer, StreamPlan};
use super::port_table::{PortSet, PortTable};
use super::registry::{self, PortClass};
use super::rng::Rng;
use super::routing::{AdvertOutcome, Topology};
use super::seqmap::{SeqIndex, Slab};
use super::service::{BulkReceived, Context, Message, Outgoing, Recipient, Service, Tee};
use super::stats::Stats;
use super::streams::{BufferPool, StreamQueue, TokenCache, frame_charge};
use super::time::{Duration, Instant};
use super::timers::{Timer, TimerWheel};
use super::trace::TraceCollector;
use super::wire::frame::{
    self, DecodeOptions, Flags, FrameError, FrameView, Header, Lane, PacketType, RecipientKind,
    Segment,
};

/// Identifies a link (a connection to a neighbour) of this bus.
pub type LinkId = u32;

/// The pseudo-link frames to this station itself travel on.
pub const LOOPBACK: LinkId = u32::MAX;

/// Payload buffers kept for reuse (received fast-lane payloads, ACK payloads, acknowledged
/// messages' payloads), and the largest capacity kept: at most 1024 × 4 KiB = 4 MiB.
const PAYLOAD_POOL_MAX: usize = 1024;
const PAYLOAD_POOLED_CAPACITY_MAX: usize = 4096;

/// Working buffers of the cycle, kept across cycles so that a steady state allocates nothing
/// (they are cleared, never shrunk; each is bounded by the ports, channels or links it lists).
#[derive(Default)]
struct Scratch {
    destinations: Vec<u32>,
    recipients: Vec<u32>,
    services_waiting: FastMap<u16, usize>,
    per_service: FastMap<u16, usize>,
    stopped: FastSet<u16>,
    order: Vec<u16>,
    /// Deliveries per port of `order`, by position.
    per_port: Vec<usize>,
    links: Vec<LinkId>,
    emitted: Vec<Outgoing>,
    acks: Vec<((u32, u32, u32), Vec<u32>)>,
    ack_lists: Vec<Vec<u32>>,
    /// A frame encoded once for several links (`Bus::emit_to_links`).
    encoded: Vec<u8>,
}

/// The smallest frame size a link may declare (see [`Bus::set_link_frame_len_max`]): IPv4's
/// 576-byte minimum datagram less its IP and UDP headers.
pub const LINK_FRAME_LEN_MIN: usize = 548;

/// Epochs (incarnations) of one sender whose receive windows are kept.
const EPOCHS_KEPT: usize = 8;
/// Events queued at most; more are dropped and counted.
pub const EVENTS_MAX: usize = 65_536;
/// Deliveries kept in the built-in delivery log (port 1's ring).
const TRACE_FLOWS_MAX: usize = 1024;

/// A frame to hand to a link.
#[derive(Debug)]
pub struct Transmit {
    /// The link.
    pub link: LinkId,
    /// The encoded frame (give it back with [`Bus::recycle`] when sent).
    pub frame: Vec<u8>,
}

/// An ACK-required message to journal before it is sent (durable outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The message's request id.
    pub request_id: u64,
    /// The destination station.
    pub destination: u32,
    /// Its channel sequence.
    pub seq: u32,
    /// The encoded frame (attempt 0).
    pub frame: Vec<u8>,
}

/// Read-only depths of the bus's queues, for telemetry and for the simulator's bound checks.
///
/// Every field is a count at the moment [`Bus::gauges`] was called. The comment on each field
/// names the bound the bus promises (from [`BusConfig`]) or says that the queue has none of its
/// own. Computing the gauges walks the ports, channels and transfers: cheap, but not for the
/// hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// ACK-required messages accepted and not yet resolved, over all destinations (sequenced
    /// plus backlog). At most `outbox_capacity`.
    pub outbox: usize,
    /// Of those, messages still waiting for a sequence because their channel window is full.
    pub outbox_backlog: usize,
    /// Largest number of sequenced, unresolved messages on one channel. At most
    /// `channel_window`.
    pub channel_pending_max: usize,
    /// Fire-and-forget frames waiting for transmission, over all destinations. No bound of its
    /// own: the application's send rate bounds it.
    pub unreliable: usize,
    /// Deepest inbound message queue of a port. At most `port_queue_capacity`.
    pub port_queue_max: usize,
    /// Deepest inbound stream queue of a port. At most `stream_queue_capacity`.
    pub stream_queue_max: usize,
    /// Outbound stream copies waiting for transmission. At most `64 × stream_queue_capacity`.
    pub stream_out: usize,
    /// Most frames queued for one link and not yet polled. At most `link_queue_capacity`.
    pub link_queue_max: usize,
    /// Frames queued for links (all links) and not yet polled.
    pub transmit: usize,
    /// Frames this station forwards for others, waiting for the commit phase. At most
    /// `link_queue_capacity`.
    pub forward: usize,
    /// Control frames (ACK, NACK, BUSY, heartbeats, adverts, bulk maps) waiting for the commit
    /// phase. No bound of its own: what arrives in one cycle bounds it.
    pub control: usize,
    /// Frames this station sent to itself, handled at the start of the next cycle.
    pub loopback: usize,
    /// Application events not yet polled. At most [`EVENTS_MAX`].
    pub events: usize,
    /// Trace reports waiting to be sent. At most `trace_queue_capacity`.
    pub trace: usize,
    /// Retransmission timers, stale ones included.
    pub timers: usize,
    /// Senders with receive windows. At most `stations_max`.
    pub receive_windows: usize,
    /// Streams with a token cache. At most `16 × stream_cache_tokens`.
    pub token_caches: usize,
    /// Outbound bulk transfers not yet done or failed. At most `transfers_max`.
    pub transfers_out: usize,
    /// Inbound bulk transfers not yet complete or failed. At most `transfers_max`.
    pub transfers_in: usize,
    /// Most segments one outbound transfer holds in flight. At most `bulk_window`.
    pub bulk_in_flight_max: usize,
    /// Most segment writes one inbound transfer has pending. At most `2 × bulk_window`.
    pub bulk_writing_max: usize,
    /// I/O requests issued (polled or not) and not yet completed.
    pub io_pending: usize,
}

/// What the bus tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An ACK-required message was acknowledged by its recipient (its handler ran).
    Delivered {
        /// The message's request id.
        request_id: u64,
        /// The station that acknowledged.
        destination: u32,
        /// The sending port.
        from_port: u16,
    },
    /// A message was given up and sent to DEAD_LETTER.
    DeadLettered {
        /// The audit record.
        record: AuditRecord,
        /// The sending port.
        from_port: u16,
    },
    /// A reply arrived for a port with no handler (for example the client port).
    Reply {
        /// The replying station.
        from: u32,
        /// The port the reply was sent to.
        port: u16,
        /// The conversation id of the request.
        route_id: u32,
        /// The payload.
        payload: Vec<u8>,
    },
    /// A service message moved to another server because its server became unreachable
    /// (a durable outbox settles the entry journaled for the old server).
    Rerouted {
        /// The message's request id.
        request_id: u64,
        /// The server it was sent to.
        from: u32,
        /// The server it goes to now.
        to: u32,
    },
    /// A neighbour link came alive.
    PeerUp {
        /// The neighbour.
        station: u32,
    },
    /// A neighbour went silent past the dead-man window.
    PeerDown {
        /// The neighbour.
        station: u32,
    },
    /// A frame from a link was rejected.
    Malformed {
        /// The link it came from.
        link: LinkId,
        /// The neighbour on that link, if known.
        peer: Option<u32>,
        /// What was wrong.
        error: FrameError,
    },
    /// Progress of an outbound bulk transfer.
    BulkProgress(Progress),
    /// An outbound bulk transfer is durable at its receiver.
    BulkSent {
        /// The transfer.
        transfer: u64,
    },
    /// An outbound bulk transfer failed.
    BulkFailed {
        /// The transfer.
        transfer: u64,
        /// Why.
        reason: Reason,
    },
}

/// Progress of a bulk transfer (percent, rate, ETA), as the Reporter publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The transfer.
    pub transfer: u64,
    /// Bytes stored durably at the receiver so far.
    pub bytes_done: u64,
    /// Object size.
    pub bytes_total: u64,
    /// Average rate of the bytes this transfer moved since the receiver first answered its
    /// offer, bytes per second (what the receiver already held, from an interrupted earlier
    /// transfer of the object, is not counted).
    pub rate_bytes_per_sec: u64,
    /// Estimated time to completion at that rate, milliseconds (`u64::MAX` unknown).
    pub eta_ms: u64,
}

impl Progress {
    /// Percent done, 0–100.
    pub fn percent(&self) -> f64 {
        if self.bytes_total == 0 {
            100.0
        } else {
            self.bytes_done as f64 * 100.0 / self.bytes_total as f64
        }
    }
}

/// Why a send was refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No reachable station serves the port (and no fallback applies).
    #[error("no reachable station serves port {port}")]
    NoServer {
        /// The port.
        port: u16,
    },
    /// The payload exceeds the limit.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The outbox is full: back off and retry.
    #[error("outbox full ({capacity} messages awaiting acknowledgement)")]
    OutboxFull {
        /// The outbox capacity.
        capacity: usize,
    },
    /// Too many concurrent bulk transfers.
    #[error("too many concurrent transfers ({max})")]
    TooManyTransfers {
        /// The limit.
        max: usize,
    },
    /// The object name is too long.
    #[error("object name longer than 255 bytes")]
    NameTooLong,
    /// More destinations than `stations_max` have channels (channels are never forgotten
    /// within an incarnation: their sequences must not restart).
    #[error("too many destinations ({max})")]
    TooManyDestinations {
        /// The limit.
        max: usize,
    },
    /// The object is too large for 32-bit segment indexes at this segment size.
    #[error("object too large for the segment size")]
    ObjectTooLarge,
}

/// Why a port cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// A handler already serves the port.
    #[error("port {0} is already served")]
    AlreadyServed(u16),
    /// The port is reserved for the engine (0–10) or the client port.
    #[error("port {0} is reserved for the engine")]
    Reserved(u16),
}

/// What one cycle did; the Orchestrator's pacing hint for the idle strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CycleReport {
    /// Messages delivered to handlers.
    pub delivered: usize,
    /// Frames queued for links.
    pub transmitted: usize,
    /// Work items done in total (0 means idle).
    pub work: usize,
    /// Whether work was left for the next cycle because a budget ran out.
    pub backlog: bool,
    /// The Orchestrator's pacing hint for the idle strategy.
    pub pace: Pace,
}

#[derive(Debug)]
struct Inbound {
    header: Header,
    payload: Vec<u8>,
    received_at: Instant,
    /// For ACK-required messages: (sender, epoch, seq, answering identity) to acknowledge
    /// after delivery.
    ack: Option<(u32, u32, u32, u32)>,
    /// Stream frames: the cycle after which the frame is expired.
    expires_cycle: u64,
}

#[derive(Default)]
struct PortState {
    service: Option<Box<dyn Service>>,
    queue: VecDeque<Inbound>,
    /// Stream frames, bounded by `stream_queue_capacity` frames and `stream_queue_bytes`.
    streams: StreamQueue<Inbound>,
    bulk_done: VecDeque<BulkReceived>,
    subscribed: bool,
    grouped: bool,
    /// Listed in `Bus::ready_ports`.
    listed: bool,
}

impl PortState {
    /// Whether something waits for delivery: a completed bulk object, a stream frame or a
    /// message.
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.streams.is_empty() || !self.bulk_done.is_empty()
    }
}

/// Lists `port` in `ready` (the ports with something to deliver, `Bus::ready_ports`) unless
/// it is listed already. Called wherever something is queued for a port.
fn list_ready(ready: &mut PortSet, port: u16, state: &mut PortState) {
    if !state.listed {
        state.listed = true;
        ready.insert(port);
    }
}

#[derive(Debug)]
struct Pending {
    header: Header,
    payload: Vec<u8>,
    destination: u32,
    attempts: u8,
    busy: u8,
    /// Bumped whenever the message's retransmission timer is rearmed; a timer whose
    /// generation differs is stale.
    timer_gen: u32,
    first_sent: Option<Instant>,
    last_sent: Option<Instant>,
    queued_at: Instant,
    in_ready: bool,
    /// Transmitted, then moved to another server once (see `reroute_services`).
    failed_over: bool,
}

/// A message in a channel's ready queue, with what the scheduler ranks it by (copied from its
/// `Pending` so that ranking the first 32 reads one contiguous queue, not 32 map lookups).
#[derive(Debug, Clone, Copy)]
struct ReadyEntry {
    seq: u32,
    queued_at: Instant,
    priority: u8,
    sender_port: u16,
}

/// A channel's ready queue, counting what lets the scheduler skip its ranking scan: entries
/// with a non-zero priority, and adjacent pairs whose `queued_at` goes down. When both counts
/// are zero the front is an oldest message among equals, so the ranking (highest priority plus
/// aging, ties to the oldest) picks it: ranking the first 32 entries per transmitted message
/// was about a tenth of the fast lane's instructions.
#[derive(Debug, Default)]
struct ReadyQueue {
    entries: VecDeque<ReadyEntry>,
    prioritized: usize,
    descents: usize,
}

/// Whether `b`, queued right after `a`, waited for less time than `a` (a descent).
fn descent(a: &ReadyEntry, b: &ReadyEntry) -> bool {
    b.queued_at < a.queued_at
}

impl ReadyQueue {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn front(&self) -> Option<&ReadyEntry> {
        self.entries.front()
    }

    fn iter(&self) -> impl Iterator<Item = &ReadyEntry> {
        self.entries.iter()
    }

    /// Priority 0 everywhere and `queued_at` never decreasing: the front ranks first.
    fn front_ranks_first(&self) -> bool {
        self.prioritized == 0 && self.descents == 0
    }

    fn push_back(&mut self, entry: ReadyEntry) {
        self.prioritized += usize::from(entry.priority != 0);
        if let Some(back) = self.entries.back() {
            self.descents += usize::from(descent(back, &entry));
        }
        self.entries.push_back(entry);
    }

    fn pop_front(&mut self) -> Option<ReadyEntry> {
        let entry = self.entries.pop_front()?;
        self.prioritized -= usize::from(entry.priority != 0);
        if let Some(next) = self.entries.front() {
            self.descents -= usize::from(descent(&entry, next));
        }
        Some(entry)
    }

    /// Moves entry `i` to the front.
    fn move_to_front(&mut self, i: usize) {
        if i == 0 || i >= self.entries.len() {
            return;
        }
        let before = self.entries[i - 1];
        let entry = self.entries[i];
        let after = self.entries.get(i + 1).copied();
        self.descents -= usize::from(descent(&before, &entry));
        if let Some(after) = after {
            self.descents -= usize::from(descent(&entry, &after));
            self.descents += usize::from(descent(&before, &after));
        }
        self.entries.remove(i);
        if let Some(front) = self.entries.front() {
            self.descents += usize::from(descent(&entry, front));
        }
        self.entries.push_front(entry);
    }

    fn retain(&mut self, keep: impl FnMut(&ReadyEntry) -> bool) {
        self.entries.retain(keep);
        self.prioritized = self.entries.iter().filter(|r| r.priority != 0).count();
        self.descents = self
            .entries
            .iter()
            .zip(self.entries.iter().skip(1))
            .filter(|(a, b)| descent(a, b))
            .count();
    }
}

impl Pending {
    fn ready_entry(&self, seq: u32) -> ReadyEntry {
        ReadyEntry {
            seq,
            queued_at: self.queued_at,
            priority: self.header.priority,
            sender_port: self.header.sender_port,
        }
    }
}

#[derive(Debug)]
struct SendChannel {
    next_seq: u32,
    /// Unresolved messages by sequence: their slots in `Bus::pendings`.
    pending: SeqIndex,
    /// Accepted but not yet given a sequence (the channel window is full).
    backlog: VecDeque<Pending>,
    /// Sequences ready to (re)transmit, in order.
    ready: ReadyQueue,
    /// Fire-and-forget frames ready to transmit.
    unreliable: VecDeque<(Header, Vec<u8>)>,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

#[derive(Debug)]
struct SenderWindows {
    epochs: Vec<(u32, ReceiveWindow)>,
    used_at: Instant,
    /// Fire-and-forget data: the newest request ids seen per epoch (see `admit_unreliable`).
    unreliable: Vec<(u32, TokenCache)>,
}

#[derive(Debug)]
struct Link {
    peer: Option<u32>,
    last_heard: Instant,
    last_sent: Instant,
    queued: usize,
    alive: bool,
    /// Largest frame the link carries in one piece (a UDP link: the path MTU's datagram).
    frame_len_max: usize,
    /// The key this link is filed under in `Bus::link_deadlines`.
    filed_at: Instant,
}

#[derive(Debug)]
struct StreamCopy {
    link: LinkId,
    header: Header,
    payload: Vec<u8>,
    expires_cycle: u64,
    forwarded: bool,
}

#[derive(Debug)]
struct StreamSource {
    next_seq: u32,
    /// The copies each frame makes: (listener, link), from the plan, and what they were
    /// computed from: (cycle, topology version, this station listening). Discovery runs again
    /// when any of those moved on, so at most once per cycle while nothing changes.
    targets: Vec<(u32, LinkId)>,
    targets_key: Option<(u64, u64, bool)>,
    lifetime: u8,
}

/// A queued control frame: destination station (routed) or a specific link.
#[derive(Debug)]
enum ControlTarget {
    Station(u32),
    Link(LinkId),
    /// The same frame on each of these links, in order (an advert to every live link):
    /// encoded and checksummed once, then copied per link (see `emit_to_links`).
    Links(Vec<LinkId>),
}

/// The Safari Bus of one station.
pub struct Bus {
    config: BusConfig,
    rng: Rng,
    now: Instant,
    cycle: u64,
    decode: DecodeOptions,

    links: BTreeMap<LinkId, Link>,
    /// Every link, filed under a time no later than its next heartbeat or dead-man deadline
    /// (`link_due_at`). Sending or hearing only moves a link's deadlines later, so an entry
    /// may be early, never late: `run_timers` looks at the links whose entry is due, and
    /// files them again under their real deadline. An idle cycle looks at no link.
    link_deadlines: BTreeSet<(Instant, LinkId)>,
    next_link: LinkId,
    neighbour_links: BTreeMap<u32, LinkId>,
    topology: Topology,
    advert_seq: u32,
    advert_due: bool,
    next_advert_at: Instant,

    ports: PortTable<PortState>,
    /// The ports that have something to deliver (`PortState::has_work`). Ports join when
    /// something is queued for them and leave in the deliver phase once empty, so between
    /// cycles the set is exact. The deliver phase, the backlog check and `has_work` walk this
    /// set, never every port (`spec/model/Cycle-v1.md` §5, C1).
    ready_ports: PortSet,
    /// Port and link entries looked at by the per-cycle scans (see [`Bus::scan_visits`]).
    scan_visits: u64,
    tees: Vec<(u16, Box<dyn Tee>)>,
    deliver_cursor: u16,

    request_counter: u32,
    route_counter: u32,
    channels: BTreeMap<u32, SendChannel>,
    outbox_len: usize,
    /// The unresolved (sequenced) messages of every channel; channels index them by sequence.
    pendings: Slab<Pending>,
    timers: TimerWheel,
    /// The timers due in this cycle (kept across cycles, cleared).
    timers_due: Vec<Timer>,
    channel_cursor: u32,

    windows: FastMap<(u32, u32), SenderWindows>,
    /// Sequences to acknowledge, per (sender, epoch, answering identity), in the order the
    /// keys first came due this cycle; `acks_index` finds a key's entry.
    acks_due: Vec<((u32, u32, u32), Vec<u32>)>,
    acks_index: FastMap<(u32, u32, u32), usize>,
    /// Per remote station, the link its latest frame arrived on: the way back to a station
    /// whose adverts have not reached this bus yet (see `next_hop_link`). At most
    /// `4 × stations_max` entries.
    return_links: FastMap<u32, LinkId>,
    scratch: Scratch,
    payload_pool: Vec<Vec<u8>>,
    /// Payload buffers of stream frames (queued copies, received frames), at most
    /// `stream_queue_bytes` of capacity.
    stream_pool: BufferPool,
    control_out: VecDeque<(ControlTarget, Header, Vec<u8>)>,
    forward_out: VecDeque<(LinkId, Vec<u8>)>,
    loopback: VecDeque<Vec<u8>>,
    tx: VecDeque<Transmit>,
    pool: Vec<Vec<u8>>,

    stream_sources: BTreeMap<(u16, u32), StreamSource>,
    /// Outbound stream copies, bounded by `64 × stream_queue_capacity` copies and
    /// `stream_out_bytes`.
    stream_out: StreamQueue<StreamCopy>,
    /// Per stream `(sender, request_id, port)`: its token cache and when it was last heard
    /// (`token_stamp`), to forget the stream heard from longest ago when full.
    token_caches: FastMap<(u32, u64, u16), (TokenCache, u64)>,
    token_stamp: u64,

    out_transfers: BTreeMap<u64, OutTransfer>,
    in_transfers: BTreeMap<String, InTransfer>,
    in_transfer_ids: HashMap<(u32, u64), String>,
    transfer_cursor: u64,
    io_next: IoId,
    io_out: VecDeque<IoRequest>,
    io_pending: HashMap<IoId, IoWait>,

    trace_out: VecDeque<(u32, u64, TraceReport)>,
    collector: Option<TraceCollector>,

    events: VecDeque<Event>,
    stats: Stats,
    emitted: Vec<Outgoing>,
    pacer: Pacer,
    stream_plans: BTreeMap<(u16, u32), StreamPlan>,
    journal_out: Vec<JournalEntry>,
    /// Epochs whose channel sequences this station may still have pending: its own
    /// incarnation, plus those of messages restored from a durable outbox.
    known_epochs: BTreeSet<u32>,
}

#[derive(Debug)]
enum IoWait {
    Open(String),
    Write(String, u32),
    Finish(String),
    Read(u64, u32),
}

impl Bus {
    /// A bus with `config`. Fails with the broken rule if the configuration is inconsistent.
    pub fn new(config: BusConfig) -> Result<Bus, &'static str> {
        config.validate()?;
        let mut rng = Rng::new(config.seed ^ (u64::from(config.station_id) << 32));
        let route_counter = rng.next_u64() as u32;
        // The maps' hash seed, drawn from the configuration without advancing `rng` (so jitter
        // and load spreading stay what they were for a given seed). See `hash.rs`.
        let hash = FastState::from_seed(
            config.seed
                ^ u64::from(config.station_id).rotate_left(17)
                ^ u64::from(config.incarnation).rotate_left(41)
                ^ 0x7461_6d74_616d_6861,
        );
        Ok(Bus {
            decode: DecodeOptions {
                payload_len_max: config.payload_len_max,
                verify_checksum: true,
            },
            topology: Topology::new(config.station_id, config.stations_max),
            rng,
            now: Instant::ZERO,
            cycle: 0,
            links: BTreeMap::new(),
            link_deadlines: BTreeSet::new(),
            next_link: 0,
            neighbour_links: BTreeMap::new(),
            advert_seq: 0,
            advert_due: true,
            next_advert_at: Instant::ZERO,
            ports: PortTable::new(),
            ready_ports: PortSet::new(),
            scan_visits: 0,
            tees: Vec::new(),
            deliver_cursor: 0,
            request_counter: 0,
            route_counter,
            channels: BTreeMap::new(),
            outbox_len: 0,
            pendings: Slab::default(),
            timers: TimerWheel::default(),
            timers_due: Vec::new(),
            channel_cursor: 0,
            windows: FastMap::with_hasher(hash),
            acks_due: Vec::new(),
            acks_index: FastMap::with_hasher(hash),
            return_links: FastMap::with_hasher(hash),
            scratch: Scratch::default(),
            payload_pool: Vec::new(),
            stream_pool: BufferPool::default(),
            control_out: VecDeque::new(),
            forward_out: VecDeque::new(),
            loopback: VecDeque::new(),
            tx: VecDeque::new(),
            pool: Vec::new(),
            stream_sources: BTreeMap::new(),
            stream_out: StreamQueue::default(),
            token_caches: FastMap::with_hasher(hash),
            token_stamp: 0,
            out_transfers: BTreeMap::new(),
            in_transfers: BTreeMap::new(),
            in_transfer_ids: HashMap::new(),
            transfer_cursor: 0,
            io_next: 1,
            io_out: VecDeque::new(),
            io_pending: HashMap::new(),
            trace_out: VecDeque::new(),
            collector: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            emitted: Vec::new(),
            pacer: Pacer::default(),
            stream_plans: BTreeMap::new(),
            journal_out: Vec::new(),
            known_epochs: BTreeSet::from([config.incarnation]),
            config,
        })
    }

    // ----------------------------------------------------------------------------------------
    // Configuration and registration
    // ----------------------------------------------------------------------------------------

    /// This station's id.
    pub fn station_id(&self) -> u32 {
        self.config.station_id
    }

    /// The configuration.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counts `frames` that a link's transport dropped as malformed or oversized before they
    /// reached the bus (the driver reads them from its links).
    pub fn handle_link_drops(&mut self, frames: u64) {
        self.stats.link_frames_dropped += frames;
    }

    /// Counts a spool write the driver made, direct (`O_DIRECT`) or through the page cache.
    pub fn count_spool_write(&mut self, direct: bool) {
        if direct {
            self.stats.spool_writes_direct += 1;
        } else {
            self.stats.spool_writes_buffered += 1;
        }
    }

    /// Counts a link the driver closed because its byte stream could not be framed.
    pub fn handle_link_framing_error(&mut self) {
        self.stats.link_framing_closes += 1;
    }

    /// The topology (known stations and routes).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The cycle count.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// How many port and link entries the per-cycle scans have looked at since the bus
    /// started: ports with something to deliver (the delivery order, stream expiry, the
    /// rounds' waiting count, the backlog check) and links whose heartbeat or dead-man
    /// deadline had come. A cost indicator for tests and benchmarks: a cycle with nothing
    /// waiting and no deadline due adds nothing, however many ports and links the bus has.
    pub fn scan_visits(&self) -> u64 {
        self.scan_visits
    }

    /// Serves `port` with `service`. Ports 0–10 and the client port are reserved.
    pub fn serve(&mut self, port: u16, service: Box<dyn Service>) -> Result<(), ServeError> {
        if PortClass::of(port).is_reserved() && port != registry::TRACE_REPORT
            || port == super::service::CLIENT_PORT
        {
            return Err(ServeError::Reserved(port));
        }
        self.serve_unchecked(port, service)
    }

    /// Serves a system port (0–10) with a replacement service: for engine components only.
    pub fn serve_system(&mut self, port: u16, service: Box<dyn Service>) -> Result<(), ServeError> {
        self.serve_unchecked(port, service)
    }

    fn serve_unchecked(&mut self, port: u16, service: Box<dyn Service>) -> Result<(), ServeError> {
        let state = self.ports.entry(port).or_default();
        if state.service.is_some() {
            return Err(ServeError::AlreadyServed(port));
        }
        state.service = Some(service);
        self.advert_due = true;
        Ok(())
    }

    /// Stops serving `port`; returns the service.
    pub fn unserve(&mut self, port: u16) -> Option<Box<dyn Service>> {
        let service = self.ports.get_mut(&port)?.service.take();
        self.advert_due = true;
        service
    }

    /// Subscribes this station to stream port `port` (frames go to the port's service).
    pub fn subscribe(&mut self, port: u16) {
        self.ports.entry(port).or_default().subscribed = true;
        self.advert_due = true;
    }

    /// Unsubscribes from stream port `port`.
    pub fn unsubscribe(&mut self, port: u16) {
        if let Some(state) = self.ports.get_mut(&port) {
            state.subscribed = false;
            self.advert_due = true;
        }
    }

    /// Joins group `port` (group messages go to the port's service).
    pub fn join_group(&mut self, port: u16) {
        self.ports.entry(port).or_default().grouped = true;
        self.advert_due = true;
    }

    /// Leaves group `port`.
    pub fn leave_group(&mut self, port: u16) {
        if let Some(state) = self.ports.get_mut(&port) {
            state.grouped = false;
            self.advert_due = true;
        }
    }

    /// Adds middleware that observes every delivered message first (ports 1, 2, 11–100).
    pub fn add_tee(&mut self, port: u16, tee: Box<dyn Tee>) {
        self.tees.push((port, tee));
        self.tees.sort_by_key(|(p, _)| *p);
    }

    /// Makes this station collect trace reports (it serves TRACE_REPORT).
    pub fn collect_traces(&mut self) {
        if self.collector.is_none() {
            self.collector = Some(TraceCollector::new(TRACE_FLOWS_MAX, 64));
            self.advert_due = true;
        }
    }

    /// The trace collector, if this station collects traces.
    pub fn trace_collector(&self) -> Option<&TraceCollector> {
        self.collector.as_ref()
    }

    /// How many more ACK-required messages (per destination) the outbox takes now.
    pub fn outbox_room(&self) -> usize {
        self.config.outbox_capacity.saturating_sub(self.outbox_len)
    }

    /// Whether outbound stream copies already fill the next commit phase's data budget: a
    /// driver taking more frames from an application now would only see them wait (and
    /// expire, or drop the oldest). The driver stops taking stream frames until the next
    /// cycle, so that a publisher is paced by the transmit budget.
    pub fn stream_out_full(&self) -> bool {
        let data_budget = self.config.transmit_budget
            * (100 - self.config.control_reserve_percent as usize)
            / 100;
        self.stream_out.len() >= data_budget
    }

    /// Counts a frame the driver dropped because its link's transport queue was full (a
    /// slow reader), in `link_queue_drops`.
    pub fn count_link_queue_drop(&mut self) {
        self.stats.link_queue_drops += 1;
    }

    /// Counts a message from outside the bus (a posted one) that [`Bus::send`] refused, in
    /// `emit_drops`, as a handler's refused emit is counted.
    pub fn count_refused_emit(&mut self) {
        self.stats.emit_drops += 1;
    }

    /// The current queue depths (see [`Gauges`] for the bound of each).
    pub fn gauges(&self) -> Gauges {
        let mut g = Gauges {
            outbox: self.outbox_len,
            stream_out: self.stream_out.len(),
            transmit: self.tx.len(),
            forward: self.forward_out.len(),
            control: self.control_out.len(),
            loopback: self.loopback.len(),
            events: self.events.len(),
            trace: self.trace_out.len(),
            timers: self.timers.len(),
            receive_windows: self.windows.len(),
            token_caches: self.token_caches.len(),
            io_pending: self.io_pending.len(),
            ..Gauges::default()
        };
        for channel in self.channels.values() {
            g.outbox_backlog += channel.backlog.len();
            g.channel_pending_max = g.channel_pending_max.max(channel.pending.len());
            g.unreliable += channel.unreliable.len();
        }
        for port in self.ports.values() {
            g.port_queue_max = g.port_queue_max.max(port.queue.len());
            g.stream_queue_max = g.stream_queue_max.max(port.streams.len());
        }
        for link in self.links.values() {
            g.link_queue_max = g.link_queue_max.max(link.queued);
        }
        for t in self.out_transfers.values() {
            if !matches!(t.state, OutState::Done | OutState::Failed) {
                g.transfers_out += 1;
            }
            g.bulk_in_flight_max = g.bulk_in_flight_max.max(t.in_flight.len());
        }
        for t in self.in_transfers.values() {
            if !matches!(t.state, InState::Complete | InState::Failed) {
                g.transfers_in += 1;
            }
            g.bulk_writing_max = g.bulk_writing_max.max(t.writing.len());
        }
        g
    }

    fn serves(&self, port: u16) -> bool {
        if port == registry::TRACE_REPORT && self.collector.is_some() {
            return true;
        }
        if port == registry::REPORTER {
            return true;
        }
        self.ports.get(&port).is_some_and(|s| s.service.is_some())
    }

    // ----------------------------------------------------------------------------------------
    // Links
    // ----------------------------------------------------------------------------------------

    /// Registers a new link; the bus greets the neighbour with a heartbeat at once.
    pub fn add_link(&mut self, now: Instant) -> LinkId {
        self.now = self.now.max(now);
        let id = self.next_link;
        self.next_link = self.next_link.wrapping_add(1);
        if self.next_link == LOOPBACK {
            self.next_link = 0;
        }
        self.links.insert(
            id,
            Link {
                peer: None,
                last_heard: now,
                last_sent: now,
                queued: 0,
                alive: false,
                frame_len_max: usize::MAX,
                filed_at: Instant::NEVER,
            },
        );
        self.queue_heartbeat(id);
        self.file_link(id);
        id
    }

    /// When `link` next needs the timers' attention: its heartbeat is due, or (alive) it has
    /// been silent for longer than `dead_after` (the first instant `run_timers` declares it
    /// dead).
    fn link_due_at(&self, link: &Link) -> Instant {
        let mut at = link.last_sent + self.config.heartbeat_interval;
        if link.alive {
            at = at.min(link.last_heard + self.config.dead_after + Duration::from_nanos(1));
        }
        at
    }

    /// Files `link` in `link_deadlines` under its current deadline.
    fn file_link(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let at = self.link_due_at(link);
        let filed_at = std::mem::replace(&mut self.links.get_mut(&id).expect("got").filed_at, at);
        self.link_deadlines.remove(&(filed_at, id));
        self.link_deadlines.insert((at, id));
    }

    /// Sets the largest frame `link` carries in one piece (for a UDP link, the largest
    /// datagram the path takes without IP fragmentation). Frames longer than this are not
    /// handed to the link but counted in `frames_oversized`, and bulk transfers whose first
    /// hop is this link cut their segments to fit (see `spec/model/SafariBus-v1.md`, "Link
    /// frame size"). Values below [`LINK_FRAME_LEN_MIN`] are raised to it.
    pub fn set_link_frame_len_max(&mut self, link: LinkId, len: usize) {
        if let Some(state) = self.links.get_mut(&link) {
            state.frame_len_max = len.max(LINK_FRAME_LEN_MIN);
        }
    }

    /// Removes a link (closed or failed); its neighbour is down at once.
    pub fn remove_link(&mut self, link: LinkId) {
        if let Some(state) = self.links.remove(&link) {
            self.link_deadlines.remove(&(state.filed_at, link));
            if let Some(peer) = state.peer {
                self.peer_down(peer, link);
            }
        }
        self.tx.retain(|t| t.link != link);
        self.forward_out.retain(|(l, _)| *l != link);
        self.return_links.retain(|_, l| *l != link);
    }

    /// The neighbour on `link`, once it has introduced itself.
    pub fn link_peer(&self, link: LinkId) -> Option<u32> {
        self.links.get(&link).and_then(|l| l.peer)
    }

    fn peer_down(&mut self, peer: u32, link: LinkId) {
        if self.neighbour_links.get(&peer) == Some(&link) {
            self.neighbour_links.remove(&peer);
            if self.topology.neighbour_down(peer) {
                self.stats.peers_dead += 1;
                self.push_event(Event::PeerDown { station: peer });
                self.advert_due = true;
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Inputs
    // ----------------------------------------------------------------------------------------

    /// Handles one frame received on `link`. Malformed frames are counted, reported as
    /// [`Event::Malformed`] and dropped; nothing a peer sends can panic the bus.
    pub fn handle_frame(&mut self, now: Instant, link: LinkId, bytes: &[u8]) {
        self.now = self.now.max(now);
        let view = match FrameView::decode(bytes, self.decode) {
            Ok(view) => view,
            Err(error) => {
                self.stats.frames_malformed += 1;
                let peer = self.link_peer(link);
                self.push_event(Event::Malformed { link, peer, error });
                return;
            }
        };
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let header = view.header();
        if link != LOOPBACK {
            let Some(state) = self.links.get_mut(&link) else {
                return;
            };
            state.last_heard = self.now;
            // Any frame from the neighbour proves a link alive: one it originated (not
            // FORWARDED) names it, else the link's known peer. Waiting for a heartbeat is not
            // enough: the neighbour sends one only when the link is idle, and a neighbour that
            // never saw the link die (or never saw this station restart) keeps it busy with
            // adverts and data, so the link stayed dead on this side for good (simulator seeds
            // 1005 and 1084).
            if !state.alive && header.packet_type != PacketType::Heartbeat {
                let neighbour = if header.flags.contains(Flags::FORWARDED) {
                    state.peer
                } else {
                    Some(header.sender_id)
                };
                if let Some(peer) = neighbour {
                    self.link_alive(link, peer);
                }
            }
        }
        if header.packet_type == PacketType::Heartbeat {
            self.handle_heartbeat(link, &header);
            return;
        }
        if header.packet_type == PacketType::Control
            && header.recipient_port == registry::DISCOVERY
            && header.recipient_kind == RecipientKind::Broadcast
        {
            self.handle_advert(link, &header, view.payload(), bytes);
            return;
        }
        let me = self.config.station_id;
        let alias = self.config.alias;
        if link != LOOPBACK && header.sender_id != me {
            let room = self.return_links.len() < self.config.stations_max.saturating_mul(4);
            if room || self.return_links.contains_key(&header.sender_id) {
                self.return_links.insert(header.sender_id, link);
            }
        }
        let for_us = header.recipient_id == me
            || (alias != 0 && header.recipient_id == alias)
            || (header.recipient_id == 0
                && header.recipient_kind == RecipientKind::Service
                && self.serves(header.recipient_port));
        if !for_us {
            self.forward(link, &header, bytes, header.recipient_id);
            return;
        }
        // The identity this frame was addressed to, and the one answers come from.
        let as_id = if alias != 0 && header.recipient_id == alias {
            alias
        } else {
            me
        };
        if let Some(owner) = self.sibling_owner(&header) {
            // Shard 0 hands frames for ports another shard owns to that shard unchanged.
            self.forward(link, &header, bytes, owner);
            return;
        }
        let traced = header.flags.contains(Flags::TRACE_REQUESTED);
        if traced && header.packet_type != PacketType::Control {
            self.trace(&header, TraceEvent::Received, 0, 0, 0);
        }
        let payload = view.payload();
        match (header.lane, header.packet_type) {
            (Lane::Fast, PacketType::Ack) => self.handle_ack(&header, payload),
            (Lane::Fast, PacketType::Nack) => self.handle_nack(&header, payload),
            (Lane::Fast, PacketType::Busy) => self.handle_busy(&header, payload),
            (Lane::Fast, PacketType::Data | PacketType::Audit) => {
                self.handle_data(&header, payload, as_id)
            }
            (Lane::Fast, PacketType::Control) => self.handle_control(&header, payload, as_id),
            (Lane::Stream, PacketType::Stream) => self.handle_stream(&header, payload),
            (Lane::Bulk, PacketType::Control) => self.handle_bulk_offer(&header, payload, as_id),
            (Lane::Bulk, PacketType::Data) => self.handle_bulk_segment(&header, payload),
            (Lane::Bulk, PacketType::Ack) => self.handle_bulk_map(&header, payload),
            (Lane::Bulk, PacketType::Nack) => self.handle_bulk_nack(&header, payload),
            (Lane::Bulk, PacketType::Busy) => self.handle_bulk_busy(&header),
            _ => self.stats.control_malformed += 1,
        }
    }

    /// On shard 0 of a multi-shard station: the shard station that owns the port a frame
    /// addressed to the station is for (service traffic only; ACKs and control answers
    /// addressed to the station belong to shard 0's own channels).
    fn sibling_owner(&self, header: &Header) -> Option<u32> {
        let config = &self.config;
        if config.shards <= 1 || config.shard_index != 0 || header.recipient_id != config.station_id
        {
            return None;
        }
        let service_traffic = matches!(
            (header.lane, header.packet_type),
            (
                Lane::Fast,
                PacketType::Data | PacketType::Audit | PacketType::Control
            ) | (Lane::Stream, PacketType::Stream)
                | (Lane::Bulk, PacketType::Data | PacketType::Control)
        );
        let owner = super::config::shard_of(header.recipient_port, config.shards);
        (service_traffic && owner != 0)
            .then(|| super::config::shard_station(config.station_id, owner))
    }

    /// Handles the completion of I/O request `id`.
    pub fn handle_io(&mut self, now: Instant, id: IoId, outcome: IoOutcome) {
        self.now = self.now.max(now);
        let Some(wait) = self.io_pending.remove(&id) else {
            return;
        };
        match wait {
            IoWait::Open(key) => self.io_opened(&key, outcome),
            IoWait::Write(key, segment) => self.io_written(&key, segment, id, outcome),
            IoWait::Finish(key) => self.io_finished(&key, outcome),
            IoWait::Read(transfer, segment) => self.io_read(transfer, segment, outcome),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Outputs
    // ----------------------------------------------------------------------------------------

    /// The next frame to hand to a link, in scheduling order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.tx.pop_front()?;
        if let Some(link) = self.links.get_mut(&t.link) {
            link.queued = link.queued.saturating_sub(1);
        }
        Some(t)
    }

    /// Gives a transmitted frame's buffer back for reuse.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.pool.len() < 4096 {
            buffer.clear();
            self.pool.push(buffer);
        }
    }

    /// The next I/O request for the driver.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io_out.pop_front()
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the bus next needs a cycle even if nothing arrives: `Some(now)` when work is
    /// waiting, `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.has_work() {
            return Some(self.now);
        }
        let mut next = self.next_advert_at;
        // The earliest link entry may be early (see `link_deadlines`): waking early is safe.
        if let Some(&(at, _)) = self.link_deadlines.first() {
            next = next.min(at);
        }
        if let Some(at) = self.timers.next_deadline() {
            next = next.min(at);
        }
        for transfer in self.out_transfers.values() {
            if matches!(transfer.state, OutState::Done | OutState::Failed) {
                continue;
            }
            next = next.min(transfer.last_progress + self.bulk_rto());
        }
        Some(next)
    }

    fn has_work(&self) -> bool {
        !self.loopback.is_empty()
            || !self.control_out.is_empty()
            || !self.trace_out.is_empty()
            || !self.forward_out.is_empty()
            || !self.stream_out.is_empty()
            || !self.acks_due.is_empty()
            || !self.ready_ports.is_empty()
            || self
                .channels
                .values()
                .any(|c| !c.ready.is_empty() || !c.unreliable.is_empty())
            || self.in_transfers.values().any(|t| t.map_due)
            || self.out_transfers.values().any(|t| {
                t.state == OutState::Sending
                    && t.in_flight
                        .values()
                        .any(|f| f.data.is_some() && f.sent_at.is_none())
            })
    }

    /// Queues a control frame; past the bound (four link queues' worth) the frame is dropped
    /// and counted: control traffic is either idempotent (ACKs, maps, heartbeats, adverts) or
    /// re-triggered by the peer's resend, so a drop costs time, never correctness.
    fn push_control(&mut self, entry: (ControlTarget, Header, Vec<u8>)) {
        if self.control_out.len() >= self.config.link_queue_capacity * 4 {
            self.stats.link_queue_drops += 1;
            return;
        }
        self.control_out.push_back(entry);
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= EVENTS_MAX {
            self.stats.events_dropped += 1;
            return;
        }
        self.events.push_back(event);
    }

    // ----------------------------------------------------------------------------------------
    // Application commands
    // ----------------------------------------------------------------------------------------

    fn next_request_id(&mut self) -> u64 {
        self.request_counter = self.request_counter.wrapping_add(1);
        (u64::from(self.config.incarnation) << 32) | u64::from(self.request_counter)
    }

    fn next_route_id(&mut self) -> u32 {
        self.route_counter = self.route_counter.wrapping_add(1);
        if self.route_counter == 0 {
            self.route_counter = 1;
        }
        self.route_counter
    }

    /// Sends a fast-lane message. Returns the request id; completion arrives as
    /// [`Event::Delivered`] or [`Event::DeadLettered`] (ACK-required messages only).
    pub fn send(&mut self, now: Instant, message: Outgoing) -> Result<u64, SendError> {
        self.now = self.now.max(now);
        if message.payload.len() > self.config.payload_len_max as usize {
            return Err(SendError::TooLarge {
                len: message.payload.len(),
                max: self.config.payload_len_max,
            });
        }
        let mut destinations = std::mem::take(&mut self.scratch.recipients);
        destinations.clear();
        let result = self
            .resolve(&message, &mut destinations)
            .and_then(|port| self.send_to(message, port, &destinations));
        self.scratch.recipients = destinations;
        result
    }

    /// `send` once the message's port and stations are resolved.
    fn send_to(
        &mut self,
        message: Outgoing,
        port: u16,
        destinations: &[u32],
    ) -> Result<u64, SendError> {
        let new_channels = destinations
            .iter()
            .filter(|d| !self.channels.contains_key(d))
            .count();
        if self.channels.len() + new_channels > self.config.stations_max {
            return Err(SendError::TooManyDestinations {
                max: self.config.stations_max,
            });
        }
        if message.ack && self.outbox_len + destinations.len() > self.config.outbox_capacity {
            self.stats.outbox_full += 1;
            return Err(SendError::OutboxFull {
                capacity: self.config.outbox_capacity,
            });
        }
        let request_id = self.next_request_id();
        let route_id = match message.route_id {
            Some(route) => route,
            None => self.next_route_id(),
        };
        let flags = message.flags();
        let mut payload = Some(message.payload);
        for (i, &destination) in destinations.iter().enumerate() {
            // The last copy takes the caller's buffer; only group and broadcast sends copy.
            let payload = if i + 1 == destinations.len() {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            let header = Header {
                lane: Lane::Fast,
                packet_type: PacketType::Data,
                recipient_kind: message.to.kind(),
                flags,
                sender_id: self.config.station_id,
                recipient_id: destination,
                recipient_port: port,
                sender_port: message.from_port,
                route_id,
                request_id,
                sequence: 0,
                attempt: 0,
                hop_limit: self.config.hop_limit,
                lifetime: 0,
                priority: message.priority,
                segment: None,
            };
            let pending = Pending {
                header,
                payload,
                destination,
                attempts: 0,
                busy: 0,
                timer_gen: 0,
                first_sent: None,
                last_sent: None,
                queued_at: self.now,
                in_ready: false,
                failed_over: false,
            };
            if message.ack {
                self.outbox_len += 1;
                let channel = self.channel(destination);
                channel.backlog.push_back(pending);
                self.admit_backlog(destination);
            } else {
                self.channel(destination)
                    .unreliable
                    .push_back((header, pending.payload));
            }
        }
        Ok(request_id)
    }

    /// Which port and stations a message goes to.
    /// Which port a message goes to; its stations are pushed onto `out`.
    fn resolve(&mut self, message: &Outgoing, out: &mut Vec<u32>) -> Result<u16, SendError> {
        let port = message.port;
        let me = self.config.station_id;
        match message.to {
            Recipient::Station(station) => {
                out.push(station);
                Ok(port)
            }
            Recipient::Service => {
                if let Some(station) = self.pick_server(port) {
                    out.push(station);
                    return Ok(port);
                }
                if PortClass::of(port) == PortClass::Language {
                    if let Some(fallback) = self.config.language_fallback {
                        if let Some(station) = self.pick_server(fallback) {
                            out.push(station);
                            return Ok(fallback);
                        }
                    }
                }
                Err(SendError::NoServer { port })
            }
            Recipient::Group => {
                out.extend(self.topology.members_of(port).into_iter().map(|(id, _)| id));
                if self.ports.get(&port).is_some_and(|p| p.grouped) {
                    out.push(me);
                }
                Ok(port)
            }
            Recipient::Broadcast => {
                out.extend(self.topology.servers_of(port).into_iter().map(|(id, _)| id));
                if self.serves(port) {
                    out.push(me);
                }
                Ok(port)
            }
        }
    }

    /// A server of `port`: this station if it serves it, else the reachable server with the
    /// fewest unresolved messages from us (ties broken at random).
    fn pick_server(&mut self, port: u16) -> Option<u32> {
        if self.serves(port) {
            return Some(self.config.station_id);
        }
        let servers = self.topology.servers_of(port);
        let load = |bus: &Bus, id: u32| {
            bus.channels
                .get(&id)
                .map_or(0, |c| c.pending.len() + c.backlog.len())
        };
        let least = servers.iter().map(|&(id, _)| load(self, id)).min()?;
        let candidates: Vec<u32> = servers
            .iter()
            .filter(|&&(id, _)| load(self, id) == least)
            .map(|&(id, _)| id)
            .collect();
        let pick = self.rng.below(candidates.len() as u64) as usize;
        Some(candidates[pick])
    }

    fn channel(&mut self, destination: u32) -> &mut SendChannel {
        let rto = self.config.rto_initial;
        self.channels
            .entry(destination)
            .or_insert_with(|| SendChannel {
                next_seq: 0,
                pending: SeqIndex::default(),
                backlog: VecDeque::new(),
                ready: ReadyQueue::default(),
                unreliable: VecDeque::new(),
                srtt: None,
                rttvar: Duration::ZERO,
                rto,
            })
    }

    /// Gives backlog messages a sequence while the channel window allows.
    fn admit_backlog(&mut self, destination: u32) {
        let window = self.config.channel_window;
        let incarnation = self.config.incarnation;
        let durable = self.config.durable_outbox;
        let mut journal = Vec::new();
        let Some(channel) = self.channels.get_mut(&destination) else {
            return;
        };
        loop {
            if channel.backlog.is_empty() {
                break;
            }
            let lowest = channel.pending.lowest();
            if let Some(lowest) = lowest {
                if channel.next_seq.wrapping_sub(lowest) >= window {
                    break;
                }
            }
            let mut pending = channel.backlog.pop_front().expect("checked non-empty");
            let seq = channel.next_seq;
            channel.next_seq = channel.next_seq.wrapping_add(1);
            pending.header.sequence = seq;
            debug_assert_eq!((pending.header.request_id >> 32) as u32, incarnation);
            if durable {
                // Held until the driver has journaled it: nothing unjournaled is ever sent.
                let frame =
                    frame::encode_to_vec(&pending.header, &pending.payload).unwrap_or_default();
                journal.push(JournalEntry {
                    request_id: pending.header.request_id,
                    destination,
                    seq,
                    frame,
                });
                pending.in_ready = false;
                channel.pending.insert(seq, self.pendings.insert(pending));
            } else {
                pending.in_ready = true;
                channel.ready.push_back(pending.ready_entry(seq));
                channel.pending.insert(seq, self.pendings.insert(pending));
            }
        }
        self.journal_out.append(&mut journal);
    }

    /// Messages to journal before they may be sent (durable outbox only). For each, call
    /// [`Bus::journaled`] with whether the journal write succeeded.
    pub fn take_journal(&mut self) -> Vec<JournalEntry> {
        std::mem::take(&mut self.journal_out)
    }

    /// Reports whether the journal write of `(destination, seq)` succeeded. A failed write
    /// (full disk) dead-letters the message with [`Reason::StorageFailed`]; it is never sent.
    pub fn journaled(&mut self, destination: u32, seq: u32, ok: bool) {
        if !ok {
            self.dead_letter(destination, seq, Reason::StorageFailed);
            return;
        }
        if let Some(channel) = self.channels.get_mut(&destination) {
            if let Some(pending) = channel
                .pending
                .get(seq)
                .and_then(|slot| self.pendings.get_mut(slot))
            {
                if !pending.in_ready && pending.attempts == 0 {
                    pending.in_ready = true;
                    channel.ready.push_back(pending.ready_entry(seq));
                }
            }
        }
    }

    /// Restores a durable outbox after a restart: the request counter, each channel's next
    /// sequence, and the unresolved messages, which are resent with their original ids and
    /// sequences (receivers suppress duplicates). Call before the first cycle.
    pub fn restore_outbox(
        &mut self,
        now: Instant,
        next_request: u32,
        next_seqs: &BTreeMap<u32, u32>,
        entries: Vec<JournalEntry>,
    ) {
        self.now = self.now.max(now);
        self.request_counter = self.request_counter.max(next_request.wrapping_sub(1));
        for (&destination, &next) in next_seqs {
            let channel = self.channel(destination);
            channel.next_seq = channel.next_seq.max(next);
        }
        for entry in entries {
            let Ok(view) = FrameView::decode(
                &entry.frame,
                DecodeOptions {
                    payload_len_max: frame::PAYLOAD_LEN_MAX_PROTOCOL,
                    verify_checksum: true,
                },
            ) else {
                continue;
            };
            let header = view.header();
            self.known_epochs.insert((header.request_id >> 32) as u32);
            let pending = Pending {
                header,
                payload: view.payload().to_vec(),
                destination: entry.destination,
                attempts: 0,
                busy: 0,
                timer_gen: 0,
                first_sent: None,
                last_sent: None,
                queued_at: self.now,
                in_ready: true,
                failed_over: false,
            };
            let ready = pending.ready_entry(entry.seq);
            let slot = self.pendings.insert(pending);
            let channel = self.channel(entry.destination);
            if channel.next_seq.wrapping_sub(entry.seq) as i32 <= 0 {
                channel.next_seq = entry.seq.wrapping_add(1);
            }
            match channel.pending.insert(entry.seq, slot) {
                None => {
                    channel.ready.push_back(ready);
                    self.outbox_len += 1;
                }
                // A second entry of one sequence replaces the first (as a map insert did).
                Some(old) => {
                    self.pendings.remove(old);
                }
            }
        }
    }

    /// Opens (or continues) stream `stream` on `port` and sends one frame to every listener.
    /// Returns the number of copies queued. Streams are never acknowledged or resent.
    pub fn stream_send(&mut self, now: Instant, port: u16, stream: u32, payload: &[u8]) -> usize {
        if payload.len() > self.config.payload_len_max as usize {
            return 0;
        }
        let payload = self.stream_pool.copy_of(payload);
        self.stream_send_owned(now, port, stream, payload)
    }

    /// [`Bus::stream_send`] taking the payload's buffer: the last copy keeps it, so a stream
    /// with one listener copies no payload.
    pub fn stream_send_owned(
        &mut self,
        now: Instant,
        port: u16,
        stream: u32,
        payload: Vec<u8>,
    ) -> usize {
        self.now = self.now.max(now);
        if payload.len() > self.config.payload_len_max as usize {
            return 0;
        }
        let me = self.config.station_id;
        let listening = self.ports.get(&port).is_some_and(|p| p.subscribed);
        let key = (self.cycle, self.topology.version(), listening);
        let source = self
            .stream_sources
            .entry((port, stream))
            .or_insert(StreamSource {
                next_seq: 0,
                targets: Vec::new(),
                targets_key: None,
                lifetime: 0,
            });
        let seq = source.next_seq;
        source.next_seq = source.next_seq.wrapping_add(1);
        // Borrowed out of the map while copies are queued (no second lookup per frame).
        let mut targets = std::mem::take(&mut source.targets);
        let mut lifetime = source.lifetime;
        if source.targets_key != Some(key) {
            source.targets_key = Some(key);
            lifetime = self.plan_stream(port, stream, listening, &mut targets);
        }
        let request_id = (u64::from(self.config.incarnation) << 32) | u64::from(stream);
        let copies = targets.len();
        let mut payload = Some(payload);
        for (i, &(destination, link)) in targets.iter().enumerate() {
            let header = Header {
                lane: Lane::Stream,
                packet_type: PacketType::Stream,
                recipient_kind: RecipientKind::Station,
                flags: Flags::NONE,
                sender_id: me,
                recipient_id: destination,
                recipient_port: port,
                sender_port: port,
                route_id: stream,
                request_id,
                sequence: seq,
                attempt: 0,
                hop_limit: self.config.hop_limit,
                lifetime,
                priority: 0,
                segment: None,
            };
            let payload = if i + 1 == copies {
                payload.take().unwrap_or_default()
            } else {
                self.stream_pool
                    .copy_of(payload.as_deref().unwrap_or_default())
            };
            self.queue_stream(StreamCopy {
                link,
                header,
                payload,
                expires_cycle: self.cycle + u64::from(lifetime),
                forwarded: false,
            });
        }
        if let Some(unused) = payload {
            self.recycle_stream_payload(unused);
        }
        if let Some(source) = self.stream_sources.get_mut(&(port, stream)) {
            source.targets = targets;
            source.lifetime = lifetime;
        }
        copies
    }

    /// Discovers the listeners of (`port`, `stream`), updates its plan (the Orchestrator
    /// reassigns the Terminator whenever the listener set changes) and the copies to make.
    /// Listeners without a route are skipped. Returns the plan's lifetime.
    fn plan_stream(
        &mut self,
        port: u16,
        stream: u32,
        listening: bool,
        targets: &mut Vec<(u32, LinkId)>,
    ) -> u8 {
        let me = self.config.station_id;
        let mut listeners = self.topology.listeners_of(port);
        if listening {
            listeners.push((me, 0));
        }
        let plan = match self.stream_plans.get(&(port, stream)) {
            Some(plan)
                if plan.listeners.len() == listeners.len()
                    && listeners.iter().all(|l| plan.listeners.contains(l)) =>
            {
                plan
            }
            _ => {
                let plan = StreamPlan::new(listeners, self.config.stream_lifetime);
                self.stream_plans.insert((port, stream), plan);
                &self.stream_plans[&(port, stream)]
            }
        };
        targets.clear();
        for &(destination, _) in &plan.listeners {
            let link = if destination == me {
                Some(LOOPBACK)
            } else {
                self.next_hop_link(destination)
            };
            if let Some(link) = link {
                targets.push((destination, link));
            }
        }
        plan.lifetime
    }

    fn queue_stream(&mut self, copy: StreamCopy) {
        let frames_max = self.config.stream_queue_capacity.saturating_mul(64);
        let bytes_max = self.config.stream_out_bytes;
        let charge = frame_charge(copy.payload.len());
        let pool = &mut self.stream_pool;
        let pool_max = self.config.stream_queue_bytes;
        let dropped =
            self.stream_out
                .push_back(copy, charge, frames_max, bytes_max, |old: StreamCopy| {
                    pool.give(old.payload, pool_max)
                });
        self.stats.stream_overrun += dropped as u64;
    }

    /// Starts a bulk transfer of an object to `port` on station `destination`. The bus asks
    /// for the object's bytes with [`IoRequest::SourceRead`]; progress and completion arrive as
    /// events. `transfer` ids are chosen by the bus.
    pub fn send_bulk(
        &mut self,
        now: Instant,
        destination: u32,
        port: u16,
        name: &str,
        object_len: u64,
        object_crc32c: u32,
    ) -> Result<u64, SendError> {
        self.now = self.now.max(now);
        let active = self
            .out_transfers
            .values()
            .filter(|t| !matches!(t.state, OutState::Done | OutState::Failed))
            .count();
        if active >= self.config.transfers_max {
            return Err(SendError::TooManyTransfers {
                max: self.config.transfers_max,
            });
        }
        if name.len() > super::control::OBJECT_NAME_LEN_MAX {
            return Err(SendError::NameTooLong);
        }
        // Finished transfers are kept for progress queries, at most `transfers_max` of them.
        let finished: Vec<u64> = self
            .out_transfers
            .iter()
            .filter(|(_, t)| matches!(t.state, OutState::Done | OutState::Failed))
            .map(|(&id, _)| id)
            .collect();
        if finished.len() >= self.config.transfers_max {
            for id in &finished[..finished.len() + 1 - self.config.transfers_max] {
                self.out_transfers.remove(id);
            }
        }
        let segment_len = self.config.segment_len;
        let segment_count =
            BulkOffer::segments_for(object_len, segment_len).ok_or(SendError::ObjectTooLarge)?;
        let id = self.next_request_id();
        self.out_transfers.insert(
            id,
            OutTransfer {
                id,
                destination,
                port,
                from_port: super::service::CLIENT_PORT,
                offer: BulkOffer {
                    object_len,
                    segment_len,
                    segment_count,
                    object_crc32c,
                    name: name.to_owned(),
                },
                state: OutState::Offering,
                acked: SegmentSet::new(segment_count),
                in_flight: BTreeMap::new(),
                cursor: 0,
                last_progress: self.now,
                offer_sent_at: None,
                stalls: 0,
                started_at: self.now,
                bytes_acked: 0,
                bytes_resumed: 0,
                sending_since: None,
                progress_reported_at: self.now,
                trace: false,
            },
        );
        Ok(id)
    }

    /// The plan (listeners, Terminator, lifetime) of an outbound stream, once it has sent.
    pub fn stream_plan(&self, port: u16, stream: u32) -> Option<&StreamPlan> {
        self.stream_plans.get(&(port, stream))
    }

    /// Smoothed work per cycle, as the Orchestrator sees it.
    pub fn load(&self) -> f64 {
        self.pacer.load()
    }

    /// Progress of every outbound transfer not yet forgotten.
    pub fn transfers(&self) -> Vec<Progress> {
        self.out_transfers
            .values()
            .map(|t| self.progress_of(t))
            .collect()
    }

    fn progress_of(&self, t: &OutTransfer) -> Progress {
        // The average rate of the bytes this transfer moved, since the receiver answered: a
        // resumed object's stored part is neither bytes moved nor time spent (counting it
        // made examples/img_swap show 920 MB/s and a one-second ETA right after a resume).
        let elapsed = t
            .sending_since
            .map_or(Duration::ZERO, |since| self.now.saturating_since(since));
        let moved = t.bytes_acked.saturating_sub(t.bytes_resumed);
        let rate = if elapsed.as_nanos() == 0 {
            0
        } else {
            (u128::from(moved) * 1_000_000_000 / u128::from(elapsed.as_nanos())) as u64
        };
        let left = t.offer.object_len.saturating_sub(t.bytes_acked);
        let eta_ms = if left == 0 {
            0
        } else {
            left.saturating_mul(1000)
                .checked_div(rate)
                .unwrap_or(u64::MAX)
        };
        Progress {
            transfer: t.id,
            bytes_done: t.bytes_acked,
            bytes_total: t.offer.object_len,
            rate_bytes_per_sec: rate,
            eta_ms,
        }
    }

    // ----------------------------------------------------------------------------------------
    // The cycle
    // ----------------------------------------------------------------------------------------

    /// Runs one cycle at `now`: timers, deliver phase, commit phase.
    pub fn cycle(&mut self, now: Instant) -> CycleReport {
        self.now = self.now.max(now);
        // Frames this station sent itself arrive now (one cycle of latency, like any link),
        // and, like frames from a link, between the cycles: handled after the cycle count
        // moved on, a stream frame sent to itself kept one cycle of lifetime more than it had
        // and could be delivered a cycle after it expired (simulator seed 10).
        let loopback = std::mem::take(&mut self.loopback);
        let mut work = loopback.len();
        for frame in &loopback {
            self.handle_frame(self.now, LOOPBACK, frame);
        }
        for frame in loopback {
            self.recycle(frame);
        }
        self.cycle += 1;
        self.stats.cycles += 1;
        let tx_before = self.tx.len();
        work += self.run_timers();
        let (delivered, deliver_backlog) = self.deliver_phase();
        let (transmitted, transmit_backlog) = self.commit_phase();
        let backlog = deliver_backlog || transmit_backlog;
        if backlog {
            self.stats.budget_overruns += 1;
        }
        let _ = tx_before;
        let work = work + delivered + transmitted;
        // The Orchestrator runs last: it sees the whole cycle and sets the next one's pace.
        let pace = self.pacer.pace(work, backlog, self.poll_timeout());
        CycleReport {
            delivered,
            transmitted,
            work,
            backlog,
            pace,
        }
    }

    fn run_timers(&mut self) -> usize {
        let now = self.now;
        let mut work = 0;
        // Dead-man detection and heartbeats, for the links whose entry is due, in link id
        // order.
        let mut link_ids = std::mem::take(&mut self.scratch.links);
        link_ids.clear();
        while let Some(&(at, id)) = self.link_deadlines.first() {
            if at > now {
                break;
            }
            self.link_deadlines.pop_first();
            link_ids.push(id);
        }
        link_ids.sort_unstable();
        self.scan_visits += link_ids.len() as u64;
        for &id in &link_ids {
            let (dead, heartbeat) = {
                let Some(link) = self.links.get(&id) else {
                    continue;
                };
                (
                    link.alive && now.saturating_since(link.last_heard) > self.config.dead_after,
                    now.saturating_since(link.last_sent) >= self.config.heartbeat_interval,
                )
            };
            if dead {
                let link = self.links.get_mut(&id).expect("listed");
                link.alive = false;
                if let Some(peer) = link.peer {
                    self.peer_down(peer, id);
                }
                work += 1;
            }
            if heartbeat {
                self.queue_heartbeat(id);
                work += 1;
            }
            self.file_link(id);
        }
        self.scratch.links = link_ids;
        // Discovery.
        if !self.topology.expire(now, self.config.advert_ttl).is_empty() {
            work += 1;
        }
        if self.advert_due || now >= self.next_advert_at {
            self.originate_advert();
            work += 1;
        }
        if self.topology.refresh() {
            self.reroute_services();
        }
        // Retransmission timers. Most due timers are stale (their message was answered or
        // resent): they are counted and dropped unsorted. The live ones fire in deadline order,
        // as a heap would pop them; firing one never makes another live or stale (a message
        // has one live timer at most, and a message admitted meanwhile has none yet).
        let mut due = std::mem::take(&mut self.timers_due);
        due.clear();
        self.timers.drain_due(now, &mut due);
        work += due.len();
        due.retain(|&(_, destination, seq, generation)| {
            self.channels.get(&destination).is_some_and(|channel| {
                channel
                    .pending
                    .get(seq)
                    .and_then(|slot| self.pendings.get(slot))
                    .is_some_and(|p| p.timer_gen == generation && !p.in_ready)
            })
        });
        due.sort_unstable();
        for &(_, destination, seq, generation) in &due {
            self.retransmit_due(destination, seq, generation);
        }
        self.timers_due = due;
        // Bulk timers.
        work += self.bulk_timers();
        work
    }

    fn retransmit_due(&mut self, destination: u32, seq: u32, generation: u32) {
        let attempts_max = self.config.attempts_max;
        let busy_max = self.config.busy_max;
        let Some(channel) = self.channels.get_mut(&destination) else {
            return;
        };
        let Some(pending) = channel
            .pending
            .get(seq)
            .and_then(|slot| self.pendings.get_mut(slot))
        else {
            return;
        };
        if pending.timer_gen != generation || pending.in_ready {
            return; // A stale timer: the message was resent or answered meanwhile.
        }
        if pending.attempts >= attempts_max {
            self.dead_letter(destination, seq, Reason::Timeout);
            return;
        }
        if pending.busy > busy_max {
            self.dead_letter(destination, seq, Reason::Busy);
            return;
        }
        pending.in_ready = true;
        channel.ready.push_back(pending.ready_entry(seq));
        if pending.header.flags.contains(Flags::TRACE_REQUESTED) {
            let header = pending.header;
            self.trace(&header, TraceEvent::RetryScheduled, 0, 0, 0);
        }
    }

    /// After a topology change, messages addressed to "any server" whose chosen server became
    /// unreachable move to another server.
    ///
    /// A message keeps its channel sequence unless it moves: the unreachable server may have
    /// delivered it already (its ACK lost), and only the sequence lets that server recognise
    /// a retransmission. Re-sequencing it on the same channel made the server deliver it twice
    /// (simulator seed 2). For the same reason a message that was transmitted moves at most
    /// once: moving back to a server that may hold it delivered it twice there (seed 99).
    fn reroute_services(&mut self) {
        let unreachable: Vec<u32> = self
            .channels
            .keys()
            .copied()
            .filter(|&d| d != self.config.station_id && self.topology.route(d).is_none())
            .collect();
        let movable = |p: &Pending| {
            p.header.recipient_kind == RecipientKind::Service
                && (p.first_sent.is_none() || !p.failed_over)
        };
        for destination in unreachable {
            let sequenced: Vec<u32> = self.channels[&destination]
                .pending
                .iter()
                .filter(|&(_, slot)| self.pendings.get(slot).is_some_and(movable))
                .map(|(seq, _)| seq)
                .collect();
            let backlog: Vec<Pending> = {
                let channel = self.channels.get_mut(&destination).expect("listed");
                let (service, other): (Vec<Pending>, Vec<Pending>) =
                    channel.backlog.drain(..).partition(|p| movable(p));
                channel.backlog = other.into();
                service
            };
            let mut to_move: Vec<(Pending, u32)> = Vec::new();
            for pending in backlog {
                match self.pick_server(pending.header.recipient_port) {
                    Some(server) if server != destination => to_move.push((pending, server)),
                    // No other server: keep trying the old one until the budget runs out.
                    _ => self
                        .channels
                        .get_mut(&destination)
                        .expect("listed")
                        .backlog
                        .push_back(pending),
                }
            }
            for seq in sequenced {
                let Some(port) = self.channels[&destination]
                    .pending
                    .get(seq)
                    .and_then(|slot| self.pendings.get(slot))
                    .map(|p| p.header.recipient_port)
                else {
                    continue;
                };
                let Some(server) = self.pick_server(port).filter(|&s| s != destination) else {
                    continue; // No other server: it stays, with its sequence.
                };
                let channel = self.channels.get_mut(&destination).expect("listed");
                let removed = channel.pending.remove(seq);
                if let Some(p) = removed.and_then(|slot| self.pendings.remove(slot)) {
                    channel.ready.retain(|r| r.seq != seq);
                    // It may have been journaled for the old server: that entry is settled.
                    self.push_event(Event::Rerouted {
                        request_id: p.header.request_id,
                        from: destination,
                        to: server,
                    });
                    to_move.push((p, server));
                }
            }
            for (mut pending, server) in to_move {
                pending.failed_over |= pending.first_sent.is_some();
                pending.destination = server;
                pending.header.recipient_id = server;
                pending.attempts = 0;
                pending.busy = 0;
                pending.in_ready = false;
                self.channel(server).backlog.push_back(pending);
                self.admit_backlog(server);
            }
            self.admit_backlog(destination);
        }
    }

    fn dead_letter(&mut self, destination: u32, seq: u32, reason: Reason) {
        let Some(channel) = self.channels.get_mut(&destination) else {
            return;
        };
        let Some(pending) = channel
            .pending
            .remove(seq)
            .and_then(|slot| self.pendings.remove(slot))
        else {
            return;
        };
        channel.ready.retain(|r| r.seq != seq);
        self.outbox_len -= 1;
        self.stats.dead_lettered += 1;
        let header = pending.header;
        let record = AuditRecord {
            reason,
            attempts: pending.attempts,
            lane: header.lane.to_u8(),
            recipient_kind: header.recipient_kind.to_u8(),
            recipient_port: header.recipient_port,
            recipient_id: header.recipient_id,
            destination,
            request_id: header.request_id,
        };
        if header.flags.contains(Flags::TRACE_REQUESTED) {
            self.trace(&header, TraceEvent::Dropped, reason as u16, 0, 0);
        }
        self.push_event(Event::DeadLettered {
            record,
            from_port: header.sender_port,
        });
        // The message goes to this station's DEAD_LETTER port, audit record first.
        if self
            .ports
            .get(&registry::DEAD_LETTER)
            .is_some_and(|p| p.service.is_some())
        {
            let mut payload = record.encode();
            payload.extend_from_slice(&pending.payload);
            let dl_header = Header {
                packet_type: PacketType::Audit,
                recipient_id: self.config.station_id,
                recipient_port: registry::DEAD_LETTER,
                flags: Flags::NONE,
                ..header
            };
            let state = self.ports.get_mut(&registry::DEAD_LETTER).expect("checked");
            if state.queue.len() < self.config.port_queue_capacity {
                state.queue.push_back(Inbound {
                    header: dl_header,
                    payload,
                    received_at: self.now,
                    ack: None,
                    expires_cycle: 0,
                });
                list_ready(&mut self.ready_ports, registry::DEAD_LETTER, state);
            }
        }
        self.admit_backlog(destination);
    }

    // ----------------------------------------------------------------------------------------
    // Deliver phase
    // ----------------------------------------------------------------------------------------

    /// Role order: applications and translation ports (101+) first, rotating the starting
    /// port each cycle; then middleware (11–100); then system services (10 down to 3); then
    /// Reporter (2), Logger (1); the Orchestrator (0) always last. `spec/model/Cycle-v1.md`.
    /// The ports with something to deliver, in this cycle's order: application ports
    /// round-robin from the cursor, then middleware and system ports, highest first. Filled
    /// into `order` (cleared first). Walks only the ready set (`ready_ports`), in key order:
    /// O(ports with something waiting), not O(ports served).
    fn delivery_order(&mut self, order: &mut Vec<u16>) {
        order.clear();
        let first_app = registry::MIDDLEWARE_LAST + 1;
        let cursor = self.deliver_cursor.max(first_app);
        let ready = &self.ready_ports;
        ready.extend_ascending(cursor, 65_536, order);
        ready.extend_ascending(first_app, u32::from(cursor), order);
        ready.extend_descending_below(first_app, order);
        debug_assert_eq!(order.len(), ready.len());
        self.scan_visits += order.len() as u64;
        // The set is exact between cycles (see `ready_ports`); a port listed without work would
        // take the rotation's first place from a port that has some.
        debug_assert!(
            order
                .iter()
                .all(|p| self.ports.get(p).is_some_and(PortState::has_work)),
            "a ready port with nothing to deliver"
        );
    }

    fn deliver_phase(&mut self) -> (usize, bool) {
        let budget = self.config.deliver_budget;
        let quantum = self.config.consecutive_per_recipient_max as usize;
        let share_cap = (budget * self.config.service_share_percent as usize / 100).max(1);
        let mut delivered = 0usize;
        let mut order = std::mem::take(&mut self.scratch.order);
        self.delivery_order(&mut order);
        let mut per_port = std::mem::take(&mut self.scratch.per_port);
        per_port.clear();
        per_port.resize(order.len(), 0);
        if let Some(&first) = order.first() {
            self.deliver_cursor = first.wrapping_add(1);
        }
        // Expire stream frames whose lifetime ended while they waited (only ready ports
        // hold any).
        let cycle = self.cycle;
        let mut expired = 0;
        for port in &order {
            if let Some(state) = self.ports.get_mut(port).filter(|s| !s.streams.is_empty()) {
                let before = state.streams.len();
                state.streams.retain(|f| f.expires_cycle > cycle);
                expired += before - state.streams.len();
            }
        }
        self.stats.stream_expired += expired as u64;

        // Rounds of at most `quantum` messages per port, so no port gets more than `quantum`
        // consecutive deliveries while another waits, and no port more than its share of the
        // budget while another has messages.
        let mut progress = true;
        while progress && delivered < budget {
            progress = false;
            let waiting = order
                .iter()
                .filter(|p| self.ports.get(p).is_some_and(PortState::has_work))
                .count();
            self.scan_visits += order.len() as u64;
            for (i, &port) in order.iter().enumerate() {
                let used = per_port[i];
                if waiting > 1 && used >= share_cap {
                    continue;
                }
                let mut n = 0;
                while n < quantum && delivered < budget {
                    if !self.deliver_one(port) {
                        break;
                    }
                    n += 1;
                    delivered += 1;
                }
                if n > 0 {
                    progress = true;
                    per_port[i] += n;
                }
            }
        }
        // Ports emptied leave the ready set; what is left is the backlog. Nothing is queued
        // for a port during the deliver phase (handlers' output waits for the commit phase),
        // so the ready set is exactly `order`.
        self.scan_visits += order.len() as u64;
        for &port in &order {
            if let Some(state) = self.ports.get_mut(&port) {
                if !state.has_work() {
                    state.listed = false;
                    self.ready_ports.remove(port);
                }
            }
        }
        let backlog = !self.ready_ports.is_empty();
        self.scratch.order = order;
        self.scratch.per_port = per_port;
        (delivered, backlog)
    }

    /// Delivers one message (stream frames first: they are the most perishable) of `port`.
    fn deliver_one(&mut self, port: u16) -> bool {
        let Some(state) = self.ports.get_mut(&port) else {
            return false;
        };
        if let Some(done) = state.bulk_done.pop_front() {
            let mut service = state.service.take();
            if let Some(s) = service.as_mut() {
                let mut ctx = Context {
                    now: self.now,
                    station_id: self.config.station_id,
                    port,
                    outgoing: &mut self.emitted,
                    emitted_max: self.config.transmit_budget,
                    dropped: &mut self.stats.emit_drops,
                };
                s.on_bulk(&mut ctx, &done);
            }
            if let Some(state) = self.ports.get_mut(&port) {
                state.service = service;
            }
            return true;
        }
        let (mut inbound, stream) = match state.streams.pop_front() {
            Some(frame) => (frame, true),
            None => match state.queue.pop_front() {
                Some(message) => (message, false),
                None => return false,
            },
        };
        let mut service = state.service.take();
        let mut header = inbound.header;
        if stream {
            header.lifetime = (inbound.expires_cycle - self.cycle).min(255) as u8;
        }
        let message = Message {
            header: &header,
            payload: &inbound.payload,
            received_at: inbound.received_at,
        };
        for (_, tee) in &mut self.tees {
            tee.observe(&message);
            self.stats.teed += 1;
        }
        let reporter_answer =
            (service.is_none() && port == registry::REPORTER).then(|| self.stats_payload());
        let mut reply_event = None;
        let mut ctx = Context {
            now: self.now,
            station_id: self.config.station_id,
            port,
            outgoing: &mut self.emitted,
            emitted_max: self.config.transmit_budget,
            dropped: &mut self.stats.emit_drops,
        };
        match service.as_mut() {
            Some(s) if stream => s.on_stream(&mut ctx, &message),
            Some(s) => s.on_message(&mut ctx, &message),
            None if port == registry::REPORTER => {
                ctx.reply(&message, reporter_answer.unwrap_or_default());
            }
            None if header.flags.contains(Flags::REPLY) => {
                reply_event = Some(Event::Reply {
                    from: header.sender_id,
                    port,
                    route_id: header.route_id,
                    payload: std::mem::take(&mut inbound.payload),
                });
            }
            None => {}
        }
        if stream {
            self.recycle_stream_payload(std::mem::take(&mut inbound.payload));
        } else {
            self.recycle_payload(std::mem::take(&mut inbound.payload));
        }
        if let Some(event) = reply_event {
            self.push_event(event);
        }
        if let Some(state) = self.ports.get_mut(&port) {
            state.service = service;
        }
        if stream {
            self.stats.stream_delivered += 1;
        } else {
            self.stats.delivered += 1;
        }
        if let Some((sender, epoch, seq, as_id)) = inbound.ack {
            if let Some(window) = self.windows.get_mut(&(sender, as_id)).and_then(|w| {
                w.epochs
                    .iter_mut()
                    .find(|(e, _)| *e == epoch)
                    .map(|(_, w)| w)
            }) {
                window.deliver(seq);
            }
            self.ack_due((sender, epoch, as_id), seq);
            if header.flags.contains(Flags::TRACE_REQUESTED) {
                self.trace(&header, TraceEvent::Done, 0, 0, 0);
                self.trace(&header, TraceEvent::AckSent, 0, 0, 0);
            }
        }
        true
    }

    /// The Reporter's answer: `count u16 | (name_len u8 | name | value u64) × count`, then
    /// `transfers u16 | (transfer u64 | done u64 | total u64 | rate u64 | eta_ms u64) × n`.
    fn stats_payload(&self) -> Vec<u8> {
        let fields = self.stats.fields();
        let mut out = Vec::with_capacity(fields.len() * 24);
        out.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        for (name, value) in fields {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        let transfers = self.transfers();
        out.extend_from_slice(&(transfers.len().min(1024) as u16).to_le_bytes());
        for p in transfers.iter().take(1024) {
            for v in [
                p.transfer,
                p.bytes_done,
                p.bytes_total,
                p.rate_bytes_per_sec,
                p.eta_ms,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    // ----------------------------------------------------------------------------------------
    // Commit phase
    // ----------------------------------------------------------------------------------------

    fn commit_phase(&mut self) -> (usize, bool) {
        // What handlers produced enters the bus now.
        let mut emitted =
            std::mem::replace(&mut self.emitted, std::mem::take(&mut self.scratch.emitted));
        for message in emitted.drain(..) {
            if self.send(self.now, message).is_err() {
                self.stats.emit_drops += 1;
            }
        }
        self.scratch.emitted = emitted;
        self.queue_acks();
        self.queue_bulk_maps();

        let budget = self.config.transmit_budget;
        let data_budget = budget * (100 - self.config.control_reserve_percent as usize) / 100;
        let mut sent = 0usize;

        // 1. Control: ACK/NACK/BUSY/heartbeats/adverts/bulk maps, up to the whole budget.
        while sent < budget {
            let Some((target, header, payload)) = self.control_out.pop_front() else {
                break;
            };
            if let ControlTarget::Links(mut links) = target {
                // One frame per link, counted against the budget per frame as if queued one
                // by one; links left when the budget runs out stay first in the queue.
                let (frames, consumed) =
                    self.emit_to_links(&links, &header, &payload, budget - sent);
                sent += frames;
                if consumed < links.len() {
                    links.drain(..consumed);
                    self.control_out
                        .push_front((ControlTarget::Links(links), header, payload));
                    continue;
                }
            } else if self.emit(target, &header, &payload) {
                sent += 1;
            }
            self.recycle_payload(payload);
        }
        // Trace reports, best effort, inside the control reserve.
        while sent < budget {
            let Some((route_id, request_id, report)) = self.trace_out.pop_front() else {
                break;
            };
            if self.emit_trace(route_id, request_id, report) {
                sent += 1;
            }
        }
        let mut data_sent = 0usize;
        // 2. Forwarded frames for other stations.
        while data_sent < data_budget {
            let Some((link, frame)) = self.forward_out.pop_front() else {
                break;
            };
            self.push_tx(link, frame);
            data_sent += 1;
        }
        // 3. Fast lane data, fair between recipients and services.
        data_sent += self.transmit_fast(data_budget.saturating_sub(data_sent));
        // 4. Bulk segments, fair between transfers.
        data_sent += self.transmit_bulk(data_budget.saturating_sub(data_sent));
        // 5. Stream frames, dropping the expired.
        data_sent += self.transmit_streams(data_budget.saturating_sub(data_sent));
        let backlog = !self.control_out.is_empty()
            || !self.forward_out.is_empty()
            || self
                .channels
                .values()
                .any(|c| !c.ready.is_empty() || !c.unreliable.is_empty());
        (sent + data_sent, backlog)
    }

    fn queue_acks(&mut self) {
        let mut acks =
            std::mem::replace(&mut self.acks_due, std::mem::take(&mut self.scratch.acks));
        self.acks_index.clear();
        for ((sender, epoch, as_id), mut seqs) in acks.drain(..) {
            for chunk in seqs.chunks(ACK_SEQS_MAX) {
                let header = Header {
                    sequence: epoch,
                    ..self.reply_header(Lane::Fast, PacketType::Ack, sender, as_id)
                };
                let mut payload = self.payload_pool.pop().unwrap_or_default();
                payload.clear();
                AckList::encode_into(chunk, &mut payload);
                self.stats.acks_sent += 1;
                self.push_control((ControlTarget::Station(sender), header, payload));
            }
            seqs.clear();
            if self.scratch.ack_lists.len() < PAYLOAD_POOL_MAX {
                self.scratch.ack_lists.push(seqs);
            }
        }
        self.scratch.acks = acks;
    }

    /// Notes that `seq` from the channel `key` = (sender, epoch, answering identity) is to be
    /// acknowledged in this cycle's commit phase.
    fn ack_due(&mut self, key: (u32, u32, u32), seq: u32) {
        let index = match self.acks_index.get(&key) {
            Some(&index) => index,
            None => {
                let list = self.scratch.ack_lists.pop().unwrap_or_default();
                self.acks_due.push((key, list));
                self.acks_index.insert(key, self.acks_due.len() - 1);
                self.acks_due.len() - 1
            }
        };
        self.acks_due[index].1.push(seq);
    }

    /// A buffer holding a copy of `bytes`, from the payload pool when it has one.
    fn pooled_copy(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = self.payload_pool.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    /// Gives a payload buffer back to the pool (small ones only, and a bounded number).
    fn recycle_payload(&mut self, buffer: Vec<u8>) {
        if self.payload_pool.len() < PAYLOAD_POOL_MAX
            && buffer.capacity() <= PAYLOAD_POOLED_CAPACITY_MAX
            && buffer.capacity() > 0
        {
            self.payload_pool.push(buffer);
        }
    }

    /// Gives a stream frame's payload buffer back to the stream pool.
    fn recycle_stream_payload(&mut self, buffer: Vec<u8>) {
        self.stream_pool
            .give(buffer, self.config.stream_queue_bytes);
    }

    /// A header for a frame answering station `to`, sent as identity `from` (this station's
    /// id, or its public alias when the answered frame was addressed to that).
    fn reply_header(&mut self, lane: Lane, packet_type: PacketType, to: u32, from: u32) -> Header {
        Header {
            recipient_id: to,
            sender_id: from,
            hop_limit: self.config.hop_limit,
            ..Header::new(lane, packet_type)
        }
    }

    /// Round-robin over channels with ready frames, at most `consecutive_per_recipient_max`
    /// frames each per round, and at most `service_share_percent` of the data budget per
    /// sending port while other ports have frames ready.
    ///
    /// A port stopped by its share stays stopped for the rest of the cycle, even once the
    /// other ports have nothing left. Letting it go on in a later round broke the recipient
    /// rule instead: while it was stopped the other recipients' rounds ran back to back, more
    /// than `consecutive_per_recipient_max` frames to one recipient, and then its frames to
    /// another recipient followed in the same cycle (simulator seed 125).
    fn transmit_fast(&mut self, budget: usize) -> usize {
        let quantum = self.config.consecutive_per_recipient_max as usize;
        let share_cap = (budget * self.config.service_share_percent as usize / 100).max(1);
        let mut sent = 0usize;
        let mut destinations = std::mem::take(&mut self.scratch.destinations);
        destinations.clear();
        destinations.extend(
            self.channels
                .iter()
                .filter(|(_, c)| !c.ready.is_empty() || !c.unreliable.is_empty())
                .map(|(&d, _)| d),
        );
        if destinations.is_empty() {
            self.scratch.destinations = destinations;
            return 0;
        }
        let split = destinations.partition_point(|&d| d < self.channel_cursor);
        destinations.rotate_left(split);
        self.channel_cursor = destinations[0].wrapping_add(1);
        // Frames ready per sending port, counted once per cycle and kept current as frames
        // go (recounting every round made a large batch quadratic).
        let mut waiting = std::mem::take(&mut self.scratch.services_waiting);
        waiting.clear();
        for c in destinations.iter().filter_map(|d| self.channels.get(d)) {
            for port in c
                .ready
                .iter()
                .map(|r| r.sender_port)
                .chain(c.unreliable.iter().map(|(h, _)| h.sender_port))
            {
                *waiting.entry(port).or_default() += 1;
            }
        }
        let mut per_service = std::mem::take(&mut self.scratch.per_service);
        per_service.clear();
        let mut stopped = std::mem::take(&mut self.scratch.stopped);
        stopped.clear();
        let mut progress = true;
        while progress && sent < budget {
            progress = false;
            for &destination in &destinations {
                let mut n = 0;
                while n < quantum && sent < budget {
                    let Some(service) = self.next_fast_service(destination) else {
                        break;
                    };
                    let used = per_service.get(&service).copied().unwrap_or(0);
                    if stopped.contains(&service) || (waiting.len() > 1 && used >= share_cap) {
                        stopped.insert(service);
                        break;
                    }
                    if !self.transmit_fast_one(destination) {
                        break;
                    }
                    *per_service.entry(service).or_default() += 1;
                    if let Some(left) = waiting.get_mut(&service) {
                        *left -= 1;
                        if *left == 0 {
                            waiting.remove(&service);
                        }
                    }
                    n += 1;
                    sent += 1;
                }
                progress |= n > 0;
            }
        }
        self.scratch.destinations = destinations;
        self.scratch.services_waiting = waiting;
        self.scratch.per_service = per_service;
        self.scratch.stopped = stopped;
        sent
    }

    fn next_fast_service(&mut self, destination: u32) -> Option<u16> {
        let aging = self.config.aging_step;
        let now = self.now;
        let channel = self.channels.get_mut(&destination)?;
        if let Some((header, _)) = channel.unreliable.front() {
            return Some(header.sender_port);
        }
        // Sequences answered while queued for a resend are dropped here, not searched for
        // when their answer comes.
        while let Some(r) = channel.ready.front() {
            if channel.pending.contains(r.seq) {
                break;
            }
            channel.ready.pop_front();
        }
        // Priority with aging: among the first ready messages, the one with the highest
        // priority plus waited time / aging_step goes first (ties: the oldest).
        let scan = channel.ready.len().min(32);
        let steps = |queued_at: Instant| {
            now.saturating_since(queued_at).as_nanos() / aging.as_nanos().max(1)
        };
        let mut best = 0usize;
        if channel.ready.front_ranks_first() {
            // The front ranks first, as the scans below would find.
        } else if channel.ready.iter().take(scan).all(|r| r.priority == 0) {
            // The common case, without a division per message: the top score is the oldest
            // message's, and the first message reaching it wins (usually the front).
            let oldest = channel.ready.iter().take(scan).map(|r| r.queued_at).min();
            if let Some(top) = oldest.map(steps) {
                best = channel
                    .ready
                    .iter()
                    .take(scan)
                    .position(|r| steps(r.queued_at) == top)
                    .unwrap_or(0);
            }
        } else {
            let mut best_score = 0u64;
            for (i, r) in channel.ready.iter().take(scan).enumerate() {
                let score = u64::from(r.priority) + steps(r.queued_at);
                if score > best_score || i == 0 {
                    best = i;
                    best_score = score;
                }
            }
        }
        if best != 0 {
            channel.ready.move_to_front(best);
        }
        let front = *channel.ready.front()?;
        channel
            .pending
            .contains(front.seq)
            .then_some(front.sender_port)
    }

    fn transmit_fast_one(&mut self, destination: u32) -> bool {
        let now = self.now;
        let link = if destination == self.config.station_id {
            Some(LOOPBACK)
        } else {
            self.next_hop_link(destination)
        };
        let Some(channel) = self.channels.get_mut(&destination) else {
            return false;
        };
        if let Some((header, payload)) = channel.unreliable.pop_front() {
            if let Some(link) = link {
                self.encode_to(link, &header, &payload);
            } else {
                self.stats.no_route += 1;
            }
            return true;
        }
        let Some(ReadyEntry { seq, .. }) = channel.ready.pop_front() else {
            return false;
        };
        let Some(slot) = channel.pending.get(seq) else {
            return true;
        };
        let rto = channel.rto;
        let Some(pending) = self.pendings.get_mut(slot) else {
            return true;
        };
        pending.in_ready = false;
        let mut header = pending.header;
        header.attempt = pending.attempts;
        if pending.attempts > 0 {
            self.stats.retransmits += 1;
        }
        pending.attempts = pending.attempts.saturating_add(1);
        pending.first_sent.get_or_insert(now);
        pending.last_sent = Some(now);
        let backoff = rto
            .saturating_mul(1u64 << (pending.attempts.saturating_sub(1)).min(16))
            .min(self.config.rto_max);
        let jitter = Duration::from_nanos(self.rng.below(backoff.as_nanos() / 8 + 1));
        let deadline = now + backoff + jitter;
        pending.timer_gen = pending.timer_gen.wrapping_add(1);
        let marker = pending.timer_gen;
        if let Some(link) = link {
            // Encoded straight from the slab: the payload stays where it is.
            let mut buffer = self.pool.pop().unwrap_or_default();
            match encode_into(&header, &pending.payload, &mut buffer) {
                Ok(()) => {
                    self.push_tx(link, buffer);
                }
                Err(_) => self.stats.control_malformed += 1,
            }
        } else {
            self.stats.no_route += 1;
        }
        self.timers.push((deadline, destination, seq, marker));
        if header.flags.contains(Flags::TRACE_REQUESTED) {
            // The originator reports each transmission as a forward to its next hop, or as a
            // drop when it had no route. Reporting only the first one, with the destination as
            // the next hop when there was no link, named hops that do not exist and lost the
            // route a retransmission took (simulator seed 1).
            match link {
                Some(LOOPBACK) => self.trace(&header, TraceEvent::Forwarded, 0, destination, 0),
                Some(l) => {
                    let next = self.links.get(&l).and_then(|l| l.peer).unwrap_or(0);
                    self.trace(&header, TraceEvent::Forwarded, 0, next, 0);
                }
                None => self.trace(&header, TraceEvent::Dropped, Reason::NoRoute as u16, 0, 0),
            }
        }
        true
    }

    /// The bulk segment length for a transfer to `destination`: the configured length, cut so
    /// that a segmented frame fits the first hop's link.
    fn path_segment_len(&self, destination: u32) -> u32 {
        let configured = self.config.segment_len;
        let Some(link) = self.next_hop_link(destination) else {
            return configured;
        };
        let frame_max = self
            .links
            .get(&link)
            .map_or(usize::MAX, |l| l.frame_len_max);
        let fits = frame_max.saturating_sub(frame::SEGMENTED_HEADER_LEN);
        configured
            .min(u32::try_from(fits).unwrap_or(u32::MAX))
            .max(1)
    }

    /// The link toward `destination`: its route's next hop; else, while no advert has told
    /// this bus a route (a station that has just joined), the link its latest frame came on,
    /// so an ACK or a reply to its first message is not dropped for want of a route.
    fn next_hop_link(&self, destination: u32) -> Option<LinkId> {
        let routed = self
            .topology
            .route(destination)
            .and_then(|route| self.neighbour_links.get(&route.next_hop).copied());
        routed.or_else(|| {
            self.return_links
                .get(&destination)
                .copied()
                .filter(|l| self.links.get(l).is_some_and(|state| state.alive))
        })
    }

    /// Encodes a frame and queues it for `link`; returns false if the link queue is full.
    fn encode_to(&mut self, link: LinkId, header: &Header, payload: &[u8]) -> bool {
        let mut buffer = self.pool.pop().unwrap_or_default();
        if encode_into(header, payload, &mut buffer).is_err() {
            // Headers built by the bus are valid by construction; count rather than panic.
            self.stats.control_malformed += 1;
            return false;
        }
        self.push_tx(link, buffer)
    }

    fn push_tx(&mut self, link: LinkId, frame: Vec<u8>) -> bool {
        if link == LOOPBACK {
            self.stats.frames_sent += 1;
            self.loopback.push_back(frame);
            return true;
        }
        let capacity = self.config.link_queue_capacity;
        let Some(state) = self.links.get_mut(&link) else {
            self.stats.no_route += 1;
            return false;
        };
        if frame.len() > state.frame_len_max {
            self.stats.frames_oversized += 1;
            self.recycle(frame);
            return false;
        }
        if state.queued >= capacity {
            self.stats.link_queue_drops += 1;
            return false;
        }
        state.queued += 1;
        state.last_sent = self.now;
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        self.tx.push_back(Transmit { link, frame });
        true
    }

    /// Sends the frame `header` + `payload` on `links` in order until `limit` frames were
    /// queued, encoding it once (a 10 000-port advert to 1 000 links was encoded, checksummed
    /// and its payload cloned once per link). Returns the frames queued and the links used.
    fn emit_to_links(
        &mut self,
        links: &[LinkId],
        header: &Header,
        payload: &[u8],
        limit: usize,
    ) -> (usize, usize) {
        let mut encoded = std::mem::take(&mut self.scratch.encoded);
        encoded.clear();
        encoded.resize(frame::encoded_len(header, payload.len()), 0);
        if frame::encode(header, payload, &mut encoded).is_err() {
            // Headers built by the bus are valid by construction; count rather than panic.
            self.stats.control_malformed += 1;
            self.scratch.encoded = encoded;
            return (0, links.len());
        }
        let (mut sent, mut consumed) = (0, 0);
        for &link in links {
            if sent >= limit {
                break;
            }
            consumed += 1;
            let mut buffer = self.pool.pop().unwrap_or_default();
            buffer.clear();
            buffer.extend_from_slice(&encoded);
            if self.push_tx(link, buffer) {
                sent += 1;
            }
        }
        self.scratch.encoded = encoded;
        (sent, consumed)
    }

    fn emit(&mut self, target: ControlTarget, header: &Header, payload: &[u8]) -> bool {
        let link = match target {
            ControlTarget::Links(links) => {
                return self.emit_to_links(&links, header, payload, usize::MAX).0 > 0;
            }
            ControlTarget::Link(link) => Some(link),
            ControlTarget::Station(station) if station == self.config.station_id => Some(LOOPBACK),
            ControlTarget::Station(station) => self.next_hop_link(station),
        };
        match link {
            Some(link) => self.encode_to(link, header, payload),
            None => {
                self.stats.no_route += 1;
                false
            }
        }
    }

    fn queue_heartbeat(&mut self, link: LinkId) {
        let header = Header {
            sender_id: self.config.station_id,
            request_id: u64::from(self.config.incarnation) << 32,
            ..Header::new(Lane::Fast, PacketType::Heartbeat)
        };
        if let Some(state) = self.links.get_mut(&link) {
            state.last_sent = self.now;
        }
        self.stats.heartbeats_sent += 1;
        self.push_control((ControlTarget::Link(link), header, Vec::new()));
    }

    // ----------------------------------------------------------------------------------------
    // Receive paths
    // ----------------------------------------------------------------------------------------

    fn handle_heartbeat(&mut self, link: LinkId, header: &Header) {
        if link == LOOPBACK {
            return;
        }
        let peer = header.sender_id;
        let Some(state) = self.links.get_mut(&link) else {
            return;
        };
        if !state.alive || state.peer != Some(peer) {
            self.link_alive(link, peer);
        }
    }

    /// `link` (to `peer`) is alive, newly or again.
    fn link_alive(&mut self, link: LinkId, peer: u32) {
        if let Some(state) = self.links.get_mut(&link) {
            state.peer = Some(peer);
            state.alive = true;
        }
        self.neighbour_links.insert(peer, link);
        if self.topology.neighbour_up(peer) {
            self.push_event(Event::PeerUp { station: peer });
        }
        self.advert_due = true;
        // Answer at once so the neighbour learns us without waiting a heartbeat interval.
        self.queue_heartbeat(link);
        // Alive now: its dead-man deadline counts (it may come before the heartbeat's).
        self.file_link(link);
    }

    fn originate_advert(&mut self) {
        self.advert_due = false;
        self.next_advert_at = self.now + self.config.advert_interval;
        self.advert_seq = self.advert_seq.wrapping_add(1);
        let mut ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|(_, s)| s.service.is_some())
            .map(|(&p, _)| p)
            .collect();
        if self.collector.is_some() {
            ports.push(registry::TRACE_REPORT);
        }
        ports.sort_unstable();
        ports.dedup();
        let advert = Advert {
            incarnation: self.config.incarnation,
            seq: self.advert_seq,
            neighbours: self.topology.neighbours().iter().copied().collect(),
            ports,
            subscriptions: self
                .ports
                .iter()
                .filter(|(_, s)| s.subscribed)
                .map(|(&p, _)| p)
                .collect(),
            groups: self
                .ports
                .iter()
                .filter(|(_, s)| s.grouped)
                .map(|(&p, _)| p)
                .collect(),
        };
        let header = Header {
            recipient_kind: RecipientKind::Broadcast,
            recipient_port: registry::DISCOVERY,
            sender_id: self.config.station_id,
            request_id: u64::from(self.config.incarnation) << 32 | u64::from(self.advert_seq),
            hop_limit: self.config.hop_limit,
            ..Header::new(Lane::Fast, PacketType::Control)
        };
        let payload = advert.encode();
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.alive)
            .map(|(&id, _)| id)
            .collect();
        if !links.is_empty() {
            self.push_control((ControlTarget::Links(links), header, payload));
        }
    }

    fn handle_advert(&mut self, link: LinkId, header: &Header, payload: &[u8], bytes: &[u8]) {
        let advert = match Advert::decode(payload) {
            Ok(advert) => advert,
            Err(_) => {
                self.stats.control_malformed += 1;
                return;
            }
        };
        let origin = header.sender_id;
        // An advert of a new incarnation leaves the origin's receive windows alone. They are
        // kept per epoch (= incarnation), so the new incarnation's messages get a window of
        // their own anyway. Dropping them here lost the window of the *new* epoch when its
        // first messages arrived before its advert, and a retransmission was then delivered
        // twice (simulator seed 40); it also let a late copy from the old epoch in again.
        match self.topology.handle_advert(self.now, origin, advert) {
            AdvertOutcome::Accepted => {
                self.stats.adverts_accepted += 1;
                if header.hop_limit == 0 {
                    return;
                }
                // Flood on to every other live link.
                let mut forwarded = header.to_owned();
                forwarded.hop_limit -= 1;
                forwarded.flags = forwarded.flags | Flags::FORWARDED;
                let links: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|&(&id, l)| l.alive && id != link)
                    .map(|(&id, _)| id)
                    .collect();
                let _ = bytes;
                if !links.is_empty() {
                    self.push_control((ControlTarget::Links(links), forwarded, payload.to_vec()));
                }
            }
            AdvertOutcome::Stale => {}
            AdvertOutcome::Full => self.stats.control_malformed += 1,
        }
    }

    fn forward(&mut self, link: LinkId, header: &Header, bytes: &[u8], target: u32) {
        let traced = header.flags.contains(Flags::TRACE_REQUESTED);
        if header.hop_limit == 0 || target == 0 {
            self.stats.hop_limit_drops += 1;
            if traced {
                self.trace(header, TraceEvent::Dropped, Reason::HopLimit as u16, 0, 0);
            }
            return;
        }
        let Some(out) = self.next_hop_link(target) else {
            self.stats.no_route += 1;
            if traced {
                self.trace(header, TraceEvent::Dropped, Reason::NoRoute as u16, 0, 0);
            }
            return;
        };
        if out == link {
            // Never send a frame back where it came from (a routing loop while routes settle).
            self.stats.no_route += 1;
            return;
        }
        let mut forwarded = *header;
        forwarded.hop_limit -= 1;
        forwarded.flags = forwarded.flags | Flags::FORWARDED;
        if header.lane == Lane::Stream {
            // A hop costs a cycle of lifetime, and so does every further cycle the frame waits
            // here: it goes out with the stream lane, which recomputes the lifetime left when
            // it transmits and drops it once expired. (Forwarded through the data queue, a
            // frame that waited kept lifetime it no longer had: simulator seed 38.)
            if header.lifetime <= 1 {
                self.stats.stream_expired += 1;
                return;
            }
            self.stats.forwarded += 1;
            let payload = self.stream_pool.copy_of(&bytes[header.header_len()..]);
            self.queue_stream(StreamCopy {
                link: out,
                header: forwarded,
                payload,
                expires_cycle: self.cycle + u64::from(header.lifetime),
                forwarded: true,
            });
            return;
        }
        let header_len = header.header_len();
        let payload = &bytes[header_len..];
        let mut buffer = self.pool.pop().unwrap_or_default();
        buffer.resize(bytes.len(), 0);
        if frame::encode(&forwarded, payload, &mut buffer).is_err() {
            self.stats.control_malformed += 1;
            return;
        }
        self.stats.forwarded += 1;
        if traced {
            let next = self.links.get(&out).and_then(|l| l.peer).unwrap_or(0);
            self.trace(header, TraceEvent::Received, 0, 0, 0);
            self.trace(header, TraceEvent::Forwarded, 0, next, 0);
        }
        if self.forward_out.len() >= self.config.link_queue_capacity {
            self.stats.link_queue_drops += 1;
            return;
        }
        self.forward_out.push_back((out, buffer));
    }

    /// The receive window of `(sender, as_id, epoch)`, created on first contact so that `seq`
    /// (the first sequence seen) is its newest slot: every sequence more than a window below
    /// it is resolved at the sender (its invariant), whatever the channel's age.
    fn window_for(
        &mut self,
        sender: u32,
        as_id: u32,
        epoch: u32,
        seq: u32,
    ) -> Option<&mut ReceiveWindow> {
        let key = (sender, as_id);
        // The length first: a lookup only when the table is full.
        if self.windows.len() >= self.config.stations_max && !self.windows.contains_key(&key) {
            // Full: forget the longest-idle sender if it has been silent for longer than any
            // sender may still retransmit (twice the retry span), else refuse (counted).
            let idle_after = self.config.retry_span().saturating_mul(2);
            let now = self.now;
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.used_at)
                .map(|(&k, w)| (k, w.used_at));
            match oldest {
                Some((old, used_at)) if now.saturating_since(used_at) > idle_after => {
                    self.windows.remove(&old);
                }
                _ => return None,
            }
        }
        let now = self.now;
        let windows = self.windows.entry(key).or_insert_with(|| SenderWindows {
            epochs: Vec::new(),
            used_at: now,
            unreliable: Vec::new(),
        });
        windows.used_at = now;
        if let Some(i) = windows.epochs.iter().position(|(e, _)| *e == epoch) {
            return Some(&mut windows.epochs[i].1);
        }
        let oldest = windows.epochs.iter().map(|(e, _)| *e).min();
        if windows.epochs.len() >= EPOCHS_KEPT {
            if oldest.is_some_and(|o| epoch < o) {
                return None;
            }
            let i = windows
                .epochs
                .iter()
                .position(|(e, _)| Some(*e) == oldest)
                .expect("non-empty");
            windows.epochs.remove(i);
        }
        windows.epochs.push((
            epoch,
            ReceiveWindow::starting_at(seq.wrapping_sub(super::dedup::WINDOW - 1)),
        ));
        windows.epochs.last_mut().map(|(_, w)| w)
    }

    /// Whether fire-and-forget data `request_id` from `sender` is new. Such messages carry no
    /// channel sequence, yet a link that duplicates a frame must not make a handler see one
    /// twice (simulator seed 1). Request ids of one sender only grow within an epoch, so the
    /// receiver keeps the newest ones of each (sender, epoch) in a [`TokenCache`], like stream
    /// tokens: a copy seen before is dropped, and so is one older than the cache reaches (a
    /// fire-and-forget message may be lost anyway; it is never delivered twice).
    fn admit_unreliable(&mut self, sender: u32, as_id: u32, request_id: u64) -> bool {
        let epoch = (request_id >> 32) as u32;
        let key = (sender, as_id);
        // The length first: a lookup only when the table is full.
        if self.windows.len() >= self.config.stations_max && !self.windows.contains_key(&key) {
            return false;
        }
        let now = self.now;
        let windows = self.windows.entry(key).or_insert_with(|| SenderWindows {
            epochs: Vec::new(),
            used_at: now,
            unreliable: Vec::new(),
        });
        windows.used_at = now;
        let caches = &mut windows.unreliable;
        let i = match caches.iter().position(|(e, _)| *e == epoch) {
            Some(i) => i,
            None => {
                if caches.len() >= EPOCHS_KEPT {
                    let (i, oldest) = caches
                        .iter()
                        .enumerate()
                        .map(|(i, (e, _))| (i, *e))
                        .min_by_key(|&(_, e)| e)
                        .expect("non-empty");
                    if epoch < oldest {
                        return false;
                    }
                    caches.remove(i);
                }
                caches.push((epoch, TokenCache::default()));
                caches.len() - 1
            }
        };
        caches[i].1.admit(request_id as u32)
    }

    fn handle_data(&mut self, header: &Header, payload: &[u8], as_id: u32) {
        let port = header.recipient_port;
        let sender = header.sender_id;
        let ack_required = header.flags.contains(Flags::ACK_REQUIRED);
        let epoch = (header.request_id >> 32) as u32;
        let seq = header.sequence;
        if ack_required {
            let Some(window) = self.window_for(sender, as_id, epoch, seq) else {
                self.stats.stale_epoch_drops += 1;
                return;
            };
            match window.classify(seq) {
                Verdict::DeliveredBefore => {
                    self.stats.duplicates += 1;
                    self.ack_due((sender, epoch, as_id), seq);
                    return;
                }
                Verdict::Queued => {
                    self.stats.duplicates += 1;
                    return;
                }
                Verdict::New => {}
            }
        } else if header.packet_type == PacketType::Data
            && !self.admit_unreliable(sender, as_id, header.request_id)
        {
            self.stats.duplicates += 1;
            return;
        }
        let served = self.serves(port)
            || self.ports.get(&port).is_some_and(|p| p.grouped)
            || (header.flags.contains(Flags::REPLY) && self.ports.contains_key(&port))
            || (header.flags.contains(Flags::REPLY) && port == super::service::CLIENT_PORT);
        if !served {
            if ack_required {
                self.send_nack(header, Reason::NoSuchPort, as_id);
            }
            if header.flags.contains(Flags::TRACE_REQUESTED) {
                self.trace(header, TraceEvent::Dropped, Reason::NoSuchPort as u16, 0, 0);
            }
            return;
        }
        let capacity = self.config.port_queue_capacity;
        let state = self.ports.entry(port).or_default();
        let depth = state.queue.len();
        if depth >= capacity {
            if ack_required {
                self.stats.busy_sent += 1;
                let reply = Header {
                    sequence: epoch,
                    request_id: header.request_id,
                    route_id: header.route_id,
                    ..self.reply_header(Lane::Fast, PacketType::Busy, sender, as_id)
                };
                let busy = Busy {
                    seq,
                    queue_depth: depth as u32,
                }
                .encode();
                self.push_control((ControlTarget::Station(sender), reply, busy));
            }
            if header.flags.contains(Flags::TRACE_REQUESTED) {
                self.trace(
                    header,
                    TraceEvent::Busy,
                    Reason::Busy as u16,
                    0,
                    depth as u32,
                );
            }
            return;
        }
        let payload = self.pooled_copy(payload);
        let state = self.ports.entry(port).or_default();
        state.queue.push_back(Inbound {
            header: *header,
            payload,
            received_at: self.now,
            ack: ack_required.then_some((sender, epoch, seq, as_id)),
            expires_cycle: 0,
        });
        list_ready(&mut self.ready_ports, port, state);
        if ack_required {
            if let Some(window) = self.window_for(sender, as_id, epoch, seq) {
                window.accept(seq);
            }
        }
        if header.flags.contains(Flags::TRACE_REQUESTED) {
            self.trace(header, TraceEvent::Claimed, 0, 0, depth as u32 + 1);
        }
    }

    fn send_nack(&mut self, header: &Header, reason: Reason, as_id: u32) {
        self.stats.nacks_sent += 1;
        let reply = Header {
            sequence: (header.request_id >> 32) as u32,
            request_id: header.request_id,
            route_id: header.route_id,
            ..self.reply_header(header.lane, PacketType::Nack, header.sender_id, as_id)
        };
        let nack = Nack {
            seq: header.sequence,
            reason,
        }
        .encode();
        self.push_control((ControlTarget::Station(header.sender_id), reply, nack));
    }

    fn handle_ack(&mut self, header: &Header, payload: &[u8]) {
        let Ok(seqs) = AckList::decode_seqs(payload) else {
            self.stats.control_malformed += 1;
            return;
        };
        if !self.known_epochs.contains(&header.sequence) {
            return; // An ACK for a channel of an earlier incarnation of this station.
        }
        let destination = header.sender_id;
        for seq in seqs {
            self.resolve_acked(destination, seq);
        }
        self.admit_backlog(destination);
    }

    fn resolve_acked(&mut self, destination: u32, seq: u32) {
        let now = self.now;
        let (rto_min, rto_max) = (self.config.rto_min, self.config.rto_max);
        let Some(channel) = self.channels.get_mut(&destination) else {
            return;
        };
        let Some(pending) = channel
            .pending
            .remove(seq)
            .and_then(|slot| self.pendings.remove(slot))
        else {
            return; // Stale or duplicate ACK: the message is finished already.
        };
        if pending.in_ready {
            channel.ready.retain(|r| r.seq != seq);
        }
        // Karn's rule: only unambiguous samples (one transmission) update the estimate.
        if pending.attempts == 1 {
            if let Some(sent) = pending.last_sent {
                let sample = now.saturating_since(sent);
                update_rtt(channel, sample, rto_min, rto_max);
            }
        }
        self.outbox_len -= 1;
        self.stats.acked += 1;
        if pending.header.flags.contains(Flags::TRACE_REQUESTED) {
            let header = pending.header;
            self.trace(&header, TraceEvent::Done, 0, 0, 0);
        }
        self.push_event(Event::Delivered {
            request_id: pending.header.request_id,
            destination,
            from_port: pending.header.sender_port,
        });
        self.recycle_payload(pending.payload);
    }

    fn handle_nack(&mut self, header: &Header, payload: &[u8]) {
        let Ok(nack) = Nack::decode(payload) else {
            self.stats.control_malformed += 1;
            return;
        };
        if !self.known_epochs.contains(&header.sequence) {
            return;
        }
        self.dead_letter(header.sender_id, nack.seq, nack.reason);
    }

    fn handle_busy(&mut self, header: &Header, payload: &[u8]) {
        let Ok(busy) = Busy::decode(payload) else {
            self.stats.control_malformed += 1;
            return;
        };
        if !self.known_epochs.contains(&header.sequence) {
            return;
        }
        self.stats.busy_received += 1;
        let now = self.now;
        let rto_max = self.config.rto_max;
        let Some(channel) = self.channels.get_mut(&header.sender_id) else {
            return;
        };
        let rto = channel.rto;
        let Some(pending) = channel
            .pending
            .get(busy.seq)
            .and_then(|slot| self.pendings.get_mut(slot))
        else {
            return;
        };
        // BUSY does not count as a lost attempt: give the attempt back, back off longer.
        pending.attempts = pending.attempts.saturating_sub(1);
        pending.busy = pending.busy.saturating_add(1);
        let backoff = rto
            .saturating_mul(1u64 << pending.busy.min(10))
            .min(rto_max);
        // Full jitter over [backoff/2, backoff * 3/2): senders turned away together must not
        // come back together (a thundering herd would be turned away again).
        let half = backoff.as_nanos() / 2;
        let wait = Duration::from_nanos(half + self.rng.below(backoff.as_nanos().max(1)));
        // Rearm: the timer of the previous transmission is now stale.
        pending.timer_gen = pending.timer_gen.wrapping_add(1);
        let marker = pending.timer_gen;
        self.timers
            .push((now + wait, header.sender_id, busy.seq, marker));
    }

    fn handle_control(&mut self, header: &Header, payload: &[u8], as_id: u32) {
        if header.recipient_port == registry::TRACE_REPORT {
            match TraceReport::decode(payload) {
                Ok(report) => {
                    if let Some(collector) = self.collector.as_mut() {
                        collector.add(header.route_id, header.request_id, report);
                    }
                }
                Err(_) => self.stats.control_malformed += 1,
            }
            return;
        }
        // Other control traffic for a served port is delivered like data, without ACK.
        let mut data = *header;
        data.flags = data.flags.without(Flags::ACK_REQUIRED);
        self.handle_data(&data, payload, as_id);
    }

    fn handle_stream(&mut self, header: &Header, payload: &[u8]) {
        let port = header.recipient_port;
        let key = (header.sender_id, header.request_id, port);
        self.token_stamp += 1;
        let stamp = self.token_stamp;
        // One lookup for a stream already heard (nearly every frame).
        let admitted = match self.token_caches.get_mut(&key) {
            Some((cache, touched)) => {
                *touched = stamp;
                cache.admit(header.sequence)
            }
            None => {
                if self.token_caches.len() >= self.config.stream_cache_tokens * 16 {
                    // Forget the stream heard from longest ago. Clearing every cache instead
                    // made all live streams forget which frames they had delivered whenever one
                    // new stream appeared, so a late or duplicated copy of any of them was
                    // delivered again.
                    let oldest = self
                        .token_caches
                        .iter()
                        .min_by_key(|(_, (_, touched))| *touched)
                        .map(|(&k, _)| k);
                    if let Some(oldest) = oldest {
                        self.token_caches.remove(&oldest);
                        self.stats.stream_caches_evicted += 1;
                    }
                }
                let mut cache = TokenCache::default();
                let admitted = cache.admit(header.sequence);
                self.token_caches.insert(key, (cache, stamp));
                admitted
            }
        };
        if !admitted {
            self.stats.stream_duplicates += 1;
            return;
        }
        if !self.ports.get(&port).is_some_and(|s| s.subscribed) {
            return;
        }
        let frames_max = self.config.stream_queue_capacity;
        let bytes_max = self.config.stream_queue_bytes;
        let inbound = Inbound {
            header: *header,
            payload: self.stream_pool.copy_of(payload),
            received_at: self.now,
            ack: None,
            expires_cycle: self.cycle + u64::from(header.lifetime),
        };
        let Some(state) = self.ports.get_mut(&port) else {
            return;
        };
        // A slow receiver loses its oldest frames; it never blocks anyone.
        let pool = &mut self.stream_pool;
        let pool_max = self.config.stream_queue_bytes;
        let dropped = state.streams.push_back(
            inbound,
            frame_charge(payload.len()),
            frames_max,
            bytes_max,
            |old: Inbound| pool.give(old.payload, pool_max),
        );
        self.stats.stream_overrun += dropped as u64;
        list_ready(&mut self.ready_ports, port, state);
    }

    fn transmit_streams(&mut self, budget: usize) -> usize {
        let mut sent = 0;
        let cycle = self.cycle;
        while sent < budget {
            let Some(copy) = self.stream_out.pop_front() else {
                break;
            };
            // A copy that would leave with lifetime 1 can be delivered nowhere (a receiver
            // needs 2, a relay forwards only from 2): it expires here instead of costing the
            // link and the receiver (`Stream-v1.md` §3 rule 1).
            if copy.expires_cycle <= cycle + 1 {
                self.stats.stream_expired += 1;
                self.recycle_stream_payload(copy.payload);
                continue;
            }
            let mut header = copy.header;
            header.lifetime = (copy.expires_cycle - cycle).min(255) as u8;
            let _ = copy.forwarded;
            if self.encode_to(copy.link, &header, &copy.payload) {
                self.stats.stream_sent += 1;
            }
            self.recycle_stream_payload(copy.payload);
            sent += 1;
        }
        sent
    }

    // ----------------------------------------------------------------------------------------
    // Trace
    // ----------------------------------------------------------------------------------------

    fn trace(
        &mut self,
        header: &Header,
        event: TraceEvent,
        reason: u16,
        next_hop: u32,
        depth: u32,
    ) {
        if self.trace_out.len() >= self.config.trace_queue_capacity {
            self.stats.trace_dropped += 1;
            return;
        }
        self.trace_out.push_back((
            header.route_id,
            header.request_id,
            TraceReport {
                event,
                packet_type: header.packet_type,
                reason,
                traced_sender: header.sender_id,
                node: self.config.station_id,
                next_hop,
                queue_depth: depth,
                timestamp_ns: self.now.as_nanos(),
            },
        ));
    }

    fn emit_trace(&mut self, route_id: u32, request_id: u64, report: TraceReport) -> bool {
        let me = self.config.station_id;
        let collector = if self.collector.is_some() {
            Some(me)
        } else {
            self.topology
                .servers_of(registry::TRACE_REPORT)
                .first()
                .map(|&(id, _)| id)
        };
        let Some(collector) = collector else {
            self.stats.trace_dropped += 1;
            return false;
        };
        self.stats.trace_reports += 1;
        let header = Header {
            recipient_kind: RecipientKind::Service,
            recipient_id: collector,
            recipient_port: registry::TRACE_REPORT,
            sender_id: me,
            route_id,
            request_id,
            hop_limit: self.config.hop_limit,
            ..Header::new(Lane::Fast, PacketType::Control)
        };
        if collector == me {
            if let Some(c) = self.collector.as_mut() {
                c.add(route_id, request_id, report);
            }
            return true;
        }
        self.emit(ControlTarget::Station(collector), &header, &report.encode())
    }

    // ----------------------------------------------------------------------------------------
    // Bulk lane
    // ----------------------------------------------------------------------------------------

    fn bulk_rto(&self) -> Duration {
        self.config.rto_initial.max(self.config.rto_min)
    }

    fn io_request(&mut self, wait: IoWait, make: impl FnOnce(IoId) -> IoRequest) -> IoId {
        let id = self.io_next;
        self.io_next += 1;
        self.io_pending.insert(id, wait);
        self.io_out.push_back(make(id));
        id
    }

    fn bulk_header(
        &mut self,
        packet_type: PacketType,
        to: u32,
        transfer: u64,
        port: u16,
        from: u32,
    ) -> Header {
        Header {
            recipient_port: port,
            request_id: transfer,
            ..self.reply_header(Lane::Bulk, packet_type, to, from)
        }
    }

    fn bulk_timers(&mut self) -> usize {
        let now = self.now;
        let rto = self.bulk_rto();
        let attempts_max = self.config.attempts_max;
        let mut work = 0;
        let ids: Vec<u64> = self.out_transfers.keys().copied().collect();
        for id in ids {
            let t = self.out_transfers.get_mut(&id).expect("listed");
            match t.state {
                OutState::Done | OutState::Failed => continue,
                OutState::Offering | OutState::Finishing => {
                    let due = t
                        .offer_sent_at
                        .is_none_or(|at| now.saturating_since(at) >= rto);
                    if !due {
                        continue;
                    }
                    if t.state == OutState::Offering && t.acked.count() == 0 {
                        // No map yet: cut the segments to the path as it is now (a UDP
                        // first hop carries smaller frames than TCP).
                        let destination = t.destination;
                        let fit = self.path_segment_len(destination);
                        let t = self.out_transfers.get_mut(&id).expect("listed");
                        if fit != t.offer.segment_len {
                            if let Some(count) = BulkOffer::segments_for(t.offer.object_len, fit) {
                                t.offer.segment_len = fit;
                                t.offer.segment_count = count;
                                t.acked = SegmentSet::new(count);
                            }
                        }
                    }
                    let t = self.out_transfers.get_mut(&id).expect("listed");
                    if t.offer_sent_at.is_some() {
                        t.stalls += 1;
                    }
                    if t.stalls > attempts_max.saturating_mul(2) {
                        self.fail_transfer(id, Reason::Timeout);
                        continue;
                    }
                    t.offer_sent_at = Some(now);
                    let (dest, port, payload) = (t.destination, t.port, t.offer.encode());
                    let me = self.config.station_id;
                    let header = self.bulk_header(PacketType::Control, dest, id, port, me);
                    self.push_control((ControlTarget::Station(dest), header, payload));
                    work += 1;
                }
                OutState::Sending => {
                    if now.saturating_since(t.last_progress) < rto {
                        continue;
                    }
                    // No progress for an RTO: resend what is in flight, from memory.
                    t.stalls += 1;
                    t.last_progress = now;
                    if t.stalls > attempts_max.saturating_mul(2) {
                        self.fail_transfer(id, Reason::Timeout);
                        continue;
                    }
                    for f in t.in_flight.values_mut() {
                        if f.sent_at.is_some() {
                            f.sent_at = None;
                            self.stats.bulk_segments_resent += 1;
                        }
                    }
                    // Ask for the map again too: it may be the map that was lost.
                    t.offer_sent_at = Some(now);
                    let (dest, port, payload) = (t.destination, t.port, t.offer.encode());
                    let me = self.config.station_id;
                    let header = self.bulk_header(PacketType::Control, dest, id, port, me);
                    self.push_control((ControlTarget::Station(dest), header, payload));
                    work += 1;
                }
            }
        }
        work
    }

    fn fail_transfer(&mut self, id: u64, reason: Reason) {
        if let Some(t) = self.out_transfers.get_mut(&id) {
            if matches!(t.state, OutState::Done | OutState::Failed) {
                return;
            }
            t.state = OutState::Failed;
            t.in_flight.clear();
            self.stats.bulk_failed += 1;
            self.push_event(Event::BulkFailed {
                transfer: id,
                reason,
            });
        }
    }

    /// Sender: fill the window with source reads, then send ready segments, round-robin
    /// between transfers (at most `consecutive_per_recipient_max` segments each per round).
    fn transmit_bulk(&mut self, budget: usize) -> usize {
        let window = self.config.bulk_window as usize;
        let quantum = self.config.consecutive_per_recipient_max as usize;
        let mut ids: Vec<u64> = self
            .out_transfers
            .iter()
            .filter(|(_, t)| t.state == OutState::Sending)
            .map(|(&id, _)| id)
            .collect();
        if ids.is_empty() {
            return 0;
        }
        let split = ids.partition_point(|&id| id < self.transfer_cursor);
        ids.rotate_left(split);
        self.transfer_cursor = ids[0].wrapping_add(1);
        // Refill windows with reads.
        for &id in &ids {
            loop {
                let t = self.out_transfers.get_mut(&id).expect("listed");
                if t.in_flight.len() >= window {
                    break;
                }
                let Some(segment) = next_unsent(t) else {
                    break;
                };
                t.cursor = segment + 1;
                t.in_flight.insert(
                    segment,
                    InFlight {
                        data: None,
                        sent_at: None,
                    },
                );
                let offset = u64::from(segment) * u64::from(t.offer.segment_len);
                let len = t.segment_bytes(segment);
                self.io_request(IoWait::Read(id, segment), |io| IoRequest::SourceRead {
                    id: io,
                    transfer: id,
                    offset,
                    len,
                });
            }
        }
        let mut sent = 0;
        let mut progress = true;
        while progress && sent < budget {
            progress = false;
            for &id in &ids {
                let mut n = 0;
                while n < quantum && sent < budget {
                    if !self.transmit_segment(id) {
                        break;
                    }
                    n += 1;
                    sent += 1;
                }
                progress |= n > 0;
            }
        }
        sent
    }

    fn transmit_segment(&mut self, id: u64) -> bool {
        let now = self.now;
        let me = self.config.station_id;
        let hop_limit = self.config.hop_limit;
        let Some(t) = self.out_transfers.get_mut(&id) else {
            return false;
        };
        let Some((&segment, flight)) = t
            .in_flight
            .iter_mut()
            .find(|(_, f)| f.data.is_some() && f.sent_at.is_none())
        else {
            return false;
        };
        flight.sent_at = Some(now);
        let data = flight.data.take().expect("checked");
        let header = Header {
            lane: Lane::Bulk,
            packet_type: PacketType::Data,
            recipient_kind: RecipientKind::Station,
            flags: if segment + 1 == t.offer.segment_count {
                Flags::ACK_REQUIRED | Flags::FINAL
            } else {
                Flags::ACK_REQUIRED
            },
            sender_id: me,
            recipient_id: t.destination,
            recipient_port: t.port,
            sender_port: t.from_port,
            route_id: 0,
            request_id: id,
            sequence: 0,
            attempt: 0,
            hop_limit,
            lifetime: 0,
            priority: 0,
            segment: Some(Segment {
                index: segment,
                count: t.offer.segment_count,
                offset: u64::from(segment) * u64::from(t.offer.segment_len),
            }),
        };
        let destination = t.destination;
        let link = if destination == me {
            Some(LOOPBACK)
        } else {
            self.next_hop_link(destination)
        };
        // Only segments handed to a link count as sent; without a route the segment waits for
        // the stall timer like a lost one.
        match link {
            Some(link) if self.encode_to(link, &header, &data) => {
                self.stats.bulk_segments_sent += 1
            }
            Some(_) => {}
            None => self.stats.no_route += 1,
        }
        if let Some(f) = self
            .out_transfers
            .get_mut(&id)
            .and_then(|t| t.in_flight.get_mut(&segment))
        {
            f.data = Some(data);
        }
        true
    }

    fn io_read(&mut self, transfer: u64, segment: u32, outcome: IoOutcome) {
        let Some(t) = self.out_transfers.get_mut(&transfer) else {
            return;
        };
        match outcome {
            IoOutcome::Read(data) if data.len() == t.segment_bytes(segment) as usize => {
                if let Some(f) = t.in_flight.get_mut(&segment) {
                    f.data = Some(data);
                }
            }
            _ => self.fail_transfer(transfer, Reason::StorageFailed),
        }
    }

    fn handle_bulk_map(&mut self, header: &Header, payload: &[u8]) {
        let Ok(map) = SegmentMap::decode(payload) else {
            self.stats.control_malformed += 1;
            return;
        };
        let now = self.now;
        let id = header.request_id;
        let Some(t) = self.out_transfers.get_mut(&id) else {
            return;
        };
        if t.destination != header.sender_id || matches!(t.state, OutState::Done | OutState::Failed)
        {
            return;
        }
        let before = t.acked.count();
        t.acked.merge_map(&map);
        let gained = t.acked.count() > before;
        if gained {
            t.last_progress = now;
            t.stalls = 0;
        }
        let acked = &t.acked;
        t.in_flight.retain(|s, _| !acked.contains(*s));
        t.bytes_acked = acked_bytes(t);
        if t.state == OutState::Offering {
            t.state = OutState::Sending;
            t.last_progress = now;
            t.cursor = 0;
            // What the receiver held before (an interrupted earlier transfer of the object)
            // moved at another time: the rate counts only what moves from now on.
            t.bytes_resumed = t.bytes_acked;
            t.sending_since = Some(now);
        }
        if map.complete {
            if t.acked.is_full() {
                t.state = OutState::Done;
                t.bytes_acked = t.offer.object_len;
                self.stats.bulk_sent += 1;
                let progress = self.progress_of(&self.out_transfers[&id]);
                self.push_event(Event::BulkProgress(progress));
                self.push_event(Event::BulkSent { transfer: id });
            }
            return;
        }
        if t.acked.is_full() && t.state == OutState::Sending {
            t.state = OutState::Finishing;
            t.offer_sent_at = Some(now);
        }
        let report =
            gained && now.saturating_since(t.progress_reported_at) >= Duration::from_millis(100);
        if report {
            t.progress_reported_at = now;
            let progress = self.progress_of(&self.out_transfers[&id]);
            self.push_event(Event::BulkProgress(progress));
        }
    }

    fn handle_bulk_nack(&mut self, header: &Header, payload: &[u8]) {
        match Nack::decode(payload) {
            Ok(nack) => {
                if self
                    .out_transfers
                    .get(&header.request_id)
                    .is_some_and(|t| t.destination == header.sender_id)
                {
                    self.fail_transfer(header.request_id, nack.reason);
                }
            }
            Err(_) => self.stats.control_malformed += 1,
        }
    }

    fn handle_bulk_busy(&mut self, header: &Header) {
        self.stats.busy_received += 1;
        if let Some(t) = self.out_transfers.get_mut(&header.request_id) {
            // The receiver has no room for another transfer now: offer again after an RTO.
            t.offer_sent_at = Some(self.now);
        }
    }

    /// Receiver: an offer opens (or resumes) a transfer, or asks again for its map.
    fn handle_bulk_offer(&mut self, header: &Header, payload: &[u8], as_id: u32) {
        let offer = match BulkOffer::decode(payload) {
            Ok(offer) => offer,
            Err(_) => {
                self.stats.control_malformed += 1;
                return;
            }
        };
        let sender = header.sender_id;
        let key = spool_key(sender, &offer);
        let active = self
            .in_transfers
            .values()
            .filter(|t| !matches!(t.state, InState::Complete | InState::Failed))
            .count();
        if let Some(t) = self.in_transfers.get_mut(&key) {
            if t.state == InState::Failed && active >= self.config.transfers_max {
                // Reopening a failed transfer makes it active again: it needs room like a
                // new one. Reopening regardless let more than `transfers_max` transfers be
                // active at once (simulator seed 1021831, full scale).
                self.busy_offer(header, active, as_id);
                return;
            }
            t.transfer = header.request_id;
            t.map_due = true;
            t.touched_at = self.now;
            if t.state == InState::Failed {
                t.state = InState::Opening;
                let (len, seg_len, count) = (
                    t.offer.object_len,
                    t.offer.segment_len,
                    t.offer.segment_count,
                );
                let k = key.clone();
                self.io_request(IoWait::Open(key.clone()), move |id| IoRequest::SpoolOpen {
                    id,
                    key: k,
                    len,
                    segment_len: seg_len,
                    segment_count: count,
                });
            }
            self.in_transfer_ids
                .insert((sender, header.request_id), key);
            return;
        }
        let port = header.recipient_port;
        if self.ports.get(&port).is_none_or(|p| p.service.is_none()) {
            let h = Header {
                request_id: header.request_id,
                ..*header
            };
            self.send_nack(&h, Reason::NoSuchPort, as_id);
            return;
        }
        if offer.segment_len > self.config.payload_len_max {
            self.send_nack(header, Reason::TooLarge, as_id);
            return;
        }
        if active >= self.config.transfers_max {
            self.busy_offer(header, active, as_id);
            return;
        }
        self.evict_finished_transfers();
        let (len, seg_len, count) = (offer.object_len, offer.segment_len, offer.segment_count);
        self.in_transfers.insert(
            key.clone(),
            InTransfer {
                sender,
                transfer: header.request_id,
                port,
                sender_port: header.sender_port,
                stored: SegmentSet::new(offer.segment_count),
                offer,
                key: key.clone(),
                state: InState::Opening,
                writing: BTreeMap::new(),
                map_due: false,
                touched_at: self.now,
                trace: header.flags.contains(Flags::TRACE_REQUESTED),
                as_id,
            },
        );
        self.in_transfer_ids
            .insert((sender, header.request_id), key.clone());
        let k = key.clone();
        self.io_request(IoWait::Open(key), move |id| IoRequest::SpoolOpen {
            id,
            key: k,
            len,
            segment_len: seg_len,
            segment_count: count,
        });
    }

    /// Answers an offer BUSY: `active` transfers already use every slot.
    fn busy_offer(&mut self, header: &Header, active: usize, as_id: u32) {
        self.stats.busy_sent += 1;
        let sender = header.sender_id;
        let reply = self.bulk_header(
            PacketType::Busy,
            sender,
            header.request_id,
            header.sender_port,
            as_id,
        );
        let busy = Busy {
            seq: 0,
            queue_depth: active as u32,
        }
        .encode();
        self.push_control((ControlTarget::Station(sender), reply, busy));
    }

    fn evict_finished_transfers(&mut self) {
        let keep = self.config.transfers_max * 4;
        let mut finished: Vec<(Instant, String)> = self
            .in_transfers
            .iter()
            .filter(|(_, t)| matches!(t.state, InState::Complete | InState::Failed))
            .map(|(k, t)| (t.touched_at, k.clone()))
            .collect();
        if finished.len() <= keep {
            return;
        }
        finished.sort();
        for (_, key) in finished.iter().take(finished.len() - keep) {
            self.in_transfers.remove(key);
            self.in_transfer_ids.retain(|_, k| k != key);
        }
    }

    fn io_opened(&mut self, key: &str, outcome: IoOutcome) {
        let Some(t) = self.in_transfers.get_mut(key) else {
            return;
        };
        match outcome {
            IoOutcome::Opened { stored } => {
                t.stored.insert_ranges(&stored);
                t.state = InState::Receiving;
                t.map_due = true;
                self.maybe_finish(key);
            }
            IoOutcome::Failed(failure) => self.fail_inbound(key, failure),
            _ => self.fail_inbound(key, IoFailure::Io),
        }
    }

    fn handle_bulk_segment(&mut self, header: &Header, payload: &[u8]) {
        let Some(segment) = header.segment else {
            return;
        };
        let Some(key) = self
            .in_transfer_ids
            .get(&(header.sender_id, header.request_id))
            .cloned()
        else {
            return; // Segments before the offer was seen: the sender resends after the map.
        };
        let write_limit = self.config.bulk_window as usize * 2;
        let Some(t) = self.in_transfers.get_mut(&key) else {
            return;
        };
        t.touched_at = self.now;
        if matches!(t.state, InState::Complete | InState::Finishing)
            || t.stored.contains(segment.index)
        {
            t.map_due = true;
            return;
        }
        if t.state != InState::Receiving
            || t.writing.contains_key(&segment.index)
            || t.writing.len() >= write_limit
            || segment.count != t.offer.segment_count
            || segment.offset != u64::from(segment.index) * u64::from(t.offer.segment_len)
        {
            return;
        }
        let expected = {
            let rest = t.offer.object_len.saturating_sub(segment.offset);
            rest.min(u64::from(t.offer.segment_len)) as usize
        };
        if payload.len() != expected {
            self.stats.control_malformed += 1;
            return;
        }
        let k = key.clone();
        let data = payload.to_vec();
        let offset = segment.offset;
        let index = segment.index;
        let io = self.io_request(IoWait::Write(key.clone(), index), move |id| {
            IoRequest::SpoolWrite {
                id,
                key: k,
                segment: index,
                offset,
                data,
            }
        });
        if let Some(t) = self.in_transfers.get_mut(&key) {
            t.writing.insert(index, io);
        }
    }

    fn io_written(&mut self, key: &str, segment: u32, io: IoId, outcome: IoOutcome) {
        let Some(t) = self.in_transfers.get_mut(key) else {
            return;
        };
        if t.writing.get(&segment) == Some(&io) {
            t.writing.remove(&segment);
        }
        match outcome {
            IoOutcome::Written => {
                if t.stored.insert(segment) {
                    self.stats.bulk_segments_stored += 1;
                }
                t.map_due = true;
                self.maybe_finish(key);
            }
            IoOutcome::Failed(failure) => self.fail_inbound(key, failure),
            _ => self.fail_inbound(key, IoFailure::Io),
        }
    }

    fn maybe_finish(&mut self, key: &str) {
        let Some(t) = self.in_transfers.get_mut(key) else {
            return;
        };
        if t.state == InState::Receiving && t.stored.is_full() && t.writing.is_empty() {
            t.state = InState::Finishing;
            let crc = t.offer.object_crc32c;
            let k = key.to_owned();
            self.io_request(IoWait::Finish(key.to_owned()), move |id| {
                IoRequest::SpoolFinish {
                    id,
                    key: k,
                    crc32c: crc,
                }
            });
        }
    }

    fn io_finished(&mut self, key: &str, outcome: IoOutcome) {
        let Some(t) = self.in_transfers.get_mut(key) else {
            return;
        };
        match outcome {
            IoOutcome::Finished => {
                t.state = InState::Complete;
                t.map_due = true;
                self.stats.bulk_received += 1;
                let done = BulkReceived {
                    sender: t.sender,
                    transfer: t.transfer,
                    name: t.offer.name.clone(),
                    len: t.offer.object_len,
                    spool_key: t.key.clone(),
                };
                let port = t.port;
                let state = self.ports.entry(port).or_default();
                state.bulk_done.push_back(done);
                list_ready(&mut self.ready_ports, port, state);
            }
            IoOutcome::Failed(failure) => self.fail_inbound(key, failure),
            _ => self.fail_inbound(key, IoFailure::Io),
        }
    }

    fn fail_inbound(&mut self, key: &str, failure: IoFailure) {
        let Some(t) = self.in_transfers.get_mut(key) else {
            return;
        };
        t.state = InState::Failed;
        t.writing.clear();
        let reason = match failure {
            IoFailure::CrcMismatch => {
                // Start over: nothing of it can be trusted.
                t.stored = SegmentSet::new(t.offer.segment_count);
                Reason::StorageFailed
            }
            _ => Reason::StorageFailed,
        };
        let (sender, transfer, port, as_id) = (t.sender, t.transfer, t.sender_port, t.as_id);
        let header = self.bulk_header(PacketType::Nack, sender, transfer, port, as_id);
        self.stats.nacks_sent += 1;
        let nack = Nack { seq: 0, reason }.encode();
        self.push_control((ControlTarget::Station(sender), header, nack));
    }

    fn queue_bulk_maps(&mut self) {
        let keys: Vec<String> = self
            .in_transfers
            .iter()
            .filter(|(_, t)| t.map_due)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let t = self.in_transfers.get_mut(&key).expect("listed");
            t.map_due = false;
            if t.state == InState::Opening || t.state == InState::Failed {
                continue;
            }
            let map = t.stored.to_map(t.state == InState::Complete);
            let (sender, transfer, port, as_id) = (t.sender, t.transfer, t.sender_port, t.as_id);
            let header = self.bulk_header(PacketType::Ack, sender, transfer, port, as_id);
            self.stats.acks_sent += 1;
            self.push_control((ControlTarget::Station(sender), header, map.encode()));
        }
    }
}

/// Bytes of `t`'s object the receiver has stored (the last segment may be short).
fn acked_bytes(t: &OutTransfer) -> u64 {
    let last = t.offer.segment_count - 1;
    let full = u64::from(t.acked.count()) * u64::from(t.offer.segment_len);
    if t.acked.contains(last) {
        full - u64::from(t.offer.segment_len - t.segment_bytes(last))
    } else {
        full
    }
}

fn next_unsent(t: &OutTransfer) -> Option<u32> {
    // Missing segments from the cursor to the end, then from the start up to the cursor; each
    // missing segment is looked at once, so the scan ends even when every missing segment is
    // in flight (simulator seed 25 looped forever here: the old scan restarted from 0 whenever
    // nothing was missing after the cursor, and never passed an in-flight hole below it).
    let cursor = t.cursor.min(t.offer.segment_count);
    let mut from = cursor;
    while let Some(segment) = t.acked.next_missing(from) {
        if !t.in_flight.contains_key(&segment) {
            return Some(segment);
        }
        from = segment + 1;
    }
    let mut from = 0;
    while let Some(segment) = t.acked.next_missing(from).filter(|&s| s < cursor) {
        if !t.in_flight.contains_key(&segment) {
            return Some(segment);
        }
        from = segment + 1;
    }
    None
}

/// Encodes a frame into `buffer` (resized to the frame's length).
fn encode_into(header: &Header, payload: &[u8], buffer: &mut Vec<u8>) -> Result<(), FrameError> {
    buffer.resize(frame::encoded_len(header, payload.len()), 0);
    frame::encode(header, payload, buffer).map(|_| ())
}

/// RFC 6298 estimator: SRTT and RTTVAR from samples, RTO = SRTT + 4 × RTTVAR, clamped.
fn update_rtt(channel: &mut SendChannel, sample: Duration, rto_min: Duration, rto_max: Duration) {
    let sample_ns = sample.as_nanos();
    match channel.srtt {
        None => {
            channel.srtt = Some(sample);
            channel.rttvar = Duration::from_nanos(sample_ns / 2);
        }
        Some(srtt) => {
            let srtt_ns = srtt.as_nanos();
            let delta = srtt_ns.abs_diff(sample_ns);
            channel.rttvar = Duration::from_nanos((3 * channel.rttvar.as_nanos() + delta) / 4);
            channel.srtt = Some(Duration::from_nanos((7 * srtt_ns + sample_ns) / 8));
        }
    }
    let srtt = channel.srtt.unwrap_or(sample);
    let rto = srtt + channel.rttvar.saturating_mul(4);
    channel.rto = rto.max(rto_min).min(rto_max);
}

impl core::fmt::Debug for Bus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bus")
            .field("station_id", &self.config.station_id)
            .field("cycle", &self.cycle)
            .field("links", &self.links.len())
            .field("outbox", &self.outbox_len)
            .finish()
    }
}

impl From<ControlError> for Reason {
    fn from(_: ControlError) -> Reason {
        Reason::Rejected
    }
}

#[cfg(test)]
mod ready_queue_tests {
    use super::*;

    /// The incremental counts of [`ReadyQueue`] against a recount, over random pushes, pops,
    /// moves to the front and removals.
    #[test]
    fn counts_match_a_recount() {
        let mut rng = Rng::new(9);
        let mut queue = ReadyQueue::default();
        for seq in 0..5_000u32 {
            match rng.below(8) {
                0..=3 => queue.push_back(ReadyEntry {
                    seq,
                    queued_at: Instant::from_nanos(rng.below(50)),
                    priority: if rng.chance(1, 6) { 3 } else { 0 },
                    sender_port: 0,
                }),
                4 | 5 => {
                    queue.pop_front();
                }
                6 => {
                    let len = queue.len().max(1) as u64;
                    queue.move_to_front(rng.below(len) as usize);
                }
                _ => {
                    let drop = seq.wrapping_sub(rng.below(20) as u32);
                    queue.retain(|r| r.seq != drop);
                }
            }
            let entries: Vec<ReadyEntry> = queue.iter().copied().collect();
            let prioritized = entries.iter().filter(|r| r.priority != 0).count();
            let descents = entries.windows(2).filter(|w| descent(&w[0], &w[1])).count();
            assert_eq!((queue.prioritized, queue.descents), (prioritized, descents));
            if queue.front_ranks_first() {
                let oldest = entries.iter().map(|r| r.queued_at).min();
                assert_eq!(oldest, queue.front().map(|r| r.queued_at));
            }
        }
    }
}
