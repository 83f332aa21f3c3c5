//! A translation server: a station serving language ports (LibreTranslate behind them) or AI
//! ports (Ollama behind them).
//!
//! The bus handler never blocks: it decodes the request, hands it to a bounded job queue and
//! answers `Accepted` (or `Error` when the queue is full) in the same cycle. Worker threads
//! take jobs, call the HTTP backend and send the replies with [`Station::send`], addressed to
//! the requesting station's reply port on the request's conversation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tamtam_engine::core::registry::{self, PortClass};
use tamtam_engine::core::{Context, Message, Outgoing, SendError};
use tamtam_engine::driver::{Station, StationError};

use crate::backend::{Flow, LibreTranslate, Ollama};
use crate::protocol::{self, ReplyKind, TranslateReply, TranslateRequest};

/// How long a worker keeps retrying a reply the outbox refuses (`OutboxFull`) before it
/// gives the reply up.
const REPLY_RETRY_FOR: Duration = Duration::from_secs(10);

/// What serves the requests.
#[derive(Debug, Clone)]
pub enum Backend {
    /// LibreTranslate: one call per request, the whole translation at once.
    LibreTranslate(LibreTranslate),
    /// Ollama: a streamed generation; every chunk is sent on as a `Partial` reply.
    Ollama(Ollama),
}

/// How to start a [`TranslationServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The station id (unique on the bus, not 0).
    pub station_id: u32,
    /// The ports to serve: language ports (101–1000) for LibreTranslate, AI ports
    /// (1001–1100) for Ollama.
    pub ports: Vec<u16>,
    /// The backend.
    pub backend: Backend,
    /// TCP addresses to listen on for other stations.
    pub listen: Vec<SocketAddr>,
    /// TCP addresses of stations to connect to.
    pub connect: Vec<SocketAddr>,
    /// Worker threads calling the backend (concurrent HTTP calls).
    pub workers: usize,
    /// Requests queued for the workers at most; more are answered with an error at once.
    pub queue: usize,
    /// The station's spool directory (default: a per-station directory under the temp dir).
    pub spool_dir: Option<PathBuf>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A port does not fit the backend.
    #[error("port {port} cannot be served by {backend}: {why}")]
    Port {
        /// The port.
        port: u16,
        /// The backend's name.
        backend: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// Nothing to serve.
    #[error("no port to serve")]
    NoPort,
    /// The station id is 0.
    #[error("station id 0 is reserved")]
    StationId,
    /// The station failed to start.
    #[error(transparent)]
    Station(#[from] StationError),
}

struct Job {
    client: u32,
    client_port: u16,
    route: u32,
    port: u16,
    request: TranslateRequest,
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Requests taken (answered `Accepted`).
    pub accepted: AtomicU64,
    /// Requests answered `Done`.
    pub done: AtomicU64,
    /// Requests answered `Error` (backend failures, bad requests, full queue).
    pub failed: AtomicU64,
    /// `Partial` replies sent.
    pub partials: AtomicU64,
}

/// A running translation server.
pub struct TranslationServer {
    station: Arc<Station>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    counters: Arc<ServerCounters>,
}

impl TranslationServer {
    /// Starts the station and its workers.
    pub fn start(config: ServerConfig) -> Result<TranslationServer, ServerError> {
        if config.station_id == 0 {
            return Err(ServerError::StationId);
        }
        if config.ports.is_empty() {
            return Err(ServerError::NoPort);
        }
        let (backend_name, class) = match config.backend {
            Backend::LibreTranslate(_) => ("libretranslate", PortClass::Language),
            Backend::Ollama(_) => ("ollama", PortClass::Ai),
        };
        for &port in &config.ports {
            if PortClass::of(port) != class {
                return Err(ServerError::Port {
                    port,
                    backend: backend_name,
                    why: if class == PortClass::Language {
                        "not a language port (101-1000)"
                    } else {
                        "not an AI port (1001-1100)"
                    },
                });
            }
            if class == PortClass::Language && registry::language_of_port(port).is_none() {
                return Err(ServerError::Port {
                    port,
                    backend: backend_name,
                    why: "no language is assigned to it in spec/registry/LanguagePorts-v1.md",
                });
            }
        }
        let workers_count = config.workers.max(1);
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(config.queue.max(1));
        let counters = Arc::new(ServerCounters::default());
        let mut builder = Station::builder()
            .id(config.station_id)
            .name(format!("translation-{}", config.station_id));
        if let Some(dir) = &config.spool_dir {
            builder = builder.spool_dir(dir);
        } else {
            builder = builder.spool_dir(
                std::env::temp_dir().join(format!("translation_bus-{}", config.station_id)),
            );
        }
        for &addr in &config.listen {
            builder = builder.listen_tcp(addr);
        }
        for &addr in &config.connect {
            builder = builder.connect_tcp(addr);
        }
        for &port in &config.ports {
            builder = builder.serve(port, handler(jobs_tx.clone(), counters.clone()));
        }
        drop(jobs_tx);
        let station = Arc::new(builder.build()?);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers_count)
            .map(|i| {
                let station = station.clone();
                let jobs = jobs_rx.clone();
                let backend = config.backend.clone();
                let stop = stop.clone();
                let counters = counters.clone();
                std::thread::Builder::new()
                    .name(format!("translate-worker-{i}"))
                    .spawn(move || worker(&station, &jobs, &backend, &stop, &counters))
                    .expect("spawn a worker thread")
            })
            .collect();
        Ok(TranslationServer {
            station,
            workers,
            stop,
            counters,
        })
    }

    /// The station (for its id, addresses and peers).
    pub fn station(&self) -> &Station {
        &self.station
    }

    /// The counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// Stops the workers (after their current job) and the station.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // The workers are gone, so this is the last reference: dropping it stops the station.
        debug_assert_eq!(Arc::strong_count(&self.station), 1);
    }
}

