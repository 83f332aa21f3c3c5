//! Bus configuration: every bound, budget and timer, with the defaults of
//! `spec/model/SafariBus-v1.md`. Everything the bus allocates is sized from here at start-up.

use super::registry;
use super::time::Duration;

/// Configuration of one bus (one station shard).
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// This station's id. Must not be 0 (0 means "any" in service addressing).
    pub station_id: u32,
    /// Increases on every start without restored state; the top 32 bits of request ids, so ids
    /// never repeat across restarts. The runtime persists or derives it; the simulator counts.
    pub incarnation: u32,
    /// Seed of the bus's PRNG (jitter, load spreading) and of its hash maps' keys. Defaults
    /// to the station id; a `Station` left at that default reseeds from the OS, a simulator
    /// sets it to replay a run.
    pub seed: u64,

    /// Messages delivered to handlers per cycle at most.
    pub deliver_budget: usize,
    /// The transmit budget of one cycle: control frames up to this many, and data frames up to
    /// `100 - control_reserve_percent` percent of it, counted separately
    /// (`spec/model/Cycle-v1.md` §3.8); also the handler emits accepted per cycle.
    pub transmit_budget: usize,
    /// At most this many consecutive frames to one recipient while others wait (default 10).
    pub consecutive_per_recipient_max: u32,
    /// At most this share (percent) of a cycle's budget for one service while others wait (80).
    pub service_share_percent: u32,
    /// Share (percent) of each cycle's transmit budget reserved for control traffic (20).
    pub control_reserve_percent: u32,

    /// Inbound queue capacity per served port; a full queue answers BUSY.
    pub port_queue_capacity: usize,
    /// ACK-required messages awaiting ACK, over all destinations.
    pub outbox_capacity: usize,
    /// Unresolved ACK-required messages per destination station (the channel window). At most
    /// [`super::dedup::WINDOW`].
    pub channel_window: u32,
    /// Frames waiting for transmission on one link.
    pub link_queue_capacity: usize,
    /// Largest payload accepted or sent.
    pub payload_len_max: u32,

    /// First retransmission timeout before any RTT sample.
    pub rto_initial: Duration,
    /// Lower bound of the adaptive retransmission timeout.
    pub rto_min: Duration,
    /// Upper bound of the retransmission timeout after backoff.
    pub rto_max: Duration,
    /// Transmission attempts before a message is dead-lettered.
    pub attempts_max: u8,
    /// BUSY answers tolerated before a message is dead-lettered.
    pub busy_max: u8,

    /// Send a heartbeat on a link idle this long.
    pub heartbeat_interval: Duration,
    /// Declare a neighbour dead after this much silence.
    pub dead_after: Duration,
    /// Re-flood this station's advert at this interval.
    pub advert_interval: Duration,
    /// Forget a station whose advert was not refreshed for this long.
    pub advert_ttl: Duration,
    /// Stations tracked in the topology at most.
    pub stations_max: usize,
    /// Initial hop limit of originated frames.
    pub hop_limit: u8,

    /// Default stream lifetime in cycles (3 to 5 per the seed).
    pub stream_lifetime: u8,
    /// Bounds the streams a receiver keeps a token cache for: at most 16 × this many, after
    /// which every cache is cleared. Tokens per stream are [`super::streams::TOKENS`].
    pub stream_cache_tokens: usize,
    /// Stream frames queued per subscribed port at most (default 65,536); the oldest are
    /// dropped when full (`stream_overrun`). The outbound stream queue holds at most 64 × this
    /// many copies. In practice [`BusConfig::stream_queue_bytes`] bounds small frames first.
    pub stream_queue_capacity: usize,
    /// Bytes of stream frames queued per subscribed port at most (default 4 MiB): each frame is
    /// charged its payload plus [`super::streams::FRAME_OVERHEAD`]; the oldest frames are
    /// dropped to make room (`stream_overrun`). Large enough for what a link brings between
    /// two cycles at full speed; memory per subscribed port is bounded by it.
    pub stream_queue_bytes: usize,
    /// Bytes of outbound stream copies waiting for the commit phase at most (default 16 MiB),
    /// charged as in [`BusConfig::stream_queue_bytes`]; the oldest copies are dropped
    /// (`stream_overrun`) when an application publishes faster than the transmit budget.
    pub stream_out_bytes: usize,

    /// Bulk segment payload size in bytes.
    pub segment_len: u32,
    /// Bulk segments in flight per transfer.
    pub bulk_window: u32,
    /// Concurrent bulk transfers (each direction).
    pub transfers_max: usize,

    /// Trace reports queued at most; extra reports are dropped and counted.
    pub trace_queue_capacity: usize,
    /// Priority rises by one for every this much waiting (priority aging).
    pub aging_step: Duration,
    /// Fallback for a request to an unserved language port (101–1000).
    pub language_fallback: Option<u16>,
    /// Reserved; the v1 bus does not use it.
    pub delivered_log_capacity: usize,
    /// Hold every ACK-required message until the driver has journaled it
    /// ([`super::bus::Bus::take_journal`], then [`super::bus::Bus::journaled`]).
    pub durable_outbox: bool,
    /// Shards (cores) of this station; 1 when the station runs on one core.
    pub shards: u32,
    /// This bus's shard index (0 owns the station's public id and its network links).
    pub shard_index: u32,
    /// The station's public id when this bus is a shard with an id of its own (0: none).
    /// Frames addressed to it are accepted, and answered as it.
    pub alias: u32,
}

