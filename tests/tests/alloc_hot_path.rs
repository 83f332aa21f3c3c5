//! Goal: the fast lane's steady state does not allocate per message in the core. Method: a
//! counting global allocator; two buses wired by a perfect in-memory link (as the driver
//! would, recycling transmitted buffers); after a warm-up that fills pools and maps, count the
//! heap allocations made while 1,000 ACK-required messages go send → deliver → ACK.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tamtam_engine::core::{
    Bus, BusConfig, Context, Duration, Event, Instant, LinkId, Message, Outgoing,
};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn carry(from: &mut Bus, to: &mut Bus, to_link: LinkId, now: Instant) {
    while let Some(t) = from.poll_transmit() {
        to.handle_frame(now, to_link, &t.frame);
        from.recycle(t.frame);
    }
}

fn round(a: &mut Bus, b: &mut Bus, la: LinkId, lb: LinkId, now: &mut Instant, payload: Vec<u8>) {
    a.send(*now, Outgoing::to_station(2, 2000, payload))
        .unwrap();
    for _ in 0..8 {
        *now = *now + Duration::from_micros(50);
        a.cycle(*now);
        carry(a, b, lb, *now);
        b.cycle(*now);
        carry(b, a, la, *now);
        let mut delivered = false;
        while let Some(e) = a.poll_event() {
            delivered |= matches!(e, Event::Delivered { .. });
        }
        while b.poll_event().is_some() {}
        if delivered {
            return;
        }
    }
    panic!("not delivered");
}

#[test]
fn steady_fast_lane_allocations_per_message() {
    let mut a = Bus::new(BusConfig::new(1)).unwrap();
    let mut b = Bus::new(BusConfig::new(2)).unwrap();
    b.serve(
        2000,
        Box::new(|_: &mut Context<'_>, m: &Message<'_>| {
            std::hint::black_box(m.payload.len());
        }),
    )
    .unwrap();
    let mut now = Instant::ZERO;
    let la = a.add_link(now);
    let lb = b.add_link(now);
    for _ in 0..50 {
        now = now + Duration::from_millis(1);
        a.cycle(now);
        carry(&mut a, &mut b, lb, now);
        b.cycle(now);
        carry(&mut b, &mut a, la, now);
    }
    let payloads: Vec<Vec<u8>> = (0..3000).map(|i| vec![i as u8; 64]).collect();
    let mut payloads = payloads.into_iter();
    for _ in 0..2000 {
        round(&mut a, &mut b, la, lb, &mut now, payloads.next().unwrap());
    }
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..1000 {
        round(&mut a, &mut b, la, lb, &mut now, payloads.next().unwrap());
    }
    COUNTING.store(false, Ordering::Relaxed);
    let per_message = ALLOCS.load(Ordering::Relaxed) as f64 / 1000.0;
    eprintln!("allocations per fast-lane message (send→deliver→ACK): {per_message:.2}");
    // Was 18 per message before the cycle's working buffers and payload buffers were reused.
    assert!(per_message < 0.05, "{per_message} allocations per message");
}
