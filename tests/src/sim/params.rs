//! Everything a simulation run does, derived from one `u64` seed.
//!
//! [`Params::from_seed`] forks one child generator per concern (topology, links, stations,
//! faults, workload) from the seed, in a fixed order, so a seed names exactly one run. The
//! parameters are printed before the run starts ([`Params::describe`]); a failing seed plus
//! the commit replays exactly.

use std::collections::VecDeque;
use std::fmt::Write as _;

use tamtam_engine::core::rng::Rng;
use tamtam_engine::core::{BusConfig, Duration};

/// One millisecond in nanoseconds (virtual time is in nanoseconds).
pub const MS: u64 = 1_000_000;

/// Application port every station serves (station→station traffic and broadcasts).
pub const PORT_APP: u16 = 2000;
/// Service port with several servers (requests with replies, load spread).
pub const PORT_SERVICE: u16 = 2100;
/// Group port (group sends).
pub const PORT_GROUP: u16 = 2200;
/// Stream port (subscribers, one of them slow).
pub const PORT_STREAM: u16 = 2300;
/// Bulk sink port every station serves.
pub const PORT_BULK: u16 = 2400;
/// Client handler port every station serves: replies to requests sent from it land here.
pub const PORT_CLIENT: u16 = 2500;
/// A language port (Czech, 150 in the registry) that falls back to the AI port when unserved.
pub const PORT_LANGUAGE: u16 = 150;
/// The AI translation port the language fallback goes to.
pub const PORT_AI: u16 = tamtam_engine::core::registry::AI_TRANSLATE;
/// How long one stream lives before its source moves on to a new stream id.
pub const STREAM_ROTATION_NS: u64 = 400 * MS;
/// A port nobody serves: sends to it must be dead-lettered, never delivered.
pub const PORT_NOBODY: u16 = 4242;

/// Shape of the station graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `1 - 2 - … - n`.
    Line,
    /// Station 1 in the middle, every other station linked to it.
    Star,
    /// A line closed into a ring.
    Ring,
    /// Every pair of stations linked.
    Mesh,
    /// A random spanning tree plus random extra links.
    Random,
}

/// Faults and timing of one link (both directions draw from the same parameters).
#[derive(Debug, Clone)]
pub struct LinkParams {
    /// Propagation delay.
    pub delay_ns: u64,
    /// Extra uniform delay `0..jitter_ns` per frame (reorders frames).
    pub jitter_ns: u64,
    /// Serialization time per KiB (the link's bandwidth).
    pub ns_per_kib: u64,
    /// Loss probability per 10,000 frames (fault phase only).
    pub loss: u64,
    /// Duplication probability per 10,000 frames (fault phase only).
    pub duplicate: u64,
    /// Bit-corruption probability per 10,000 frames (fault phase only).
    pub corrupt: u64,
    /// Probability per 10,000 frames of a straggler: held up to `straggle_ns` (fault phase only).
    pub straggle: u64,
    /// Longest straggler delay.
    pub straggle_ns: u64,
    /// Whether a restart of either end resets the link (a TCP-like connection: the peer closes
    /// its link and opens a new one, frames in flight are lost) rather than keeping it
    /// (datagram-like).
    pub reconnect: bool,
}

/// Disk behaviour of one station's spool and source objects.
#[derive(Debug, Clone)]
pub struct DiskParams {
    /// Completion latency of one I/O request, `0..latency_ns`.
    pub latency_ns: u64,
    /// Segment write failures per 10,000 writes (fault phase only).
    pub write_fail: u64,
    /// Of failed writes, per 100 that report `NoSpace` rather than `Io`.
    pub no_space_percent: u64,
    /// Spool open failures per 10,000 (fault phase only).
    pub open_fail: u64,
    /// Spool finish (fdatasync) failures per 10,000 (fault phase only).
    pub finish_fail: u64,
    /// Source read failures per 10,000 (fault phase only).
    pub read_fail: u64,
}

