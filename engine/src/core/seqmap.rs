//! The fast lane's unresolved messages, indexed by channel sequence without a tree.
//!
//! A channel's unresolved sequences are dense: the sender gives them out consecutively and
//! keeps them within `channel_window` of the lowest unresolved one. So each channel keeps a
//! [`SeqIndex`], a ring whose slot `i` names sequence `base + i`, and the messages themselves
//! live in one [`Slab`] shared by all channels of the bus. Looking a sequence up is one
//! subtraction and one index; the common "resolve the lowest" pops the ring's front. The
//! `BTreeMap<u32, Pending>` this replaces cost about a sixth of the fast lane's instructions
//! (node search, and moving ~150-byte values in and out of nodes).
//!
//! Memory: the slab grows to the largest number of messages unresolved at once (at most
//! `outbox_capacity`) and reuses its slots; a ring holds 4 bytes per sequence of its span.
//! Sequences that do not fit a span of [`SPAN_MAX`] (only a durable outbox restored with
//! inconsistent sequences could produce them) go to a small ordered map instead, so any input
//! is handled and nothing grows without bound.

use std::collections::{BTreeMap, VecDeque};

/// Largest span of sequences one ring covers (four receive windows, well above any channel
/// window a valid configuration allows).
pub(crate) const SPAN_MAX: u32 = 4 * super::dedup::WINDOW;

/// A ring slot holding no message.
const VACANT: u32 = u32::MAX;

/// Values by slot number, reusing freed slots.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; returns its slot.
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(value);
                slot
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Takes the value out of `slot`, freeing it.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<T> {
        let value = self.slots.get_mut(slot as usize)?.take();
        if value.is_some() {
            self.free.push(slot);
        }
        value
    }

    /// The value in `slot`.
    pub(crate) fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The value in `slot`, mutably.
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }
}

/// One channel's unresolved sequences → slab slots.
#[derive(Debug, Default)]
pub(crate) struct SeqIndex {
    /// The sequence of `ring[0]`.
    base: u32,
    /// `ring[i]`: the slot of sequence `base + i`, or [`VACANT`]. The first and last entries
    /// are never vacant.
    ring: VecDeque<u32>,
    /// Occupied ring entries.
    len: usize,
    /// Sequences too far from the ring's to fit its span (see the module comment).
    far: BTreeMap<u32, u32>,
}

impl SeqIndex {
    /// Offset of `seq` from the ring's base (serial arithmetic; negative: before it).
    fn offset(&self, seq: u32) -> i64 {
        i64::from(seq.wrapping_sub(self.base) as i32)
    }

    /// The ring position of `seq`, if inside the ring.
    fn position(&self, seq: u32) -> Option<usize> {
        let offset = self.offset(seq);
        (offset >= 0 && (offset as usize) < self.ring.len()).then_some(offset as usize)
    }

    /// The slot of `seq`.
    pub(crate) fn get(&self, seq: u32) -> Option<u32> {
        if let Some(i) = self.position(seq) {
            let slot = self.ring[i];
            if slot != VACANT {
                return Some(slot);
            }
        }
        if self.far.is_empty() {
            None
        } else {
            self.far.get(&seq).copied()
        }
    }

    /// Whether `seq` is unresolved.
    pub(crate) fn contains(&self, seq: u32) -> bool {
        self.get(seq).is_some()
    }

    /// Unresolved sequences.
    pub(crate) fn len(&self) -> usize {
        self.len + self.far.len()
    }

    /// The lowest unresolved sequence: the ring's first (serial order), or the smallest of
    /// the far ones if that is smaller.
    pub(crate) fn lowest(&self) -> Option<u32> {
        let ring = (self.len > 0).then_some(self.base);
        let far = self.far.keys().next().copied();
        match (ring, far) {
            (Some(r), Some(f)) => Some(r.min(f)),
            (r, f) => r.or(f),
        }
    }