impl Drop for TranslationServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bus handler of every served port: decode, queue, answer `Accepted`. Never blocks.
fn handler(
    jobs: SyncSender<Job>,
    counters: Arc<ServerCounters>,
) -> impl FnMut(&mut Context<'_>, &Message<'_>) + Send + 'static {
    move |ctx: &mut Context<'_>, message: &Message<'_>| {
        if message.is_reply() {
            return; // Nothing here asks anything; a stray reply is ignored.
        }
        let reply = |ctx: &mut Context<'_>, kind: ReplyKind, text: String| {
            let reply = TranslateReply {
                kind,
                seq: 0,
                server: ctx.station_id(),
                port: message.port(),
                text,
            };
            if let Ok(payload) = protocol::encode(&reply) {
                let _ = ctx.reply(message, payload);
            }
        };
        let request = match message.decode::<TranslateRequest>() {
            Ok(request) => request,
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                reply(ctx, ReplyKind::Error, format!("bad request: {error}"));
                return;
            }
        };
        let job = Job {
            client: message.sender(),
            client_port: message.sender_port(),
            route: message.route_id(),
            port: message.port(),
            request,
        };
        match jobs.try_send(job) {
            Ok(()) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                reply(ctx, ReplyKind::Accepted, String::new());
            }
            Err(TrySendError::Full(_)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                reply(ctx, ReplyKind::Error, "server busy: job queue full".into());
            }
            Err(TrySendError::Disconnected(_)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                reply(ctx, ReplyKind::Error, "server shutting down".into());
            }
        }
    }
}

fn worker(
    station: &Station,
    jobs: &Mutex<Receiver<Job>>,
    backend: &Backend,
    stop: &AtomicBool,
    counters: &ServerCounters,
) {
    while !stop.load(Ordering::Relaxed) {
        // Wait with a timeout so a shutdown is noticed; the lock is held only while waiting.
        let job = match jobs
            .lock()
            .expect("job queue lock")
            .recv_timeout(Duration::from_millis(100))
        {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        serve_job(station, &job, backend, counters);
    }
}

fn serve_job(station: &Station, job: &Job, backend: &Backend, counters: &ServerCounters) {
    let request = &job.request;
    let mut seq = 0u32;
    let mut send = |kind: ReplyKind, text: &str| -> bool {
        let reply = TranslateReply {
            kind,
            seq,
            server: station.id(),
            port: job.port,
            text: text.to_string(),
        };
        seq += 1;
        send_reply(station, job, &reply)
    };
    let result = match backend {
        Backend::LibreTranslate(libre) => {
            // The port decides the language: a language server translates to its language.
            let target = registry::language_of_port(job.port).map_or(&*request.target, |l| l.code);
            let source = if request.source.is_empty() {
                "auto"
            } else {
                &request.source
            };
            let format = if request.format.is_empty() {
                "text"
            } else {
                &request.format
            };
            libre.translate(&request.text, source, target, format)
        }
        Backend::Ollama(ollama) => {
            let prompt = Ollama::prompt(&request.text, &request.source, &request.target);
            ollama.generate(&prompt, |chunk| {
                counters.partials.fetch_add(1, Ordering::Relaxed);
                if send(ReplyKind::Partial, chunk) {
                    Flow::Continue
                } else {
                    Flow::Stop
                }
            })
        }
    };
    match result {
        Ok(text) => {
            counters.done.fetch_add(1, Ordering::Relaxed);
            send(ReplyKind::Done, &text);
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "translation_bus: station {}: request from {} failed: {error}",
                station.id(),
                job.client
            );
            send(ReplyKind::Error, &error.to_string());
        }
    }
}

/// Sends one reply; retries while the outbox is full. Returns false when the reply cannot be
/// sent (the station stopped, or the outbox stayed full).
fn send_reply(station: &Station, job: &Job, reply: &TranslateReply) -> bool {
    let Ok(payload) = protocol::encode(reply) else {
        return false;
    };
    let mut message = Outgoing::to_station(job.client, job.client_port, payload)
        .from_port(job.port)
        .route(job.route)
        .tpf();
    message.reply = true;
    let deadline = Instant::now() + REPLY_RETRY_FOR;
    let mut backoff = Duration::from_millis(1);
    loop {
        match station.send(message.clone()) {
            Ok(_) => return true,
            Err(StationError::Send(SendError::OutboxFull { .. })) if Instant::now() < deadline => {
                // Back-pressure from the bus: wait a little and try again.
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            Err(error) => {
                eprintln!(
                    "translation_bus: station {}: cannot reply to station {}: {error}",
                    station.id(),
                    job.client
                );
                return false;
            }
        }
    }
}
