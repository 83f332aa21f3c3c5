//! TamTam roles: stations in child processes, driven the way an application would drive
//! them, printing what the parent measures.
//!
//! Latency is driven from a handler on the shard thread (the [`Pinger`]: each reply's handler
//! sends the next request) or from an application thread through [`Station::request`].
//! Throughput is driven by the [`Pump`], a handler that re-arms itself every cycle with a
//! message to its own station and emits a batch of messages each time, bounded by credits the
//! receivers send back every [`CREDIT_EVERY`] messages (so the outbox never overflows).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tamtam_engine::core::{BulkReceived, Context, Message, Outgoing, Service};
use tamtam_engine::driver::{Station, StationBuilder, StationError};

use super::{Args, Control, now_ns, open_sockets, say, stopping};
use crate::measure::{self, Latency};
use crate::memlink;

/// Echoes requests (the request → reply target).
pub(crate) const ECHO_PORT: u16 = 1200;
/// The [`Pinger`]'s port on the requesting station.
pub(crate) const PING_PORT: u16 = 1201;
/// Counts one-way messages and sends credits back.
pub(crate) const SINK_PORT: u16 = 1300;
/// The [`Pump`]'s port on the sending station (re-arm messages and credits arrive here).
pub(crate) const PUMP_PORT: u16 = 1301;
/// The fan-out group.
pub(crate) const GROUP_PORT: u16 = 1400;
/// The stream port.
pub(crate) const STREAM_PORT: u16 = 1500;
/// Where bulk objects go.
pub(crate) const BULK_PORT: u16 = 1600;
/// First of the many ports of the `scale` scenario.
pub(crate) const SCALE_FIRST: u16 = 2000;

/// First payload byte of a request the [`Responder`] answers.
const PING: u8 = b'p';
/// First payload byte of a one-way message the [`Responder`] counts.
const DATA: u8 = b'd';
/// A receiver sends the sender a credit (its count so far) every this many messages.
const CREDIT_EVERY: u64 = 1024;
/// Longest wait for stations to find each other.
const SETUP_WAIT: Duration = Duration::from_secs(60);
/// Stream frames sent between two synchronous calls (bounds the command queue).
const STREAM_SYNC_EVERY: u64 = 4096;

fn station_error(what: &'static str) -> impl Fn(StationError) -> String {
    move |e| format!("{what}: {e}")
}

/// A spool directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tamtam-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A builder for station `id` with the role's common settings (`--spin`), spooling in `dir`.
fn builder(args: &Args, id: u32, dir: &TempDir) -> StationBuilder {
    tuned(
        Station::builder()
            .id(id)
            .name(format!("bench-station-{id}"))
            .spool_dir(&dir.0)
            .busy_poll(args.flag("spin")),
        args,
    )
}

/// Applies the bus settings a scenario may change from their defaults: `--channel-window`
/// and `--stream-queue` (both absent in the default figures).
fn tuned(b: StationBuilder, args: &Args) -> StationBuilder {
    let window: Option<u32> = args.0.get("channel-window").and_then(|v| v.parse().ok());
    let queue: Option<usize> = args.0.get("stream-queue").and_then(|v| v.parse().ok());
    b.configure(move |c| {
        if let Some(window) = window {
            c.channel_window = window;
        }
        if let Some(queue) = queue {
            c.stream_queue_capacity = queue;
        }
    })
}

