//! The embedding API: [`Station`], built with [`Station::builder`].
//!
//! A station runs its bus on a dedicated thread (a *shard*) with its own reactor (io_uring or
//! epoll). The thread runs the cycle loop: read the clock once, reap completions into the bus,
//! run the bus's cycle (deliver phase, commit phase), submit all I/O in one batch, and wait as
//! the Orchestrator's pace says. Application threads talk to it through a command queue and a
//! doorbell; handlers run on the shard thread, inside the deliver phase.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use crate::core::Duration;
use crate::core::bulk::{IoFailure, IoId, IoOutcome, IoRequest};
use crate::core::config::{shard_of, shard_station};
use crate::core::control::{AuditRecord, Reason};
use crate::core::orchestrator::Pace;
use crate::core::stats::Stats;
use crate::core::trace::{Hop, TraceKey};
use crate::core::wire::frame::PAYLOAD_LEN_MAX_PROTOCOL;
use crate::core::wire::stream::{PREFIX_LEN, StreamDecoder};
use crate::core::{Bus, BusConfig, Event, Instant, LinkId, Outgoing, Progress, Service, Tee};

use super::clock::Clock;
use super::link::{ExternalLink, ExternalListener, Readiness};
use super::outbox::Outbox;
use super::reactor::{self, Backend, DirectWrite, IoEvent, Reactor, Token, Waker};
use super::spool::Spool;

