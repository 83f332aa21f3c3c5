//! Goal: exactly one encoding per value. Every non-canonical or malformed input is refused
//! with the error the spec names, identically by the derived decoder, the view and the
//! dynamic codec; and any input that is accepted re-encodes to itself.
//! Method: hand-written payloads for each rule, then every single-byte change of valid
//! payloads.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Debug;

use super::{Bytes, decode_all};
use crate::testing::*;
use crate::{DEPTH_MAX, Error, Field, TpfMessage};

fn field(name: &'static str) -> crate::FieldName {
    name.into()
}

fn point(x: i32, y: i32) -> Bytes {
    Bytes::message((1, 3, 1), 8, Bytes::default().u32(x as u32).u32(y as u32))
}

#[test]
fn the_input_is_exactly_one_message() {
    assert_eq!(
        decode_all::<Point>(&[]),
        Err(Error::Truncated { needed: 4, had: 0 })
    );
    assert_eq!(
        decode_all::<Point>(&[16, 0, 0]),
        Err(Error::Truncated { needed: 4, had: 3 })
    );
    let mut bytes = point(1, 2).0;
    bytes.pop();
    assert_eq!(
        decode_all::<Point>(&bytes),
        Err(Error::Truncated {
            needed: 16,
            had: 15
        })
    );
    let mut bytes = point(1, 2).0;
    bytes.push(0);
    assert_eq!(
        decode_all::<Point>(&bytes),
        Err(Error::TrailingBytes { extra: 1 })
    );
    // A length that cannot even hold the rest of the header.
    let bytes = Bytes::default().u32(4).u16(1).u16(3).0;
    assert_eq!(
        decode_all::<Point>(&bytes),
        Err(Error::BadLength {
            what: "message",
            len: 4
        })
    );
}

#[test]
fn the_header_is_checked() {
    let with = |schema, template, version, block| {
        Bytes::message(
            (schema, template, version),
            block,
            Bytes::default().u32(1).u32(2),
        )
        .0
    };
    assert_eq!(
        decode_all::<Point>(&with(1, 3, 1, 8)),
        Ok(Point { x: 1, y: 2 })
    );
    assert_eq!(
        decode_all::<Point>(&with(9, 3, 1, 8)),
        Err(Error::UnknownSchema { schema_id: 9 })
    );
    assert_eq!(
        decode_all::<Point>(&with(1, 9, 1, 8)),
        Err(Error::UnknownTemplate {
            schema_id: 1,
            template_id: 9
        })
    );
    assert_eq!(
        decode_all::<Point>(&with(1, 3, 0, 8)),
        Err(Error::InvalidVersion { version: 0 })
    );
    assert_eq!(
        decode_all::<Point>(&with(1, 3, 1, 7)),
        Err(Error::BadBlockLength {
            version: 1,
            found: 7,
            expected: 8
        })
    );
    // A block longer than the message.
    assert_eq!(
        decode_all::<Point>(&with(1, 3, 2, 9)),
        Err(Error::Truncated { needed: 9, had: 8 })
    );
    // Bytes after the last part of a version the reader knows.
    let bytes = Bytes::message((1, 3, 1), 8, Bytes::default().u32(1).u32(2).u32(0)).0;
    assert_eq!(
        decode_all::<Point>(&bytes),
        Err(Error::TrailingBytes { extra: 4 })
    );
}

fn scalars_block() -> Bytes {
    Bytes::default()
        .u8(1)
        .u16(2)
        .u32(3)
        .u64(4)
        .u8(5)
        .u16(6)
        .u32(7)
        .u64(8)
        .u32(0)
        .u64(0)
}

#[test]
fn bools_and_enums_are_validated() {
    let scalars = |flag: u8, side: u8, level: u16| {
        let block = scalars_block().u8(flag).u8(side).u16(level);
        Bytes::message((1, 1, 1), 46, block).0
    };
    assert!(decode_all::<Scalars>(&scalars(1, 1, 500)).is_ok());
    assert_eq!(
        decode_all::<Scalars>(&scalars(2, 1, 500)),
        Err(Error::InvalidBool {
            field: field("flag"),
            value: 2
        })
    );
    assert_eq!(
        decode_all::<Scalars>(&scalars(0, 0, 500)),
        Err(Error::InvalidEnum {
            field: field("side"),
            value: 0
        })
    );
    assert_eq!(
        decode_all::<Scalars>(&scalars(0, 1, 501)),
        Err(Error::InvalidEnum {
            field: field("level"),
            value: 501
        })
    );
    // Fixed fields are checked in order: the bool before the enum after it.
    assert_eq!(
        decode_all::<Scalars>(&scalars(7, 9, 9)),
        Err(Error::InvalidBool {
            field: field("flag"),
            value: 7
        })
    );
}