/// Adds the links of `--transport tcp|udp|shm`, `--listen 1`, `--peer ADDR`,
/// `--connections N`. Shared memory listens as `--shm-name NAME` and connects to `--peer NAME`;
/// `--shm-doorbells 0` turns its doorbells off (the shard then polls the link).
fn links(mut b: StationBuilder, args: &Args) -> Result<StationBuilder, String> {
    let udp = match args.str("transport", "tcp") {
        "tcp" => false,
        "udp" => true,
        "shm" => return shm_links(b, args),
        other => return Err(format!("unknown --transport {other}")),
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    if args.flag("listen") {
        b = if udp {
            b.bind_udp(any)
        } else {
            b.listen_tcp(any)
        };
    }
    if let Some(peer) = args.0.get("peer") {
        let peer: SocketAddr = peer.parse().map_err(|e| format!("--peer: {e}"))?;
        if udp {
            b = b.udp_peer(peer);
        } else {
            let connections: usize = args.num("connections", 1)?;
            for _ in 0..connections.max(1) {
                b = b.connect_tcp(peer);
            }
        }
    }
    Ok(b)
}

fn shm_links(mut b: StationBuilder, args: &Args) -> Result<StationBuilder, String> {
    use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};
    let config = ShmConfig {
        doorbells: args.str("shm-doorbells", "1") != "0",
        ..ShmConfig::default()
    };
    if args.flag("listen") {
        let name = args.required("shm-name")?;
        let listener = ShmListener::bind(name, &config).map_err(|e| format!("shm bind: {e}"))?;
        b = b.listener(Box::new(listener));
    }
    if let Some(name) = args.0.get("peer") {
        let link = ShmLink::connect(name, &config).map_err(|e| format!("shm connect: {e}"))?;
        b = b.link(Box::new(link));
    }
    Ok(b)
}

fn ready_line(station: &Station) -> String {
    let addr = station
        .local_addrs()
        .first()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    format!("READY {addr} {}", station.backend())
}

