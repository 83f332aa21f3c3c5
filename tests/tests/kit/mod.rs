//! Helpers shared by the transport tests (`conformance`, `serial_line`, `interop`): temp
//! directories, bounded condition waits, raw frames, pty pairs with an emulated line between
//! them (seeded noise, pacing at a baud rate, blackouts), a TCP proxy that can cut its
//! connections, and `tt_node` processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tamtam_engine::core::wire::frame::{Flags, Header, Lane, PacketType, encode_to_vec};

/// The deadline of every wait in these tests (generous: the machine is shared).
pub const WAIT: Duration = Duration::from_secs(30);

/// A fresh directory under the system temp directory.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tamtam-tr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Polls `condition` every 2 ms until it holds; panics naming `what` after [`WAIT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A heartbeat from station `sender`: what a neighbour sends first to be known on a link.
pub fn heartbeat(sender: u32) -> Vec<u8> {
    let header = Header {
        sender_id: sender,
        request_id: 7 << 32,
        ..Header::new(Lane::Fast, PacketType::Heartbeat)
    };
    encode_to_vec(&header, &[]).expect("valid heartbeat")
}

/// A fast-lane DATA frame, fire-and-forget (no ACK), from `sender` to `port` on `recipient`.
pub fn fast_frame(
    sender: u32,
    recipient: u32,
    port: u16,
    request_id: u64,
    payload: &[u8],
) -> Vec<u8> {
    let header = Header {
        sender_id: sender,
        recipient_id: recipient,
        recipient_port: port,
        sender_port: 40_000,
        request_id,
        hop_limit: 4,
        flags: Flags::NONE,
        ..Header::new(Lane::Fast, PacketType::Data)
    };
    encode_to_vec(&header, payload).expect("valid frame")
}

/// One side of a pseudo-terminal pair: the master stays here, the slave's path is a tty
/// that `SerialLink::open` can open.
pub struct Pty {
    pub master: OwnedFd,
    /// Kept open so that the master never sees EIO while the link reopens the slave.
    pub slave: OwnedFd,
    pub path: String,
}

/// Opens a pty pair.
pub fn openpty() -> Pty {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: two writable ints; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds from openpty, owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its length.
    let rc = unsafe { libc::ttyname_r(slave.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0, "ttyname_r");
    // SAFETY: ttyname_r wrote a NUL-terminated string.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // Raw mode on the master side too (no echo, no translation) until the link configures
    // the slave; the line discipline sits on the slave.
    // SAFETY: termios is plain old data; tcgetattr/tcsetattr on our own fd.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut t);
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
    }
    Pty {
        master,
        slave,
        path,
    }
}

/// How the emulated line treats bytes (each direction draws from its own seeded PRNG).
#[derive(Debug, Clone, Default)]
pub struct LineConfig {
    pub seed: u64,
    /// Bytes whose one random bit is flipped, in parts per million.
    pub flip_ppm: u32,
    /// Bytes silently lost, in parts per million.
    pub drop_ppm: u32,
    /// Bytes per second carried (None: as fast as the ptys go).
    pub bytes_per_sec: Option<f64>,
}

/// What the line did.
#[derive(Debug, Default)]
pub struct LineStats {
    pub forwarded: AtomicU64,
    pub flipped: AtomicU64,
    pub dropped: AtomicU64,
}

/// An emulated line between the masters of two pty pairs, one thread per direction.
pub struct Line {
    stop: Arc<AtomicBool>,
    /// While set, every byte is lost (a pulled cable).
    pub blackout: Arc<AtomicBool>,
    pub stats: Arc<LineStats>,
    threads: Vec<JoinHandle<()>>,
}

