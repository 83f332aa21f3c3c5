//! The simulation loop: stations stepped in virtual time over the simulated network and disks,
//! the workload, the fault schedule (partitions, crash-restart), and the calls into the checker.
//!
//! Each station runs the bus's call order (`handle_frame` and `handle_io` for what arrived,
//! then `cycle`, then drain `poll_transmit`, `poll_io`, `poll_event`) at its own cycle period
//! with jitter. An idle station sleeps until [`Bus::poll_timeout`], its next application
//! operation, an I/O completion or a frame's arrival, whichever is first, but never cycles
//! faster than its period.

use std::collections::BTreeMap;
use std::sync::Arc;

use tamtam_engine::core::bulk::{IoFailure, IoOutcome, IoRequest, spool_key};
use tamtam_engine::core::control::BulkOffer;
use tamtam_engine::core::registry;
use tamtam_engine::core::rng::Rng;
use tamtam_engine::core::service::CLIENT_PORT;
use tamtam_engine::core::wire::frame::{DecodeOptions, FrameView, Lane, PacketType};
use tamtam_engine::core::{Bus, Instant, LinkId, Outgoing, Recipient};

use super::app::{self, AppService, DeadLetterSink, Kind, Recorder, SharedLog, StationLog};
use super::check::{BulkOp, Checker, Op, OpKind};
use super::disk::{Disk, SpoolObject};
use super::net::Network;
use super::params::{
    MS, PORT_AI, PORT_APP, PORT_BULK, PORT_CLIENT, PORT_GROUP, PORT_LANGUAGE, PORT_NOBODY,
    PORT_SERVICE, PORT_STREAM, Params, STREAM_ROTATION_NS,
};

/// The middleware port the recording tee sits on.
const TEE_PORT: u16 = 20;
/// The application stops issuing operations while this many messages wait for a sequence.
const BACKLOG_MAX: usize = 32;

/// An I/O request in progress.
#[derive(Debug)]
struct PendingIo {
    at: u64,
    request: IoRequest,
    fail: Option<IoFailure>,
}

/// One simulated station.
struct Station {
    bus: Option<Bus>,
    incarnation: u32,
    log: SharedLog,
    link_of_edge: BTreeMap<usize, LinkId>,
    edge_of_link: BTreeMap<LinkId, usize>,
    wake_at: u64,
    last_cycle_at: u64,
    io: Vec<PendingIo>,
    rng: Rng,
    next_op_at: u64,
    next_stream_at: u64,
    /// Next sequence of each stream, this incarnation.
    stream_seq: BTreeMap<u32, u32>,
    /// Frames this incarnation's streams sent, for the round-robin over streams.
    stream_frames: u32,
}

/// A scheduled global action.
#[derive(Debug, Clone, Copy)]
enum Action {
    Crash(usize),
    Restart(usize),
    PartitionDown(usize),
    PartitionUp(usize),
    Bulk(usize),
}

/// A planned bulk transfer.
#[derive(Debug, Clone)]
struct BulkPlan {
    sender: usize,
    dest: usize,
    object: Arc<Vec<u8>>,
    name: String,
}

/// What a run did, for the summary line.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Virtual time at the end.
    pub end_ns: u64,
    /// Station cycles run.
    pub cycles: u64,
    /// Checker counters.
    pub counts: super::check::Counts,
    /// Network counters.
    pub net: super::net::NetCounts,
    /// Send refusals (outbox full, no server, …).
    pub refused: u64,
}

/// A simulation run.
pub struct Sim {
    params: Params,
    now: u64,
    stations: Vec<Station>,
    net: Network,
    disks: Vec<Disk>,
    checker: Checker,
    work_rng: Rng,
    disk_rng: Rng,
    actions: Vec<(u64, Action)>,
    next_action: usize,
    bulk_plans: Vec<BulkPlan>,
    tag: u64,
    cycles: u64,
    refused: u64,
    verbose: bool,
    trace_dropped_at_check: Option<u64>,
    deadline: u64,
    drain_added: bool,
    /// A station declared a neighbour dead after `trace_check_from` (timers that do not fit
    /// together across stations can make a quiet link look dead): routes were not stable.
    unstable: bool,
}

