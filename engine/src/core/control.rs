//! Payloads of the bus's own frames: ACK lists, NACK and BUSY answers, discovery adverts,
//! bulk offers and segment maps, trace reports and audit records. Layouts are in
//! `spec/model/SafariBus-v1.md` §8; all integers little-endian, every list length-prefixed
//! with a declared maximum, no trailing bytes. Decoders validate everything and never panic.

use super::wire::frame::PacketType;

/// Why a control payload is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The payload ends early.
    #[error("truncated {what}: needed {needed} bytes, had {had}")]
    Truncated {
        /// Which payload.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        had: usize,
    },
    /// A list is longer than its declared maximum.
    #[error("{what} has {count} entries, at most {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Entries declared.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// Bytes remain after the payload.
    #[error("{what} has {extra} trailing bytes")]
    Trailing {
        /// Which payload.
        what: &'static str,
        /// Extra bytes.
        extra: usize,
    },
    /// A field holds a value the spec does not define.
    #[error("{what} has invalid value {value}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u64,
    },
}

/// Bounds-checked little-endian reader over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, at: 0, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = &self.bytes[self.at..end];
                self.at = end;
                Ok(slice)
            }
            None => Err(ControlError::Truncated {
                what: self.what,
                needed: self.at.saturating_add(n),
                had: self.bytes.len(),
            }),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ControlError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ControlError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ControlError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ControlError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ControlError> {
        self.take(n)
    }

    /// A `u16` count checked against `max`.
    pub(crate) fn count(&mut self, list: &'static str, max: usize) -> Result<usize, ControlError> {
        let count = usize::from(self.u16()?);
        if count > max {
            return Err(ControlError::TooMany {
                what: list,
                count,
                max,
            });
        }
        Ok(count)
    }

    pub(crate) fn finish(self) -> Result<(), ControlError> {
        let extra = self.bytes.len() - self.at;
        if extra != 0 {
            return Err(ControlError::Trailing {
                what: self.what,
                extra,
            });
        }
        Ok(())
    }
}

/// Little-endian writer into a growable buffer (control paths only).
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// Most sequence numbers one ACK frame carries.
pub const ACK_SEQS_MAX: usize = 1024;

/// Fast-lane ACK payload: the channel sequence numbers being acknowledged.
///
/// ```text
/// count u16 | seq u32 × count
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckList {
    /// Acknowledged channel sequence numbers.
    pub seqs: Vec<u32>,
}

impl AckList {
    /// Encodes the list.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        AckList::encode_into(&self.seqs, &mut out);
        out
    }

    /// Appends the encoding of a list of `seqs` (at most [`ACK_SEQS_MAX`]) to `out`, without
    /// building an `AckList`: the bus encodes its ACKs into reused buffers.
    pub fn encode_into(seqs: &[u32], out: &mut Vec<u8>) {
        debug_assert!(seqs.len() <= ACK_SEQS_MAX);
        out.reserve(2 + 4 * seqs.len());
        out.extend_from_slice(&(seqs.len() as u16).to_le_bytes());
        for &seq in seqs {
            out.extend_from_slice(&seq.to_le_bytes());
        }
    }

    /// Decodes and validates a list.
    pub fn decode(bytes: &[u8]) -> Result<AckList, ControlError> {
        Ok(AckList {
            seqs: AckList::decode_seqs(bytes)?.collect(),
        })
    }

    /// Validates a list and returns its sequence numbers in order, without allocating.
    pub fn decode_seqs(bytes: &[u8]) -> Result<impl Iterator<Item = u32> + '_, ControlError> {
        let mut r = Reader::new(bytes, "ack list");
        let count = r.count("ack list", ACK_SEQS_MAX)?;
        for _ in 0..count {
            r.u32()?;
        }
        r.finish()?;
        Ok(bytes[2..2 + 4 * count]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }
}

/// Why a message was refused (NACK payload) or given up (audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Reason {
    /// No handler serves the port and no fallback applies.
    NoSuchPort = 1,
    /// The handler rejected the message.
    Rejected = 2,
    /// The payload exceeds the receiver's limit.
    TooLarge = 3,
    /// No route to the destination station.
    NoRoute = 4,
    /// The hop limit reached zero before the destination.
    HopLimit = 5,
    /// The receiver could not persist the data (disk full, write error).
    StorageFailed = 6,
    /// The attempt budget ran out without an ACK.
    Timeout = 7,
    /// The recipient answered BUSY too many times.
    Busy = 8,
    /// The transfer was cancelled.
    Cancelled = 9,
    /// The destination is not reachable (dead-man detection).
    PeerDead = 10,
}

