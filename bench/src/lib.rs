//! `tamtam bench`: how fast TamTam moves messages on this machine, next to the hardware's own
//! limits measured in the same run.
//!
//! Every scenario runs TamTam stations in separate processes: the harness re-executes its own
//! binary ([`std::env::current_exe`]) with a hidden role argument ([`proc::ROLE_ARG`]), so
//! `tamtam bench` (or the `tamtam-bench` binary) needs nothing else. The parent only starts
//! children, reads the lines they print, samples their CPU time and peak RSS from `/proc`, and
//! reports. Scenarios (see `bench/RESULTS.md` for the latest figures):
//!
//! - `fast-rtt`: fast-lane request → reply, 64 B: TCP and UDP between two processes (driven
//!   from a handler, and from an application thread through [`Station::request`]), with
//!   busy-polling stations, and within one process between two stations on two threads;
//! - `fast-tput`: one-way fast-lane messages with ACK, pipelined, 64 B and 1 KiB, TCP between
//!   two processes, and 64 B within one process;
//! - `shm`: fast-lane request → reply and one-way throughput, 64 B, between two processes over
//!   the shared-memory transport (with its eventfd doorbells, without them, busy-polling),
//!   next to the raw rings of one link;
//! - `fanout`: one publisher, a group port with 8 subscribers, 64 B, ACK'd deliveries/s;
//! - `bulk`: a file over loopback TCP from disk to disk, durable and checksummed;
//! - `stream`: 64 B and 1 KiB stream frames to one subscriber; then 8 subscribers, one of
//!   them 10× slower;
//! - `scale`: 10,000 ports and 1,000 connections against 1 port and 1 connection;
//! - `raw`: the baselines (blocking and busy-polling TCP ping-pong, UDP ping-pong, raw TCP
//!   streaming, raw batched 64 B messages, cross-thread ping-pong and SPSC throughput, shared-
//!   memory ring ping-pong and throughput).
//!
//! Every wait has a deadline and every loop a bound; everything runs on loopback.
//!
//! [`Station::request`]: tamtam_engine::driver::Station::request

pub mod measure;
pub mod memlink;
pub mod proc;
pub mod report;
mod roles;
mod scenarios;

use std::time::{Duration, Instant};

pub use report::Report;

/// How long and how large a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The default run: at least 100,000 latency samples after warm-up, 1 GiB bulk, several
    /// throughput windows (a few minutes on 2 cores).
    Full,
    /// `--quick`: every scenario in under a minute, smaller samples.
    Quick,
    /// Tiny sizes, to prove each scenario works (the test suite).
    Smoke,
}

/// Sizes and durations of one profile.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Latency samples after warm-up.
    pub samples: u64,
    /// Warm-up round trips before latency samples.
    pub warmup: u64,
    /// Warm-up before throughput windows.
    pub tput_warmup: Duration,
    /// Length of one throughput window.
    pub window: Duration,
    /// Throughput windows (the median is reported).
    pub windows: usize,
    /// Bulk object size in bytes.
    pub bulk_bytes: u64,
    /// Ports served in the large `scale` configuration.
    pub scale_ports: u16,
    /// Connections in the large `scale` configuration.
    pub scale_connections: usize,
    /// Latency samples in `scale`.
    pub scale_samples: u64,
}

impl Profile {
    /// The sizes of this profile.
    pub fn sizes(self) -> Sizes {
        match self {
            Profile::Full => Sizes {
                samples: 100_000,
                warmup: 5_000,
                tput_warmup: Duration::from_millis(1000),
                window: Duration::from_secs(2),
                windows: 3,
                bulk_bytes: 1 << 30,
                scale_ports: 10_000,
                scale_connections: 1_000,
                scale_samples: 100_000,
            },
            Profile::Quick => Sizes {
                samples: 5_000,
                warmup: 500,
                tput_warmup: Duration::from_millis(200),
                window: Duration::from_millis(400),
                windows: 1,
                bulk_bytes: 64 << 20,
                scale_ports: 10_000,
                scale_connections: 1_000,
                scale_samples: 2_000,
            },
            Profile::Smoke => Sizes {
                samples: 300,
                warmup: 50,
                tput_warmup: Duration::from_millis(100),
                window: Duration::from_millis(150),
                windows: 1,
                bulk_bytes: 4 << 20,
                scale_ports: 100,
                scale_connections: 10,
                scale_samples: 300,
            },
        }
    }

    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Quick => "quick",
            Profile::Smoke => "smoke",
        }
    }
}

/// The scenarios, in run order (`raw` first: the others are compared with it).
pub const SCENARIOS: [&str; 8] = [
    "raw",
    "fast-rtt",
    "fast-tput",
    "shm",
    "fanout",
    "bulk",
    "stream",
    "scale",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sizes and durations.
    pub profile: Profile,
    /// Only this scenario (and the raw baselines it is compared with).
    pub scenario: Option<String>,
    /// Print JSON on stdout instead of the table and `RESULT` lines.
    pub json: bool,
}

/// Runs the selected scenarios and prints the report (the table and `RESULT` lines on stdout,
/// or JSON with `json`; progress on stderr). Returns the report, or what went wrong.
pub fn run(options: &Options) -> Result<Report, String> {
    if let Some(name) = &options.scenario {
        if !SCENARIOS.contains(&name.as_str()) {
            return Err(format!(
                "unknown scenario {name:?}; choose one of {}",
                SCENARIOS.join(", ")
            ));
        }
    }
    let started = Instant::now();
    let mut report = Report::new(options.profile.name());
    scenarios::run(options, &mut report)?;
    report.set_elapsed(started.elapsed());
    if options.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
        print!("{}", report.result_lines());
    }
    Ok(report)
}

/// If the process was started as a harness child (its first argument is [`proc::ROLE_ARG`]),
/// runs that role and returns its exit code; otherwise `None`. Call it first in `main` of any
/// binary that runs the harness.
pub fn child_main() -> Option<i32> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(proc::ROLE_ARG) {
        return None;
    }
    let role = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    Some(roles::run(&role, &rest))
}