/// Waits until `count` stations serving `port` are known.
fn wait_for_servers(station: &Station, port: u16, count: usize) -> Result<(), String> {
    let deadline = Instant::now() + SETUP_WAIT;
    loop {
        let peers = station.peers().map_err(station_error("peers"))?;
        let serving = peers.iter().filter(|(_, p)| p.contains(&port)).count();
        if serving >= count {
            return Ok(());
        }
        if Instant::now() > deadline || stopping() {
            return Err(format!(
                "only {serving} of {count} stations serving port {port} appeared"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------------------------

/// Answers requests (payloads starting with [`PING`]) with the same payload; counts other
/// messages and credits their sender every [`CREDIT_EVERY`].
struct Responder {
    count: Arc<AtomicU64>,
}

impl Service for Responder {
    fn on_message(&mut self, ctx: &mut Context<'_>, m: &Message<'_>) {
        if m.payload.first() == Some(&PING) {
            ctx.reply(m, m.payload.to_vec());
            return;
        }
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if count % CREDIT_EVERY == 0 {
            ctx.send(
                Outgoing::to_station(m.sender(), PUMP_PORT, count.to_le_bytes().to_vec()).no_ack(),
            );
        }
    }
}

/// What the [`Pinger`] tells the role's main thread.
enum PingEvent {
    /// The warm-up is over; samples are being recorded.
    Started,
    /// All samples are in.
    Done(Box<Histogram<u64>>),
}

/// Request → reply ping-pong driven from the shard thread: every reply's handler records
/// the round trip and sends the next request at once.
struct Pinger {
    destination: u32,
    ports: Vec<u16>,
    payload: Vec<u8>,
    rng: u64,
    warmup: u64,
    samples: u64,
    n: u64,
    sent_at: Instant,
    histogram: Histogram<u64>,
    events: Sender<PingEvent>,
}

impl Pinger {
    fn fire(&mut self, ctx: &mut Context<'_>) {
        let port = if self.ports.len() == 1 {
            self.ports[0]
        } else {
            // xorshift64: a different port each time, spread over all of them.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.ports[(self.rng % self.ports.len() as u64) as usize]
        };
        self.sent_at = Instant::now();
        ctx.send(Outgoing::to_station(
            self.destination,
            port,
            self.payload.clone(),
        ));
    }
}

impl Service for Pinger {
    fn on_message(&mut self, ctx: &mut Context<'_>, m: &Message<'_>) {
        if !m.is_reply() {
            // The kick from our own application thread.
            if m.sender() == ctx.station_id() && self.n == 0 {
                self.fire(ctx);
            }
            return;
        }
        let rtt = self.sent_at.elapsed().as_nanos() as u64;
        self.n += 1;
        if self.n > self.warmup {
            measure::record(&mut self.histogram, rtt);
        }
        if self.n == self.warmup {
            let _ = self.events.send(PingEvent::Started);
        }
        if self.n >= self.warmup + self.samples {
            let histogram = std::mem::replace(&mut self.histogram, measure::histogram());
            let _ = self.events.send(PingEvent::Done(Box::new(histogram)));
            return;
        }
        self.fire(ctx);
    }
}

/// Where the [`Pump`] sends.
#[derive(Clone)]
enum Target {
    /// Station 2's port(s), one at random per message.
    Station(u32, Vec<u16>),
    /// Every member of [`GROUP_PORT`].
    Group,
}

/// Emits up to `batch` one-way ACK-required messages per cycle, keeping at most `window`
/// messages ahead of the slowest receiver's credits.
struct Pump {
    target: Target,
    payload: Vec<u8>,
    batch: u64,
    window: u64,
    sinks: usize,
    sent: u64,
    credits: HashMap<u32, u64>,
    rng: u64,
    running: Arc<AtomicBool>,
}

impl Service for Pump {
    fn on_message(&mut self, ctx: &mut Context<'_>, m: &Message<'_>) {
        if m.sender() != ctx.station_id() {
            if let Ok(count) = <[u8; 8]>::try_from(m.payload) {
                self.credits.insert(m.sender(), u64::from_le_bytes(count));
            }
            return;
        }
        if !self.running.load(Ordering::Relaxed) {
            return;
        }
        let credited = if self.credits.len() < self.sinks {
            0
        } else {
            self.credits.values().copied().min().unwrap_or(0)
        };
        let room = (credited + self.window).saturating_sub(self.sent);
        for _ in 0..room.min(self.batch) {
            let message = match &self.target {
                Target::Station(station, ports) => {
                    let port = if ports.len() == 1 {
                        ports[0]
                    } else {
                        self.rng ^= self.rng << 13;
                        self.rng ^= self.rng >> 7;
                        self.rng ^= self.rng << 17;
                        ports[(self.rng % ports.len() as u64) as usize]
                    };
                    Outgoing::to_station(*station, port, self.payload.clone())
                }
                Target::Group => Outgoing::to_group(GROUP_PORT, self.payload.clone()),
            };
            if !ctx.send(message) {
                break;
            }
            self.sent += 1;
        }
        // Re-arm: this arrives next cycle over the loopback pseudo-link.
        ctx.send(Outgoing::to_station(ctx.station_id(), PUMP_PORT, vec![0]).no_ack());
    }
}

/// Counts stream frames; subscriber `slow` takes `slow_ns` per frame (sleeping, so it slows
/// its own station without taking a core from the others).
struct FrameCounter {
    index: usize,
    counts: Arc<Vec<AtomicU64>>,
    slow_ns: u64,
    next_free: Option<Instant>,
}

impl Service for FrameCounter {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}

    fn on_stream(&mut self, _: &mut Context<'_>, _: &Message<'_>) {
        self.counts[self.index].fetch_add(1, Ordering::Relaxed);
        if self.slow_ns > 0 {
            let now = Instant::now();
            let next = self.next_free.unwrap_or(now).max(now) + Duration::from_nanos(self.slow_ns);
            self.next_free = Some(next);
            if next - now > Duration::from_millis(1) {
                std::thread::sleep(next - now);
            }
        }
    }
}

/// Reports finished bulk objects to the role's main thread.
struct BulkSink(Mutex<Sender<(String, u64)>>);

impl Service for BulkSink {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}

    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        let _ = self
            .0
            .lock()
            .expect("bulk sink lock")
            .send((object.spool_key.clone(), object.len));
    }
}

// ---------------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------------

/// `tt-server --transport tcp|udp --listen 1 [--ports N] [--spin 1]`: station 2 serving
/// [`ECHO_PORT`], [`SINK_PORT`] and, with `--ports`, N more ports from [`SCALE_FIRST`], all
/// with a [`Responder`]. Answers `sockets` and `stats` commands.
pub(super) fn server(args: &Args, control: &Control) -> Result<(), String> {
    let dir = TempDir::new("server");
    let count = Arc::new(AtomicU64::new(0));
    let mut b = links(builder(args, args.num("id", 2)?, &dir), args)?;
    let ports: u16 = args.num("ports", 0)?;
    for port in [ECHO_PORT, SINK_PORT]
        .into_iter()
        .chain((0..ports).map(|i| SCALE_FIRST + i))
    {
        b = b.serve(
            port,
            Responder {
                count: count.clone(),
            },
        );
    }
    let station = b.build().map_err(station_error("station"))?;
    match args.0.get("shm-name") {
        Some(name) => say(format!("READY {name} {}", station.backend())),
        None => say(ready_line(&station)),
    }
    control.serve_until_closed(|command| match command {
        "sockets" => Some(format!("SOCKETS {}", open_sockets())),
        "stats" => station.stats().ok().map(|s| {
            format!(
                "STATS delivered={} acked={} retransmits={} frames_received={}",
                s.delivered, s.acked, s.retransmits, s.frames_received
            )
        }),
        _ => None,
    });
    station.shutdown();
    Ok(())
}

/// The services of a requesting/sending station and the handles to drive them.
struct ClientParts {
    pings: Receiver<PingEvent>,
    pump_running: Arc<AtomicBool>,
}

/// Adds the [`Pinger`] and the [`Pump`] to `b` for `--size`, `--warmup`, `--samples`,
/// `--ports`, `--to station|group`, `--sinks`, `--batch`, `--window`.
fn client_services(
    mut b: StationBuilder,
    args: &Args,
    destination: u32,
) -> Result<(StationBuilder, ClientParts), String> {
    let size: usize = args.num("size", 64)?;
    let ports: u16 = args.num("ports", 0)?;
    let target_ports: Vec<u16> = if ports == 0 {
        vec![ECHO_PORT]
    } else {
        (0..ports).map(|i| SCALE_FIRST + i).collect()
    };
    let mut ping_payload = vec![0x5a; size.max(1)];
    ping_payload[0] = PING;
    let mut data_payload = vec![0x5a; size.max(1)];
    data_payload[0] = DATA;
    let (events, pings) = channel();
    b = b.serve(
        PING_PORT,
        Pinger {
            destination,
            ports: target_ports.clone(),
            payload: ping_payload,
            rng: 0x9e37_79b9_7f4a_7c15,
            warmup: args.num("warmup", 1000)?,
            samples: args.num("samples", 10_000)?,
            n: 0,
            sent_at: Instant::now(),
            histogram: measure::histogram(),
            events,
        },
    );
    let pump_running = Arc::new(AtomicBool::new(true));
    let target = match args.str("to", "station") {
        "group" => Target::Group,
        _ if ports == 0 => Target::Station(destination, vec![SINK_PORT]),
        _ => Target::Station(destination, target_ports),
    };
    b = b.serve(
        PUMP_PORT,
        Pump {
            target,
            payload: data_payload,
            batch: args.num("batch", 512)?,
            // Each group message takes one outbox slot per member: stay well inside the
            // outbox (65,536 by default) whatever the group size.
            window: args.num("window", 16_384)? / args.num::<u64>("sinks", 1)?.max(1),
            sinks: args.num("sinks", 1)?,
            sent: 0,
            credits: HashMap::new(),
            rng: 0x2545_f491_4f6c_dd1d,
            running: pump_running.clone(),
        },
    );
    Ok((
        b,
        ClientParts {
            pings,
            pump_running,
        },
    ))
}

/// Runs `--phases rtt,pump,api-rtt,api-pump` against `destination`.
fn client_phases(
    station: &Station,
    parts: &ClientParts,
    args: &Args,
    destination: u32,
) -> Result<(), String> {
    for phase in args.str("phases", "rtt").split(',') {
        match phase {
            "rtt" => handler_rtt(station, parts, args)?,
            "api-rtt" => api_rtt(station, args, destination)?,
            "pump" => pump_windows(station, parts, args)?,
            "api-pump" => api_pump(station, args, destination)?,
            "none" => {}
            other => return Err(format!("unknown phase {other}")),
        }
    }
    Ok(())
}

fn handler_rtt(station: &Station, parts: &ClientParts, args: &Args) -> Result<(), String> {
    let samples: u64 = args.num("samples", 10_000)?;
    let warmup: u64 = args.num("warmup", 1000)?;
    // Bounded: 50 ms per round trip on average is far beyond any healthy run.
    let limit = Duration::from_secs(30) + Duration::from_millis(50) * (samples + warmup) as u32;
    station
        .send(Outgoing::to_station(station.id(), PING_PORT, b"kick".to_vec()).no_ack())
        .map_err(station_error("kick"))?;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match parts.pings.recv_timeout(left) {
            Ok(PingEvent::Started) => say("MARK start"),
            Ok(PingEvent::Done(histogram)) => {
                say("MARK end");
                say(format!("LAT {}", Latency::of(&histogram).to_line()));
                return Ok(());
            }
            Err(_) => return Err(format!("ping-pong did not finish within {limit:?}")),
        }
    }
}

fn api_rtt(station: &Station, args: &Args, destination: u32) -> Result<(), String> {
    let samples: u64 = args.num("samples", 10_000)?;
    let warmup: u64 = args.num("warmup", 1000)?;
    let size: usize = args.num("size", 64)?;
    let mut payload = vec![0x5a; size.max(1)];
    payload[0] = PING;
    let mut histogram = measure::histogram();
    for i in 0..warmup + samples {
        if i == warmup {
            say("MARK start");
        }
        let t = Instant::now();
        let reply = station
            .request(
                Outgoing::to_station(destination, ECHO_PORT, payload.clone()),
                Duration::from_secs(10),
            )
            .map_err(station_error("request"))?;
        if i >= warmup {
            measure::record(&mut histogram, t.elapsed().as_nanos() as u64);
        }
        if reply.len() != payload.len() {
            return Err("reply of the wrong size".into());
        }
    }
    say("MARK end");
    say(format!("LAT {}", Latency::of(&histogram).to_line()));
    Ok(())
}

/// Measures acknowledged messages per second over `--windows` windows of `--window-ms`
/// after `--warmup-ms`, printing `MARK start`, `VAL <acked/s>` per window, `MARK end`, and
/// `VAL stats …`.
fn measure_acked(station: &Station, args: &Args) -> Result<(), String> {
    let warmup = args.millis("warmup-ms", 300)?;
    let window = args.millis("window-ms", 1000)?;
    let windows: usize = args.num("windows", 1)?;
    std::thread::sleep(warmup);
    say("MARK start");
    for _ in 0..windows {
        let (a0, t0) = (
            station.stats().map_err(station_error("stats"))?.acked,
            Instant::now(),
        );
        std::thread::sleep(window);
        let (a1, t1) = (
            station.stats().map_err(station_error("stats"))?.acked,
            Instant::now(),
        );
        say(format!(
            "VAL {}",
            (a1 - a0) as f64 / (t1 - t0).as_secs_f64()
        ));
    }
    say("MARK end");
    let s = station.stats().map_err(station_error("stats"))?;
    say(format!(
        "VAL stats acked={} retransmits={} dead_lettered={} emit_drops={} outbox_full={} cycles={} link_queue_drops={}",
        s.acked,
        s.retransmits,
        s.dead_lettered,
        s.emit_drops,
        s.outbox_full,
        s.cycles,
        s.link_queue_drops
    ));
    Ok(())
}

fn pump_windows(station: &Station, parts: &ClientParts, args: &Args) -> Result<(), String> {
    parts.pump_running.store(true, Ordering::Relaxed);
    station
        .send(Outgoing::to_station(station.id(), PUMP_PORT, vec![0]).no_ack())
        .map_err(station_error("kick"))?;
    let result = measure_acked(station, args);
    parts.pump_running.store(false, Ordering::Relaxed);
    result
}

/// One-way ACK'd messages sent from an application thread with [`Station::post`] (which
/// does not wait for the shard thread, as [`Station::send`] does to return the id).
fn api_pump(station: &Station, args: &Args, destination: u32) -> Result<(), String> {
    let size: usize = args.num("size", 64)?;
    let mut payload = vec![0x5a; size.max(1)];
    payload[0] = DATA;
    let running = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut refused = 0u64;
            while running.load(Ordering::Relaxed) {
                match station.post(Outgoing::to_station(
                    destination,
                    SINK_PORT,
                    payload.clone(),
                )) {
                    Ok(()) => {}
                    Err(StationError::Send(_) | StationError::Busy(_)) => {
                        refused += 1;
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    Err(_) => break,
                }
            }
            refused
        });
        let result = measure_acked(station, args);
        running.store(false, Ordering::Relaxed);
        let refused = sender.join().unwrap_or(0);
        say(format!("VAL refused {refused}"));
        result
    })
}