/// Why a station could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source} (is another process using it?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The I/O backend could not start.
    #[error("cannot start the {backend} I/O backend: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// [`StationBuilder::require_registered_buffers`]: the kernel refused to register the
    /// spool's aligned buffers with io_uring.
    #[error(
        "{0}: raise the locked-memory limit (`ulimit -l`, systemd `LimitMEMLOCK=`, or run with \
         CAP_IPC_LOCK), or build the station without require_registered_buffers"
    )]
    RegisteredBuffers(String),
    /// The spool or outbox directory is unusable.
    #[error("cannot use {path}: {source}")]
    Storage {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A port is served twice.
    #[error("{0}")]
    Serve(#[from] crate::core::ServeError),
    /// The bus refused a send.
    #[error("{0}")]
    Send(#[from] crate::core::SendError),
    /// The station has stopped.
    #[error("the station has stopped")]
    Stopped,
    /// [`Station::post`]: this many messages already wait for the bus; retry later.
    #[error("{0} posted messages are waiting for the bus; retry later")]
    Busy(usize),
    /// A TPF message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(#[from] tamtam_tpf::Error),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(StdDuration),
    /// The message was dead-lettered.
    #[error("dead-lettered: {0:?}")]
    DeadLettered(Reason),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// How a sent message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient's handler ran and acknowledged it.
    Delivered,
    /// Given up; the audit record says why.
    DeadLettered(AuditRecord),
}

/// Where the reply to a [`Station::request`] goes.
type ReplyWaiter = SyncSender<Result<Vec<u8>, StationError>>;

enum Command {
    Send(
        Outgoing,
        Option<SyncSender<Result<Outcome, StationError>>>,
        SyncSender<Result<u64, StationError>>,
    ),
    Request(
        Outgoing,
        SyncSender<Result<Vec<u8>, StationError>>,
        StdDuration,
    ),
    RequestsWaiting(SyncSender<usize>),
    Stream(u16, u32, Vec<u8>),
    Post(Outgoing),
    Bulk {
        destination: u32,
        port: u16,
        path: PathBuf,
        source: File,
        len: u64,
        crc: u32,
        progress: Arc<Mutex<Option<Progress>>>,
        done: SyncSender<Result<u64, StationError>>,
    },
    Stats(SyncSender<Stats>),
    Peers(SyncSender<Vec<(u32, Vec<u16>)>>),
    Route(TraceKeyQuery, SyncSender<Vec<(TraceKey, Vec<Hop>)>>),
    Connect(SocketAddr),
    Shutdown,
}

/// Which traced flows to rebuild.
#[derive(Debug, Clone, Copy)]
pub struct TraceKeyQuery {
    /// Only flows with this route id (None: all).
    pub route_id: Option<u32>,
}

/// Builds a [`Station`].
pub struct StationBuilder {
    config: BusConfig,
    backend: Backend,
    listen_tcp: Vec<SocketAddr>,
    connect_tcp: Vec<SocketAddr>,
    bind_udp: Option<SocketAddr>,
    udp_peers: Vec<SocketAddr>,
    spool_dir: Option<PathBuf>,
    outbox_path: Option<PathBuf>,
    services: Vec<(u16, Box<dyn Service>)>,
    system_services: Vec<(u16, Box<dyn Service>)>,
    subscriptions: Vec<u16>,
    groups: Vec<u16>,
    tees: Vec<(u16, Box<dyn Tee>)>,
    collect_traces: bool,
    name: String,
    external_links: Vec<Box<dyn ExternalLink>>,
    external_listeners: Vec<Box<dyn ExternalListener>>,
    cores: usize,
    busy_poll: bool,
    require_registered_buffers: bool,
}

impl StationBuilder {
    /// Runs the station on `cores` pinned threads (default 1). Ports are sharded between them
    /// by `shard_of(port, cores)`; shard 0 owns every network link. With more than one core
    /// the station id must be below 2^24 (shard k has id `id | k << 24`).
    pub fn cores(mut self, cores: usize) -> Self {
        self.cores = cores.clamp(1, 64);
        self
    }

    /// Adds a link of a non-socket transport (WebSocket, serial, shared memory, file, memory).
    pub fn link(mut self, link: Box<dyn ExternalLink>) -> Self {
        self.external_links.push(link);
        self
    }

    /// Adds a listener of a non-socket transport; every link it accepts joins the station.
    pub fn listener(mut self, listener: Box<dyn ExternalListener>) -> Self {
        self.external_listeners.push(listener);
        self
    }

    /// Sets the station id (default 1).
    pub fn id(mut self, id: u32) -> Self {
        let keep = self.config.clone();
        self.config = BusConfig::new(id);
        self.config.incarnation = keep.incarnation;
        self
    }

    /// Changes bus settings (budgets, timers, windows…).
    pub fn configure(mut self, f: impl FnOnce(&mut BusConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Chooses the I/O backend (default: io_uring if available, else epoll).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Listens for TCP links on `addr` (port 0 picks a free port; see [`Station::local_addrs`]).
    pub fn listen_tcp(mut self, addr: SocketAddr) -> Self {
        self.listen_tcp.push(addr);
        self
    }

    /// Connects a TCP link to `addr`, reconnecting with backoff whenever it drops.
    pub fn connect_tcp(mut self, addr: SocketAddr) -> Self {
        self.connect_tcp.push(addr);
        self
    }

    /// Binds a UDP socket on `addr`; datagrams from any peer open a link.
    pub fn bind_udp(mut self, addr: SocketAddr) -> Self {
        self.bind_udp = Some(addr);
        self
    }

    /// Opens a UDP link to `addr` (binds an ephemeral socket if `bind_udp` was not given).
    pub fn udp_peer(mut self, addr: SocketAddr) -> Self {
        self.udp_peers.push(addr);
        self
    }

    /// Where inbound bulk objects are spooled (default: a `tamtam-spool-<id>` directory in the
    /// system temp directory).
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Journals ACK-required messages in `path` before they are sent, so a sender killed
    /// with `kill -9` resends them after restart (the durable outbox).
    pub fn durable_outbox(mut self, path: impl Into<PathBuf>) -> Self {
        self.outbox_path = Some(path.into());
        self
    }

    /// Serves `port` with `service` (a closure `|ctx, message| …` or a [`Service`]).
    pub fn serve(mut self, port: u16, service: impl Service + 'static) -> Self {
        self.services.push((port, Box::new(service)));
        self
    }

    /// Replaces an engine service on a system port (0–10).
    pub fn serve_system(mut self, port: u16, service: impl Service + 'static) -> Self {
        self.system_services.push((port, Box::new(service)));
        self
    }

    /// Serves stream port `port` with `service` and subscribes to it.
    pub fn subscribe(mut self, port: u16, service: impl Service + 'static) -> Self {
        self.services.push((port, Box::new(service)));
        self.subscriptions.push(port);
        self
    }

    /// Joins group `port`, served by `service`.
    pub fn join_group(mut self, port: u16, service: impl Service + 'static) -> Self {
        self.services.push((port, Box::new(service)));
        self.groups.push(port);
        self
    }

    /// Adds a middleware tee (ports 1, 2, 11–100).
    pub fn tee(mut self, port: u16, tee: impl Tee + 'static) -> Self {
        self.tees.push((port, Box::new(tee)));
        self
    }

    /// Makes this station collect trace reports (it serves TRACE_REPORT).
    pub fn collect_traces(mut self) -> Self {
        self.collect_traces = true;
        self
    }

    /// Names the station's thread.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// With `true`, the shard never yields or parks between cycles, whatever the
    /// Orchestrator's pace says: it busy-polls its links, for the lowest latency at the price
    /// of a whole core. Default `false` (adaptive: spin while busy, then yield, then park).
    pub fn busy_poll(mut self, busy_poll: bool) -> Self {
        self.busy_poll = busy_poll;
        self
    }

    /// Fail [`StationBuilder::build`] unless every shard's spool buffers are registered with
    /// io_uring (fixed buffers: the kernel pins their pages once, not on every bulk segment
    /// written). Off by default: without registration, direct spool writes still work from
    /// ordinary aligned buffers. Registration needs `RLIMIT_MEMLOCK` of at least 1 MiB per
    /// core (or `CAP_IPC_LOCK`) and the io_uring backend.
    pub fn require_registered_buffers(mut self, required: bool) -> Self {
        self.require_registered_buffers = required;
        self
    }

    /// Starts the station. Errors say what is wrong and what to do.
    pub fn build(self) -> Result<Station, StationError> {
        let StationBuilder {
            mut config,
            backend,
            listen_tcp,
            connect_tcp,
            bind_udp,
            udp_peers,
            spool_dir,
            outbox_path,
            services,
            system_services,
            subscriptions,
            groups,
            tees,
            collect_traces,
            name,
            external_links,
            external_listeners,
            cores,
            busy_poll,
            require_registered_buffers,
        } = self;
        let spool_dir = spool_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tamtam-spool-{}", config.station_id))
        });
        Spool::new(&spool_dir).map_err(|source| StationError::Storage {
            path: spool_dir.clone(),
            source,
        })?;
        let storage_error = |path: &PathBuf| {
            let path = path.clone();
            move |source| StationError::Storage { path, source }
        };
        let (outbox, restored) = match &outbox_path {
            Some(path) => {
                let (mut outbox, state) = Outbox::open(path).map_err(storage_error(path))?;
                config.incarnation =
                    fresh_incarnation(&spool_dir).map_err(storage_error(&spool_dir))?;
                if state.incarnation == 0 {
                    outbox
                        .set_incarnation(config.incarnation)
                        .map_err(storage_error(path))?;
                }
                config.durable_outbox = true;
                // Every start has a new incarnation; restored messages keep their original
                // request ids (old epoch) and channel sequences, so receivers suppress the
                // duplicates of what they handled before the crash.
                (Some(outbox), Some(state))
            }
            None => {
                config.incarnation =
                    fresh_incarnation(&spool_dir).map_err(storage_error(&spool_dir))?;
                (None, None)
            }
        };
        // One bus per shard. Shard 0 has the station's id and every network link; shard k has
        // id `station | k << 24` and answers to the station's id as an alias. Ports are sharded
        // by the pure function `shard_of`.
        if config.seed == u64::from(config.station_id) {
            // Left at its default: seed the bus (resend jitter, its hash maps' keys) from the
            // OS, so that a peer cannot predict it and flood one hash bucket. A seed set
            // through `configure` is kept, for reproducible runs.
            config.seed ^= os_random();
        }
        let shard_count = cores.max(1) as u32;
        let payload_len_max = config.payload_len_max;
        let mut buses = Vec::with_capacity(shard_count as usize);
        for k in 0..shard_count {
            let mut c = config.clone();
            c.shards = shard_count;
            c.shard_index = k;
            if k > 0 {
                c.alias = config.station_id;
                c.station_id = shard_station(config.station_id, k);
                c.durable_outbox = false;
                c.seed ^= u64::from(k) << 40;
            }
            buses.push(Bus::new(c).map_err(StationError::Config)?);
        }
        let owner = |port: u16| shard_of(port, shard_count) as usize;
        for (port, service) in services {
            buses[owner(port)].serve(port, service)?;
        }
        for (port, service) in system_services {
            buses[0].serve_system(port, service)?;
        }
        for port in subscriptions {
            buses[owner(port)].subscribe(port);
        }
        for port in groups {
            buses[owner(port)].join_group(port);
        }
        for (port, tee) in tees {
            buses[0].add_tee(port, tee);
        }
        if collect_traces {
            buses[0].collect_traces();
        }
        let backend_label = match backend.from_env() {
            Backend::Poll => "epoll",
            _ => "io_uring",
        };
        let uring_config = super::uring::UringConfig {
            // Direct spool writes copy a whole segment into one aligned buffer.
            direct_buffer_len: config.segment_len as usize,
            ..Default::default()
        };
        let mut reactors = Vec::with_capacity(buses.len());
        for _ in 0..shard_count {
            let reactor = reactor::open_with(backend, uring_config).map_err(|source| {
                StationError::Backend {
                    backend: backend_label,
                    source,
                }
            })?;
            if require_registered_buffers && !reactor.direct_buffers().registered {
                let why = reactor.direct_buffers().error.unwrap_or_else(|| {
                    format!("the {} backend has no registered buffers", reactor.name())
                });
                return Err(StationError::RegisteredBuffers(why));
            }
            reactors.push(reactor);
        }
        let backend_name = reactors[0].name();
        let wakers: Vec<Waker> = reactors.iter().map(|r| r.waker()).collect();
        let mut shards: Vec<Shard> = Vec::with_capacity(buses.len());
        let mut outbox = outbox;
        for (k, bus) in buses.into_iter().enumerate() {
            let spool = Spool::new(&spool_dir).map_err(storage_error(&spool_dir))?;
            shards.push(Shard::new(
                bus,
                spool,
                if k == 0 { outbox.take() } else { None },
            ));
        }
        // One bounded SPSC ring per ordered pair of shards, carrying frame buffers (handles,
        // not copies), with the target's doorbell. Each shard sees one link per sibling: it
        // sends into the ring towards the sibling and receives from the ring back.
        let n = shards.len();
        let mut link_to = vec![vec![0 as LinkId; n]; n];
        for (i, row) in link_to.iter_mut().enumerate() {
            for (j, link) in row.iter_mut().enumerate() {
                if i != j {
                    let now = shards[i].clock.now();
                    *link = shards[i].bus.add_link(now);
                }
            }
        }
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let (producer, consumer) = rtrb::RingBuffer::<Vec<u8>>::new(SHARD_RING_CAPACITY);
                shards[i].links.insert(
                    link_to[i][j],
                    LinkIo::Shard {
                        ring: producer,
                        doorbell: wakers[j].clone(),
                    },
                );
                shards[j].shard_inputs.push((link_to[j][i], consumer));
            }
        }
        let mut first = shards.remove(0);
        if let Some(state) = restored {
            first.restore(state);
        }
        let mut local_addrs = Vec::new();
        let reactor0 = &mut reactors[0];
        for addr in listen_tcp {
            let (token, local) = reactor0
                .listen_tcp(addr)
                .map_err(|source| StationError::Bind { addr, source })?;
            first.listeners.push(token);
            local_addrs.push(local);
        }
        if bind_udp.is_some() || !udp_peers.is_empty() {
            let addr = bind_udp.unwrap_or_else(|| "0.0.0.0:0".parse().expect("valid"));
            let (token, local) = reactor0
                .bind_udp(addr)
                .map_err(|source| StationError::Bind { addr, source })?;
            first.udp = Some(token);
            if bind_udp.is_some() {
                local_addrs.push(local);
            }
            for peer in udp_peers {
                first.open_udp_link(peer);
            }
        }
        for addr in connect_tcp {
            first.reconnects.push((StdInstant::now(), addr, 0));
        }
        for link in external_links {
            first.add_external(link);
        }
        first.external_listeners = external_listeners;
        shards.insert(0, first);

        let station_id = config.station_id;
        // Pin shard threads to cores only when the station asks for several; a one-core
        // station is left to the scheduler (several processes may share the machine).
        let core_ids = if shard_count > 1 {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut handles = Vec::with_capacity(shards.len());
        for (k, (mut shard, reactor)) in shards.into_iter().zip(reactors).enumerate() {
            let (commands, inbox) = mpsc::sync_channel(COMMAND_QUEUE_CAPACITY);
            let waker = reactor.waker();
            shard.busy_poll = busy_poll;
            let parked = shard.parked.clone();
            let posted = shard.posted.clone();
            let core = (!core_ids.is_empty()).then(|| core_ids[k % core_ids.len()]);
            let thread_name = match (&name, k) {
                (n, 0) if !n.is_empty() => n.clone(),
                (n, k) if !n.is_empty() => format!("{n}-{k}"),
                (_, k) => format!("tamtam-{station_id}-{k}"),
            };
            let thread = std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    shard.run(reactor, inbox)
                })
                .map_err(|source| StationError::Backend {
                    backend: "thread",
                    source,
                })?;
            handles.push(ShardHandle {
                commands,
                waker,
                parked,
                posted,
                thread: Some(thread),
            });
        }
        Ok(Station {
            shards: handles,
            payload_len_max,
            local_addrs,
            station_id,
            backend: backend_name,
            spool_dir,
        })
    }
}

/// Frames a shard-to-shard ring holds; a full ring drops (counted) and reliability resends.
const SHARD_RING_CAPACITY: usize = 8192;

