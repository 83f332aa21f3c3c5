//! Stream lane receive state: the token cache that keeps a receiver from delivering a stream
//! frame twice. A stream token is `(sender, stream id, sequence)`; the cache remembers the
//! newest [`TOKENS`] sequences of each stream and treats anything older as seen, so a frame is
//! delivered at most once and late frames are dropped (a stream never goes backwards).

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

#[cfg(test)]
mod tests {
    use super::*;

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
