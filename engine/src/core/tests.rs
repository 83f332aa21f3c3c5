//! Unit harness: a few buses wired by perfect links, stepped in virtual time. Goal: check the
//! bus's main paths (fast lane with ACK, multi-hop forwarding, service fallback, streams, bulk
//! through an in-memory spool) on a network without faults. The seeded faulty network lives in
//! the simulator (`tests/`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::bulk::{IoOutcome, IoRequest};
use super::*;

type Log = Arc<Mutex<Vec<(u32, u16, Vec<u8>)>>>;

struct Net {
    buses: Vec<Bus>,
    /// (bus index, link) -> (bus index, link)
    wires: HashMap<(usize, LinkId), (usize, LinkId)>,
    now: Instant,
    spools: HashMap<(usize, String), BTreeMap<u64, Vec<u8>>>,
    sources: HashMap<(usize, u64), Vec<u8>>,
}

impl Net {
    fn new(n: u32) -> Net {
        let buses = (1..=n)
            .map(|id| {
                let mut config = BusConfig::new(id);
                config.rto_initial = Duration::from_millis(5);
                Bus::new(config).unwrap()
            })
            .collect();
        Net {
            buses,
            wires: HashMap::new(),
            now: Instant::ZERO,
            spools: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    fn wire(&mut self, a: usize, b: usize) {
        let la = self.buses[a].add_link(self.now);
        let lb = self.buses[b].add_link(self.now);
        self.wires.insert((a, la), (b, lb));
        self.wires.insert((b, lb), (a, la));
    }

    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(1);
        for i in 0..self.buses.len() {
            self.buses[i].cycle(self.now);
        }
        for i in 0..self.buses.len() {
            while let Some(t) = self.buses[i].poll_transmit() {
                if let Some(&(j, link)) = self.wires.get(&(i, t.link)) {
                    self.buses[j].handle_frame(self.now, link, &t.frame);
                }
            }
            while let Some(io) = self.buses[i].poll_io() {
                let id = io.id();
                let outcome = match io {
                    IoRequest::SpoolOpen {
                        key, segment_len, ..
                    } => {
                        // What a spool kept from before (a resumed object) is reported stored.
                        let spool = self.spools.entry((i, key)).or_default();
                        let stored = spool
                            .keys()
                            .map(|&offset| ((offset / u64::from(segment_len)) as u32, 1))
                            .collect();
                        IoOutcome::Opened { stored }
                    }
                    IoRequest::SpoolWrite {
                        key, offset, data, ..
                    } => {
                        self.spools
                            .entry((i, key))
                            .or_default()
                            .insert(offset, data);
                        IoOutcome::Written
                    }
                    IoRequest::SpoolFinish { key, crc32c, .. } => {
                        let bytes: Vec<u8> =
                            self.spools[&(i, key)].values().flatten().copied().collect();
                        if crc32c::crc32c(&bytes) == crc32c {
                            IoOutcome::Finished
                        } else {
                            IoOutcome::Failed(bulk::IoFailure::CrcMismatch)
                        }
                    }
                    IoRequest::SourceRead {
                        transfer,
                        offset,
                        len,
                        ..
                    } => {
                        let src = &self.sources[&(i, transfer)];
                        let end = (offset + u64::from(len)) as usize;
                        IoOutcome::Read(src[offset as usize..end].to_vec())
                    }
                };
                self.buses[i].handle_io(self.now, id, outcome);
            }
        }
    }

    fn run_until(&mut self, steps: usize, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        for _ in 0..steps {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }
}

fn recorder(log: &Log) -> Box<dyn Service> {
    let log = log.clone();
    Box::new(move |ctx: &mut Context<'_>, m: &Message<'_>| {
        log.lock()
            .unwrap()
            .push((ctx.station_id(), m.port(), m.payload.to_vec()));
    })
}

fn events(bus: &mut Bus) -> Vec<Event> {
    std::iter::from_fn(|| bus.poll_event()).collect()
}

#[test]
fn fast_message_over_three_hops_is_delivered_once_and_acked() {
    let mut net = Net::new(4);
    net.wire(0, 1);
    net.wire(1, 2);
    net.wire(2, 3);
    let log: Log = Arc::default();
    net.buses[3].serve(2000, recorder(&log)).unwrap();
    // Discovery converges.
    assert!(net.run_until(200, |n| n.buses[0].topology().route(4).is_some()));
    let id = net.buses[0]
        .send(
            net.now,
            Outgoing::to_station(4, 2000, b"hello".to_vec()).traced(),
        )
        .unwrap();
    let mut acked = false;
    assert!(net.run_until(200, |n| {
        acked |= events(&mut n.buses[0])
            .iter()
            .any(|e| matches!(e, Event::Delivered { request_id, .. } if *request_id == id));
        acked
    }));
    assert_eq!(
        log.lock().unwrap().as_slice(),
        &[(4, 2000, b"hello".to_vec())]
    );
}

#[test]
fn service_request_reply_and_language_fallback() {
    let mut net = Net::new(3);
    net.wire(0, 1);
    net.wire(1, 2);
    // Station 3 serves the AI port only; a request for Czech (150) falls back to it.
    net.buses[2]
        .serve(
            1001,
            Box::new(|ctx: &mut Context<'_>, m: &Message<'_>| {
                let mut answer = b"ai:".to_vec();
                answer.extend_from_slice(m.payload);
                ctx.reply(m, answer);
            }),
        )
        .unwrap();
    assert!(net.run_until(200, |n| !n.buses[0].topology().servers_of(1001).is_empty()));
    net.buses[0]
        .send(
            net.now,
            Outgoing::to_service(150, b"dobry den".to_vec()).route(77),
        )
        .unwrap();
    let mut reply = None;
    assert!(net.run_until(300, |n| {
        for e in events(&mut n.buses[0]) {
            if let Event::Reply {
                from,
                route_id,
                payload,
                ..
            } = e
            {
                reply = Some((from, route_id, payload));
            }
        }
        reply.is_some()
    }));
    assert_eq!(reply.unwrap(), (3, 77, b"ai:dobry den".to_vec()));
}

#[test]
fn unknown_port_is_dead_lettered_with_reason() {
    let mut net = Net::new(2);
    net.wire(0, 1);
    assert!(net.run_until(100, |n| n.buses[0].topology().route(2).is_some()));
    net.buses[0]
        .send(net.now, Outgoing::to_station(2, 4242, b"x".to_vec()))
        .unwrap();
    let mut reason = None;
    assert!(net.run_until(100, |n| {
        for e in events(&mut n.buses[0]) {
            if let Event::DeadLettered { record, .. } = e {
                reason = Some(record.reason);
            }
        }
        reason.is_some()
    }));
    assert_eq!(reason, Some(control::Reason::NoSuchPort));
}

#[test]
fn stream_reaches_subscribers_and_is_never_acked() {
    let mut net = Net::new(3);
    net.wire(0, 1);
    net.wire(0, 2);
    let log: Log = Arc::default();
    for i in [1, 2] {
        net.buses[i].serve(3000, recorder(&log)).unwrap();
        net.buses[i].subscribe(3000);
    }
    assert!(net.run_until(200, |n| n.buses[0].topology().listeners_of(3000).len() == 2));
    for k in 0..5u8 {
        assert_eq!(net.buses[0].stream_send(net.now, 3000, 9, &[k]), 2);
        net.step();
    }
    assert!(net.run_until(20, |_| log.lock().unwrap().len() == 10));
    assert_eq!(net.buses[1].stats().acks_sent, 0);
}

#[test]
fn a_read_burst_of_small_stream_frames_is_delivered_whole() {
    // Regression: the stream queue of a port held 64 frames, while one TCP read brings
    // hundreds; every burst lost all but 64 (`stream_overrun`). Method: 2,000 frames of 64 B
    // reach the subscriber between two of its cycles; with the default bounds all are
    // delivered, in order, none dropped.
    let mut net = Net::new(2);
    net.wire(0, 1);
    let log: Log = Arc::default();
    net.buses[1].serve(3000, recorder(&log)).unwrap();
    net.buses[1].subscribe(3000);
    assert!(net.run_until(200, |n| n.buses[0].topology().listeners_of(3000).len() == 1));
    for k in 0..2000u32 {
        let mut payload = vec![0u8; 64];
        payload[..4].copy_from_slice(&k.to_le_bytes());
        assert_eq!(net.buses[0].stream_send(net.now, 3000, 1, &payload), 1);
    }
    assert!(net.run_until(5, |_| log.lock().unwrap().len() == 2000));
    let got: Vec<u32> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, p)| u32::from_le_bytes(p[..4].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    let stats = net.buses[1].stats();
    assert_eq!((stats.stream_overrun, stats.stream_expired), (0, 0));
}

#[test]
fn a_subscriber_s_stream_queue_is_bounded_in_bytes_and_drops_the_oldest_counted() {
    // Goal: the byte bound of a port's stream queue holds, the oldest frames go first and each
    // is counted. Method: a subscriber with room for 10 frames of 1,000 B gets 50 between two
    // of its cycles.
    let mut net = Net::new(2);
    let mut config = BusConfig::new(2);
    config.stream_queue_bytes = 10 * streams::frame_charge(1000);
    net.buses[1] = Bus::new(config).unwrap();
    net.wire(0, 1);
    let log: Log = Arc::default();
    net.buses[1].serve(3000, recorder(&log)).unwrap();
    net.buses[1].subscribe(3000);
    assert!(net.run_until(200, |n| n.buses[0].topology().listeners_of(3000).len() == 1));
    for k in 0..50u8 {
        net.buses[0].stream_send(net.now, 3000, 1, &[k; 1000]);
    }
    net.step(); // Transmitted; all 50 arrive before the subscriber's next cycle.
    assert_eq!(net.buses[1].stats().stream_overrun, 40);
    assert_eq!(net.buses[1].gauges().stream_queue_max, 10);
    net.step();
    let got: Vec<u8> = log.lock().unwrap().iter().map(|(_, _, p)| p[0]).collect();
    assert_eq!(got, (40..50).collect::<Vec<_>>(), "the newest ten");
}

#[test]
fn a_publisher_faster_than_its_budget_loses_its_oldest_copies_counted() {
    // Goal: the outbound stream queue is bounded in bytes; an application publishing faster
    // than the commit phase transmits loses its oldest frames, counted, and the newest go out.
    let mut net = Net::new(2);
    let mut config = BusConfig::new(1);
    config.stream_out_bytes = 100 * streams::frame_charge(100);
    net.buses[0] = Bus::new(config).unwrap();
    net.wire(0, 1);
    let log: Log = Arc::default();
    net.buses[1].serve(3000, recorder(&log)).unwrap();
    net.buses[1].subscribe(3000);
    assert!(net.run_until(200, |n| n.buses[0].topology().listeners_of(3000).len() == 1));
    for k in 0..1000u32 {
        let mut payload = vec![0u8; 100];
        payload[..4].copy_from_slice(&k.to_le_bytes());
        net.buses[0].stream_send(net.now, 3000, 1, &payload);
    }
    assert_eq!(net.buses[0].gauges().stream_out, 100);
    assert_eq!(net.buses[0].stats().stream_overrun, 900);
    assert!(net.run_until(5, |_| log.lock().unwrap().len() == 100));
    let first = u32::from_le_bytes(log.lock().unwrap()[0].2[..4].try_into().unwrap());
    assert_eq!(first, 900, "the oldest copies were dropped");
}

/// A handler that keeps every bulk object it is told about.
struct BulkSink(Arc<Mutex<Vec<BulkReceived>>>);

impl Service for BulkSink {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}
    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        self.0.lock().unwrap().push(object.clone());
    }
}

