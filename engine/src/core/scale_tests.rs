//! Per-cycle cost with many ports and links, and the delivery order it must keep. Goal: a
//! cycle's scans are proportional to the ports with something waiting and the links with a
//! deadline due, not to the ports served and links held (`spec/model/Cycle-v1.md` §5, C1),
//! while the deliver side stays exactly as `spec/model/Fairness-v1.md` §2 and
//! `spec/model/Cycle-v1.md` §3.4–3.5 define it. Costs are asserted on `Bus::scan_visits`,
//! never on time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::rng::Rng;
use super::wire::frame::{self, Flags, Header, Lane, PacketType};
use super::*;

/// Handler calls in the order they happened: the port of each.
type Deliveries = Arc<Mutex<Vec<u16>>>;

fn recorder(log: &Deliveries) -> Box<dyn Service> {
    let log = log.clone();
    Box::new(move |ctx: &mut Context<'_>, _: &Message<'_>| {
        log.lock().unwrap().push(ctx.port());
    })
}

fn heartbeat(station: u32) -> Vec<u8> {
    let header = Header {
        sender_id: station,
        request_id: 1 << 32,
        ..Header::new(Lane::Fast, PacketType::Heartbeat)
    };
    frame::encode_to_vec(&header, &[]).unwrap()
}

/// An ACK-required DATA frame from station 2 (incarnation 1), channel sequence `seq`, to
/// `port` of station 1.
fn data(port: u16, seq: u32) -> Vec<u8> {
    let header = Header {
        flags: Flags::ACK_REQUIRED,
        sender_id: 2,
        recipient_id: 1,
        recipient_port: port,
        sender_port: 5000,
        route_id: 1,
        request_id: (1 << 32) | u64::from(seq),
        sequence: seq,
        hop_limit: 8,
        ..Header::new(Lane::Fast, PacketType::Data)
    };
    frame::encode_to_vec(&header, &seq.to_le_bytes()).unwrap()
}

fn drain(bus: &mut Bus) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(t) = bus.poll_transmit() {
        frames.push(t.frame);
    }
    frames
}

fn heartbeats_in(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| {
            frame::FrameView::decode(f, Default::default())
                .is_ok_and(|v| v.header().packet_type == PacketType::Heartbeat)
        })
        .count()
}

#[test]
fn idle_cycles_with_ten_thousand_ports_and_many_links_look_at_nothing() {
    // Method: station 1 serves 10 000 ports and holds 200 links, each with a live neighbour.
    // Once the greetings are out, cycles at the same instant must visit no port and no link;
    // one queued message costs a handful of visits; the heartbeat and dead-man deadlines of
    // all 200 links still fire on time, and only then are the links looked at.
    const PORTS: u16 = 10_000;
    const LINKS: u32 = 200;
    let log: Deliveries = Arc::default();
    let mut bus = Bus::new(BusConfig::new(1)).unwrap();
    for i in 0..PORTS {
        bus.serve(1101 + i, recorder(&log)).unwrap();
    }
    let mut now = Instant::ZERO;
    let links: Vec<LinkId> = (0..LINKS).map(|_| bus.add_link(now)).collect();
    for (i, &link) in links.iter().enumerate() {
        bus.handle_frame(now, link, &heartbeat(100 + i as u32));
    }
    now = now + Duration::from_millis(1);
    bus.cycle(now);
    drain(&mut bus);
    while bus.poll_event().is_some() {}
    assert_eq!(bus.topology().neighbours().len(), LINKS as usize);

    let before = bus.scan_visits();
    for _ in 0..1000 {
        now = now + Duration::from_micros(1);
        let report = bus.cycle(now);
        assert_eq!(report.work, 0, "an idle cycle did work: {report:?}");
    }
    assert_eq!(
        bus.scan_visits(),
        before,
        "idle cycles looked at ports or links"
    );

    // One message to one port: the cycle looks at that port only (order, expiry, one
    // round's waiting count, the backlog check, and the next round's count).
    bus.handle_frame(now, links[0], &data(1101 + PORTS / 2, 1));
    let before = bus.scan_visits();
    now = now + Duration::from_micros(1);
    let report = bus.cycle(now);
    assert_eq!(report.delivered, 1);
    assert_eq!(*log.lock().unwrap(), vec![1101 + PORTS / 2]);
    let visited = bus.scan_visits() - before;
    assert!(
        (1..=8).contains(&visited),
        "one message cost {visited} visits"
    );
    drain(&mut bus);
    let before = bus.scan_visits();
    now = now + Duration::from_micros(1);
    bus.cycle(now);
    assert_eq!(bus.scan_visits(), before, "the emptied port stayed listed");

    // Heartbeats: every link gets one once `heartbeat_interval` has passed since its last.
    let start = now;
    let mut sent = 0;
    let mut cycles = 0;
    while now.saturating_since(start) < Duration::from_millis(150) {
        now = now + Duration::from_millis(1);
        bus.cycle(now);
        sent += heartbeats_in(&drain(&mut bus));
        cycles += 1;
    }
    assert_eq!(
        sent, LINKS as usize,
        "one heartbeat per link in 150 ms ({cycles} cycles)"
    );
    let visits = bus.scan_visits() - before;
    assert!(
        visits <= 3 * u64::from(LINKS),
        "{cycles} cycles over 150 ms looked at {visits} entries"
    );

    // Dead-man: the neighbours stay silent; every link is declared dead after `dead_after`.
    let mut down = 0;
    for _ in 0..1200 {
        now = now + Duration::from_millis(1);
        bus.cycle(now);
        drain(&mut bus);
        while let Some(event) = bus.poll_event() {
            down += usize::from(matches!(event, Event::PeerDown { .. }));
        }
        if down == LINKS as usize {
            break;
        }
    }
    assert_eq!(down, LINKS as usize, "every silent neighbour declared down");
    assert!(bus.topology().neighbours().is_empty());
}

