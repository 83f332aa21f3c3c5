//! Child processes of the harness, and what the harness reads about them from `/proc`.
//!
//! A child is the harness's own binary started with [`ROLE_ARG`], a role name and `--key value`
//! arguments. It talks to the parent in lines: it prints `READY …`, `MARK start`, `LAT …`,
//! `VAL …` and so on on stdout, reads commands on stdin, and exits when stdin closes. Its
//! stderr is kept (the last few KiB) for error messages.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hidden first argument that makes the harness binary run a child role.
pub const ROLE_ARG: &str = "__tamtam-bench-role";

/// Stderr bytes kept per child.
const STDERR_KEPT: usize = 4096;

/// A running child process.
pub struct Child {
    name: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
}

impl Child {
    /// Starts role `role` of this binary with `args`, named `name` in reports.
    pub fn spawn(name: &str, role: &str, args: &[String]) -> Result<Child, String> {
        Self::spawn_with_env(name, role, args, &[])
    }

    /// Like [`Child::spawn`], with extra environment variables.
    pub fn spawn_with_env(
        name: &str,
        role: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
        let mut command = Command::new(exe);
        command
            .arg(ROLE_ARG)
            .arg(role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start child {name}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            loop {
                match stderr_pipe.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut kept = kept.lock().expect("stderr lock");
                        kept.extend(&buffer[..n]);
                        while kept.len() > STDERR_KEPT {
                            kept.pop_front();
                        }
                    }
                }
            }
        });
        Ok(Child {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn failure(&mut self, what: &str) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!(" (exited: {status})"),
            _ => String::new(),
        };
        let stderr: Vec<u8> = self
            .stderr
            .lock()
            .expect("stderr lock")
            .iter()
            .copied()
            .collect();
        let stderr = String::from_utf8_lossy(&stderr);
        format!(
            "child {}{status}: {what}; its stderr ends with: {}",
            self.name,
            stderr.trim()
        )
    }

    /// Waits for a line starting with `prefix` (other lines are skipped; a line starting with
    /// `ERROR` fails) and returns the rest of it, trimmed.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                    if let Some(error) = line.strip_prefix("ERROR") {
                        return Err(self.failure(error.trim()));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("no {prefix:?} line within {timeout:?}")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("exited before printing {prefix:?}")));
                }
            }
        }
    }

    /// Collects every line up to and including the first starting with `prefix` (a line
    /// starting with `ERROR` fails).
    pub fn lines_until(&mut self, prefix: &str, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(error) = line.strip_prefix("ERROR") {
                        return Err(self.failure(error.trim()));
                    }
                    let end = line.starts_with(prefix);
                    lines.push(line);
                    if end {
                        return Ok(lines);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("no {prefix:?} line within {timeout:?}")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("exited before printing {prefix:?}")));
                }
            }
        }
    }

    /// Sends one command line to the child.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(format!("child {}: stdin closed", self.name));
        };
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("child {}: cannot write to stdin: {e}", self.name))
    }

    /// CPU seconds (user + system) the child used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid()).unwrap_or(0.0)
    }

    /// Peak resident memory (VmHWM) so far, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_kib_of(self.pid()).unwrap_or(0) as f64 / 1024.0
    }

    /// Closes stdin (the child's signal to exit) and waits for it, killing it after `timeout`.
    pub fn finish(mut self, timeout: Duration) {
        self.stdin.take();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU seconds (user + system) of process `pid`, from `/proc/<pid>/stat`.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / ticks)
}

/// Peak resident set (VmHWM) of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn peak_rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU seconds of this process (user + system), from `getrusage`.
pub fn own_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU time and peak RSS of each process of one measurement.
#[derive(Debug, Clone)]
pub struct ProcSample {
    /// The process's name in the report.
    pub name: String,
    /// CPU seconds used inside the measurement window.
    pub cpu_seconds: f64,
    /// Peak resident memory over the process's life, MiB.
    pub peak_rss_mib: f64,
}

/// Samples CPU time of several children at the start and end of a measurement window.
pub struct CpuWindow {
    start: Vec<f64>,
    at: Instant,
}

impl CpuWindow {
    /// Starts the window now.
    pub fn start(children: &[&Child]) -> CpuWindow {
        CpuWindow {
            start: children.iter().map(|c| c.cpu_seconds()).collect(),
            at: Instant::now(),
        }
    }

    /// Ends the window: each child's CPU seconds inside it, its peak RSS, and the window's
    /// wall-clock length.
    pub fn end(self, children: &[&Child]) -> (Vec<ProcSample>, Duration) {
        let elapsed = self.at.elapsed();
        let samples = children
            .iter()
            .zip(&self.start)
            .map(|(c, start)| ProcSample {
                name: c.name().to_owned(),
                cpu_seconds: (c.cpu_seconds() - start).max(0.0),
                peak_rss_mib: c.peak_rss_mib(),
            })
            .collect();
        (samples, elapsed)
    }
}