#[test]
fn bulk_object_arrives_byte_identical() {
    let mut net = Net::new(2);
    net.wire(0, 1);
    let got: Arc<Mutex<Vec<BulkReceived>>> = Arc::default();
    net.buses[1]
        .serve(5000, Box::new(BulkSink(got.clone())))
        .unwrap();
    assert!(net.run_until(100, |n| n.buses[0].topology().route(2).is_some()));
    let object: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let crc = crc32c::crc32c(&object);
    let id = net.buses[0]
        .send_bulk(net.now, 2, 5000, "blob.bin", object.len() as u64, crc)
        .unwrap();
    net.sources.insert((0, id), object.clone());
    let mut sent = false;
    assert!(net.run_until(2000, |n| {
        sent |= events(&mut n.buses[0])
            .iter()
            .any(|e| matches!(e, Event::BulkSent { .. }));
        sent && !got.lock().unwrap().is_empty()
    }));
    let received = got.lock().unwrap()[0].clone();
    let stored: Vec<u8> = net.spools[&(1, received.spool_key.clone())]
        .values()
        .flatten()
        .copied()
        .collect();
    assert_eq!(stored, object);
}

/// Sends a 4 MiB object (64 segments) to a receiver whose spool already holds its first
/// `held` segments, and returns the sender's last progress event.
fn resumed_transfer_progress(held: u32) -> Progress {
    let mut net = Net::new(2);
    net.wire(0, 1);
    net.buses[1]
        .serve(5000, Box::new(|_: &mut Context<'_>, _: &Message<'_>| {}))
        .unwrap();
    assert!(net.run_until(100, |n| n.buses[0].topology().route(2).is_some()));
    let segment_len = 64 * 1024u32;
    let object: Vec<u8> = (0..64 * segment_len).map(|i| (i * 7 % 251) as u8).collect();
    let crc = crc32c::crc32c(&object);
    let offer = control::BulkOffer {
        object_len: object.len() as u64,
        segment_len,
        segment_count: 64,
        object_crc32c: crc,
        name: "disk.img".into(),
    };
    let spool = net
        .spools
        .entry((1, bulk::spool_key(1, &offer)))
        .or_default();
    for segment in 0..held {
        let start = (segment * segment_len) as usize;
        let end = start + segment_len as usize;
        spool.insert(start as u64, object[start..end].to_vec());
    }
    let started = net.now;
    let id = net.buses[0]
        .send_bulk(net.now, 2, 5000, "disk.img", object.len() as u64, crc)
        .unwrap();
    net.sources.insert((0, id), object);
    let mut last = None;
    let mut sent = false;
    assert!(net.run_until(2000, |n| {
        for event in events(&mut n.buses[0]) {
            match event {
                Event::BulkProgress(progress) => last = Some(progress),
                Event::BulkSent { .. } => sent = true,
                _ => {}
            }
        }
        sent
    }));
    let progress = last.expect("a progress event on completion");
    assert_eq!(progress.bytes_done, progress.bytes_total);
    assert_eq!(progress.eta_ms, 0);
    // The whole exchange took a few virtual milliseconds: reporting the held bytes as moved
    // would give a rate of at least object / elapsed, over 60 MB/s here.
    assert!(net.now.saturating_since(started) < Duration::from_millis(60));
    progress
}