#[test]
fn removed_link_leaves_no_deadline_behind() {
    // Method: remove some of a bus's links, then run past every deadline: only the links left
    // get heartbeats, and `poll_timeout` keeps pointing at a deadline of a link that exists.
    let mut bus = Bus::new(BusConfig::new(1)).unwrap();
    let mut now = Instant::ZERO;
    let links: Vec<LinkId> = (0..10).map(|_| bus.add_link(now)).collect();
    for &link in links.iter().step_by(2) {
        bus.remove_link(link);
    }
    bus.cycle(now);
    drain(&mut bus);
    let mut sent = 0;
    for _ in 0..150 {
        now = now + Duration::from_millis(1);
        bus.cycle(now);
        sent += heartbeats_in(&drain(&mut bus));
        let next = bus.poll_timeout().unwrap();
        assert!(next > now, "a deadline at {next:?} is overdue at {now:?}");
    }
    assert_eq!(sent, 5, "one heartbeat per link left");
}

/// The deliver side of `Fairness-v1.md` §2 over queue depths: the ports each cycle's handler
/// calls go to, in order.
struct Model {
    depth: BTreeMap<u16, usize>,
    cursor: u16,
    budget: usize,
    quantum: usize,
    share_cap: usize,
}

impl Model {
    fn cycle(&mut self) -> Vec<u16> {
        let waiting: Vec<u16> = self
            .depth
            .iter()
            .filter(|&(_, &d)| d > 0)
            .map(|(&p, _)| p)
            .collect();
        // Cycle-v1.md §3.4: applications (101+) ascending from the cursor, wrapping; then
        // 100 down to 0.
        let mut order: Vec<u16> = waiting
            .iter()
            .copied()
            .filter(|&p| p > 100 && p >= self.cursor)
            .collect();
        order.extend(
            waiting
                .iter()
                .copied()
                .filter(|&p| p > 100 && p < self.cursor),
        );
        order.extend(waiting.iter().rev().copied().filter(|&p| p <= 100));
        if let Some(&first) = order.first() {
            self.cursor = first.wrapping_add(1);
        }
        let mut out = Vec::new();
        let mut used: BTreeMap<u16, usize> = BTreeMap::new();
        let mut progress = true;
        while progress && out.len() < self.budget {
            progress = false;
            let waiting = order.iter().filter(|p| self.depth[p] > 0).count();
            for &p in &order {
                let u = used.get(&p).copied().unwrap_or(0);
                if waiting > 1 && u >= self.share_cap {
                    continue;
                }
                let mut n = 0;
                while n < self.quantum && out.len() < self.budget && self.depth[&p] > 0 {
                    *self.depth.get_mut(&p).unwrap() -= 1;
                    out.push(p);
                    n += 1;
                }
                if n > 0 {
                    progress = true;
                    *used.entry(p).or_default() += n;
                }
            }
        }
        out
    }
}

