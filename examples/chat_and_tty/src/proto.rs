//! Ports and TPF messages of the chat and the remote terminal.
//!
//! Every payload is a `#[derive(Tpf)]` message (schema 1101), so each one is validated on
//! receipt: a malformed or oversized payload is refused by `decode`, never trusted.

use tamtam_tpf::Tpf;

/// The hub's port: `Hello` (a request, answered with `Welcome`) and `Bye`.
pub const HUB: u16 = 1200;
/// The user port: direct messages to one station (`Recipient::Station`). Every client serves it.
pub const USER: u16 = 1201;
/// The broadcast port: messages to every client (`Recipient::Broadcast`).
pub const ALL: u16 = 1202;
/// Presence notices from the hub (joins and leaves), broadcast to every client.
pub const PRESENCE: u16 = 1203;
/// The first group port. A group named `g` lives on `group_port(g)`; the hub is a member of
/// every group port so that it can keep each group's recent history.
pub const GROUP_FIRST: u16 = 1300;
/// How many group ports there are (1300–1399).
pub const GROUP_PORTS: u16 = 100;

/// The remote terminal server's port: `TtyOpen`, `TtyInput`, `TtyClose`.
pub const TTY_CONTROL: u16 = 1250;
/// The terminal client's port: `TtyOpened`, `TtyExited` from the server.
pub const TTY_CLIENT: u16 = 1251;
/// The stream port of terminal output; the stream id is the session id.
pub const TTY_OUTPUT: u16 = 1252;

/// Longest user or group name, in bytes.
pub const NAME_LEN_MAX: usize = 32;
/// Longest chat text, in bytes.
pub const TEXT_LEN_MAX: usize = 1000;
/// Most groups one client joins.
pub const GROUPS_PER_CLIENT_MAX: usize = 16;
/// Most history lines the hub keeps (and replays) per group.
pub const HISTORY_LINES_MAX: usize = 50;
/// Most keyboard bytes in one `TtyInput`.
pub const INPUT_BYTES_MAX: usize = 4096;

/// The port of group `name`: a stable hash of the name onto the group ports. Two names may
/// share a port; every message carries its group's name and clients keep only their groups'.
pub fn group_port(name: &str) -> u16 {
    // FNV-1a: stable across runs, platforms and implementations (a std hasher is not).
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    GROUP_FIRST + (hash % u32::from(GROUP_PORTS)) as u16
}

/// Whether `name` is a valid user or group name: 1–32 ASCII letters, digits, `-` or `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A client's greeting to the hub (a request; the reply is a [`Welcome`]).
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 1)]
pub struct Hello {
    /// The user's name.
    #[tpf(max = 32)]
    pub name: String,
    /// The groups the client joined (it already serves their ports).
    #[tpf(max = 16, item_max = 32)]
    pub groups: Vec<String>,
}

/// One chat line: a direct, group or broadcast message, or a line of group history.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 2)]
pub struct ChatLine {
    /// Who wrote it.
    #[tpf(max = 32)]
    pub from: String,
    /// The group's name (empty for direct and broadcast messages).
    #[tpf(max = 32)]
    pub group: String,
    /// The text.
    #[tpf(max = 1000)]
    pub text: String,
}

/// The hub's answer to [`Hello`].
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 3)]
pub struct Welcome {
    /// Empty when accepted; otherwise why not (the client prints it and exits).
    #[tpf(max = 200)]
    pub error: String,
    /// Who is online (names), including the new client.
    #[tpf(max = 1024, item_max = 32)]
    pub online: Vec<String>,
    /// Their station ids, in the same order.
    #[tpf(max = 1024)]
    pub stations: Vec<u32>,
    /// Recent history of the client's groups, oldest first per group.
    #[tpf(max = 800)]
    pub history: Vec<ChatLine>,
}

/// A presence notice from the hub: someone joined or left.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 4)]
pub struct Presence {
    /// Joined (true) or left (false).
    pub joined: bool,
    /// Left without saying goodbye (its station became unreachable).
    pub lost: bool,
    /// Who.
    #[tpf(max = 32)]
    pub name: String,
    /// Who is online now (names).
    #[tpf(max = 1024, item_max = 32)]
    pub online: Vec<String>,
    /// Their station ids, in the same order.
    #[tpf(max = 1024)]
    pub stations: Vec<u32>,
}

/// A client's goodbye to the hub.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 5)]
pub struct Bye {
    /// The name it had.
    #[tpf(max = 32)]
    pub name: String,
}

/// Opens a terminal session: the server spawns a shell in a pty of this size.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 10)]
pub struct TtyOpen {
    /// The session id the client chose (non-zero, random): also the output stream's id, so
    /// the client can tell its output from the first frame on.
    pub session: u32,
    /// Terminal rows.
    pub rows: u16,
    /// Terminal columns.
    pub cols: u16,
    /// The client's `TERM`.
    #[tpf(max = 64)]
    pub term: String,
}

/// The server's answer to [`TtyOpen`], sent to the client's [`TTY_CLIENT`] port.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 11)]
pub struct TtyOpened {
    /// The session id (also the output stream's id); 0 when refused.
    pub session: u32,
    /// Empty when opened; otherwise why not.
    #[tpf(max = 200)]
    pub error: String,
}

/// Keyboard input or a resize, in order: `seq` counts from 0 per session, and the client
/// sends the next one only once the previous one was acknowledged.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 12)]
pub struct TtyInput {
    /// The session.
    pub session: u32,
    /// Position in the session's input sequence.
    pub seq: u64,
    /// New terminal rows, or 0 (no resize).
    pub rows: u16,
    /// New terminal columns, or 0 (no resize).
    pub cols: u16,
    /// Keyboard bytes, written to the pty as they are (0x03 is Ctrl-C).
    #[tpf(max = 4096)]
    pub data: Vec<u8>,
}

/// The client leaves: the server hangs up the session's shell.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 13)]
pub struct TtyClose {
    /// The session.
    pub session: u32,
}

/// The session's program exited.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1101, template = 14)]
pub struct TtyExited {
    /// The session.
    pub session: u32,
    /// Its exit code.
    pub code: u32,
    /// Output frames sent in all (the client waits, boundedly, for the last ones).
    pub frames: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tamtam_tpf::TpfMessage;

    #[test]
    fn group_ports_are_stable_and_in_range() {
        // Stability matters: every client computes the port on its own.
        assert_eq!(group_port("ops"), group_port("ops"));
        for name in ["ops", "dev", "a", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            let port = group_port(name);
            assert!((GROUP_FIRST..GROUP_FIRST + GROUP_PORTS).contains(&port));
        }
        assert_ne!(group_port("ops"), group_port("dev"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("alice"));
        assert!(valid_name("a-b_9"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name(&"x".repeat(33)));
    }

    #[test]
    fn oversized_text_is_refused_on_encode_and_decode() {
        let line = ChatLine {
            from: "a".into(),
            group: String::new(),
            text: "x".repeat(TEXT_LEN_MAX + 1),
        };
        let mut buf = vec![0u8; line.encoded_len() + 16];
        assert!(line.encode(&mut buf).is_err());
        assert!(ChatLine::decode(b"\x01\x02garbage").is_err());
    }
}