/// One station: its cycle timing, bus configuration and disk.
#[derive(Debug, Clone)]
pub struct StationParams {
    /// Cycle period.
    pub period_ns: u64,
    /// Per-cycle jitter of the period, percent.
    pub jitter_percent: u64,
    /// The bus configuration of incarnation 1 (later incarnations change only `incarnation`
    /// and `seed`).
    pub config: BusConfig,
    /// The deliberately slow subscriber: tiny deliver budget and queues.
    pub slow: bool,
    /// Its disk.
    pub disk: DiskParams,
}

/// A crash and its restart.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Station index.
    pub station: usize,
    /// Crash time.
    pub at: u64,
    /// Restart time.
    pub restart_at: u64,
}

/// Links down for a while.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Edge indexes that are down.
    pub edges: Vec<usize>,
    /// Down from.
    pub from: u64,
    /// Healed at.
    pub to: u64,
    /// `None`: both directions are down; `Some(true)`: only the direction from the lower
    /// station index to the higher one; `Some(false)`: only the other direction.
    pub one_way: Option<bool>,
}

/// Which station plays which part in the workload.
#[derive(Debug, Clone)]
pub struct Roles {
    /// Servers of [`PORT_SERVICE`].
    pub service: Vec<usize>,
    /// Server of [`PORT_LANGUAGE`], if any.
    pub language: Option<usize>,
    /// Servers of [`PORT_AI`].
    pub ai: Vec<usize>,
    /// Members of [`PORT_GROUP`].
    pub group: Vec<usize>,
    /// Subscribers of [`PORT_STREAM`].
    pub subscribers: Vec<usize>,
    /// Stream sources (each sends one stream).
    pub sources: Vec<usize>,
    /// The station collecting trace reports.
    pub collector: usize,
}

/// The workload's rates and sizes.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Mean gap between two application operations of one station.
    pub op_gap_ns: u64,
    /// Gap between two stream frames of one source.
    pub stream_gap_ns: u64,
    /// Streams each source sends on at once (round-robin, one frame per gap). Every
    /// [`STREAM_ROTATION_NS`] each ends and a new stream id takes its place, so receivers see
    /// many streams over a run but few at once (well within their token caches).
    pub streams_per_source: u32,
    /// Bulk transfers in the run.
    pub bulk_count: usize,
    /// Largest bulk object.
    pub bulk_len_max: u64,
    /// Whether stations may address themselves (loopback traffic).
    pub self_traffic: bool,
    /// Largest fast-lane payload body.
    pub body_len_max: usize,
}

/// Everything one run does.
#[derive(Debug, Clone)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// Graph shape.
    pub shape: Shape,
    /// Undirected links `(a, b)` by station index.
    pub edges: Vec<(usize, usize)>,
    /// Parameters of each link, by edge index.
    pub links: Vec<LinkParams>,
    /// Stations, by index (station id = index + 1).
    pub stations: Vec<StationParams>,
    /// Faults (loss, duplication, corruption, stragglers, disk faults, partitions, crashes)
    /// happen in `faults_from..faults_until` only.
    pub faults_from: u64,
    /// End of the fault phase: every partition heals, every crashed station restarts.
    pub faults_until: u64,
    /// The application stops issuing operations here.
    pub workload_until: u64,
    /// Fault-free traced packets sent after this are checked hop by hop.
    pub trace_check_from: u64,
    /// Everything pending must be resolved by here (liveness bound), plus the drain term the
    /// simulator adds when the workload stops.
    pub deadline: u64,
    /// The liveness bound after `workload_until`, with its derivation.
    pub liveness_bound_ns: u64,
    /// A round trip across the graph (a message and its ACK): what each window of messages
    /// still queued when the workload stops adds to the bound.
    pub round_trip_ns: u64,
    /// Crashes.
    pub crashes: Vec<Crash>,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// Roles.
    pub roles: Roles,
    /// Workload.
    pub workload: Workload,
    /// Longest shortest path in the graph, in hops.
    pub diameter: u32,
    /// Step bound: the run fails if it needs more station cycles than this.
    pub cycles_max: u64,
    /// The scale the run was drawn at.
    pub scale: Scale,
}

