//! Fuzz the spool file batch checker with arbitrary file contents, and the batch encoder.
//!
//! Goal: whatever lies in an inbox file (torn copies, garbage, hostile headers), the checker
//! never panics, never allocates beyond what the file justifies, and returns only frame
//! ranges inside the file with lengths within the limit; and any batch `BatchWriter` encodes
//! checks and yields its frames back. Method: (1) `check_batch` on the input; (2) frames cut
//! from the input (lengths `48 + byte`) written with `BatchWriter`, checked, compared; then
//! every truncation of that batch must be rejected.
//!
//! Input layout (seeds under `fuzz/seeds/file_batch/` follow it): byte 0: bit 0 selects
//! part (1) or (2); the rest: the file, or for (2) a length byte followed by that frame's
//! bytes, repeated.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_transports::file::{BatchWriter, check_batch};

const LIMIT: u32 = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        if let Ok(ranges) = check_batch(rest, LIMIT) {
            let mut end = 0;
            for range in ranges {
                assert!(range.start >= end && range.end <= rest.len());
                assert!((48..=LIMIT as usize).contains(&range.len()));
                end = range.end;
            }
        }
        return;
    }
    let mut frames = Vec::new();
    let mut input = rest;
    while let Some((&len, after)) = input.split_first() {
        let len = (48 + usize::from(len)).min(after.len());
        if len < 48 {
            break;
        }
        frames.push(after[..len].to_vec());
        input = &after[len..];
    }
    let mut writer = BatchWriter::new();
    for frame in &frames {
        writer.push(frame);
    }
    let bytes = writer.finish().to_vec();
    let ranges = check_batch(&bytes, LIMIT).expect("an encoded batch checks");
    let got: Vec<Vec<u8>> = ranges.into_iter().map(|r| bytes[r].to_vec()).collect();
    assert_eq!(got, frames);
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        if cut < bytes.len() {
            assert!(check_batch(&bytes[..cut], LIMIT).is_err());
        }
    }
});