fn optionals(block: Bytes, parts: Bytes) -> Vec<u8> {
    let mut body = block;
    body.0.extend_from_slice(&parts.0);
    Bytes::message((1, 4, 1), 12, body).0
}

fn absent_parts() -> Bytes {
    Bytes::default().u32(u32::MAX).u32(u32::MAX).u32(u32::MAX)
}

#[test]
fn optionals_are_canonical() {
    let block = |count: &[u8], flag: &[u8]| {
        Bytes::default()
            .raw(count)
            .raw(flag)
            .raw(&[0, 0])
            .raw(&[0, 0, 0])
    };
    let ok = decode_all::<Optionals>(&optionals(block(&[0; 5], &[0, 0]), absent_parts())).unwrap();
    assert_eq!(ok.count, None);
    assert_eq!(
        decode_all::<Optionals>(&optionals(block(&[2, 0, 0, 0, 0], &[0, 0]), absent_parts())),
        Err(Error::InvalidPresence {
            field: field("count"),
            value: 2
        })
    );
    assert_eq!(
        decode_all::<Optionals>(&optionals(block(&[0, 1, 0, 0, 0], &[0, 0]), absent_parts())),
        Err(Error::NonCanonical {
            field: field("count"),
            what: "absent optional with non-zero value bytes"
        })
    );
    assert_eq!(
        decode_all::<Optionals>(&optionals(block(&[0; 5], &[1, 2]), absent_parts())),
        Err(Error::InvalidBool {
            field: field("flag"),
            value: 2
        })
    );
    assert_eq!(
        decode_all::<Optionals>(&optionals(block(&[0; 5], &[0, 1]), absent_parts())),
        Err(Error::NonCanonical {
            field: field("flag"),
            what: "absent optional with non-zero value bytes"
        })
    );
    // A present empty string differs from an absent one.
    let parts = Bytes::default().u32(0).u32(u32::MAX).u32(u32::MAX);
    let present = decode_all::<Optionals>(&optionals(block(&[0; 5], &[0, 0]), parts)).unwrap();
    assert_eq!(present.label, Some(String::new()));
    // A nested optional message with the wrong template.
    let wrong = Bytes::message((1, 5, 1), 0, Bytes::default());
    let parts = Bytes::default().u32(u32::MAX).u32(u32::MAX).raw(&wrong.0);
    assert_eq!(
        decode_all::<Optionals>(&optionals(block(&[0; 5], &[0, 0]), parts)),
        Err(Error::UnknownTemplate {
            schema_id: 1,
            template_id: 5
        })
    );
}

fn blobs(name: &[u8]) -> Vec<u8> {
    Bytes::message(
        (1, 2, 1),
        4,
        Bytes::default().raw(b"abcd").part(b"").part(name),
    )
    .0
}

#[test]
fn strings_are_bounded_utf8() {
    assert_eq!(
        decode_all::<Blobs>(&blobs("é漢🎵".as_bytes()))
            .unwrap()
            .name,
        "é漢🎵"
    );
    assert_eq!(
        decode_all::<Blobs>(&blobs(&[b'x'; 16])).unwrap().name.len(),
        16
    );
    assert_eq!(
        decode_all::<Blobs>(&blobs(&[b'x'; 17])),
        Err(Error::FieldTooLong {
            field: field("name"),
            len: 17,
            max: 16
        })
    );
    for invalid in [
        &[0xC3, 0x28][..],
        &[0xC0, 0xAF],
        &[0xED, 0xA0, 0x80],
        &[0xF4, 0x90, 0x80, 0x80],
        &[0xE6, 0xBC],
        &[0xFF],
    ] {
        assert_eq!(
            decode_all::<Blobs>(&blobs(invalid)),
            Err(Error::InvalidUtf8 {
                field: field("name")
            }),
            "{invalid:?}"
        );
    }
    // The absent marker where a required string must be.
    let bytes = Bytes::message(
        (1, 2, 1),
        4,
        Bytes::default().raw(b"abcd").part(b"").u32(u32::MAX),
    )
    .0;
    assert_eq!(
        decode_all::<Blobs>(&bytes),
        Err(Error::InvalidPresence {
            field: field("name"),
            value: u32::MAX
        })
    );
    // A part is read whole before its maximum is checked.
    let bytes = Bytes::message((1, 2, 1), 4, Bytes::default().raw(b"abcd").u32(0xFFFF_FFFE)).0;
    assert_eq!(
        decode_all::<Blobs>(&bytes),
        Err(Error::Truncated {
            needed: 0xFFFF_FFFE,
            had: 0
        })
    );
    // A length within the maximum that runs past the message.
    let bytes = Bytes::message(
        (1, 2, 1),
        4,
        Bytes::default().raw(b"abcd").u32(3).raw(b"ab"),
    )
    .0;
    assert_eq!(
        decode_all::<Blobs>(&bytes),
        Err(Error::Truncated { needed: 3, had: 2 })
    );
}

