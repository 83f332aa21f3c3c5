//! The `tamtam` command.
//!
//! `tamtam demo` runs two stations on loopback and checks all three lanes; it needs no
//! configuration and no external server.

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
}

fn main() -> ExitCode {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tamtam: {message}");
            ExitCode::FAILURE
        }
    }
}
