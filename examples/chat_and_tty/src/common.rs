//! What the four commands share: station ids, spool directories, the first output line of
//! the servers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tamtam_engine::driver::{Station, StationBuilder};

/// A station id for a process that was given none: mixed from the process id and the clock,
/// below 2^24 and never 0. Two processes drawing the same one is unlikely (1 in 16 million);
/// `--id` removes the chance.
pub fn station_id(given: Option<u32>) -> Result<u32, String> {
    if let Some(id) = given {
        if id == 0 || id >= 1 << 24 {
            return Err(format!("--id {id}: a station id must be in 1..=16777215"));
        }
        return Ok(id);
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (std::process::id().wrapping_mul(0x9E37_79B9) ^ nanos) & 0x00FF_FFFF;
    Ok(mixed.max(1))
}

/// A spool directory of this process alone (chat and terminal stations never receive bulk
/// objects, but every station has a spool); [`finish`] removes it.
pub fn spool_dir(role: &str, id: u32) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tamtam-{role}-{id}-{pid}",
        pid = std::process::id()
    ))
}

/// Starts `builder` and names what went wrong if it cannot.
pub fn start(builder: StationBuilder, what: &str) -> Result<Station, String> {
    builder
        .build()
        .map_err(|e| format!("cannot start the {what} station: {e}"))
}

/// Stops `station` and removes its spool directory.
pub fn finish(station: Station) {
    let dir = station.spool_dir().to_path_buf();
    station.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

/// Prints the servers' first line, `listening on ADDR station ID`, which scripts and tests read
/// to learn a port chosen by the system (`--listen 127.0.0.1:0`).
pub fn announce(role: &str, station: &Station) {
    let addr = station
        .local_addrs()
        .first()
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{role}: listening on {addr} station {}", station.id());
    let _ = out.flush();
}