impl Line {
    pub fn start(a: &Pty, b: &Pty, config: &LineConfig) -> Line {
        let stop = Arc::new(AtomicBool::new(false));
        let blackout = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LineStats::default());
        let mut threads = Vec::new();
        for (k, (from, to)) in [(a, b), (b, a)].into_iter().enumerate() {
            let from = from.master.try_clone().expect("dup");
            let to = to.master.try_clone().expect("dup");
            let (stop, blackout, stats) = (stop.clone(), blackout.clone(), stats.clone());
            let mut config = config.clone();
            config.seed = config.seed.wrapping_add(k as u64 * 0x9E37_79B9);
            threads.push(std::thread::spawn(move || {
                forward(from, to, &config, &stop, &blackout, &stats)
            }));
        }
        eprintln!(
            "line: seed {} flip {} ppm drop {} ppm rate {:?} B/s",
            config.seed, config.flip_ppm, config.drop_ppm, config.bytes_per_sec
        );
        Line {
            stop,
            blackout,
            stats,
            threads,
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn forward(
    from: OwnedFd,
    to: OwnedFd,
    config: &LineConfig,
    stop: &AtomicBool,
    blackout: &AtomicBool,
    stats: &LineStats,
) {
    let mut rng = config.seed;
    let mut from = std::fs::File::from(from);
    let mut to = std::fs::File::from(to);
    let mut buffer = [0u8; 4096];
    // When the line finishes sending what it took so far (each byte takes 1/rate).
    let mut line_free = Instant::now();
    // Pacing reads small pieces so that the line's timing is smooth.
    let piece = match config.bytes_per_sec {
        Some(rate) => ((rate / 200.0) as usize).clamp(1, buffer.len()),
        None => buffer.len(),
    };
    while !stop.load(Ordering::Relaxed) {
        let mut poll = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut poll, 1, 20) };
        if rc <= 0 || poll.revents & libc::POLLIN == 0 {
            if poll.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            continue;
        }
        let n = match from.read(&mut buffer[..piece]) {
            Ok(0) | Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Ok(n) => n,
        };
        if let Some(rate) = config.bytes_per_sec {
            // Bytes leave at the line rate: this piece starts when the line is free and
            // arrives after its last bit. An idle line saves no credit, except 2 ms so that
            // this thread's own wake-up jitter does not slow the line down.
            let now = Instant::now();
            let start = line_free.max(now - Duration::from_millis(2));
            let due = start + Duration::from_secs_f64(n as f64 / rate);
            line_free = due;
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if blackout.load(Ordering::Relaxed) {
            stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        let mut out = Vec::with_capacity(n);
        for &byte in &buffer[..n] {
            let draw = (splitmix(&mut rng) % 1_000_000) as u32;
            if draw < config.drop_ppm {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if draw < config.drop_ppm + config.flip_ppm {
                stats.flipped.fetch_add(1, Ordering::Relaxed);
                out.push(byte ^ (1 << (splitmix(&mut rng) % 8)));
                continue;
            }
            out.push(byte);
        }
        if to.write_all(&out).is_err() {
            continue;
        }
        stats
            .forwarded
            .fetch_add(out.len() as u64, Ordering::Relaxed);
    }
}

/// A TCP proxy in front of `target` whose live connections can be cut.
pub struct CutProxy {
    pub addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (live.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                client.set_nonblocking(false).expect("blocking");
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                // Registered before any byte flows, so that a cut never misses it.
                {
                    let mut live = l.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy { addr, live, stop }
    }

    /// Closes every connection through the proxy (new ones still work).
    pub fn cut(&self) {
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// A `tt_node` process whose stdout lines are collected.
pub struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Node {
    pub fn start(args: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tt_node"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tt_node");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Collects lines until `done` holds over everything seen so far; panics after [`WAIT`].
    pub fn wait_for(&mut self, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if done(&self.seen) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; last lines: {:?}",
                self.seen.iter().rev().take(5).collect::<Vec<_>>()
            );
            if let Ok(line) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(line);
            }
        }
    }

    /// The address in the `READY` line.
    pub fn address(&mut self) -> String {
        self.wait_for("READY", |s| s.iter().any(|l| l.starts_with("READY")));
        let line = self
            .seen
            .iter()
            .find(|l| l.starts_with("READY"))
            .expect("ready");
        line.split_whitespace().nth(2).expect("address").to_owned()
    }

    /// Asks for the counters; returns the value of `name` (`delivered`, `duplicates`,
    /// `peers_dead`, `malformed`).
    pub fn stat(&mut self, name: &str) -> u64 {
        writeln!(self.stdin, "stats").expect("stdin");
        self.stdin.flush().expect("flush");
        let before = self.seen.iter().filter(|l| l.starts_with("STATS")).count();
        self.wait_for("STATS", |s| {
            s.iter().filter(|l| l.starts_with("STATS")).count() > before
        });
        let line = self
            .seen
            .iter()
            .rev()
            .find(|l| l.starts_with("STATS"))
            .expect("stats");
        let prefix = format!("{name}=");
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .expect("counter")
    }

    /// Asks for the counters; returns `(delivered, duplicates)`.
    pub fn counters(&mut self) -> (u64, u64) {
        writeln!(self.stdin, "stats").expect("stdin");
        self.stdin.flush().expect("flush");
        let before = self.seen.iter().filter(|l| l.starts_with("STATS")).count();
        self.wait_for("STATS", |s| {
            s.iter().filter(|l| l.starts_with("STATS")).count() > before
        });
        let line = self
            .seen
            .iter()
            .rev()
            .find(|l| l.starts_with("STATS"))
            .expect("stats");
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .expect("counter")
        };
        (field("delivered="), field("duplicates="))
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The payloads of `GOT <port> …` lines.
pub fn got_payloads(lines: &[String], port: u16) -> Vec<String> {
    let prefix = format!("GOT {port} ");
    lines
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_owned())
        .collect()
}