/// `tt-client --id 1 (--peer ADDR | --listen 1) --phases … [--wait-go 1]`: the requesting or
/// sending station. With `--wait-go`, prints `CONNECTED` once its destination is known and
/// waits for a `go` command.
pub(super) fn client(args: &Args, control: &Control) -> Result<(), String> {
    let dir = TempDir::new("client");
    let destination: u32 = args.num("destination", 2)?;
    let b = links(builder(args, args.num("id", 1)?, &dir), args)?;
    let (b, parts) = client_services(b, args, destination)?;
    let station = b.build().map_err(station_error("station"))?;
    say(ready_line(&station));
    if args.str("to", "station") == "group" {
        wait_for_servers(&station, GROUP_PORT, args.num("sinks", 1)?)?;
    } else {
        let port = if args.num::<u16>("ports", 0)? > 0 {
            SCALE_FIRST
        } else {
            ECHO_PORT
        };
        station
            .wait_for_port(
                port,
                args.millis("setup-ms", SETUP_WAIT.as_millis() as u64)?,
            )
            .map_err(station_error("waiting for the server"))?;
    }
    if args.flag("wait-go") {
        say("CONNECTED");
        control.wait_for("go", SETUP_WAIT * 2)?;
    }
    client_phases(&station, &parts, args, destination)?;
    say("DONE");
    control.serve_until_closed(|_| None);
    station.shutdown();
    Ok(())
}

