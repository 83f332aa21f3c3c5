//! Goal: `img_swap` really swaps disk images between two processes, both directions at
//! once, survives `kill -9` of either side by resuming, checks SHA-256 at the end, and keeps
//! each side's memory small whatever the image size.
//!
//! Method: every test runs the real `img_swap` binary as two processes on loopback, on image
//! files made with `qemu-img` (raw, and qcow2 written with `qemu-io`), filled with
//! deterministic pseudo-random bytes. The tests follow the processes' output lines and the
//! engine's spool files (never fixed sleeps), kill with SIGKILL, restart on the same spool,
//! and reap each process with `wait4` to read its peak resident set size (`ru_maxrss`, the
//! kernel's high-water mark of the process, the same figure as `VmHWM`).
//!
//! The 4 GiB run is `#[ignore]`d (about 16 GB of disk and a release build); run it with
//! `cargo nextest run -p tamtam-img-swap --release --run-ignored only swaps_4_gib_images --no-capture`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;
const SEGMENT_LEN: u64 = 64 * 1024;
/// The bound the example promises: each side's resident memory stays under this.
const RSS_MAX_KIB: u64 = 64 * 1024;

/// One `img_swap` process and what it printed (stdout and stderr, in arrival order).
struct Side {
    name: &'static str,
    pid: libc::pid_t,
    lines: Receiver<String>,
    seen: Vec<String>,
    reaped: Option<(ExitStatus, u64)>,
}

impl Side {
    fn start(name: &'static str, args: &[String]) -> Side {
        Side::start_with(name, args, &[])
    }

    /// Starts with extra environment variables (e.g. `TAMTAM_IO=poll`).
    fn start_with(name: &'static str, args: &[String], envs: &[(&str, &str)]) -> Side {
        let mut child = Command::new(env!("CARGO_BIN_EXE_img_swap"))
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn img_swap");
        let (tx, rx) = channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if out_tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(format!("stderr: {line}")).is_err() {
                    break;
                }
            }
        });
        // The child is reaped with wait4 (for its rusage), not through `Child`.
        let pid = child.id() as libc::pid_t;
        std::mem::forget(child);
        Side {
            name,
            pid,
            lines: rx,
            seen: Vec::new(),
            reaped: None,
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Reaps the process if it exited: `(status, peak RSS in KiB)`.
    fn try_reap(&mut self) -> Option<(ExitStatus, u64)> {
        if self.reaped.is_none() {
            let mut status = 0;
            // SAFETY: rusage is plain data; wait4 fills it for our own child.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: plain syscall on our own child's pid, with valid out-pointers.
            let pid = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
            if pid == self.pid {
                use std::os::unix::process::ExitStatusExt;
                self.reaped = Some((ExitStatus::from_raw(status), usage.ru_maxrss as u64));
            }
        }
        self.reaped
    }

    fn tail(&self) -> Vec<&String> {
        self.seen.iter().rev().take(8).rev().collect()
    }

    /// Waits (bounded) until `done` holds over the lines seen so far.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain();
            if done(&self.seen) {
                return;
            }
            if let Some((status, _)) = self.try_reap() {
                // The last lines may still be in the pipe.
                std::thread::sleep(Duration::from_millis(50));
                self.drain();
                if done(&self.seen) {
                    return;
                }
                panic!(
                    "{} exited ({status}) while waiting for {what}; last lines: {:#?}",
                    self.name,
                    self.tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}; last lines: {:#?}",
                self.name,
                self.tail()
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }

    /// Waits (bounded) for the process to exit; returns its status and peak RSS (KiB), and
    /// collects every line it printed.
    fn finish(&mut self) -> (ExitStatus, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain();
            if let Some(reaped) = self.try_reap() {
                // Both pipes close with the process: collect to the end.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return reaped;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish; last lines: {:#?}",
                self.name,
                self.tail()
            );
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }

    fn kill9(&mut self) {
        // SAFETY: plain syscall on our own, not yet reaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        self.finish();
    }

    /// The `key=value` field of the `summary` line.
    fn summary(&self, key: &str) -> u64 {
        let line = self
            .seen
            .iter()
            .find(|l| l.starts_with("summary "))
            .unwrap_or_else(|| panic!("{}: no summary; lines: {:#?}", self.name, self.tail()));
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no {key} in {line}", self.name))
    }

    fn printed(&self, prefix: &str) -> bool {
        self.seen.iter().any(|l| l.starts_with(prefix))
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if self.try_reap().is_none() {
            // SAFETY: our own child, not reaped, so the pid is still ours.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: reaps our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// A scratch directory, removed when dropped (images are large).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("tamtam-img-swap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_tool(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install qemu-utils (.ci/run does)")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A raw image made by `qemu-img create`, then filled with xorshift bytes from `seed`
/// (written 1 MiB at a time: making a 4 GiB image needs no 4 GiB of memory).
fn raw_image(path: &Path, len: u64, seed: u64) {
    run_tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "raw",
            path.to_str().unwrap(),
            &len.to_string(),
        ],
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open image");
    let mut state = seed | 1;
    let mut chunk = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let n = left.min(MIB) as usize;
        file.write_all(&chunk[..n]).expect("fill image");
        left -= n as u64;
    }
}

/// A qcow2 image of 1 GiB virtual size with data written by `qemu-io` at a few offsets; the
/// file itself (what is carried) holds only the written clusters and the metadata.
fn qcow2_image(path: &Path) {
    let p = path.to_str().unwrap();
    run_tool("qemu-img", &["create", "-q", "-f", "qcow2", p, "1G"]);
    run_tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "write -q -P 0xab 0 8M",
            "-c",
            "write -q -P 0x5c 300M 12M",
            "-c",
            "write -q -P 0x01 1000M 4M",
            p,
        ],
    );
}