#[test]
fn a_resumed_transfer_reports_the_rate_of_what_it_moved() {
    // Goal: progress after a resume (kill -9 of either side, then the same object offered
    // again) shows the rate of the bytes moved now, not of the bytes the receiver kept.
    // Method: the receiver's spool holds 63 of 64 segments before the offer; only the last
    // moves, in at least a millisecond, so the rate is at most one segment per millisecond.
    let progress = resumed_transfer_progress(63);
    assert!(progress.rate_bytes_per_sec > 0);
    assert!(
        progress.rate_bytes_per_sec <= 64 * 1024 * 1000,
        "{progress:?}"
    );
    // Everything held already: nothing moved, rate 0.
    assert_eq!(resumed_transfer_progress(64).rate_bytes_per_sec, 0);
}

#[test]
fn bulk_segments_fit_a_small_link_and_oversized_frames_are_counted() {
    // Goal: over a link that carries at most 1,200-byte frames (a UDP path), bulk segments
    // are cut to fit and the object still arrives; a fast frame too big for it is counted,
    // not handed to the link.
    let mut net = Net::new(2);
    net.wire(0, 1);
    let link = net.wires.keys().find(|(bus, _)| *bus == 0).unwrap().1;
    net.buses[0].set_link_frame_len_max(link, 1200);
    let got: Arc<Mutex<Vec<BulkReceived>>> = Arc::default();
    net.buses[1]
        .serve(5000, Box::new(BulkSink(got.clone())))
        .unwrap();
    assert!(net.run_until(100, |n| n.buses[0].topology().route(2).is_some()));
    let object: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let crc = crc32c::crc32c(&object);
    let id = net.buses[0]
        .send_bulk(net.now, 2, 5000, "small-mtu.bin", object.len() as u64, crc)
        .unwrap();
    net.sources.insert((0, id), object.clone());
    assert!(net.run_until(5000, |_| !got.lock().unwrap().is_empty()));
    let received = got.lock().unwrap()[0].clone();
    let spool = &net.spools[&(1, received.spool_key.clone())];
    assert!(spool.len() > 40, "cut into {} segments", spool.len());
    assert!(spool.values().all(|s| s.len() <= 1200 - 64));
    let stored: Vec<u8> = spool.values().flatten().copied().collect();
    assert_eq!(stored, object);
    assert_eq!(net.buses[0].stats().frames_oversized, 0);

    let mut message = Outgoing::to_station(2, 5000, vec![7; 2000]);
    message.ack = false;
    net.buses[0].send(net.now, message).unwrap();
    assert!(net.run_until(50, |n| n.buses[0].stats().frames_oversized == 1));
}