/// `tt-inproc --phases …`: two stations in this process, on two threads, linked by an
/// in-memory SPSC link; station 1 runs the phases against station 2.
pub(super) fn inproc(args: &Args, control: &Control) -> Result<(), String> {
    let (dir_a, dir_b) = (TempDir::new("a"), TempDir::new("b"));
    let (end_a, end_b) = memlink::pair(8 << 20);
    let count = Arc::new(AtomicU64::new(0));
    let b = builder(args, 2, &dir_b)
        .link(Box::new(end_b))
        .serve(
            ECHO_PORT,
            Responder {
                count: count.clone(),
            },
        )
        .serve(SINK_PORT, Responder { count })
        .build()
        .map_err(station_error("station 2"))?;
    let a = builder(args, 1, &dir_a).link(Box::new(end_a));
    let (a, parts) = client_services(a, args, 2)?;
    let a = a.build().map_err(station_error("station 1"))?;
    say(ready_line(&a));
    a.wait_for_port(ECHO_PORT, SETUP_WAIT)
        .map_err(station_error("waiting for station 2"))?;
    client_phases(&a, &parts, args, 2)?;
    say("DONE");
    control.serve_until_closed(|_| None);
    a.shutdown();
    b.shutdown();
    Ok(())
}

/// `tt-subs --peer ADDR --count N --mode group|stream [--slow-ns X]`: N stations (ids 10…)
/// in this process, each linked to the publisher at ADDR, joined to [`GROUP_PORT`] or
/// subscribed to [`STREAM_PORT`]; subscriber 0 takes `--slow-ns` per frame. Answers `count`
/// with `COUNT <ns> <frames of each subscriber>…`.
pub(super) fn subscribers(args: &Args, control: &Control) -> Result<(), String> {
    let count: usize = args.num("count", 1)?;
    let slow_ns: u64 = args.num("slow-ns", 0)?;
    let stream = args.str("mode", "stream") == "stream";
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let mut dirs = Vec::new();
    let mut stations = Vec::new();
    for i in 0..count {
        let id = 10 + i as u32;
        dirs.push(TempDir::new(&format!("sub{id}")));
        let b = links(builder(args, id, &dirs[i]), args)?;
        let b = if stream {
            b.subscribe(
                STREAM_PORT,
                FrameCounter {
                    index: i,
                    counts: counts.clone(),
                    slow_ns: if i == 0 { slow_ns } else { 0 },
                    next_free: None,
                },
            )
        } else {
            b.join_group(
                GROUP_PORT,
                Responder {
                    count: Arc::new(AtomicU64::new(0)),
                },
            )
        };
        stations.push(b.build().map_err(station_error("subscriber"))?);
    }
    say(ready_line(&stations[0]));
    control.serve_until_closed(|command| match command {
        "count" => {
            let values: Vec<String> = counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed).to_string())
                .collect();
            Some(format!("COUNT {} {}", now_ns(), values.join(" ")))
        }
        "stats" => {
            let mut total = tamtam_engine::core::stats::Stats::default();
            for s in &stations {
                if let Ok(stats) = s.stats() {
                    total.add(&stats);
                }
            }
            Some(format!("STATS {}", stream_stats(&total)))
        }
        _ => None,
    });
    for s in stations {
        s.shutdown();
    }
    Ok(())
}

