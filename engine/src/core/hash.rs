//! A fast, seeded, non-cryptographic hasher for the bus's hash maps.
//!
//! The bus looks up small integer keys (station ids, epochs, ports, request ids) several times
//! per message: std's default SipHash-1-3 cost about a tenth of the fast lane's per-message
//! instructions. [`FastState`] hashes each integer word with one rotate, one xor and one
//! multiply (the scheme of Firefox's and rustc's "Fx" hash, written here from its description),
//! and folds the high half into the low half at the end so that hashbrown's bucket index (low
//! bits) and tag (top 7 bits) both see every input bit.
//!
//! # Seeding and hash flooding
//!
//! Some keys come from peers (sender ids, epochs, stream request ids), so a peer that can
//! predict the hash could pick keys that collide and make lookups walk long probe chains.
//! Two things bound that:
//! - Every map keyed by peer data is bounded (`windows` by `stations_max`, `return_links` by
//!   `4 × stations_max`, `token_caches` by `16 × stream_cache_tokens`), so a flood costs at
//!   worst a linear probe over a bounded table, never unbounded memory.
//! - Each bus seeds its hasher from its configuration (`seed`, station id, incarnation) through
//!   the core's own PRNG ([`FastState::from_seed`]); std's `RandomState` would draw OS entropy,
//!   which the sans-IO core must not do (time and randomness are inputs, and the simulator
//!   replays a run from its seed). A deployment that faces untrusted peers sets
//!   `BusConfig::seed` from OS entropy in its driver, which makes the hash unpredictable.
//!
//! Seeding also makes the maps' iteration order a pure function of the inputs, which std's
//! `RandomState` did not (ties in "least recently used" searches were broken by a random
//! order).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use super::rng::Rng;

/// A hash map using [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A hash set using [`FastState`].
pub type FastSet<K> = HashSet<K, FastState>;

/// Odd multiplier with well-spread bits (the fractional part of the golden ratio, made odd),
/// so that each multiply spreads a word's low bits across the high half.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Builds [`FastHasher`]s that all start from one seed. `Default` uses the seed 0, for maps
/// whose keys never come from peers (the cycle's scratch maps of local ports).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastState {
    seed: u64,
}

impl FastState {
    /// A state whose hashers start from a seed drawn from `seed` by the core's PRNG.
    pub fn from_seed(seed: u64) -> FastState {
        FastState {
            seed: Rng::new(seed).next_u64(),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher { state: self.seed }
    }
}

/// The hasher of [`FastState`]: one rotate-xor-multiply per integer word.
#[derive(Debug, Clone, Copy)]
pub struct FastHasher {
    state: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "ab" + "" and "a" + "b" apart within one word.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits depending on the inputs' low bits only: fold the
        // well-mixed high half into them (hashbrown takes its bucket index from the low bits).
        self.state ^ (self.state >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash<T: std::hash::Hash>(state: &FastState, value: T) -> u64 {
        state.hash_one(value)
    }

    #[test]
    fn same_seed_same_hash_other_seed_other_hash() {
        let a = FastState::from_seed(1);
        let b = FastState::from_seed(1);
        let c = FastState::from_seed(2);
        assert_eq!(hash(&a, (7u32, 9u32)), hash(&b, (7u32, 9u32)));
        assert_ne!(hash(&a, (7u32, 9u32)), hash(&c, (7u32, 9u32)));
    }

    #[test]
    fn small_keys_spread_over_low_bits_and_tags() {
        // Consecutive station ids must not pile into few buckets or share a tag: count the
        // distinct low 10 bits and top 7 bits over 1024 keys.
        let state = FastState::from_seed(42);
        let mut low = std::collections::BTreeSet::new();
        let mut top = std::collections::BTreeSet::new();
        for id in 0..1024u32 {
            let h = hash(&state, (id, 1u32));
            low.insert(h & 1023);
            top.insert(h >> 57);
        }
        assert!(low.len() > 550, "low bits: {} distinct of 1024", low.len());
        assert_eq!(top.len(), 128, "every tag value occurs");
    }

    #[test]
    fn bytes_of_different_split_differ() {
        let state = FastState::default();
        let mut a = state.build_hasher();
        a.write(b"ab");
        let mut b = state.build_hasher();
        b.write(b"a");
        b.write(b"b");
        assert_ne!(a.finish(), b.finish());
    }
}