/// The shard that owns `port` on a station with `shards` shards: a pure function, so every
/// shard (and every test) computes the same owner. System ports (0–10) and the client port
/// (65535, where the Station API's own sends and their replies live) stay on shard 0.
pub const fn shard_of(port: u16, shards: u32) -> u32 {
    if shards <= 1 || port <= 10 || port == u16::MAX {
        0
    } else {
        port as u32 % shards
    }
}

/// The station id of shard `index` of the station whose public id is `base` (< 2^24).
pub const fn shard_station(base: u32, index: u32) -> u32 {
    base | (index << 24)
}

impl BusConfig {
    /// The defaults for station `station_id`.
    pub fn new(station_id: u32) -> BusConfig {
        assert!(station_id != 0, "station id 0 is reserved");
        BusConfig {
            station_id,
            incarnation: 1,
            seed: u64::from(station_id),
            deliver_budget: 4096,
            transmit_budget: 4096,
            consecutive_per_recipient_max: 10,
            service_share_percent: 80,
            control_reserve_percent: 20,
            port_queue_capacity: 1024,
            outbox_capacity: 65_536,
            channel_window: 512,
            link_queue_capacity: 8192,
            payload_len_max: super::wire::frame::PAYLOAD_LEN_MAX_DEFAULT,
            rto_initial: Duration::from_millis(200),
            rto_min: Duration::from_millis(5),
            rto_max: Duration::from_secs(2),
            attempts_max: 10,
            busy_max: 40,
            heartbeat_interval: Duration::from_millis(100),
            dead_after: Duration::from_millis(1_000),
            advert_interval: Duration::from_millis(500),
            advert_ttl: Duration::from_secs(3),
            stations_max: 4096,
            hop_limit: 16,
            stream_lifetime: 4,
            stream_cache_tokens: 256,
            stream_queue_capacity: 65_536,
            stream_queue_bytes: 4 << 20,
            stream_out_bytes: 16 << 20,
            segment_len: 64 * 1024,
            bulk_window: 32,
            transfers_max: 64,
            trace_queue_capacity: 1024,
            aging_step: Duration::from_millis(10),
            language_fallback: Some(registry::AI_TRANSLATE),
            delivered_log_capacity: 256,
            durable_outbox: false,
            shards: 1,
            shard_index: 0,
            alias: 0,
        }
    }

    /// Checks the relations between settings; the bus refuses to start otherwise.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.station_id == 0 {
            return Err("station_id must not be 0");
        }
        if self.channel_window == 0 || self.channel_window > super::dedup::WINDOW {
            return Err("channel_window must be in 1..=1024");
        }
        if self.service_share_percent == 0 || self.service_share_percent > 100 {
            return Err("service_share_percent must be in 1..=100");
        }
        if self.control_reserve_percent >= 100 {
            return Err("control_reserve_percent must be below 100");
        }
        if self.transmit_budget < 10 || self.deliver_budget == 0 {
            return Err("budgets too small");
        }
        if self.segment_len == 0 || self.segment_len > self.payload_len_max {
            return Err("segment_len must be in 1..=payload_len_max");
        }
        if self.bulk_window == 0 {
            return Err("bulk_window must be at least 1");
        }
        if self.attempts_max == 0 {
            return Err("attempts_max must be at least 1");
        }
        if self.rto_min > self.rto_max {
            return Err("rto_min must not exceed rto_max");
        }
        if self.dead_after <= self.heartbeat_interval {
            return Err("dead_after must exceed heartbeat_interval");
        }
        if self.shards > 1 && self.alias.max(self.station_id) >= 1 << 24 && self.shard_index == 0 {
            return Err("a station with several shards needs an id below 2^24");
        }
        if self.shard_index >= self.shards.max(1) {
            return Err("shard_index must be below shards");
        }
        if self.stream_lifetime == 0 {
            return Err("stream_lifetime must be at least 1");
        }
        Ok(())
    }

    /// The nominal time from a message's first transmission to its dead-letter by timeout: the
    /// sum of the backoffs at the initial RTO, without jitter or BUSY answers. Not an upper bound
    /// (an adapted RTO, jitter and BUSY lengthen it); see `spec/model/Reliability-v1.md` §5.6.
    pub fn retry_span(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut rto = self.rto_initial.max(self.rto_min);
        for _ in 0..self.attempts_max {
            total = total + rto;
            rto = rto.saturating_mul(2).min(self.rto_max);
        }
        total
    }
}