#[test]
fn stream_reaches_listeners_five_hops_away() {
    // Regression (spec review): the plan gave hops + 1 cycles, but a frame also waits a cycle
    // in the source's queue, so listeners 3 or more hops away received nothing.
    let mut net = Net::new(6);
    for i in 0..5 {
        net.wire(i, i + 1);
    }
    let log: Log = Arc::default();
    net.buses[5].serve(3000, recorder(&log)).unwrap();
    net.buses[5].subscribe(3000);
    assert!(net.run_until(400, |n| n.buses[0].topology().listeners_of(3000).len() == 1));
    for k in 0..10u8 {
        net.buses[0].stream_send(net.now, 3000, 1, &[k]);
        net.step();
    }
    assert!(net.run_until(50, |_| log.lock().unwrap().len() == 10));
}

#[test]
fn same_stream_id_on_two_ports_does_not_collide() {
    // Regression (spec review): the token cache key left out the port.
    let mut net = Net::new(2);
    net.wire(0, 1);
    let log: Log = Arc::default();
    for port in [3000, 3001] {
        net.buses[1].serve(port, recorder(&log)).unwrap();
        net.buses[1].subscribe(port);
    }
    assert!(net.run_until(200, |n| n.buses[0].topology().listeners_of(3001).len() == 1));
    for k in 0..5u8 {
        net.buses[0].stream_send(net.now, 3000, 7, &[k]);
        net.buses[0].stream_send(net.now, 3001, 7, &[k]);
        net.step();
    }
    assert!(net.run_until(20, |_| log.lock().unwrap().len() == 10));
}