impl Sim {
    /// A run of `params`; `verbose` logs every step to stderr.
    pub fn new(params: Params, verbose: bool) -> Sim {
        let mut rng = Rng::new(params.seed ^ 0x0005_EED0_F5EE);
        let mut net_rng = rng.fork();
        let mut work_rng = rng.fork();
        let disk_rng = rng.fork();
        let n = params.stations.len();
        let net = Network::new(&params.edges, &params.links, &mut net_rng);
        let checker = Checker::new(&params);

        let mut actions = Vec::new();
        for c in &params.crashes {
            actions.push((c.at, Action::Crash(c.station)));
            actions.push((c.restart_at.max(c.at + 1), Action::Restart(c.station)));
        }
        for (i, p) in params.partitions.iter().enumerate() {
            actions.push((p.from, Action::PartitionDown(i)));
            actions.push((p.to.max(p.from + 1), Action::PartitionUp(i)));
        }
        let mut bulk_plans = Vec::new();
        let w = params.workload.clone();
        for k in 0..w.bulk_count {
            let sender = work_rng.below(n as u64) as usize;
            let mut dest = work_rng.below(n as u64) as usize;
            if dest == sender && !w.self_traffic {
                dest = (dest + 1) % n;
            }
            // Sizes spread over orders of magnitude, from 1 byte to the maximum.
            let bits = 64 - w.bulk_len_max.leading_zeros() as u64;
            let exponent = work_rng.below(bits);
            let len = (1 + work_rng.below(1 << exponent)).min(w.bulk_len_max);
            let mut content = Rng::new(work_rng.next_u64());
            let object: Vec<u8> = (0..len).map(|_| content.next_u64() as u8).collect();
            let at = params.faults_from
                + work_rng.below((params.faults_until - params.faults_from).max(1));
            actions.push((at, Action::Bulk(k)));
            bulk_plans.push(BulkPlan {
                sender,
                dest,
                object: Arc::new(object),
                name: format!("obj-{}-{k}.bin", params.seed % 1000),
            });
        }
        actions.sort_by_key(|&(at, _)| at);

        let mut stations: Vec<Station> = (0..n)
            .map(|i| Station {
                bus: None,
                incarnation: 0,
                log: Arc::default(),
                link_of_edge: BTreeMap::new(),
                edge_of_link: BTreeMap::new(),
                wake_at: 0,
                last_cycle_at: 0,
                io: Vec::new(),
                rng: work_rng.fork(),
                next_op_at: params.faults_from + work_rng.below(w.op_gap_ns + 1),
                next_stream_at: params.faults_from + i as u64 * 7 * MS % w.stream_gap_ns.max(1),
                stream_seq: BTreeMap::new(),
                stream_frames: 0,
            })
            .collect();
        for station in &mut stations {
            station.next_op_at = station.next_op_at.max(params.faults_from);
        }
        let mut sim = Sim {
            now: 0,
            stations,
            net,
            disks: (0..n).map(|_| Disk::default()).collect(),
            checker,
            work_rng,
            disk_rng,
            actions,
            next_action: 0,
            bulk_plans,
            tag: 0,
            cycles: 0,
            refused: 0,
            verbose,
            trace_dropped_at_check: None,
            deadline: params.deadline,
            drain_added: false,
            unstable: false,
            params,
        };
        for i in 0..n {
            sim.start_station(i);
        }
        for (edge, &(a, b)) in sim.params.edges.clone().iter().enumerate() {
            for s in [a, b] {
                let bus = sim.stations[s].bus.as_mut().expect("started");
                let link = bus.add_link(Instant::ZERO);
                sim.stations[s].link_of_edge.insert(edge, link);
                sim.stations[s].edge_of_link.insert(link, edge);
            }
        }
        sim
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("[{:>10.3} ms] {}", self.now as f64 / MS as f64, what());
        }
    }

    /// Creates incarnation `incarnation + 1` of station index `i` and registers everything
    /// the application serves, subscribes and joins.
    fn start_station(&mut self, i: usize) {
        let roles = self.params.roles.clone();
        let station = &mut self.stations[i];
        station.incarnation += 1;
        let mut config = self.params.stations[i].config.clone();
        config.incarnation = station.incarnation;
        config.seed ^= u64::from(station.incarnation).wrapping_mul(0x9E37_79B9);
        let mut bus = Bus::new(config).expect("valid config");
        station.log = Arc::new(std::sync::Mutex::new(StationLog::default()));
        bus.add_tee(
            TEE_PORT,
            Box::new(Recorder {
                log: station.log.clone(),
            }),
        );
        let mut ports = vec![PORT_APP, PORT_BULK, PORT_CLIENT];
        for (port, yes) in [
            (PORT_SERVICE, roles.service.contains(&i)),
            (PORT_LANGUAGE, roles.language == Some(i)),
            (PORT_AI, roles.ai.contains(&i)),
            (PORT_GROUP, roles.group.contains(&i)),
            (PORT_STREAM, roles.subscribers.contains(&i)),
        ] {
            if yes {
                ports.push(port);
            }
        }
        for port in ports {
            bus.serve(
                port,
                Box::new(AppService {
                    log: station.log.clone(),
                }),
            )
            .expect("free port");
        }
        bus.serve_system(registry::DEAD_LETTER, Box::new(DeadLetterSink))
            .expect("free port");
        if roles.group.contains(&i) {
            bus.join_group(PORT_GROUP);
        }
        if roles.subscribers.contains(&i) {
            bus.subscribe(PORT_STREAM);
        }
        if roles.collector == i {
            bus.collect_traces();
        }
        station.bus = Some(bus);
        station.stream_seq.clear();
        station.stream_frames = 0;
        station.link_of_edge.clear();
        station.edge_of_link.clear();
    }

    fn period(&mut self, i: usize) -> u64 {
        let p = &self.params.stations[i];
        let jitter = p.period_ns * p.jitter_percent / 100;
        p.period_ns - jitter / 2 + self.stations[i].rng.below(jitter + 1)
    }

    fn wake(&mut self, i: usize, at: u64) {
        let st = &mut self.stations[i];
        let earliest = st.last_cycle_at + self.params.stations[i].period_ns;
        st.wake_at = st.wake_at.min(at.max(earliest));
    }

    // ------------------------------------------------------------------------------------
    // The loop
    // ------------------------------------------------------------------------------------

    /// Runs to the end and returns the checker and a summary.
    pub fn run(mut self) -> (Checker, Summary) {
        let n = self.stations.len();
        let mut next_quiet_check = self.params.workload_until;
        loop {
            let next_station = self
                .stations
                .iter()
                .filter(|s| s.bus.is_some())
                .map(|s| s.wake_at)
                .min()
                .unwrap_or(u64::MAX);
            let next_action = self.actions.get(self.next_action).map_or(u64::MAX, |a| a.0);
            let t = next_station.min(next_action);
            if t > self.deadline {
                break;
            }
            self.now = self.now.max(t);
            if next_action <= t {
                let (_, action) = self.actions[self.next_action];
                self.next_action += 1;
                self.act(action);
                continue;
            }
            for i in 0..n {
                if self.stations[i].bus.is_some() && self.stations[i].wake_at <= self.now {
                    self.step(i);
                }
            }
            if self.cycles > self.params.cycles_max {
                self.checker.violations.push(format!(
                    "step bound exceeded: {} cycles by t={:.1} ms",
                    self.cycles,
                    self.now as f64 / MS as f64
                ));
                break;
            }
            if self.trace_dropped_at_check.is_none() && self.now >= self.params.trace_check_from {
                self.trace_dropped_at_check = Some(self.trace_dropped());
            }
            if !self.drain_added && self.now >= self.params.workload_until {
                // Messages queued behind full channel windows drain one window per round trip.
                self.drain_added = true;
                let rounds = self
                    .stations
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        let window = u64::from(self.params.stations[i].config.channel_window);
                        s.bus
                            .as_ref()
                            .map(|b| (b.gauges().outbox as u64).div_ceil(window))
                    })
                    .max()
                    .unwrap_or(0);
                self.deadline += rounds * self.params.round_trip_ns;
                self.log(|| {
                    format!(
                        "workload stops: {rounds} queued windows, deadline {:.1} ms",
                        self.deadline as f64 / MS as f64
                    )
                });
            }
            if self.now >= next_quiet_check {
                next_quiet_check = self.now + 10 * MS;
                if self.quiescent() {
                    break;
                }
            }
        }
        self.finish()
    }

    /// Frames any station dropped on purpose since it started: trace reports over their
    /// queue, frames without a route or over a full link queue, frames out of hops. Trace
    /// reports are best effort; a route is rebuilt exactly only while this stays put.
    fn trace_dropped(&self) -> u64 {
        self.stations
            .iter()
            .filter_map(|s| s.bus.as_ref())
            .map(|b| {
                let s = b.stats();
                s.trace_dropped + s.link_queue_drops + s.no_route + s.hop_limit_drops
            })
            .sum()
    }

    /// Nothing left to do anywhere: every message resolved, every transfer ended, every
    /// queue and wire empty.
    fn quiescent(&self) -> bool {
        if !self.net.is_empty() {
            return false;
        }
        self.stations.iter().all(|s| {
            s.io.is_empty()
                && s.bus.as_ref().is_some_and(|b| {
                    let g = b.gauges();
                    g.outbox == 0
                        && g.transfers_out == 0
                        && g.control == 0
                        && g.trace == 0
                        && g.forward == 0
                        && g.stream_out == 0
                        && g.unreliable == 0
                        && g.io_pending == 0
                        && g.port_queue_max == 0
                })
        })
    }

    fn finish(mut self) -> (Checker, Summary) {
        let now = self.now;
        self.checker.check_malformed(now);
        let alive: Vec<u32> = self
            .stations
            .iter()
            .map(|s| if s.bus.is_some() { s.incarnation } else { 0 })
            .collect();
        for (i, s) in self.stations.iter().enumerate() {
            if let Some(bus) = &s.bus {
                let g = bus.gauges();
                if g.outbox != 0 || g.transfers_out != 0 {
                    self.checker.violations.push(format!(
                        "liveness: station {} still has {} messages and {} transfers pending at the end ({:.1} ms, deadline {:.1} ms): {g:?}",
                        i + 1,
                        g.outbox,
                        g.transfers_out,
                        now as f64 / MS as f64,
                        self.deadline as f64 / MS as f64
                    ));
                }
            }
        }
        self.checker.check_end(now, &alive);
        self.check_traces();
        let summary = Summary {
            end_ns: now,
            cycles: self.cycles,
            counts: self.checker.counts.clone(),
            net: self.net.counts.clone(),
            refused: self.refused,
        };
        (self.checker, summary)
    }

    fn check_traces(&mut self) {
        let collector = self.params.roles.collector;
        let Some(bus) = self.stations[collector].bus.as_ref() else {
            return;
        };
        let Some(traces) = bus.trace_collector() else {
            return;
        };
        let clean = self.trace_dropped_at_check == Some(self.trace_dropped());
        let ops: Vec<Op> = self
            .checker
            .ops
            .values()
            .filter(|op| op.traced && op.acked_by.len() == 1)
            .cloned()
            .collect();
        for op in ops {
            let dest = op.acked_by[0];
            let strict = clean && op.sent_at >= self.params.trace_check_from;
            let stable = strict && !self.unstable;
            self.checker
                .check_trace(self.now, traces, &op, dest, strict, stable);
        }
    }

    // ------------------------------------------------------------------------------------
    // Global actions
    // ------------------------------------------------------------------------------------

    fn act(&mut self, action: Action) {
        let now = self.now;
        self.log(|| format!("action {action:?}"));
        match action {
            Action::Crash(i) => {
                if self.stations[i].bus.is_none() {
                    return;
                }
                self.stations[i].bus = None;
                self.checker.on_crash(i);
                // Writes in flight may or may not have reached the disk.
                let io = std::mem::take(&mut self.stations[i].io);
                for pending in io {
                    if let IoRequest::SpoolWrite {
                        key, segment, data, ..
                    } = pending.request
                    {
                        if pending.fail.is_none() && self.disk_rng.chance(1, 2) {
                            if let Some(object) = self.disks[i].spool.get_mut(&key) {
                                object.segments.insert(segment, data);
                            }
                        }
                    }
                }
                self.net.drop_to(i);
            }
            Action::Restart(i) => {
                if self.stations[i].bus.is_some() {
                    return;
                }
                self.start_station(i);
                let edges: Vec<(usize, (usize, usize))> =
                    self.params.edges.iter().copied().enumerate().collect();
                for (edge, (a, b)) in edges {
                    if a != i && b != i {
                        continue;
                    }
                    let peer = if a == i { b } else { a };
                    let bus = self.stations[i].bus.as_mut().expect("started");
                    let link = bus.add_link(Instant::from_nanos(now));
                    self.stations[i].link_of_edge.insert(edge, link);
                    self.stations[i].edge_of_link.insert(link, edge);
                    if self.params.links[edge].reconnect {
                        // A connection-oriented link: the peer sees it reset and reconnects.
                        self.net.reset(edge);
                        let p = &mut self.stations[peer];
                        if let Some(peer_bus) = p.bus.as_mut() {
                            if let Some(old) = p.link_of_edge.remove(&edge) {
                                p.edge_of_link.remove(&old);
                                peer_bus.remove_link(old);
                            }
                            let link = peer_bus.add_link(Instant::from_nanos(now));
                            p.link_of_edge.insert(edge, link);
                            p.edge_of_link.insert(link, edge);
                            self.wake(peer, now);
                        }
                    }
                }
                self.stations[i].wake_at = now;
                self.stations[i].last_cycle_at = now;
                // The application resumes half of its unfinished transfers (same object, same
                // name: the receiver resumes into the same spool).
                let unfinished: Vec<BulkOp> = self
                    .checker
                    .bulk_ops
                    .iter()
                    .filter(|op| {
                        op.sender as usize == i + 1
                            && op.incarnation + 1 == self.stations[i].incarnation
                            && op.finished.is_none()
                    })
                    .cloned()
                    .collect();
                for op in unfinished {
                    if self.work_rng.chance(1, 2) {
                        self.start_bulk(i, op.dest as usize - 1, op.object.clone(), &op.name);
                    }
                }
            }
            Action::PartitionDown(p) | Action::PartitionUp(p) => {
                let partition = &self.params.partitions[p];
                for &edge in &partition.edges {
                    let wires = match partition.one_way {
                        None => vec![2 * edge, 2 * edge + 1],
                        Some(true) => vec![2 * edge],
                        Some(false) => vec![2 * edge + 1],
                    };
                    for wire in wires {
                        if matches!(action, Action::PartitionDown(_)) {
                            self.net.down[wire] += 1;
                        } else {
                            self.net.down[wire] -= 1;
                        }
                    }
                }
            }
            Action::Bulk(k) => {
                let plan = self.bulk_plans[k].clone();
                if self.stations[plan.sender].bus.is_some() {
                    self.start_bulk(plan.sender, plan.dest, plan.object, &plan.name);
                }
            }
        }
    }

    fn start_bulk(&mut self, sender: usize, dest: usize, object: Arc<Vec<u8>>, name: &str) {
        let now = self.now;
        let st = &mut self.stations[sender];
        let Some(bus) = st.bus.as_mut() else {
            return;
        };
        let crc = crc32c::crc32c(&object);
        let len = object.len() as u64;
        match bus.send_bulk(
            Instant::from_nanos(now),
            dest as u32 + 1,
            PORT_BULK,
            name,
            len,
            crc,
        ) {
            Ok(transfer) => {
                let segment_len = bus.config().segment_len;
                let offer = BulkOffer {
                    object_len: len,
                    segment_len,
                    segment_count: BulkOffer::segments_for(len, segment_len).unwrap_or(1),
                    object_crc32c: crc,
                    name: name.to_owned(),
                };
                let key = spool_key(sender as u32 + 1, &offer);
                self.disks[sender].sources.insert(transfer, object.clone());
                self.checker.on_bulk_op(BulkOp {
                    sender: sender as u32 + 1,
                    incarnation: st.incarnation,
                    transfer,
                    dest: dest as u32 + 1,
                    key,
                    name: name.to_owned(),
                    object,
                    finished: None,
                    started_at: now,
                });
                self.log(|| {
                    format!(
                        "station {} bulk {transfer:#x} {name} ({len} B) → {}",
                        sender + 1,
                        dest + 1
                    )
                });
                self.wake(sender, now);
            }
            Err(e) => {
                self.refused += 1;
                self.log(|| format!("station {} bulk refused: {e}", sender + 1));
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // One station step
    // ------------------------------------------------------------------------------------

    fn step(&mut self, i: usize) {
        let now = self.now;
        let at = Instant::from_nanos(now);
        let me = i as u32 + 1;
        let mut bus = self.stations[i].bus.take().expect("up");
        self.stations[i].last_cycle_at = now;
        self.cycles += 1;

        // 1. Frames that arrived.
        for (wire, frame) in self.net.due(i, now) {
            let edge = self.net.wires[wire].edge;
            let Some(&link) = self.stations[i].link_of_edge.get(&edge) else {
                continue;
            };
            if frame.corrupted {
                self.checker.on_corrupted(i);
            } else if let Some(age) = frame.stream_age {
                if let Ok(view) = FrameView::decode(&frame.bytes, DecodeOptions::default()) {
                    let h = view.header();
                    self.log(|| {
                        format!(
                            "station {me} rx stream {:?} life {} age {age} at cycle {}",
                            (h.sender_id, h.sequence, h.recipient_id),
                            h.lifetime,
                            bus.cycles()
                        )
                    });
                    self.checker.on_stream_receive(
                        i,
                        (h.sender_id, h.request_id, h.sequence, h.recipient_id),
                        bus.cycles(),
                        age,
                    );
                }
            }
            bus.handle_frame(at, link, &frame.bytes);
        }

        // 2. I/O completions.
        let (done, waiting): (Vec<PendingIo>, Vec<PendingIo>) =
            std::mem::take(&mut self.stations[i].io)
                .into_iter()
                .partition(|p| p.at <= now);
        self.stations[i].io = waiting;
        for pending in done {
            let id = pending.request.id();
            let outcome = self.complete_io(i, pending);
            bus.handle_io(at, id, outcome);
        }

        // 3. The application.
        if now < self.params.workload_until && now >= self.params.faults_from {
            while self.stations[i].next_op_at <= now {
                self.operation(i, &mut bus);
                let gap = self.params.workload.op_gap_ns;
                self.stations[i].next_op_at += 1 + self.stations[i].rng.below(2 * gap);
            }
            if self.params.roles.sources.contains(&i) {
                while self.stations[i].next_stream_at <= now {
                    self.stream_frame(i, &mut bus);
                    self.stations[i].next_stream_at += self.params.workload.stream_gap_ns;
                }
            }
        }

        // 4. The cycle.
        let _report = bus.cycle(at);
        let cycle = bus.cycles();

        // 5. Events (before deliveries: a dead letter is delivered in the cycle that
        // reports it).
        while let Some(event) = bus.poll_event() {
            self.log(|| format!("station {me} event {event:?}"));
            if matches!(event, tamtam_engine::core::Event::PeerDown { .. })
                && now >= self.params.trace_check_from
            {
                self.unstable = true;
            }
            self.checker.on_event(i, now, &event, &self.disks);
        }

        // 6. What the handlers saw.
        let (seen, bulk) = {
            let mut log = app::lock(&self.stations[i].log);
            (std::mem::take(&mut log.seen), std::mem::take(&mut log.bulk))
        };
        let inc = self.stations[i].incarnation;
        for s in &seen {
            self.checker.on_delivery(i, inc, now, cycle, s);
        }
        for object in &bulk {
            self.checker
                .on_bulk_received(me, now, object, &self.disks[i]);
        }

        // 7. Every link knows the station at its other end (or nobody yet).
        for (&link, &edge) in &self.stations[i].edge_of_link {
            let (a, b) = self.params.edges[edge];
            let other = if a == i { b } else { a } as u32 + 1;
            if let Some(peer) = bus.link_peer(link) {
                if peer != other {
                    self.checker.violations.push(format!(
                        "t={:.3}ms: station {me} believes link {link} leads to station {peer}; it leads to station {other}",
                        now as f64 / MS as f64
                    ));
                }
            }
        }

        // 8. Queue bounds.
        let gauges = bus.gauges();
        self.checker.check_gauges(i, now, &gauges);

        // 9. Frames to send.
        let faulty = self.params.faulty_at(now);
        let mut recipients = Vec::new();
        while let Some(t) = bus.poll_transmit() {
            let Some(&edge) = self.stations[i].edge_of_link.get(&t.link) else {
                self.checker.violations.push(format!(
                    "station {me} transmitted on unknown link {}",
                    t.link
                ));
                continue;
            };
            let age = match FrameView::decode(&t.frame, DecodeOptions::default()) {
                Ok(view) => {
                    let h = view.header();
                    if h.lane == Lane::Fast
                        && h.packet_type == PacketType::Data
                        && h.sender_id == me
                        && !h
                            .flags
                            .contains(tamtam_engine::core::wire::frame::Flags::FORWARDED)
                    {
                        recipients.push(h.recipient_id);
                    }
                    if h.lane == Lane::Stream {
                        self.log(|| {
                            format!(
                                "station {me} tx stream {:?} life {} flags {:?} at cycle {cycle}",
                                (h.sender_id, h.sequence, h.recipient_id),
                                h.lifetime,
                                h.flags
                            )
                        });
                    }
                    self.checker
                        .on_transmit(i, now, cycle, &h, view.payload(), &self.disks[i])
                }
                Err(e) => {
                    self.checker
                        .violations
                        .push(format!("station {me} transmitted a malformed frame: {e}"));
                    None
                }
            };
            let wire = self.net.wire_from(edge, i);
            let to = self.net.wires[wire].to;
            let arrivals = self.net.send(wire, now, t.frame, faulty, age);
            for arrival in arrivals {
                self.wake(to, arrival);
            }
        }
        if gauges.loopback == 0 {
            self.checker.check_batch(i, now, &recipients);
        }

        // 10. I/O requests.
        let disk = &self.params.stations[i].disk;
        while let Some(request) = bus.poll_io() {
            let fails = |rng: &mut Rng, per_10k: u64| faulty && rng.chance(per_10k, 10_000);
            let fail = match &request {
                IoRequest::SpoolOpen { .. } => {
                    fails(&mut self.disk_rng, disk.open_fail).then_some(IoFailure::Io)
                }
                IoRequest::SpoolWrite { .. } => {
                    fails(&mut self.disk_rng, disk.write_fail).then(|| {
                        if self.disk_rng.chance(disk.no_space_percent, 100) {
                            IoFailure::NoSpace
                        } else {
                            IoFailure::Io
                        }
                    })
                }
                IoRequest::SpoolFinish { .. } => {
                    fails(&mut self.disk_rng, disk.finish_fail).then_some(IoFailure::Io)
                }
                IoRequest::SourceRead { .. } => fails(&mut self.disk_rng, disk.read_fail)
                    .then_some(IoFailure::SourceUnavailable),
            };
            let done_at = now + self.disk_rng.below(disk.latency_ns + 1);
            self.stations[i].io.push(PendingIo {
                at: done_at,
                request,
                fail,
            });
        }

        // 11. Sleep until the next thing to do.
        let base = now + self.period(i);
        let mut wake = match bus.poll_timeout() {
            Some(t) if t.as_nanos() > now => base.max(t.as_nanos()),
            Some(_) => base,
            None => u64::MAX,
        };
        let st = &self.stations[i];
        if now < self.params.workload_until {
            wake = wake.min(base.max(st.next_op_at));
            if self.params.roles.sources.contains(&i) {
                wake = wake.min(base.max(st.next_stream_at));
            }
        }
        if let Some(io) = st.io.iter().map(|p| p.at).min() {
            wake = wake.min(base.max(io));
        }
        if let Some(arrival) = self.net.next_arrival(i) {
            wake = wake.min(base.max(arrival));
        }
        self.stations[i].wake_at = wake;
        self.stations[i].bus = Some(bus);
    }

    fn complete_io(&mut self, i: usize, pending: PendingIo) -> IoOutcome {
        let now = self.now;
        let me = i as u32 + 1;
        if let Some(failure) = pending.fail {
            return IoOutcome::Failed(failure);
        }
        let disk = &mut self.disks[i];
        match pending.request {
            IoRequest::SpoolOpen {
                key,
                len,
                segment_len,
                segment_count,
                ..
            } => {
                let object = disk.spool.entry(key).or_default();
                if object.len != len
                    || object.segment_len != segment_len
                    || object.segment_count != segment_count
                {
                    *object = SpoolObject {
                        len,
                        segment_len,
                        segment_count,
                        ..SpoolObject::default()
                    };
                }
                IoOutcome::Opened {
                    stored: object.ranges(),
                }
            }
            IoRequest::SpoolWrite {
                key,
                segment,
                offset,
                data,
                ..
            } => {
                let expected = self
                    .checker
                    .bulk_ops
                    .iter()
                    .find(|op| op.key == key)
                    .map(|op| op.object.clone());
                let Some(object) = disk.spool.get_mut(&key) else {
                    self.checker.violations.push(format!(
                        "station {me} wrote segment {segment} of {key} before opening it"
                    ));
                    return IoOutcome::Failed(IoFailure::Io);
                };
                let start = offset as usize;
                let right = expected.is_some_and(|e| {
                    offset == u64::from(segment) * u64::from(object.segment_len)
                        && e.get(start..start + data.len()) == Some(&data[..])
                });
                if !right {
                    self.checker.violations.push(format!(
                        "t={:.3}ms: station {me} wrote wrong bytes for segment {segment} (offset {offset}, {} B) of {key}",
                        now as f64 / MS as f64,
                        data.len()
                    ));
                }
                object.segments.insert(segment, data);
                IoOutcome::Written
            }
            IoRequest::SpoolFinish { key, crc32c, .. } => {
                let Some(object) = disk.spool.get_mut(&key) else {
                    return IoOutcome::Failed(IoFailure::Io);
                };
                match object.bytes() {
                    Some(bytes) if crc32c::crc32c(&bytes) == crc32c => {
                        object.finished = true;
                        IoOutcome::Finished
                    }
                    _ => {
                        self.checker.violations.push(format!(
                            "t={:.3}ms: station {me} finished {key} with missing or wrong segments",
                            now as f64 / MS as f64
                        ));
                        object.segments.clear();
                        IoOutcome::Failed(IoFailure::CrcMismatch)
                    }
                }
            }
            IoRequest::SourceRead {
                transfer,
                offset,
                len,
                ..
            } => match disk.sources.get(&transfer) {
                Some(object) => {
                    let start = offset as usize;
                    match object.get(start..start + len as usize) {
                        Some(bytes) => IoOutcome::Read(bytes.to_vec()),
                        None => IoOutcome::Failed(IoFailure::SourceUnavailable),
                    }
                }
                None => {
                    self.checker.violations.push(format!(
                        "station {me} read unknown source transfer {transfer:#x}"
                    ));
                    IoOutcome::Failed(IoFailure::SourceUnavailable)
                }
            },
        }
    }

    // ------------------------------------------------------------------------------------
    // The workload
    // ------------------------------------------------------------------------------------

    fn next_tag(&mut self) -> u64 {
        self.tag += 1;
        self.tag
    }

    fn other_station(&mut self, i: usize) -> usize {
        let n = self.stations.len();
        if self.params.workload.self_traffic {
            self.stations[i].rng.below(n as u64) as usize
        } else {
            (i + 1 + self.stations[i].rng.below(n as u64 - 1) as usize) % n
        }
    }

    /// One application operation of station index `i`.
    fn operation(&mut self, i: usize, bus: &mut Bus) {
        let now = self.now;
        // The application backs off while messages queue behind full channel windows, as a
        // real one would on a slow channel (the bus bounds the outbox; this keeps the queue
        // short enough that the liveness bound stays small).
        if bus.gauges().outbox_backlog >= BACKLOG_MAX {
            self.refused += 1;
            return;
        }
        let me = i as u32 + 1;
        let roles = self.params.roles.clone();
        let selfish = self.params.workload.self_traffic;
        let rng = &mut self.stations[i].rng;
        let roll = rng.below(100);
        let body_len = rng.below(self.params.workload.body_len_max as u64 + 1) as usize;
        let priority = rng.below(4) as u8;
        let no_ack = rng.chance(1, 5);
        let traced = rng.chance(1, 12);
        let from_client = rng.chance(1, 2);
        let route = (rng.next_u64() as u32).max(1);
        let tag = self.next_tag();
        // Requests from the API (CLIENT_PORT, answered as Reply events) or from the client
        // handler port (answered to its handler).
        let from_port = if from_client {
            CLIENT_PORT
        } else {
            PORT_CLIENT
        };
        let dest = self.other_station(i) as u32 + 1;
        let can = |port_servers: &[usize]| selfish || !port_servers.contains(&i);
        let (kind, to, port, request) = if roll < 30
            || (roll < 50 && !can(&roles.service))
            || (roll < 60 && (!can(&roles.ai) || (!selfish && roles.language == Some(i))))
            || (roll < 70 && !can(&roles.group))
            || (roll < 78 && !can(&roles.service))
        {
            let request = roll % 3 == 0;
            (
                OpKind::Station {
                    dest,
                    port: PORT_APP,
                },
                Recipient::Station(dest),
                PORT_APP,
                request,
            )
        } else if roll < 50 {
            (
                OpKind::Service { port: PORT_SERVICE },
                Recipient::Service,
                PORT_SERVICE,
                true,
            )
        } else if roll < 60 {
            (
                OpKind::Service {
                    port: PORT_LANGUAGE,
                },
                Recipient::Service,
                PORT_LANGUAGE,
                true,
            )
        } else if roll < 70 {
            (OpKind::Group, Recipient::Group, PORT_GROUP, false)
        } else if roll < 78 {
            (
                OpKind::Broadcast { port: PORT_SERVICE },
                Recipient::Broadcast,
                PORT_SERVICE,
                false,
            )
        } else if roll < 81 && (selfish || dest != me) {
            (
                OpKind::Reporter { dest },
                Recipient::Station(dest),
                registry::REPORTER,
                true,
            )
        } else if roll < 83 {
            (
                OpKind::Nobody { dest },
                Recipient::Station(dest),
                PORT_NOBODY,
                false,
            )
        } else {
            (
                OpKind::Station {
                    dest,
                    port: PORT_APP,
                },
                Recipient::Station(dest),
                PORT_APP,
                false,
            )
        };
        let reporter = matches!(kind, OpKind::Reporter { .. });
        let ack = !(no_ack && matches!(kind, OpKind::Station { .. }) && !request);
        let traced =
            traced && ack && matches!(kind, OpKind::Station { .. } | OpKind::Service { .. });
        let payload = app::encode(
            if request { Kind::Request } else { Kind::Plain },
            tag,
            0,
            body_len,
        );
        let mut out = match to {
            Recipient::Station(d) => Outgoing::to_station(d, port, payload),
            Recipient::Service => Outgoing::to_service(port, payload),
            Recipient::Group => Outgoing::to_group(port, payload),
            Recipient::Broadcast => Outgoing::broadcast(port, payload),
        }
        .priority(priority);
        let from_port = if reporter { PORT_CLIENT } else { from_port };
        out = out.from_port(from_port);
        if !ack {
            out = out.no_ack();
        }
        let route_id = (traced || reporter).then_some(route);
        if let Some(route) = route_id {
            out = out.route(route);
        }
        if traced {
            out = out.traced();
        }
        match bus.send(Instant::from_nanos(now), out) {
            Ok(request_id) => {
                self.log(|| {
                    format!("station {me} op {tag} {kind:?} ack={ack} traced={traced} request={request} → {request_id:#x}")
                });
                self.checker.on_op(Op {
                    tag,
                    sender: me,
                    incarnation: self.stations[i].incarnation,
                    request_id,
                    kind,
                    ack,
                    traced,
                    route_id,
                    sent_at: now,
                    expects_reply: request,
                    from_port,
                    outcomes: 0,
                    acked_by: Vec::new(),
                    served_by: Vec::new(),
                });
            }
            Err(e) => {
                self.refused += 1;
                self.log(|| format!("station {me} op {tag} {kind:?} refused: {e}"));
            }
        }
    }

    /// One stream frame of source station index `i`.
    fn stream_frame(&mut self, i: usize, bus: &mut Bus) {
        let me = i as u32 + 1;
        let st = &mut self.stations[i];
        // Stream `me` first, then `me + 16k` for the further streams of this source and the
        // streams that replace them every rotation.
        let per_source = self.params.workload.streams_per_source;
        let k = st.stream_frames % per_source;
        st.stream_frames = st.stream_frames.wrapping_add(1);
        let generation =
            (self.now.saturating_sub(self.params.faults_from) / STREAM_ROTATION_NS) as u32;
        let stream = me + 16 * (k + per_source * generation);
        let next = st.stream_seq.entry(stream).or_insert(0);
        let seq = *next;
        *next = next.wrapping_add(1);
        let request_id = u64::from(st.incarnation) << 32 | u64::from(stream);
        let payload = app::encode(Kind::Stream, u64::from(me), u64::from(seq), 16);
        let cycle = bus.cycles();
        let copies = bus.stream_send(Instant::from_nanos(self.now), PORT_STREAM, stream, &payload);
        let lifetime = bus
            .stream_plan(PORT_STREAM, stream)
            .map_or(bus.config().stream_lifetime, |plan| plan.lifetime);
        self.checker
            .on_stream_send(me, request_id, seq, cycle, lifetime);
        self.log(|| format!("station {me} stream seq {seq} → {copies} copies"));
    }
}