struct ShardHandle {
    commands: SyncSender<Command>,
    waker: Waker,
    /// Set by the shard while it may block in the reactor: only then does a command need
    /// the doorbell (an eventfd write, and a read on the shard's side).
    parked: Arc<AtomicBool>,
    /// Messages posted to this shard and not yet taken by its bus (see [`Station::post`]).
    posted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// An incarnation for a start without restored state. It must grow on every start, so it is
/// the larger of (the last one recorded in `dir/incarnation`) + 1 and the seconds since 2020,
/// and it is recorded before the station starts.
fn fresh_incarnation(dir: &Path) -> io::Result<u32> {
    let path = dir.join("incarnation");
    let last = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let clock = since_epoch.saturating_sub(1_577_836_800) as u32;
    let next = last.saturating_add(1).max(clock).max(1);
    let temp = dir.join("incarnation.tmp");
    std::fs::write(&temp, next.to_string())?;
    File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, &path)?;
    Ok(next)
}

/// A running station.
pub struct Station {
    shards: Vec<ShardHandle>,
    payload_len_max: u32,
    local_addrs: Vec<SocketAddr>,
    station_id: u32,
    backend: &'static str,
    spool_dir: PathBuf,
}

/// A bulk transfer in progress.
pub struct BulkHandle {
    progress: Arc<Mutex<Option<Progress>>>,
    done: Receiver<Result<u64, StationError>>,
}

impl BulkHandle {
    /// The latest progress (percent, rate, ETA), once the transfer started.
    pub fn progress(&self) -> Option<Progress> {
        *self.progress.lock().expect("progress lock")
    }

    /// Waits until the receiver holds the object durably.
    pub fn wait(&self, timeout: StdDuration) -> Result<u64, StationError> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StationError::Timeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StationError::Stopped),
        }
    }

    /// Whether it finished (successfully or not) without blocking.
    pub fn try_wait(&self) -> Option<Result<u64, StationError>> {
        self.done.try_recv().ok()
    }
}

impl Station {
    /// A builder with defaults: station id 1, no links, io_uring if available.
    pub fn builder() -> StationBuilder {
        StationBuilder {
            config: BusConfig::new(1),
            backend: Backend::Auto,
            listen_tcp: Vec::new(),
            connect_tcp: Vec::new(),
            bind_udp: None,
            udp_peers: Vec::new(),
            spool_dir: None,
            outbox_path: None,
            services: Vec::new(),
            system_services: Vec::new(),
            subscriptions: Vec::new(),
            groups: Vec::new(),
            tees: Vec::new(),
            collect_traces: false,
            name: String::new(),
            external_links: Vec::new(),
            external_listeners: Vec::new(),
            cores: 1,
            busy_poll: false,
            require_registered_buffers: false,
        }
    }

    /// This station's id.
    pub fn id(&self) -> u32 {
        self.station_id
    }

    /// The I/O backend in use ("io_uring" or "epoll").
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The addresses the station listens on (TCP listeners, then the UDP socket).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The spool directory (where inbound bulk objects land).
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    fn command(&self, command: Command) -> Result<(), StationError> {
        self.command_to(0, command)
    }

    fn command_to(&self, shard: usize, command: Command) -> Result<(), StationError> {
        let handle = &self.shards[shard];
        // Blocks while the shard's command queue is full: the caller waits for the shard.
        handle
            .commands
            .send(command)
            .map_err(|_| StationError::Stopped)?;
        self.wake_if_parked(shard);
        Ok(())
    }

    /// Like `command_to` shard 0, but answers [`StationError::Busy`] instead of waiting when
    /// the command queue is full (for the calls that must never block the caller).
    fn try_command(&self, command: Command) -> Result<(), StationError> {
        match self.shards[0].commands.try_send(command) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                return Err(StationError::Busy(COMMAND_QUEUE_CAPACITY));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StationError::Stopped),
        }
        self.wake_if_parked(0);
        Ok(())
    }

    fn wake_if_parked(&self, shard: usize) {
        let handle = &self.shards[shard];
        // Pairs with the fence in `Shard::run` before it parks: either the shard sees this
        // command when it checks the queue after raising `parked`, or we see `parked` here.
        fence(Ordering::SeqCst);
        if handle.parked.load(Ordering::Relaxed) {
            handle.waker.wake();
        }
    }

    /// Shards (cores) the station runs on.
    pub fn cores(&self) -> usize {
        self.shards.len()
    }

    /// Queues a message for the bus and returns at once, without waiting for the shard
    /// thread (which [`Station::send`] does, to return the request id): the fast way to send
    /// many messages from an application thread.
    ///
    /// Bounded: at most [`POSTED_MAX`] posted messages wait per station, beyond which this
    /// returns [`StationError::Busy`] (back-pressure; retry later). A message the bus cannot
    /// take yet because its outbox is full waits, in order, until acknowledgements make room,
    /// so an ACK-required post is never dropped for lack of room. One the bus refuses for
    /// another reason (no server of the port, too many destinations) is counted in the
    /// `emit_drops` statistic, as a handler's refused emit is; payloads over the size limit
    /// are refused here.
    pub fn post(&self, message: Outgoing) -> Result<(), StationError> {
        if message.payload.len() > self.payload_len_max as usize {
            return Err(StationError::Send(crate::core::SendError::TooLarge {
                len: message.payload.len(),
                max: self.payload_len_max,
            }));
        }
        let handle = &self.shards[0];
        let waiting = handle.posted.fetch_add(1, Ordering::Relaxed);
        if waiting >= POSTED_MAX {
            handle.posted.fetch_sub(1, Ordering::Relaxed);
            return Err(StationError::Busy(waiting));
        }
        self.try_command(Command::Post(message)).inspect_err(|_| {
            handle.posted.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Sends a message; returns its request id at once.
    pub fn send(&self, message: Outgoing) -> Result<u64, StationError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Send(message, None, tx))?;
        rx.recv().map_err(|_| StationError::Stopped)?
    }

    /// Sends an ACK-required message and waits until it is acknowledged or dead-lettered.
    pub fn send_and_wait(
        &self,
        message: Outgoing,
        timeout: StdDuration,
    ) -> Result<Outcome, StationError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let (id_tx, id_rx) = mpsc::sync_channel(1);
        self.command(Command::Send(message, Some(tx), id_tx))?;
        id_rx.recv().map_err(|_| StationError::Stopped)??;
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StationError::Timeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StationError::Stopped),
        }
    }

    /// Sends `value` as a TPF message (`#[derive(Tpf)]`) to `port` on `to`, with ACK; the
    /// receiving handler reads it with [`crate::core::Message::decode`].
    pub fn send_message<T: tamtam_tpf::TpfMessage>(
        &self,
        to: crate::core::Recipient,
        port: u16,
        value: &T,
    ) -> Result<u64, StationError> {
        self.send(Outgoing::message(to, port, value)?)
    }

    /// Sends a request and waits for its reply's payload.
    pub fn request(
        &self,
        message: Outgoing,
        timeout: StdDuration,
    ) -> Result<Vec<u8>, StationError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Request(message, tx, timeout))?;
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StationError::Timeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StationError::Stopped),
        }
    }

    /// Sends one frame of stream `stream` on `port` to every listener (no ACK, no resend).
    /// Never blocks: when the shard's command queue is full this answers
    /// [`StationError::Busy`]; drop the frame or retry. The queue fills when the application
    /// produces frames faster than the shard takes them, and the shard stops taking them while
    /// the stream copies already queued fill the next cycle's transmit budget, so a publisher
    /// that retries on `Busy` is paced by what the station transmits. A link slower than that
    /// (a slow subscriber) loses frames, counted in `link_queue_drops`, without slowing the
    /// others; a subscriber's own queue is bounded by `stream_queue_bytes` (oldest dropped,
    /// `stream_overrun`).
    pub fn stream(
        &self,
        port: u16,
        stream: u32,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), StationError> {
        self.try_command(Command::Stream(port, stream, payload.into()))
    }

    /// Sends the file at `path` to `port` on station `destination` over the bulk lane.
    pub fn send_file(
        &self,
        destination: u32,
        port: u16,
        path: impl AsRef<Path>,
    ) -> Result<BulkHandle, StationError> {
        let progress = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::sync_channel(1);
        let path = path.as_ref().to_path_buf();
        // The offer carries the object's CRC32C. Reading the whole file for it happens here,
        // on the caller's thread, so the shard never stalls on it.
        let opened = File::open(&path).and_then(|file| {
            let len = file.metadata()?.len();
            let crc = crc_of_file(&file, len)?;
            Ok((file, len, crc))
        });
        match opened {
            Ok((source, len, crc)) => self.command(Command::Bulk {
                destination,
                port,
                path,
                source,
                len,
                crc,
                progress: progress.clone(),
                done: tx,
            })?,
            Err(source) => {
                let _ = tx.try_send(Err(StationError::File { path, source }));
            }
        }
        Ok(BulkHandle { progress, done: rx })
    }

    /// Sends everything `reader` yields, under the name `name`, to `port` on station
    /// `destination` over the bulk lane: for sources that are not files (a pipe, a socket, a
    /// generated or compressed stream).
    ///
    /// Disk-first, like [`Station::send_file`]: the bytes are first copied on the caller's
    /// thread, in 1 MiB steps (bounded memory), into an unnamed file in the station's spool
    /// directory, which the kernel deletes when the transfer ends; the transfer then reads
    /// its segments from that file, so a resend after a loss or a reconnect never needs the
    /// reader again. A read error ends the call with [`StationError::File`] (named `name`)
    /// before anything is offered; a full spool disk likewise.
    pub fn send_reader(
        &self,
        destination: u32,
        port: u16,
        name: &str,
        mut reader: impl io::Read,
    ) -> Result<BulkHandle, StationError> {
        let named = PathBuf::from(name);
        let failed = |source| StationError::File {
            path: named.clone(),
            source,
        };
        let mut file = unnamed_file(&self.spool_dir).map_err(|source| StationError::Storage {
            path: self.spool_dir.clone(),
            source,
        })?;
        let mut buffer = vec![0u8; 1 << 20];
        let (mut len, mut crc) = (0u64, 0u32);
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failed(e)),
            };
            io::Write::write_all(&mut file, &buffer[..n]).map_err(|source| {
                StationError::Storage {
                    path: self.spool_dir.clone(),
                    source,
                }
            })?;
            crc = crc32c::crc32c_append(crc, &buffer[..n]);
            len += n as u64;
        }
        let progress = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Bulk {
            destination,
            port,
            path: named,
            source: file,
            len,
            crc,
            progress: progress.clone(),
            done: tx,
        })?;
        Ok(BulkHandle { progress, done: rx })
    }

    /// The bus counters, summed over every shard.
    pub fn stats(&self) -> Result<Stats, StationError> {
        let mut total = Stats::default();
        for shard in 0..self.shards.len() {
            let (tx, rx) = mpsc::sync_channel(1);
            self.command_to(shard, Command::Stats(tx))?;
            let stats = rx
                .recv_timeout(StdDuration::from_secs(10))
                .map_err(|_| StationError::Stopped)?;
            total.add(&stats);
        }
        Ok(total)
    }

    /// Requests (from [`Station::request`]) still waiting for their reply, over every shard.
    /// A request whose caller gave up is forgotten within about a second of its timeout, so
    /// this stays bounded by the requests made in the last timeout span.
    pub fn requests_waiting(&self) -> Result<usize, StationError> {
        let mut total = 0;
        for shard in 0..self.shards.len() {
            let (tx, rx) = mpsc::sync_channel(1);
            self.command_to(shard, Command::RequestsWaiting(tx))?;
            total += rx
                .recv_timeout(StdDuration::from_secs(10))
                .map_err(|_| StationError::Stopped)?;
        }
        Ok(total)
    }

    /// Known reachable stations and the ports they serve.
    pub fn peers(&self) -> Result<Vec<(u32, Vec<u16>)>, StationError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Peers(tx))?;
        rx.recv_timeout(StdDuration::from_secs(10))
            .map_err(|_| StationError::Stopped)
    }

    /// Waits until a station serving `port` is known (or this one serves it).
    pub fn wait_for_port(&self, port: u16, timeout: StdDuration) -> Result<(), StationError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            if self.peers()?.iter().any(|(_, ports)| ports.contains(&port)) {
                return Ok(());
            }
            if StdInstant::now() >= deadline {
                return Err(StationError::Timeout(timeout));
            }
            std::thread::sleep(StdDuration::from_millis(5));
        }
    }

    /// Routes of traced packets this station collected (it must `collect_traces`).
    pub fn traces(&self, query: TraceKeyQuery) -> Result<Vec<(TraceKey, Vec<Hop>)>, StationError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Route(query, tx))?;
        rx.recv_timeout(StdDuration::from_secs(10))
            .map_err(|_| StationError::Stopped)
    }

    /// Adds an outbound TCP link at run time.
    pub fn connect_tcp(&self, addr: SocketAddr) -> Result<(), StationError> {
        self.command(Command::Connect(addr))
    }

    /// Stops the station: the shard thread exits, closing every socket and file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for shard in 0..self.shards.len() {
            let _ = self.command_to(shard, Command::Shutdown);
        }
        for handle in &mut self.shards {
            if let Some(thread) = handle.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        self.stop();
    }
}

