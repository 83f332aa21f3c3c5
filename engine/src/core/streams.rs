//! Stream lane receive state: the token cache that keeps a receiver from delivering a stream
//! frame twice. A stream token is `(sender, stream id, sequence)`; the cache remembers the
//! newest [`TOKENS`] sequences of each stream and treats anything older as seen, so a frame is
//! delivered at most once and late frames are dropped (a stream never goes backwards).
//!
//! Also the bounded queues stream frames wait in ([`StreamQueue`]): bounded in frames and in
//! bytes, dropping the oldest frames when full (a stream is lossy; a slow reader loses old
//! frames and never holds anyone up).

use std::collections::VecDeque;

/// Sequences remembered per stream.
pub const TOKENS: u32 = 256;
const WORDS: usize = (TOKENS / 64) as usize;

/// The token cache of one stream.
#[derive(Debug, Clone)]
pub struct TokenCache {
    /// Newest sequence seen.
    newest: u32,
    /// Bit `seq % TOKENS` for sequences in `newest - TOKENS + 1 ..= newest`.
    seen: [u64; WORDS],
    empty: bool,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            newest: 0,
            seen: [0; WORDS],
            empty: true,
        }
    }
}

impl TokenCache {
    fn bit(seq: u32) -> (usize, u64) {
        let index = seq % TOKENS;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    /// Records `seq`; returns true if it was not seen before (deliver it).
    pub fn admit(&mut self, seq: u32) -> bool {
        if self.empty {
            self.empty = false;
            self.newest = seq;
            let (w, m) = Self::bit(seq);
            self.seen[w] |= m;
            return true;
        }
        let ahead = seq.wrapping_sub(self.newest) as i32;
        if ahead > 0 {
            let ahead = ahead as u32;
            if ahead >= TOKENS {
                self.seen = [0; WORDS];
            } else {
                for i in 1..=ahead {
                    let (w, m) = Self::bit(self.newest.wrapping_add(i));
                    self.seen[w] &= !m;
                }
            }
            self.newest = seq;
            let (w, m) = Self::bit(seq);
            self.seen[w] |= m;
            return true;
        }
        // `ahead` may be i32::MIN (exactly 2^31 behind): negating it would overflow.
        if ahead.unsigned_abs() >= TOKENS {
            return false;
        }
        let (w, m) = Self::bit(seq);
        if self.seen[w] & m != 0 {
            return false;
        }
        self.seen[w] |= m;
        true
    }
}

/// Bytes a queued stream frame is charged beyond its payload: what the queue entry (header,
/// bookkeeping, the payload buffer's handle) costs in memory, so that a byte bound also bounds
/// queues of tiny frames.
pub const FRAME_OVERHEAD: usize = 128;

/// The charge of a queued frame with `payload_len` payload bytes.
pub const fn frame_charge(payload_len: usize) -> usize {
    payload_len + FRAME_OVERHEAD
}

/// A first-in first-out queue of stream frames bounded in frames and in bytes (see
/// [`frame_charge`]). When a new frame would exceed either bound, the oldest frames are dropped
/// to make room; a frame larger than the whole byte bound is still queued when the queue is
/// empty, so that any frame the link carried can be delivered.
#[derive(Debug)]
pub struct StreamQueue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
}

