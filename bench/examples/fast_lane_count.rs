//! Runs the fast-lane path of `benches/core.rs` (`fast_lane/batch_1000` or `single`) a given
//! number of times, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/examples/fast_lane_count batch 20`.
//! Two runs with different counts give the cost per message as the difference.

use std::hint::black_box;
use std::time::Instant as StdInstant;

use tamtam_engine::core::{
    Bus, BusConfig, Context, Event, Instant, LinkId, Message, Outgoing, Service,
};

const SERVICE_PORT: u16 = 2000;

fn sink() -> Box<dyn Service> {
    Box::new(|_: &mut Context<'_>, message: &Message<'_>| {
        black_box(message.payload.len());
    })
}

struct Clock(StdInstant);
impl Clock {
    fn tick(&mut self) -> Instant {
        Instant::from_nanos(self.0.elapsed().as_nanos() as u64)
    }
}

fn carry(from: &mut Bus, to: &mut Bus, to_link: LinkId, now: Instant) {
    while let Some(t) = from.poll_transmit() {
        to.handle_frame(now, to_link, &t.frame);
        from.recycle(t.frame);
    }
}

struct Pair {
    a: Bus,
    b: Bus,
    a_link: LinkId,
    b_link: LinkId,
    clock: Clock,
}

impl Pair {
    fn round_trip(&mut self) {
        let now = self.clock.tick();
        self.a.cycle(now);
        carry(&mut self.a, &mut self.b, self.b_link, now);
        let now = self.clock.tick();
        self.b.cycle(now);
        carry(&mut self.b, &mut self.a, self.a_link, now);
    }
    fn confirm(&mut self, count: usize, payload: &[u8]) {
        let now = self.clock.tick();
        for _ in 0..count {
            let m = Outgoing::to_station(2, SERVICE_PORT, payload.to_vec());
            self.a.send(now, m).expect("send");
        }
        let mut delivered = 0;
        for _ in 0..64 {
            self.round_trip();
            while let Some(e) = self.a.poll_event() {
                if matches!(e, Event::Delivered { .. }) {
                    delivered += 1;
                }
            }
            if delivered == count {
                return;
            }
        }
        panic!("only {delivered} of {count}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = if args.get(1).map(String::as_str) == Some("single") {
        1
    } else {
        1000
    };
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut clock = Clock(StdInstant::now());
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
    while pair.a.poll_event().is_some() {}
    let payload = vec![0xa5u8; 64];
    for _ in 0..reps {
        pair.confirm(batch, &payload);
    }
}