impl Reason {
    /// The reason a code names.
    pub fn from_u16(code: u16) -> Result<Reason, ControlError> {
        Ok(match code {
            1 => Reason::NoSuchPort,
            2 => Reason::Rejected,
            3 => Reason::TooLarge,
            4 => Reason::NoRoute,
            5 => Reason::HopLimit,
            6 => Reason::StorageFailed,
            7 => Reason::Timeout,
            8 => Reason::Busy,
            9 => Reason::Cancelled,
            10 => Reason::PeerDead,
            other => {
                return Err(ControlError::Invalid {
                    what: "reason",
                    value: u64::from(other),
                });
            }
        })
    }
}

/// NACK payload: `seq u32 | reason u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack {
    /// The refused message's channel sequence number.
    pub seq: u32,
    /// Why.
    pub reason: Reason,
}

impl Nack {
    /// Encodes the NACK.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.seq).u16(self.reason as u16);
        w.bytes
    }

    /// Decodes and validates a NACK.
    pub fn decode(bytes: &[u8]) -> Result<Nack, ControlError> {
        let mut r = Reader::new(bytes, "nack");
        let seq = r.u32()?;
        let reason = Reason::from_u16(r.u16()?)?;
        r.finish()?;
        Ok(Nack { seq, reason })
    }
}

/// BUSY payload: `seq u32 | queue_depth u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The refused message's channel sequence number.
    pub seq: u32,
    /// Depth of the full queue, a hint for the back-off.
    pub queue_depth: u32,
}

impl Busy {
    /// Encodes the BUSY answer.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.seq).u32(self.queue_depth);
        w.bytes
    }

    /// Decodes and validates a BUSY answer.
    pub fn decode(bytes: &[u8]) -> Result<Busy, ControlError> {
        let mut r = Reader::new(bytes, "busy");
        let seq = r.u32()?;
        let queue_depth = r.u32()?;
        r.finish()?;
        Ok(Busy { seq, queue_depth })
    }
}

/// Most neighbours, ports, subscriptions or groups one advert lists (a station serving
/// 10,000 ports must still be discoverable; 16 Ki ports are 32 KiB of advert).
pub const ADVERT_LIST_MAX: usize = 16_384;

/// Discovery advert, flooded to every station (link-state):
///
/// ```text
/// incarnation u32 | seq u32 |
/// n u16 | neighbour u32 × n | n u16 | port u16 × n |
/// n u16 | stream port u16 × n | n u16 | group port u16 × n
/// ```
///
/// The origin is the frame's `sender_id`. `(incarnation, seq)` orders adverts of one origin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advert {
    /// The origin's incarnation.
    pub incarnation: u32,
    /// Advert sequence within the incarnation.
    pub seq: u32,
    /// Stations the origin has a live link to.
    pub neighbours: Vec<u32>,
    /// Ports the origin serves.
    pub ports: Vec<u16>,
    /// Stream ports the origin listens to.
    pub subscriptions: Vec<u16>,
    /// Group ports the origin is a member of.
    pub groups: Vec<u16>,
}

impl Advert {
    /// Encodes the advert.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.incarnation).u32(self.seq);
        w.u16(self.neighbours.len() as u16);
        self.neighbours.iter().for_each(|&n| {
            w.u32(n);
        });
        w.u16(self.ports.len() as u16);
        self.ports.iter().for_each(|&p| {
            w.u16(p);
        });
        w.u16(self.subscriptions.len() as u16);
        self.subscriptions.iter().for_each(|&p| {
            w.u16(p);
        });
        w.u16(self.groups.len() as u16);
        self.groups.iter().for_each(|&g| {
            w.u16(g);
        });
        w.bytes
    }

    /// Decodes and validates an advert.
    pub fn decode(bytes: &[u8]) -> Result<Advert, ControlError> {
        let mut r = Reader::new(bytes, "advert");
        let incarnation = r.u32()?;
        let seq = r.u32()?;
        let n = r.count("advert neighbours", ADVERT_LIST_MAX)?;
        let neighbours = (0..n).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
        let n = r.count("advert ports", ADVERT_LIST_MAX)?;
        let ports = (0..n).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
        let n = r.count("advert subscriptions", ADVERT_LIST_MAX)?;
        let subscriptions = (0..n).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
        let n = r.count("advert groups", ADVERT_LIST_MAX)?;
        let groups = (0..n).map(|_| r.u16()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(Advert {
            incarnation,
            seq,
            neighbours,
            ports,
            subscriptions,
            groups,
        })
    }
}

