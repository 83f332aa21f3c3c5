//! Fuzz `FrameView::decode` with arbitrary bytes.
//!
//! Goal: decoding untrusted bytes never panics, and its answers hang together. Method: decode
//! the input with the checksum verified and skipped, and with a tight payload limit, then check:
//! - an accepted frame is canonical: encoding its header and payload reproduces the input byte
//!   for byte, and header length plus payload length is the input length;
//! - skipping the checksum changes nothing but `ChecksumMismatch`: both runs agree on the error,
//!   or only the verifying run fails, with `ChecksumMismatch`, and the bytes differ from their
//!   re-encoding in the CRC field alone;
//! - decode only reports errors that decoding can produce;
//! - a tighter payload limit only adds `Oversize` rejections.
//!
//! Input: the frame bytes themselves. Seeds: `fuzz/seeds/frame_decode/`, one per frame vector.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::{
    self, BASE_HEADER_LEN, CRC_OFFSET, DecodeOptions, FrameError, FrameView,
};

/// The payload limit of the tight decode: small enough that fuzz inputs often exceed it.
const TIGHT_PAYLOAD_LEN_MAX: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let checked = DecodeOptions::default();
    let unchecked = DecodeOptions {
        verify_checksum: false,
        ..checked
    };
    let result = FrameView::decode(data, checked);
    let result_unchecked = FrameView::decode(data, unchecked);

    match (&result, &result_unchecked) {
        (Ok(view), Ok(view_unchecked)) => {
            let header = view.header();
            assert_eq!(view_unchecked.header(), header);
            assert_eq!(view_unchecked.payload(), view.payload());
            assert_eq!(view.as_bytes(), data);
            assert_eq!(header.header_len() + view.payload().len(), data.len());
            assert_eq!(header.validate(), Ok(()));
            let again = frame::encode_to_vec(&header, view.payload())
                .expect("an accepted header re-encodes");
            assert_eq!(again, data, "accepted frame is not canonical");
        }
        (Ok(_), Err(error)) => panic!("accepted with the checksum, rejected without: {error}"),
        (Err(FrameError::ChecksumMismatch { expected, computed }), Ok(view)) => {
            assert_ne!(expected, computed);
            assert_eq!(view.crc32c(), *expected);
            let again = frame::encode_to_vec(&view.header(), view.payload())
                .expect("a header accepted without checksum re-encodes");
            assert_eq!(again.len(), data.len());
            assert_eq!(again[..CRC_OFFSET], data[..CRC_OFFSET]);
            assert_eq!(again[BASE_HEADER_LEN..], data[BASE_HEADER_LEN..]);
            assert_eq!(again[CRC_OFFSET..BASE_HEADER_LEN], computed.to_le_bytes());
        }
        (Err(error), Ok(_)) => panic!("only the checksum run failed, but with {error}"),
        (Err(error), Err(error_unchecked)) => {
            assert_eq!(error, error_unchecked);
            assert!(
                !matches!(
                    error,
                    FrameError::ChecksumMismatch { .. }
                        | FrameError::SegmentFlagInHeader
                        | FrameError::BufferTooSmall { .. }
                ),
                "decode reported an error it cannot produce: {error}"
            );
        }
    }

    let tight = DecodeOptions {
        payload_len_max: TIGHT_PAYLOAD_LEN_MAX,
        ..checked
    };
    match (FrameView::decode(data, tight), &result) {
        (Ok(view_tight), Ok(view)) => assert_eq!(view_tight.header(), view.header()),
        (Ok(_), Err(error)) => panic!("a tighter limit accepted what the default rejects: {error}"),
        (Err(FrameError::Oversize { len, max }), _) => {
            assert_eq!(max, TIGHT_PAYLOAD_LEN_MAX);
            assert!(len > u64::from(max));
        }
        (Err(error_tight), Ok(_)) => panic!("a tighter limit failed with {error_tight}"),
        (Err(error_tight), Err(error)) => assert_eq!(&error_tight, error),
    }
});
