//! Counters of one bus: what the Reporter (port 2) publishes and what tests and the simulator
//! check. Every counter only grows.

macro_rules! stats {
    ($( $(#[$doc:meta])* $name:ident, )+) => {
        /// Counters of one bus.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: u64, )+
        }

        impl Stats {
            /// Every counter with its name, in a fixed order (the Reporter's wire order).
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name), )+]
            }

            /// Adds every counter of `other` (to aggregate shards or stations).
            pub fn add(&mut self, other: &Stats) {
                $( self.$name += other.$name; )+
            }
        }
    };
}

stats! {
    /// Cycles run.
    cycles,
    /// Cycles whose deliver or transmit budget ran out with work left.
    budget_overruns,
    /// Frames received (valid).
    frames_received,
    /// Bytes received in valid frames.
    bytes_received,
    /// Frames handed to links.
    frames_sent,
    /// Bytes handed to links.
    bytes_sent,
    /// Frames rejected by the decoder (malformed, checksum, oversize).
    frames_malformed,
    /// Control payloads rejected by their decoder.
    control_malformed,
    /// Messages delivered to handlers.
    delivered,
    /// Messages observed by tees.
    teed,
    /// ACK frames sent.
    acks_sent,
    /// Messages acknowledged by their recipients.
    acked,
    /// Retransmissions.
    retransmits,
    /// Messages dead-lettered.
    dead_lettered,
    /// Duplicates suppressed (not delivered again).
    duplicates,
    /// BUSY answers sent.
    busy_sent,
    /// BUSY answers received.
    busy_received,
    /// NACKs sent.
    nacks_sent,
    /// Frames forwarded for other stations.
    forwarded,
    /// Frames dropped: no route.
    no_route,
    /// Frames dropped: hop limit reached.
    hop_limit_drops,
    /// Frames dropped: a link queue was full.
    link_queue_drops,
    /// Frames for channels of forgotten incarnations.
    stale_epoch_drops,
    /// Fire-and-forget messages dropped because their port's queue was full.
    port_queue_drops,
    /// Sends refused because the outbox was full.
    outbox_full,
    /// Messages emitted by handlers, or posted with `Station::post`, that the bus refused
    /// (the per-cycle budget was spent, no server of the port, ...).
    emit_drops,
    /// Stream frames sent (copies).
    stream_sent,
    /// Stream frames delivered.
    stream_delivered,
    /// Stream frames dropped because their lifetime ran out.
    stream_expired,
    /// Stream frames dropped because a slow receiver's queue was full (oldest dropped).
    stream_overrun,
    /// Stream frames dropped as already seen.
    stream_duplicates,
    /// Bulk segments sent (including resends).
    bulk_segments_sent,
    /// Bulk segments resent.
    bulk_segments_resent,
    /// Bulk segments stored by this receiver.
    bulk_segments_stored,
    /// Bulk transfers completed as sender.
    bulk_sent,
    /// Bulk transfers completed as receiver.
    bulk_received,
    /// Bulk transfers failed.
    bulk_failed,
    /// Trace reports emitted.
    trace_reports,
    /// Trace reports dropped (queue full).
    trace_dropped,
    /// Events dropped because the event queue was full.
    events_dropped,
    /// Heartbeats sent.
    heartbeats_sent,
    /// Neighbours declared dead.
    peers_dead,
    /// Adverts accepted.
    adverts_accepted,
    /// Stream token caches forgotten to make room for a new stream (the stream heard from
    /// longest ago goes first); a late copy of that stream's frames is no longer recognised.
    stream_caches_evicted,
    /// Frames not handed to a link because they exceed its frame size (a UDP link's path
    /// MTU); bulk segments are cut to fit, so these are oversized fast or stream frames.
    frames_oversized,
    /// Frames a link's transport dropped before the bus saw them: malformed or oversized
    /// (what `ExternalLink::dropped` reports, summed over this station's links).
    link_frames_dropped,
    /// Links closed because their byte stream could not be framed (a TCP peer sent a length
    /// prefix out of bounds: the stream lost sync).
    link_framing_closes,
    /// Bulk segments the driver wrote to the spool with `O_DIRECT` (page cache bypassed).
    spool_writes_direct,
    /// Bulk segments written through the page cache (unaligned tail segments, file systems
    /// without `O_DIRECT`, or every aligned buffer in flight).
    spool_writes_buffered,
}

/// The Reporter's answer (port 2), decoded: every counter by name, then transfer progress as
/// `(transfer, bytes_done, bytes_total, rate_bytes_per_sec, eta_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Counters in the Reporter's order.
    pub counters: Vec<(String, u64)>,
    /// Outbound transfers.
    pub transfers: Vec<[u64; 5]>,
}

impl Report {
    /// The counter named `name`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Decodes the Reporter's payload:
    /// `count u16 | (name_len u8 | name | value u64) × count | n u16 | (5 × u64) × n`.
    pub fn decode(bytes: &[u8]) -> Result<Report, super::control::ControlError> {
        let mut r = super::control::Reader::new(bytes, "report");
        let count = r.count("report counters", 1024)?;
        let mut counters = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(r.u8()?);
            let name = core::str::from_utf8(r.bytes(len)?)
                .map_err(|_| super::control::ControlError::Invalid {
                    what: "report counter name",
                    value: 0,
                })?
                .to_owned();
            counters.push((name, r.u64()?));
        }
        let n = r.count("report transfers", 1024)?;
        let mut transfers = Vec::with_capacity(n);
        for _ in 0..n {
            transfers.push([r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?]);
        }
        r.finish()?;
        Ok(Report {
            counters,
            transfers,
        })
    }
}