/// Longest object name in a bulk offer.
pub const OBJECT_NAME_LEN_MAX: usize = 255;

/// Bulk offer (bulk-lane CONTROL to the destination port; `request_id` is the transfer id):
///
/// ```text
/// object_len u64 | segment_len u32 | segment_count u32 | object_crc32c u32 |
/// name_len u16 | name (UTF-8, name_len bytes)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkOffer {
    /// Object size in bytes.
    pub object_len: u64,
    /// Segment payload size (the last segment may be shorter).
    pub segment_len: u32,
    /// Number of segments: `ceil(object_len / segment_len)`, at least 1.
    pub segment_count: u32,
    /// CRC32C of the whole object, checked by the receiver before the final ACK.
    pub object_crc32c: u32,
    /// Name of the object (file name or key), at most 255 bytes.
    pub name: String,
}

impl BulkOffer {
    /// Segments needed for `object_len` bytes in `segment_len` pieces (at least 1).
    pub fn segments_for(object_len: u64, segment_len: u32) -> Option<u32> {
        let count = object_len.div_ceil(u64::from(segment_len)).max(1);
        u32::try_from(count).ok()
    }

    /// Encodes the offer.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.name.len() <= OBJECT_NAME_LEN_MAX);
        let mut w = Writer::default();
        w.u64(self.object_len)
            .u32(self.segment_len)
            .u32(self.segment_count)
            .u32(self.object_crc32c)
            .u16(self.name.len() as u16);
        w.bytes.extend_from_slice(self.name.as_bytes());
        w.bytes
    }

    /// Decodes and validates an offer: the segment count must match the sizes.
    pub fn decode(bytes: &[u8]) -> Result<BulkOffer, ControlError> {
        let mut r = Reader::new(bytes, "bulk offer");
        let object_len = r.u64()?;
        let segment_len = r.u32()?;
        let segment_count = r.u32()?;
        let object_crc32c = r.u32()?;
        let name_len = r.count("bulk offer name", OBJECT_NAME_LEN_MAX)?;
        let name = core::str::from_utf8(r.bytes(name_len)?)
            .map_err(|_| ControlError::Invalid {
                what: "bulk offer name utf-8",
                value: 0,
            })?
            .to_owned();
        r.finish()?;
        if segment_len == 0 {
            return Err(ControlError::Invalid {
                what: "segment_len",
                value: 0,
            });
        }
        if BulkOffer::segments_for(object_len, segment_len) != Some(segment_count) {
            return Err(ControlError::Invalid {
                what: "segment_count",
                value: u64::from(segment_count),
            });
        }
        Ok(BulkOffer {
            object_len,
            segment_len,
            segment_count,
            object_crc32c,
            name,
        })
    }
}

/// Most ranges one segment map carries.
pub const SEGMENT_RANGES_MAX: usize = 256;

/// Bulk segment map (bulk-lane ACK; `request_id` is the transfer id): the selective,
/// multipart acknowledgement. Segments `< base` are durable; each range lists further
/// received segments. `complete` is set only once the whole object is durable and verified.
///
/// ```text
/// base u32 | complete u8 | n u16 | (start u32, len u32) × n
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentMap {
    /// Every segment below this index is stored.
    pub base: u32,
    /// The object is complete, verified and durable.
    pub complete: bool,
    /// Stored segments above `base`: `(first, count)`, ascending, disjoint, non-adjacent.
    pub ranges: Vec<(u32, u32)>,
}

impl SegmentMap {
    /// Encodes the map.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.ranges.len() <= SEGMENT_RANGES_MAX);
        let mut w = Writer::default();
        w.u32(self.base)
            .u8(u8::from(self.complete))
            .u16(self.ranges.len() as u16);
        for &(start, len) in &self.ranges {
            w.u32(start).u32(len);
        }
        w.bytes
    }

    /// Decodes and validates a map: ranges ascending, above `base`, non-empty, no overflow.
    pub fn decode(bytes: &[u8]) -> Result<SegmentMap, ControlError> {
        let mut r = Reader::new(bytes, "segment map");
        let base = r.u32()?;
        let complete = match r.u8()? {
            0 => false,
            1 => true,
            other => {
                return Err(ControlError::Invalid {
                    what: "segment map complete",
                    value: u64::from(other),
                });
            }
        };
        let n = r.count("segment map ranges", SEGMENT_RANGES_MAX)?;
        let mut ranges = Vec::with_capacity(n);
        // Each range starts strictly after the previous end (or after `base`, which is
        // missing by definition), so ranges are ascending, disjoint and non-adjacent.
        let mut floor = u64::from(base);
        for _ in 0..n {
            let start = r.u32()?;
            let len = r.u32()?;
            if len == 0 || u64::from(start) <= floor {
                return Err(ControlError::Invalid {
                    what: "segment map range",
                    value: u64::from(start),
                });
            }
            floor = u64::from(start) + u64::from(len);
            ranges.push((start, len));
        }
        r.finish()?;
        Ok(SegmentMap {
            base,
            complete,
            ranges,
        })
    }
}

