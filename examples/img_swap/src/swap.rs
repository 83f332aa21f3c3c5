//! The swap: find the peer, learn what it sends, send ours over the bulk lane while receiving
//! theirs, show both directions' progress, check the SHA-256 of what arrived, and tell the
//! peer what we found.
//!
//! What makes a `kill -9` of either side harmless:
//!
//! - The engine's spool keeps every inbound object as `<key>.part` plus an append-only
//!   `<key>.log` of stored segments; the key depends only on the sender's id and the object
//!   (name, size, CRC32C), so the same image offered again after a restart of either side
//!   resumes into the same spool and only the missing segments travel.
//! - A sender whose transfer stalled too long (the peer was down) gets a failed
//!   [`BulkHandle`]; we offer the image again once the peer is back.
//! - A restarted station asks for the peer's manifest again. If our image had already
//!   reached it durably, it lost that knowledge with the process: we offer the image again,
//!   its spool still holds it (the finished image stays in the spool as a hard link), and it
//!   completes at once without a byte resent.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tamtam_engine::core::registry::REPORTER;
use tamtam_engine::core::stats::Report;
use tamtam_engine::core::{Outgoing, Progress};
use tamtam_engine::driver::{BulkHandle, Outcome, Station};
use tamtam_tpf::TpfMessage;

use crate::display::{Display, Shown, rate_text, say};
use crate::protocol::{Checked, Manifest, Note, PORT, SwapService, Verdict, encode, is_safe_name};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// This station's id.
    pub id: u32,
    /// Listen address.
    pub listen: Option<std::net::SocketAddr>,
    /// Address to connect to.
    pub connect: Option<std::net::SocketAddr>,
    /// The image to send.
    pub send: PathBuf,
    /// Where the peer's image goes.
    pub receive_dir: PathBuf,
    /// The engine's spool directory.
    pub spool_dir: PathBuf,
    /// The peer's id, if given.
    pub peer: Option<u32>,
    /// Plain lines instead of bars.
    pub quiet: bool,
    /// Between plain progress lines.
    pub interval: Duration,
    /// The SHA-256 to announce instead of computing it.
    pub sha256: Option<[u8; 32]>,
    /// Give up after this long without progress.
    pub timeout: Duration,
}

/// How a swap ended (failures are `Err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both images arrived and matched their SHA-256.
    Verified,
    /// An image arrived but did not match its announced SHA-256 (ours or the peer's).
    Mismatch,
}

/// Notes queued from the handler at most; the handler never blocks (a full queue drops).
const NOTES_MAX: usize = 64;
/// How often the main loop looks at the transfers when nothing else happens.
const TICK: Duration = Duration::from_millis(50);
/// How long a fast-lane exchange (manifest, verdict) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a swap; returns how it ended.
pub fn run(options: &Options) -> Result<Ending, String> {
    let (len, name) = source_of(&options.send)?;
    let sha256 = match options.sha256 {
        Some(digest) => digest,
        None => {
            say(&format!("img_swap: hashing {name} ({len} bytes)"));
            hash_file(&options.send)?
        }
    };
    std::fs::create_dir_all(&options.receive_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.receive_dir.display()))?;
    let manifest = Manifest { len, sha256, name };
    let (notes_tx, notes) = mpsc::sync_channel(NOTES_MAX);
    let mut builder = Station::builder()
        .id(options.id)
        .name(format!("img_swap-{}", options.id))
        .spool_dir(&options.spool_dir)
        .serve(
            PORT,
            SwapService {
                manifest: encode(&manifest),
                notes: notes_tx.clone(),
            },
        );
    if let Some(addr) = options.listen {
        builder = builder.listen_tcp(addr);
    }
    if let Some(addr) = options.connect {
        builder = builder.connect_tcp(addr);
    }
    let station = Arc::new(builder.build().map_err(|e| e.to_string())?);
    for addr in station.local_addrs() {
        say(&format!(
            "img_swap: station {} listening on {addr} ({})",
            options.id,
            station.backend()
        ));
    }
    if let Some(addr) = options.connect {
        say(&format!(
            "img_swap: station {} connecting to {addr} ({})",
            options.id,
            station.backend()
        ));
    }
    let result = swap(&station, options, &manifest, &notes, &notes_tx);
    // A verdict thread may still hold the station (waiting for an ACK that will not come);
    // it ends with the process.
    if let Ok(station) = Arc::try_unwrap(station) {
        station.shutdown();
    }
    result
}

/// The length and file name of the image to send.
fn source_of(path: &Path) -> Result<(u64, String), String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_safe_name(n))
        .ok_or_else(|| format!("{} has no usable UTF-8 file name", path.display()))?
        .to_owned();
    Ok((metadata.len(), name))
}