// --------------------------------------------------------------------------------------------
// The shard: one bus, one reactor, one thread.
// --------------------------------------------------------------------------------------------

enum LinkIo {
    Tcp {
        token: Token,
        decoder: StreamDecoder,
        addr: Option<SocketAddr>,
        /// Length-prefixed frames of this cycle not yet handed to the reactor: packed into
        /// writes of up to [`TCP_BATCH_BYTES`] (see [`Shard::transmit`]).
        batch: Vec<u8>,
    },
    Udp {
        peer: SocketAddr,
    },
    External(Box<dyn ExternalLink>),
    /// A sibling shard of the same station, through an SPSC ring.
    Shard {
        ring: rtrb::Producer<Vec<u8>>,
        doorbell: Waker,
    },
}

enum FileWait {
    Write {
        io: IoId,
        key: String,
        segment: u32,
        crc: u32,
        offset: u64,
        /// Bytes to write.
        len: usize,
        /// A direct write's segment, kept to write it again through the page cache if the
        /// file system refuses `O_DIRECT` (`EINVAL`).
        retained: Option<Vec<u8>>,
        /// Write through the page cache even where direct writes are on.
        buffered_only: bool,
    },
    Read {
        io: IoId,
    },
    Sync {
        io: IoId,
        key: String,
        crc: u32,
    },
}

struct BulkWaiter {
    progress: Arc<Mutex<Option<Progress>>>,
    done: SyncSender<Result<u64, StationError>>,
    source: File,
}

/// Restored durable-outbox state.
pub use super::outbox::OutboxState;

/// Whether a link's or listener's readiness descriptor is watched by the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// Not looked at yet (links added before the shard runs, or this cycle).
    Unknown,
    /// It has none, or the reactor refused it: polled.
    No,
    /// Watched under this reactor token.
    Yes(Token),
}

/// An external link's bookkeeping in its shard.
struct ExternalEntry {
    id: LinkId,
    watched: Watched,
    /// What the link's `dropped()` said last (its growth goes to the bus's statistics).
    dropped: u64,
}

struct Shard {
    bus: Bus,
    spool: Spool,
    outbox: Option<Outbox>,
    clock: Clock,
    links: HashMap<LinkId, LinkIo>,
    by_token: HashMap<Token, LinkId>,
    udp: Option<Token>,
    udp_links: HashMap<SocketAddr, LinkId>,
    listeners: Vec<Token>,
    connecting: HashMap<Token, (SocketAddr, u32)>,
    reconnects: Vec<(StdInstant, SocketAddr, u32)>,
    files: HashMap<u64, FileWait>,
    /// Spool writes not started yet: waiting for an aligned buffer, or to be written again
    /// through the page cache after the file system refused a direct write.
    spool_writes: VecDeque<(FileWait, Vec<u8>)>,
    file_tag: u64,
    sources: HashMap<u64, BulkWaiter>,
    send_waiters: HashMap<u64, SyncSender<Result<Outcome, StationError>>>,
    /// With the durable outbox, `send` returns only once the message is journaled.
    journal_waiters: HashMap<u64, SyncSender<Result<u64, StationError>>>,
    /// Requests waiting for their reply, with the instant their caller stops waiting.
    request_waiters: HashMap<u32, (Instant, ReplyWaiter)>,
    /// When `request_waiters` is next swept of requests whose caller gave up.
    waiters_swept_at: Instant,
    ready_io: VecDeque<(IoId, IoOutcome)>,
    /// Buffers back from the reactor and from finished file writes, sorted by
    /// [`Shard::keep_spares`] at the end of each cycle.
    recycled: Vec<Vec<u8>>,
    /// Buffers kept for framing and file reads: at most [`SPARE_BUFFERS_MAX`] holding at most
    /// [`SPARE_BYTES_MAX`] together.
    spare: Vec<Vec<u8>>,
    /// Capacity of the buffers in `spare`.
    spare_bytes: usize,
    external_listeners: Vec<Box<dyn ExternalListener>>,
    /// Rings from sibling shards, with the link each arrives on.
    shard_inputs: Vec<(LinkId, rtrb::Consumer<Vec<u8>>)>,
    /// The links of `links` that are [`LinkIo::External`], so the per-cycle work for them
    /// does not walk every link.
    external: Vec<ExternalEntry>,
    /// The reactor watches of `external_listeners`' readiness descriptors, by index.
    listener_watches: Vec<Watched>,
    /// Sockets the reactor must close after the events of this poll.
    to_close: Vec<Token>,
    /// TCP links with a partly filled write batch during [`Shard::transmit`].
    batched: Vec<LinkId>,
    /// Raised while the shard may block in the reactor (see [`Station::command`]).
    parked: Arc<AtomicBool>,
    /// Posted messages counted until the bus takes them (shared with [`ShardHandle`]).
    posted: Arc<AtomicUsize>,
    /// Posted messages waiting for room in the bus's outbox, in order.
    posted_backlog: VecDeque<Outgoing>,
    /// Never yield or park (see [`StationBuilder::busy_poll`]).
    busy_poll: bool,
    stop: bool,
}