/// Trace event kinds (seed `001`, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TraceEvent {
    /// The packet was received by the reporting station.
    Received = 1,
    /// The packet was forwarded to `next_hop`.
    Forwarded = 2,
    /// The packet was accepted for processing (queued for a handler).
    Claimed = 3,
    /// The station could not accept the packet (queue full).
    Busy = 4,
    /// An ACK was generated.
    AckSent = 5,
    /// A retry was scheduled.
    RetryScheduled = 6,
    /// The packet was dropped (`reason`).
    Dropped = 7,
    /// Processing completed (handler ran; for the sender: ACK received).
    Done = 8,
}

impl TraceEvent {
    /// Every event kind.
    pub const ALL: [TraceEvent; 8] = [
        TraceEvent::Received,
        TraceEvent::Forwarded,
        TraceEvent::Claimed,
        TraceEvent::Busy,
        TraceEvent::AckSent,
        TraceEvent::RetryScheduled,
        TraceEvent::Dropped,
        TraceEvent::Done,
    ];

    /// The event a byte names.
    pub fn from_u8(v: u8) -> Result<TraceEvent, ControlError> {
        TraceEvent::ALL
            .into_iter()
            .find(|e| *e as u8 == v)
            .ok_or(ControlError::Invalid {
                what: "trace event",
                value: u64::from(v),
            })
    }

    /// The seed's name of the event.
    pub const fn name(self) -> &'static str {
        match self {
            TraceEvent::Received => "RECEIVED",
            TraceEvent::Forwarded => "FORWARDED",
            TraceEvent::Claimed => "CLAIMED",
            TraceEvent::Busy => "BUSY",
            TraceEvent::AckSent => "ACK_SENT",
            TraceEvent::RetryScheduled => "RETRY_SCHEDULED",
            TraceEvent::Dropped => "DROPPED",
            TraceEvent::Done => "DONE",
        }
    }
}

/// A trace report (CONTROL to TRACE_REPORT; header `route_id` and `request_id` are the traced
/// packet's, `sender_id` the reporting station's):
///
/// ```text
/// event u8 | packet_type u8 | reason u16 | traced_sender u32 | node u32 | next_hop u32 |
/// queue_depth u32 | timestamp_ns u64
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceReport {
    /// What happened.
    pub event: TraceEvent,
    /// The traced packet's type (part of the trace key).
    pub packet_type: PacketType,
    /// Reason code for DROPPED / BUSY (0 = none, else a [`Reason`]).
    pub reason: u16,
    /// The traced packet's original sender (part of the trace key).
    pub traced_sender: u32,
    /// The reporting station.
    pub node: u32,
    /// For FORWARDED: the station the packet went to; else 0.
    pub next_hop: u32,
    /// Depth of the queue the packet entered, when relevant.
    pub queue_depth: u32,
    /// The reporting station's monotonic time in nanoseconds.
    pub timestamp_ns: u64,
}

/// Encoded size of a trace report.
pub const TRACE_REPORT_LEN: usize = 28;

impl TraceReport {
    /// Encodes the report.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.event as u8)
            .u8(self.packet_type.to_u8())
            .u16(self.reason)
            .u32(self.traced_sender)
            .u32(self.node)
            .u32(self.next_hop)
            .u32(self.queue_depth)
            .u64(self.timestamp_ns);
        debug_assert_eq!(w.bytes.len(), TRACE_REPORT_LEN);
        w.bytes
    }

    /// Decodes and validates a report.
    pub fn decode(bytes: &[u8]) -> Result<TraceReport, ControlError> {
        let mut r = Reader::new(bytes, "trace report");
        let event = TraceEvent::from_u8(r.u8()?)?;
        let packet_type = PacketType::from_u8(r.u8()?).map_err(|_| ControlError::Invalid {
            what: "trace packet type",
            value: 0,
        })?;
        let reason = r.u16()?;
        let report = TraceReport {
            event,
            packet_type,
            reason,
            traced_sender: r.u32()?,
            node: r.u32()?,
            next_hop: r.u32()?,
            queue_depth: r.u32()?,
            timestamp_ns: r.u64()?,
        };
        r.finish()?;
        Ok(report)
    }
}

