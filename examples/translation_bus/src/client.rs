//! The client side: [`Asker`] sends a translation request to a language port and collects
//! the replies, yielding partial results as they arrive and failing over when the server
//! that took the request disappears.
//!
//! Why a client needs its own failover: the bus resends a request until a server's handler
//! has run it and moves requests not yet acknowledged to another server when their server
//! becomes unreachable (`reroute_services` in the core). But a translation server
//! acknowledges a request when it *queues* it, long before the HTTP call returns. If that
//! server dies in between, the bus considers the request delivered. So the server answers
//! `Accepted` at once, naming itself, and the client watches that station: when it is no
//! longer reachable before the result arrived, the client sends the request again, and the
//! bus picks another server. Translation is idempotent, so a second attempt is harmless.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tamtam_engine::core::registry::{self, PortClass};
use tamtam_engine::core::{Context, Message, Outgoing, SendError};
use tamtam_engine::driver::{Station, StationError};
use tamtam_tpf::TpfMessage;

use crate::protocol::{self, REPLY_PORT, ReplyKind, TranslateReply, TranslateRequest};

/// Replies buffered for one conversation at most; a client that falls further behind loses
/// the conversation with an error instead of growing without bound.
pub const REPLIES_BUFFERED_MAX: usize = 4096;

/// How often a waiting client checks that the server holding its request is still reachable.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

type Routes = Arc<Mutex<HashMap<u32, SyncSender<TranslateReply>>>>;

/// Why a translation failed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The language code is not in the language table.
    #[error("unknown language code {0:?} (see spec/registry/LanguagePorts-v1.md)")]
    UnknownLanguage(String),
    /// Nobody serves the language port, and no AI server serves the fallback port.
    #[error("no translation server for port {port} ({code}) and no AI server on the fallback port")]
    NoServer {
        /// The language port.
        port: u16,
        /// The language code.
        code: String,
    },
    /// The text is longer than a request may carry.
    #[error("text of {len} bytes is longer than the limit of {max}")]
    TooLong {
        /// The text's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The server reported a failure (for example its HTTP backend is down).
    #[error("station {server} failed: {message}")]
    Failed {
        /// The server.
        server: u32,
        /// What it said.
        message: String,
    },
    /// No result in time.
    #[error("no result within {0:?}")]
    Timeout(Duration),
    /// Every attempt lost its server.
    #[error("gave up after {0} attempts: every server that took the request disappeared")]
    Exhausted(u32),
    /// The replies arrived faster than they were consumed.
    #[error("more than {REPLIES_BUFFERED_MAX} replies buffered")]
    Overflow,
    /// The local station failed.
    #[error(transparent)]
    Station(#[from] StationError),
}

/// How to ask.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Source language code, or `auto`.
    pub source: String,
    /// `text` or `html`.
    pub format: String,
    /// Give up after this long in total.
    pub timeout: Duration,
    /// Send again when no server took the request within this long.
    pub accept_timeout: Duration,
    /// Attempts at most (one plus the failovers).
    pub attempts_max: u32,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            source: "auto".into(),
            format: "text".into(),
            timeout: Duration::from_secs(120),
            accept_timeout: Duration::from_secs(5),
            attempts_max: 4,
        }
    }
}

/// What happens while a request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskEvent<'a> {
    /// A server took the request on `port` (the language port, or an AI port on fallback).
    Accepted {
        /// The server.
        server: u32,
        /// The port it serves the request on.
        port: u16,
    },
    /// The next piece of the result (AI servers), in order.
    Partial(&'a str),
    /// The server holding the request disappeared (or none took it in time); the request
    /// was sent again. Partial results seen so far belong to the abandoned attempt.
    Restarted {
        /// The server that was lost, if one had taken the request.
        lost: Option<u32>,
    },
}

/// A finished translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The translated text.
    pub text: String,
    /// The station that produced it.
    pub server: u32,
    /// The port it was served on (an AI port means the fallback answered).
    pub port: u16,
    /// Partial replies received on the final attempt.
    pub partials: u32,
    /// Attempts made (1 without failover).
    pub attempts: u32,
}

