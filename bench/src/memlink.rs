//! An in-process link between two stations on two threads: a pair of single-producer
//! single-consumer byte rings (`rtrb`), one per direction, carrying length-prefixed frames.
//! It implements [`ExternalLink`], so each station's shard drives it every cycle.
//!
//! It exists for the `fast-rtt` and `fast-tput` in-process figures; a production memory
//! transport belongs in `tamtam-transports`.

use std::io;

use rtrb::{Consumer, Producer, RingBuffer};
use tamtam_engine::driver::ExternalLink;

/// Bytes of the length prefix of each frame in the ring.
const PREFIX: usize = 4;

/// One end of an in-process link.
pub struct MemLink {
    name: &'static str,
    tx: Producer<u8>,
    rx: Consumer<u8>,
    scratch: Vec<u8>,
    staged: Vec<u8>,
    dropped: u64,
}

/// Two connected ends; each direction buffers `capacity` bytes.
pub fn pair(capacity: usize) -> (MemLink, MemLink) {
    let (a_tx, b_rx) = RingBuffer::new(capacity);
    let (b_tx, a_rx) = RingBuffer::new(capacity);
    let end = |name, tx, rx| MemLink {
        name,
        tx,
        rx,
        scratch: Vec::with_capacity(64 * 1024),
        staged: Vec::with_capacity(64 * 1024),
        dropped: 0,
    };
    (end("mem a", a_tx, a_rx), end("mem b", b_tx, b_rx))
}

impl ExternalLink for MemLink {
    fn describe(&self) -> String {
        self.name.to_owned()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        let mut any = false;
        for _ in 0..frames_max {
            // Peek at the prefix (a chunk dropped without commit consumes nothing).
            let len = match self.rx.read_chunk(PREFIX) {
                Ok(chunk) => {
                    let (a, b) = chunk.as_slices();
                    let mut prefix = [0u8; PREFIX];
                    prefix[..a.len()].copy_from_slice(a);
                    prefix[a.len()..].copy_from_slice(b);
                    u32::from_le_bytes(prefix) as usize
                }
                Err(_) => break,
            };
            // The writer commits prefix and frame together, so the frame is complete.
            let Ok(chunk) = self.rx.read_chunk(PREFIX + len) else {
                break;
            };
            let (a, b) = chunk.as_slices();
            self.scratch.clear();
            self.scratch.extend_from_slice(a);
            self.scratch.extend_from_slice(b);
            chunk.commit_all();
            on_frame(&self.scratch[PREFIX..]);
            any = true;
        }
        Ok(any)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        let Ok(mut chunk) = self.tx.write_chunk(PREFIX + frame.len()) else {
            self.dropped += 1;
            return Ok(false);
        };
        self.staged.clear();
        self.staged
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.staged.extend_from_slice(frame);
        let (a, b) = chunk.as_mut_slices();
        let split = a.len();
        a.copy_from_slice(&self.staged[..split]);
        b.copy_from_slice(&self.staged[split..]);
        chunk.commit_all();
        Ok(true)
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_in_order_and_wrap() {
        let (mut a, mut b) = pair(100);
        for round in 0..50u8 {
            let frame = vec![round; 1 + usize::from(round) % 40];
            assert!(a.send(&frame).unwrap());
            let mut got = Vec::new();
            b.poll_recv(8, &mut |f| got.push(f.to_vec())).unwrap();
            assert_eq!(got, vec![frame]);
        }
        assert!(!a.send(&[0u8; 200]).unwrap());
        assert_eq!(a.dropped(), 1);
    }
}
