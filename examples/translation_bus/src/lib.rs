//! The translation bus: TamTam's distributed translation example.
//!
//! - [`server::TranslationServer`] serves language ports (101–1000) with a LibreTranslate
//!   backend, or AI ports (1001–1100) with an Ollama backend that streams partial results.
//! - [`client::Asker`] asks for a translation by target language; the bus picks one of the
//!   servers of the language port (the least loaded, ties at random), falls back to the AI
//!   port when nobody serves the language, and the client fails over when the server holding
//!   its request dies.
//! - [`protocol`] holds the TPF messages both sides exchange; [`backend`] the HTTP clients.
//!
//! The `translation_bus` binary wraps these; see the example's `README.md`.

pub mod backend;
pub mod client;
pub mod protocol;
pub mod server;

/// A station id for this process that is unlikely to collide with another's: derived from
/// the process id and the clock, below 2^24 (the limit for multi-core stations), never 0.
pub fn random_station_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = (std::process::id() ^ nanos.rotate_left(11)).wrapping_mul(2_654_435_761);
    (mixed >> 8).max(2)
}
