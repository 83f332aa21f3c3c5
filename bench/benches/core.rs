//! Micro-benchmarks of the Safari Bus core (`tamtam_engine::core`), with no I/O: buses are
//! wired by hand as in `engine/src/core/tests.rs`, and `now` is read from the real clock, as a
//! driver would.
//!
//! What each measures:
//! - `cycle/queued/{1,100,10000}`: one `Bus::cycle` on a station serving N ports with one
//!   ACK-required fast-lane message queued on each (deliver phase: tees, handler, dedup window,
//!   ACK bookkeeping; commit phase: ACK frames encoded for the link). Only the cycle is timed;
//!   feeding the N frames through `handle_frame` and draining the ACK frames is not. The deliver
//!   and transmit budgets are raised to 16 384 so that one cycle serves every port (with the
//!   default 4096 the 10 000-port case would take three cycles).
//! - `cycle/idle/{1,100,10000}`: one `Bus::cycle` on a station serving N ports with nothing
//!   queued: the fixed cost of a cycle and how it grows with the number of ports.
//! - `fast_lane/single`, `fast_lane/batch_1000`: the whole fast-lane path through two cores,
//!   per message: station A `send` → A `cycle` (encode) → B `handle_frame` (decode, CRC, dedup,
//!   queue) → B `cycle` (deliver, ACK) → A `handle_frame` (ACK, RTT) → A sees
//!   `Event::Delivered`. The batch sends 1000 messages and cycles until all 1000 are confirmed
//!   (the default channel window of 512 makes that two round trips); the single case sends one
//!   message per round trip. 64-byte payloads, default configuration otherwise.
//! - `dedup/in_order`: `ReceiveWindow` classify + accept + deliver of consecutive sequences.
//!
//! Run: `cargo bench -p tamtam-bench --bench core -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{BenchmarkId, Criterion, Throughput};

mod common;
use common::{Clock, Pair, sink};
use tamtam_engine::core::dedup::{ReceiveWindow, Verdict};
use tamtam_engine::core::wire::frame::{self, Flags, Header, Lane, PacketType};
use tamtam_engine::core::{Bus, BusConfig, LinkId};

/// Port counts of the cycle benchmarks.
const PORT_COUNTS: [usize; 3] = [1, 100, 10_000];
/// First port served in the cycle benchmarks (application range).
const PORT_FIRST: u16 = 1101;
/// Messages per iteration of the batched fast-lane benchmark.
const BATCH: usize = 1000;
/// Payload bytes of every benchmark message.
const PAYLOAD_LEN: usize = 64;
/// Budgets of the cycle benchmark, large enough for one cycle to serve every port.
const CYCLE_BUDGET: usize = 16_384;

/// Drops every queued frame of `bus` (its buffers go back to the pool).
fn discard(bus: &mut Bus) {
    while let Some(transmit) = bus.poll_transmit() {
        bus.recycle(transmit.frame);
    }
}

/// A heartbeat from station `station`, which introduces it as the neighbour on a link.
fn heartbeat(station: u32) -> Vec<u8> {
    let header = Header {
        sender_id: station,
        request_id: 1 << 32,
        ..Header::new(Lane::Fast, PacketType::Heartbeat)
    };
    frame::encode_to_vec(&header, &[]).expect("heartbeat")
}

/// Station 1 serving `ports` application ports, with station 2 as a live neighbour on one link
/// (so ACKs have a route). Returns the bus and the link.
fn receiver(ports: usize, clock: &mut Clock) -> (Bus, LinkId) {
    let mut config = BusConfig::new(1);
    config.deliver_budget = CYCLE_BUDGET;
    config.transmit_budget = CYCLE_BUDGET;
    let mut bus = Bus::new(config).expect("config");
    for i in 0..ports {
        bus.serve(PORT_FIRST + i as u16, sink()).expect("serve");
    }
    let link = bus.add_link(clock.tick());
    bus.handle_frame(clock.tick(), link, &heartbeat(2));
    bus.cycle(clock.tick());
    discard(&mut bus);
    assert!(
        bus.topology().route(2).is_some(),
        "station 2 is a neighbour"
    );
    (bus, link)
}

/// One ACK-required fast-lane DATA frame from station 2 (incarnation 1) on channel sequence
/// `seq` to `port` of station 1.
fn data_frame(port: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        flags: Flags::ACK_REQUIRED,
        sender_id: 2,
        recipient_id: 1,
        recipient_port: port,
        sender_port: 5000,
        route_id: 1,
        request_id: (1 << 32) | u64::from(seq),
        sequence: seq,
        hop_limit: 16,
        ..Header::new(Lane::Fast, PacketType::Data)
    };
    frame::encode_to_vec(&header, payload).expect("data frame")
}

fn bench_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle");
    let payload = vec![0x5a; PAYLOAD_LEN];
    for ports in PORT_COUNTS {
        if ports >= 10_000 {
            group.sample_size(20);
        } else {
            group.sample_size(100);
        }
        let mut clock = Clock::new();
        let (mut bus, link) = receiver(ports, &mut clock);
        let mut seq = 0u32;
        group.throughput(Throughput::Elements(ports as u64));
        group.bench_function(BenchmarkId::new("queued", ports), |b| {
            b.iter_custom(|iters| {
                let mut total = StdDuration::ZERO;
                for _ in 0..iters {
                    let now = clock.tick();
                    for i in 0..ports {
                        let frame = data_frame(PORT_FIRST + i as u16, seq, &payload);
                        seq = seq.wrapping_add(1);
                        bus.handle_frame(now, link, &frame);
                    }
                    let now = clock.tick();
                    let start = StdInstant::now();
                    let report = bus.cycle(now);
                    total += start.elapsed();
                    assert_eq!(report.delivered, ports, "one cycle serves every port");
                    discard(&mut bus);
                }
                total
            })
        });

        let mut clock = Clock::new();
        let (mut bus, _) = receiver(ports, &mut clock);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("idle", ports), |b| {
            b.iter(|| {
                let report = bus.cycle(clock.tick());
                discard(&mut bus);
                black_box(report)
            })
        });
    }
    group.finish();
}

fn bench_fast_lane(c: &mut Criterion) {
    let mut group = c.benchmark_group("fast_lane");
    let payload = vec![0xa5; PAYLOAD_LEN];
    let mut pair = Pair::new();
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| b.iter(|| pair.confirm(1, &payload)));
    let mut pair = Pair::new();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new("batch", BATCH), |b| {
        b.iter(|| pair.confirm(BATCH, &payload))
    });
    group.finish();
}

fn bench_dedup(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedup");
    let mut window = ReceiveWindow::new();
    let mut seq = 0u32;
    group.throughput(Throughput::Elements(1));
    group.bench_function("in_order", |b| {
        b.iter(|| {
            let verdict = window.classify(black_box(seq));
            debug_assert_eq!(verdict, Verdict::New);
            window.accept(seq);
            window.deliver(seq);
            seq = seq.wrapping_add(1);
            black_box(verdict)
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_cycle(&mut criterion);
    bench_fast_lane(&mut criterion);
    bench_dedup(&mut criterion);
    criterion.final_summary();
}