/// The stream counters of `s`, as `name=value` fields.
fn stream_stats(s: &tamtam_engine::core::stats::Stats) -> String {
    format!(
        "stream_sent={} stream_delivered={} stream_expired={} stream_overrun={} stream_duplicates={} frames_received={} cycles={} link_queue_drops={} frames_sent={}",
        s.stream_sent,
        s.stream_delivered,
        s.stream_expired,
        s.stream_overrun,
        s.stream_duplicates,
        s.frames_received,
        s.cycles,
        s.link_queue_drops,
        s.frames_sent
    )
}

/// `tt-streamer --listen 1 --size N --subscribers N`: station 1 sending stream frames on
/// [`STREAM_PORT`] from its application thread as fast as [`Station::stream`] takes them,
/// after a `go` command, until `stop`. Answers `count` with `SENT <ns> <frames> <copies>`.
pub(super) fn streamer(args: &Args, control: &Control) -> Result<(), String> {
    let dir = TempDir::new("streamer");
    let size: usize = args.num("size", 64)?;
    let subscribers: usize = args.num("subscribers", 1)?;
    let station = links(builder(args, 1, &dir), args)?
        .build()
        .map_err(station_error("station"))?;
    say(ready_line(&station));
    wait_for_servers(&station, STREAM_PORT, subscribers)?;
    say("SUBSCRIBED");
    control.wait_for("go", SETUP_WAIT * 2)?;
    let payload = vec![0x5au8; size.max(1)];
    let started = Instant::now();
    let mut frames = 0u64;
    loop {
        match station.stream(STREAM_PORT, 1, payload.clone()) {
            // The shard's command queue is full: the publisher outruns its own shard.
            Err(StationError::Busy(_)) => {
                std::thread::yield_now();
                continue;
            }
            other => other.map_err(station_error("stream"))?,
        }
        frames += 1;
        if frames % STREAM_SYNC_EVERY == 0 {
            // A synchronous call: the shard has taken every frame before it.
            let stats = station.stats().map_err(station_error("stats"))?;
            match control.poll().as_deref() {
                Some("count") => say(format!("SENT {} {frames} {}", now_ns(), stats.stream_sent)),
                Some("stats") => say(format!("STATS {}", stream_stats(&stats))),
                Some("stop") => break,
                _ => {}
            }
            if stopping() || started.elapsed() > Duration::from_secs(600) {
                break;
            }
        }
    }
    say("DONE");
    control.serve_until_closed(|_| None);
    station.shutdown();
    Ok(())
}