/// SHA-256 of a file, read in 1 MiB pieces (memory stays flat whatever the size).
pub fn hash_file(path: &Path) -> Result<[u8; 32], String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Waits until exactly one station other than us serves [`PORT`] (or the one `--peer` names).
fn find_peer(station: &Station, options: &Options) -> Result<u32, String> {
    let deadline = Instant::now() + options.timeout;
    let mut said = false;
    loop {
        let candidates: Vec<u32> = station
            .peers()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(id, ports)| {
                *id != options.id && ports.contains(&PORT) && options.peer.is_none_or(|p| p == *id)
            })
            .map(|(id, _)| id)
            .collect();
        match candidates.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            many => {
                return Err(format!(
                    "several stations serve port {PORT} ({many:?}): choose one with --peer"
                ));
            }
        }
        if !said {
            say("img_swap: waiting for the peer station");
            said = true;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no peer station serving port {PORT} appeared within {}s",
                options.timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks the peer what it will send (retried until the deadline: the peer may be starting).
fn fetch_manifest(station: &Station, peer: u32, timeout: Duration) -> Result<Manifest, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let ask = Outgoing::to_station(peer, PORT, Vec::new());
        match station.request(ask, Duration::from_secs(2)) {
            Ok(payload) => {
                return Manifest::decode(&payload).map_err(|e| {
                    format!("station {peer} answered port {PORT} with something else than a manifest: {e}")
                });
            }
            Err(error) if Instant::now() >= deadline => {
                return Err(format!("station {peer} did not send its manifest: {error}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn hex(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

/// The outbound direction.
enum Out {
    /// Sending (or offering) through the engine.
    Sending(BulkHandle),
    /// Stopped; offer again at this time once the peer is reachable.
    Again(Instant),
    /// Durable at the peer.
    Done,
}

/// Our verdict on the inbound image, as far as it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    /// Not sent yet.
    No,
    /// Waiting for its ACK.
    Sending,
    /// Acknowledged: the peer's handler has it.
    Acked,
    /// Not acknowledged in time.
    Failed,
}

fn swap(
    station: &Arc<Station>,
    options: &Options,
    ours: &Manifest,
    notes: &Receiver<Note>,
    notes_tx: &SyncSender<Note>,
) -> Result<Ending, String> {
    let peer = find_peer(station, options)?;
    let theirs = fetch_manifest(station, peer, options.timeout)?;
    if !is_safe_name(&theirs.name) {
        return Err(format!(
            "station {peer} offers an image named {:?}, which is not a plain file name",
            theirs.name
        ));
    }
    let target = options.receive_dir.join(&theirs.name);
    if same_file(&target, &options.send) {
        return Err(format!(
            "station {peer}'s image would replace {} while it is being sent; use another --receive-dir",
            target.display()
        ));
    }
    say(&format!(
        "img_swap: station {peer} sends {} ({} bytes, sha256 {})",
        theirs.name,
        theirs.len,
        hex(&theirs.sha256)
    ));
    say(&format!(
        "img_swap: sending {} ({} bytes, sha256 {}) to station {peer}",
        ours.name,
        ours.len,
        hex(&ours.sha256)
    ));
    let plain = options.quiet || !std::io::stdout().is_terminal();
    let mut display = Display::new(plain, options.interval, &ours.name, &theirs.name);
    let inbound: Mutex<Option<Progress>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let ending = std::thread::scope(|scope| {
        scope.spawn(|| {
            poll_reporter(
                station,
                peer,
                theirs.len,
                &inbound,
                &stop,
                options.interval.min(Duration::from_millis(250)),
            )
        });
        let result = exchange(
            station,
            options,
            peer,
            ours,
            &theirs,
            notes,
            notes_tx,
            &mut display,
            &inbound,
        );
        stop.store(true, Ordering::Relaxed);
        result
    });
    display.finish();
    let elapsed = started.elapsed();
    let stats = station.stats().map_err(|e| e.to_string())?;
    let bytes = ours.len + theirs.len;
    say(&format!(
        "summary station={} peer={peer} sent={} received={} bytes={bytes} transfer_ms={} rate={} segments_sent={} segments_resent={} segments_stored={} peak_rss_kib={}",
        options.id,
        ours.name,
        theirs.name,
        elapsed.as_millis(),
        rate_text((bytes as f64 / elapsed.as_secs_f64().max(1e-9)) as u64).replace(' ', ""),
        stats.bulk_segments_sent,
        stats.bulk_segments_resent,
        stats.bulk_segments_stored,
        peak_rss_kib().map_or("?".into(), |k| k.to_string()),
    ));
    ending
}

/// The main loop: both directions, the check and the verdicts.
#[allow(clippy::too_many_arguments)]
fn exchange(
    station: &Arc<Station>,
    options: &Options,
    peer: u32,
    ours: &Manifest,
    theirs: &Manifest,
    notes: &Receiver<Note>,
    notes_tx: &SyncSender<Note>,
    display: &mut Display,
    inbound: &Mutex<Option<Progress>>,
) -> Result<Ending, String> {
    let offer = || {
        station
            .send_file(peer, PORT, &options.send)
            .map_err(|e| format!("cannot send {}: {e}", options.send.display()))
    };
    let mut out = Out::Sending(offer()?);
    let mut sent: Option<Progress> = None;
    let mut checking = false;
    let mut checked: Option<Checked> = None;
    let mut their_verdict: Option<Verdict> = None;
    let mut told = Told::No;
    let mut last_change = Instant::now();
    let mut last_figures = (0u64, 0u64);
    loop {
        match notes.recv_timeout(TICK) {
            Ok(note) => {
                last_change = Instant::now();
                match note {
                    Note::ManifestAsked { from } if from == peer => {
                        // It lost what it knew. If our image already reached it, it cannot
                        // tell (even if it told us its verdict before it went down): offer
                        // again. Its spool still holds the image, so that ends at once.
                        if matches!(out, Out::Done) {
                            display.say(&format!(
                                "img_swap: station {peer} asked again (it restarted): offering {} again so it can finish",
                                ours.name
                            ));
                            out = Out::Again(Instant::now());
                        }
                    }
                    Note::Verdict { from, verdict } if from == peer => {
                        display.say(&format!(
                            "{} station {peer} checked {} ({} bytes): sha256 {}",
                            if verdict.ok { "OK" } else { "MISMATCH" },
                            verdict.name,
                            verdict.len,
                            hex(&verdict.sha256)
                        ));
                        their_verdict = Some(verdict);
                    }
                    Note::Received(object)
                        if object.sender == peer
                            && object.name == theirs.name
                            && object.len == theirs.len =>
                    {
                        if !checking && checked.is_none() {
                            checking = true;
                            display.say(&format!(
                                "img_swap: {} is durable; checking its sha256",
                                theirs.name
                            ));
                            let spooled = station.spool_dir().join(&object.spool_key);
                            let target = options.receive_dir.join(&theirs.name);
                            let expected = theirs.sha256;
                            let notes_tx = notes_tx.clone();
                            std::thread::spawn(move || {
                                let result = check_received(&spooled, &target, expected);
                                let _ = notes_tx.send(Note::Checked(result));
                            });
                        }
                    }
                    Note::Checked(result) => {
                        let result = result?;
                        if result.ok {
                            display.say(&format!(
                                "OK received {} ({} bytes): sha256 {} matches, saved as {}",
                                theirs.name,
                                theirs.len,
                                hex(&result.sha256),
                                result.path.display()
                            ));
                        } else {
                            display.say(&format!(
                                "MISMATCH received {} ({} bytes): sha256 {} but station {peer} announced {}; left in {}",
                                theirs.name,
                                theirs.len,
                                hex(&result.sha256),
                                hex(&theirs.sha256),
                                result.path.display()
                            ));
                        }
                        checked = Some(result);
                    }
                    Note::VerdictSent(result) => {
                        told = match result {
                            Ok(()) => Told::Acked,
                            Err(error) => {
                                display.say(&format!(
                                    "img_swap: station {peer} did not acknowledge our verdict: {error}"
                                ));
                                Told::Failed
                            }
                        };
                    }
                    other => display.say(&format!("img_swap: ignored {other:?}")),
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("the station stopped".into()),
        }

        // The outbound direction.
        match &out {
            Out::Sending(handle) => {
                if let Some(progress) = handle.progress() {
                    sent = Some(progress);
                }
                match handle.try_wait() {
                    Some(Ok(_)) => {
                        display.say(&format!(
                            "img_swap: {} is durable at station {peer}",
                            ours.name
                        ));
                        out = Out::Done;
                    }
                    Some(Err(error)) => {
                        display.say(&format!(
                            "img_swap: sending {} stopped ({error}); offering it again when station {peer} is back",
                            ours.name
                        ));
                        out = Out::Again(Instant::now() + Duration::from_millis(200));
                    }
                    None => {}
                }
            }
            Out::Again(at) => {
                if Instant::now() >= *at && reachable(station, peer) {
                    out = Out::Sending(offer()?);
                    last_change = Instant::now();
                }
            }
            Out::Done => {}
        }

        // Tell the peer what we found, once.
        if let (Some(result), Told::No) = (&checked, told) {
            told = Told::Sending;
            let verdict = Verdict {
                ok: result.ok,
                len: theirs.len,
                sha256: result.sha256,
                name: theirs.name.clone(),
            };
            let station = station.clone();
            let notes_tx = notes_tx.clone();
            std::thread::spawn(move || {
                let message = Outgoing::to_station(peer, PORT, encode(&verdict));
                let result = match station.send_and_wait(message, EXCHANGE_TIMEOUT) {
                    Ok(Outcome::Delivered) => Ok(()),
                    Ok(Outcome::DeadLettered(record)) => {
                        Err(format!("dead-lettered ({:?})", record.reason))
                    }
                    Err(error) => Err(error.to_string()),
                };
                let _ = notes_tx.send(Note::VerdictSent(result));
            });
        }

        // Show both directions.
        let send_shown = match (&out, sent) {
            (Out::Done, _) => Shown::finished(ours.len),
            (_, Some(progress)) => Shown::of(progress),
            (_, None) => Shown::waiting(ours.len),
        };
        let receive_shown = match (&checked, *inbound.lock().expect("progress lock")) {
            (Some(_), _) => Shown::finished(theirs.len),
            (None, Some(progress)) => Shown::of(progress),
            (None, None) => Shown::waiting(theirs.len),
        };
        display.update(send_shown, receive_shown);
        let figures = (send_shown.done, receive_shown.done);
        if figures != last_figures {
            last_figures = figures;
            last_change = Instant::now();
        }

        // Done: our image is durable there, theirs is checked here, both verdicts known (and
        // ours acknowledged, or the peer already gone).
        if let (Out::Done, Some(result), Some(verdict)) = (&out, &checked, &their_verdict) {
            let settled = match told {
                Told::Acked | Told::Failed => true,
                Told::Sending => !reachable(station, peer),
                Told::No => false,
            };
            if settled {
                display.update(send_shown, receive_shown);
                return Ok(if result.ok && verdict.ok {
                    Ending::Verified
                } else {
                    Ending::Mismatch
                });
            }
        }
        if last_change.elapsed() >= options.timeout {
            return Err(format!(
                "nothing progressed for {}s (is station {peer} still running?); start again to resume",
                options.timeout.as_secs()
            ));
        }
    }
}

/// Whether the peer is reachable now.
fn reachable(station: &Station, peer: u32) -> bool {
    station
        .peers()
        .is_ok_and(|peers| peers.iter().any(|(id, _)| *id == peer))
}

/// Checks a received image against the announced SHA-256; a matching one is hard-linked
/// (or, across file systems, copied) to `target`, replacing an older file there. The spool
/// keeps its link, so an offer of the same image after a restart completes at once.
fn check_received(spooled: &Path, target: &Path, expected: [u8; 32]) -> Result<Checked, String> {
    let sha256 = hash_file(spooled)?;
    if sha256 != expected {
        return Ok(Checked {
            sha256,
            ok: false,
            path: spooled.to_owned(),
        });
    }
    match std::fs::remove_file(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot replace {}: {e}", target.display())),
    }
    if std::fs::hard_link(spooled, target).is_err() {
        std::fs::copy(spooled, target).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                spooled.display(),
                target.display()
            )
        })?;
    }
    Ok(Checked {
        sha256,
        ok: true,
        path: target.to_owned(),
    })
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Asks the peer's Reporter (port 2) for its transfers every `every`, and keeps the latest
/// figures of the one carrying its image to us: the largest transfer id of that size (a
/// restarted or re-offered transfer gets a new, larger id).
fn poll_reporter(
    station: &Station,
    peer: u32,
    len: u64,
    latest: &Mutex<Option<Progress>>,
    stop: &AtomicBool,
    every: Duration,
) {
    while !stop.load(Ordering::Relaxed) {
        // No ACK: a question lost while the peer is down is simply asked again next time.
        let ask = Outgoing::to_station(peer, REPORTER, Vec::new()).no_ack();
        let figures = station
            .request(ask, Duration::from_secs(1))
            .ok()
            .and_then(|payload| Report::decode(&payload).ok())
            .and_then(|report| {
                report
                    .transfers
                    .iter()
                    .filter(|t| t[2] == len)
                    .max_by_key(|t| t[0])
                    .map(|t| Progress {
                        transfer: t[0],
                        bytes_done: t[1],
                        bytes_total: t[2],
                        rate_bytes_per_sec: t[3],
                        eta_ms: t[4],
                    })
            });
        *latest.lock().expect("progress lock") = figures;
        std::thread::sleep(every);
    }
}

/// This process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
