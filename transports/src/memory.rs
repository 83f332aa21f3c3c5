//! In-process links for tests and embedding: two bounded SPSC byte rings ([`rtrb`]), one per
//! direction, carrying records framed like TamTam's stream links:
//!
//! ```text
//! +-------+-------+-------+-------+----------------------------------+
//! |        frame_len (u32 LE)     |  frame (frame_len bytes, v1)      |
//! +-------+-------+-------+-------+----------------------------------+
//! ```
//!
//! A record is written whole or not at all, so the reader never sees half a frame. The ring
//! is bounded in bytes; a full ring makes `send` answer `Ok(false)` (dropped, counted; the
//! bus resends). A frame above `frame_len_max` is refused at `send` (counted as oversize,
//! logged; the link survives). Dropping one end closes the link: the other end delivers what
//! is still queued, then reports the peer gone.
//!
//! [`pair`] makes one connected pair; [`listener`] makes a listener and a connector, so that
//! a station can accept memory links and a test can reconnect after a cut.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use rtrb::{Consumer, Producer, RingBuffer};
use tamtam_engine::core::wire::frame::BASE_HEADER_LEN;

use crate::{DropKind, ExternalLink, ExternalListener, LinkCounters, closed};

/// Bytes of the length prefix of a record.
pub const PREFIX_LEN: usize = 4;

/// Settings of a memory link pair.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Capacity of each direction's ring in bytes (at least one largest record).
    pub capacity_bytes: usize,
    /// Largest frame carried.
    pub frame_len_max: u32,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            capacity_bytes: 4 << 20,
            frame_len_max: crate::frame_len_max_for(
                tamtam_engine::core::wire::frame::PAYLOAD_LEN_MAX_DEFAULT,
            ),
        }
    }
}

/// One end of an in-process link.
pub struct MemoryLink {
    name: String,
    tx: Producer<u8>,
    rx: Consumer<u8>,
    /// Where a record that wraps around the end of the ring is made contiguous.
    scratch: Vec<u8>,
    frame_len_max: u32,
    counters: Arc<LinkCounters>,
}

static PAIRS: AtomicU64 = AtomicU64::new(0);

/// A connected pair of memory links.
///
/// # Panics
/// If the capacity cannot hold one largest record (a configuration bug).
pub fn pair(config: &MemoryConfig) -> (MemoryLink, MemoryLink) {
    assert!(config.frame_len_max as usize >= BASE_HEADER_LEN);
    assert!(
        config.capacity_bytes >= PREFIX_LEN + config.frame_len_max as usize,
        "memory ring smaller than one largest record"
    );
    let n = PAIRS.fetch_add(1, Ordering::Relaxed);
    let (a_tx, b_rx) = RingBuffer::new(config.capacity_bytes);
    let (b_tx, a_rx) = RingBuffer::new(config.capacity_bytes);
    let end = |side: &str, tx, rx| MemoryLink {
        name: format!("memory #{n}{side}"),
        tx,
        rx,
        scratch: Vec::new(),
        frame_len_max: config.frame_len_max,
        counters: LinkCounters::shared(),
    };
    (end("a", a_tx, a_rx), end("b", b_tx, b_rx))
}

impl MemoryLink {
    /// This end's counters.
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// Writes raw bytes into the outgoing ring, bypassing the framer (tests inject garbage
    /// with it). Returns how many bytes fit.
    pub fn inject_raw(&mut self, bytes: &[u8]) -> usize {
        let (taken, _) = self.tx.push_partial_slice(bytes);
        taken.len()
    }
}