/// Audit record of a dead-lettered message (AUDIT payload; DEAD_LETTER deliveries carry it
/// before the original payload):
///
/// ```text
/// reason u16 | attempts u8 | lane u8 | recipient_kind u8 | reserved u8 (0) |
/// recipient_port u16 | recipient_id u32 | destination u32 | request_id u64
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRecord {
    /// Why the message was given up.
    pub reason: Reason,
    /// Transmission attempts made.
    pub attempts: u8,
    /// Lane byte of the message.
    pub lane: u8,
    /// Recipient kind byte of the message.
    pub recipient_kind: u8,
    /// The message's recipient port.
    pub recipient_port: u16,
    /// The message's recipient id.
    pub recipient_id: u32,
    /// The destination station it was sent to.
    pub destination: u32,
    /// The message's request id.
    pub request_id: u64,
}

/// Encoded size of an audit record.
pub const AUDIT_RECORD_LEN: usize = 24;

impl AuditRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u16(self.reason as u16)
            .u8(self.attempts)
            .u8(self.lane)
            .u8(self.recipient_kind)
            .u8(0)
            .u16(self.recipient_port)
            .u32(self.recipient_id)
            .u32(self.destination)
            .u64(self.request_id);
        debug_assert_eq!(w.bytes.len(), AUDIT_RECORD_LEN);
        w.bytes
    }

    /// Decodes the record from the front of `bytes`; returns it and the rest.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(AuditRecord, &[u8]), ControlError> {
        if bytes.len() < AUDIT_RECORD_LEN {
            return Err(ControlError::Truncated {
                what: "audit record",
                needed: AUDIT_RECORD_LEN,
                had: bytes.len(),
            });
        }
        let (head, rest) = bytes.split_at(AUDIT_RECORD_LEN);
        let mut r = Reader::new(head, "audit record");
        let reason = Reason::from_u16(r.u16()?)?;
        let attempts = r.u8()?;
        let lane = r.u8()?;
        let recipient_kind = r.u8()?;
        if r.u8()? != 0 {
            return Err(ControlError::Invalid {
                what: "audit reserved",
                value: 1,
            });
        }
        let record = AuditRecord {
            reason,
            attempts,
            lane,
            recipient_kind,
            recipient_port: r.u16()?,
            recipient_id: r.u32()?,
            destination: r.u32()?,
            request_id: r.u64()?,
        };
        r.finish()?;
        Ok((record, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ack = AckList {
            seqs: vec![1, 2, 99],
        };
        assert_eq!(AckList::decode(&ack.encode()).unwrap(), ack);
        let advert = Advert {
            incarnation: 3,
            seq: 9,
            neighbours: vec![2, 5],
            ports: vec![150, 2000],
            subscriptions: vec![3000],
            groups: vec![77],
        };
        assert_eq!(Advert::decode(&advert.encode()).unwrap(), advert);
        let offer = BulkOffer {
            object_len: 5 * 1024 * 1024 * 1024,
            segment_len: 65_536,
            segment_count: 81_920,
            object_crc32c: 0xdead_beef,
            name: "disk.img".into(),
        };
        assert_eq!(BulkOffer::decode(&offer.encode()).unwrap(), offer);
        let map = SegmentMap {
            base: 4,
            complete: false,
            ranges: vec![(6, 2), (10, 1)],
        };
        assert_eq!(SegmentMap::decode(&map.encode()).unwrap(), map);
        let report = TraceReport {
            event: TraceEvent::Forwarded,
            packet_type: PacketType::Data,
            reason: 0,
            traced_sender: 1,
            node: 2,
            next_hop: 3,
            queue_depth: 4,
            timestamp_ns: 5,
        };
        assert_eq!(TraceReport::decode(&report.encode()).unwrap(), report);
    }

    #[test]
    fn segment_map_rejects_unordered_and_overlapping_ranges() {
        for ranges in [
            vec![(3, 1)],
            vec![(6, 2), (7, 1)],
            vec![(6, 0)],
            vec![(6, 2), (8, 1)],
        ] {
            let map = SegmentMap {
                base: 4,
                complete: false,
                ranges,
            };
            assert!(SegmentMap::decode(&map.encode()).is_err(), "{map:?}");
        }
    }

    #[test]
    fn truncations_are_errors() {
        let advert = Advert {
            neighbours: vec![1, 2, 3],
            ..Advert::default()
        }
        .encode();
        for cut in 0..advert.len() {
            assert!(Advert::decode(&advert[..cut]).is_err());
        }
    }
}
