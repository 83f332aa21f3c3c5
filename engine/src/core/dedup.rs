//! Duplicate suppression: one receive window per (sender, epoch) channel.
//!
//! Every ACK-required message from station S to station R carries a channel sequence number
//! (`sequence`) and S's incarnation (the top 32 bits of `request_id`, the *epoch*). S keeps at
//! most `channel_window` messages unresolved (neither ACKed nor dead-lettered) per
//! destination, and never sends sequence `n` while any sequence `<= n - WINDOW` is unresolved.
//! So when R sees sequence `n`, everything below `n - WINDOW + 1` is resolved at S and may be
//! forgotten, and the window of [`WINDOW`] bits tells exactly which recent sequences R has
//! seen. A handler therefore sees each message once, whatever the network duplicates or S
//! resends (`spec/model/Reliability-v1.md` §3).

/// Sequences tracked above the floor of a receive window.
pub const WINDOW: u32 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
const _: () = assert!(WINDOW % 64 == 0);

/// What to do with an arriving ACK-required message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: deliver it (then call [`ReceiveWindow::accept`]).
    New,
    /// Seen and delivered (or below the floor): acknowledge again, do not deliver.
    DeliveredBefore,
    /// Seen and still queued for its handler: ignore; the ACK follows delivery.
    Queued,
}

/// The receive window of one (sender, epoch) channel.
#[derive(Debug, Clone)]
pub struct ReceiveWindow {
    /// Every sequence before `floor` is resolved.
    floor: u32,
    /// Bit `seq % WINDOW`: seen (queued or delivered), for `seq` in `floor..floor + WINDOW`.
    seen: [u64; WORDS],
    /// Bit `seq % WINDOW`: delivered to its handler.
    delivered: [u64; WORDS],
}

impl Default for ReceiveWindow {
    fn default() -> Self {
        ReceiveWindow::new()
    }
}

impl ReceiveWindow {
    /// An empty window starting at sequence 0.
    pub const fn new() -> ReceiveWindow {
        ReceiveWindow {
            floor: 0,
            seen: [0; WORDS],
            delivered: [0; WORDS],
        }
    }

    fn bit(seq: u32) -> (usize, u64) {
        let index = seq % WINDOW;
        ((index / 64) as usize, 1u64 << (index % 64))
    }

    /// Offset of `seq` from the floor in serial-number arithmetic (negative: below the floor).
    fn offset(&self, seq: u32) -> i64 {
        i64::from(seq.wrapping_sub(self.floor) as i32)
    }

    /// An empty window whose first expected sequence is `floor`.
    pub const fn starting_at(floor: u32) -> ReceiveWindow {
        ReceiveWindow {
            floor,
            seen: [0; WORDS],
            delivered: [0; WORDS],
        }
    }

    /// Classifies `seq` without changing the window.
    pub fn classify(&self, seq: u32) -> Verdict {
        let offset = self.offset(seq);
        if offset < 0 {
            return Verdict::DeliveredBefore;
        }
        if offset >= i64::from(WINDOW) {
            return Verdict::New;
        }
        let (word, mask) = Self::bit(seq);
        if self.delivered[word] & mask != 0 {
            Verdict::DeliveredBefore
        } else if self.seen[word] & mask != 0 {
            Verdict::Queued
        } else {
            Verdict::New
        }
    }

    /// Records `seq` as seen (queued for its handler). Slides the window if `seq` is beyond it.
    pub fn accept(&mut self, seq: u32) {
        debug_assert_eq!(self.classify(seq), Verdict::New);
        let offset = self.offset(seq);
        if offset >= i64::from(WINDOW) {
            // The sender guarantees every sequence <= seq - WINDOW is resolved.
            self.slide_to(seq.wrapping_sub(WINDOW - 1));
        }
        let (word, mask) = Self::bit(seq);
        self.seen[word] |= mask;
    }

    /// Records `seq` as delivered. A sequence that slid out of the window meanwhile is already
    /// treated as delivered.
    pub fn deliver(&mut self, seq: u32) {
        let offset = self.offset(seq);
        if !(0..i64::from(WINDOW)).contains(&offset) {
            return;
        }
        let (word, mask) = Self::bit(seq);
        self.delivered[word] |= mask;
        // Advance the floor over the delivered prefix so the window keeps room ahead.
        while self.floor_delivered() {
            let (word, mask) = Self::bit(self.floor);
            self.seen[word] &= !mask;
            self.delivered[word] &= !mask;
            self.floor = self.floor.wrapping_add(1);
        }
    }

    fn floor_delivered(&self) -> bool {
        let (word, mask) = Self::bit(self.floor);
        self.delivered[word] & mask != 0
    }

    fn slide_to(&mut self, new_floor: u32) {
        let distance = new_floor.wrapping_sub(self.floor);
        if distance >= WINDOW {
            self.seen = [0; WORDS];
            self.delivered = [0; WORDS];
        } else {
            for i in 0..distance {
                let (word, mask) = Self::bit(self.floor.wrapping_add(i));
                self.seen[word] &= !mask;
                self.delivered[word] &= !mask;
            }
        }
        self.floor = new_floor;
    }

    /// The lowest sequence not known to be resolved.
    pub fn floor(&self) -> u32 {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_before_and_after_delivery() {
        let mut w = ReceiveWindow::new();
        assert_eq!(w.classify(0), Verdict::New);
        w.accept(0);
        assert_eq!(w.classify(0), Verdict::Queued);
        w.deliver(0);
        assert_eq!(w.classify(0), Verdict::DeliveredBefore);
        assert_eq!(w.floor(), 1);
    }

    #[test]
    fn out_of_order_and_gaps() {
        let mut w = ReceiveWindow::new();
        for seq in [5, 3, 9, 0] {
            assert_eq!(w.classify(seq), Verdict::New);
            w.accept(seq);
            w.deliver(seq);
        }
        assert_eq!(w.floor(), 1);
        for seq in [5, 3, 9, 0] {
            assert_eq!(w.classify(seq), Verdict::DeliveredBefore);
        }
        assert_eq!(w.classify(4), Verdict::New);
    }

    #[test]
    fn far_ahead_slides_and_forgets_resolved() {
        let mut w = ReceiveWindow::new();
        w.accept(2);
        w.deliver(2);
        let far = 5000;
        assert_eq!(w.classify(far), Verdict::New);
        w.accept(far);
        assert_eq!(w.floor(), far - WINDOW + 1);
        assert_eq!(w.classify(2), Verdict::DeliveredBefore);
        assert_eq!(w.classify(far), Verdict::Queued);
        assert_eq!(w.classify(far - 1), Verdict::New);
    }

    #[test]
    fn wraps_around_u32() {
        let start = u32::MAX - 10;
        let mut w = ReceiveWindow::starting_at(start);
        w.accept(start);
        for i in 0..30u32 {
            let seq = start.wrapping_add(i);
            if w.classify(seq) == Verdict::New {
                w.accept(seq);
            }
            w.deliver(seq);
        }
        assert_eq!(w.classify(start.wrapping_add(5)), Verdict::DeliveredBefore);
        assert_eq!(w.classify(start.wrapping_add(30)), Verdict::New);
    }
}