impl ExternalLink for MemoryLink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        let mut any = false;
        for _ in 0..frames_max {
            let available = self.rx.slots();
            if available < PREFIX_LEN {
                break;
            }
            let mut prefix = [0u8; PREFIX_LEN];
            {
                let chunk = self.rx.read_chunk(PREFIX_LEN).expect("slots checked");
                let (first, second) = chunk.as_slices();
                prefix[..first.len()].copy_from_slice(first);
                prefix[first.len()..].copy_from_slice(second);
                // Not committed: the prefix stays until the whole record is read.
            }
            let len = u32::from_le_bytes(prefix);
            if len > self.frame_len_max || (len as usize) < BASE_HEADER_LEN {
                // Records are written whole by our own `send`; only `inject_raw` or a bug
                // gets here. The byte stream has lost sync: close, as stream links do.
                self.counters.drop_frame(
                    DropKind::Malformed,
                    &self.name,
                    format_args!("length {len}"),
                );
                return Err(closed(
                    io::ErrorKind::InvalidData,
                    &self.name,
                    format_args!("record length {len} outside 48..={}", self.frame_len_max),
                ));
            }
            let total = PREFIX_LEN + len as usize;
            if available < total {
                break;
            }
            let chunk = self.rx.read_chunk(total).expect("slots checked");
            let (first, second) = chunk.as_slices();
            if second.is_empty() {
                on_frame(&first[PREFIX_LEN..]);
            } else {
                self.scratch.clear();
                self.scratch.extend_from_slice(first);
                self.scratch.extend_from_slice(second);
                on_frame(&self.scratch[PREFIX_LEN..]);
            }
            chunk.commit_all();
            LinkCounters::add(&self.counters.wire_bytes_received, total as u64);
            self.counters.received(len as usize);
            any = true;
        }
        if !any && self.rx.is_abandoned() && self.rx.is_empty() {
            return Err(closed(
                io::ErrorKind::ConnectionAborted,
                &self.name,
                "peer closed",
            ));
        }
        Ok(any)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if self.tx.is_abandoned() {
            return Err(closed(
                io::ErrorKind::ConnectionAborted,
                &self.name,
                "peer closed",
            ));
        }
        if frame.len() > self.frame_len_max as usize {
            self.counters.drop_frame(
                DropKind::Oversize,
                &self.name,
                format_args!(
                    "frame of {} bytes exceeds the link limit of {}",
                    frame.len(),
                    self.frame_len_max
                ),
            );
            return Ok(false);
        }
        let total = PREFIX_LEN + frame.len();
        if self.tx.slots() < total {
            self.counters
                .drop_frame(DropKind::SendFull, &self.name, format_args!("ring full"));
            return Ok(false);
        }
        // One producer: the free slots only grow between the check and the pushes.
        self.tx
            .push_entire_slice(&(frame.len() as u32).to_le_bytes())
            .expect("slots checked");
        self.tx.push_entire_slice(frame).expect("slots checked");
        LinkCounters::add(&self.counters.wire_bytes_sent, total as u64);
        self.counters.sent(frame.len());
        Ok(true)
    }

    fn dropped(&self) -> u64 {
        self.counters.dropped()
    }
}

/// Accepts memory links made by its [`MemoryConnector`]s.
pub struct MemoryListener {
    name: String,
    incoming: Receiver<MemoryLink>,
    counters: Arc<LinkCounters>,
}

/// Makes memory links to one [`MemoryListener`]. Cloning shares the listener.
#[derive(Clone)]
pub struct MemoryConnector {
    name: String,
    config: MemoryConfig,
    outgoing: SyncSender<MemoryLink>,
}

/// Connections waiting to be accepted at most.
pub const BACKLOG: usize = 16;

/// A listener named `name` and a connector to it.
pub fn listener(name: &str, config: MemoryConfig) -> (MemoryListener, MemoryConnector) {
    let (outgoing, incoming) = mpsc::sync_channel(BACKLOG);
    (
        MemoryListener {
            name: name.to_owned(),
            incoming,
            counters: LinkCounters::shared(),
        },
        MemoryConnector {
            name: name.to_owned(),
            config,
            outgoing,
        },
    )
}