impl<T> Default for StreamQueue<T> {
    fn default() -> Self {
        StreamQueue {
            items: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> StreamQueue<T> {
    /// Frames queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The sum of the queued frames' charges.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues `item` charged `charge` bytes, first dropping the oldest frames (handed to
    /// `dropped`) while the queue holds `frames_max` frames or `charge` would take it beyond
    /// `bytes_max`. Returns how many were dropped.
    pub fn push_back(
        &mut self,
        item: T,
        charge: usize,
        frames_max: usize,
        bytes_max: usize,
        mut dropped: impl FnMut(T),
    ) -> usize {
        let mut count = 0;
        while !self.items.is_empty()
            && (self.items.len() >= frames_max.max(1) || self.bytes + charge > bytes_max)
        {
            if let Some(old) = self.pop_front() {
                dropped(old);
                count += 1;
            }
        }
        self.bytes += charge;
        self.items.push_back((item, charge));
        count
    }

    /// Takes the oldest frame.
    pub fn pop_front(&mut self) -> Option<T> {
        let (item, charge) = self.items.pop_front()?;
        self.bytes -= charge;
        Some(item)
    }

    /// The oldest frame, left queued.
    pub fn front(&self) -> Option<&T> {
        self.items.front().map(|(item, _)| item)
    }

    /// Keeps only the frames for which `keep` answers true.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut bytes = self.bytes;
        self.items.retain(|(item, charge)| {
            let kept = keep(item);
            if !kept {
                bytes -= *charge;
            }
            kept
        });
        self.bytes = bytes;
    }
}

/// Payload buffers of stream frames kept for reuse, bounded by their total capacity: a
/// receiver holding thousands of frames between two cycles reuses their buffers instead of
/// allocating and freeing one per frame.
#[derive(Debug, Default)]
pub struct BufferPool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    /// A buffer holding a copy of `bytes`.
    pub fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = match self.buffers.pop() {
            Some(buffer) => {
                self.bytes -= buffer.capacity();
                buffer
            }
            None => Vec::new(),
        };
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    /// Keeps `buffer` for reuse if the pool's total capacity stays within `bytes_max` and the
    /// buffer is at most a sixteenth of it; drops it otherwise.
    pub fn give(&mut self, buffer: Vec<u8>, bytes_max: usize) {
        let capacity = buffer.capacity();
        if capacity > 0 && capacity <= bytes_max / 16 && self.bytes + capacity <= bytes_max {
            self.bytes += capacity;
            self.buffers.push(buffer);
        }
    }

    /// Total capacity of the buffers kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_bounded_in_frames_drops_the_oldest() {
        let mut queue = StreamQueue::default();
        let mut lost = Vec::new();
        for i in 0..10u32 {
            queue.push_back(i, frame_charge(0), 4, usize::MAX, |old| lost.push(old));
        }
        assert_eq!(queue.len(), 4);
        assert_eq!(lost, [0, 1, 2, 3, 4, 5]);
        assert_eq!(queue.pop_front(), Some(6));
        assert_eq!(queue.bytes(), 3 * FRAME_OVERHEAD);
    }

    #[test]
    fn queue_bounded_in_bytes_drops_as_many_old_frames_as_a_big_one_needs() {
        let mut queue = StreamQueue::default();
        let max = 10 * frame_charge(100);
        let mut lost = 0;
        for i in 0..10u32 {
            lost += queue.push_back(i, frame_charge(100), usize::MAX, max, |_| {});
        }
        assert_eq!((queue.len(), lost), (10, 0));
        // Three small frames' worth: three old frames go.
        let big = 3 * frame_charge(100) - FRAME_OVERHEAD;
        assert_eq!(
            queue.push_back(99, frame_charge(big), usize::MAX, max, |_| {}),
            3
        );
        assert_eq!(queue.front(), Some(&3));
        assert!(queue.bytes() <= max);
        // A frame larger than the whole bound replaces everything, but is still queued.
        let huge = frame_charge(max);
        assert_eq!(queue.push_back(7, huge, usize::MAX, max, |_| {}), 8);
        assert_eq!((queue.len(), queue.bytes()), (1, huge));
        assert_eq!(queue.pop_front(), Some(7));
        assert_eq!((queue.len(), queue.bytes()), (0, 0));
    }

    #[test]
    fn buffer_pool_is_bounded_by_capacity() {
        let mut pool = BufferPool::default();
        for _ in 0..100 {
            pool.give(Vec::with_capacity(64), 1024);
        }
        assert_eq!(pool.bytes(), 1024, "sixteen buffers of 64 fill 1024");
        pool.give(Vec::with_capacity(65), 1 << 20);
        pool.give(Vec::with_capacity(1 << 17), 1 << 20); // more than a sixteenth
        assert_eq!(pool.bytes(), 1024 + 65);
        let copy = pool.copy_of(b"frame");
        assert_eq!(copy, b"frame");
        assert_eq!(pool.bytes(), 1024);
    }

    #[test]
    fn retain_keeps_the_byte_count() {
        let mut queue = StreamQueue::default();
        for i in 0..6usize {
            queue.push_back(i, frame_charge(i), usize::MAX, usize::MAX, |_| {});
        }
        queue.retain(|&i| i % 2 == 0);
        assert_eq!(queue.len(), 3);
        assert_eq!(
            queue.bytes(),
            frame_charge(0) + frame_charge(2) + frame_charge(4)
        );
    }

    #[test]
    fn duplicates_and_reorder() {
        let mut cache = TokenCache::default();
        assert!(cache.admit(10));
        assert!(!cache.admit(10));
        assert!(cache.admit(8));
        assert!(!cache.admit(8));
        assert!(cache.admit(11));
        assert!(cache.admit(9));
        assert!(cache.admit(1000));
        assert!(!cache.admit(11), "too old");
        assert!(!cache.admit(1000));
    }

    #[test]
    fn a_sequence_exactly_half_the_space_behind_is_too_old() {
        // Found by the bus_frames fuzz target: negating i32::MIN overflowed.
        let mut cache = TokenCache::default();
        assert!(cache.admit(0x8000_0000));
        assert!(!cache.admit(0));
        assert!(cache.admit(0x8000_0001));
    }
}