    /// Maps `seq` to `slot`; returns the slot it mapped to before, if any.
    pub(crate) fn insert(&mut self, seq: u32, slot: u32) -> Option<u32> {
        debug_assert_ne!(slot, VACANT);
        if !self.far.is_empty() {
            if let Some(old) = self.far.get_mut(&seq) {
                return Some(std::mem::replace(old, slot));
            }
        }
        if self.ring.is_empty() {
            self.base = seq;
            self.ring.push_back(slot);
            self.len = 1;
            return None;
        }
        let offset = self.offset(seq);
        let span = self.ring.len() as i64;
        if (0..span).contains(&offset) {
            let entry = &mut self.ring[offset as usize];
            let old = std::mem::replace(entry, slot);
            if old == VACANT {
                self.len += 1;
                return None;
            }
            return Some(old);
        }
        if offset >= span && offset < i64::from(SPAN_MAX) {
            for _ in span..offset {
                self.ring.push_back(VACANT);
            }
            self.ring.push_back(slot);
            self.len += 1;
            return None;
        }
        if offset < 0 && span - offset <= i64::from(SPAN_MAX) {
            for _ in 0..(-offset - 1) {
                self.ring.push_front(VACANT);
            }
            self.ring.push_front(slot);
            self.base = seq;
            self.len += 1;
            return None;
        }
        self.far.insert(seq, slot)
    }

    /// Unmaps `seq`; returns its slot.
    pub(crate) fn remove(&mut self, seq: u32) -> Option<u32> {
        if let Some(i) = self.position(seq) {
            let slot = std::mem::replace(&mut self.ring[i], VACANT);
            if slot != VACANT {
                self.len -= 1;
                while self.ring.front() == Some(&VACANT) {
                    self.ring.pop_front();
                    self.base = self.base.wrapping_add(1);
                }
                while self.ring.back() == Some(&VACANT) {
                    self.ring.pop_back();
                }
                return Some(slot);
            }
        }
        if self.far.is_empty() {
            None
        } else {
            self.far.remove(&seq)
        }
    }

    /// `(seq, slot)` of every unresolved sequence: the ring's in serial order, then the far
    /// ones.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let base = self.base;
        self.ring
            .iter()
            .enumerate()
            .filter(|&(_, &slot)| slot != VACANT)
            .map(move |(i, &slot)| (base.wrapping_add(i as u32), slot))
            .chain(self.far.iter().map(|(&seq, &slot)| (seq, slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index against a `BTreeMap` model over random inserts and removes, in and beyond
    /// the span, across the `u32` wrap.
    #[test]
    fn index_matches_a_map() {
        let mut rng = super::super::rng::Rng::new(5);
        for start in [0u32, u32::MAX - 300] {
            let mut index = SeqIndex::default();
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            for step in 0..20_000u32 {
                let seq = match rng.below(10) {
                    0 => start.wrapping_add(rng.below(u64::from(SPAN_MAX) * 3) as u32),
                    _ => start.wrapping_add(rng.below(700) as u32),
                };
                if rng.chance(1, 2) {
                    assert_eq!(
                        index.insert(seq, step),
                        model.insert(seq, step),
                        "insert {seq}"
                    );
                } else {
                    assert_eq!(index.remove(seq), model.remove(&seq), "remove {seq}");
                }
                assert_eq!(index.len(), model.len());
                assert_eq!(index.get(seq), model.get(&seq).copied());
                if step % 97 == 0 {
                    let mut listed: Vec<(u32, u32)> = index.iter().collect();
                    listed.sort_unstable();
                    let expected: Vec<(u32, u32)> = model.iter().map(|(&s, &v)| (s, v)).collect();
                    assert_eq!(listed, expected);
                    assert!(index.ring.len() as u32 <= SPAN_MAX);
                }
            }
        }
    }

    #[test]
    fn lowest_follows_in_order_resolution() {
        let mut index = SeqIndex::default();
        let mut slab = Slab::default();
        for seq in 10..20u32 {
            let slot = slab.insert(seq);
            assert_eq!(index.insert(seq, slot), None);
        }
        assert_eq!(index.lowest(), Some(10));
        let slot = index.remove(12).expect("present");
        assert_eq!(slab.remove(slot), Some(12));
        assert_eq!(index.lowest(), Some(10));
        for seq in [10, 11] {
            let slot = index.remove(seq).expect("present");
            slab.remove(slot);
        }
        assert_eq!(index.lowest(), Some(13));
        // Freed slots are reused.
        let reused = slab.insert(99);
        assert!(reused < 3, "slot {reused}");
        assert_eq!(index.len(), 7);
    }
}