fn sha256(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("read");
    format!("{:x}", hasher.finalize())
}

fn args(id: u32, link: (&str, &str), send: &Path, receive: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--id",
        &id.to_string(),
        link.0,
        link.1,
        "--send",
        send.to_str().unwrap(),
        "--receive-dir",
        receive.to_str().unwrap(),
        "--quiet",
        "--interval-ms",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The address a listening side printed.
fn listening_on(side: &mut Side) -> String {
    side.wait_for("the listen address", |lines| {
        lines.iter().any(|l| l.contains(" listening on "))
    });
    let line = side
        .seen
        .iter()
        .find(|l| l.contains(" listening on "))
        .unwrap();
    line.split(" listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address")
        .to_owned()
}

/// Starts a side that must listen on an address a killed process held. The kernel may keep
/// the old listening socket a moment after `kill -9` (an io_uring ring is torn down
/// asynchronously), so a start that fails to bind is retried, a bounded number of times.
fn restart_listening(name: &'static str, args: &[String]) -> Side {
    for _ in 0..100 {
        let mut side = Side::start(name, args);
        let deadline = Instant::now() + WAIT;
        loop {
            side.drain();
            if side.seen.iter().any(|l| l.contains(" listening on ")) {
                return side;
            }
            if side.try_reap().is_some() {
                side.drain();
                assert!(
                    side.seen.iter().any(|l| l.contains("cannot listen")),
                    "{name} failed to restart: {:#?}",
                    side.tail()
                );
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("could not restart {name}");
}

/// A free loopback address below the kernel's ephemeral port range, for a listener that must
/// be restarted on the same address: no outgoing connection can take it meanwhile.
fn fixed_address() -> String {
    let start = 24_000 + (std::process::id() % 4_000) * 2;
    for port in start..start + 2_000 {
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port below the ephemeral range");
}

/// Segments the spool of `dir` has logged for the object named `name` (12-byte records), or
/// `None` once the object is finished (its log is removed) or not yet opened.
fn logged_segments(dir: &Path, name: &str) -> Option<u64> {
    let suffix = format!("-{name}.log");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len() / 12)
}

/// Waits (bounded, polling every millisecond) until the segments the two spools logged of
/// their inbound images satisfy `enough`, and fails if either image finished first. Returns
/// the counts logged when the condition held.
fn wait_for_spools(spools: [(&Path, &str); 2], enough: impl Fn([u64; 2]) -> bool) -> [u64; 2] {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut logged = [0u64; 2];
        for (i, (dir, name)) in spools.into_iter().enumerate() {
            let finished = std::fs::read_dir(dir).is_ok_and(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    let file = e.file_name().to_string_lossy().into_owned();
                    file.ends_with(&format!("-{name}"))
                })
            });
            assert!(!finished, "{name} finished before the kill point");
            logged[i] = logged_segments(dir, name).unwrap_or(0);
        }
        if enough(logged) {
            return logged;
        }
        assert!(
            Instant::now() < deadline,
            "the spools never logged enough segments (now {logged:?})"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn swaps_a_raw_and_a_qcow2_image_and_verifies_both() {
    let dir = Scratch::new("formats");
    let raw = dir.path("alpha.img");
    let qcow2 = dir.path("beta.qcow2");
    raw_image(&raw, 48 * MIB, 1);
    qcow2_image(&qcow2);
    let (out_a, out_b) = (dir.path("out-a"), dir.path("out-b"));
    let mut a = Side::start(
        "station 1",
        &args(1, ("--listen", "127.0.0.1:0"), &raw, &out_a, &[]),
    );
    let address = listening_on(&mut a);
    // Station 2 runs the portable epoll backend: the two backends interoperate.
    let mut b = Side::start_with(
        "station 2",
        &args(2, ("--connect", &address), &qcow2, &out_b, &[]),
        &[("TAMTAM_IO", "poll")],
    );
    let (status_a, _) = a.finish();
    let (status_b, _) = b.finish();
    assert!(status_a.success(), "station 1: {status_a}: {:#?}", a.seen);
    assert!(status_b.success(), "station 2: {status_b}: {:#?}", b.seen);
    assert!(
        b.seen
            .iter()
            .any(|l| l.contains("connecting to") && l.contains("(epoll)")),
        "{:#?}",
        b.seen
    );
    for side in [&a, &b] {
        assert!(
            side.printed("OK received "),
            "{}: {:#?}",
            side.name,
            side.seen
        );
        assert!(
            side.printed("OK station "),
            "{}: {:#?}",
            side.name,
            side.seen
        );
        assert!(
            side.printed("progress send "),
            "{}: no progress lines",
            side.name
        );
    }
    // Byte for byte, and as images: qemu-img sees the same guest content.
    assert_eq!(sha256(&out_b.join("alpha.img")), sha256(&raw));
    assert_eq!(sha256(&out_a.join("beta.qcow2")), sha256(&qcow2));
    let received = out_a.join("beta.qcow2");
    run_tool("qemu-img", &["check", "-q", received.to_str().unwrap()]);
    run_tool(
        "qemu-img",
        &[
            "compare",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            qcow2.to_str().unwrap(),
            received.to_str().unwrap(),
        ],
    );
}

/// Swaps two raw images of `len` bytes and checks that both sides verified them and that
/// each side's peak RSS stayed under [`RSS_MAX_KIB`]. Prints the figures.
fn swap_within_memory_bound(len: u64) {
    let dir = Scratch::new(&format!("rss-{}m", len / MIB));
    let (image_a, image_b) = (dir.path("a.img"), dir.path("b.img"));
    raw_image(&image_a, len, 11);
    raw_image(&image_b, len, 12);
    let (out_a, out_b) = (dir.path("out-a"), dir.path("out-b"));
    let started = Instant::now();
    let mut a = Side::start(
        "station 1",
        &args(1, ("--listen", "127.0.0.1:0"), &image_a, &out_a, &[]),
    );
    let address = listening_on(&mut a);
    let mut b = Side::start(
        "station 2",
        &args(2, ("--connect", &address), &image_b, &out_b, &[]),
    );
    let (status_a, rss_a) = a.finish();
    let (status_b, rss_b) = b.finish();
    let elapsed = started.elapsed();
    assert!(status_a.success(), "station 1: {status_a}: {:#?}", a.tail());
    assert!(status_b.success(), "station 2: {status_b}: {:#?}", b.tail());
    eprintln!(
        "swap of 2 x {} MiB: {:.1}s wall ({:.1}s / {:.1}s of transfer, {:.1} MB/s both ways), peak RSS station 1 {} KiB, station 2 {} KiB",
        len / MIB,
        elapsed.as_secs_f64(),
        a.summary("transfer_ms") as f64 / 1000.0,
        b.summary("transfer_ms") as f64 / 1000.0,
        (2 * len) as f64 / (a.summary("transfer_ms").max(1) as f64 / 1000.0) / 1e6,
        rss_a,
        rss_b
    );
    for (side, rss) in [(&a, rss_a), (&b, rss_b)] {
        assert!(
            side.printed("OK received "),
            "{}: {:#?}",
            side.name,
            side.tail()
        );
        // The kernel's figure at exit (rusage) and the program's own VmHWM reading near the
        // end: both under the bound (they differ by the kernel's per-CPU counter slack).
        let reported = side.summary("peak_rss_kib");
        for (what, kib) in [("ru_maxrss", rss), ("VmHWM", reported)] {
            assert!(
                kib < RSS_MAX_KIB,
                "{}: peak RSS ({what}) {kib} KiB, over {RSS_MAX_KIB} KiB",
                side.name
            );
        }
    }
    assert_eq!(sha256(&out_b.join("a.img")), sha256(&image_a));
    assert_eq!(sha256(&out_a.join("b.img")), sha256(&image_b));
}

#[test]
fn swaps_256_mib_images_with_each_side_under_64_mib_of_memory() {
    swap_within_memory_bound(256 * MIB);
}

#[test]
#[ignore = "4 GiB images: ~16 GB of disk, minutes; run with --release (see the module doc)"]
fn swaps_4_gib_images_with_each_side_under_64_mib_of_memory() {
    swap_within_memory_bound(4096 * MIB);
}

#[test]
fn either_side_killed_mid_swap_resumes_where_it_stopped() {
    let dir = Scratch::new("kill");
    let len = 96 * MIB;
    let segments = len.div_ceil(SEGMENT_LEN);
    let (image_a, image_b) = (dir.path("a.img"), dir.path("b.img"));
    raw_image(&image_a, len, 21);
    raw_image(&image_b, len, 22);
    let (out_a, out_b) = (dir.path("out-a"), dir.path("out-b"));
    // Each side's spool, with the image it receives there.
    let spools = [
        (out_a.join(".spool"), "b.img"),
        (out_b.join(".spool"), "a.img"),
    ];
    let spools = [
        (spools[0].0.as_path(), spools[0].1),
        (spools[1].0.as_path(), spools[1].1),
    ];
    let address = fixed_address();
    let args_a = args(1, ("--listen", &address), &image_a, &out_a, &[]);
    let args_b = args(2, ("--connect", &address), &image_b, &out_b, &[]);
    let mut a = Side::start("station 1", &args_a);
    listening_on(&mut a);
    let mut b = Side::start("station 2", &args_b);

    // Kill the listening side once both images are partly stored (a tenth at least; the
    // two directions rarely go at the same pace), and start it again.
    let tenth = segments / 10;
    let first = wait_for_spools(spools, |l| l[0] >= tenth && l[1] >= tenth);
    a.kill9();
    assert!(!a.printed("summary "), "station 1 finished before the kill");
    // Station 2's transfer gives up while station 1 is down (no progress for 20 RTOs, about
    // 4 s); it is offered again once station 1 is back.
    b.wait_for("station 2 to give up its transfer", |lines| {
        lines
            .iter()
            .any(|l| l.contains("offering it again when station 1 is back"))
    });
    let mut a = restart_listening("station 1 (restarted)", &args_a);

    // Kill the connecting side once the swap moved on by a tenth of an image after the
    // restart, and start it again.
    let second = wait_for_spools(spools, |l| l[0] + l[1] >= first[0] + first[1] + tenth);
    b.kill9();
    assert!(!b.printed("summary "), "station 2 finished before the kill");
    let mut b = Side::start("station 2 (restarted)", &args_b);

    let (status_a, _) = a.finish();
    let (status_b, _) = b.finish();
    assert!(status_a.success(), "station 1: {status_a}: {:#?}", a.seen);
    assert!(status_b.success(), "station 2: {status_b}: {:#?}", b.seen);
    assert_eq!(sha256(&out_b.join("a.img")), sha256(&image_a));
    assert_eq!(sha256(&out_a.join("b.img")), sha256(&image_b));
    // Resumed, not restarted: each restarted process stored only what its spool missed at
    // its kill, and sent only what the peer's spool missed, plus a few windows of segments
    // in flight at a kill (32 segments each).
    let slack = 4 * 32;
    for (side, kill, inbound, outbound) in [(&a, first, 0, 1), (&b, second, 1, 0)] {
        let stored = side.summary("segments_stored");
        let sent = side.summary("segments_sent");
        eprintln!(
            "{}: at its kill its spool held {} of {segments} segments and the peer's {}; after the restart it stored {stored} and sent {sent}",
            side.name, kill[inbound], kill[outbound]
        );
        assert!(stored > 0 && sent > 0, "{}: moved nothing", side.name);
        assert!(
            stored <= segments - kill[inbound],
            "{}: stored {stored} segments after its restart, its spool had {} of {segments}",
            side.name,
            kill[inbound]
        );
        assert!(
            sent <= segments - kill[outbound] + slack,
            "{}: sent {sent} segments after its restart, the peer's spool had {} of {segments}",
            side.name,
            kill[outbound]
        );
    }
}

#[test]
fn a_side_killed_after_verifying_its_image_gets_it_again_without_a_byte_resent() {
    // Station 1 sends a large image and receives a small one. It is killed once it has
    // verified the small one and station 2 has its verdict, while its own image is still on
    // the way. The restarted station 1 knows nothing of what it received: seeing it ask for the
    // manifest again, station 2 offers its image again, and station 1's spool, which kept the
    // finished image, completes it at once.
    let dir = Scratch::new("after-verify");
    let (image_a, image_b) = (dir.path("a.img"), dir.path("b.img"));
    raw_image(&image_a, 96 * MIB, 41);
    raw_image(&image_b, MIB, 42);
    let (out_a, out_b) = (dir.path("out-a"), dir.path("out-b"));
    let address = fixed_address();
    let args_a = args(1, ("--listen", &address), &image_a, &out_a, &[]);
    let mut a = Side::start("station 1", &args_a);
    listening_on(&mut a);
    let mut b = Side::start(
        "station 2",
        &args(2, ("--connect", &address), &image_b, &out_b, &[]),
    );
    // Station 2 has station 1's verdict: station 1 had verified b.img and said so.
    b.wait_for("station 1's verdict", |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("OK station 1 checked b.img"))
    });
    a.kill9();
    assert!(!a.printed("summary "), "station 1 finished before the kill");
    let mut a = restart_listening("station 1 (restarted)", &args_a);
    let (status_a, _) = a.finish();
    let (status_b, _) = b.finish();
    assert!(status_a.success(), "station 1: {status_a}: {:#?}", a.seen);
    assert!(status_b.success(), "station 2: {status_b}: {:#?}", b.seen);
    assert!(a.printed("OK received b.img"), "{:#?}", a.seen);
    assert!(
        b.seen
            .iter()
            .any(|l| l.contains("asked again (it restarted)")),
        "{:#?}",
        b.seen
    );
    assert_eq!(a.summary("segments_stored"), 0, "{:#?}", a.seen);
    assert_eq!(sha256(&out_a.join("b.img")), sha256(&image_b));
    assert_eq!(sha256(&out_b.join("a.img")), sha256(&image_a));
}

#[test]
fn a_wrong_announced_sha256_is_reported_as_a_mismatch_by_both_sides() {
    let dir = Scratch::new("mismatch");
    let (image_a, image_b) = (dir.path("a.img"), dir.path("b.img"));
    raw_image(&image_a, 3 * MIB + 123, 31);
    raw_image(&image_b, 2 * MIB, 32);
    let (out_a, out_b) = (dir.path("out-a"), dir.path("out-b"));
    let mut a = Side::start(
        "station 1",
        &args(1, ("--listen", "127.0.0.1:0"), &image_a, &out_a, &[]),
    );
    let address = listening_on(&mut a);
    // Station 2 announces a checksum its image does not have.
    let wrong = "00".repeat(32);
    let mut b = Side::start(
        "station 2",
        &args(
            2,
            ("--connect", &address),
            &image_b,
            &out_b,
            &["--sha256", &wrong],
        ),
    );
    let (status_a, _) = a.finish();
    let (status_b, _) = b.finish();
    assert_eq!(status_a.code(), Some(1), "station 1: {:#?}", a.seen);
    assert_eq!(status_b.code(), Some(1), "station 2: {:#?}", b.seen);
    assert!(a.printed("MISMATCH received b.img"), "{:#?}", a.seen);
    assert!(
        b.printed("MISMATCH station 1 checked b.img"),
        "{:#?}",
        b.seen
    );
    // The good direction still verified, and the bad image was not put in place.
    assert!(b.printed("OK received a.img"), "{:#?}", b.seen);
    assert!(a.printed("OK station 2 checked a.img"), "{:#?}", a.seen);
    assert!(!out_a.join("b.img").exists());
}

#[test]
fn bad_arguments_fail_with_one_clear_line() {
    let dir = Scratch::new("args");
    let missing = dir.path("missing.img");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            args(
                1,
                ("--listen", "127.0.0.1:0"),
                &missing,
                &dir.path("o"),
                &[],
            ),
            "cannot read",
        ),
        (
            vec![
                "--id".into(),
                "1".into(),
                "--send".into(),
                missing.to_str().unwrap().into(),
                "--receive-dir".into(),
                "o".into(),
            ],
            "give --listen",
        ),
        (
            args(
                1,
                ("--listen", "127.0.0.1:0"),
                &missing,
                &dir.path("o"),
                &["--sha256", "xyz"],
            ),
            "not 64 hex digits",
        ),
        (
            args(
                0,
                ("--listen", "127.0.0.1:0"),
                &missing,
                &dir.path("o"),
                &[],
            ),
            "must not be 0",
        ),
    ];
    for (args, expected) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_img_swap"))
            .args(&args)
            .output()
            .expect("run img_swap");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("img_swap: error: "), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
