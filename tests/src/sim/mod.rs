//! The deterministic simulator of the Safari Bus core.
//!
//! One `u64` seed sets every parameter of a run ([`Params::from_seed`]): the station graph
//! (line, star, ring, mesh or random, 5–9 stations), per-link delay, jitter, bandwidth, loss,
//! duplication, corruption and stragglers, partitions, crash-restarts, disk faults, every
//! station's bus configuration and cycle period, and the workload (fast-lane messages with and
//! without ACK, service requests with replies and language fallback, group and broadcast
//! sends, streams to subscribers with a slow one, bulk objects, traced packets). The run steps
//! every station in virtual time ([`world::Sim`]) and the [`check::Checker`] records every
//! broken invariant.
//!
//! A run has three phases: warm-up (discovery converges, no traffic), the fault phase
//! (workload and faults), and the quiet phase (faults stop, every crashed station is up again,
//! the workload goes on briefly, then everything pending must resolve within the stated
//! liveness bound).
//!
//! `TAMTAM_SEED=<seed>` replays one seed (`sim_replay` test); `TAMTAM_SIM_LOG=1` logs every
//! step of it to stderr.

pub mod app;
pub mod check;
pub mod disk;
pub mod net;
pub mod params;
pub mod world;

pub use params::{Params, Scale};

use std::fmt::Write as _;

/// The result of one run.
#[derive(Debug)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// The scale it ran at.
    pub scale: Scale,
    /// The parameters, as printed before the run.
    pub description: String,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<String>,
    /// What the run did.
    pub summary: world::Summary,
}

impl RunResult {
    /// One line: seed, virtual time, cycles and the main counters.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let c = &s.counts;
        let n = &s.net;
        let mut line = String::new();
        let _ = write!(
            line,
            "seed {}: {:.0} ms virtual, {} cycles, {} ops ({} refused), {} delivered, {} acked, {} dead-lettered, {} replies, {} stream frames, bulk {} sent / {} failed, {} frames (lost {}, dup {}, corrupt {}, straggled {}, partitioned {}), {} traces checked, control≤{} unreliable≤{} timers≤{}",
            self.seed,
            s.end_ns as f64 / 1e6,
            s.cycles,
            c.ops,
            s.refused,
            c.delivered,
            c.acked,
            c.dead_lettered,
            c.replies,
            c.stream_delivered,
            c.bulk_sent,
            c.bulk_failed,
            c.frames,
            n.lost,
            n.duplicated,
            n.corrupted,
            n.straggled,
            n.partitioned,
            c.traces_checked,
            c.control_max,
            c.unreliable_max,
            c.timers_max,
        );
        line
    }

    /// The failure report: parameters, violations, summary and how to replay.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.description);
        let _ = writeln!(out, "{} violation(s):", self.violations.len());
        for v in &self.violations {
            let _ = writeln!(out, "  - {v}");
        }
        let _ = writeln!(out, "{}", self.summary_line());
        let _ = writeln!(
            out,
            "replay: TAMTAM_SEED={}{} TAMTAM_SIM_LOG=1 cargo nextest run -p tamtam-tests sim_replay --no-capture",
            self.seed,
            if self.scale == Scale::Full {
                " TAMTAM_SIM_SCALE=full"
            } else {
                ""
            }
        );
        out
    }
}

/// Runs seed `seed` at `scale`. `print` writes the parameters to stderr first; `verbose` logs
/// every step.
pub fn run(seed: u64, scale: Scale, print: bool, verbose: bool) -> RunResult {
    let params = Params::from_seed(seed, scale);
    let description = params.describe();
    if print {
        eprint!("{description}");
    }
    let (checker, summary) = world::Sim::new(params, verbose).run();
    RunResult {
        seed,
        scale,
        description,
        violations: checker.violations,
        summary,
    }
}
