//! Fuzz `StreamDecoder` with an arbitrary byte stream split into arbitrary chunks.
//!
//! Goal: the framer yields exactly what `spec/wire/Frame-v1.md` §7 says, whatever the split, in
//! bounded memory, and stays failed after a framing error. Method: feed the stream in the
//! chunk sizes the input chooses, alternating `feed` with the zero-copy `spare` + `commit`
//! path, draining frames after every write; compare the frames, the error and the bytes held at
//! the end with a plain reference parser over the whole stream. Check after every write that
//! the decoder never holds more than `4 + frame_len_max` bytes and that a write always makes
//! progress once frames are drained; after an error, check that every later call is
//! `Poisoned`.
//!
//! Input layout (seeds under `fuzz/seeds/stream_framer/` follow it):
//! - bytes 0..2: `u16` LE selector, `frame_len_max = 48 + selector % 4096`;
//! - byte 2: `k`, the number of chunk sizes;
//! - the next `k` bytes: chunk sizes, each `byte + 1`, used in turn (one chunk if `k` is 0);
//! - the rest: the byte stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::BASE_HEADER_LEN;
use tamtam_engine::core::wire::stream::{PREFIX_LEN, StreamDecoder, StreamError};

/// What §7 says a stream yields: its frames, then the error or the bytes of an incomplete
/// record left at the end.
struct Outcome {
    frames: Vec<Vec<u8>>,
    error: Option<StreamError>,
    buffered: usize,
}

fn reference(stream: &[u8], frame_len_max: u32) -> Outcome {
    let mut frames = Vec::new();
    let mut rest = stream;
    while let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() {
        let len = u32::from_le_bytes(*prefix);
        let error = if len > frame_len_max {
            Some(StreamError::FrameTooLarge {
                len,
                max: frame_len_max,
            })
        } else if (len as usize) < BASE_HEADER_LEN {
            Some(StreamError::FrameTooSmall { len })
        } else {
            None
        };
        if error.is_some() {
            return Outcome {
                frames,
                error,
                buffered: 0,
            };
        }
        if after.len() < len as usize {
            break;
        }
        let (frame, next) = after.split_at(len as usize);
        frames.push(frame.to_vec());
        rest = next;
    }
    Outcome {
        frames,
        error: None,
        buffered: rest.len(),
    }
}

/// Drains every complete frame; returns the error that ends the stream, if any.
fn drain(decoder: &mut StreamDecoder, frames: &mut Vec<Vec<u8>>) -> Option<StreamError> {
    let frame_len_max = decoder.frame_len_max() as usize;
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => {
                assert!(frame.len() >= BASE_HEADER_LEN);
                assert!(frame.len() <= frame_len_max);
                frames.push(frame.to_vec());
            }
            Ok(None) => return None,
            Err(error) => return Some(error),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[low, high, k], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let frame_len_max = BASE_HEADER_LEN as u32 + u32::from(u16::from_le_bytes([low, high]) % 4096);
    let (sizes, stream) = rest.split_at(usize::from(k).min(rest.len()));
    let capacity = PREFIX_LEN + frame_len_max as usize;

    let mut decoder = StreamDecoder::new(frame_len_max);
    let mut frames = Vec::new();
    let mut error = None;
    let mut offset = 0;
    let mut chunk_number = 0usize;
    'stream: while offset < stream.len() {
        let size = match sizes {
            [] => stream.len(),
            _ => usize::from(sizes[chunk_number % sizes.len()]) + 1,
        };
        let end = (offset + size).min(stream.len());
        let mut chunk = &stream[offset..end];
        offset = end;
        chunk_number += 1;
        loop {
            error = drain(&mut decoder, &mut frames);
            if error.is_some() {
                break 'stream;
            }
            if chunk.is_empty() {
                break;
            }
            let taken = if chunk_number.is_multiple_of(2) {
                decoder.feed(chunk)
            } else {
                let spare = decoder.spare();
                let n = spare.len().min(chunk.len());
                spare[..n].copy_from_slice(&chunk[..n]);
                decoder.commit(n);
                n
            };
            assert!(taken > 0, "no room after every frame was drained");
            assert!(decoder.buffered() <= capacity, "decoder holds too much");
            chunk = &chunk[taken..];
        }
    }

    let expected = reference(stream, frame_len_max);
    assert_eq!(frames, expected.frames);
    assert_eq!(error, expected.error);
    if error.is_some() {
        assert!(decoder.is_failed());
        for _ in 0..2 {
            decoder.feed(stream);
            assert_eq!(decoder.next_frame(), Err(StreamError::Poisoned));
            assert!(decoder.buffered() <= capacity);
        }
    } else {
        assert!(!decoder.is_failed());
        assert_eq!(decoder.buffered(), expected.buffered);
    }
});