/// How big the runs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The per-commit suite: short fault phases, small objects.
    Quick,
    /// The long batch: longer fault phases, objects up to 1 MiB.
    Full,
}

fn range(rng: &mut Rng, low: u64, high: u64) -> u64 {
    debug_assert!(low <= high);
    low + rng.below(high - low + 1)
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

fn subset(rng: &mut Rng, n: usize, low: usize, high: usize) -> Vec<usize> {
    let count = range(rng, low as u64, high.min(n) as u64) as usize;
    let mut all: Vec<usize> = (0..n).collect();
    // Fisher-Yates on a prefix.
    for i in 0..count {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    let mut chosen = all[..count].to_vec();
    chosen.sort_unstable();
    chosen
}

impl Params {
    /// The run seed `seed` names.
    pub fn from_seed(seed: u64, scale: Scale) -> Params {
        let mut root = Rng::new(seed);
        let mut topo_rng = root.fork();
        let mut link_rng = root.fork();
        let mut station_rng = root.fork();
        let mut fault_rng = root.fork();
        let mut work_rng = root.fork();
        // Parameters added later draw from here, so the earlier ones keep their values.
        let mut extra_rng = root.fork();

        // Topology.
        let n = range(&mut topo_rng, 5, 9) as usize;
        let shape = pick(
            &mut topo_rng,
            &[
                Shape::Line,
                Shape::Star,
                Shape::Ring,
                Shape::Mesh,
                Shape::Random,
            ],
        );
        let mut edges = Vec::new();
        match shape {
            Shape::Line => edges.extend((1..n).map(|i| (i - 1, i))),
            Shape::Star => edges.extend((1..n).map(|i| (0, i))),
            Shape::Ring => {
                edges.extend((1..n).map(|i| (i - 1, i)));
                edges.push((0, n - 1));
            }
            Shape::Mesh => {
                for a in 0..n {
                    for b in a + 1..n {
                        edges.push((a, b));
                    }
                }
            }
            Shape::Random => {
                for i in 1..n {
                    let j = topo_rng.below(i as u64) as usize;
                    edges.push((j, i));
                }
                let extra = range(&mut topo_rng, 0, n as u64);
                for _ in 0..extra {
                    let a = topo_rng.below(n as u64) as usize;
                    let b = topo_rng.below(n as u64) as usize;
                    let (a, b) = (a.min(b), a.max(b));
                    if a != b && !edges.contains(&(a, b)) {
                        edges.push((a, b));
                    }
                }
            }
        }
        let diameter = diameter(n, &edges);

        // Links.
        let faulty = link_rng.chance(9, 10);
        let links: Vec<LinkParams> = edges
            .iter()
            .map(|_| {
                let f = |rng: &mut Rng, max: u64| if faulty { range(rng, 0, max) } else { 0 };
                LinkParams {
                    delay_ns: range(&mut link_rng, 50_000, 3 * MS),
                    jitter_ns: pick(&mut link_rng, &[0, 100_000, MS, 4 * MS]),
                    ns_per_kib: pick(&mut link_rng, &[1_000, 10_000, 100_000]),
                    loss: f(&mut link_rng, 1500),
                    duplicate: f(&mut link_rng, 500),
                    corrupt: f(&mut link_rng, 200),
                    straggle: f(&mut link_rng, 100),
                    straggle_ns: range(&mut link_rng, 10 * MS, 800 * MS),
                    reconnect: link_rng.chance(1, 2),
                }
            })
            .collect();

        // Stations.
        let slow_station = station_rng
            .chance(3, 4)
            .then(|| station_rng.below(n as u64) as usize);
        let stations: Vec<StationParams> = (0..n)
            .map(|i| {
                let slow = slow_station == Some(i);
                let config = bus_config(&mut station_rng, i as u32 + 1, slow);
                StationParams {
                    period_ns: pick(&mut station_rng, &[250_000, 500_000, MS, 2 * MS]),
                    jitter_percent: range(&mut station_rng, 0, 30),
                    config,
                    slow,
                    disk: DiskParams {
                        latency_ns: pick(&mut station_rng, &[0, 200_000, 2 * MS]),
                        write_fail: range(&mut station_rng, 0, 100),
                        no_space_percent: range(&mut station_rng, 0, 100),
                        open_fail: range(&mut station_rng, 0, 300),
                        finish_fail: range(&mut station_rng, 0, 500),
                        read_fail: range(&mut station_rng, 0, 50),
                    },
                }
            })
            .collect();

        // Phases. Discovery converges during the warm-up: a few advert intervals plus the time
        // a flood needs to cross the graph.
        let advert_max = stations
            .iter()
            .map(|s| s.config.advert_interval.as_nanos())
            .max()
            .unwrap_or(0);
        let faults_from = 3 * advert_max + 200 * MS;
        let fault_len = match scale {
            Scale::Quick => range(&mut fault_rng, 500 * MS, 1_500 * MS),
            Scale::Full => range(&mut fault_rng, 1_000 * MS, 4_000 * MS),
        };
        let faults_until = faults_from + fault_len;

        // Crashes: at most one per station, inside the fault phase.
        let mut crashes = Vec::new();
        let crash_count = pick(&mut fault_rng, &[0, 0, 1, 1, 2, 3]);
        for station in subset(&mut fault_rng, n, crash_count, crash_count) {
            let at = faults_from + fault_rng.below(fault_len);
            let down = range(&mut fault_rng, 20 * MS, 600 * MS);
            crashes.push(Crash {
                station,
                at,
                restart_at: (at + down).min(faults_until),
            });
        }
        crashes.sort_by_key(|c| c.at);

        // Partitions: one link, or a cut between two groups of stations.
        let mut partitions = Vec::new();
        for _ in 0..pick(&mut fault_rng, &[0, 1, 1, 2, 3]) {
            let from = faults_from + fault_rng.below(fault_len);
            let to = (from + range(&mut fault_rng, 50 * MS, 800 * MS)).min(faults_until);
            let edges_down = if fault_rng.chance(1, 2) {
                vec![fault_rng.below(edges.len() as u64) as usize]
            } else {
                let side = subset(&mut fault_rng, n, 1, n / 2);
                edges
                    .iter()
                    .enumerate()
                    .filter(|(_, (a, b))| side.contains(a) != side.contains(b))
                    .map(|(i, _)| i)
                    .collect()
            };
            partitions.push(Partition {
                edges: edges_down,
                from,
                to,
                one_way: None,
            });
        }

        // Roles and workload.
        let mut roles = Roles {
            service: subset(&mut work_rng, n, 2, 3),
            language: work_rng
                .chance(1, 2)
                .then(|| work_rng.below(n as u64) as usize),
            ai: subset(&mut work_rng, n, 1, 2),
            group: subset(&mut work_rng, n, 2, 4),
            subscribers: {
                let mut s = subset(&mut work_rng, n, 2, 4);
                if let Some(slow) = slow_station {
                    if !s.contains(&slow) {
                        s.push(slow);
                        s.sort_unstable();
                    }
                }
                s
            },
            sources: subset(&mut work_rng, n, 1, 2),
            collector: work_rng.below(n as u64) as usize,
        };
        let workload = Workload {
            op_gap_ns: pick(&mut work_rng, &[2 * MS, 5 * MS, 10 * MS, 25 * MS]),
            stream_gap_ns: pick(&mut work_rng, &[MS, 3 * MS, 10 * MS]),
            streams_per_source: pick(&mut extra_rng, &[1, 1, 2]),
            bulk_count: match scale {
                Scale::Quick => pick(&mut work_rng, &[0, 1, 1, 2, 3]),
                Scale::Full => pick(&mut work_rng, &[1, 2, 3, 5]),
            },
            bulk_len_max: match scale {
                Scale::Quick => pick(&mut work_rng, &[4 << 10, 32 << 10, 128 << 10, 256 << 10]),
                Scale::Full => pick(&mut work_rng, &[64 << 10, 256 << 10, 1 << 20]),
            },
            self_traffic: work_rng.chance(1, 4),
            body_len_max: pick(&mut work_rng, &[16, 200, 2000]),
        };

        // Some partitions cut one direction only (a station hears a neighbour that cannot
        // hear it); some stations crash again after their restart.
        for p in &mut partitions {
            if extra_rng.chance(1, 3) {
                p.one_way = Some(extra_rng.chance(1, 2));
            }
        }
        let first_crashes = crashes.clone();
        for c in first_crashes {
            let mut restart_at = c.restart_at;
            while restart_at + 20 * MS < faults_until && extra_rng.chance(1, 3) {
                let at = restart_at + 1 + extra_rng.below(faults_until - restart_at - 1);
                let down = range(&mut extra_rng, 5 * MS, 300 * MS);
                restart_at = (at + down).min(faults_until);
                crashes.push(Crash {
                    station: c.station,
                    at,
                    restart_at,
                });
            }
        }
        crashes.sort_by_key(|c| c.at);

        if !workload.self_traffic {
            // A source listening to itself would stream to itself over the loopback.
            let sources = roles.sources.clone();
            roles.subscribers.retain(|s| !sources.contains(s));
        }

        // Liveness bound, after the workload stops (the network is healed and every station up
        // since `faults_until`, earlier than that):
        //   convergence: a neighbour silent across the heal is declared dead after
        //     `dead_after`, greeted again within a heartbeat, and the news floods the graph in
        //     one advert interval plus a hop per diameter;
        //   the last message sent, first transmitted after its channel's earlier messages are
        //     resolved: it needs at most `retry_span` (+1/8 jitter per backoff) and may be
        //     answered BUSY `busy_max` times, each backing off at most `rto_max`;
        //   bulk: every stall of `rto_initial` counts, up to 2 × `attempts_max` in a row, and
        //     the object moves at least one window per round trip;
        //   and the messages still queued behind full channel windows when the workload stops
        //     drain one window per round trip: the simulator adds that term when it gets there
        //     (`round_trip_ns` × the deepest outbox over its channel window).
        let worst = |f: &dyn Fn(&BusConfig) -> u64| {
            stations.iter().map(|s| f(&s.config)).max().unwrap_or(0)
        };
        let hop_ns = links
            .iter()
            .map(|l| l.delay_ns + l.jitter_ns + l.ns_per_kib * 5)
            .max()
            .unwrap_or(0)
            + stations.iter().map(|s| s.period_ns * 2).max().unwrap_or(0);
        let convergence = worst(&|c| c.dead_after.as_nanos() + c.heartbeat_interval.as_nanos())
            + worst(&|c| c.advert_interval.as_nanos())
            + u64::from(diameter + 1) * hop_ns;
        let retry = worst(&|c| c.retry_span().as_nanos() * 9 / 8)
            + worst(&|c| u64::from(c.busy_max) * c.rto_max.as_nanos());
        let bulk = worst(&|c| 2 * u64::from(c.attempts_max) * c.rto_initial.as_nanos())
            + workload.bulk_len_max / 512 / 4 * 2 * u64::from(diameter + 1) * hop_ns;
        let liveness_bound_ns = convergence + retry.max(bulk) + 500 * MS;
        let round_trip_ns = 2 * u64::from(diameter + 1) * hop_ns;
        // The workload goes on in the quiet phase until routes have converged and a while
        // after, so traced packets cross a fault-free, settled network.
        let trace_check_from = faults_until + convergence;
        let workload_until = trace_check_from + 300 * MS;
        let deadline = workload_until + liveness_bound_ns;
        let cycles_max = deadline / 200_000 * n as u64 + 1_000_000;

        Params {
            seed,
            shape,
            edges,
            links,
            stations,
            faults_from,
            faults_until,
            workload_until,
            trace_check_from,
            deadline,
            liveness_bound_ns,
            round_trip_ns,
            crashes,
            partitions,
            roles,
            workload,
            diameter,
            cycles_max,
            scale,
        }
    }

    /// Every parameter, one line per item, for the log printed before the run.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let ms = |ns: u64| ns as f64 / MS as f64;
        let _ = writeln!(
            s,
            "sim seed={} scale={:?} (rerun: TAMTAM_SEED={}{} cargo nextest run -p tamtam-tests sim_replay --no-capture)",
            self.seed,
            self.scale,
            self.seed,
            if self.scale == Scale::Full {
                " TAMTAM_SIM_SCALE=full"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  shape={:?} stations={} diameter={} edges={:?}",
            self.shape,
            self.stations.len(),
            self.diameter,
            self.edges
        );
        let _ = writeln!(
            s,
            "  phases: faults {:.1}..{:.1} ms, workload until {:.1} ms, trace check from {:.1} ms, liveness bound {:.1} ms + {:.1} ms per queued window, deadline {:.1} ms, cycles_max {}",
            ms(self.faults_from),
            ms(self.faults_until),
            ms(self.workload_until),
            ms(self.trace_check_from),
            ms(self.liveness_bound_ns),
            ms(self.round_trip_ns),
            ms(self.deadline),
            self.cycles_max
        );
        for (i, l) in self.links.iter().enumerate() {
            let _ = writeln!(
                s,
                "  link {i} {:?}: delay {:.2} ms jitter {:.2} ms {} ns/KiB loss {}‱ dup {}‱ corrupt {}‱ straggle {}‱ (≤{:.0} ms) reconnect={}",
                self.edges[i],
                ms(l.delay_ns),
                ms(l.jitter_ns),
                l.ns_per_kib,
                l.loss,
                l.duplicate,
                l.corrupt,
                l.straggle,
                ms(l.straggle_ns),
                l.reconnect
            );
        }
        for (i, st) in self.stations.iter().enumerate() {
            let c = &st.config;
            let _ = writeln!(
                s,
                "  station {} period {:.2} ms ±{}%{}: deliver {} transmit {} quantum {} share {}% reserve {}% portq {} outbox {} window {} linkq {} rto {}/{}/{} ms attempts {} busy_max {} hb {} dead {} advert {} ttl {} ms stream life {} cache {} q {} segment {} bulk window {} transfers {} traceq {} aging {} ms; disk lat {:.1} ms write {}‱ (nospace {}%) open {}‱ finish {}‱ read {}‱",
                i + 1,
                ms(st.period_ns),
                st.jitter_percent,
                if st.slow { " SLOW" } else { "" },
                c.deliver_budget,
                c.transmit_budget,
                c.consecutive_per_recipient_max,
                c.service_share_percent,
                c.control_reserve_percent,
                c.port_queue_capacity,
                c.outbox_capacity,
                c.channel_window,
                c.link_queue_capacity,
                c.rto_min.as_millis(),
                c.rto_initial.as_millis(),
                c.rto_max.as_millis(),
                c.attempts_max,
                c.busy_max,
                c.heartbeat_interval.as_millis(),
                c.dead_after.as_millis(),
                c.advert_interval.as_millis(),
                c.advert_ttl.as_millis(),
                c.stream_lifetime,
                c.stream_cache_tokens,
                c.stream_queue_capacity,
                c.segment_len,
                c.bulk_window,
                c.transfers_max,
                c.trace_queue_capacity,
                c.aging_step.as_millis(),
                ms(st.disk.latency_ns),
                st.disk.write_fail,
                st.disk.no_space_percent,
                st.disk.open_fail,
                st.disk.finish_fail,
                st.disk.read_fail,
            );
        }
        for c in &self.crashes {
            let _ = writeln!(
                s,
                "  crash station {} at {:.1} ms, restart at {:.1} ms",
                c.station + 1,
                ms(c.at),
                ms(c.restart_at)
            );
        }
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "  partition edges {:?} from {:.1} ms to {:.1} ms{}",
                p.edges,
                ms(p.from),
                ms(p.to),
                match p.one_way {
                    None => "",
                    Some(true) => " (one way: low → high index only)",
                    Some(false) => " (one way: high → low index only)",
                }
            );
        }
        let ids = |v: &[usize]| v.iter().map(|i| i + 1).collect::<Vec<_>>();
        let r = &self.roles;
        let _ = writeln!(
            s,
            "  roles: service {:?} language {:?} ai {:?} group {:?} subscribers {:?} sources {:?} collector {}",
            ids(&r.service),
            r.language.map(|i| i + 1),
            ids(&r.ai),
            ids(&r.group),
            ids(&r.subscribers),
            ids(&r.sources),
            r.collector + 1
        );
        let w = &self.workload;
        let _ = writeln!(
            s,
            "  workload: op gap {:.1} ms stream gap {:.1} ms × {} streams, bulk {} × ≤{} B self_traffic={} body ≤{} B",
            ms(w.op_gap_ns),
            ms(w.stream_gap_ns),
            w.streams_per_source,
            w.bulk_count,
            w.bulk_len_max,
            w.self_traffic,
            w.body_len_max
        );
        s
    }

    /// Whether faults are active at `now`.
    pub fn faulty_at(&self, now: u64) -> bool {
        now >= self.faults_from && now < self.faults_until
    }
}