/// `tt-bulk-recv --listen 1 --dir DIR`: station 2 spooling into DIR; prints
/// `BULK <path> <len>` for each finished object.
pub(super) fn bulk_receiver(args: &Args, control: &Control) -> Result<(), String> {
    let dir = PathBuf::from(args.required("dir")?);
    let (tx, rx) = channel();
    let station = links(Station::builder().id(2).name("bench-receiver"), args)?
        .busy_poll(args.flag("spin"))
        .spool_dir(&dir)
        .serve(BULK_PORT, BulkSink(Mutex::new(tx)))
        .build()
        .map_err(station_error("station"))?;
    say(ready_line(&station));
    loop {
        if let Ok((key, len)) = rx.recv_timeout(Duration::from_millis(50)) {
            say(format!("BULK {} {len}", dir.join(key).display()));
        }
        match control.poll().as_deref() {
            Some("stats") => {
                if let Ok(s) = station.stats() {
                    say(format!(
                        "STATS stored={} received={}",
                        s.bulk_segments_stored, s.bulk_received
                    ));
                }
            }
            _ if stopping() => break,
            _ => {}
        }
    }
    station.shutdown();
    Ok(())
}

/// `tt-bulk-send --peer ADDR --file PATH`: station 1 sending PATH to station 2; prints
/// `MARK start`, `MARK end` and `VAL <seconds>` once the receiver holds it durably.
pub(super) fn bulk_sender(args: &Args, control: &Control) -> Result<(), String> {
    let dir = TempDir::new("bulk-sender");
    let file = PathBuf::from(args.required("file")?);
    let station = links(builder(args, 1, &dir), args)?
        .build()
        .map_err(station_error("station"))?;
    say(ready_line(&station));
    station
        .wait_for_port(BULK_PORT, SETUP_WAIT)
        .map_err(station_error("waiting for the receiver"))?;
    say("MARK start");
    let t = Instant::now();
    let handle = station
        .send_file(2, BULK_PORT, &file)
        .map_err(station_error("send_file"))?;
    // send_file reads the whole file once for its CRC32C before it returns.
    let offer_secs = t.elapsed().as_secs_f64();
    handle
        .wait(Duration::from_secs(600))
        .map_err(station_error("bulk transfer"))?;
    let secs = t.elapsed().as_secs_f64();
    say("MARK end");
    say(format!("VAL {secs}"));
    let s = station.stats().map_err(station_error("stats"))?;
    say(format!(
        "VAL stats segments_sent={} resent={} checksum_pass_secs={offer_secs:.3}",
        s.bulk_segments_sent, s.bulk_segments_resent
    ));
    control.serve_until_closed(|_| None);
    station.shutdown();
    Ok(())
}

