//! `tamtam demo`: two stations on loopback, all three lanes, checked.
//!
//! Every step verifies what it shows; the first failure ends the demo with a clear message and
//! a non-zero exit status.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tamtam_engine::core::registry;
use tamtam_engine::core::stats::Report;
use tamtam_engine::core::{BulkReceived, Context, Message, Outgoing, Service};
use tamtam_engine::driver::{Outcome, Station, TraceKeyQuery};

const WAIT: Duration = Duration::from_secs(30);
const ALICE: u16 = 4001;
const GROUP: u16 = 4100;
const ALERTS: u16 = 4200;
const FILES: u16 = 5000;
const VIDEO: u16 = 3000;

/// Options of the demo.
pub struct Options {
    /// Size of the generated file for the bulk lane, in MiB.
    pub file_mib: u64,
    /// Stream frames to send.
    pub frames: u32,
    /// Hide the progress bar (for logs and tests).
    pub quiet: bool,
}

type Inbox = Arc<Mutex<Vec<(u32, u16, String)>>>;

fn inbox_service(inbox: &Inbox) -> impl Service + use<> {
    let inbox = inbox.clone();
    move |ctx: &mut Context<'_>, m: &Message<'_>| {
        inbox.lock().expect("inbox").push((
            ctx.station_id(),
            m.port(),
            String::from_utf8_lossy(m.payload).into_owned(),
        ));
    }
}

struct FileSink(Arc<Mutex<Vec<BulkReceived>>>);

impl Service for FileSink {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}

    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        self.0.lock().expect("files").push(object.clone());
    }
}

struct StreamSink {
    frames: Arc<Mutex<Vec<(u32, u8)>>>,
}

impl Service for StreamSink {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}

    fn on_stream(&mut self, _: &mut Context<'_>, frame: &Message<'_>) {
        self.frames
            .lock()
            .expect("frames")
            .push((frame.header.sequence, frame.header.lifetime));
    }
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("timed out after {WAIT:?} waiting for {what}"))
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.into()) }
}

