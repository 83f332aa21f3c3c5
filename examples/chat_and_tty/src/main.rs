//! `chat_and_tty`: TamTam's chat and remote-terminal example. See the README next to this
//! crate for a session to copy and paste.
//!
//! - `chat_and_tty hub --listen ADDR`: the chat hub (presence and group history).
//! - `chat_and_tty chat --connect ADDR --name NAME [--join GROUP]...`: a chat client.
//! - `chat_and_tty tty-server --listen ADDR [-- COMMAND...]`: runs a shell per session.
//! - `chat_and_tty tty --connect ADDR`: a terminal client (`~.` or Ctrl-] to leave).

mod chat;
mod common;
mod proto;
mod tty;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// TamTam chat (user, group and broadcast ports, presence, group history) and remote terminal
/// (keyboard over the fast lane, output over the stream lane).
#[derive(Parser)]
#[command(name = "chat_and_tty", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the chat hub: clients connect to it; it announces joins and leaves and keeps the
    /// recent history of every group.
    Hub {
        /// Address to listen on (port 0 picks one; the first output line tells which).
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// Station id (1..=16777215; random when absent).
        #[arg(long)]
        id: Option<u32>,
    },
    /// Runs a chat client on this terminal (lines in, lines out).
    Chat {
        /// The hub's address.
        #[arg(long, default_value = "127.0.0.1:7400")]
        connect: SocketAddr,
        /// Your name (letters, digits, '-', '_').
        #[arg(long)]
        name: String,
        /// A group to join (repeatable); its recent history is shown on joining.
        #[arg(long = "join", value_name = "GROUP")]
        groups: Vec<String>,
        /// Station id (1..=16777215; random when absent).
        #[arg(long)]
        id: Option<u32>,
    },
    /// Runs the remote terminal server: each session gets the command in a new pty.
    TtyServer {
        /// Address to listen on (port 0 picks one; the first output line tells which).
        #[arg(long, default_value = "127.0.0.1:7500")]
        listen: SocketAddr,
        /// Station id (1..=16777215; random when absent).
        #[arg(long)]
        id: Option<u32>,
        /// Sessions open at once at most.
        #[arg(long, default_value_t = 8)]
        sessions_max: usize,
        /// The program to run in each session, with its arguments (default: $SHELL, else
        /// /bin/sh).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Opens a remote terminal on a tty-server. Leave with `~.` after Enter, or Ctrl-].
    Tty {
        /// The tty-server's address.
        #[arg(long, default_value = "127.0.0.1:7500")]
        connect: SocketAddr,
        /// Station id (1..=16777215; random when absent).
        #[arg(long)]
        id: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hub { listen, id } => chat::run_hub(&chat::HubOptions { listen, id }).map(|()| 0),
        Command::Chat {
            connect,
            name,
            groups,
            id,
        } => chat::run_client(&chat::ClientOptions {
            connect,
            name,
            groups,
            id,
        })
        .map(|()| 0),
        Command::TtyServer {
            listen,
            id,
            sessions_max,
            mut command,
        } => {
            if command.is_empty() {
                command.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_string()));
            }
            tty::run_server(&tty::ServerOptions {
                listen,
                id,
                sessions_max: sessions_max.max(1),
                command,
            })
            .map(|()| 0)
        }
        Command::Tty { connect, id } => tty::run_client(&tty::ClientOptions { connect, id }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("chat_and_tty: {message}");
            ExitCode::FAILURE
        }
    }
}