fn lists(parts: Bytes) -> Vec<u8> {
    Bytes::message((1, 5, 1), 0, parts).0
}

fn empty_parts(n: usize) -> Bytes {
    (0..n).fold(Bytes::default(), |b, _| b.u32(0))
}

#[test]
fn lists_are_bounded_and_well_formed() {
    let mut parts = Bytes::default().part(&[1, 0, 2]);
    parts.0.extend_from_slice(&empty_parts(5).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::BadLength {
            what: "list of fixed-size items",
            len: 3
        })
    );
    let mut parts = Bytes::default().part(&[0; 10]);
    parts.0.extend_from_slice(&empty_parts(5).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::FieldTooLong {
            field: field("numbers"),
            len: 5,
            max: 4
        })
    );
    let words = Bytes::default().part(b"a").part(b"b").part(b"c").part(b"d");
    let mut parts = Bytes::default().u32(0).part(&words.0);
    parts.0.extend_from_slice(&empty_parts(4).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::FieldTooLong {
            field: field("words"),
            len: 4,
            max: 3
        })
    );
    let words = Bytes::default().part(b"123456789");
    let mut parts = Bytes::default().u32(0).part(&words.0);
    parts.0.extend_from_slice(&empty_parts(4).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::FieldTooLong {
            field: field("words"),
            len: 9,
            max: 8
        })
    );
    // An item part that runs past the list's content.
    let words = Bytes::default().u32(5).raw(b"ab");
    let mut parts = Bytes::default().u32(0).part(&words.0);
    parts.0.extend_from_slice(&empty_parts(4).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::Truncated { needed: 5, had: 2 })
    );
    // Items are validated: an option item with a bad presence byte, an unknown enum item.
    let mut parts = empty_parts(3).part(&[1, 7, 3, 0]);
    parts.0.extend_from_slice(&empty_parts(2).0);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::InvalidPresence {
            field: field("maybe"),
            value: 3
        })
    );
    let parts = empty_parts(5).part(&[1, 9]);
    assert_eq!(
        decode_all::<Lists>(&lists(parts)),
        Err(Error::InvalidEnum {
            field: field("sides"),
            value: 9
        })
    );
    // A missing part.
    assert_eq!(
        decode_all::<Lists>(&lists(empty_parts(5))),
        Err(Error::Truncated { needed: 4, had: 0 })
    );
}

fn tree(depth: usize) -> Tree {
    let mut tree = Tree {
        value: 0,
        children: vec![],
    };
    for level in 1..depth {
        tree = Tree {
            value: level as u32,
            children: vec![tree],
        };
    }
    tree
}

#[test]
fn nesting_is_bounded() {
    let deepest = tree(DEPTH_MAX);
    let bytes = deepest.encode_to_vec().unwrap();
    assert_eq!(decode_all::<Tree>(&bytes), Ok(deepest.clone()));
    assert_eq!(
        tree(DEPTH_MAX + 1).encode_to_vec(),
        Err(Error::DepthExceeded { max: DEPTH_MAX })
    );
    // Wrap the deepest encodable tree once more by hand: the decoders refuse it.
    let body = Bytes::default().u32(99).part(&bytes);
    let too_deep = Bytes::message((1, 6, 1), 4, body).0;
    assert_eq!(
        decode_all::<Tree>(&too_deep),
        Err(Error::DepthExceeded { max: DEPTH_MAX })
    );
}

