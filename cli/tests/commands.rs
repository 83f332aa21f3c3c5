//! Goal: the `tamtam` command works as a user runs it, process by process.
//! Method: run the real binary (`CARGO_BIN_EXE_tamtam`). Three `tamtam station` processes
//! form a line A–B–C on loopback (A from a TOML file with a listen port picked by the kernel,
//! B and C from flags); the tests wait on the lines they print (never on fixed sleeps, every
//! wait bounded) and check `send` → `listen`, a request to an echo port, a file over the bulk
//! lane, `stats`, a `trace` across two forwarding hops, a clean SIGTERM shutdown, and that
//! mistakes (bad flags, bad files, unreachable peers) give one line and a non-zero exit.
//! Only processes started here are stopped, through their child handles.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const TAMTAM: &str = env!("CARGO_BIN_EXE_tamtam");

/// A long-running `tamtam` process whose output lines are collected as they come.
struct Running {
    child: Child,
    lines: Receiver<(bool, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(TAMTAM)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tamtam");
        let (tx, lines) = channel();
        for (is_err, stream) in [
            (
                false,
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            ),
            (true, Box::new(child.stderr.take().expect("stderr"))),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn take(&mut self, timeout: Duration) -> bool {
        match self.lines.recv_timeout(timeout) {
            Ok((true, line)) => self.stderr.push(line),
            Ok((false, line)) => self.stdout.push(line),
            Err(_) => return false,
        }
        true
    }

    /// Waits until a line of standard output (or error) satisfies `done`; returns it.
    fn wait_line(&mut self, what: &str, on_stderr: bool, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = if on_stderr {
                &self.stderr
            } else {
                &self.stdout
            };
            if let Some(line) = lines.iter().find(|l| done(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; stdout {:?}, stderr {:?}",
                self.stdout,
                self.stderr
            );
            if !self.take(left.min(Duration::from_millis(100))) {
                if let Ok(Some(status)) = self.child.try_wait() {
                    while self.take(Duration::from_millis(50)) {}
                    let lines = if on_stderr {
                        &self.stderr
                    } else {
                        &self.stdout
                    };
                    if let Some(line) = lines.iter().find(|l| done(l)) {
                        return line.clone();
                    }
                    panic!(
                        "tamtam exited ({status}) while waiting for {what}; stdout {:?}, stderr {:?}",
                        self.stdout, self.stderr
                    );
                }
            }
        }
    }

    /// The `tcp ADDR` of a station's ready line.
    fn ready_address(&mut self) -> String {
        let line = self.wait_line("the ready line", false, |l| l.contains(" ready: "));
        line.split("tcp ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ',']).next())
            .unwrap_or_else(|| panic!("no tcp address in {line:?}"))
            .to_owned()
    }

    /// Waits for the process to exit (bounded) and drains its output.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while self.take(Duration::from_millis(50)) {}
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tamtam did not exit; stdout {:?}, stderr {:?}",
                self.stdout,
                self.stderr
            );
            self.take(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a short `tamtam` command to completion (bounded by its own --timeout; a watchdog
/// kills it if it hangs anyway).
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(TAMTAM)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tamtam");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    let pid = child.id();
    let (done_tx, done_rx) = channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(WAIT).is_err() {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet
            // (wait_with_output below has not returned): it cannot name another process.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("wait");
    let _ = done_tx.send(());
    watchdog.join().expect("watchdog");
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tamtam-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn one_error_line(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, stderr {stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.starts_with("tamtam: "), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr:?}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

#[test]
fn a_line_of_three_stations_serves_every_command() {
    let dir = temp("line");
    let config = dir.join("a.toml");
    write(
        &config,
        &format!(
            "id = 1\nlisten_tcp = [\"127.0.0.1:0\"]\necho = [2001]\nsink = [2002]\nspool_dir = {:?}\n",
            dir.join("spool-a")
        ),
    );
    let mut a = Running::start(&["station", "--config", config.to_str().unwrap()]);
    let a_addr = a.ready_address();
    let spool_b = dir.join("spool-b");
    let mut b = Running::start(&[
        "station",
        "2",
        "--listen-tcp",
        "127.0.0.1:0",
        "--connect-tcp",
        &a_addr,
        "--spool-dir",
        spool_b.to_str().unwrap(),
    ]);
    let b_addr = b.ready_address();
    let spool_c = dir.join("spool-c");
    let mut c = Running::start(&[
        "station",
        "--id",
        "3",
        "--cores",
        "2",
        "--connect-tcp",
        &b_addr,
        "--echo",
        "2001",
        "--sink",
        "2002",
        "--spool-dir",
        spool_c.to_str().unwrap(),
    ]);
    c.wait_line("C ready", false, |l| l.starts_with("station 3 ready: "));

    // send -> listen: a listener joined through C, a sender through A, two hops apart.
    let mut listen = Running::start(&[
        "listen",
        "--connect",
        &b_addr,
        "--id",
        "50",
        "--port",
        "2100",
        "--json",
        "--count",
        "1",
    ]);
    listen.wait_line("listen ready", true, |l| {
        l.starts_with("listening as station 50 on port 2100")
    });
    let sent = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "50",
            "--port",
            "2100",
            "hello listener",
        ],
        None,
    );
    assert!(sent.status.success(), "send: {}", text(&sent.stderr));
    assert!(
        text(&sent.stdout).starts_with("delivered to station 50 port 2100"),
        "{}",
        text(&sent.stdout)
    );
    let line = listen.wait_line("the message", false, |l| l.contains("hello listener"));
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(json["text"], "hello listener");
    assert_eq!(json["port"], 2100);
    assert_eq!(json["kind"], "message");
    assert!(listen.wait_exit().success(), "listen exits after --count 1");

    // A message from standard input to A's sink, and a binary one shown as hex.
    let sent = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "1",
            "--port",
            "2002",
            "-q",
        ],
        Some(b"from stdin\n"),
    );
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(sent.stdout.is_empty(), "--quiet prints nothing");
    a.wait_line("the sink line", false, |l| {
        l.starts_with("port 2002 from ") && l.ends_with(": from stdin")
    });
    let binary = dir.join("binary.bin");
    std::fs::write(&binary, [0u8, 1, 0xfe]).expect("write");
    let sent = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "3",
            "--port",
            "2002",
            "--file",
            binary.to_str().unwrap(),
        ],
        None,
    );
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    c.wait_line("the hex line", false, |l| l.ends_with(": hex 0001fe"));

    // A request to C's echo port, through A and B; C runs on two cores and port 2001 is on
    // the second (2001 % 2), which advertises itself as station 3 | 1 << 24.
    let reply = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "3",
            "--port",
            "2001",
            "--request",
            "ping 42",
        ],
        None,
    );
    assert!(reply.status.success(), "{}", text(&reply.stderr));
    assert_eq!(text(&reply.stdout), "ping 42\n");

    // A file over the bulk lane to C's sink: C prints where it is; the bytes match.
    let source = dir.join("object.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&source, &bytes).expect("write object");
    let sent = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "3",
            "--port",
            "2002",
            "--bulk",
            source.to_str().unwrap(),
        ],
        None,
    );
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stdout).contains("300000 bytes"),
        "{}",
        text(&sent.stdout)
    );
    let line = c.wait_line("the file line", false, |l| {
        l.contains("file \"object.bin\"")
    });
    let path = line.split(" at ").nth(1).expect("path");
    assert_eq!(std::fs::read(path).expect("received object"), bytes);

    // stats: C's Reporter, asked over two hops.
    let stats = run(&["stats", "--connect", &a_addr, "--to", "3"], None);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let out = text(&stats.stdout);
    let counter = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert!(counter("frames_received") > 0, "{out}");
    assert!(counter("bulk_received") >= 1, "{out}");
    let stats = run(
        &["stats", "--connect", &a_addr, "--to", "2", "--json"],
        None,
    );
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
    assert_eq!(json["station"], 2);
    assert!(
        json["counters"]["frames_sent"].as_u64().unwrap() > 0,
        "{json}"
    );

    // trace: our station -> A -> B -> C (its Reporter, port 2, on the first core), each hop
    // reported.
    let traced = run(&["trace", "--connect", &a_addr, "--to", "3"], None);
    let out = text(&traced.stdout);
    assert!(traced.status.success(), "{out}{}", text(&traced.stderr));
    let hops: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("station "))
        .skip(1)
        .collect();
    let at = |node: &str| {
        hops.iter()
            .position(|l| l.split_whitespace().nth(2) == Some(node))
            .unwrap_or_else(|| panic!("no hop at station {node} in {out}"))
    };
    assert!(at("1") < at("2") && at("2") < at("3"), "{out}");
    assert!(hops[at("1")].ends_with("-> station 2"), "{out}");
    assert!(hops[at("2")].ends_with("-> station 3"), "{out}");
    assert!(hops[at("3")].contains("ack-sent"), "{out}");
    assert!(out.contains("delivered and acknowledged: 3 hops"), "{out}");

    // A station that is not on the bus, and a port that is not served: one line each.
    let lost = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "99",
            "--port",
            "2002",
            "--timeout",
            "0.5",
            "x",
        ],
        None,
    );
    one_error_line(&lost, "station 99 is not reachable");
    let unserved = run(
        &[
            "send",
            "--connect",
            &a_addr,
            "--to",
            "3",
            "--port",
            "2999",
            "--timeout",
            "0.5",
            "x",
        ],
        None,
    );
    one_error_line(&unserved, "does not serve port 2999");

    // SIGTERM: a clean shutdown, exit status 0.
    for (station, name) in [(&mut c, "3"), (&mut b, "2"), (&mut a, "1")] {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped (wait_exit reaps it).
        unsafe { libc::kill(station.child.id() as libc::pid_t, libc::SIGTERM) };
        assert!(station.wait_exit().success(), "station {name} exit status");
        assert!(
            station
                .stderr
                .iter()
                .any(|l| l == &format!("station {name} stopped")),
            "{:?}",
            station.stderr
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mistakes_give_one_line_and_a_non_zero_exit() {
    let dir = temp("mistakes");
    // A port nobody listens on: bind, note, close.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    for command in ["send", "stats", "trace", "listen"] {
        let mut args = vec![command, "--connect", &closed, "--timeout", "2"];
        match command {
            "send" => args.extend(["--to", "1", "--port", "2002", "x"]),
            "listen" => args.extend(["--port", "2002"]),
            _ => args.extend(["--to", "1"]),
        }
        let output = run(&args, None);
        one_error_line(&output, &format!("cannot connect to {closed}"));
        assert_eq!(output.status.code(), Some(1), "{command}");
    }

    // Wrong flags and values: clap's verdict, on one line, exit status 2.
    for (args, needle) in [
        (vec!["send", "--bogus"], "--bogus"),
        (vec!["station", "--echo", "x"], "--echo"),
        (vec!["station", "--listen-tcp", "nonsense"], "bad address"),
        (
            vec![
                "send",
                "--connect",
                "127.0.0.1:1",
                "--port",
                "1",
                "--timeout",
                "0",
            ],
            "seconds",
        ),
        (vec!["stats", "--connect", "127.0.0.1:1"], "--to"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let output = run(&args, None);
        one_error_line(&output, needle);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }

    // Bad station files: the file, the line and the key.
    let unknown = dir.join("unknown.toml");
    write(
        &unknown,
        "id = 4\nlisten_tcp = [\"127.0.0.1:0\"]\nlisen_tcp = [\"x\"]\n",
    );
    let output = run(&["station", "--config", unknown.to_str().unwrap()], None);
    one_error_line(&output, "unknown.toml:3: unknown field `lisen_tcp`");
    let bad = dir.join("bad.toml");
    write(
        &bad,
        "id = 4\nconnect_tcp = [\"127.0.0.1:7000\", \"127.0.0.1\"]\n",
    );
    let output = run(&["station", "--config", bad.to_str().unwrap()], None);
    one_error_line(
        &output,
        "bad.toml:2: connect_tcp: bad address \"127.0.0.1\"",
    );
    let output = run(
        &[
            "station",
            "--config",
            dir.join("absent.toml").to_str().unwrap(),
        ],
        None,
    );
    one_error_line(&output, "cannot read");
    let output = run(&["station", "--listen-tcp", "127.0.0.1:0"], None);
    one_error_line(&output, "no station id");
    // A listen address already taken: the station does not start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let spool = dir.join("spool-5");
    let output = run(
        &[
            "station",
            "5",
            "--listen-tcp",
            &taken_addr,
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
        None,
    );
    one_error_line(&output, "cannot listen on");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_of_every_command_names_its_flags() {
    for (command, flags) in [
        (
            "station",
            &[
                "--config",
                "--id",
                "--listen-tcp",
                "--connect-tcp",
                "--bind-udp",
                "--udp-peer",
                "--cores",
                "--spool-dir",
                "--durable-outbox",
                "--echo",
                "--sink",
                "--join-group",
                "--subscribe",
                "Examples:",
            ][..],
        ),
        (
            "send",
            &[
                "--connect",
                "--to",
                "--port",
                "--file",
                "--request",
                "--bulk",
                "--timeout",
                "Examples:",
            ][..],
        ),
        (
            "listen",
            &[
                "--connect",
                "--port",
                "--subscribe",
                "--group",
                "--json",
                "--count",
                "Examples:",
            ][..],
        ),
        (
            "trace",
            &["--connect", "--to", "--port", "--timeout", "Examples:"][..],
        ),
        ("stats", &["--connect", "--to", "--json", "Examples:"][..]),
    ] {
        let output = run(&[command, "--help"], None);
        assert!(output.status.success(), "{command} --help");
        let help = text(&output.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "{command} --help lacks {flag}:\n{help}"
            );
        }
    }
    let output = run(&["--help"], None);
    let help = text(&output.stdout);
    for command in [
        "demo", "bench", "station", "send", "listen", "trace", "stats",
    ] {
        assert!(help.contains(command), "tamtam --help lacks {command}");
    }
}
