//! Retransmission timers of the fast lane: a hashed timer wheel with lazy cancellation.
//!
//! Every transmission of an ACK-required message arms a timer `(deadline, destination, seq,
//! generation)`; the message's generation moves on when it is resent or answered, so most
//! timers are stale by the time they fire and are only counted and dropped. A binary heap paid
//! `O(log n)` moves per timer (n: the timers armed within one RTO, thousands at high rates);
//! the wheel files a timer in the slot of its deadline's tick in `O(1)` and hands the due ones
//! back unsorted, so the bus sorts only the few live ones (see `Bus::run_timers`).
//!
//! Slots are [`TICK_SHIFT`]-bit ticks of the nanosecond timeline (about 1 ms); the wheel spans
//! [`SLOTS`] ticks (about 1.07 s) from its base tick. Deadlines beyond that (long back-offs)
//! wait in a small heap. Every timer keeps its exact deadline: a slot only groups timers, and
//! a timer fires when `deadline <= now`, exactly as with the heap. The earliest deadline
//! ([`TimerWheel::next_deadline`]) counts stale timers too, as the heap's peek did.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::time::Instant;

/// A timer: deadline, destination station, channel sequence, generation.
pub(crate) type Timer = (Instant, u32, u32, u32);

/// Bits of a nanosecond instant below one tick (2^20 ns, about 1.05 ms).
const TICK_SHIFT: u32 = 20;
/// Slots of the wheel (a power of two).
const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;
const _: () = assert!(SLOTS.is_power_of_two() && SLOTS % 64 == 0);

fn tick_of(at: Instant) -> u64 {
    at.as_nanos() >> TICK_SHIFT
}

/// The retransmission timers of one bus.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    /// Timers by `tick % SLOTS`, for ticks in `base_tick..base_tick + SLOTS`.
    slots: Vec<Vec<Timer>>,
    /// Bit `i`: slot `i` is not empty.
    occupied: [u64; WORDS],
    /// Earliest deadline in each slot (`Instant::NEVER` when empty).
    slot_min: Vec<Instant>,
    /// Every tick before this one has been drained.
    base_tick: u64,
    /// Timers due at `base_tick + SLOTS` or later.
    far: BinaryHeap<Reverse<Timer>>,
    len: usize,
    /// Timers in the slots (not in `far`): a wheel holding none answers without a scan.
    in_slots: usize,
    /// The slot of the current tick once sorted by deadline, latest first: cycles within one
    /// tick then pop its due timers off the end instead of scanning the whole slot each time.
    sorted: Option<usize>,
    /// Emptied slot buffers, handed to slots as they fill again: the wheel allocates only
    /// while more slots than ever before hold timers at once, not whenever time reaches a slot
    /// for the first time.
    spare: Vec<Vec<Timer>>,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            slot_min: vec![Instant::NEVER; SLOTS],
            base_tick: 0,
            far: BinaryHeap::new(),
            len: 0,
            in_slots: 0,
            sorted: None,
            spare: Vec::new(),
        }
    }
}

impl TimerWheel {
    /// Timers armed and not yet fired, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Arms `timer`.
    pub(crate) fn push(&mut self, timer: Timer) {
        self.len += 1;
        // A deadline in a drained tick fires at the next drain: file it in the base slot.
        let tick = tick_of(timer.0).max(self.base_tick);
        if tick - self.base_tick >= SLOTS as u64 {
            self.far.push(Reverse(timer));
            return;
        }
        let slot = (tick as usize) & (SLOTS - 1);
        if self.slots[slot].capacity() == 0 {
            if let Some(buffer) = self.spare.pop() {
                self.slots[slot] = buffer;
            }
        }
        self.slots[slot].push(timer);
        if self.sorted == Some(slot) {
            self.sorted = None;
        }
        self.in_slots += 1;
        self.occupied[slot / 64] |= 1 << (slot % 64);
        if timer.0 < self.slot_min[slot] {
            self.slot_min[slot] = timer.0;
        }
    }

