//! Fuzz the serial framer (COBS + delimiter + frame check) with an arbitrary byte stream split
//! into arbitrary chunks, and the COBS codec with arbitrary packets.
//!
//! Goal: whatever arrives on a serial line, the framer delivers only valid frames within the
//! bound, costs bounded memory, and reports the same events whatever the chunking; and
//! whatever is encoded decodes back exactly. Method: (1) feed the stream whole and in the
//! chunk sizes the input chooses; the event lists must be equal; after every call the decoder
//! holds at most `frame_len_max` bytes; every delivered frame passes `FrameView::decode` and
//! fits the bound. (2) Split the stream into packets at every `0xA5` byte, encode each with
//! COBS, check the encoding (no zero but the final delimiter, length within
//! `max_encoded_len`), decode the concatenation and compare the packets.
//!
//! Input layout (seeds under `fuzz/seeds/cobs_framer/` follow it): byte 0: `frame_len_max =
//! 48 + byte * 8`; byte 1: `k`, the number of chunk sizes; the next `k` bytes: chunk sizes
//! (`byte + 1`); the rest: the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::{DecodeOptions, FrameView};
use tamtam_transports::cobs::{self, CobsDecoder, Decoded};
use tamtam_transports::serial::{Received, SerialFramer};

#[derive(Debug, PartialEq)]
enum Event {
    Frame(Vec<u8>),
    Truncated(usize),
    Oversize(usize),
    Invalid(String),
}

fn feed(framer: &mut SerialFramer, mut input: &[u8], max: usize, events: &mut Vec<Event>) {
    while !input.is_empty() {
        let (n, event) = framer.decode(input);
        assert!(n > 0 && n <= input.len(), "no progress or overrun");
        input = &input[n..];
        match event {
            None => {}
            Some(Received::Frame(frame)) => {
                assert!(frame.len() <= max);
                let options = DecodeOptions {
                    payload_len_max: max as u32,
                    verify_checksum: true,
                };
                assert!(FrameView::decode(frame, options).is_ok());
                events.push(Event::Frame(frame.to_vec()));
            }
            Some(Received::Truncated { len }) => events.push(Event::Truncated(len)),
            Some(Received::Oversize { max: m }) => {
                assert_eq!(m, max);
                events.push(Event::Oversize(m));
            }
            Some(Received::Invalid(e)) => events.push(Event::Invalid(e.name().to_owned())),
        }
        assert!(framer.buffered() <= max);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, k], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = 48 + usize::from(selector) * 8;
    let (sizes, stream) = rest.split_at(usize::from(k).min(rest.len()));

    // (1) Chunking does not change what the framer reports.
    let mut whole = Vec::new();
    feed(&mut SerialFramer::new(max as u32), stream, max, &mut whole);
    let mut chunked = Vec::new();
    let mut framer = SerialFramer::new(max as u32);
    let mut offset = 0;
    let mut i = 0;
    while offset < stream.len() {
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[i % sizes.len()]) + 1
        };
        let end = (offset + size).min(stream.len());
        feed(&mut framer, &stream[offset..end], max, &mut chunked);
        offset = end;
        i += 1;
    }
    assert_eq!(whole, chunked);

    // (2) COBS round trip.
    let packets: Vec<&[u8]> = stream.split(|&b| b == 0xA5).collect();
    let mut wire = Vec::new();
    for packet in &packets {
        let before = wire.len();
        let added = cobs::encode(packet, &mut wire);
        assert_eq!(added, wire.len() - before);
        assert!(added <= cobs::max_encoded_len(packet.len()));
        assert!(!wire[before..wire.len() - 1].contains(&0));
        assert_eq!(wire.last(), Some(&0));
    }
    let mut decoder = CobsDecoder::new(stream.len().max(1));
    let mut decoded = Vec::new();
    let mut input = &wire[..];
    while !input.is_empty() {
        let (n, event) = decoder.decode(input);
        input = &input[n..];
        match event {
            Some(Decoded::Packet(p)) => decoded.push(p.to_vec()),
            Some(other) => panic!("valid encoding decoded as {other:?}"),
            None => {}
        }
    }
    let expected: Vec<Vec<u8>> = packets.iter().map(|p| p.to_vec()).collect();
    assert_eq!(decoded, expected);
});
