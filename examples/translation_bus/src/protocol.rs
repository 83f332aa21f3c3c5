//! The payloads the translation bus carries, as TPF messages (`spec/payload/TPF-v1.md`), so a
//! C or C# station can speak the same protocol from the schema alone.
//!
//! A client sends a [`TranslateRequest`] to the language port of the *target* language
//! (`tamtam_engine::core::registry::language_port`), addressed to "any server of the port"
//! and sent from [`REPLY_PORT`]. The server that takes it answers on the same conversation
//! (route id) with a sequence of [`TranslateReply`] messages to the client's [`REPLY_PORT`]:
//!
//! ```text
//!  Accepted(server)  Partial(seq 0) Partial(seq 1) …  Done(seq n, full text)
//!  Accepted(server)  Error(seq 0, message)
//! ```
//!
//! `Accepted` comes from the handler itself, in the cycle that took the request, so the
//! client learns which server holds it and can fail over when that server disappears. A
//! LibreTranslate server sends no partials; an AI server sends one `Partial` per chunk the
//! model yields. Every reply is a fast-lane message with ACK: none is lost while the client is
//! reachable, and `seq` lets the client put them back in order (the fast lane resends lost
//! frames, so two replies may arrive out of order).

use tamtam_tpf::{Tpf, TpfEnum, TpfMessage};

/// The application port clients receive replies on. Replies are addressed to the client
/// station, so every client may use the same port.
pub const REPLY_PORT: u16 = 4100;

/// TPF schema id of this example's messages.
pub const SCHEMA_ID: u16 = 70;

/// Longest text accepted in a request or a reply, in bytes (well under the fast lane's
/// 1 MiB payload limit, so a reply with the whole text always fits in one frame).
pub const TEXT_LEN_MAX: usize = 256 * 1024;

/// Longest language code or format name, in bytes.
pub const CODE_LEN_MAX: usize = 16;

/// A translation request.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 70, template = 1, version = 1)]
pub struct TranslateRequest {
    /// Source language code (ISO 639-1), or `auto` to let the translator detect it.
    #[tpf(max = 16)]
    pub source: String,
    /// Target language code (ISO 639-1). Carried explicitly because a request to an unserved
    /// language port arrives on the AI port, which serves every language.
    #[tpf(max = 16)]
    pub target: String,
    /// `text` or `html`, passed to LibreTranslate as is.
    #[tpf(max = 16)]
    pub format: String,
    /// The text to translate.
    #[tpf(max = 262144)]
    pub text: String,
}

/// What a [`TranslateReply`] says.
#[derive(TpfEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyKind {
    /// The server took the request; `text` is empty.
    Accepted = 1,
    /// A piece of the result (AI servers); the pieces in `seq` order make the result.
    Partial = 2,
    /// The complete result in `text`; the conversation ends.
    Done = 3,
    /// The request failed; `text` says why; the conversation ends.
    Error = 4,
}

/// One reply of a conversation.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 70, template = 2, version = 1)]
pub struct TranslateReply {
    /// What this reply says.
    pub kind: ReplyKind,
    /// Position among the `Partial`, `Done` and `Error` replies of the conversation, from 0
    /// (`Accepted` carries 0 and is not counted).
    pub seq: u32,
    /// The station that serves the request.
    pub server: u32,
    /// The port the request was served on (its language port, or an AI port on fallback).
    pub port: u16,
    /// The partial or complete text, or the error message.
    #[tpf(max = 262144)]
    pub text: String,
}

const _: () = assert!(TEXT_LEN_MAX == 262_144);
const _: () = assert!(CODE_LEN_MAX == 16);

/// Encodes a TPF message into a fresh buffer.
pub fn encode<T: TpfMessage>(value: &T) -> Result<Vec<u8>, tamtam_tpf::Error> {
    let mut payload = vec![0u8; value.encoded_len()];
    let n = value.encode(&mut payload)?;
    payload.truncate(n);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_round_trip() {
        let request = TranslateRequest {
            source: "auto".into(),
            target: "de".into(),
            format: "text".into(),
            text: "Hello, world".into(),
        };
        let bytes = encode(&request).unwrap();
        assert_eq!(TranslateRequest::decode(&bytes).unwrap(), request);
        let reply = TranslateReply {
            kind: ReplyKind::Partial,
            seq: 3,
            server: 7,
            port: 1001,
            text: "Hal".into(),
        };
        let bytes = encode(&reply).unwrap();
        assert_eq!(TranslateReply::decode(&bytes).unwrap(), reply);
        // A request is never mistaken for a reply: the template id differs.
        assert!(TranslateReply::decode(&encode(&request).unwrap()).is_err());
    }

    #[test]
    fn oversized_text_is_refused_not_truncated() {
        let request = TranslateRequest {
            source: "auto".into(),
            target: "de".into(),
            format: "text".into(),
            text: "x".repeat(TEXT_LEN_MAX + 1),
        };
        assert!(encode(&request).is_err());
    }
}
