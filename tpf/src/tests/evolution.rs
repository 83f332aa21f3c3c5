//! Goal: append-only evolution works both ways and keeps canonicality per version.
//! Method: encode with one version of a message, read with the other, and check values,
//! re-encodings, and the errors for payloads that lie about their version.

use alloc::string::String;
use alloc::vec;

use super::{Bytes, codec, decode_all};
use crate::Error;
use crate::TpfMessage;
use crate::dynamic::Value;
use crate::testing::*;

fn order_v1() -> OrderV1 {
    OrderV1 {
        id: 77,
        symbol: "ACME".into(),
    }
}

fn order_v2() -> OrderV2 {
    OrderV2 {
        id: 77,
        symbol: "ACME".into(),
        qty: Some(300),
        note: Some("rush".into()),
    }
}

#[test]
fn a_new_reader_reads_an_old_payload_as_absent() {
    let old = order_v1().encode_to_vec().unwrap();
    let read = decode_all::<OrderV2>(&old).unwrap();
    assert_eq!(
        read,
        OrderV2 {
            id: 77,
            symbol: "ACME".into(),
            qty: None,
            note: None
        }
    );
    // The dynamic codec keeps the payload's version and re-encodes it byte for byte.
    let codec = codec::<OrderV2>();
    let value = codec.decode_as("Order", &old).unwrap();
    assert_eq!(value.version, 1);
    assert_eq!(value.fields[2], Value::None);
    assert_eq!(codec.encode_to_vec("Order", &value).unwrap(), old);
    // The derived type always writes its own version.
    let new = read.encode_to_vec().unwrap();
    assert_eq!(new.len(), old.len() + 5 + 4);
    assert_eq!(OrderV2::view(&new).unwrap().payload_version(), 2);
}

#[test]
fn an_old_reader_skips_what_it_does_not_know() {
    let new = order_v2().encode_to_vec().unwrap();
    assert_eq!(decode_all::<OrderV1>(&new), Ok(order_v1()));
    let view = OrderV1::view(&new).unwrap();
    assert_eq!(view.payload_version(), 2);
    assert_eq!(view.symbol(), "ACME");
    // Re-encoding at the reader's version drops the unknown parts.
    let codec = codec::<OrderV1>();
    let value = codec.decode_as("Order", &new).unwrap();
    assert_eq!(value.version, 1);
    assert_eq!(
        codec.encode_to_vec("Order", &value).unwrap(),
        order_v1().encode_to_vec().unwrap()
    );
}

#[test]
fn a_payload_may_not_carry_fields_newer_than_its_version() {
    let mut new = order_v2().encode_to_vec().unwrap();
    // Claim version 1 while carrying the version-2 block and parts.
    new[8] = 1;
    assert_eq!(
        decode_all::<OrderV2>(&new),
        Err(Error::BadBlockLength {
            version: 1,
            found: 13,
            expected: 8
        })
    );
    assert_eq!(
        decode_all::<OrderV1>(&new),
        Err(Error::BadBlockLength {
            version: 1,
            found: 13,
            expected: 8
        })
    );
    // Version 1 with the right block but an extra part.
    let body = Bytes::default().u64(77).part(b"ACME").part(b"rush");
    let bytes = Bytes::message((1, 7, 1), 8, body).0;
    assert_eq!(
        decode_all::<OrderV2>(&bytes),
        Err(Error::TrailingBytes { extra: 8 })
    );
    // A field set at a version that lacks it cannot be encoded.
    let codec = codec::<OrderV2>();
    let mut value = codec
        .decode_as("Order", &order_v2().encode_to_vec().unwrap())
        .unwrap();
    value.version = 1;
    assert_eq!(
        codec.encode_to_vec("Order", &value),
        Err(Error::FieldNotInVersion {
            field: "qty".into(),
            version: 1
        })
    );
    value.version = 3;
    assert_eq!(
        codec.encode_to_vec("Order", &value),
        Err(Error::InvalidVersion { version: 3 })
    );
}

/// Order at a hypothetical version 3 that appended a `u16` to the fixed block and two parts.
fn order_v3(trailing: Bytes) -> alloc::vec::Vec<u8> {
    let mut body = Bytes::default()
        .u64(77)
        .u8(1)
        .u32(300)
        .u16(0xBEEF)
        .part(b"ACME")
        .part(b"rush");
    body.0.extend_from_slice(&trailing.0);
    Bytes::message((1, 7, 3), 15, body).0
}

#[test]
fn a_future_version_is_read_as_far_as_known() {
    let bytes = order_v3(Bytes::default().u32(u32::MAX).part(b"future"));
    assert_eq!(decode_all::<OrderV2>(&bytes), Ok(order_v2()));
    assert_eq!(decode_all::<OrderV1>(&bytes), Ok(order_v1()));
    let codec = codec::<OrderV2>();
    let value = codec.decode_as("Order", &bytes).unwrap();
    assert_eq!(value.version, 2);
    assert_eq!(
        codec.encode_to_vec("Order", &value).unwrap(),
        order_v2().encode_to_vec().unwrap()
    );
    // Unknown parts are skipped safely: each must still be complete.
    let broken = order_v3(Bytes::default().u32(10).raw(b"short"));
    assert_eq!(
        decode_all::<OrderV2>(&broken),
        Err(Error::Truncated { needed: 10, had: 5 })
    );
    let broken = order_v3(Bytes::default().raw(&[1, 2]));
    assert_eq!(
        decode_all::<OrderV2>(&broken),
        Err(Error::Truncated { needed: 4, had: 2 })
    );
    // A newer payload still needs at least the reader's block.
    let short = Bytes::message((1, 7, 3), 12, Bytes::default().u64(77).u32(0).part(b"ACME")).0;
    assert_eq!(
        decode_all::<OrderV2>(&short),
        Err(Error::BadBlockLength {
            version: 3,
            found: 12,
            expected: 13
        })
    );
}

#[test]
fn nested_messages_evolve_on_their_own() {
    let old = EnvelopeV1 {
        seq: 9,
        order: order_v1(),
        history: vec![order_v1()],
    };
    let old_bytes = old.encode_to_vec().unwrap();
    let read = decode_all::<EnvelopeV2>(&old_bytes).unwrap();
    assert_eq!(
        read.order,
        OrderV2 {
            qty: None,
            note: None,
            ..order_v2()
        }
    );
    assert_eq!(read.history.len(), 1);
    // The dynamic codec records each nested message's version and re-encodes exactly.
    let codec = codec::<EnvelopeV2>();
    let value = codec.decode_as("Envelope", &old_bytes).unwrap();
    let Value::Message(order) = &value.fields[1] else {
        panic!("order is a message")
    };
    assert_eq!((value.version, order.version), (1, 1));
    assert_eq!(codec.encode_to_vec("Envelope", &value).unwrap(), old_bytes);

    let new = EnvelopeV2 {
        seq: 9,
        order: order_v2(),
        history: vec![],
    };
    let new_bytes = new.encode_to_vec().unwrap();
    assert_eq!(
        decode_all::<EnvelopeV1>(&new_bytes),
        Ok(EnvelopeV1 {
            seq: 9,
            order: order_v1(),
            history: vec![]
        })
    );
    let view = EnvelopeV1::view(&new_bytes).unwrap();
    assert_eq!(view.order().payload_version(), 2);
    assert_eq!(view.order().symbol(), "ACME");
    let _: String = view.order().symbol().into();
}
