//! Consistent Overhead Byte Stuffing (COBS), streaming, with a `0x00` delimiter after every
//! packet: the framing of byte links without their own packet boundaries (serial lines).
//!
//! COBS rewrites a packet so that it contains no zero byte, at a cost of one byte per 254
//! (plus one): a zero can then mark the end of every packet. A receiver that joins in the
//! middle, or loses bytes, resynchronises at the next zero. Encoded, a packet is a chain of
//! blocks, each a code byte `c` (1..=255) followed by `c - 1` non-zero data bytes; every
//! block with `c < 255` stands for its data followed by one zero, except the last:
//!
//! ```text
//! packet   11 22 00 33            (4 bytes)
//! encoded  03 11 22 02 33 00      (code 03: "11 22" then a zero; code 02: "33"; delimiter)
//! ```
//!
//! [`CobsDecoder`] is written here rather than taken from a crate because the serial link
//! needs exactly this streaming shape: decoding in place as bytes arrive, with a hard bound on
//! the decoded size, an oversize report as soon as the bound is crossed (an endless packet
//! costs neither memory nor an endless wait for its report), and resynchronisation at every
//! zero. It is small and fuzzed (`fuzz/fuzz_targets/cobs_framer.rs`).

/// The delimiter ending every encoded packet.
pub const DELIMITER: u8 = 0;

/// Bytes a packet of `len` bytes occupies once encoded, delimiter included, at most.
pub const fn max_encoded_len(len: usize) -> usize {
    // One code byte per 254 data bytes, one more for the last block, one delimiter.
    len + len / 254 + 2
}