    /// The earliest deadline of any armed timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let wheel = self.first_occupied().map(|slot| self.slot_min[slot]);
        let far = self.far.peek().map(|Reverse(t)| t.0);
        match (wheel, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The occupied slot of the earliest tick: the first occupied one from the base slot on,
    /// wrapping (every timer in the wheel has a tick in `base_tick..base_tick + SLOTS`).
    fn first_occupied(&self) -> Option<usize> {
        if self.in_slots == 0 {
            return None;
        }
        let start = (self.base_tick as usize) & (SLOTS - 1);
        self.next_occupied_from(start)
            .or_else(|| self.next_occupied_from(0))
    }

    /// The first occupied slot at or after `from` (no wrap).
    fn next_occupied_from(&self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        let mut bits = self.occupied[word] & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == WORDS {
                return None;
            }
            bits = self.occupied[word];
        }
    }

    /// Moves every timer with `deadline <= now` into `due`, in no particular order.
    pub(crate) fn drain_due(&mut self, now: Instant, due: &mut Vec<Timer>) {
        let before = due.len();
        let now_tick = tick_of(now);
        if now_tick >= self.base_tick {
            // Ticks before `now_tick` are wholly due; `now_tick`'s slot partly.
            let last = now_tick.min(self.base_tick + SLOTS as u64 - 1);
            while let Some(slot) = self.first_occupied() {
                let tick = self.tick_of_slot(slot);
                if tick > last {
                    break;
                }
                let timers = &mut self.slots[slot];
                if tick < now_tick {
                    due.append(timers);
                } else {
                    if self.slot_min[slot] > now {
                        break; // Nothing due in the current tick yet.
                    }
                    if self.sorted != Some(slot) {
                        timers.sort_unstable_by(|a, b| b.cmp(a));
                        self.sorted = Some(slot);
                    }
                    while let Some(&timer) = timers.last() {
                        if timer.0 > now {
                            break;
                        }
                        due.push(timer);
                        timers.pop();
                    }
                    if let Some(next) = timers.last() {
                        self.slot_min[slot] = next.0;
                        break;
                    }
                }
                if self.sorted == Some(slot) {
                    self.sorted = None;
                }
                self.slot_min[slot] = Instant::NEVER;
                self.occupied[slot / 64] &= !(1 << (slot % 64));
                let buffer = std::mem::take(&mut self.slots[slot]);
                if buffer.capacity() > 0 {
                    self.spare.push(buffer);
                }
            }
            self.base_tick = now_tick;
        }
        self.in_slots -= due.len() - before;
        while let Some(Reverse(timer)) = self.far.peek() {
            if timer.0 > now {
                break;
            }
            due.push(*timer);
            self.far.pop();
        }
        self.len -= due.len() - before;
    }

    /// The tick slot `slot` holds (its timers' ticks lie in `base_tick..base_tick + SLOTS`).
    fn tick_of_slot(&self, slot: usize) -> u64 {
        let base_slot = (self.base_tick as usize) & (SLOTS - 1);
        let ahead = (slot + SLOTS - base_slot) & (SLOTS - 1);
        self.base_tick + ahead as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;

    /// The wheel against a heap model: the same timers fire at every step (as sets), and the
    /// earliest deadline agrees, over random deadlines near and far and random time steps.
    #[test]
    fn fires_what_a_heap_fires() {
        let mut rng = Rng::new(3);
        let mut wheel = TimerWheel::default();
        let mut model: BinaryHeap<Reverse<Timer>> = BinaryHeap::new();
        let mut now = 5u64 << 30;
        let mut due = Vec::new();
        for i in 0..20_000u32 {
            for _ in 0..rng.below(4) {
                let ahead = match rng.below(10) {
                    0 => rng.below(5_000_000_000),
                    1 => 0,
                    _ => rng.below(20_000_000),
                };
                let timer = (Instant::from_nanos(now + ahead), i, rng.below(8) as u32, i);
                wheel.push(timer);
                model.push(Reverse(timer));
            }
            assert_eq!(wheel.len(), model.len());
            assert_eq!(wheel.in_slots + wheel.far.len(), wheel.len());
            assert_eq!(wheel.next_deadline(), model.peek().map(|Reverse(t)| t.0));
            now += match rng.below(20) {
                0 => rng.below(3_000_000_000),
                _ => rng.below(2_000_000),
            };
            due.clear();
            wheel.drain_due(Instant::from_nanos(now), &mut due);
            due.sort_unstable();
            let mut expected = Vec::new();
            while let Some(Reverse(t)) = model.peek() {
                if t.0.as_nanos() > now {
                    break;
                }
                expected.push(*t);
                model.pop();
            }
            assert_eq!(due, expected, "step {i}");
        }
    }
}
