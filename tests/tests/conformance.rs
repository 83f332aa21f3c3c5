//! Goal: every transport keeps the same promises through the Station API. Method: one
//! battery, run against each transport — memory, TCP (the station's own sockets, through a
//! proxy that can cut connections), WebSocket, serial (two ptys joined by an emulated line),
//! shared memory and spool files. Station 1 dials station 2 through a fault hook that can cut
//! the link (the dial redials); station 2 serves a recorder, an echo, a bulk sink and a
//! stream. For each transport:
//!
//! - **lanes**: fast messages with ACK, request/reply, a stream, a bulk file (small segments);
//! - **largest frame**: a payload of exactly the limit is delivered; one byte more is refused
//!   by `send` with a clear error, and the link keeps working;
//! - **disconnect**: the link is cut twice while ACK-required messages flow; after the redial
//!   every message is delivered exactly once and acknowledged;
//! - **bad input**: garbage, truncated, oversized and endless input injected at the medium
//!   (raw socket bytes, raw tty bytes, raw ring records, raw files): the drop is counted, the
//!   station keeps serving, and the link survives or is closed as the transport specifies;
//! - **two processes**: two `tt_node` processes exchange ACK-required messages (all but memory);
//! - on byte-stream framers (TCP prefix, WebSocket, serial COBS): a stream of frames split at
//!   every byte boundary decodes the same, and a frame dribbled one byte at a time through a
//!   real socket or tty is delivered.
//!
//! Waits are bounded condition polls, never sleeps used as synchronisation.

mod kit;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kit::{Line, LineConfig, Node, WAIT, fast_frame, heartbeat, openpty, temp, wait_until};
use tamtam_engine::core::{BulkReceived, BusConfig, Context, Message, Outgoing, Service};
use tamtam_engine::driver::{ExternalLink, Outcome, Station, StationBuilder};
use tamtam_transports::fault::{CutSwitch, Faults, Faulty};
use tamtam_transports::file::{BatchWriter, FileConfig, FileLink};
use tamtam_transports::memory::{MemoryConfig, MemoryConnector};
use tamtam_transports::serial::{SerialConfig, SerialFramer, SerialLink};
use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};
use tamtam_transports::websocket::{WsConfig, WsLink, WsListener};
use tamtam_transports::{LinkCounters, Redial, frame_len_max_for, memory};

/// Payload limit of every station in the battery.
const PAYLOAD_MAX: u32 = 16 * 1024;
/// Bulk segment length (small, so a small file has many segments).
const SEGMENT_LEN: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Tcp,
    WebSocket,
    Serial,
    Shm,
    File,
}

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

fn recorder(seen: &Seen) -> impl Service + use<> {
    let seen = seen.clone();
    move |_: &mut Context<'_>, m: &Message<'_>| seen.lock().unwrap().push(m.payload.to_vec())
}

fn echo() -> impl Service {
    |ctx: &mut Context<'_>, m: &Message<'_>| {
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(m.payload);
        ctx.reply(m, answer);
    }
}

struct Files(Arc<Mutex<Vec<BulkReceived>>>);

impl Service for Files {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}
    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        self.0.lock().unwrap().push(object.clone());
    }
}

fn configure(c: &mut BusConfig) {
    c.payload_len_max = PAYLOAD_MAX;
    c.segment_len = SEGMENT_LEN;
    c.rto_initial = tamtam_engine::core::Duration::from_millis(100);
    c.attempts_max = 40;
    c.rto_max = tamtam_engine::core::Duration::from_millis(500);
}

