//! The short-lived commands (`send`, `listen`, `trace`, `stats`): each runs an ephemeral
//! station that links to a running one over TCP, does its job over the bus and leaves.
//!
//! Every wait is bounded by `--timeout`: reaching the peer, discovering the destination, the
//! ACK or the reply. A failure is one line and a non-zero exit.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tamtam_engine::core::control::TraceEvent;
use tamtam_engine::core::registry;
use tamtam_engine::core::stats::Report;
use tamtam_engine::core::wire::frame::PAYLOAD_LEN_MAX_DEFAULT;
use tamtam_engine::core::{Outgoing, Recipient};
use tamtam_engine::driver::{Outcome, Station, StationBuilder, StationError, TraceKeyQuery};

use crate::show::{Printed, out, payload_text};
use crate::signal;

/// How often waits look at the station again.
const POLL: Duration = Duration::from_millis(10);
/// First id of the range ephemeral stations draw from (below 2^24, above usual hand-picked ids).
pub const EPHEMERAL_FIRST: u32 = 0x00E0_0000;

/// Options every client command shares.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Stations to link to.
    pub connect: Vec<SocketAddr>,
    /// This station's id (None: a random one).
    pub id: Option<u32>,
    /// Bound of every wait.
    pub timeout: Duration,
}

/// Whether `id` is station `to` or one of its shards (a station on several cores shows as one
/// station per core: shard k has id `to | k << 24`, see `StationBuilder::cores`).
fn is_station(id: u32, to: u32) -> bool {
    id == to || (to < 1 << 24 && id & 0x00FF_FFFF == to && (1..64).contains(&(id >> 24)))
}

/// A random id in `EPHEMERAL_FIRST..2^24`, so several clients rarely collide.
fn ephemeral_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    EPHEMERAL_FIRST | (x as u32 & 0x001F_FFFF)
}

/// An ephemeral station linked to a running one; its spool directory is removed on drop.
pub struct Client {
    station: Option<Station>,
    dir: PathBuf,
    timeout: Duration,
    via: String,
}

