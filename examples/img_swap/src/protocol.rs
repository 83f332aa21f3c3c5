//! What two `img_swap` stations say to each other on the fast lane, and the handler that
//! serves the swap port on each of them.
//!
//! Everything goes to port [`PORT`] (an application port):
//!
//! | payload | lane | meaning |
//! |---|---|---|
//! | empty request | fast | "what will you send me?"; answered with a [`Manifest`] |
//! | [`Manifest`] (reply) | fast | the image's name, size and SHA-256 |
//! | bulk object | bulk | the image itself, carried as bytes, disk to disk |
//! | [`Verdict`] | fast, ACK | "I received your image and checked its SHA-256: OK / mismatch" |
//!
//! The manifest is pulled (asked for) rather than pushed, so a station that restarts after
//! `kill -9` simply asks again; and a station seeing the peer ask again knows the peer
//! restarted.

use std::sync::mpsc::SyncSender;

use tamtam_engine::core::{BulkReceived, Context, Message, Service};
use tamtam_tpf::{Tpf, TpfMessage};

/// The application port both stations serve: the manifest, the verdict and the bulk object
/// all arrive there.
pub const PORT: u16 = 1201;

/// Longest image name carried (bytes of UTF-8).
pub const NAME_LEN_MAX: usize = 255;

/// What a station will send: announced before the transfer, answered to an empty request.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1201, template = 1)]
pub struct Manifest {
    /// Bytes in the image.
    pub len: u64,
    /// SHA-256 of the image's bytes.
    pub sha256: [u8; 32],
    /// The image's file name (no directory part): the bulk object's name.
    #[tpf(max = 255)]
    pub name: String,
}

/// What the receiver found: sent to the image's sender once the object is verified.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1201, template = 2)]
pub struct Verdict {
    /// Whether the SHA-256 of the received bytes matched the manifest.
    pub ok: bool,
    /// Bytes received.
    pub len: u64,
    /// SHA-256 of the received bytes.
    pub sha256: [u8; 32],
    /// The image's name.
    #[tpf(max = 255)]
    pub name: String,
}

/// Encodes a TPF message into a fresh buffer.
pub fn encode<T: TpfMessage>(value: &T) -> Vec<u8> {
    let mut bytes = vec![0u8; value.encoded_len()];
    let n = value
        .encode(&mut bytes)
        .expect("a buffer of encoded_len bytes holds the message");
    bytes.truncate(n);
    bytes
}

/// Whether `name` may be used as a file name in the receive directory: one path component,
/// not `.` or `..`, no NUL, at most [`NAME_LEN_MAX`] bytes. A peer's name that fails this is
/// refused (it could otherwise write outside the receive directory).
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
}

/// What the handler tells the main thread (and what helper threads report back to it).
#[derive(Debug)]
pub enum Note {
    /// A station asked for our manifest (the first time, or again after it restarted).
    ManifestAsked {
        /// The station.
        from: u32,
    },
    /// A station sent its verdict on our image.
    Verdict {
        /// The station.
        from: u32,
        /// What it found.
        verdict: Verdict,
    },
    /// An inbound bulk object is durable in the spool (CRC32C verified by the engine).
    Received(BulkReceived),
    /// The SHA-256 check of the received image finished.
    Checked(Result<Checked, String>),
    /// Our verdict was acknowledged (or not).
    VerdictSent(Result<(), String>),
}

/// The outcome of checking a received image.
#[derive(Debug, Clone)]
pub struct Checked {
    /// SHA-256 of the received bytes.
    pub sha256: [u8; 32],
    /// Whether it matched the manifest.
    pub ok: bool,
    /// Where the image is now (the receive directory when it matched, the spool otherwise).
    pub path: std::path::PathBuf,
}

/// The handler of [`PORT`]: answers manifest requests, passes verdicts and finished bulk
/// objects to the main thread. Runs on the station's shard thread and never blocks.
pub struct SwapService {
    /// Our manifest, encoded once.
    pub manifest: Vec<u8>,
    /// Where notes go (bounded; a full queue drops the note rather than block the shard).
    pub notes: SyncSender<Note>,
}

impl Service for SwapService {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: &Message<'_>) {
        if message.is_reply() {
            return;
        }
        if message.payload.is_empty() {
            ctx.reply(message, self.manifest.clone());
            let _ = self.notes.try_send(Note::ManifestAsked {
                from: message.sender(),
            });
            return;
        }
        match message.decode::<Verdict>() {
            Ok(verdict) => {
                let _ = self.notes.try_send(Note::Verdict {
                    from: message.sender(),
                    verdict,
                });
            }
            Err(error) => eprintln!(
                "img_swap: ignored a message from station {} on port {PORT}: {error}",
                message.sender()
            ),
        }
    }

    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        let _ = self.notes.try_send(Note::Received(object.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_verdict_round_trip() {
        let manifest = Manifest {
            len: 4 << 30,
            sha256: [7; 32],
            name: "disk.qcow2".into(),
        };
        assert_eq!(Manifest::decode(&encode(&manifest)).unwrap(), manifest);
        let verdict = Verdict {
            ok: false,
            len: 12,
            sha256: [9; 32],
            name: "a.img".into(),
        };
        let bytes = encode(&verdict);
        assert_eq!(Verdict::decode(&bytes).unwrap(), verdict);
        // The two are told apart by their template id.
        assert!(Manifest::decode(&bytes).is_err());
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "/etc/passwd", "a\0b"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(!is_safe_name(&"x".repeat(256)));
        for good in ["a.img", "disk.qcow2", "..hidden", "x".repeat(255).as_str()] {
            assert!(is_safe_name(good), "{good:?}");
        }
    }
}
