//! Fuzz every decoder of the bus's own payloads (ACK lists, NACK, BUSY, adverts, bulk offers,
//! segment maps, trace reports, audit records, the Reporter's answer).
//!
//! Goal: untrusted control payloads never panic the decoders, and accepted ones are canonical.
//! Method: the first input byte picks the decoder, the rest is the payload; every accepted
//! payload must re-encode to exactly the input bytes (lengths add up, nothing is skipped).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::control::{
    AckList, Advert, AuditRecord, BulkOffer, Busy, Nack, SegmentMap, TraceReport,
};
use tamtam_engine::core::stats::Report;

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Ok(v) = AckList::decode(payload) {
                assert_eq!(v.encode(), payload);
            }
        }
        1 => {
            if let Ok(v) = Nack::decode(payload) {
                assert_eq!(v.encode(), payload);
            }
        }
        2 => {
            if let Ok(v) = Busy::decode(payload) {
                assert_eq!(v.encode(), payload);
            }
        }
        3 => {
            if let Ok(v) = Advert::decode(payload) {
                assert_eq!(v.encode(), payload);
            }
        }
        4 => {
            if let Ok(v) = BulkOffer::decode(payload) {
                assert_eq!(v.encode(), payload);
                assert!(v.segment_count >= 1);
            }
        }
        5 => {
            if let Ok(v) = SegmentMap::decode(payload) {
                assert_eq!(v.encode(), payload);
                let mut floor = u64::from(v.base);
                for &(start, len) in &v.ranges {
                    assert!(u64::from(start) > floor && len > 0);
                    floor = u64::from(start) + u64::from(len);
                }
            }
        }
        6 => {
            if let Ok(v) = TraceReport::decode(payload) {
                assert_eq!(v.encode(), payload);
            }
        }
        7 => {
            if let Ok((record, rest)) = AuditRecord::decode_prefix(payload) {
                assert_eq!(record.encode().len() + rest.len(), payload.len());
                assert_eq!(&payload[..record.encode().len()], record.encode().as_slice());
            }
        }
        _ => {
            let _ = Report::decode(payload);
        }
    }
});
