//! Fuzz the WebSocket framer's input side: arbitrary bytes from a peer, in arbitrary chunks.
//!
//! Goal: nothing a peer sends makes the framer panic, deliver an invalid or oversized frame,
//! or keep going after it failed; every error closes the link. Method: a server-side
//! `WsFramer` over an in-memory stream, starting either in the handshake (the peer's bytes
//! are then an HTTP upgrade request and what follows) or already open (the bytes are
//! WebSocket frames, masked or not); feed the input in the chunk sizes it chooses and poll
//! after each chunk. Every delivered frame must pass `FrameView::decode` and fit
//! `frame_len_max`; after an error every later poll must fail too; the framer's output (its
//! answers: handshake response, pongs, close frames) stays bounded.
//!
//! Input layout (seeds under `fuzz/seeds/ws_framer/` follow it): byte 0: bit 0 set = start
//! in the handshake; byte 1: `frame_len_max = 48 + byte * 64`; byte 2: `k`; the next `k`
//! bytes: chunk sizes (`byte + 1`); the rest: the peer's bytes.

#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::{DecodeOptions, FrameView};
use tamtam_transports::websocket::{MemoryStream, Role, WsConfig, WsFramer};

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, selector, k], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let frame_len_max = 48 + u32::from(selector) * 64;
    let config = WsConfig {
        frame_len_max,
        send_buffer_bytes: 64 * 1024 + 2 * frame_len_max as usize,
        ..WsConfig::default()
    };
    let (sizes, stream) = rest.split_at(usize::from(k).min(rest.len()));
    let now = Instant::now();
    let output_max = 1 << 16;
    let mut framer = if mode & 1 == 1 {
        WsFramer::server(MemoryStream::new(output_max), "fuzz".into(), &config, now)
    } else {
        WsFramer::open(MemoryStream::new(output_max), Role::Server, "fuzz".into(), &config, now)
    };
    let options = DecodeOptions {
        payload_len_max: frame_len_max,
        verify_checksum: true,
    };
    let mut failed = false;
    let mut offset = 0;
    let mut i = 0;
    while offset < stream.len() {
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            usize::from(sizes[i % sizes.len()]) + 1
        };
        let end = (offset + size).min(stream.len());
        if let Some(s) = framer.stream_mut() {
            s.input.extend(stream[offset..end].iter().copied());
        }
        offset = end;
        i += 1;
        let result = framer.poll(now, 64, &mut |frame| {
            assert!(frame.len() <= frame_len_max as usize);
            assert!(FrameView::decode(frame, options).is_ok());
        });
        match result {
            Ok(_) => assert!(!failed, "polled fine after an error"),
            Err(_) => failed = true,
        }
        if let Some(s) = framer.stream_mut() {
            assert!(s.output.len() <= output_max);
            s.output.clear();
        }
    }
});