const FRAME_LEN_MAX: u32 = PAYLOAD_LEN_MAX_PROTOCOL + 64;
/// Spare buffers a shard keeps for framing and file reads.
const SPARE_BUFFERS_MAX: usize = 1024;
/// Total capacity of the spare buffers a shard keeps.
const SPARE_BYTES_MAX: usize = 8 << 20;
/// Buffers up to this capacity that do not fit the spares go back to the bus's frame pool;
/// larger ones are freed. (The bus keeps up to 4,096 buffers whatever their size, so handing
/// it every 64 KiB bulk buffer let a receiver's memory grow with the object: 256 MiB for a
/// 1 GiB file.)
const BUS_POOL_BUFFER_MAX: usize = 4096;
const COMMANDS_PER_CYCLE: usize = 4096;

/// Commands (sends, stream frames, queries) a shard's queue holds. `Station::stream` and
/// `Station::post` answer [`StationError::Busy`] when it is full; the other calls wait.
pub const COMMAND_QUEUE_CAPACITY: usize = 8192;

/// Frames for a TCP link are packed, length-prefixed, into write buffers of up to this many
/// bytes (one buffer per frame capped a `sendmsg` of 64 iovecs at 64 small frames).
const TCP_BATCH_BYTES: usize = 64 << 10;

/// Bytes a TCP link may have queued in the reactor, not yet taken by the kernel, before the
/// shard drops frames for it (`link_queue_drops`): a slow reader costs bounded memory.
pub const TCP_QUEUED_BYTES_MAX: usize = 8 << 20;

/// Posted messages (see [`Station::post`]) that may wait per station before `post` answers
/// [`StationError::Busy`].
pub const POSTED_MAX: usize = 65_536;
/// How often a parked shard polls external links and listeners that cannot wake it.
const EXTERNAL_POLL_EVERY: StdDuration = StdDuration::from_millis(1);

/// Watches a readiness descriptor, if there is one; a refusal is logged and the source is
/// polled instead.
fn watch_fd(
    reactor: &mut dyn Reactor,
    fd: Option<RawFd>,
    describe: impl Fn() -> String,
) -> Watched {
    let Some(fd) = fd else {
        return Watched::No;
    };
    match reactor.watch(fd) {
        Ok(token) => Watched::Yes(token),
        Err(e) => {
            eprintln!(
                "tamtam: cannot watch {} for readiness ({e}); polling it",
                describe()
            );
            Watched::No
        }
    }
}

impl Shard {
    fn new(bus: Bus, spool: Spool, outbox: Option<Outbox>) -> Shard {
        Shard {
            bus,
            spool,
            outbox,
            clock: Clock::new(),
            links: HashMap::new(),
            by_token: HashMap::new(),
            udp: None,
            udp_links: HashMap::new(),
            listeners: Vec::new(),
            connecting: HashMap::new(),
            reconnects: Vec::new(),
            files: HashMap::new(),
            spool_writes: VecDeque::new(),
            file_tag: 0,
            sources: HashMap::new(),
            send_waiters: HashMap::new(),
            journal_waiters: HashMap::new(),
            request_waiters: HashMap::new(),
            waiters_swept_at: Instant::ZERO,
            ready_io: VecDeque::new(),
            recycled: Vec::new(),
            spare: Vec::new(),
            spare_bytes: 0,
            external_listeners: Vec::new(),
            shard_inputs: Vec::new(),
            external: Vec::new(),
            listener_watches: Vec::new(),
            to_close: Vec::new(),
            batched: Vec::new(),
            parked: Arc::new(AtomicBool::new(false)),
            posted: Arc::new(AtomicUsize::new(0)),
            posted_backlog: VecDeque::new(),
            busy_poll: false,
            stop: false,
        }
    }

    /// Sorts the buffers recycled this cycle: spares first (bounded), then small ones to the
    /// bus's pool; what is left is freed, so memory stays bounded whatever the traffic.
    fn keep_spares(&mut self) {
        let mut recycled = std::mem::take(&mut self.recycled);
        for buffer in recycled.drain(..) {
            let capacity = buffer.capacity();
            if self.spare.len() < SPARE_BUFFERS_MAX
                && self.spare_bytes + capacity <= SPARE_BYTES_MAX
            {
                self.spare_bytes += capacity;
                self.spare.push(buffer);
            } else if capacity <= BUS_POOL_BUFFER_MAX {
                self.bus.recycle(buffer);
            }
        }
        self.recycled = recycled;
    }

    /// A spare buffer (empty, any capacity), or a new one.
    fn take_spare(&mut self) -> Vec<u8> {
        match self.spare.pop() {
            Some(buffer) => {
                self.spare_bytes -= buffer.capacity();
                buffer
            }
            None => Vec::new(),
        }
    }

    fn add_external(&mut self, link: Box<dyn ExternalLink>) {
        let id = self.bus.add_link(self.clock.now());
        self.links.insert(id, LinkIo::External(link));
        self.external.push(ExternalEntry {
            id,
            watched: Watched::Unknown,
            dropped: 0,
        });
    }

    /// Removes an external link: its readiness watch ends before its descriptor closes, and
    /// its last drops are counted.
    fn remove_external(&mut self, id: LinkId, reactor: &mut dyn Reactor) {
        if let Some(at) = self.external.iter().position(|e| e.id == id) {
            let entry = self.external.swap_remove(at);
            if let Watched::Yes(token) = entry.watched {
                reactor.unwatch(token);
            }
            if let Some(LinkIo::External(link)) = self.links.get(&id) {
                let grown = link.dropped().saturating_sub(entry.dropped);
                if grown > 0 {
                    self.bus.handle_link_drops(grown);
                }
            }
        }
        self.links.remove(&id);
        self.bus.remove_link(id);
    }

