//! What arrives, and how it is printed: one line per arrival, the payload as text when it is
//! printable UTF-8 and as hex otherwise, or one JSON object per line (`--json`).
//!
//! Handlers run on the station's thread and must not block, so they hand arrivals to the
//! main thread through a bounded queue ([`Printer`]); when it is full, arrivals are counted
//! and not shown.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use tamtam_engine::core::{BulkReceived, Context, Message, Service};

/// Arrivals the queue between handlers and the printing thread holds.
const QUEUE_CAPACITY: usize = 4096;

/// What kind of thing arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A fast-lane message to a port this station serves.
    Message,
    /// A fast-lane message to a group this station joined.
    Group,
    /// A stream frame, with its sequence number.
    Stream(u32),
    /// A bulk object, durable in the spool: its name, length and path.
    File {
        /// The object's name from the offer.
        name: String,
        /// Bytes.
        len: u64,
        /// Where it is.
        path: PathBuf,
    },
}

/// One arrival.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The port (or group) it arrived on.
    pub port: u16,
    /// The sending station.
    pub from: u32,
    /// What it is.
    pub kind: Kind,
    /// The payload (empty for files).
    pub payload: Vec<u8>,
}

/// Whether `bytes` read well as text: valid UTF-8 without control characters other than
/// newline, carriage return and tab.
pub fn printable(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .then_some(text)
}

/// The payload for a human: text (one trailing newline dropped) or `hex <digits>`.
pub fn payload_text(bytes: &[u8]) -> String {
    match printable(bytes) {
        Some(text) => text.strip_suffix('\n').unwrap_or(text).to_owned(),
        None => format!("hex {}", hex::encode(bytes)),
    }
}

/// Adds `"text"` or `"hex"` for `bytes` to a JSON object.
pub fn payload_json(object: &mut serde_json::Map<String, serde_json::Value>, bytes: &[u8]) {
    match printable(bytes) {
        Some(text) => object.insert("text".into(), text.into()),
        None => object.insert("hex".into(), hex::encode(bytes).into()),
    };
}

impl Arrival {
    /// The arrival as one line of text (or JSON).
    pub fn render(&self, json: bool) -> String {
        if json {
            let mut o = serde_json::Map::new();
            o.insert("port".into(), self.port.into());
            o.insert("from".into(), self.from.into());
            let kind = match &self.kind {
                Kind::Message => "message",
                Kind::Group => "group",
                Kind::Stream(sequence) => {
                    o.insert("sequence".into(), (*sequence).into());
                    "stream"
                }
                Kind::File { name, len, path } => {
                    o.insert("name".into(), name.clone().into());
                    o.insert("bytes".into(), (*len).into());
                    o.insert("path".into(), path.display().to_string().into());
                    "file"
                }
            };
            o.insert("kind".into(), kind.into());
            if !matches!(self.kind, Kind::File { .. }) {
                payload_json(&mut o, &self.payload);
            }
            return serde_json::Value::Object(o).to_string();
        }
        let (what, port) = match self.kind {
            Kind::Group => ("group", self.port),
            _ => ("port", self.port),
        };
        let body = match &self.kind {
            Kind::Message | Kind::Group => payload_text(&self.payload),
            Kind::Stream(sequence) => {
                format!("stream #{sequence}: {}", payload_text(&self.payload))
            }
            Kind::File { name, len, path } => {
                format!("file {name:?} {len} bytes at {}", path.display())
            }
        };
        format!("{what} {port} from {}: {body}", self.from)
    }
}

/// The handler side: serves a port by queueing what arrives for the printing thread.
pub struct Printer {
    queue: SyncSender<Arrival>,
    dropped: Arc<AtomicU64>,
    group: bool,
    spool_dir: PathBuf,
}

/// The printing side of the queue, and the count of arrivals it could not take.
pub struct Printed {
    /// Arrivals, in order.
    pub arrivals: Receiver<Arrival>,
    /// Arrivals dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
    queue: SyncSender<Arrival>,
}

impl Printed {
    /// A new queue.
    pub fn new() -> Printed {
        let (queue, arrivals) = sync_channel(QUEUE_CAPACITY);
        Printed {
            arrivals,
            dropped: Arc::new(AtomicU64::new(0)),
            queue,
        }
    }

    /// A handler feeding this queue; `group` marks a group's handler, `spool_dir` is where the
    /// station keeps bulk objects.
    pub fn printer(&self, group: bool, spool_dir: PathBuf) -> Printer {
        Printer {
            queue: self.queue.clone(),
            dropped: self.dropped.clone(),
            group,
            spool_dir,
        }
    }
}

impl Printer {
    fn push(&self, arrival: Arrival) {
        match self.queue.try_send(arrival) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Relaxed: a statistic read by the printing thread; nothing is ordered by it.
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Service for Printer {
    fn on_message(&mut self, ctx: &mut Context<'_>, m: &Message<'_>) {
        self.push(Arrival {
            port: ctx.port(),
            from: m.sender(),
            kind: if self.group {
                Kind::Group
            } else {
                Kind::Message
            },
            payload: m.payload.to_vec(),
        });
    }

    fn on_stream(&mut self, ctx: &mut Context<'_>, frame: &Message<'_>) {
        self.push(Arrival {
            port: ctx.port(),
            from: frame.sender(),
            kind: Kind::Stream(frame.header.sequence),
            payload: frame.payload.to_vec(),
        });
    }

    fn on_bulk(&mut self, ctx: &mut Context<'_>, object: &BulkReceived) {
        self.push(Arrival {
            port: ctx.port(),
            from: object.sender,
            kind: Kind::File {
                name: object.name.clone(),
                len: object.len,
                path: self.spool_dir.join(&object.spool_key),
            },
            payload: Vec::new(),
        });
    }
}

/// Writes one line to standard output; false when it is closed (`tamtam listen | head`).
pub fn out(line: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_hex() {
        assert_eq!(payload_text(b"hello\n"), "hello");
        assert_eq!(payload_text("žluťoučký kůň".as_bytes()), "žluťoučký kůň");
        assert_eq!(payload_text(&[0, 255, 7]), "hex 00ff07");
        assert_eq!(payload_text(b"a\x1bb"), "hex 611b62");
    }

    #[test]
    fn lines_and_json() {
        let arrival = Arrival {
            port: 2002,
            from: 7,
            kind: Kind::Message,
            payload: b"hi".to_vec(),
        };
        assert_eq!(arrival.render(false), "port 2002 from 7: hi");
        let json: serde_json::Value = serde_json::from_str(&arrival.render(true)).unwrap();
        assert_eq!(json["text"], "hi");
        assert_eq!(json["from"], 7);
        assert_eq!(json["kind"], "message");
        let binary = Arrival {
            payload: vec![1, 2],
            kind: Kind::Group,
            ..arrival
        };
        assert_eq!(binary.render(false), "group 2002 from 7: hex 0102");
        let json: serde_json::Value = serde_json::from_str(&binary.render(true)).unwrap();
        assert_eq!(json["hex"], "0102");
    }
}