/// `tt-crowd --peer ADDR --count N [--first-id ID]`: N quiet peers, each one TCP connection
/// to the station at ADDR that introduces itself as station `ID + i` and sends a heartbeat
/// every 100 ms (so the link stays alive), reading and discarding whatever arrives. They never
/// advertise, so they load the station with live links without flooding discovery traffic.
pub(super) fn crowd(args: &Args, control: &Control) -> Result<(), String> {
    use std::io::{ErrorKind, Read, Write};
    use tamtam_engine::core::wire::frame::{self, Header, Lane, PacketType};

    let peer: SocketAddr = args
        .required("peer")?
        .parse()
        .map_err(|e| format!("--peer: {e}"))?;
    let count: usize = args.num("count", 1)?;
    let first_id: u32 = args.num("first-id", 100_000)?;
    let mut links = Vec::with_capacity(count);
    for i in 0..count {
        let stream = std::net::TcpStream::connect(peer).map_err(|e| format!("connect {i}: {e}"))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        let _ = stream.set_nodelay(true);
        let header = Header {
            sender_id: first_id + i as u32,
            request_id: 1u64 << 32,
            ..Header::new(Lane::Fast, PacketType::Heartbeat)
        };
        let encoded = frame::encode_to_vec(&header, &[]).map_err(|e| format!("encode: {e}"))?;
        let mut heartbeat = (encoded.len() as u32).to_le_bytes().to_vec();
        heartbeat.extend_from_slice(&encoded);
        links.push((stream, heartbeat));
    }
    say("READY -");
    let mut buffer = vec![0u8; 64 * 1024];
    let mut next_beat = Instant::now();
    let started = Instant::now();
    while !stopping() && started.elapsed() < super::LIFETIME_MAX {
        let beat = Instant::now() >= next_beat;
        if beat {
            next_beat += Duration::from_millis(100);
        }
        for (stream, heartbeat) in &mut links {
            // Drain (bounded), then beat; a full socket skips a beat.
            for _ in 0..16 {
                match stream.read(&mut buffer) {
                    Ok(0) => return Err("the station closed a crowd link".into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("crowd read: {e}")),
                }
            }
            if beat {
                let _ = stream.write(heartbeat);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = control.poll();
    Ok(())
}