#[test]
fn delivery_order_and_fairness_across_many_ports_follow_the_spec() {
    // Method: a station serving 2 000 application ports and some middleware and system ports
    // gets random bursts of messages to random ports (seeded), with a small deliver budget,
    // quantum and share so that rounds, share caps, backlog and rotation all bind. Every
    // cycle's sequence of handler calls must equal the spec's algorithm run over the same
    // queue depths, and no port may get more than the quantum in a row while another waits.
    for seed in 1..=4u64 {
        let mut rng = Rng::new(seed);
        let mut config = BusConfig::new(1);
        config.deliver_budget = 40;
        config.consecutive_per_recipient_max = 3;
        config.service_share_percent = 20;
        let quantum = config.consecutive_per_recipient_max as usize;
        let share_cap =
            (config.deliver_budget * config.service_share_percent as usize / 100).max(1);
        let mut model = Model {
            depth: BTreeMap::new(),
            cursor: 0,
            budget: config.deliver_budget,
            quantum,
            share_cap,
        };
        let mut bus = Bus::new(config).unwrap();
        let log: Deliveries = Arc::default();
        let mut ports: Vec<u16> = (0..2000).map(|i| 101 + i * 31).collect();
        ports.extend([11, 12, 57, 100]);
        for &port in &ports {
            bus.serve(port, recorder(&log)).unwrap();
        }
        for port in [3u16, 7, 10] {
            bus.serve_system(port, recorder(&log)).unwrap();
            ports.push(port);
        }
        let now = Instant::ZERO;
        let link = bus.add_link(now);
        bus.handle_frame(now, link, &heartbeat(2));
        bus.cycle(now);
        drain(&mut bus);
        let mut seq = 0u32;
        let mut delivered = 0;
        for cycle in 0..300 {
            // Bursts in the first 200 cycles, then the backlog drains.
            if cycle < 200 && rng.next_u64() % 3 == 0 {
                let burst = 1 + rng.next_u64() % 12;
                for _ in 0..burst {
                    let port = ports[(rng.next_u64() % ports.len() as u64) as usize];
                    let count = 1 + rng.next_u64() % 8;
                    for _ in 0..count {
                        seq += 1;
                        bus.handle_frame(now, link, &data(port, seq));
                        *model.depth.entry(port).or_default() += 1;
                    }
                }
            }
            let expected = model.cycle();
            let report = bus.cycle(now);
            drain(&mut bus);
            let got = std::mem::take(&mut *log.lock().unwrap());
            assert_eq!(got, expected, "seed {seed} cycle {cycle}: delivery order");
            assert_eq!(report.delivered, got.len());
            assert_eq!(
                report.backlog,
                model.depth.values().any(|&d| d > 0),
                "seed {seed} cycle {cycle}: backlog"
            );
            // D1: no run longer than the quantum while another port of the cycle waited.
            let runs: Vec<&[u16]> = got.chunk_by(|a, b| a == b).collect();
            for run in runs.iter().rev().skip(1) {
                assert!(
                    run.len() <= quantum,
                    "seed {seed} cycle {cycle}: {} in a row to port {}",
                    run.len(),
                    run[0]
                );
            }
            delivered += got.len();
        }
        assert_eq!(delivered as u32, seq, "seed {seed}: everything delivered");
        assert_eq!(bus.stats().busy_sent, 0);
    }
}

