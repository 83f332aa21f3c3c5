//! `img_swap`: two TamTam stations exchange two disk images at the same time, block by block,
//! over the bulk lane (segmented, selective ACK, disk-first, resumable after `kill -9` of
//! either side), with progress from the Reporter, and check each image's SHA-256 at the end.
//!
//! Run one side with `--listen`, the other with `--connect`; see `README.md` next to this
//! crate. Exit status: 0 when both images arrived and matched their SHA-256, 1 on a mismatch
//! (ours or the peer's), 2 on any other failure (bad arguments, I/O, no peer).

mod display;
mod protocol;
mod swap;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Swap disk images with a peer station over TamTam's bulk lane.
#[derive(Parser, Debug)]
#[command(name = "img_swap", version)]
struct Cli {
    /// This station's id (not 0; the peer must use another one).
    #[arg(long)]
    id: u32,
    /// Listen for the peer's TCP link on this address (e.g. 127.0.0.1:7101).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Connect a TCP link to the peer's address (redialled whenever it drops).
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// The image to send (raw, qcow2, anything: carried as bytes).
    #[arg(long, value_name = "FILE")]
    send: PathBuf,
    /// Where the peer's image is placed, under the name the peer gave it.
    #[arg(long, value_name = "DIR")]
    receive_dir: PathBuf,
    /// The disk spool of inbound transfers (`.part` + `.log` files, kept for a resume).
    /// Default: `<receive-dir>/.spool`. Keep it on the receive directory's file system: the
    /// finished image is hard-linked out of it.
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// The peer's station id (default: the one station that serves the swap port).
    #[arg(long)]
    peer: Option<u32>,
    /// Plain progress lines instead of bars (also used when stdout is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// Milliseconds between plain progress lines.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    interval_ms: u64,
    /// Announce this SHA-256 (64 hex digits) instead of reading the image to compute it,
    /// e.g. the checksum published with the image. A wrong one makes the peer report a
    /// mismatch.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Give up when nothing has progressed for this many seconds (peer gone).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match options(cli).and_then(|options| swap::run(&options)) {
        Ok(swap::Ending::Verified) => ExitCode::SUCCESS,
        Ok(swap::Ending::Mismatch) => ExitCode::from(1),
        Err(error) => {
            eprintln!("img_swap: error: {error}");
            ExitCode::from(2)
        }
    }
}

fn options(cli: Cli) -> Result<swap::Options, String> {
    if cli.id == 0 {
        return Err("--id must not be 0 (0 means \"any station\")".into());
    }
    if cli.listen.is_none() && cli.connect.is_none() {
        return Err("give --listen ADDR, --connect ADDR, or both".into());
    }
    if cli.peer == Some(cli.id) {
        return Err("--peer must differ from --id".into());
    }
    let sha256 = match cli.sha256 {
        Some(text) => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut digest)
                .map_err(|e| format!("--sha256 {text:?} is not 64 hex digits: {e}"))?;
            Some(digest)
        }
        None => None,
    };
    let spool_dir = cli
        .spool_dir
        .unwrap_or_else(|| cli.receive_dir.join(".spool"));
    Ok(swap::Options {
        id: cli.id,
        listen: cli.listen,
        connect: cli.connect,
        send: cli.send,
        receive_dir: cli.receive_dir,
        spool_dir,
        peer: cli.peer,
        quiet: cli.quiet,
        interval: Duration::from_millis(cli.interval_ms.max(10)),
        sha256,
        timeout: Duration::from_secs(cli.timeout_secs.max(1)),
    })
}