impl MemoryConnector {
    /// Opens a link to the listener; the listener's station accepts the other end on its
    /// next cycle. Fails if the listener is gone or its backlog is full.
    pub fn connect(&self) -> io::Result<MemoryLink> {
        let (ours, theirs) = pair(&self.config);
        match self.outgoing.try_send(theirs) {
            Ok(()) => Ok(ours),
            Err(TrySendError::Full(_)) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("memory listener {}: backlog full", self.name),
            )),
            Err(TrySendError::Disconnected(_)) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("memory listener {}: gone", self.name),
            )),
        }
    }
}

impl MemoryListener {
    /// Counters shared by every link this listener accepts (their sum).
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }
}

impl ExternalListener for MemoryListener {
    fn describe(&self) -> String {
        format!("memory listener {}", self.name)
    }

    fn accept(&mut self) -> io::Result<Option<Box<dyn ExternalLink>>> {
        match self.incoming.try_recv() {
            Ok(mut link) => {
                link.counters = self.counters.clone();
                Ok(Some(Box::new(link)))
            }
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; len];
        f[0] = b'T';
        f
    }

    fn drain(link: &mut MemoryLink) -> io::Result<Vec<Vec<u8>>> {
        let mut got = Vec::new();
        link.poll_recv(usize::MAX, &mut |f| got.push(f.to_vec()))?;
        Ok(got)
    }

    #[test]
    fn frames_cross_in_order_also_when_records_wrap() {
        let config = MemoryConfig {
            capacity_bytes: 300,
            frame_len_max: 200,
        };
        let (mut a, mut b) = pair(&config);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..100u8 {
            let f = frame(48 + (i as usize * 7) % 150, i);
            assert!(a.send(&f).unwrap());
            expected.push(f);
            got.extend(drain(&mut b).unwrap());
        }
        assert_eq!(got, expected);
        assert_eq!(a.counters().snapshot().frames_sent, 100);
        assert_eq!(b.counters().snapshot().frames_received, 100);
    }

    #[test]
    fn full_ring_and_oversize_are_refused_and_counted() {
        let config = MemoryConfig {
            capacity_bytes: 256,
            frame_len_max: 200,
        };
        let (mut a, mut b) = pair(&config);
        assert!(a.send(&frame(200, 1)).unwrap());
        assert!(!a.send(&frame(200, 2)).unwrap());
        assert!(!a.send(&frame(201, 3)).unwrap());
        let c = a.counters().snapshot();
        assert_eq!((c.send_full, c.oversize), (1, 1));
        assert_eq!(drain(&mut b).unwrap(), vec![frame(200, 1)]);
        assert!(
            a.send(&frame(200, 2)).unwrap(),
            "room again after the reader drained"
        );
    }

    #[test]
    fn closing_one_end_delivers_the_rest_then_fails() {
        let (mut a, mut b) = pair(&MemoryConfig::default());
        assert!(a.send(&frame(60, 9)).unwrap());
        drop(a);
        assert_eq!(drain(&mut b).unwrap().len(), 1);
        assert!(drain(&mut b).is_err());
        assert!(b.send(&frame(60, 9)).is_err());
    }

    #[test]
    fn garbage_length_closes_the_link() {
        let (mut a, mut b) = pair(&MemoryConfig::default());
        a.inject_raw(&u32::MAX.to_le_bytes());
        assert!(drain(&mut b).is_err());
        assert_eq!(b.counters().snapshot().malformed, 1);
    }

    #[test]
    fn listener_accepts_connector_links() {
        let (mut listener, connector) = listener("l", MemoryConfig::default());
        assert!(listener.accept().unwrap().is_none());
        let mut ours = connector.connect().unwrap();
        let mut theirs = listener.accept().unwrap().expect("accepted");
        assert!(ours.send(&frame(50, 5)).unwrap());
        let mut got = Vec::new();
        theirs.poll_recv(10, &mut |f| got.push(f.to_vec())).unwrap();
        assert_eq!(got, vec![frame(50, 5)]);
        drop(listener);
        assert!(connector.connect().is_err());
    }
}
