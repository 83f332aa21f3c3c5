//! Stream framing for reliable, ordered byte-stream links (TCP, Unix stream sockets, pipes, TLS).
//!
//! Each frame is preceded by its length as a little-endian `u32`:
//!
//! ```text
//! +-------+-------+-------+-------+----------------------------------+
//! |        frame_len (u32 LE)     |  frame (frame_len bytes, v1)      |
//! +-------+-------+-------+-------+----------------------------------+
//! ```
//!
//! `frame_len` must lie in `BASE_HEADER_LEN..=frame_len_max`. The prefix makes the framer
//! independent of the frame format (a relay forwards frames it does not parse), and lets a
//! receiver reject an oversized frame from the first four bytes, before buffering any of it.
//!
//! [`StreamDecoder`] accepts input split at any byte boundary, holds at most
//! `4 + frame_len_max` bytes, and never allocates after construction. A framing error means
//! the byte stream has lost sync: there is no way to find the next frame boundary, so the
//! decoder stays failed and the link must be closed (`spec/wire/Frame-v1.md` §7).

use super::frame::{
    BASE_HEADER_LEN, FrameError, Header, PAYLOAD_LEN_MAX_PROTOCOL, SEGMENTED_HEADER_LEN,
    write_header,
};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a byte stream cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A length prefix larger than the receiver's limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared frame length.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },
    /// A length prefix smaller than a frame header.
    #[error("frame of {len} bytes is shorter than a header ({BASE_HEADER_LEN})")]
    FrameTooSmall {
        /// The declared frame length.
        len: u32,
    },
    /// An earlier error left the stream out of sync; the link must be closed.
    #[error("stream out of sync after an earlier framing error")]
    Poisoned,
}

impl StreamError {
    /// The spec name of the error, as used by the golden vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            StreamError::FrameTooLarge { .. } => "FrameTooLarge",
            StreamError::FrameTooSmall { .. } => "FrameTooSmall",
            StreamError::Poisoned => "Poisoned",
        }
    }
}

/// Reassembles length-prefixed frames from a byte stream split at arbitrary points.
///
/// Call order: write received bytes with [`feed`](Self::feed) (or read straight into
/// [`spare`](Self::spare) and then [`commit`](Self::commit)); then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. A returned frame borrows the
/// decoder until the next call.
#[derive(Debug)]
pub struct StreamDecoder {
    buffer: Box<[u8]>,
    /// First unconsumed byte.
    start: usize,
    /// One past the last received byte.
    end: usize,
    frame_len_max: u32,
    failed: bool,
}

impl StreamDecoder {
    /// A decoder accepting frames of at most `frame_len_max` bytes (header + payload).
    ///
    /// # Panics
    /// If `frame_len_max` is below a base header or above the protocol maximum: a
    /// configuration bug.
    pub fn new(frame_len_max: u32) -> StreamDecoder {
        assert!(frame_len_max as usize >= BASE_HEADER_LEN);
        assert!(frame_len_max as usize <= PAYLOAD_LEN_MAX_PROTOCOL as usize + SEGMENTED_HEADER_LEN);
        StreamDecoder {
            buffer: vec![0u8; PREFIX_LEN + frame_len_max as usize].into_boxed_slice(),
            start: 0,
            end: 0,
            frame_len_max,
            failed: false,
        }
    }

    /// The largest frame this decoder accepts.
    pub fn frame_len_max(&self) -> u32 {
        self.frame_len_max
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Whether a framing error has poisoned the decoder.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Moves unconsumed bytes to the front so that [`spare`](Self::spare) is as large as it
    /// can be. Amortised: runs only when the tail has no room.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Free space to read into. Empty only while a complete frame waits in the buffer.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buffer.len() {
            self.compact();
        }
        &mut self.buffer[self.end..]
    }

    /// Records that `n` bytes were written into [`spare`](Self::spare).
    ///
    /// # Panics
    /// If `n` exceeds the spare space last returned: a caller bug.
    pub fn commit(&mut self, n: usize) {
        assert!(
            self.end + n <= self.buffer.len(),
            "commit beyond spare space"
        );
        self.end += n;
    }

    /// Copies as much of `input` as fits and returns how many bytes were taken. The caller
    /// drains frames with [`next_frame`](Self::next_frame) and feeds the rest.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(input.len());
        spare[..n].copy_from_slice(&input[..n]);
        self.commit(n);
        n
    }

    /// The next complete frame (without its prefix), `Ok(None)` when more bytes are needed, or
    /// the framing error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if self.failed {
            return Err(StreamError::Poisoned);
        }
        let available = self.end - self.start;
        if available < PREFIX_LEN {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&self.buffer[self.start..self.start + PREFIX_LEN]);
        let len = u32::from_le_bytes(prefix);
        if len > self.frame_len_max {
            self.failed = true;
            return Err(StreamError::FrameTooLarge {
                len,
                max: self.frame_len_max,
            });
        }
        if (len as usize) < BASE_HEADER_LEN {
            self.failed = true;
            return Err(StreamError::FrameTooSmall { len });
        }
        let total = PREFIX_LEN + len as usize;
        if available < total {
            // Make room for the rest of this frame if it would not fit behind `start`.
            if self.start + total > self.buffer.len() {
                self.compact();
            }
            return Ok(None);
        }
        let frame_start = self.start + PREFIX_LEN;
        self.start += total;
        Ok(Some(&self.buffer[frame_start..frame_start + len as usize]))
    }
}

