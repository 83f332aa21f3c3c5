//! The fast-lane fixture shared by `benches/core.rs` and `examples/fast_lane_count.rs`: two
//! buses on one perfect link, driven by the real clock.

use std::hint::black_box;
use std::time::Instant as StdInstant;

use tamtam_engine::core::{
    Bus, BusConfig, Context, Event, Instant, LinkId, Message, Outgoing, Service,
};

/// The port the fast-lane receiver serves.
pub const SERVICE_PORT: u16 = 2000;
/// Cycles allowed for a batch to be confirmed before the benchmark gives up.
const CYCLES_PER_BATCH_MAX: usize = 64;

/// A handler that only looks at the payload, so the measurement is the bus's own cost.
pub fn sink() -> Box<dyn Service> {
    Box::new(|_: &mut Context<'_>, message: &Message<'_>| {
        black_box(message.payload.len());
    })
}

/// The bus's timeline follows the real clock, as a driver's would: RTT samples, retransmission
/// timers (one heap entry per transmission until its deadline passes), heartbeats and adverts
/// then cost what they cost at the measured message rate. A virtual clock advancing by a fixed
/// step would let the timer heap grow without bound at benchmark rates.
pub struct Clock(StdInstant);

impl Clock {
    pub fn new() -> Clock {
        Clock(StdInstant::now())
    }

    pub fn tick(&mut self) -> Instant {
        Instant::from_nanos(self.0.elapsed().as_nanos() as u64)
    }
}

/// Moves every frame `from` has queued to `to`, as a perfect link would; returns the count.
pub fn carry(from: &mut Bus, to: &mut Bus, to_link: LinkId, now: Instant) -> usize {
    let mut frames = 0;
    while let Some(transmit) = from.poll_transmit() {
        to.handle_frame(now, to_link, &transmit.frame);
        from.recycle(transmit.frame);
        frames += 1;
    }
    frames
}

/// Stations A (1) and B (2) on one perfect link, with routes both ways; B serves
/// [`SERVICE_PORT`].
pub struct Pair {
    pub a: Bus,
    pub b: Bus,
    a_link: LinkId,
    b_link: LinkId,
    clock: Clock,
}

impl Pair {
    pub fn new() -> Pair {
        let mut clock = Clock::new();
        let mut a = Bus::new(BusConfig::new(1)).expect("config");
        let mut b = Bus::new(BusConfig::new(2)).expect("config");
        b.serve(SERVICE_PORT, sink()).expect("serve");
        let a_link = a.add_link(clock.tick());
        let b_link = b.add_link(clock.tick());
        let mut pair = Pair {
            a,
            b,
            a_link,
            b_link,
            clock,
        };
        for _ in 0..16 {
            pair.round_trip();
        }
        assert!(pair.a.topology().route(2).is_some(), "A routes to B");
        assert!(pair.b.topology().route(1).is_some(), "B routes to A");
        while pair.a.poll_event().is_some() {}
        while pair.b.poll_event().is_some() {}
        pair
    }

    /// A cycles, its frames reach B, B cycles, its frames reach A.
    fn round_trip(&mut self) {
        let now = self.clock.tick();
        self.a.cycle(now);
        carry(&mut self.a, &mut self.b, self.b_link, now);
        let now = self.clock.tick();
        self.b.cycle(now);
        carry(&mut self.b, &mut self.a, self.a_link, now);
    }

    /// Sends `count` messages from A to B and runs round trips until A has seen every
    /// `Delivered` event.
    pub fn confirm(&mut self, count: usize, payload: &[u8]) {
        let now = self.clock.tick();
        for _ in 0..count {
            let message = Outgoing::to_station(2, SERVICE_PORT, payload.to_vec());
            self.a.send(now, message).expect("send");
        }
        let mut delivered = 0;
        for _ in 0..CYCLES_PER_BATCH_MAX {
            self.round_trip();
            while let Some(event) = self.a.poll_event() {
                if matches!(event, Event::Delivered { .. }) {
                    delivered += 1;
                }
            }
            if delivered == count {
                return;
            }
        }
        panic!("only {delivered} of {count} messages confirmed");
    }
}