#[test]
fn encoding_checks_maxima() {
    let blobs = Blobs {
        tag: [0; 4],
        data: vec![],
        name: "x".repeat(17),
    };
    assert_eq!(
        blobs.encode_to_vec(),
        Err(Error::FieldTooLong {
            field: field("name"),
            len: 17,
            max: 16
        })
    );
    let lists = Lists {
        numbers: vec![0; 5],
        words: vec![],
        points: vec![],
        maybe: vec![],
        matrix: vec![],
        sides: vec![],
    };
    let mut buf = [0u8; 256];
    assert_eq!(
        lists.encode(&mut buf),
        Err(Error::FieldTooLong {
            field: field("numbers"),
            len: 5,
            max: 4
        })
    );
    let lists = Lists {
        numbers: vec![],
        words: vec![],
        points: vec![],
        maybe: vec![],
        matrix: vec![vec![0; 3]],
        sides: vec![],
    };
    assert_eq!(
        lists.encode(&mut buf),
        Err(Error::FieldTooLong {
            field: field("matrix"),
            len: 3,
            max: 2
        })
    );
    // The dynamic codec refuses the same values with the same errors.
    let dynamic = super::codec::<Lists>().encode_to_vec("Lists", &super::message_value(&lists));
    assert_eq!(dynamic, lists.encode_to_vec());
    let dynamic = super::codec::<Blobs>().encode_to_vec("Blobs", &super::message_value(&blobs));
    assert_eq!(dynamic, blobs.encode_to_vec());
}

/// Flips every byte of `value`'s encoding in a few ways; whatever the decoders accept must
/// re-encode to exactly the changed bytes, and the decoders must agree.
fn every_byte_change<M: TpfMessage + Debug>(value: &M) {
    let bytes = value.encode_to_vec().unwrap();
    let mut accepted = 0;
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x02, 0x80, 0xFF] {
            let mut changed = bytes.clone();
            changed[at] ^= mask;
            let Ok(decoded) = decode_all::<M>(&changed) else {
                continue;
            };
            accepted += 1;
            let again = decoded.encode_to_vec().unwrap();
            if again != changed {
                // Only one accepted change is not canonical for the reader: raising the
                // version of a message (top-level or nested) to one the reader does not know.
                // It is re-encoded at the reader's version, which restores the original.
                assert_eq!(
                    again, bytes,
                    "byte {at} ^ {mask:#x} decoded but is not canonical"
                );
            }
        }
    }
    // Some changes (in integer fields) must be accepted, or the test checks nothing.
    assert!(accepted > 0);
}

#[test]
fn every_accepted_change_is_canonical() {
    every_byte_change(&Scalars {
        byte: 1,
        short: 2,
        word: 3,
        long: 4,
        sbyte: -5,
        sshort: 6,
        sword: 7,
        slong: 8,
        single: 1.5,
        double: -2.5,
        flag: true,
        side: Side::Buy,
        level: Level::Mid,
    });
    every_byte_change(&Optionals {
        count: Some(3),
        flag: None,
        side: Some(Side::Sell),
        tag: None,
        label: Some("ab".into()),
        data: None,
        point: Some(Point { x: 1, y: 2 }),
    });
    every_byte_change(&Lists {
        numbers: vec![1],
        words: vec!["w".into(), String::new()],
        points: vec![Point { x: 5, y: 6 }],
        maybe: vec![Some(1), None],
        matrix: vec![vec![3]],
        sides: vec![Side::Buy],
    });
    every_byte_change(&EnvelopeV2 {
        seq: 1,
        order: OrderV2 {
            id: 2,
            symbol: "s".into(),
            qty: None,
            note: Some("n".into()),
        },
        history: vec![],
    });
    every_byte_change(&Blobs {
        tag: *b"abcd",
        data: vec![1],
        name: "é".into(),
    });
}

#[test]
fn absent_fields_of_views_read_as_none() {
    let v1 = OrderV1 {
        id: 5,
        symbol: "old".into(),
    }
    .encode_to_vec()
    .unwrap();
    let view = OrderV2::view(&v1).unwrap();
    assert_eq!(view.payload_version(), 1);
    assert_eq!(view.qty(), None);
    assert_eq!(view.note(), None);
    // The short version-1 block is zero-extended: the version-2 optional reads as absent.
    assert_eq!(view.fixed_block().qty.present, 0);
    assert_eq!(
        OrderV2::from_view(view),
        OrderV2 {
            id: 5,
            symbol: "old".into(),
            qty: None,
            note: None
        }
    );
}
