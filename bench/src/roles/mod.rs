//! The roles a child process can play, and what they share: argument parsing, the stdin
//! command channel, and printing lines to the parent.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

mod raw;
mod rawshm;
mod tt;

/// A child never lives longer than this, whatever happens to its parent.
const LIFETIME_MAX: Duration = Duration::from_secs(20 * 60);

/// Set when stdin closes: the parent wants the child gone.
static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the parent asked this child to stop (closed its stdin).
pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Runs role `role` with `args`; returns the process exit code.
pub(crate) fn run(role: &str, args: &[String]) -> i32 {
    std::thread::spawn(|| {
        std::thread::sleep(LIFETIME_MAX);
        eprintln!("tamtam-bench child: lifetime limit reached, exiting");
        std::process::exit(3);
    });
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(e) => {
            say(format!("ERROR {e}"));
            return 2;
        }
    };
    let control = Control::start();
    let result = match role {
        "raw-echo" => raw::echo(&args, &control),
        "raw-ping" => raw::ping(&args, &control),
        "raw-sink" => raw::sink(&args, &control),
        "raw-source" => raw::source(&args, &control),
        "raw-file-recv" => raw::file_recv(&args, &control),
        "raw-file-send" => raw::file_send(&args, &control),
        "raw-thread-rtt" => raw::thread_rtt(&args, &control),
        "raw-thread-tput" => raw::thread_tput(&args, &control),
        "raw-shm-echo" => rawshm::echo(&args, &control),
        "raw-shm-ping" => rawshm::ping(&args, &control),
        "raw-shm-sink" => rawshm::sink(&args, &control),
        "raw-shm-source" => rawshm::source(&args, &control),
        "tt-server" => tt::server(&args, &control),
        "tt-client" => tt::client(&args, &control),
        "tt-inproc" => tt::inproc(&args, &control),
        "tt-subs" => tt::subscribers(&args, &control),
        "tt-streamer" => tt::streamer(&args, &control),
        "tt-bulk-recv" => tt::bulk_receiver(&args, &control),
        "tt-bulk-send" => tt::bulk_sender(&args, &control),
        "tt-crowd" => tt::crowd(&args, &control),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            say(format!("ERROR {e}"));
            1
        }
    }
}

/// Prints one line to the parent at once.
pub(crate) fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// `--key value` arguments.
pub(crate) struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let key = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --key, got {key:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Args(map))
    }

    /// The value of `--key`, or `default`.
    pub(crate) fn str<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    /// The value of `--key` parsed, or `default`.
    pub(crate) fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: cannot parse {v:?}")),
        }
    }

    /// The value of `--key` as a duration in milliseconds, or `default`.
    pub(crate) fn millis(&self, key: &str, default: u64) -> Result<Duration, String> {
        Ok(Duration::from_millis(self.num(key, default)?))
    }

    /// The value of `--key`, which must be given.
    pub(crate) fn required(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("--{key} is required"))
    }

    /// Whether `--key` is `1`, `true` or `yes`.
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.str(key, "0"), "1" | "true" | "yes")
    }
}

/// Commands from the parent, one per stdin line. When stdin closes, [`stopping`] turns true.
pub(crate) struct Control {
    commands: Receiver<String>,
}

impl Control {
    fn start() -> Control {
        let (tx, commands) = channel();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim().to_owned()).is_err() {
                    break;
                }
            }
            STOP.store(true, Ordering::Relaxed);
        });
        Control { commands }
    }

    /// A command if one is waiting (never blocks).
    pub(crate) fn poll(&self) -> Option<String> {
        self.commands.try_recv().ok()
    }

    /// Waits for the command `expected`; fails on stdin close or after `timeout`.
    pub(crate) fn wait_for(&self, expected: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no {expected:?} command within {timeout:?}"));
            }
            match self.commands.recv_timeout(left) {
                Ok(line) if line == expected => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("stdin closed before {expected:?}"));
                }
            }
        }
    }

    /// Blocks until stdin closes (bounded by the child's lifetime), answering `count`-style
    /// commands with `answer`.
    pub(crate) fn serve_until_closed(&self, mut answer: impl FnMut(&str) -> Option<String>) {
        loop {
            match self.commands.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(reply) = answer(&line) {
                        say(reply);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// Monotonic nanoseconds since the first call in this process (for `COUNT`/`SENT` lines).
pub(crate) fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Number of open sockets of this process (from `/proc/self/fd`).
pub(crate) fn open_sockets() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}