#[test]
fn expired_stream_frames_leave_their_port_idle() {
    // Method: stream frames with a lifetime of 1 cycle wait on a port behind a backlog of
    // messages on other ports (deliver budget 1); once they expired, the port must not be
    // looked at again.
    let mut config = BusConfig::new(1);
    config.deliver_budget = 1;
    let mut bus = Bus::new(config).unwrap();
    let log: Deliveries = Arc::default();
    for port in [2000u16, 3000] {
        bus.serve(port, recorder(&log)).unwrap();
    }
    bus.subscribe(3000);
    for i in 0..5000u16 {
        bus.serve(4000 + i, recorder(&log)).unwrap();
    }
    let now = Instant::ZERO;
    let link = bus.add_link(now);
    bus.handle_frame(now, link, &heartbeat(2));
    bus.cycle(now);
    drain(&mut bus);
    for seq in 1..=3 {
        bus.handle_frame(now, link, &data(2000, seq));
    }
    let stream = Header {
        sender_id: 2,
        recipient_id: 1,
        recipient_port: 3000,
        sender_port: 3000,
        route_id: 9,
        request_id: (1 << 32) | 9,
        sequence: 0,
        hop_limit: 8,
        lifetime: 1,
        ..Header::new(Lane::Stream, PacketType::Stream)
    };
    for seq in 0..4 {
        let header = Header {
            sequence: seq,
            ..stream
        };
        bus.handle_frame(now, link, &frame::encode_to_vec(&header, b"s").unwrap());
    }
    // Cycle 1: port 2000 (first from the cursor) gets the single delivery; the stream
    // frames wait. Cycle 2: they expired; port 2000 again. Cycle 3: port 2000's last.
    for _ in 0..3 {
        bus.cycle(now);
        drain(&mut bus);
    }
    assert_eq!(*log.lock().unwrap(), vec![2000, 2000, 2000]);
    assert_eq!(bus.stats().stream_expired, 4);
    let before = bus.scan_visits();
    let report = bus.cycle(now);
    assert!(!report.backlog);
    assert_eq!(
        bus.scan_visits(),
        before,
        "a port with expired frames stayed listed"
    );
}

#[test]
fn an_advert_to_many_links_is_one_encoding_within_the_control_budget() {
    // Method: 25 neighbours come up at once on a bus whose transmit budget is 10 frames per
    // cycle. Their 25 heartbeat answers and the advert to all 25 links queue as control
    // frames: every cycle queues at most 10, in order (heartbeats first), and every link gets
    // the same advert bytes exactly once.
    let mut config = BusConfig::new(1);
    config.transmit_budget = 10;
    let mut bus = Bus::new(config).unwrap();
    bus.serve(2000, recorder(&Arc::default())).unwrap();
    let now = Instant::ZERO;
    let links: Vec<LinkId> = (0..25).map(|_| bus.add_link(now)).collect();
    // The 25 greetings take three cycles.
    for _ in 0..3 {
        bus.cycle(now);
        assert!(drain(&mut bus).len() <= 10);
    }
    bus.cycle(now);
    assert!(drain(&mut bus).is_empty(), "greetings still queued");
    for (i, &link) in links.iter().enumerate() {
        bus.handle_frame(now, link, &heartbeat(100 + i as u32));
    }
    let mut adverts: Vec<(LinkId, Vec<u8>)> = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..10 {
        bus.cycle(now);
        let mut frames = 0;
        while let Some(t) = bus.poll_transmit() {
            frames += 1;
            let view = frame::FrameView::decode(&t.frame, Default::default()).unwrap();
            let header = view.header();
            kinds.push(header.packet_type);
            if header.packet_type == PacketType::Control {
                adverts.push((t.link, t.frame.clone()));
            }
        }
        assert!(frames <= 10, "{frames} control frames in one cycle");
    }
    let first_advert = kinds
        .iter()
        .position(|k| *k == PacketType::Control)
        .unwrap();
    assert_eq!(
        first_advert, 25,
        "the heartbeat answers go first: {kinds:?}"
    );
    let mut to: Vec<LinkId> = adverts.iter().map(|(l, _)| *l).collect();
    to.sort_unstable();
    assert_eq!(to, links, "one advert per link");
    assert!(adverts.iter().all(|(_, f)| *f == adverts[0].1));
}
