//! The `tamtam` command.
//!
//! `tamtam demo` runs two stations on loopback and checks all three lanes; it needs no
//! configuration and no external server. `tamtam bench` measures TamTam next to raw
//! baselines (see `bench/RESULTS.md`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

/// TamTam: a realtime communication engine with a three-lane Safari Bus.
#[derive(Parser)]
#[command(name = "tamtam", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start two stations on loopback and show the fast, bulk and stream lanes working, a
    /// traced packet's route and the Reporter's statistics. Exits 0 when every check passed.
    Demo {
        /// Size of the generated file sent over the bulk lane, in MiB.
        #[arg(long, default_value_t = 64)]
        file_mib: u64,
        /// Stream frames to send.
        #[arg(long, default_value_t = 200)]
        frames: u32,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Measure TamTam on this machine: every scenario (fast-lane latency and throughput,
    /// fan-out, bulk, streams, scale) beside raw baselines measured in the same run, with
    /// ratios and targets. Prints a table and `RESULT <key> <value> <unit>` lines.
    Bench {
        /// Every scenario in under a minute (fewer samples, shorter windows).
        #[arg(long)]
        quick: bool,
        /// Tiny sizes, only to prove every scenario works.
        #[arg(long, hide = true)]
        smoke: bool,
        /// Print the results as JSON instead of the table and RESULT lines.
        #[arg(long)]
        json: bool,
        /// Run only this scenario: raw, fast-rtt, fast-tput, shm, fanout, bulk, stream, scale.
        #[arg(long)]
        scenario: Option<String>,
    },
}

fn main() -> ExitCode {
    // `tamtam bench` re-executes this binary for its child processes.
    if let Some(code) = tamtam_bench::child_main() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo {
            file_mib,
            frames,
            quiet,
        } => demo::run(&demo::Options {
            file_mib,
            frames,
            quiet,
        }),
        Command::Bench {
            quick,
            smoke,
            json,
            scenario,
        } => {
            let profile = if smoke {
                tamtam_bench::Profile::Smoke
            } else if quick {
                tamtam_bench::Profile::Quick
            } else {
                tamtam_bench::Profile::Full
            };
            tamtam_bench::run(&tamtam_bench::Options {
                profile,
                scenario,
                json,
            })
            .map(|_| ())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tamtam: {message}");
            ExitCode::FAILURE
        }
    }
}
