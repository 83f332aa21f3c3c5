//! Bulk lane state: outbound and inbound transfers, segment sets, and the I/O the bus asks its
//! driver to perform (spool writes on the receiver, source reads on the sender).
//!
//! The core never touches a disk. It emits [`IoRequest`]s and the driver (the runtime's disk
//! spool, or the simulator's in-memory spool) answers each with [`Bus::handle_io`] and an
//! [`IoOutcome`]. Memory is bounded by the window: a sender holds at most `bulk_window`
//! segments, a receiver at most `2 × bulk_window` segments in pending writes, whatever the
//! object size. `spec/model/SafariBus-v1.md` §6.
//!
//! [`Bus::handle_io`]: super::bus::Bus::handle_io

use std::collections::BTreeMap;

use super::control::{BulkOffer, SEGMENT_RANGES_MAX, SegmentMap};
use super::time::Instant;

/// Identifies an I/O request and its completion.
pub type IoId = u64;

/// I/O the bus needs from its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoRequest {
    /// Open or create the spool for an inbound object; answer with the segments already
    /// stored there (a resumed transfer) in [`IoOutcome::Opened`].
    SpoolOpen {
        /// Request id.
        id: IoId,
        /// Stable spool key (same object from the same sender gives the same key).
        key: String,
        /// Object size.
        len: u64,
        /// Segment size.
        segment_len: u32,
        /// Segments in the object.
        segment_count: u32,
    },
    /// Write one segment at its offset. Answer [`IoOutcome::Written`] once it is stored
    /// (not necessarily durable yet).
    SpoolWrite {
        /// Request id.
        id: IoId,
        /// The spool.
        key: String,
        /// Segment index.
        segment: u32,
        /// Byte offset in the object.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Make the whole object durable (fdatasync) and verify its CRC32C; answer
    /// [`IoOutcome::Finished`] only when both hold.
    SpoolFinish {
        /// Request id.
        id: IoId,
        /// The spool.
        key: String,
        /// Expected CRC32C of the object.
        crc32c: u32,
    },
    /// Read `len` bytes at `offset` of outbound transfer `transfer`'s source object.
    SourceRead {
        /// Request id.
        id: IoId,
        /// The transfer.
        transfer: u64,
        /// Byte offset.
        offset: u64,
        /// Bytes to read.
        len: u32,
    },
}

impl IoRequest {
    /// The request id.
    pub fn id(&self) -> IoId {
        match self {
            IoRequest::SpoolOpen { id, .. }
            | IoRequest::SpoolWrite { id, .. }
            | IoRequest::SpoolFinish { id, .. }
            | IoRequest::SourceRead { id, .. } => *id,
        }
    }
}

/// Why an I/O request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFailure {
    /// No space left on the device.
    NoSpace,
    /// Any other I/O error.
    Io,
    /// The finished object's CRC32C did not match the offer.
    CrcMismatch,
    /// The source object could not be read.
    SourceUnavailable,
}

/// How an I/O request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOutcome {
    /// The spool is open; these segment ranges `(first, count)` are already stored.
    Opened {
        /// Stored ranges.
        stored: Vec<(u32, u32)>,
    },
    /// The segment is stored.
    Written,
    /// The object is durable and verified.
    Finished,
    /// The bytes read from the source.
    Read(Vec<u8>),
    /// The request failed.
    Failed(IoFailure),
}

/// A set of segment indexes, as a bitmap (1 bit per segment: 8 KiB for a 4 GiB object in
/// 64 KiB segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSet {
    bits: Vec<u64>,
    count: u32,
    len: u32,
}

impl SegmentSet {
    /// An empty set over `len` segments.
    pub fn new(len: u32) -> SegmentSet {
        SegmentSet {
            bits: vec![0; (len as usize).div_ceil(64)],
            count: 0,
            len,
        }
    }

    /// Whether `segment` is in the set.
    pub fn contains(&self, segment: u32) -> bool {
        segment < self.len && self.bits[(segment / 64) as usize] & (1 << (segment % 64)) != 0
    }

    /// Adds `segment`; returns whether it was new.
    pub fn insert(&mut self, segment: u32) -> bool {
        if segment >= self.len || self.contains(segment) {
            return false;
        }
        self.bits[(segment / 64) as usize] |= 1 << (segment % 64);
        self.count += 1;
        true
    }

    /// Segments in the set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Segments the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set ranges over no segments.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every segment is in the set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// The first segment at or after `from` not in the set.
    pub fn next_missing(&self, from: u32) -> Option<u32> {
        let mut segment = from;
        while segment < self.len {
            let word = self.bits[(segment / 64) as usize];
            if word == u64::MAX && segment % 64 == 0 {
                segment += 64;
                continue;
            }
            if !self.contains(segment) {
                return Some(segment);
            }
            segment += 1;
        }
        None
    }

    /// Adds every segment in `(first, count)` ranges.
    pub fn insert_ranges(&mut self, ranges: &[(u32, u32)]) {
        for &(first, count) in ranges {
            let end = u64::from(first) + u64::from(count);
            let end = end.min(u64::from(self.len)) as u32;
            for segment in first..end {
                self.insert(segment);
            }
        }
    }

    /// The set as a segment map (at most [`SEGMENT_RANGES_MAX`] ranges above the base; the
    /// rest is left out and will be reported later).
    pub fn to_map(&self, complete: bool) -> SegmentMap {
        let base = self.next_missing(0).unwrap_or(self.len);
        let mut ranges = Vec::new();
        let mut segment = base;
        while segment < self.len && ranges.len() < SEGMENT_RANGES_MAX {
            if self.contains(segment) {
                let start = segment;
                while segment < self.len && self.contains(segment) {
                    segment += 1;
                }
                ranges.push((start, segment - start));
            } else {
                segment = match self.next_set(segment) {
                    Some(next) => next,
                    None => break,
                };
            }
        }
        SegmentMap {
            base,
            complete,
            ranges,
        }
    }