    /// Accepts from external listeners and drains external links into the bus; watches the
    /// readiness descriptors of links and listeners new since the last call.
    fn poll_external(&mut self, reactor: &mut dyn Reactor) {
        if self.external_listeners.is_empty() && self.external.is_empty() {
            return;
        }
        let mut accepted = Vec::new();
        self.listener_watches
            .resize(self.external_listeners.len(), Watched::Unknown);
        for (listener, watched) in self
            .external_listeners
            .iter_mut()
            .zip(&mut self.listener_watches)
        {
            if *watched == Watched::Unknown {
                *watched = watch_fd(reactor, listener.readiness_fd(), || listener.describe());
            }
            for _ in 0..16 {
                match listener.accept() {
                    Ok(Some(link)) => accepted.push(link),
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("tamtam: listener {} failed: {e}", listener.describe());
                        break;
                    }
                }
            }
        }
        for link in accepted {
            self.add_external(link);
        }
        let now = self.clock.now();
        let mut i = 0;
        while i < self.external.len() {
            let id = self.external[i].id;
            let Some(LinkIo::External(link)) = self.links.get_mut(&id) else {
                i += 1;
                continue;
            };
            let entry = &mut self.external[i];
            if entry.watched == Watched::Unknown {
                entry.watched = watch_fd(reactor, link.readiness_fd(), || link.describe());
            }
            let bus = &mut self.bus;
            let result = link.poll_recv(1024, &mut |frame| bus.handle_frame(now, id, frame));
            let dropped = link.dropped();
            if dropped > entry.dropped {
                bus.handle_link_drops(dropped - entry.dropped);
                entry.dropped = dropped;
            }
            if let Err(e) = result {
                eprintln!("tamtam: link {} closed: {e}", link.describe());
                self.remove_external(id, reactor);
                continue;
            }
            i += 1;
        }
    }

    /// Asks every external link and listener whether the shard may block: the most urgent
    /// answer wins (any `Ready`: do not block; any `Poll`: block at most a millisecond).
    fn external_before_park(&mut self) -> Readiness {
        let mut answer = Readiness::Armed;
        for listener in &mut self.external_listeners {
            match listener.before_park() {
                Readiness::Ready => return Readiness::Ready,
                Readiness::Poll => answer = Readiness::Poll,
                Readiness::Armed => {}
            }
        }
        for (listener, watched) in self.external_listeners.iter().zip(&self.listener_watches) {
            // A listener whose descriptor is not watched cannot wake the shard.
            if !matches!(watched, Watched::Yes(_)) && listener.readiness_fd().is_some() {
                answer = Readiness::Poll;
            }
        }
        for entry in &self.external {
            let Some(LinkIo::External(link)) = self.links.get_mut(&entry.id) else {
                continue;
            };
            match link.before_park() {
                Readiness::Ready => return Readiness::Ready,
                Readiness::Poll => answer = Readiness::Poll,
                Readiness::Armed if !matches!(entry.watched, Watched::Yes(_)) => {
                    answer = Readiness::Poll;
                }
                Readiness::Armed => {}
            }
        }
        answer
    }

    /// Drains the rings from sibling shards into the bus (bounded per cycle).
    fn poll_shards(&mut self) {
        let now = self.clock.now();
        for (link, ring) in &mut self.shard_inputs {
            for _ in 0..SHARD_RING_CAPACITY {
                let Ok(frame) = ring.pop() else {
                    break;
                };
                self.bus.handle_frame(now, *link, &frame);
                self.bus.recycle(frame);
            }
        }
    }

    fn restore(&mut self, state: OutboxState) {
        let now = self.clock.now();
        self.bus
            .restore_outbox(now, state.next_request, &state.next_seqs, state.entries);
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn frame_len_max(&self) -> u32 {
        (self.bus.config().payload_len_max + 64).min(FRAME_LEN_MAX)
    }

    fn open_udp_link(&mut self, peer: SocketAddr) -> LinkId {
        if let Some(&link) = self.udp_links.get(&peer) {
            return link;
        }
        let link = self.bus.add_link(self.clock.now());
        // One frame per datagram: the bus keeps frames to what the path takes unfragmented,
        // and cuts bulk segments to fit.
        self.bus
            .set_link_frame_len_max(link, super::net::udp_payload_max(peer));
        self.links.insert(link, LinkIo::Udp { peer });
        self.udp_links.insert(peer, link);
        link
    }

    fn run(mut self, mut reactor: Box<dyn Reactor>, inbox: Receiver<Command>) {
        let mut timeout = Some(StdDuration::ZERO);
        while !self.stop {
            if self.take_commands(&inbox) > 0 {
                // What the commands queued is transmitted by this iteration's cycle, after
                // the poll: the pace chosen before they arrived must not park the shard first
                // (that held a request until the next timer, up to 100 ms).
                timeout = Some(StdDuration::ZERO);
            }
            if self.stop {
                break;
            }
            self.start_reconnects(reactor.as_mut());
            self.poll_external(reactor.as_mut());
            self.poll_shards();
            if timeout.is_some_and(|t| !t.is_zero()) {
                match self.external_before_park() {
                    Readiness::Ready => timeout = Some(StdDuration::ZERO),
                    // Not every link can wake the shard: poll them often.
                    Readiness::Poll => timeout = timeout.map(|t| t.min(EXTERNAL_POLL_EVERY)),
                    Readiness::Armed => {}
                }
            }
            let blocking = timeout.is_some_and(|t| !t.is_zero());
            if blocking {
                // See `Station::command`: announce the park, then look at the queue once more.
                self.parked.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if self.take_commands(&inbox) > 0 || self.stop {
                    timeout = Some(StdDuration::ZERO);
                }
            }
            // Events are handled as the reactor reports them, straight from its buffers.
            let mut to_close = std::mem::take(&mut self.to_close);
            // The clock is read once per poll, at its first event.
            let mut arrived: Option<Instant> = None;
            let result = reactor.poll(timeout, &mut |event| {
                let now = *arrived.get_or_insert_with(|| self.clock.now());
                self.handle_event(event, now, &mut to_close);
            });
            if blocking {
                self.parked.store(false, Ordering::Relaxed);
            }
            for token in to_close.drain(..) {
                reactor.close(token);
            }
            self.to_close = to_close;
            if let Err(e) = result {
                eprintln!(
                    "tamtam station {}: reactor failed: {e}",
                    self.bus.station_id()
                );
                break;
            }
            if !self.ready_io.is_empty() {
                let now = self.now();
                while let Some((io, outcome)) = self.ready_io.pop_front() {
                    self.bus.handle_io(now, io, outcome);
                }
            }
            let now = self.now();
            let report = self.bus.cycle(now);
            self.journal();
            self.transmit(reactor.as_mut());
            self.run_io(reactor.as_mut());
            self.drain_events();
            reactor.reclaim(&mut self.recycled);
            self.keep_spares();
            timeout = match report.pace {
                _ if !self.ready_io.is_empty() || self.busy_poll => Some(StdDuration::ZERO),
                Pace::Spin => Some(StdDuration::ZERO),
                Pace::Yield => {
                    std::thread::yield_now();
                    Some(StdDuration::ZERO)
                }
                Pace::Park(until) => {
                    let now = self.now();
                    let mut wait = until.saturating_since(now);
                    if !self.reconnects.is_empty() {
                        wait = wait.min(crate::core::Duration::from_millis(50));
                    }
                    Some(StdDuration::from_nanos(
                        wait.as_nanos()
                            .min(StdDuration::from_millis(100).as_nanos() as u64),
                    ))
                }
            };
        }
        for (_, waiter) in self.sources.drain() {
            let _ = waiter.done.try_send(Err(StationError::Stopped));
        }
        self.spool.close_all();
    }

    /// Handles up to [`COMMANDS_PER_CYCLE`] queued commands; returns how many.
    /// Hands posted messages to the bus, in order, while its outbox has room.
    fn take_posted(&mut self, now: Instant) {
        while let Some(message) = self.posted_backlog.front() {
            if message.ack && self.bus.outbox_room() == 0 {
                return; // Acknowledgements will make room; this runs again each iteration.
            }
            let message = self.posted_backlog.pop_front().expect("front exists");
            self.posted.fetch_sub(1, Ordering::Relaxed);
            if self.bus.send(now, message).is_err() {
                self.bus.count_refused_emit();
            }
        }
    }

    fn take_commands(&mut self, inbox: &Receiver<Command>) -> usize {
        if !self.posted_backlog.is_empty() {
            let now = self.clock.now();
            self.take_posted(now);
        }
        let mut now = None;
        for taken in 0..COMMANDS_PER_CYCLE {
            if self.bus.stream_out_full() {
                // Stream frames already fill the next cycle's transmit budget: leave the rest
                // queued (a publisher then gets `Busy` and is paced by the links) rather than
                // take frames that would wait, expire or push out older ones.
                return taken;
            }
            match inbox.try_recv() {
                Ok(command) => {
                    let now = *now.get_or_insert_with(|| self.clock.now());
                    self.handle_command(command, now);
                }
                Err(mpsc::TryRecvError::Empty) => return taken,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.stop = true;
                    return taken;
                }
            }
        }
        COMMANDS_PER_CYCLE
    }

    /// Forgets requests whose caller stopped waiting (its timeout passed): their reply, if it
    /// ever comes, has nobody to go to. At most once a second; each sweep is O(waiting).
    fn sweep_request_waiters(&mut self, now: Instant) {
        if now.saturating_since(self.waiters_swept_at) < Duration::from_secs(1) {
            return;
        }
        self.waiters_swept_at = now;
        self.request_waiters
            .retain(|_, (deadline, _)| *deadline > now);
    }

    fn handle_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Send(message, waiter, id) => {
                let ack = message.ack;
                let result = self.bus.send(now, message);
                match result {
                    Ok(request_id) => {
                        if let (Some(waiter), true) = (waiter, ack) {
                            self.send_waiters.insert(request_id, waiter);
                        }
                        if ack && self.outbox.is_some() {
                            self.journal_waiters.insert(request_id, id);
                        } else {
                            let _ = id.try_send(Ok(request_id));
                        }
                    }
                    Err(e) => {
                        let _ = id.try_send(Err(e.into()));
                    }
                }
            }
            Command::Request(mut message, reply, timeout) => {
                self.sweep_request_waiters(now);
                let deadline =
                    now + Duration::from_nanos(timeout.as_nanos().min(u64::MAX.into()) as u64);
                let route = message.route_id.unwrap_or_else(|| {
                    // Unique among this station's outstanding requests.
                    let mut route = (now.as_nanos() as u32) | 1;
                    while self.request_waiters.contains_key(&route) {
                        route = route.wrapping_add(2);
                    }
                    route
                });
                message.route_id = Some(route);
                match self.bus.send(now, message) {
                    Ok(_) => {
                        self.request_waiters.insert(route, (deadline, reply));
                    }
                    Err(e) => {
                        let _ = reply.try_send(Err(e.into()));
                    }
                }
            }
            Command::Post(message) => {
                self.posted_backlog.push_back(message);
                self.take_posted(now);
            }
            Command::Stream(port, stream, payload) => {
                self.bus.stream_send_owned(now, port, stream, payload);
            }
            Command::Bulk {
                destination,
                port,
                path,
                source,
                len,
                crc,
                progress,
                done,
            } => match self.start_bulk(now, destination, port, &path, source, len, crc) {
                Ok((transfer, source)) => {
                    self.sources.insert(
                        transfer,
                        BulkWaiter {
                            progress,
                            done,
                            source,
                        },
                    );
                }
                Err(e) => {
                    let _ = done.try_send(Err(e));
                }
            },
            Command::Stats(reply) => {
                let _ = reply.try_send(self.bus.stats().clone());
            }
            Command::RequestsWaiting(reply) => {
                self.sweep_request_waiters(now);
                let _ = reply.try_send(self.request_waiters.len());
            }
            Command::Peers(reply) => {
                let mut peers: Vec<(u32, Vec<u16>)> = self
                    .bus
                    .topology()
                    .reachable()
                    .into_iter()
                    .map(|(id, _)| {
                        let ports = self
                            .bus
                            .topology()
                            .station(id)
                            .map(|s| s.advert.ports.clone())
                            .unwrap_or_default();
                        (id, ports)
                    })
                    .collect();
                peers.sort();
                let _ = reply.try_send(peers);
            }
            Command::Route(query, reply) => {
                let routes = match self.bus.trace_collector() {
                    Some(collector) => collector
                        .keys()
                        .filter(|k| query.route_id.is_none_or(|r| r == k.route_id))
                        .map(|k| (*k, collector.route(k)))
                        .collect(),
                    None => Vec::new(),
                };
                let _ = reply.try_send(routes);
            }
            Command::Connect(addr) => self.reconnects.push((StdInstant::now(), addr, 0)),
            Command::Shutdown => self.stop = true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_bulk(
        &mut self,
        now: Instant,
        destination: u32,
        port: u16,
        path: &Path,
        file: File,
        len: u64,
        crc: u32,
    ) -> Result<(u64, File), StationError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "object".into());
        let transfer = self
            .bus
            .send_bulk(now, destination, port, &name, len, crc)?;
        Ok((transfer, file))
    }

    fn start_reconnects(&mut self, reactor: &mut dyn Reactor) {
        if self.reconnects.is_empty() {
            return;
        }
        let now = StdInstant::now();
        let mut i = 0;
        while i < self.reconnects.len() {
            let (at, addr, attempt) = self.reconnects[i];
            if at > now {
                i += 1;
                continue;
            }
            self.reconnects.swap_remove(i);
            match reactor.connect_tcp(addr) {
                Ok(token) => {
                    self.connecting.insert(token, (addr, attempt));
                }
                Err(_) => self.schedule_reconnect(addr, attempt + 1),
            }
        }
    }

    fn schedule_reconnect(&mut self, addr: SocketAddr, attempt: u32) {
        // Exponential backoff from 50 ms to 2 s.
        let delay =
            StdDuration::from_millis(50u64 << attempt.min(5)).min(StdDuration::from_secs(2));
        self.reconnects
            .push((StdInstant::now() + delay, addr, attempt));
    }

    fn add_tcp_link(&mut self, token: Token, addr: Option<SocketAddr>) {
        let link = self.bus.add_link(self.clock.now());
        let decoder = StreamDecoder::new(self.frame_len_max());
        self.links.insert(
            link,
            LinkIo::Tcp {
                token,
                decoder,
                addr,
                batch: Vec::new(),
            },
        );
        self.by_token.insert(token, link);
    }

    /// Handles one reactor event; sockets to close are pushed on `to_close` (the reactor is
    /// busy reporting events).
    fn handle_event(&mut self, event: IoEvent<'_>, now: Instant, to_close: &mut Vec<Token>) {
        match event {
            IoEvent::Accepted { stream, .. } => self.add_tcp_link(stream, None),
            IoEvent::Connected { stream } => {
                if let Some((addr, _)) = self.connecting.remove(&stream) {
                    self.add_tcp_link(stream, Some(addr));
                }
            }
            IoEvent::Data { stream, bytes } => {
                let Some(&link) = self.by_token.get(&stream) else {
                    return;
                };
                let mut rest: &[u8] = bytes;
                let mut failed = false;
                while !rest.is_empty() && !failed {
                    let Some(LinkIo::Tcp { decoder, .. }) = self.links.get_mut(&link) else {
                        return;
                    };
                    let n = decoder.feed(rest);
                    rest = &rest[n..];
                    loop {
                        let Some(LinkIo::Tcp { decoder, .. }) = self.links.get_mut(&link) else {
                            return;
                        };
                        match decoder.next_frame() {
                            Ok(Some(frame)) => self.bus.handle_frame(now, link, frame),
                            Ok(None) => break,
                            Err(error) => {
                                // The stream lost sync: close the link (counted, peer named).
                                eprintln!(
                                    "tamtam station {}: closing link to {:?}: {error}",
                                    self.bus.station_id(),
                                    self.bus.link_peer(link)
                                );
                                failed = true;
                                self.bus.handle_link_framing_error();
                                break;
                            }
                        }
                    }
                }
                if failed {
                    to_close.push(stream);
                    self.drop_link(link);
                }
            }
            IoEvent::Datagram { from, bytes, .. } => {
                let link = self.open_udp_link(from);
                self.bus.handle_frame(now, link, bytes);
            }
            IoEvent::Closed { stream, .. } => {
                if let Some((addr, attempt)) = self.connecting.remove(&stream) {
                    self.schedule_reconnect(addr, attempt + 1);
                    return;
                }
                if let Some(link) = self.by_token.get(&stream).copied() {
                    self.drop_link(link);
                }
            }
            IoEvent::File {
                tag,
                result,
                buffer,
            } => self.file_done(tag, result, buffer),
        }
    }

    fn drop_link(&mut self, link: LinkId) {
        self.bus.remove_link(link);
        if let Some(LinkIo::Tcp { token, addr, .. }) = self.links.remove(&link) {
            self.by_token.remove(&token);
            if let Some(addr) = addr {
                self.schedule_reconnect(addr, 0);
            }
        }
    }

    fn transmit(&mut self, reactor: &mut dyn Reactor) {
        let mut batched = std::mem::take(&mut self.batched);
        while let Some(t) = self.bus.poll_transmit() {
            match self.links.get_mut(&t.link) {
                Some(LinkIo::Tcp { token, batch, .. }) => {
                    let token = *token;
                    let framed_len = PREFIX_LEN + t.frame.len();
                    if reactor.queued_bytes(token) + batch.len() + framed_len > TCP_QUEUED_BYTES_MAX
                    {
                        // The peer reads slower than we send: drop rather than queue without
                        // bound (a stream frame is lost, as a late one may be; the reliable
                        // lanes resend), and count it as a full link queue.
                        self.bus.count_link_queue_drop();
                        self.bus.recycle(t.frame);
                        continue;
                    }
                    if !batch.is_empty() && batch.len() + framed_len > TCP_BATCH_BYTES {
                        let _ = reactor.send_stream(token, std::mem::take(batch));
                    }
                    if batch.is_empty() {
                        batched.push(t.link);
                    }
                    let mut buffer = std::mem::take(batch);
                    if buffer.capacity() == 0 {
                        buffer = self.take_spare();
                        buffer.clear();
                        buffer.reserve(framed_len);
                    }
                    buffer.extend_from_slice(&(t.frame.len() as u32).to_le_bytes());
                    buffer.extend_from_slice(&t.frame);
                    if let Some(LinkIo::Tcp { batch, .. }) = self.links.get_mut(&t.link) {
                        *batch = buffer;
                    }
                    self.bus.recycle(t.frame);
                }
                Some(LinkIo::Udp { peer }) => {
                    if let Some(udp) = self.udp {
                        let _ = reactor.send_datagram(udp, *peer, t.frame);
                    }
                }
                Some(LinkIo::Shard { .. }) => {
                    if let Some(LinkIo::Shard { ring, doorbell }) = self.links.get_mut(&t.link) {
                        // A full ring drops the frame (counted as a link-queue drop by the
                        // bus's accounting of resends); the doorbell wakes a parked sibling.
                        if ring.push(t.frame).is_ok() {
                            doorbell.wake();
                        }
                    }
                }
                Some(LinkIo::External(_)) => {
                    let failed = match self.links.get_mut(&t.link) {
                        Some(LinkIo::External(link)) => link.send(&t.frame).is_err(),
                        _ => false,
                    };
                    if failed {
                        self.remove_external(t.link, reactor);
                    }
                    self.bus.recycle(t.frame);
                }
                None => self.bus.recycle(t.frame),
            }
        }
        // One write per link for what this cycle sent it (or per TCP_BATCH_BYTES).
        for link in batched.drain(..) {
            if let Some(LinkIo::Tcp { token, batch, .. }) = self.links.get_mut(&link) {
                if !batch.is_empty() {
                    let _ = reactor.send_stream(*token, std::mem::take(batch));
                }
            }
        }
        self.batched = batched;
        let mut i = 0;
        while i < self.external.len() {
            let id = self.external[i].id;
            if let Some(LinkIo::External(link)) = self.links.get_mut(&id) {
                if let Err(e) = link.flush() {
                    eprintln!("tamtam: link {} closed: {e}", link.describe());
                    self.remove_external(id, reactor);
                    continue;
                }
            }
            i += 1;
        }
    }

    fn next_tag(&mut self, wait: FileWait) -> u64 {
        self.file_tag += 1;
        self.files.insert(self.file_tag, wait);
        self.file_tag
    }

    /// Starts the queued spool writes, in order: direct when the spool has an `O_DIRECT`
    /// descriptor and the segment is aligned, else through the page cache. Stops at the first
    /// direct write that finds every aligned buffer in flight (it waits for a completion, so
    /// aligned segments never fall back to the page cache merely for being many).
    fn start_spool_writes(&mut self, reactor: &mut dyn Reactor) {
        while let Some((mut wait, data)) = self.spool_writes.pop_front() {
            let FileWait::Write {
                io,
                key,
                offset,
                retained,
                buffered_only,
                ..
            } = &mut wait
            else {
                continue;
            };
            let Some((fd, direct_fd)) = self
                .spool
                .file(key)
                .map(|f| (f.data.as_raw_fd(), f.direct_fd()))
            else {
                self.ready_io
                    .push_back((*io, IoOutcome::Failed(IoFailure::Io)));
                continue;
            };
            let tag = self.file_tag + 1;
            if let Some(direct_fd) = direct_fd.filter(|_| !*buffered_only) {
                match reactor.file_write_direct(direct_fd, *offset, &data, tag) {
                    DirectWrite::Submitted => {
                        self.file_tag = tag;
                        self.bus.count_spool_write(true);
                        *retained = Some(data);
                        self.files.insert(tag, wait);
                        continue;
                    }
                    DirectWrite::Busy => {
                        self.spool_writes.push_front((wait, data));
                        return;
                    }
                    DirectWrite::Unsuitable => {}
                }
            }
            self.file_tag = tag;
            self.bus.count_spool_write(false);
            reactor.file_write(fd, *offset, data, tag);
            self.files.insert(tag, wait);
        }
    }

    fn run_io(&mut self, reactor: &mut dyn Reactor) {
        while let Some(request) = self.bus.poll_io() {
            match request {
                IoRequest::SpoolOpen {
                    id,
                    key,
                    len,
                    segment_len,
                    segment_count,
                } => {
                    let outcome = match self.spool.open(&key, len, segment_len, segment_count) {
                        Ok(stored) => IoOutcome::Opened { stored },
                        Err(failure) => IoOutcome::Failed(failure),
                    };
                    self.ready_io.push_back((id, outcome));
                }
                IoRequest::SpoolWrite {
                    id,
                    key,
                    segment,
                    offset,
                    data,
                } => {
                    let crc = crc32c::crc32c(&data);
                    self.spool_writes.push_back((
                        FileWait::Write {
                            io: id,
                            key,
                            segment,
                            crc,
                            offset,
                            len: data.len(),
                            retained: None,
                            buffered_only: false,
                        },
                        data,
                    ));
                }
                IoRequest::SpoolFinish { id, key, crc32c } => {
                    let Some(fd) = self.spool.file(&key).map(|f| f.data.as_raw_fd()) else {
                        self.ready_io
                            .push_back((id, IoOutcome::Failed(IoFailure::Io)));
                        continue;
                    };
                    let tag = self.next_tag(FileWait::Sync {
                        io: id,
                        key,
                        crc: crc32c,
                    });
                    reactor.file_sync(fd, tag);
                }
                IoRequest::SourceRead {
                    id,
                    transfer,
                    offset,
                    len,
                } => {
                    let Some(fd) = self.sources.get(&transfer).map(|s| s.source.as_raw_fd()) else {
                        self.ready_io
                            .push_back((id, IoOutcome::Failed(IoFailure::SourceUnavailable)));
                        continue;
                    };
                    let tag = self.next_tag(FileWait::Read { io: id });
                    let mut buffer = self.take_spare();
                    buffer.clear();
                    buffer.resize(len as usize, 0);
                    reactor.file_read(fd, offset, buffer, tag);
                }
            }
        }
        self.start_spool_writes(reactor);
    }

    fn file_done(&mut self, tag: u64, result: io::Result<usize>, buffer: Vec<u8>) {
        let Some(mut wait) = self.files.remove(&tag) else {
            return;
        };
        if let FileWait::Write {
            key,
            retained,
            buffered_only,
            ..
        } = &mut wait
            && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EINVAL))
            && let Some(data) = retained.take()
        {
            // The file system takes O_DIRECT opens but not these writes: buffered from now on
            // for this object, this segment included.
            self.spool.disable_direct(key);
            *buffered_only = true;
            self.spool_writes.push_front((wait, data));
            return;
        }
        match wait {
            FileWait::Write {
                io,
                key,
                segment,
                crc,
                len,
                retained,
                ..
            } => {
                // A direct write's segment was kept aside; a buffered write's comes back with
                // its completion.
                let segment_buffer = retained.unwrap_or(buffer);
                let outcome = match result {
                    Ok(n) if n == len => match self.spool.segment_written(&key, segment, crc) {
                        Ok(()) => IoOutcome::Written,
                        Err(failure) => IoOutcome::Failed(failure),
                    },
                    Ok(_) => IoOutcome::Failed(IoFailure::Io),
                    Err(e) => IoOutcome::Failed(super::spool::map_io(e)),
                };
                self.recycled.push(segment_buffer);
                self.ready_io.push_back((io, outcome));
            }
            FileWait::Read { io } => {
                let outcome = match result {
                    Ok(n) if n == buffer.len() => IoOutcome::Read(buffer),
                    _ => IoOutcome::Failed(IoFailure::SourceUnavailable),
                };
                self.ready_io.push_back((io, outcome));
            }
            FileWait::Sync { io, key, crc } => {
                let outcome = match result {
                    Ok(_) => match self.spool.finish(&key, crc) {
                        Ok(_) => IoOutcome::Finished,
                        Err(failure) => IoOutcome::Failed(failure),
                    },
                    Err(e) => IoOutcome::Failed(super::spool::map_io(e)),
                };
                self.ready_io.push_back((io, outcome));
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.bus.poll_event() {
            match event {
                Event::Delivered {
                    request_id,
                    destination,
                    ..
                } => {
                    if let Some(outbox) = self.outbox.as_mut() {
                        outbox.resolved(request_id, destination);
                    }
                    if let Some(waiter) = self.send_waiters.remove(&request_id) {
                        let _ = waiter.try_send(Ok(Outcome::Delivered));
                    }
                }
                Event::DeadLettered { record, .. } => {
                    if let Some(outbox) = self.outbox.as_mut() {
                        outbox.resolved(record.request_id, record.destination);
                    }
                    if let Some(waiter) = self.send_waiters.remove(&record.request_id) {
                        let _ = waiter.try_send(Ok(Outcome::DeadLettered(record)));
                    }
                }
                Event::Reply {
                    route_id, payload, ..
                } => {
                    if let Some((_, waiter)) = self.request_waiters.remove(&route_id) {
                        let _ = waiter.try_send(Ok(payload));
                    }
                }
                Event::BulkProgress(progress) => {
                    if let Some(waiter) = self.sources.get(&progress.transfer) {
                        *waiter.progress.lock().expect("progress lock") = Some(progress);
                    }
                }
                Event::BulkSent { transfer } => {
                    if let Some(waiter) = self.sources.remove(&transfer) {
                        let _ = waiter.done.try_send(Ok(transfer));
                    }
                }
                Event::BulkFailed { transfer, reason } => {
                    if let Some(waiter) = self.sources.remove(&transfer) {
                        let _ = waiter
                            .done
                            .try_send(Err(StationError::DeadLettered(reason)));
                    }
                }
                Event::Malformed { link, peer, error } => {
                    eprintln!(
                        "tamtam station {}: dropped malformed frame on link {link} (peer {peer:?}): {error}",
                        self.bus.station_id()
                    );
                }
                Event::Rerouted {
                    request_id, from, ..
                } => {
                    if let Some(outbox) = self.outbox.as_mut() {
                        outbox.resolved(request_id, from);
                    }
                }
                Event::PeerUp { .. } | Event::PeerDown { .. } => {}
            }
        }
    }

    /// Journals what the bus admitted this cycle, before anything of it is transmitted.
    fn journal(&mut self) {
        let Some(outbox) = self.outbox.as_mut() else {
            return;
        };
        for entry in self.bus.take_journal() {
            let ok = outbox.journal(&entry);
            self.bus.journaled(entry.destination, entry.seq, ok);
            if let Some(waiter) = self.journal_waiters.remove(&entry.request_id) {
                let _ = waiter.try_send(if ok {
                    Ok(entry.request_id)
                } else {
                    Err(StationError::DeadLettered(Reason::StorageFailed))
                });
            }
        }
    }
}

/// CRC32C of a whole file, read in 1 MiB pieces.
/// 64 random bits from the OS (`getrandom`); falls back to the clock and the process id if
/// the call fails, which only weakens the hash seeding.
fn os_random() -> u64 {
    let mut value = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into the valid u64 it is given.
    let n = unsafe { libc::getrandom((&mut value as *mut u64).cast(), 8, 0) };
    if n == 8 {
        return value;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now.rotate_left(17) ^ u64::from(std::process::id())
}

/// A new file in `dir` with no name: deleted by the kernel when its last descriptor closes,
/// also after a crash (`O_TMPFILE`; where the file system lacks it, a file created and
/// unlinked at once).
fn unnamed_file(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(file) => Ok(file),
        Err(_) => {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".outgoing-{}-{n}", std::process::id()));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
    }
}

fn crc_of_file(file: &File, len: u64) -> io::Result<u32> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    let mut offset = 0u64;
    while offset < len {
        let n = super::poll::pread_all(file.as_raw_fd(), &mut buffer, offset)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        offset += n as u64;
    }
    Ok(crc)
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Shard>();
    let _ = BTreeMap::<u8, u8>::new();
}