/// A client station that asks for translations. Several threads may ask at once.
pub struct Asker {
    station: Station,
    routes: Routes,
    next_route: AtomicU32,
    restarts: AtomicU64,
}

/// Where an asking station connects.
#[derive(Debug, Clone, Default)]
pub struct AskerConfig {
    /// The station id (unique on the bus, not 0).
    pub station_id: u32,
    /// TCP addresses to listen on (other stations may connect to the client).
    pub listen: Vec<SocketAddr>,
    /// TCP addresses to connect to.
    pub connect: Vec<SocketAddr>,
    /// The spool directory (default: a per-station directory under the temp dir).
    pub spool_dir: Option<PathBuf>,
}

impl Asker {
    /// Starts the client station.
    pub fn start(config: AskerConfig) -> Result<Asker, StationError> {
        if config.station_id == 0 {
            return Err(StationError::Config("station id 0 is reserved"));
        }
        let routes: Routes = Arc::default();
        let inbox = routes.clone();
        let spool = config.spool_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("translation_bus-{}", config.station_id))
        });
        let mut builder = Station::builder()
            .id(config.station_id)
            .name(format!("translation-client-{}", config.station_id))
            .spool_dir(spool)
            .serve(
                REPLY_PORT,
                move |_: &mut Context<'_>, message: &Message<'_>| {
                    // Runs in the bus cycle: hand the reply over without blocking.
                    let Ok(reply) = TranslateReply::decode(message.payload) else {
                        return;
                    };
                    let mut routes = inbox.lock().expect("routes lock");
                    let route = message.route_id();
                    if let Some(tx) = routes.get(&route) {
                        if let Err(TrySendError::Full(_)) = tx.try_send(reply) {
                            // The asker is too far behind: end its conversation.
                            routes.remove(&route);
                        }
                    }
                },
            );
        for addr in config.listen {
            builder = builder.listen_tcp(addr);
        }
        for addr in config.connect {
            builder = builder.connect_tcp(addr);
        }
        let station = builder.build()?;
        // Conversation ids start at a value that differs between runs, so a late reply to a
        // previous run of the same station id is not taken for a new conversation's.
        let start = std::process::id().wrapping_mul(2_654_435_761) | 1;
        Ok(Asker {
            station,
            routes,
            next_route: AtomicU32::new(start),
            restarts: AtomicU64::new(0),
        })
    }

    /// The client's station.
    pub fn station(&self) -> &Station {
        &self.station
    }

    /// Requests sent again because their server disappeared (or none took them in time).
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Reachable stations serving `port`.
    pub fn servers_of(&self, port: u16) -> Result<Vec<u32>, StationError> {
        Ok(self
            .station
            .peers()?
            .into_iter()
            .filter(|(_, ports)| ports.contains(&port))
            .map(|(id, _)| id)
            .collect())
    }

    /// Waits until at least `count` reachable stations serve `port`.
    pub fn wait_for_servers(
        &self,
        port: u16,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<u32>, StationError> {
        let deadline = Instant::now() + timeout;
        loop {
            let servers = self.servers_of(port)?;
            if servers.len() >= count {
                return Ok(servers);
            }
            if Instant::now() >= deadline {
                return Err(StationError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Translates `text` to the language `target` (ISO 639-1), calling `on_event` as the
    /// request is taken and as partial results arrive.
    pub fn ask(
        &self,
        target: &str,
        text: &str,
        options: &AskOptions,
        mut on_event: impl FnMut(AskEvent<'_>),
    ) -> Result<Answer, AskError> {
        let port = registry::language_port(target)
            .ok_or_else(|| AskError::UnknownLanguage(target.to_string()))?;
        debug_assert_eq!(PortClass::of(port), PortClass::Language);
        if text.len() > protocol::TEXT_LEN_MAX {
            return Err(AskError::TooLong {
                len: text.len(),
                max: protocol::TEXT_LEN_MAX,
            });
        }
        let request = TranslateRequest {
            source: options.source.clone(),
            target: target.to_ascii_lowercase(),
            format: options.format.clone(),
            text: text.to_string(),
        };
        let payload = protocol::encode(&request).map_err(StationError::Encode)?;
        let deadline = Instant::now() + options.timeout;
        for attempt in 1..=options.attempts_max.max(1) {
            let route = self.next_route.fetch_add(2, Ordering::Relaxed);
            let (tx, rx) = mpsc::sync_channel(REPLIES_BUFFERED_MAX);
            self.routes.lock().expect("routes lock").insert(route, tx);
            let outcome = self.attempt(
                port,
                target,
                route,
                &payload,
                &rx,
                deadline,
                options,
                &mut on_event,
            );
            self.routes.lock().expect("routes lock").remove(&route);
            match outcome {
                Attempt::Finished(result) => {
                    return result.map(|mut answer| {
                        answer.attempts = attempt;
                        answer
                    });
                }
                Attempt::Lost(lost) => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    on_event(AskEvent::Restarted { lost });
                }
            }
        }
        Err(AskError::Exhausted(options.attempts_max.max(1)))
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        port: u16,
        target: &str,
        route: u32,
        payload: &[u8],
        replies: &mpsc::Receiver<TranslateReply>,
        deadline: Instant,
        options: &AskOptions,
        on_event: &mut impl FnMut(AskEvent<'_>),
    ) -> Attempt {
        let message = Outgoing::to_service(port, payload.to_vec())
            .from_port(REPLY_PORT)
            .route(route)
            .tpf();
        match self.station.send(message) {
            Ok(_) => {}
            Err(StationError::Send(SendError::NoServer { .. })) => {
                return Attempt::Finished(Err(AskError::NoServer {
                    port,
                    code: target.to_string(),
                }));
            }
            Err(error) => return Attempt::Finished(Err(error.into())),
        }
        let sent_at = Instant::now();
        let mut holder: Option<u32> = None;
        let mut pending: BTreeMap<u32, TranslateReply> = BTreeMap::new();
        let mut next_seq = 0u32;
        let mut partials = 0u32;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Attempt::Finished(Err(AskError::Timeout(options.timeout)));
            }
            match replies.recv_timeout(WATCH_INTERVAL.min(deadline - now)) {
                Ok(reply) if reply.kind == ReplyKind::Accepted => {
                    if holder.is_none() {
                        holder = Some(reply.server);
                        on_event(AskEvent::Accepted {
                            server: reply.server,
                            port: reply.port,
                        });
                    }
                }
                Ok(reply) => {
                    if reply.seq < next_seq {
                        continue; // A duplicate of something handed out already.
                    }
                    if pending.len() >= REPLIES_BUFFERED_MAX {
                        return Attempt::Finished(Err(AskError::Overflow));
                    }
                    pending.insert(reply.seq, reply);
                    // Hand out what is now in order.
                    while let Some(reply) = pending.remove(&next_seq) {
                        next_seq += 1;
                        match reply.kind {
                            ReplyKind::Partial => {
                                partials += 1;
                                on_event(AskEvent::Partial(&reply.text));
                            }
                            ReplyKind::Done => {
                                return Attempt::Finished(Ok(Answer {
                                    text: reply.text,
                                    server: reply.server,
                                    port: reply.port,
                                    partials,
                                    attempts: 0,
                                }));
                            }
                            ReplyKind::Error => {
                                return Attempt::Finished(Err(AskError::Failed {
                                    server: reply.server,
                                    message: reply.text,
                                }));
                            }
                            ReplyKind::Accepted => {}
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => match holder {
                    Some(server) => match self.station.peers() {
                        Ok(peers) if peers.iter().any(|(id, _)| *id == server) => {}
                        Ok(_) => return Attempt::Lost(Some(server)),
                        Err(error) => return Attempt::Finished(Err(error.into())),
                    },
                    None if sent_at.elapsed() >= options.accept_timeout => {
                        return Attempt::Lost(None);
                    }
                    None => {}
                },
                Err(RecvTimeoutError::Disconnected) => {
                    return Attempt::Finished(Err(AskError::Overflow));
                }
            }
        }
    }
}

enum Attempt {
    Finished(Result<Answer, AskError>),
    Lost(Option<u32>),
}