#[test]
fn busy_answers_back_off_instead_of_resending_every_rto() {
    // Regression (spec review): BUSY did not rearm the retransmission timer, so resends kept
    // coming every RTO and the BUSY budget ran out in well under a second. Method: a receiver
    // whose port queue holds one message and which delivers one per cycle; twenty messages
    // arrive at once, most are answered BUSY; all must be delivered once, none dead-lettered.
    let mut net = Net::new(2);
    let mut config = BusConfig::new(2);
    config.rto_initial = Duration::from_millis(5);
    config.port_queue_capacity = 1;
    config.deliver_budget = 1;
    net.buses[1] = Bus::new(config).unwrap();
    net.wire(0, 1);
    let log: Log = Arc::default();
    net.buses[1].serve(2000, recorder(&log)).unwrap();
    assert!(net.run_until(100, |n| n.buses[0].topology().route(2).is_some()));
    for i in 0..20u8 {
        net.buses[0]
            .send(net.now, Outgoing::to_station(2, 2000, vec![i]))
            .unwrap();
    }
    let mut dead = 0;
    let done = net.run_until(5_000, |n| {
        dead += events(&mut n.buses[0])
            .iter()
            .filter(|e| matches!(e, Event::DeadLettered { .. }))
            .count();
        log.lock().unwrap().len() == 20
    });
    eprintln!(
        "got {} dead {dead} stats {:?}",
        log.lock().unwrap().len(),
        net.buses[0].stats()
    );
    assert!(done);
    assert_eq!(dead, 0);
    let stats = net.buses[0].stats().clone();
    assert!(stats.busy_received > 0, "the test must provoke BUSY");
    let mut got: Vec<u8> = log.lock().unwrap().iter().map(|(_, _, p)| p[0]).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 20);
}