/// Encodes a length-prefixed frame into `out` and returns the bytes written.
///
/// Errors come in the same order as from [`encode`](super::frame::encode): an invalid header
/// first, then an oversized payload, then a buffer too small (whose sizes include the prefix).
pub fn encode_prefixed(
    header: &Header,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, FrameError> {
    // Split without assuming room for the prefix, so that a tiny buffer still reports a bad
    // header or an oversized payload first, exactly as `encode` would.
    let (prefix, rest) = out.split_at_mut(out.len().min(PREFIX_LEN));
    let header_len = write_header(header, payload.len(), rest).map_err(|e| match e {
        FrameError::BufferTooSmall { needed, had } => FrameError::BufferTooSmall {
            needed: needed + PREFIX_LEN,
            had: had + prefix.len(),
        },
        other => other,
    })?;
    // `write_header` succeeded, so `rest` is non-empty and the prefix got all its bytes.
    debug_assert_eq!(prefix.len(), PREFIX_LEN);
    let len = header_len + payload.len();
    rest[header_len..len].copy_from_slice(payload);
    super::frame::seal(&mut rest[..len]);
    prefix.copy_from_slice(&(len as u32).to_le_bytes());
    Ok(PREFIX_LEN + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::frame::{DecodeOptions, FrameView, Lane, PacketType};

    fn stream_of(count: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut wire = Vec::new();
        let mut payloads = Vec::new();
        for i in 0..count {
            let payload: Vec<u8> = (0..(i * 7) % 50).map(|b| b as u8).collect();
            let header = Header {
                request_id: i as u64,
                ..Header::new(Lane::Fast, PacketType::Data)
            };
            let mut out = vec![0u8; 4 + 48 + payload.len()];
            let n = encode_prefixed(&header, &payload, &mut out).unwrap();
            wire.extend_from_slice(&out[..n]);
            payloads.push(payload);
        }
        (wire, payloads)
    }

    fn drain(decoder: &mut StreamDecoder, got: &mut Vec<Vec<u8>>) {
        while let Some(frame) = decoder.next_frame().unwrap() {
            let view = FrameView::decode(frame, DecodeOptions::default()).unwrap();
            assert_eq!(view.request_id(), got.len() as u64);
            got.push(view.payload().to_vec());
        }
    }

    #[test]
    fn every_split_point_of_a_stream() {
        let (wire, payloads) = stream_of(6);
        for split in 0..=wire.len() {
            let mut decoder = StreamDecoder::new(256);
            let mut got = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let n = decoder.feed(rest);
                    rest = &rest[n..];
                    drain(&mut decoder, &mut got);
                }
            }
            assert_eq!(got, payloads, "split at {split}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte_in_a_buffer_just_large_enough() {
        let (wire, payloads) = stream_of(20);
        let mut decoder = StreamDecoder::new(48 + 49);
        let mut got = Vec::new();
        for byte in &wire {
            assert_eq!(decoder.feed(std::slice::from_ref(byte)), 1);
            drain(&mut decoder, &mut got);
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn oversized_prefix_fails_at_once_and_poisons() {
        let mut decoder = StreamDecoder::new(1024);
        decoder.feed(&2000u32.to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(StreamError::FrameTooLarge {
                len: 2000,
                max: 1024
            })
        );
        assert_eq!(decoder.next_frame(), Err(StreamError::Poisoned));
    }

    #[test]
    fn encode_prefixed_reports_errors_in_the_order_of_encode() {
        // Regression: a buffer shorter than the prefix used to answer `BufferTooSmall` before
        // the header was validated, unlike `encode`.
        let invalid = Header::new(Lane::Fast, PacketType::Stream);
        for len in [0, 3, 4, 60] {
            let mut out = vec![0u8; len];
            assert!(
                matches!(
                    encode_prefixed(&invalid, b"x", &mut out),
                    Err(FrameError::TypeNotAllowedOnLane { .. })
                ),
                "buffer of {len} bytes"
            );
        }
        let valid = Header::new(Lane::Fast, PacketType::Data);
        let oversized = vec![0u8; PAYLOAD_LEN_MAX_PROTOCOL as usize + 1];
        assert!(matches!(
            encode_prefixed(&valid, &oversized, &mut [0u8; 2]),
            Err(FrameError::Oversize { .. })
        ));
        let mut out = [0u8; 2];
        assert_eq!(
            encode_prefixed(&valid, b"xyz", &mut out),
            Err(FrameError::BufferTooSmall {
                needed: PREFIX_LEN + BASE_HEADER_LEN + 3,
                had: 2
            })
        );
        let mut out = [0u8; 30];
        assert_eq!(
            encode_prefixed(&valid, b"xyz", &mut out),
            Err(FrameError::BufferTooSmall {
                needed: PREFIX_LEN + BASE_HEADER_LEN + 3,
                had: 30
            })
        );
    }

    #[test]
    fn undersized_prefix_fails() {
        let mut decoder = StreamDecoder::new(1024);
        decoder.feed(&10u32.to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(StreamError::FrameTooSmall { len: 10 })
        );
    }
}