fn sha256_file(path: &PathBuf) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Runs the demo.
pub fn run(options: &Options) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tamtam-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = run_in(&dir, options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &std::path::Path, options: &Options) -> Result<(), String> {
    let inbox: Inbox = Arc::default();
    let files = Arc::new(Mutex::new(Vec::new()));
    let frames = Arc::new(Mutex::new(Vec::new()));

    println!("TamTam demo: two stations on loopback, three lanes.\n");
    let station_b = Station::builder()
        .id(2)
        .name("tamtam-demo-b")
        .listen_tcp("127.0.0.1:0".parse().expect("address"))
        .spool_dir(dir.join("spool-b"))
        .serve(ALICE, inbox_service(&inbox))
        .join_group(GROUP, inbox_service(&inbox))
        .serve(ALERTS, inbox_service(&inbox))
        .serve(FILES, FileSink(files.clone()))
        .subscribe(
            VIDEO,
            StreamSink {
                frames: frames.clone(),
            },
        )
        .collect_traces()
        .build()
        .map_err(|e| format!("station 2 did not start: {e}"))?;
    let station_a = Station::builder()
        .id(1)
        .name("tamtam-demo-a")
        .connect_tcp(station_b.local_addrs()[0])
        .spool_dir(dir.join("spool-a"))
        .join_group(GROUP, inbox_service(&inbox))
        .serve(ALERTS, inbox_service(&inbox))
        .build()
        .map_err(|e| format!("station 1 did not start: {e}"))?;
    println!(
        "stations 1 and 2 up ({} backend), linked over TCP {}",
        station_a.backend(),
        station_b.local_addrs()[0]
    );
    station_a
        .wait_for_port(FILES, WAIT)
        .map_err(|e| format!("discovery did not converge: {e}"))?;

    // Fast lane: chat between a user, a group and a broadcast port.
    println!("\n[fast lane] chat");
    let outcome = station_a
        .send_and_wait(Outgoing::to_station(2, ALICE, "hi alice, it is bob"), WAIT)
        .map_err(|e| format!("direct message failed: {e}"))?;
    check(
        outcome == Outcome::Delivered,
        format!("direct message: {outcome:?}"),
    )?;
    println!("  user   1 -> 2:{ALICE}  delivered and acknowledged");
    station_a
        .send(Outgoing::to_group(GROUP, "hello, group"))
        .map_err(|e| format!("group send failed: {e}"))?;
    station_a
        .send(Outgoing::broadcast(ALERTS, "tram leaves in 5 minutes"))
        .map_err(|e| format!("broadcast failed: {e}"))?;
    wait_for("group and broadcast deliveries", || {
        let inbox = inbox.lock().expect("inbox");
        let count = |port| inbox.iter().filter(|(_, p, _)| *p == port).count();
        count(GROUP) == 2 && count(ALERTS) == 2
    })?;
    for (station, port, text) in inbox.lock().expect("inbox").iter() {
        println!("  station {station} port {port:>4}: {text:?}");
    }

    // Bulk lane: a generated file, disk to disk, with progress and a checksum check.
    println!("\n[bulk lane] {} MiB file, disk to disk", options.file_mib);
    let source = dir.join("payload.bin");
    write_generated(&source, options.file_mib * 1024 * 1024)?;
    let started = Instant::now();
    let handle = station_a
        .send_file(2, FILES, &source)
        .map_err(|e| format!("bulk transfer did not start: {e}"))?;
    let bar = if options.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(options.file_mib * 1024 * 1024)
    };
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map_err(|e| e.to_string())?,
    );
    let result = loop {
        if let Some(progress) = handle.progress() {
            bar.set_position(progress.bytes_done);
        }
        if let Some(result) = handle.try_wait() {
            break result;
        }
        if started.elapsed() > WAIT * 4 {
            break Err(tamtam_engine::driver::StationError::Timeout(WAIT * 4));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    bar.finish_and_clear();
    result.map_err(|e| format!("bulk transfer failed: {e}"))?;
    let elapsed = started.elapsed();
    wait_for("the received object", || {
        !files.lock().expect("files").is_empty()
    })?;
    let received = files.lock().expect("files")[0].clone();
    let target = station_b.spool_dir().join(&received.spool_key);
    let (sent_sha, got_sha) = (sha256_file(&source)?, sha256_file(&target)?);
    check(
        sent_sha == got_sha,
        format!("checksum mismatch: sent {sent_sha}, got {got_sha}"),
    )?;
    println!(
        "  {} bytes in {:.2?} ({:.0} MB/s), durable at the receiver",
        received.len,
        elapsed,
        received.len as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("  sha-256 {sent_sha} matches");

    // Stream lane: frames with a lifetime in cycles, never acknowledged.
    println!("\n[stream lane] {} frames", options.frames);
    for i in 0..options.frames {
        loop {
            match station_a.stream(VIDEO, 7, format!("frame {i}").into_bytes()) {
                Err(tamtam_engine::driver::StationError::Busy(_)) => std::thread::yield_now(),
                other => break other.map_err(|e| format!("stream send failed: {e}"))?,
            }
        }
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    wait_for("stream frames", || {
        !frames.lock().expect("frames").is_empty()
    })?;
    std::thread::sleep(Duration::from_millis(50));
    let got = frames.lock().expect("frames").clone();
    check(
        got.iter().all(|&(_, life)| life > 0),
        "a stream frame was delivered past its lifetime",
    )?;
    let mut sequences: Vec<u32> = got.iter().map(|&(s, _)| s).collect();
    sequences.sort_unstable();
    sequences.dedup();
    check(
        sequences.len() == got.len(),
        "a stream frame was delivered twice",
    )?;
    let stats_b = station_b.stats().map_err(|e| e.to_string())?;
    println!(
        "  delivered {} of {} (lifetime left at delivery: {}..={} cycles), expired {}, overrun {}, acks sent for streams: none",
        got.len(),
        options.frames,
        got.iter().map(|f| f.1).min().unwrap_or(0),
        got.iter().map(|f| f.1).max().unwrap_or(0),
        stats_b.stream_expired,
        stats_b.stream_overrun
    );

    // Trace: one packet's route, from TRACE_REPORT.
    println!("\n[trace] one traced packet");
    let outcome = station_a
        .send_and_wait(
            Outgoing::to_station(2, ALICE, "traced hello")
                .traced()
                .route(4242),
            WAIT,
        )
        .map_err(|e| format!("traced message failed: {e}"))?;
    check(
        outcome == Outcome::Delivered,
        format!("traced message: {outcome:?}"),
    )?;
    let mut routes = Vec::new();
    wait_for("trace reports", || {
        routes = station_b
            .traces(TraceKeyQuery {
                route_id: Some(4242),
            })
            .unwrap_or_default();
        routes.iter().any(|(_, hops)| {
            hops.first().map(|h| h.node) == Some(1) && hops.iter().any(|h| h.node == 2)
        })
    })?;
    for (key, hops) in &routes {
        println!(
            "  route {} sender {} request {:#x} {}:",
            key.route_id, key.sender_id, key.request_id, key.packet_type
        );
        for hop in hops {
            let events: Vec<&str> = hop.events.iter().map(|e| e.name()).collect();
            match hop.next_hop {
                Some(next) => println!(
                    "    station {} [{}] -> station {next}",
                    hop.node,
                    events.join(", ")
                ),
                None => println!("    station {} [{}]", hop.node, events.join(", ")),
            }
        }
    }

    // Reporter: statistics are just another message flow (port 2).
    println!(
        "\n[reporter] station 2's statistics, asked over the bus (port {})",
        registry::REPORTER
    );
    let payload = station_a
        .request(
            Outgoing::to_station(2, registry::REPORTER, Vec::new()),
            WAIT,
        )
        .map_err(|e| format!("reporter request failed: {e}"))?;
    let report = Report::decode(&payload).map_err(|e| format!("bad report: {e}"))?;
    for name in [
        "cycles",
        "frames_received",
        "frames_sent",
        "delivered",
        "acks_sent",
        "duplicates",
        "bulk_segments_stored",
        "bulk_received",
        "stream_delivered",
        "frames_malformed",
    ] {
        println!("  {name:<22} {}", report.counter(name).unwrap_or(0));
    }
    check(
        report.counter("bulk_received") == Some(1),
        "the reporter did not count the bulk object",
    )?;
    check(
        report.counter("frames_malformed") == Some(0),
        "malformed frames on a clean link",
    )?;

    station_a.shutdown();
    station_b.shutdown();
    println!("\nall checks passed");
    Ok(())
}

fn write_generated(path: &PathBuf, len: u64) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    out.flush().map_err(|e| e.to_string())
}