fn bus_config(rng: &mut Rng, station_id: u32, slow: bool) -> BusConfig {
    let ms = |n: u64| Duration::from_millis(n);
    let mut c = BusConfig::new(station_id);
    c.seed = rng.next_u64();
    c.deliver_budget = if slow {
        range(rng, 1, 2) as usize
    } else {
        range(rng, 4, 64) as usize
    };
    c.transmit_budget = range(rng, 10, 128) as usize;
    c.consecutive_per_recipient_max = range(rng, 1, 10) as u32;
    c.service_share_percent = pick(rng, &[30, 50, 80, 100]);
    c.control_reserve_percent = range(rng, 5, 30) as u32;
    c.port_queue_capacity = if slow {
        range(rng, 1, 4) as usize
    } else {
        range(rng, 4, 64) as usize
    };
    c.outbox_capacity = pick(rng, &[32, 128, 1024]);
    c.channel_window = pick(rng, &[1, 4, 16, 64, 1024]);
    c.link_queue_capacity = pick(rng, &[16, 64, 512]);
    c.rto_initial = ms(range(rng, 10, 60));
    c.rto_min = ms(range(rng, 1, 5));
    c.rto_max = ms(range(rng, 100, 400));
    c.attempts_max = range(rng, 3, 10) as u8;
    c.busy_max = range(rng, 2, 12) as u8;
    c.heartbeat_interval = ms(range(rng, 10, 40));
    c.dead_after = ms(c.heartbeat_interval.as_millis() * range(rng, 3, 8));
    c.advert_interval = ms(range(rng, 50, 200));
    c.advert_ttl = ms(c.advert_interval.as_millis() * range(rng, 4, 10));
    c.stream_lifetime = range(rng, 2, 6) as u8;
    c.stream_cache_tokens = pick(rng, &[1, 8, 256]);
    c.stream_queue_capacity = if slow {
        range(rng, 1, 3) as usize
    } else {
        range(rng, 4, 32) as usize
    };
    c.segment_len = pick(rng, &[512, 1024, 2048, 4096]);
    c.bulk_window = range(rng, 2, 32) as u32;
    c.transfers_max = range(rng, 1, 6) as usize;
    c.trace_queue_capacity = pick(rng, &[16, 128, 1024]);
    c.aging_step = ms(range(rng, 1, 20));
    debug_assert!(c.validate().is_ok(), "{:?}", c.validate());
    c
}

/// Longest shortest path (hops) of a connected graph.
fn diameter(n: usize, edges: &[(usize, usize)]) -> u32 {
    (0..n)
        .flat_map(|start| distances(n, edges, start))
        .max()
        .unwrap_or(0)
}

/// Shortest-path distances (hops) from `start`, `u32::MAX` for unreachable stations.
pub fn distances(n: usize, edges: &[(usize, usize)], start: usize) -> Vec<u32> {
    let mut dist = vec![u32::MAX; n];
    dist[start] = 0;
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for &(a, b) in edges {
            let next = if a == at {
                b
            } else if b == at {
                a
            } else {
                continue;
            };
            if dist[next] == u32::MAX {
                dist[next] = dist[at] + 1;
                queue.push_back(next);
            }
        }
    }
    dist
}
