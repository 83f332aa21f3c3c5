//! Test kit: drive programs in `tmux` as a person would, and read what the screen shows.
//!
//! Each [`Tmux`] has a private server (`tmux -L <unique socket>`, no configuration file) and
//! kills only that server when dropped. Waiting is polling `capture-pane` until a condition
//! holds or a deadline passes; a timeout fails the test and prints the screen.

#![allow(dead_code)] // each test binary uses part of the kit

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any one condition may take.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two looks at the screen.
const POLL: Duration = Duration::from_millis(20);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    format!(
        "tt-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The example's binary, built by cargo for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chat_and_tty")
}

/// A private tmux server.
pub struct Tmux {
    socket: String,
    /// TMPDIR of the programs it runs (their stations' spool directories), removed on drop.
    dir: PathBuf,
}

impl Tmux {
    /// A server of its own (started by the first session), or None, with a SKIPPED line,
    /// when tmux is not installed (a fresh clone needs only Rust; `.ci/run` installs tmux, so
    /// CI always runs these tests).
    pub fn new(test: &str) -> Option<Tmux> {
        let probe = Command::new("tmux").arg("-V").output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED {test}: no tmux on PATH (apt-get install tmux)");
            return None;
        }
        let socket = unique(test);
        let dir = std::env::temp_dir().join(&socket);
        fs::create_dir_all(&dir).expect("temp dir");
        Some(Tmux { socket, dir })
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs")
    }

    fn check(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` (a shell command line) in a new 100x30 session named `name`. The pane
    /// stays after the command exits and shows its exit status (tmux's own `pane_dead_status`
    /// is not reliable in tmux 3.3: it stays empty when tmux sees the pty close before it
    /// reaps the process).
    pub fn start(&self, name: &str, command: &str) {
        // One tmux command list: the server runs it to the end before it handles the
        // command's exit, so even a program that fails at once leaves its pane behind.
        self.check(&[
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            "-s",
            name,
            &format!(
                "TMPDIR={}; export TMPDIR; {command}; echo \"{EXITED} $?]\"",
                quote(&self.dir.to_string_lossy())
            ),
            ";",
            "set-option",
            "-t",
            name,
            "remain-on-exit",
            "on",
        ]);
    }

    /// Sends keys by tmux name (`Enter`, `C-c`, `C-]`) or as text.
    pub fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.check(&args);
    }

    /// Types `text` literally, then Enter.
    pub fn line(&self, name: &str, text: &str) {
        self.check(&["send-keys", "-t", name, "-l", text]);
        self.check(&["send-keys", "-t", name, "Enter"]);
    }

    /// What the pane shows now, with what scrolled off its top (tmux 3.3 scrolls a dead
    /// pane by one line to print "Pane is dead").
    pub fn screen(&self, name: &str) -> String {
        self.check(&["capture-pane", "-p", "-S", "-", "-t", name])
    }

    /// Resizes the session's window.
    pub fn resize(&self, name: &str, cols: u16, rows: u16) {
        self.check(&[
            "resize-window",
            "-t",
            name,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// Polls the screen until `condition` holds; returns that screen.
    pub fn wait(&self, name: &str, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen(name);
            if condition(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for {what} in {name}; the screen:\n{screen}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the screen shows `text`.
    pub fn wait_text(&self, name: &str, text: &str) -> String {
        self.wait(name, &format!("{text:?}"), |s| s.contains(text))
    }

    /// Waits until the pane's program has exited; returns its exit status (128 + N for a
    /// death by signal N, as the shell reports it).
    pub fn wait_exit(&self, name: &str) -> i32 {
        let screen = self.wait(name, "the program's exit", |s| exit_status(s).is_some());
        exit_status(&screen).expect("checked")
    }

    /// Kills one session (its program gets SIGHUP, as when a terminal window is closed).
    pub fn kill_session(&self, name: &str) {
        self.check(&["kill-session", "-t", name]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only this test's server; it may never have started.
        let _ = self.run(&["kill-server"]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A server process of the example (hub or tty-server), stopped when dropped.
pub struct Server {
    child: Child,
    log: PathBuf,
    dir: PathBuf,
    /// The address it listens on, from its first output line.
    pub addr: String,
}

impl Server {
    /// Starts `chat_and_tty <args>` with its output in a file, and waits for its first line.
    pub fn start(tag: &str, args: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(unique(tag));
        fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("out.log");
        let child = Command::new(binary())
            .args(args)
            .current_dir(&dir)
            // Its station's spool directory goes under TMPDIR: here, so that it goes away
            // with the test even though the server is killed.
            .env("TMPDIR", &dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).expect("log file"))
            .stderr(fs::File::create(dir.join("err.log")).expect("log file"))
            .spawn()
            .expect("the example starts");
        let mut server = Server {
            child,
            log,
            dir,
            addr: String::new(),
        };
        let first = server.wait_log("the listening line", |log| log.contains('\n'));
        // "<role>: listening on <addr> station <id>"
        server.addr = first
            .split_whitespace()
            .nth(3)
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        server
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls its output until `condition` holds.
    pub fn wait_log(&mut self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.log();
            if condition(&log) {
                return log;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the server exited ({status}) before {what}; output:\n{log}\n{}",
                    fs::read_to_string(self.dir.join("err.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for {what}; output:\n{log}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Its working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What the shell prints after the program: `[exited with status N]`.
const EXITED: &str = "[exited with status";

/// The status in an `[exited with status N]` line on `screen`, if there is one.
fn exit_status(screen: &str) -> Option<i32> {
    let rest = &screen[screen.find(EXITED)? + EXITED.len()..];
    rest.split(']').next()?.trim().parse().ok()
}

/// Quotes `word` for the shell tmux runs commands with.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl Server {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
