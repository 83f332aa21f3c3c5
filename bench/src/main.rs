//! `tamtam-bench`: the benchmark harness as a binary of its own (the same as `tamtam bench`).

use std::process::ExitCode;

use clap::Parser;
use tamtam_bench::{Options, Profile};

/// Measures TamTam on this machine next to raw baselines measured in the same run.
#[derive(Parser)]
#[command(name = "tamtam-bench", version, about, long_about = None)]
struct Cli {
    /// Every scenario in under a minute (fewer samples, shorter windows).
    #[arg(long)]
    quick: bool,
    /// Tiny sizes, only to prove every scenario works (used by the test suite).
    #[arg(long, hide = true)]
    smoke: bool,
    /// Print the results as JSON instead of the table and RESULT lines.
    #[arg(long)]
    json: bool,
    /// Run only this scenario (raw, fast-rtt, fast-tput, shm, fanout, bulk, stream, scale).
    #[arg(long)]
    scenario: Option<String>,
}

fn main() -> ExitCode {
    if let Some(code) = tamtam_bench::child_main() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let profile = if cli.smoke {
        Profile::Smoke
    } else if cli.quick {
        Profile::Quick
    } else {
        Profile::Full
    };
    let options = Options {
        profile,
        scenario: cli.scenario,
        json: cli.json,
    };
    match tamtam_bench::run(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tamtam-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