fn frame_max() -> u32 {
    frame_len_max_for(PAYLOAD_MAX)
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

fn unique(kind: Kind, what: &str) -> String {
    format!(
        "{kind:?}-{what}-{}-{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
    .to_lowercase()
}

/// What the test can reach of the medium of a rig.
enum Medium {
    Memory(MemoryConnector),
    Tcp(SocketAddr),
    WebSocket(SocketAddr),
    Serial(Vec<kit::Pty>, Line),
    Shm(String),
    File(PathBuf),
}

/// Two stations joined by one transport.
struct Rig {
    kind: Kind,
    a: Station,
    b: Station,
    seen: Seen,
    frames: Seen,
    files: Arc<Mutex<Vec<BulkReceived>>>,
    /// Cuts station 1's current link (the TCP proxy's connections for TCP).
    cut: Box<dyn Fn()>,
    /// Counters of station 2's side of the medium (listener sum or dialed links).
    b_counters: Arc<Mutex<Vec<Arc<LinkCounters>>>>,
    medium: Medium,
    dir: PathBuf,
    _proxy: Option<Arc<kit::CutProxy>>,
    /// Last: removed after the stations stopped.
    _dir_guard: DirGuard,
}

struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A dialer that wraps every link in the fault hook and records its counters.
fn dial<L: ExternalLink + 'static>(
    name: &str,
    faults: Option<Faults>,
    counters: Arc<Mutex<Vec<Arc<LinkCounters>>>>,
    mut open: impl FnMut() -> std::io::Result<(L, Arc<LinkCounters>)> + Send + 'static,
) -> Box<Redial> {
    Box::new(
        Redial::new(name, move || {
            let (link, c) = open()?;
            counters.lock().unwrap().push(c);
            let link: Box<dyn ExternalLink> = Box::new(link);
            Ok(match &faults {
                Some(faults) => Box::new(Faulty::new(link, faults.clone())),
                None => link,
            })
        })
        .backoff(Duration::from_millis(10), Duration::from_millis(200)),
    )
}

fn rig(kind: Kind, test: &str) -> Rig {
    let dir = temp(&unique(kind, test));
    let seen: Seen = Arc::default();
    let frames: Seen = Arc::default();
    let files = Arc::new(Mutex::new(Vec::new()));
    let cut = CutSwitch::new();
    let faults = Faults {
        seed: 1,
        cut: cut.clone(),
        ..Faults::default()
    };
    let a_counters: Arc<Mutex<Vec<Arc<LinkCounters>>>> = Arc::default();
    let b_counters: Arc<Mutex<Vec<Arc<LinkCounters>>>> = Arc::default();
    let mut b = Station::builder()
        .id(2)
        .name("conformance-b")
        .spool_dir(dir.join("spool-b"))
        .configure(configure)
        .serve(2000, recorder(&seen))
        .serve(2001, echo())
        .serve(5000, Files(files.clone()))
        .subscribe(3000, recorder(&frames));
    let mut a = Station::builder()
        .id(1)
        .name("conformance-a")
        .spool_dir(dir.join("spool-a"))
        .configure(configure);
    let fl = frame_max();
    let mut proxy = None;
    let mut cut_fn: Box<dyn Fn()> = Box::new(move || cut.cut());
    let medium = match kind {
        Kind::Memory => {
            let config = MemoryConfig {
                capacity_bytes: 1 << 20,
                frame_len_max: fl,
            };
            let (listener, connector) = memory::listener(&unique(kind, "l"), config);
            b_counters.lock().unwrap().push(listener.counters());
            b = b.listener(Box::new(listener));
            let c = connector.clone();
            a = a.listener(dial("memory", Some(faults), a_counters, move || {
                let link = c.connect()?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            Medium::Memory(connector)
        }
        Kind::Tcp => {
            b = b.listen_tcp("127.0.0.1:0".parse().unwrap());
            Medium::Tcp("0.0.0.0:0".parse().unwrap()) // filled in after b starts
        }
        Kind::WebSocket => {
            let config = ws_config();
            let listener = WsListener::bind("127.0.0.1:0".parse().unwrap(), &config).unwrap();
            let addr = listener.local_addr();
            b_counters.lock().unwrap().push(listener.counters());
            b = b.listener(Box::new(listener));
            a = a.listener(dial("ws", Some(faults), a_counters, move || {
                let link = WsLink::connect(addr, &config)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            Medium::WebSocket(addr)
        }
        Kind::Serial => {
            let (pa, pb) = (openpty(), openpty());
            let line = Line::start(&pa, &pb, &LineConfig::default());
            let config = serial_config();
            let (path_a, path_b) = (pa.path.clone(), pb.path.clone());
            let c = config.clone();
            a = a.listener(dial("serial a", Some(faults), a_counters, move || {
                let link = SerialLink::open(&path_a, &c)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            b = b.listener(dial("serial b", None, b_counters.clone(), move || {
                let link = SerialLink::open(&path_b, &config)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            Medium::Serial(vec![pa, pb], line)
        }
        Kind::Shm => {
            let name = unique(kind, "l");
            let config = shm_config();
            let listener = ShmListener::bind(&name, &config).unwrap();
            b_counters.lock().unwrap().push(listener.counters());
            b = b.listener(Box::new(listener));
            let n = name.clone();
            a = a.listener(dial("shm", Some(faults), a_counters, move || {
                let link = ShmLink::connect(&n, &config)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            Medium::Shm(name)
        }
        Kind::File => {
            let config = file_config();
            let (ab, ba) = (dir.join("a-to-b"), dir.join("b-to-a"));
            let (ab2, ba2) = (ab.clone(), ba.clone());
            let c = config.clone();
            a = a.listener(dial("file a", Some(faults), a_counters, move || {
                let link = FileLink::open(&ab, &ba, &c)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            b = b.listener(dial("file b", None, b_counters.clone(), move || {
                let link = FileLink::open(&ba2, &ab2, &config)?;
                let counters = link.counters();
                Ok((link, counters))
            }));
            Medium::File(dir.clone())
        }
    };
    let b = b.build().unwrap();
    let mut medium = medium;
    if kind == Kind::Tcp {
        let target = b.local_addrs()[0];
        let p = Arc::new(kit::CutProxy::start(target));
        a = a.connect_tcp(p.addr);
        medium = Medium::Tcp(target);
        let l = p.clone();
        cut_fn = Box::new(move || l.cut());
        proxy = Some(p);
    }
    let a = a.build().unwrap();
    a.wait_for_port(2001, WAIT).unwrap();
    Rig {
        kind,
        a,
        b,
        seen,
        frames,
        files,
        cut: cut_fn,
        b_counters,
        medium,
        dir: dir.clone(),
        _proxy: proxy,
        _dir_guard: DirGuard(dir),
    }
}

fn ws_config() -> WsConfig {
    WsConfig {
        frame_len_max: frame_max(),
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(3),
        ..WsConfig::default()
    }
}

fn serial_config() -> SerialConfig {
    SerialConfig {
        baud_rate: 115_200,
        frame_len_max: frame_max(),
        send_buffer_bytes: 256 * 1024,
    }
}

fn shm_config() -> ShmConfig {
    ShmConfig {
        ring_bytes: 1 << 20,
        frame_len_max: frame_max(),
        ..ShmConfig::default()
    }
}

fn file_config() -> FileConfig {
    FileConfig {
        frame_len_max: frame_max(),
        scan_interval: Duration::from_millis(2),
        ..FileConfig::default()
    }
}

impl Rig {
    fn b_dropped(&self) -> (u64, u64) {
        let c = self.b_counters.lock().unwrap();
        let malformed = c.iter().map(|c| c.snapshot().malformed).sum();
        let oversize = c.iter().map(|c| c.snapshot().oversize).sum();
        (malformed, oversize)
    }

    fn delivered_ok(&self, payload: &[u8]) {
        let outcome = self
            .a
            .send_and_wait(Outgoing::to_station(2, 2000, payload.to_vec()), WAIT)
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.kind));
        assert_eq!(outcome, Outcome::Delivered, "{:?}", self.kind);
    }
}

// ---------------------------------------------------------------------------------------------
// The battery
// ---------------------------------------------------------------------------------------------

fn lanes(kind: Kind) {
    let rig = rig(kind, "lanes");
    for i in 0..20u32 {
        rig.delivered_ok(format!("fast-{i}").as_bytes());
    }
    assert_eq!(rig.seen.lock().unwrap().len(), 20);
    let reply = rig
        .a
        .request(Outgoing::to_service(2001, b"ping".to_vec()), WAIT)
        .unwrap();
    assert_eq!(reply, b"echo:ping");
    wait_until("stream frames", || {
        rig.a.stream(3000, 1, b"frame".to_vec()).unwrap();
        !rig.frames.lock().unwrap().is_empty()
    });
    let object: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let source = rig.dir.join("object.bin");
    std::fs::write(&source, &object).unwrap();
    rig.a
        .send_file(2, 5000, &source)
        .unwrap()
        .wait(WAIT)
        .unwrap();
    wait_until("bulk object", || !rig.files.lock().unwrap().is_empty());
    let received = rig.files.lock().unwrap()[0].clone();
    let stored = std::fs::read(rig.b.spool_dir().join(&received.spool_key)).unwrap();
    assert!(stored == object, "{kind:?}: bulk object differs");
    let stats = rig.a.stats().unwrap();
    assert!(stats.bulk_segments_sent >= 20, "{kind:?}: {stats:?}");
    assert_eq!(rig.b.stats().unwrap().frames_malformed, 0);
}

fn largest_frame(kind: Kind) {
    let rig = rig(kind, "largest");
    let largest = vec![0x5Au8; PAYLOAD_MAX as usize];
    rig.delivered_ok(&largest);
    assert_eq!(rig.seen.lock().unwrap()[0], largest);
    let over = vec![0x5Au8; PAYLOAD_MAX as usize + 1];
    let error = rig
        .a
        .send(Outgoing::to_station(2, 2000, over))
        .expect_err("one byte over the limit must be refused");
    eprintln!("{kind:?}: one byte over: {error}");
    // The link survives.
    rig.delivered_ok(b"after");
}

fn disconnect(kind: Kind) {
    let rig = rig(kind, "disconnect");
    let phase = 20usize;
    let delivered = || {
        let mut distinct = rig.seen.lock().unwrap().clone();
        distinct.sort();
        distinct.dedup();
        distinct.len()
    };
    for k in 0..3 {
        // Each phase starts on a live link (the previous cut noticed, the redial done).
        wait_until("the cut noticed", || {
            rig.a.stats().unwrap().peers_dead >= k as u64
        });
        rig.a.wait_for_port(2000, WAIT).unwrap();
        for i in 0..phase {
            let n = k * phase + i;
            rig.a
                .send(Outgoing::to_station(2, 2000, format!("m{n:03}")))
                .unwrap();
        }
        if k < 2 {
            // Cut at once, while this phase's messages are (likely) in flight.
            (rig.cut)();
        }
        wait_until("the phase's messages", || delivered() == (k + 1) * phase);
    }
    let total = 3 * phase;
    wait_until("every ACK", || rig.a.stats().unwrap().acked >= total as u64);
    let seen = rig.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), total, "{kind:?}: a message was delivered twice");
    let stats = rig.a.stats().unwrap();
    assert_eq!(stats.dead_lettered, 0, "{kind:?}");
    assert!(
        stats.peers_dead >= 2,
        "{kind:?}: the link was not cut twice: {stats:?}"
    );
    eprintln!(
        "{kind:?}: after 2 cuts: acked {} retransmits {} peers_dead {}",
        stats.acked, stats.retransmits, stats.peers_dead
    );
}

/// Injects bad input at station 2's side of the medium; returns whether the link is
/// specified to survive it.
fn bad_input(kind: Kind) {
    let rig = rig(kind, "bad");
    rig.delivered_ok(b"before");
    let fl = frame_max() as usize;
    match &rig.medium {
        Medium::Memory(connector) => {
            // A second, raw link: garbage length, then an endless partial record.
            let mut raw = connector.connect().unwrap();
            raw.inject_raw(&u32::MAX.to_le_bytes());
            let mut raw2 = connector.connect().unwrap();
            raw2.inject_raw(&((fl as u32) + 1).to_le_bytes());
            let mut raw3 = connector.connect().unwrap();
            raw3.inject_raw(&100u32.to_le_bytes());
            raw3.inject_raw(&[1, 2, 3]); // truncated: never completes
            wait_until("memory drops counted", || rig.b_dropped().0 >= 2);
            drop((raw, raw2, raw3));
        }
        Medium::Tcp(target) => {
            // Oversized length prefix, an undersized one, and an endless partial frame.
            let mut s1 = TcpStream::connect(target).unwrap();
            s1.write_all(&u32::MAX.to_le_bytes()).unwrap();
            let mut s2 = TcpStream::connect(target).unwrap();
            s2.write_all(&3u32.to_le_bytes()).unwrap();
            let mut s3 = TcpStream::connect(target).unwrap();
            s3.write_all(&1000u32.to_le_bytes()).unwrap();
            s3.write_all(&[0u8; 10]).unwrap();
            // The station closes the first two.
            for mut s in [s1, s2] {
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut sink = [0u8; 4096];
                loop {
                    match s.read(&mut sink) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            drop(s3);
        }
        Medium::WebSocket(addr) => {
            // Before the handshake: garbage.
            let mut g = TcpStream::connect(addr).unwrap();
            g.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
                .unwrap();
            // After the handshake: an invalid opcode, an oversized length, a text message,
            // a binary message that is not a frame, an endless partial frame.
            let mut bad_opcode = ws_handshake(*addr);
            bad_opcode.write_all(&[0x83, 0x80, 1, 2, 3, 4]).unwrap();
            let mut huge = ws_handshake(*addr);
            let mut header = vec![0x82, 0xFF];
            header.extend_from_slice(&(1u64 << 40).to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]);
            huge.write_all(&header).unwrap();
            let mut over = ws_handshake(*addr);
            over.write_all(&ws_masked(0x2, &vec![0u8; fl + 1])).unwrap();
            let mut junk = ws_handshake(*addr);
            junk.write_all(&ws_masked(0x1, b"hello")).unwrap();
            junk.write_all(&ws_masked(0x2, &[7u8; 100])).unwrap();
            let mut partial = ws_handshake(*addr);
            let mut start = vec![0x82, 0xFE, 0x03, 0xE8, 9, 9, 9, 9];
            start.extend_from_slice(&[0u8; 20]);
            partial.write_all(&start).unwrap();
            // Closed with 1002 / 1009; the junk link survives (its drops are counted).
            for (mut s, code) in [(bad_opcode, 1002u16), (huge, 1009), (over, 1009)] {
                assert_eq!(ws_close_code(&mut s), Some(code));
            }
            wait_until("ws drops counted", || {
                let (malformed, oversize) = rig.b_dropped();
                malformed >= 4 && oversize >= 2
            });
            // The junk connection is still open: a valid frame on it is delivered.
            junk.write_all(&ws_masked(0x2, &heartbeat(9))).unwrap();
            junk.write_all(&ws_masked(
                0x2,
                &fast_frame(9, 2, 2000, 1 << 32, b"from-junk"),
            ))
            .unwrap();
            wait_until("frame on the surviving ws link", || {
                rig.seen.lock().unwrap().iter().any(|p| p == b"from-junk")
            });
            // The endless partial frame: no complete message (not even a pong) within the
            // keepalive timeout, so the station declares the peer dead and closes.
            let started = Instant::now();
            let mut sink = [0u8; 1024];
            loop {
                match partial.read(&mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // pings
                }
            }
            eprintln!(
                "WebSocket: stalled peer closed after {:?}",
                started.elapsed()
            );
            assert!(started.elapsed() < WAIT);
            drop(g);
        }
        Medium::Serial(ptys, _line) => {
            // Write straight into station 2's tty (the master of its pty) beside the line.
            let master = ptys[1].master.try_clone().unwrap();
            let mut tty = std::fs::File::from(master);
            let mut noise = Vec::new();
            // Corrupt COBS: a block cut by a delimiter.
            noise.extend_from_slice(&[0x05, 1, 2, 0]);
            // A valid COBS packet that is not a frame, and a truncated frame.
            SerialFramer::encode(&[1u8; 100], &mut noise);
            let frame = fast_frame(9, 2, 2000, 1 << 32, b"truncated");
            SerialFramer::encode(&frame[..frame.len() - 3], &mut noise);
            // One byte over the largest frame, then an endless run without a delimiter.
            SerialFramer::encode(&vec![3u8; fl + 1], &mut noise);
            tty.write_all(&noise).unwrap();
            let chunk = vec![0x42u8; 64 * 1024];
            for _ in 0..8 {
                tty.write_all(&chunk).unwrap();
            }
            tty.write_all(&[0]).unwrap();
            wait_until("serial drops counted", || {
                let (malformed, oversize) = rig.b_dropped();
                malformed >= 3 && oversize >= 2
            });
        }
        Medium::Shm(name) => {
            // A raw peer writing records the reader cannot account for.
            let config = shm_config();
            for bad in [
                [u32::MAX.to_le_bytes(), 0u32.to_le_bytes()].concat(),
                [100u32.to_le_bytes(), 7u32.to_le_bytes()].concat(),
                [(fl as u32 + 1).to_le_bytes(), 0u32.to_le_bytes()].concat(),
            ] {
                let mut raw = ShmLink::connect(name, &config).unwrap();
                assert!(raw.inject_raw(&bad));
                // The station closes this link: the raw side sees it gone.
                let deadline = Instant::now() + WAIT;
                while raw.poll_recv(16, &mut |_| {}).is_ok() {
                    assert!(Instant::now() < deadline, "corrupt shm link not closed");
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            assert!(rig.b_dropped().0 >= 3);
        }
        Medium::File(dir) => {
            let inbox = dir.join("a-to-b");
            let mut batch = BatchWriter::new();
            batch.push(&fast_frame(9, 2, 2000, 1 << 32, b"torn"));
            let good = batch.finish().to_vec();
            std::fs::write(
                inbox.join("00000000000000000001.ttb"),
                &good[..good.len() - 5],
            )
            .unwrap();
            std::fs::write(inbox.join("00000000000000000002.ttb"), b"garbage").unwrap();
            std::fs::write(inbox.join(".tmp").join("x.tmp"), &good).unwrap_or(());
            let mut big = BatchWriter::new();
            big.push(&vec![0u8; fl + 1]);
            std::fs::write(inbox.join("00000000000000000003.ttb"), big.finish()).unwrap();
            wait_until("file drops counted", || rig.b_dropped().0 >= 3);
            assert!(
                !rig.seen.lock().unwrap().iter().any(|p| p == b"torn"),
                "a torn batch was delivered"
            );
        }
    }
    // The station keeps serving (through the surviving link or after the redial).
    rig.b.stats().unwrap();
    rig.delivered_ok(b"after");
    let stats = rig.b.stats().unwrap();
    eprintln!(
        "{kind:?}: bad input: link drops {:?}, station frames_malformed {}",
        rig.b_dropped(),
        stats.frames_malformed
    );
}

/// A raw WebSocket client after its handshake.
fn ws_handshake(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8];
    while !response.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        response.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    s
}

/// A masked (client) WebSocket frame.
fn ws_masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x11, 0x22, 0x33, 0x44];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads server frames until a close frame; returns its code.
fn ws_close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).ok()?;
        let mut len = u64::from(head[1] & 0x7F);
        if len == 126 {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).ok()?;
        if head[0] & 0x0F == 0x8 {
            return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
    }
}

fn two_processes(kind: Kind) {
    let dir = temp(&unique(kind, "2p"));
    let (spool_r, spool_s) = (dir.join("r"), dir.join("s"));
    let mut receiver_args: Vec<String> = vec![
        "--id".into(),
        "2".into(),
        "--spool".into(),
        spool_r.to_str().unwrap().into(),
        "--serve".into(),
        "2000".into(),
    ];
    let mut sender_args: Vec<String> = vec![
        "--id".into(),
        "1".into(),
        "--spool".into(),
        spool_s.to_str().unwrap().into(),
        "--send-messages".into(),
        "2".into(),
        "2000".into(),
        "200".into(),
    ];
    let mut _keep = None;
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    match kind {
        Kind::Tcp => receiver_args.extend(strings(&["--listen", "127.0.0.1:0"])),
        Kind::WebSocket => receiver_args.extend(strings(&["--ws-listen", "127.0.0.1:0"])),
        Kind::Shm => {
            let name = unique(kind, "2p");
            receiver_args.extend(strings(&["--shm-listen", &name]));
            sender_args.extend(strings(&["--shm-connect", &name]));
        }
        Kind::Serial => {
            let (pa, pb) = (openpty(), openpty());
            let line = Line::start(&pa, &pb, &LineConfig::default());
            receiver_args.extend(strings(&["--serial", &pb.path]));
            sender_args.extend(strings(&["--serial", &pa.path]));
            _keep = Some((pa, pb, line));
        }
        Kind::File => {
            let (ab, ba) = (dir.join("ab"), dir.join("ba"));
            let (ab, ba) = (ab.to_str().unwrap(), ba.to_str().unwrap());
            receiver_args.extend(strings(&["--file-out", ba, "--file-in", ab]));
            sender_args.extend(strings(&["--file-out", ab, "--file-in", ba]));
        }
        Kind::Memory => unreachable!("memory links are in-process"),
    }
    let mut receiver = Node::start(&receiver_args.iter().map(String::as_str).collect::<Vec<_>>());
    let address = receiver.address();
    match kind {
        Kind::Tcp => sender_args.extend(strings(&["--connect", &address])),
        Kind::WebSocket => sender_args.extend(strings(&["--ws-connect", &address])),
        _ => {}
    }
    let sender = Node::start(&sender_args.iter().map(String::as_str).collect::<Vec<_>>());
    receiver.wait_for("200 messages", |lines| {
        kit::got_payloads(lines, 2000).len() >= 200
    });
    let mut got = kit::got_payloads(&receiver.seen, 2000);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 200, "{kind:?}: duplicates or losses");
    drop((sender, receiver));
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! battery {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn lanes_fast_request_stream_bulk() {
                lanes($kind);
            }

            #[test]
            fn largest_frame_and_one_byte_over() {
                largest_frame($kind);
            }

            #[test]
            fn disconnect_and_reconnect_lose_nothing_acked() {
                disconnect($kind);
            }

            #[test]
            fn bad_input_is_counted_and_the_station_survives() {
                bad_input($kind);
            }
        }
    };
}

battery!(memory_link, Kind::Memory);
battery!(tcp_link, Kind::Tcp);
battery!(websocket_link, Kind::WebSocket);
battery!(serial_link, Kind::Serial);
battery!(shm_link, Kind::Shm);
battery!(file_link, Kind::File);

#[test]
fn two_processes_tcp() {
    two_processes(Kind::Tcp);
}

#[test]
fn two_processes_websocket() {
    two_processes(Kind::WebSocket);
}

#[test]
fn two_processes_serial() {
    two_processes(Kind::Serial);
}

#[test]
fn two_processes_shm() {
    two_processes(Kind::Shm);
}

#[test]
fn two_processes_file() {
    two_processes(Kind::File);
}

/// A stream of frames through `encode`, split into two chunks at every byte boundary, must
/// decode to the same frames.
#[test]
fn byte_stream_framers_split_at_every_boundary() {
    use tamtam_engine::core::wire::stream::StreamDecoder;
    use tamtam_transports::websocket::{MemoryStream, Role, WsFramer};

    let frames: Vec<Vec<u8>> = (0..4u64)
        .map(|i| fast_frame(1, 2, 2000, i, &vec![i as u8; 10 + 30 * i as usize]))
        .collect();

    // TCP: u32 length prefix.
    let mut wire = Vec::new();
    for f in &frames {
        wire.extend_from_slice(&(f.len() as u32).to_le_bytes());
        wire.extend_from_slice(f);
    }
    for split in 0..=wire.len() {
        let mut decoder = StreamDecoder::new(frame_max());
        let mut got = Vec::new();
        for chunk in [&wire[..split], &wire[split..]] {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = decoder.feed(rest);
                rest = &rest[n..];
                while let Some(f) = decoder.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
        }
        assert_eq!(got, frames, "tcp split at {split}");
    }

    // Serial: COBS + delimiter.
    let mut wire = Vec::new();
    for f in &frames {
        SerialFramer::encode(f, &mut wire);
    }
    for split in 0..=wire.len() {
        let mut framer = SerialFramer::new(frame_max());
        let mut got = Vec::new();
        for chunk in [&wire[..split], &wire[split..]] {
            let mut rest = chunk;
            while !rest.is_empty() {
                let (n, event) = framer.decode(rest);
                rest = &rest[n..];
                match event {
                    Some(tamtam_transports::serial::Received::Frame(f)) => got.push(f.to_vec()),
                    Some(other) => panic!("serial split at {split}: {other:?}"),
                    None => {}
                }
            }
        }
        assert_eq!(got, frames, "serial split at {split}");
    }

    // WebSocket: masked binary messages into a server framer.
    let mut wire = Vec::new();
    for f in &frames {
        wire.extend_from_slice(&ws_masked(0x2, f));
    }
    let now = Instant::now();
    for split in 0..=wire.len() {
        let mut framer = WsFramer::open(
            MemoryStream::new(1 << 20),
            Role::Server,
            "split".into(),
            &ws_config(),
            now,
        );
        let mut got = Vec::new();
        for chunk in [&wire[..split], &wire[split..]] {
            framer
                .stream_mut()
                .unwrap()
                .input
                .extend(chunk.iter().copied());
            framer
                .poll(now, 100, &mut |f| got.push(f.to_vec()))
                .unwrap();
        }
        assert_eq!(got, frames, "websocket split at {split}");
    }
}

/// A heartbeat and a message written one byte at a time (one write, one syscall per byte)
/// into a real socket or tty reach the station.
#[test]
fn frames_dribbled_one_byte_at_a_time_are_delivered() {
    let dir = temp("dribble");
    let seen: Seen = Arc::default();
    let pty = openpty();
    let ws = WsListener::bind("127.0.0.1:0".parse().unwrap(), &ws_config()).unwrap();
    let ws_addr = ws.local_addr();
    let path = pty.path.clone();
    let config = serial_config();
    let b: StationBuilder = Station::builder()
        .id(2)
        .spool_dir(dir.join("b"))
        .configure(configure)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .listener(Box::new(ws))
        .listener(Box::new(Redial::new("serial", move || {
            Ok(Box::new(SerialLink::open(&path, &config)?) as Box<dyn ExternalLink>)
        })))
        .serve(2000, recorder(&seen));
    let b = b.build().unwrap();
    let tcp_addr = b.local_addrs()[0];
    let arrived = |text: &[u8]| {
        let seen = seen.clone();
        let text = text.to_vec();
        move || seen.lock().unwrap().contains(&text)
    };

    // TCP.
    let mut tcp = TcpStream::connect(tcp_addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    for part in [
        heartbeat(11),
        fast_frame(11, 2, 2000, 11 << 32, b"tcp-dribble"),
    ] {
        let mut framed = (part.len() as u32).to_le_bytes().to_vec();
        framed.extend(part);
        for byte in framed {
            tcp.write_all(&[byte]).unwrap();
        }
    }
    wait_until("tcp dribble", arrived(b"tcp-dribble"));

    // WebSocket: the message's frame bytes one at a time.
    let mut raw = ws_handshake(ws_addr);
    raw.set_nodelay(true).unwrap();
    let mut bytes = ws_masked(0x2, &heartbeat(12));
    bytes.extend(ws_masked(
        0x2,
        &fast_frame(12, 2, 2000, 12 << 32, b"ws-dribble"),
    ));
    for byte in bytes {
        raw.write_all(&[byte]).unwrap();
    }
    wait_until("websocket dribble", arrived(b"ws-dribble"));

    // Serial: COBS bytes one at a time into the tty.
    let mut tty = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut bytes = vec![0u8];
    for f in [
        heartbeat(13),
        fast_frame(13, 2, 2000, 13 << 32, b"serial-dribble"),
    ] {
        SerialFramer::encode(&f, &mut bytes);
    }
    for byte in bytes {
        tty.write_all(&[byte]).unwrap();
    }
    wait_until("serial dribble", arrived(b"serial-dribble"));
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The serial link over a pty pair made by an independent tool: `socat` joins two ptys
/// (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`), one `tt_node` on each.
#[test]
fn two_processes_serial_through_socat() {
    use std::io::BufRead;
    let Ok(mut socat) = std::process::Command::new("socat")
        .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED two_processes_serial_through_socat: no socat (apt-get install socat)");
        return;
    };
    let mut stderr = std::io::BufReader::new(socat.stderr.take().unwrap());
    let mut ptys = Vec::new();
    let mut line = String::new();
    while ptys.len() < 2 {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(path) = line.trim().split("PTY is ").nth(1) {
            ptys.push(path.to_owned());
        }
    }
    assert_eq!(ptys.len(), 2, "socat did not report two ptys");
    std::thread::spawn(move || for _ in stderr.lines() {});
    let dir = temp("socat");
    let spool = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let mut receiver = Node::start(&[
        "--id",
        "2",
        "--serial",
        &ptys[1],
        "--serve",
        "2000",
        "--spool",
        &spool("r"),
    ]);
    receiver.address();
    let _sender = Node::start(&[
        "--id",
        "1",
        "--serial",
        &ptys[0],
        "--spool",
        &spool("s"),
        "--send-messages",
        "2",
        "2000",
        "100",
    ]);
    receiver.wait_for("100 messages", |l| kit::got_payloads(l, 2000).len() >= 100);
    let mut got = kit::got_payloads(&receiver.seen, 2000);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 100);
    drop((_sender, receiver));
    let _ = socat.kill();
    let _ = socat.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the seeds of the transport fuzz targets (`fuzz/seeds/{cobs_framer, ws_framer,
/// shm_ring, file_batch}`), each following its target's documented input layout. Not a
/// check: run it by hand after a deliberate change.
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_transport_fuzz_seeds() {
    use tamtam_transports::shm::ring::RingWriter;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let hb = heartbeat(5);
    let data = fast_frame(5, 2, 2000, 5 << 32, b"hello, serial");

    // cobs_framer: frame_len_max 48 + 16 * 8 = 176; chunk sizes 1, 7, 64.
    let mut stream = vec![0u8];
    SerialFramer::encode(&hb, &mut stream);
    SerialFramer::encode(&data, &mut stream);
    let mut seed = vec![16, 3, 0, 6, 63];
    seed.extend_from_slice(&stream);
    write("cobs_framer", "two_frames", seed.clone());
    let mut noisy = stream.clone();
    noisy[20] ^= 0x10;
    noisy.remove(40);
    noisy.extend_from_slice(&[5, 1, 2, 0, 0xA5, 0x42, 0x42]);
    SerialFramer::encode(&vec![9u8; 300], &mut noisy);
    let mut seed = vec![16, 0];
    seed.extend_from_slice(&noisy);
    write("cobs_framer", "noise_and_oversize", seed);

    // ws_framer: frame_len_max 48 + 2 * 64 = 176.
    let mut open = vec![0, 2, 2, 4, 30];
    open.extend(ws_masked(0x2, &data));
    open.extend(ws_masked(0x9, b"ping"));
    open.extend(ws_masked(0x1, b"text"));
    open.extend(ws_masked(0x2, &[7u8; 60]));
    open.extend(ws_masked(0x8, &[0x03, 0xE8]));
    write("ws_framer", "open_messages", open);
    let mut handshake = vec![1, 2, 0];
    handshake.extend_from_slice(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    handshake.extend(ws_masked(0x2, &hb));
    handshake.extend([0x83, 0x80, 1, 2, 3, 4]);
    write("ws_framer", "handshake_then_bad_opcode", handshake);

    // shm_ring: (2) sizes and batches; (1) a ring written by the writer, then heads.
    write(
        "shm_ring",
        "write_read",
        vec![0, 0, 1, 100, 0, 152, 3, 10, 7, 200, 2, 1, 1],
    );
    let mut ring = vec![0u8; 256];
    let mut writer = RingWriter::new(256);
    for size in [48, 100, 60] {
        assert!(writer.write(&mut ring[..], &vec![1u8; size], || 0));
    }
    let mut seed = vec![1];
    seed.extend_from_slice(&ring);
    seed.extend_from_slice(&56u16.to_le_bytes());
    seed.extend_from_slice(&112u16.to_le_bytes());
    seed.extend_from_slice(&1000u16.to_le_bytes());
    write("shm_ring", "ring_then_heads", seed);

    // file_batch: (1) a valid batch file; (2) frames to encode.
    let mut batch = BatchWriter::new();
    batch.push(&hb);
    batch.push(&data);
    let mut seed = vec![1];
    seed.extend_from_slice(batch.finish());
    write("file_batch", "valid_batch", seed);
    write(
        "file_batch",
        "frames",
        [vec![0, 0], vec![7u8; 48], vec![20], vec![8u8; 68]].concat(),
    );
}