/// Appends the COBS encoding of `packet` and a delimiter to `out`; returns the bytes added.
pub fn encode(packet: &[u8], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.reserve(max_encoded_len(packet.len()));
    let mut code_at = out.len();
    out.push(0);
    let mut code: u8 = 1;
    for &byte in packet {
        if byte == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(byte);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out.push(DELIMITER);
    let added = out.len() - start;
    debug_assert!(added <= max_encoded_len(packet.len()));
    added
}

/// What the decoder found in the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete packet (borrowed until the next call).
    Packet(&'a [u8]),
    /// A delimiter arrived in the middle of a block: bytes were lost or corrupted.
    Truncated {
        /// Bytes decoded before the break.
        len: usize,
    },
    /// The packet grew past the bound. Reported once, as soon as it happens; the rest of the
    /// packet is skipped up to the next delimiter.
    Oversize {
        /// The bound.
        max: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a packet.
    Collecting,
    /// Skipping to the next delimiter after an oversize packet.
    Skipping,
}

/// Reassembles COBS packets from a byte stream split anywhere. Holds at most `packet_len_max`
/// bytes and never allocates after construction.
///
/// Call order: [`decode`](Self::decode) with the received bytes; it consumes bytes up to and
/// including the first delimiter (or all of them) and returns what that delimiter ended, if
/// anything; call it again with the rest.
#[derive(Debug)]
pub struct CobsDecoder {
    buffer: Box<[u8]>,
    len: usize,
    /// Data bytes still expected in the current block (0: the next byte is a code byte).
    remaining: u8,
    /// The current block ends with an implicit zero (unless it is the last block).
    pending_zero: bool,
    /// Any byte of the current packet was seen.
    started: bool,
    state: State,
}

impl CobsDecoder {
    /// A decoder for packets of at most `packet_len_max` bytes.
    pub fn new(packet_len_max: usize) -> CobsDecoder {
        CobsDecoder {
            buffer: vec![0u8; packet_len_max].into_boxed_slice(),
            len: 0,
            remaining: 0,
            pending_zero: false,
            started: false,
            state: State::Collecting,
        }
    }

    /// The largest packet accepted.
    pub fn packet_len_max(&self) -> usize {
        self.buffer.len()
    }

    /// Bytes of the packet in progress.
    pub fn buffered(&self) -> usize {
        self.len
    }

    fn reset(&mut self) {
        self.len = 0;
        self.remaining = 0;
        self.pending_zero = false;
        self.started = false;
        self.state = State::Collecting;
    }

    /// Appends decoded bytes; false (and the state switched to skipping) on overflow.
    fn push(&mut self, bytes: &[u8]) -> bool {
        if self.len + bytes.len() > self.buffer.len() {
            self.state = State::Skipping;
            self.len = 0;
            return false;
        }
        self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }

    /// Consumes `input` up to the first event; returns the bytes consumed and the event.
    pub fn decode(&mut self, input: &[u8]) -> (usize, Option<Decoded<'_>>) {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            if byte == DELIMITER {
                i += 1;
                let state = self.state;
                let (started, remaining, len) = (self.started, self.remaining, self.len);
                self.reset();
                match state {
                    State::Skipping => continue,
                    State::Collecting if !started => continue, // idle delimiter
                    State::Collecting if remaining != 0 => {
                        return (i, Some(Decoded::Truncated { len }));
                    }
                    // The last block's implicit zero is not part of the packet.
                    State::Collecting => {
                        self.len = 0;
                        return (i, Some(Decoded::Packet(&self.buffer[..len])));
                    }
                }
            }
            if self.state == State::Skipping {
                // Skip to the next delimiter in one step.
                i += input[i..]
                    .iter()
                    .position(|&b| b == DELIMITER)
                    .unwrap_or(input.len() - i);
                continue;
            }
            self.started = true;
            if self.remaining == 0 {
                // A code byte.
                let zero = self.pending_zero;
                self.remaining = byte - 1;
                self.pending_zero = byte != 0xFF;
                i += 1;
                if zero && !self.push(&[0]) {
                    return (
                        i,
                        Some(Decoded::Oversize {
                            max: self.buffer.len(),
                        }),
                    );
                }
                continue;
            }
            // Data bytes: copy up to the end of the block or the next delimiter at once.
            let run_max = (self.remaining as usize).min(input.len() - i);
            let run = input[i..i + run_max]
                .iter()
                .position(|&b| b == DELIMITER)
                .unwrap_or(run_max);
            let ok = self.push(&input[i..i + run]);
            i += run;
            self.remaining -= run as u8;
            if !ok {
                return (
                    i,
                    Some(Decoded::Oversize {
                        max: self.buffer.len(),
                    }),
                );
            }
        }
        (i, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(packet, &mut out);
        out
    }

    fn decode_all(decoder: &mut CobsDecoder, mut input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (n, event) = decoder.decode(input);
            assert!(n > 0);
            input = &input[n..];
            match event {
                Some(Decoded::Packet(p)) => events.push(Ok(p.to_vec())),
                Some(other) => events.push(Err(format!("{other:?}"))),
                None => {}
            }
        }
        events
    }

    #[test]
    fn known_encodings() {
        assert_eq!(encoded(&[]), vec![1, 0]);
        assert_eq!(encoded(&[0]), vec![1, 1, 0]);
        assert_eq!(
            encoded(&[0x11, 0x22, 0, 0x33]),
            vec![3, 0x11, 0x22, 2, 0x33, 0]
        );
        assert_eq!(encoded(&[0x11, 0, 0, 0]), vec![2, 0x11, 1, 1, 1, 0]);
        let run: Vec<u8> = (1..=254).collect();
        let mut expected = vec![0xFF];
        expected.extend_from_slice(&run);
        expected.extend_from_slice(&[1, 0]);
        assert_eq!(encoded(&run), expected);
    }

    #[test]
    fn round_trip_every_length_and_zero_pattern() {
        let mut decoder = CobsDecoder::new(1200);
        for len in 0..1100usize {
            let packet: Vec<u8> = (0..len)
                .map(|i| {
                    if (i * 7 + len) % 13 == 0 {
                        0
                    } else {
                        (i % 251) as u8 + 1
                    }
                })
                .collect();
            let wire = encoded(&packet);
            assert!(wire.len() <= max_encoded_len(len));
            assert!(!wire[..wire.len() - 1].contains(&0));
            let events = decode_all(&mut decoder, &wire);
            assert_eq!(events, vec![Ok(packet)], "len {len}");
        }
    }

    #[test]
    fn every_split_point_and_byte_by_byte() {
        let packets: Vec<Vec<u8>> = (0..5)
            .map(|n| {
                (0..300 + n * 50)
                    .map(|i| ((i * 31 + n) % 7) as u8)
                    .collect()
            })
            .collect();
        let mut wire = Vec::new();
        for p in &packets {
            encode(p, &mut wire);
        }
        for split in 0..=wire.len() {
            let mut decoder = CobsDecoder::new(600);
            let mut got = decode_all(&mut decoder, &wire[..split]);
            got.extend(decode_all(&mut decoder, &wire[split..]));
            let expected: Vec<_> = packets.iter().cloned().map(Ok).collect();
            assert_eq!(got, expected, "split at {split}");
        }
        let mut decoder = CobsDecoder::new(600);
        let mut got = Vec::new();
        for byte in &wire {
            got.extend(decode_all(&mut decoder, std::slice::from_ref(byte)));
        }
        assert_eq!(got.len(), packets.len());
    }

    #[test]
    fn oversize_is_reported_at_once_and_skipped_to_the_delimiter() {
        let mut decoder = CobsDecoder::new(100);
        let big = encoded(&[7u8; 101]);
        let (n, event) = decoder.decode(&big);
        assert_eq!(event, Some(Decoded::Oversize { max: 100 }));
        assert!(n < big.len(), "reported before the delimiter");
        let rest = decode_all(&mut decoder, &big[n..]);
        assert!(rest.is_empty());
        // The next packet decodes normally.
        assert_eq!(
            decode_all(&mut decoder, &encoded(&[1, 2, 3])),
            vec![Ok(vec![1, 2, 3])]
        );
        // Exactly at the bound is fine.
        assert_eq!(
            decode_all(&mut decoder, &encoded(&[9u8; 100])),
            vec![Ok(vec![9u8; 100])]
        );
    }

    #[test]
    fn an_endless_packet_costs_bounded_memory() {
        let mut decoder = CobsDecoder::new(64);
        let mut reports = 0;
        for _ in 0..1000 {
            let chunk = [0x42u8; 1000];
            let mut input = &chunk[..];
            while !input.is_empty() {
                let (n, event) = decoder.decode(input);
                if event.is_some() {
                    reports += 1;
                }
                input = &input[n..];
                assert!(decoder.buffered() <= 64);
            }
        }
        assert_eq!(reports, 1, "one report for one endless packet");
    }

    #[test]
    fn a_lost_byte_is_detected_or_resynchronised() {
        let mut wire = encoded(&[1, 2, 3, 4, 5, 6]);
        wire.remove(2);
        let mut decoder = CobsDecoder::new(100);
        let events = decode_all(&mut decoder, &wire);
        assert_eq!(events.len(), 1);
        assert!(events[0].is_err());
        assert_eq!(
            decode_all(&mut decoder, &encoded(&[8, 9])),
            vec![Ok(vec![8, 9])]
        );
    }
}