    fn next_set(&self, from: u32) -> Option<u32> {
        let mut segment = from;
        while segment < self.len {
            let word = self.bits[(segment / 64) as usize];
            if word == 0 && segment % 64 == 0 {
                segment += 64;
                continue;
            }
            if self.contains(segment) {
                return Some(segment);
            }
            segment += 1;
        }
        None
    }

    /// Adds what a received map says is stored.
    pub fn merge_map(&mut self, map: &SegmentMap) {
        let base = map.base.min(self.len);
        for segment in 0..base {
            // Fast path for the common case of a long stored prefix.
            if self.bits[(segment / 64) as usize] == u64::MAX {
                continue;
            }
            self.insert(segment);
        }
        self.insert_ranges(&map.ranges);
    }
}

/// State of an outbound transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Offer sent; waiting for the receiver's segment map.
    Offering,
    /// Sending segments.
    Sending,
    /// Every segment acknowledged; waiting for the final (durable) map.
    Finishing,
    /// Done: the receiver holds the object durably.
    Done,
    /// Given up.
    Failed,
}

/// One segment in flight.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// The bytes (None while the source read is pending).
    pub data: Option<Vec<u8>>,
    /// Last transmission, if sent.
    pub sent_at: Option<Instant>,
}

/// An outbound transfer.
#[derive(Debug)]
pub struct OutTransfer {
    /// Transfer id (also the request id of its frames).
    pub id: u64,
    /// Destination station.
    pub destination: u32,
    /// Destination port.
    pub port: u16,
    /// Sending port.
    pub from_port: u16,
    /// The offer.
    pub offer: BulkOffer,
    /// State.
    pub state: OutState,
    /// Segments the receiver stored.
    pub acked: SegmentSet,
    /// Segments in flight (bounded by the window).
    pub in_flight: BTreeMap<u32, InFlight>,
    /// Scan position for the next segment to send.
    pub cursor: u32,
    /// Last time the receiver reported progress (or the offer was first sent).
    pub last_progress: Instant,
    /// Last time the offer was sent.
    pub offer_sent_at: Option<Instant>,
    /// Timeouts without progress in a row.
    pub stalls: u8,
    /// When the transfer started.
    pub started_at: Instant,
    /// Bytes acknowledged.
    pub bytes_acked: u64,
    /// Bytes the receiver already held when it first answered the offer (a resumed object);
    /// they are not counted in the rate.
    pub bytes_resumed: u64,
    /// When the receiver first answered the offer; the rate is measured from then.
    pub sending_since: Option<Instant>,
    /// Last progress event.
    pub progress_reported_at: Instant,
    /// Trace requested.
    pub trace: bool,
}

impl OutTransfer {
    /// Bytes in segment `segment`.
    pub fn segment_bytes(&self, segment: u32) -> u32 {
        let offset = u64::from(segment) * u64::from(self.offer.segment_len);
        let rest = self.offer.object_len.saturating_sub(offset);
        rest.min(u64::from(self.offer.segment_len)) as u32
    }
}

/// State of an inbound transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InState {
    /// Waiting for the spool to open.
    Opening,
    /// Receiving segments.
    Receiving,
    /// Every segment stored; waiting for durability and verification.
    Finishing,
    /// Durable and verified.
    Complete,
    /// Failed (storage error); the reason was sent to the sender.
    Failed,
}

/// An inbound transfer.
#[derive(Debug)]
pub struct InTransfer {
    /// Sender station.
    pub sender: u32,
    /// The sender's current transfer id.
    pub transfer: u64,
    /// The port it was offered to.
    pub port: u16,
    /// The sending port.
    pub sender_port: u16,
    /// The offer.
    pub offer: BulkOffer,
    /// Spool key.
    pub key: String,
    /// State.
    pub state: InState,
    /// Segments stored.
    pub stored: SegmentSet,
    /// Segments being written.
    pub writing: BTreeMap<u32, IoId>,
    /// A segment map is owed to the sender.
    pub map_due: bool,
    /// Last activity (for eviction of finished transfers).
    pub touched_at: Instant,
    /// Trace requested.
    pub trace: bool,
    /// The identity the offer was addressed to; maps and NACKs are sent as it.
    pub as_id: u32,
}

/// The stable spool key of an object: the same object offered again by the same sender (after
/// a restart, with a new transfer id) resumes into the same spool.
pub fn spool_key(sender: u32, offer: &BulkOffer) -> String {
    let safe: String = offer
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!(
        "{sender:08x}-{:08x}-{}-{safe}",
        offer.object_crc32c, offer.object_len
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_set_map_round_trip() {
        let mut set = SegmentSet::new(300);
        for s in (0..10).chain(12..14).chain(100..200) {
            set.insert(s);
        }
        let map = set.to_map(false);
        assert_eq!(map.base, 10);
        assert_eq!(map.ranges, vec![(12, 2), (100, 100)]);
        let mut other = SegmentSet::new(300);
        other.merge_map(&map);
        assert_eq!(other, set);
        assert_eq!(set.next_missing(0), Some(10));
        assert_eq!(set.next_missing(100), Some(200));
    }

    #[test]
    fn full_set_has_no_missing() {
        let mut set = SegmentSet::new(130);
        for s in 0..130 {
            assert!(set.insert(s));
        }
        assert!(set.is_full());
        assert_eq!(set.next_missing(0), None);
        assert_eq!(set.to_map(true).base, 130);
    }
}