#[test]
fn first_contact_with_a_high_sequence_is_delivered() {
    // Regression (spec review): a fresh window started at 0 and classified sequences at or
    // above 2^31 as old, acknowledging them without delivery.
    let mut w = dedup::ReceiveWindow::starting_at((3u32 << 30).wrapping_sub(dedup::WINDOW - 1));
    assert_eq!(w.classify(3 << 30), dedup::Verdict::New);
    w.accept(3 << 30);
    w.deliver(3 << 30);
    assert_eq!(w.classify(3 << 30), dedup::Verdict::DeliveredBefore);
}

#[test]
fn service_requests_move_to_another_server_when_theirs_dies() {
    // Two servers of port 150 behind station 1; station 2's link is cut after discovery, so
    // what was addressed to it must reach station 3, and once only.
    let mut net = Net::new(3);
    net.wire(0, 1);
    net.wire(0, 2);
    let log: Log = Arc::default();
    net.buses[1].serve(150, recorder(&log)).unwrap();
    net.buses[2].serve(150, recorder(&log)).unwrap();
    assert!(net.run_until(300, |n| n.buses[0].topology().servers_of(150).len() == 2));
    // Cut station 2 off: its link on station 1 goes away and nothing reaches it any more.
    let link = net
        .wires
        .iter()
        .find(|&(&(bus, _), &(peer, _))| bus == 0 && peer == 1)
        .map(|(&(_, link), _)| link)
        .unwrap();
    net.buses[0].remove_link(link);
    net.wires
        .retain(|&(bus, _), &mut (peer, _)| !(bus == 1 || peer == 1));
    for i in 0..10u8 {
        let _ = net.buses[0].send(net.now, Outgoing::to_service(150, vec![i]));
    }
    assert!(net.run_until(3_000, |_| log.lock().unwrap().len() >= 10));
    let log = log.lock().unwrap();
    assert!(log.iter().all(|(station, _, _)| *station == 3));
    let mut got: Vec<u8> = log.iter().map(|(_, _, p)| p[0]).collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 10);
}