impl Client {
    /// Links to `options.connect` and waits until a station answers there. `configure` adds
    /// ports and settings to the builder.
    pub fn start(
        options: &ClientOptions,
        configure: impl FnOnce(StationBuilder, &Path) -> StationBuilder,
    ) -> Result<Client, String> {
        if options.connect.is_empty() {
            return Err("no station to link to: give --connect HOST:PORT".into());
        }
        // Probe each address first: a refused or unroutable peer is then reported at once and
        // precisely, instead of as a discovery timeout.
        for addr in &options.connect {
            TcpStream::connect_timeout(addr, options.timeout)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        }
        let id = match options.id {
            Some(0) => return Err("station id 0 is reserved; use 1 or more".into()),
            Some(id) => id,
            None => ephemeral_id(),
        };
        let dir = std::env::temp_dir().join(format!("tamtam-cli-{}-{id}", std::process::id()));
        let mut builder = Station::builder()
            .id(id)
            .name(format!("tamtam-cli-{id}"))
            .spool_dir(dir.clone());
        for &addr in &options.connect {
            builder = builder.connect_tcp(addr);
        }
        builder = configure(builder, &dir);
        let via = options
            .connect
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let station = builder.build().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            format!("cannot start a station: {e}")
        })?;
        let client = Client {
            station: Some(station),
            dir,
            timeout: options.timeout,
            via,
        };
        let deadline = Instant::now() + options.timeout;
        loop {
            if !client.station().peers().map_err(text)?.is_empty() {
                return Ok(client);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no TamTam station answered at {} within {:?}",
                    client.via, options.timeout
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The station.
    pub fn station(&self) -> &Station {
        self.station.as_ref().expect("present until drop")
    }

    /// Waits until station `to` is reachable and, for an application port, serves `port`.
    pub fn wait_for(&self, to: Option<u32>, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let needs_port = port > registry::MIDDLEWARE_LAST;
        loop {
            let peers = self.station().peers().map_err(text)?;
            let (seen, served) = match to {
                Some(to) => (
                    peers.iter().any(|(id, _)| *id == to),
                    peers
                        .iter()
                        .any(|(id, ports)| is_station(*id, to) && ports.contains(&port)),
                ),
                None => {
                    let served = peers.iter().any(|(_, ports)| ports.contains(&port));
                    (served, served)
                }
            };
            if seen && (served || !needs_port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(match (to, seen) {
                    (Some(to), true) => format!("station {to} does not serve port {port}"),
                    (Some(to), false) => format!(
                        "station {to} is not reachable through {} (waited {:?})",
                        self.via, self.timeout
                    ),
                    (None, _) => format!(
                        "no station serving port {port} is reachable through {} (waited {:?})",
                        self.via, self.timeout
                    ),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(station) = self.station.take() {
            station.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(e: StationError) -> String {
    e.to_string()
}

fn dead_letter_line(record: &tamtam_engine::core::control::AuditRecord) -> String {
    format!(
        "dead-lettered: {:?} after {} attempt{} (destination {}, port {})",
        record.reason,
        record.attempts,
        if record.attempts == 1 { "" } else { "s" },
        record.destination,
        record.recipient_port
    )
}

// ---------------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------------

/// Where the message of `tamtam send` comes from.
#[derive(Debug, Clone)]
pub enum Body {
    /// The command-line argument.
    Text(String),
    /// A file.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

/// Options of `tamtam send`.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Shared options.
    pub client: ClientOptions,
    /// Destination station (None: any station serving the port).
    pub to: Option<u32>,
    /// Destination port.
    pub port: u16,
    /// The message (fast lane).
    pub body: Body,
    /// Wait for a reply and print it.
    pub request: bool,
    /// Send this file over the bulk lane instead.
    pub bulk: Option<PathBuf>,
    /// No confirmation line, no progress bar.
    pub quiet: bool,
}

fn read_body(body: &Body) -> Result<Vec<u8>, String> {
    let limit = u64::from(PAYLOAD_LEN_MAX_DEFAULT);
    let too_large = || {
        format!(
            "the message is larger than {limit} bytes (the fast lane's limit); send it with --bulk"
        )
    };
    let bytes = match body {
        Body::Text(text) => text.clone().into_bytes(),
        Body::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut bytes = Vec::new();
            file.take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            bytes
        }
        Body::Stdin => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            bytes
        }
    };
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Runs `tamtam send`.
pub fn send(options: &SendOptions) -> Result<(), String> {
    if options.bulk.is_some() && options.to.is_none() {
        return Err("--bulk needs --to STATION".into());
    }
    let payload = match options.bulk {
        Some(_) => Vec::new(),
        None => read_body(&options.body)?,
    };
    let client = Client::start(&options.client, |b, _| b)?;
    client.wait_for(options.to, options.port)?;
    let station = client.station();
    let timeout = options.client.timeout;
    if let Some(path) = &options.bulk {
        return send_bulk(&client, options, path);
    }
    let to = match options.to {
        Some(to) => Recipient::Station(to),
        None => Recipient::Service,
    };
    let mut message = Outgoing::to_service(options.port, payload);
    message.to = to;
    let target = match options.to {
        Some(to) => format!("station {to} port {}", options.port),
        None => format!("port {}", options.port),
    };
    let started = Instant::now();
    if options.request {
        let reply = station.request(message, timeout).map_err(|e| match e {
            StationError::Timeout(t) => format!("no reply from {target} within {t:?}"),
            e => format!("request to {target} failed: {e}"),
        })?;
        out(&payload_text(&reply));
        return Ok(());
    }
    match station.send_and_wait(message, timeout) {
        Ok(Outcome::Delivered) => {
            if !options.quiet {
                out(&format!(
                    "delivered to {target}, acknowledged in {:.1?}",
                    started.elapsed()
                ));
            }
            Ok(())
        }
        Ok(Outcome::DeadLettered(record)) => Err(dead_letter_line(&record)),
        Err(StationError::Timeout(t)) => Err(format!("no ACK from {target} within {t:?}")),
        Err(e) => Err(format!("send to {target} failed: {e}")),
    }
}

fn send_bulk(client: &Client, options: &SendOptions, path: &Path) -> Result<(), String> {
    let to = options.to.expect("checked by send");
    // A transfer may be long: Ctrl-C stops it cleanly (and removes this station's spool).
    signal::install()?;
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let started = Instant::now();
    let handle = client
        .station()
        .send_file(to, options.port, path)
        .map_err(|e| format!("bulk transfer did not start: {e}"))?;
    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map_err(|e| e.to_string())?,
    );
    // The transfer may take long; it fails when it makes no progress for --timeout.
    let stall = options.client.timeout;
    let mut last_done = 0;
    let mut last_change = Instant::now();
    let result = loop {
        if let Some(progress) = handle.progress() {
            bar.set_position(progress.bytes_done);
            if progress.bytes_done != last_done {
                last_done = progress.bytes_done;
                last_change = Instant::now();
            }
        }
        if let Some(result) = handle.try_wait() {
            break result;
        }
        if last_change.elapsed() > stall {
            break Err(StationError::Timeout(stall));
        }
        if signal::stopping() {
            break Err(StationError::Stopped);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    bar.finish_and_clear();
    match result {
        Ok(_) => {
            let elapsed = started.elapsed();
            if !options.quiet {
                out(&format!(
                    "sent {} ({len} bytes) to station {to} port {} in {elapsed:.2?} ({:.1} MB/s), durable at the receiver",
                    path.display(),
                    options.port,
                    len as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
                ));
            }
            Ok(())
        }
        Err(StationError::Timeout(t)) => Err(format!(
            "bulk transfer to station {to} stalled at {last_done} of {len} bytes for {t:?}"
        )),
        Err(e) => Err(format!("bulk transfer to station {to} failed: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// listen
// ---------------------------------------------------------------------------------------------

/// Options of `tamtam listen`.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Shared options.
    pub client: ClientOptions,
    /// Ports served.
    pub ports: Vec<u16>,
    /// Stream ports subscribed.
    pub subscribe: Vec<u16>,
    /// Groups joined.
    pub groups: Vec<u16>,
    /// JSON lines.
    pub json: bool,
    /// Exit after this many arrivals.
    pub count: Option<u64>,
}

/// Runs `tamtam listen`.
pub fn listen(options: &ListenOptions) -> Result<(), String> {
    if options.ports.is_empty() && options.subscribe.is_empty() && options.groups.is_empty() {
        return Err("nothing to listen to: give --port, --subscribe or --group".into());
    }
    signal::install()?;
    let printed = Printed::new();
    let client = Client::start(&options.client, |mut b, dir| {
        for &port in &options.ports {
            b = b.serve(port, printed.printer(false, dir.to_path_buf()));
        }
        for &port in &options.subscribe {
            b = b.subscribe(port, printed.printer(false, dir.to_path_buf()));
        }
        for &port in &options.groups {
            b = b.join_group(port, printed.printer(true, dir.to_path_buf()));
        }
        b
    })?;
    let mut what: Vec<String> = options.ports.iter().map(|p| format!("port {p}")).collect();
    what.extend(options.subscribe.iter().map(|p| format!("stream {p}")));
    what.extend(options.groups.iter().map(|p| format!("group {p}")));
    eprintln!(
        "listening as station {} on {} via {}",
        client.station().id(),
        what.join(", "),
        client.via
    );
    let mut seen = 0u64;
    while !signal::stopping() && options.count.is_none_or(|n| seen < n) {
        match printed.arrivals.recv_timeout(Duration::from_millis(50)) {
            Ok(arrival) => {
                seen += 1;
                if !out(&arrival.render(options.json)) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Relaxed: a statistic; see `Printer::push`.
    let dropped = printed.dropped.load(std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        eprintln!("tamtam: {dropped} arrivals not shown (output too slow)");
    }
    if !signal::stopping() {
        linger_for_acks(&client)?;
    }
    Ok(())
}

/// After `--count` arrivals, stays on the bus until the last ACKs went out. The ACK of a
/// message from a station this one has not learned a route to yet is dropped (`no_route`);
/// the sender resends, and the bus acknowledges the duplicate once the route is known. So
/// when an ACK had no route, this waits for a duplicate acknowledged after the last such
/// drop, bounded by `--timeout`.
fn linger_for_acks(client: &Client) -> Result<(), String> {
    let first = client.station().stats().map_err(text)?;
    if first.no_route == 0 {
        return Ok(());
    }
    let (mut no_route, mut duplicates) = (first.no_route, first.duplicates);
    let deadline = Instant::now() + client.timeout;
    while Instant::now() < deadline && !signal::stopping() {
        std::thread::sleep(POLL);
        let stats = client.station().stats().map_err(text)?;
        if stats.no_route > no_route {
            (no_route, duplicates) = (stats.no_route, stats.duplicates);
        } else if stats.duplicates > duplicates {
            return Ok(());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// trace
// ---------------------------------------------------------------------------------------------

/// Options of `tamtam trace`.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Shared options.
    pub client: ClientOptions,
    /// Destination station.
    pub to: u32,
    /// Destination port.
    pub port: u16,
    /// Payload of the traced message.
    pub payload: Vec<u8>,
}

fn events_text(events: &[TraceEvent]) -> String {
    events
        .iter()
        .map(|e| e.name().to_ascii_lowercase().replace('_', "-"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `tamtam trace`: sends one traced message and prints its route as reports arrive.
pub fn trace(options: &TraceOptions) -> Result<(), String> {
    let client = Client::start(&options.client, |b, _| b.collect_traces())?;
    client.wait_for(Some(options.to), options.port)?;
    let station = client.station();
    let me = station.id();
    let timeout = options.client.timeout;
    // A request to the destination's Reporter first: its reply comes back only once every
    // station on the way knows a route to this one, so they know where to send reports.
    station
        .request(
            Outgoing::to_station(options.to, registry::REPORTER, Vec::new()),
            timeout,
        )
        .map_err(|e| format!("station {} did not answer: {e}", options.to))?;
    let route_id = (ephemeral_id() & 0x00FF_FFFF) | 0x0100_0000;
    out(&format!(
        "trace route {route_id}: station {me} -> station {} port {}",
        options.to, options.port
    ));
    let started = Instant::now();
    let message = Outgoing::to_station(options.to, options.port, options.payload.clone())
        .traced()
        .route(route_id);
    std::thread::scope(|scope| {
        let sent = scope.spawn(|| station.send_and_wait(message, timeout));
        let mut printed = 0usize;
        let mut outcome_at: Option<Instant> = None;
        let (hops, complete) = loop {
            let hops = station
                .traces(TraceKeyQuery {
                    route_id: Some(route_id),
                })
                .map_err(text)?
                .into_iter()
                .find(|(key, _)| key.sender_id == me)
                .map(|(_, hops)| hops)
                .unwrap_or_default();
            // A hop is shown once it handed the packet on, or, for the destination, once it
            // acknowledged it: the route appears hop by hop as the reports come in.
            while printed < hops.len() {
                let hop = &hops[printed];
                let finished = hop.next_hop.is_some()
                    || (is_station(hop.node, options.to)
                        && hop
                            .events
                            .iter()
                            .any(|e| matches!(e, TraceEvent::AckSent | TraceEvent::Dropped)));
                if !finished {
                    break;
                }
                out(&hop_line(printed, hop));
                printed += 1;
            }
            let complete = printed > 0
                && hops
                    .get(printed - 1)
                    .is_some_and(|h| is_station(h.node, options.to));
            if sent.is_finished() && outcome_at.is_none() {
                outcome_at = Some(Instant::now());
            }
            // After the outcome, reports still on their way get a short, bounded grace.
            let grace_over = outcome_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
            if (complete && outcome_at.is_some()) || grace_over || started.elapsed() > timeout * 2 {
                break (hops, complete);
            }
            std::thread::sleep(POLL);
        };
        for (i, hop) in hops.iter().enumerate().skip(printed) {
            out(&hop_line(i, hop));
        }
        let outcome = sent
            .join()
            .map_err(|_| "the sending thread failed".to_owned())?;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Outcome::Delivered) if complete => {
                out(&format!(
                    "delivered and acknowledged: {} hop{} in {elapsed:.1?}",
                    printed.saturating_sub(1),
                    if printed == 2 { "" } else { "s" }
                ));
                Ok(())
            }
            Ok(Outcome::Delivered) => Err(format!(
                "delivered to station {}, but not every station on the way reported in time (the route above is partial)",
                options.to
            )),
            Ok(Outcome::DeadLettered(record)) => Err(dead_letter_line(&record)),
            Err(StationError::Timeout(t)) => Err(format!(
                "no ACK from station {} port {} within {t:?}",
                options.to, options.port
            )),
            Err(e) => Err(format!("traced send failed: {e}")),
        }
    })
}

fn hop_line(index: usize, hop: &tamtam_engine::core::trace::Hop) -> String {
    let next = match hop.next_hop {
        Some(next) => format!(" -> station {next}"),
        None => String::new(),
    };
    format!(
        "  {index:>2}  station {:<10} {}{next}",
        hop.node,
        events_text(&hop.events)
    )
}

// ---------------------------------------------------------------------------------------------
// stats
// ---------------------------------------------------------------------------------------------

/// Options of `tamtam stats`.
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// Shared options.
    pub client: ClientOptions,
    /// The station asked.
    pub to: u32,
    /// JSON output.
    pub json: bool,
}

/// Runs `tamtam stats`.
pub fn stats(options: &StatsOptions) -> Result<(), String> {
    let client = Client::start(&options.client, |b, _| b)?;
    client.wait_for(Some(options.to), registry::REPORTER)?;
    let payload = client
        .station()
        .request(
            Outgoing::to_station(options.to, registry::REPORTER, Vec::new()),
            options.client.timeout,
        )
        .map_err(|e| match e {
            StationError::Timeout(t) => {
                format!(
                    "station {}'s Reporter did not answer within {t:?}",
                    options.to
                )
            }
            e => format!("cannot ask station {}'s Reporter: {e}", options.to),
        })?;
    let report = Report::decode(&payload)
        .map_err(|e| format!("station {} sent a bad report: {e}", options.to))?;
    if options.json {
        let counters: serde_json::Map<String, serde_json::Value> = report
            .counters
            .iter()
            .map(|(name, value)| (name.clone(), (*value).into()))
            .collect();
        let transfers: Vec<serde_json::Value> = report
            .transfers
            .iter()
            .map(|t| {
                serde_json::json!({
                    "transfer": t[0], "bytes_done": t[1], "bytes_total": t[2],
                    "rate_bytes_per_sec": t[3], "eta_ms": t[4],
                })
            })
            .collect();
        out(&serde_json::json!({
            "station": options.to,
            "counters": counters,
            "transfers": transfers,
        })
        .to_string());
        return Ok(());
    }
    let width = report
        .counters
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    out(&format!(
        "station {} (Reporter, port {})",
        options.to,
        registry::REPORTER
    ));
    for (name, value) in &report.counters {
        out(&format!("  {name:<width$}  {value}"));
    }
    for t in &report.transfers {
        let percent = if t[2] == 0 {
            100.0
        } else {
            t[1] as f64 * 100.0 / t[2] as f64
        };
        out(&format!(
            "  transfer {:#x}: {} of {} bytes ({percent:.1}%), {:.1} MB/s, eta {} ms",
            t[0],
            t[1],
            t[2],
            t[3] as f64 / 1e6,
            t[4]
        ));
    }
    Ok(())
}