#[test]
fn stream_duplicates_stay_suppressed_after_many_ended_streams() {
    // Goal: a receiver that has heard more streams than its token caches hold still recognises
    // a copy of a frame of a live stream. The caches used to be cleared all at once when a new
    // stream did not fit, so every live stream forgot what it had delivered (the simulator
    // found such duplicates); now only the stream heard from longest ago is forgotten.
    // Method: one bus with room for 16 streams hears a live stream and 40 streams that end at
    // once, then a copy of one of the live stream's frames.
    let log: Log = Arc::default();
    let mut config = BusConfig::new(2);
    config.stream_cache_tokens = 1;
    let mut bus = Bus::new(config).unwrap();
    bus.serve(3000, recorder(&log)).unwrap();
    bus.subscribe(3000);
    let link = bus.add_link(Instant::ZERO);
    let frame = |stream: u32, seq: u32| {
        let header = wire::frame::Header {
            lane: wire::frame::Lane::Stream,
            packet_type: wire::frame::PacketType::Stream,
            recipient_kind: wire::frame::RecipientKind::Station,
            flags: wire::frame::Flags::NONE,
            sender_id: 1,
            recipient_id: 2,
            recipient_port: 3000,
            sender_port: 3000,
            route_id: stream,
            request_id: 1 << 32 | u64::from(stream),
            sequence: seq,
            attempt: 0,
            hop_limit: 8,
            lifetime: 4,
            priority: 0,
            segment: None,
        };
        wire::frame::encode_to_vec(&header, &seq.to_le_bytes()).unwrap()
    };
    let mut now = Instant::ZERO;
    let copied = frame(1000, 7);
    bus.handle_frame(now, link, &copied);
    for stream in 0..40 {
        now = now + Duration::from_millis(1);
        bus.handle_frame(now, link, &frame(stream, 0));
        bus.handle_frame(now, link, &frame(1000, 8 + stream));
        bus.cycle(now);
    }
    bus.handle_frame(now, link, &copied);
    bus.cycle(now);
    let delivered = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, payload)| payload.as_slice() == 7u32.to_le_bytes())
        .count();
    assert_eq!(delivered, 1, "frame 7 of the live stream delivered twice");
    assert!(bus.stats().stream_caches_evicted > 0);
}

#[test]
fn first_message_from_an_unadvertised_station_is_acknowledged_over_its_arrival_link() {
    // Regression (CLI review): a station that has just joined sends at once; its frame is
    // forwarded to us before any advert of it arrived, so we had no route back and dropped
    // the ACK (`no_route`); the sender only got it after a resend ~100 ms later.
    use super::wire::frame::{self, Flags, Header, Lane, PacketType, RecipientKind};
    let mut bus = Bus::new(BusConfig::new(2)).unwrap();
    let log: Log = Arc::default();
    bus.serve(2000, recorder(&log)).unwrap();
    let now = Instant::ZERO;
    let link = bus.add_link(now);
    let hello = Header {
        sender_id: 5,
        request_id: 1 << 32,
        ..Header::new(Lane::Fast, PacketType::Heartbeat)
    };
    bus.handle_frame(now, link, &frame::encode_to_vec(&hello, &[]).unwrap());
    let data = Header {
        recipient_kind: RecipientKind::Station,
        flags: Flags::ACK_REQUIRED | Flags::FORWARDED,
        sender_id: 9,
        recipient_id: 2,
        recipient_port: 2000,
        request_id: (3 << 32) | 1,
        sequence: 1,
        hop_limit: 8,
        ..Header::new(Lane::Fast, PacketType::Data)
    };
    bus.handle_frame(now, link, &frame::encode_to_vec(&data, b"hi").unwrap());
    assert!(
        bus.topology().route(9).is_none(),
        "no advert of station 9 yet"
    );
    let now = now + Duration::from_millis(1);
    bus.cycle(now);
    assert_eq!(log.lock().unwrap().len(), 1);
    let mut acked = false;
    while let Some(t) = bus.poll_transmit() {
        let view = frame::FrameView::decode(&t.frame, Default::default()).unwrap();
        let h = view.header();
        acked |= h.packet_type == PacketType::Ack && h.recipient_id == 9 && t.link == link;
    }
    assert!(acked, "the ACK went back over the arrival link");
    assert_eq!(bus.stats().no_route, 0);
}
