//! Goal: the derived code, the view and the dynamic codec are three readings of one format.
//! Method: round-trip hand-picked values of every test schema through all of them
//! ([`super::round_trip`]), and compare a few encodings with bytes written out by hand from
//! the layout rules, independently of either encoder.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Bytes, round_trip};
use crate::TpfMessage;
use crate::testing::*;

fn scalars_extreme() -> Scalars {
    Scalars {
        byte: u8::MAX,
        short: u16::MAX,
        word: u32::MAX,
        long: u64::MAX,
        sbyte: i8::MIN,
        sshort: i16::MIN,
        sword: i32::MIN,
        slong: i64::MIN,
        single: -0.0,
        double: f64::NEG_INFINITY,
        flag: true,
        side: Side::Sell,
        level: Level::High,
    }
}

#[test]
fn every_test_schema_round_trips() {
    round_trip(&scalars_extreme());
    round_trip(&Scalars {
        single: f32::from_bits(0x7FC0_0001),
        double: f64::from_bits(0x7FF0_0000_0000_0001),
        ..scalars_extreme()
    });
    round_trip(&Blobs {
        tag: *b"TAG1",
        data: vec![],
        name: String::new(),
    });
    round_trip(&Blobs {
        tag: [0; 4],
        data: vec![0xAB; 16],
        name: "é漢🎵 ok".into(),
    });
    round_trip(&Optionals {
        count: None,
        flag: None,
        side: None,
        tag: None,
        label: None,
        data: None,
        point: None,
    });
    round_trip(&Optionals {
        count: Some(0),
        flag: Some(false),
        side: Some(Side::Buy),
        tag: Some([0, 0]),
        label: Some(String::new()),
        data: Some(vec![]),
        point: Some(Point { x: 0, y: 0 }),
    });
    round_trip(&Lists {
        numbers: vec![],
        words: vec![],
        points: vec![],
        maybe: vec![],
        matrix: vec![],
        sides: vec![],
    });
    round_trip(&Lists {
        numbers: vec![1, 2, 3, u16::MAX],
        words: vec!["a".into(), String::new(), "12345678".into()],
        points: vec![
            Point { x: -1, y: 1 },
            Point {
                x: i32::MAX,
                y: i32::MIN,
            },
            Point { x: 0, y: 0 },
        ],
        maybe: vec![None, Some(0), Some(255)],
        matrix: vec![vec![], vec![-1, 1]],
        sides: vec![Side::Sell, Side::Buy],
    });
    round_trip(&Tree {
        value: 1,
        children: vec![
            Tree {
                value: 2,
                children: vec![],
            },
            Tree {
                value: 3,
                children: vec![Tree {
                    value: 4,
                    children: vec![],
                }],
            },
        ],
    });
    round_trip(&OrderV1 {
        id: 7,
        symbol: "ACME".into(),
    });
    round_trip(&OrderV2 {
        id: 7,
        symbol: "ACME".into(),
        qty: Some(100),
        note: Some("rush".into()),
    });
    round_trip(&OrderV2 {
        id: 7,
        symbol: "ACME".into(),
        qty: None,
        note: None,
    });
    round_trip(&EnvelopeV1 {
        seq: 1,
        order: OrderV1 {
            id: 1,
            symbol: "A".into(),
        },
        history: vec![],
    });
    round_trip(&EnvelopeV2 {
        seq: 2,
        order: OrderV2 {
            id: 1,
            symbol: "A".into(),
            qty: Some(5),
            note: None,
        },
        history: vec![OrderV2 {
            id: 0,
            symbol: String::new(),
            qty: None,
            note: Some("n".into()),
        }],
    });
    round_trip(&Tick::sample(3));
    round_trip(&Batch::sample());
}

#[test]
fn scalars_follow_the_layout() {
    let bytes = round_trip(&scalars_extreme());
    let block = Bytes::default()
        .u8(0xFF)
        .u16(0xFFFF)
        .u32(0xFFFF_FFFF)
        .u64(u64::MAX)
        .u8(0x80)
        .u16(0x8000)
        .u32(0x8000_0000)
        .u64(0x8000_0000_0000_0000)
        .u32(0x8000_0000)
        .u64(0xFFF0_0000_0000_0000)
        .u8(1)
        .u8(2)
        .u16(1000);
    let expected = Bytes::message((1, 1, 1), block.0.len() as u16, block);
    assert_eq!(bytes, expected.0);
    assert_eq!(bytes.len(), 12 + 46);
}

#[test]
fn optionals_and_parts_follow_the_layout() {
    let value = Optionals {
        count: Some(9),
        flag: None,
        side: Some(Side::Buy),
        tag: None,
        label: Some("hi".into()),
        data: None,
        point: Some(Point { x: 1, y: -1 }),
    };
    let bytes = round_trip(&value);
    let block = Bytes::default()
        .u8(1)
        .u32(9)
        .u8(0)
        .u8(0)
        .u8(1)
        .u8(1)
        .u8(0)
        .raw(&[0, 0]);
    let point = Bytes::message((1, 3, 1), 8, Bytes::default().u32(1).u32(u32::MAX));
    let body = Bytes(block.0.clone())
        .part(b"hi")
        .u32(0xFFFF_FFFF)
        .raw(&point.0);
    let expected = Bytes::message((1, 4, 1), block.0.len() as u16, body);
    assert_eq!(bytes, expected.0);
}

#[test]
fn lists_follow_the_layout() {
    let value = Lists {
        numbers: vec![1, 2],
        words: vec!["ab".into()],
        points: vec![],
        maybe: vec![Some(7), None],
        matrix: vec![vec![-1]],
        sides: vec![Side::Sell],
    };
    let bytes = round_trip(&value);
    let words = Bytes::default().part(b"ab");
    let matrix = Bytes::default().part(&[0xFF]);
    let body = Bytes::default()
        .part(&[1, 0, 2, 0])
        .part(&words.0)
        .part(&[])
        .part(&[1, 7, 0, 0])
        .part(&matrix.0)
        .part(&[2]);
    let expected = Bytes::message((1, 5, 1), 0, body);
    assert_eq!(bytes, expected.0);
}

#[test]
fn derived_schemas_are_valid_and_complete() {
    fn names<M: TpfMessage>() -> Vec<String> {
        let schema = M::schema();
        assert_eq!(schema.validate(), Ok(()));
        assert_eq!(schema.messages[0].name, M::NAME);
        schema
            .messages
            .iter()
            .map(|m| m.name.clone())
            .chain(schema.enums.iter().map(|e| e.name.clone()))
            .collect()
    }
    assert_eq!(names::<Scalars>(), ["Scalars", "Side", "Level"]);
    assert_eq!(names::<Tree>(), ["Tree"]);
    assert_eq!(names::<EnvelopeV2>(), ["Envelope", "Order"]);
    assert_eq!(names::<Batch>(), ["Batch", "Tick", "Side"]);
    let order = OrderV2::schema();
    assert_eq!(
        order.messages[0]
            .fields
            .iter()
            .map(|f| f.since)
            .collect::<Vec<_>>(),
        [1, 1, 2, 2]
    );
    assert_eq!(order.messages[0].block_length(1, &order.enums), 8);
    assert_eq!(order.messages[0].block_length(2, &order.enums), 13);
    assert_eq!(OrderV2::block_length(1), 8);
    assert_eq!(OrderV2::block_length(2), 13);
}

#[test]
fn views_read_in_place() {
    let value = Lists {
        numbers: vec![5, 6],
        words: vec!["x".into(), "yz".into()],
        points: vec![Point { x: 3, y: 4 }],
        maybe: vec![None, Some(1)],
        matrix: vec![vec![1, 2], vec![]],
        sides: vec![Side::Buy],
    };
    let bytes = value.encode_to_vec().unwrap();
    let view = Lists::view(&bytes).unwrap();
    assert_eq!(view.payload_version(), 1);
    assert_eq!(view.numbers().iter().collect::<Vec<_>>(), [5, 6]);
    assert_eq!(view.numbers().wire().unwrap()[1].get(), 6);
    let words: Vec<&str> = view.words().iter().collect();
    assert_eq!(words, ["x", "yz"]);
    // The strings are borrowed from the payload, not copied.
    let range = bytes.as_ptr_range();
    assert!(words.iter().all(|w| range.contains(&w.as_ptr())));
    let point = view.points().iter().next().unwrap();
    assert_eq!((point.x(), point.y()), (3, 4));
    assert_eq!(point.fixed_block().y.get(), 4);
    assert_eq!(view.maybe().iter().collect::<Vec<_>>(), [None, Some(1)]);
    assert_eq!(
        view.matrix()
            .iter()
            .map(|row| row.iter().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [vec![1, 2], vec![]]
    );
    assert_eq!(view.to_owned_message(), value);

    let blobs = Blobs {
        tag: *b"abcd",
        data: vec![1, 2, 3],
        name: "n".into(),
    };
    let bytes = blobs.encode_to_vec().unwrap();
    let view = Blobs::view(&bytes).unwrap();
    assert_eq!(view.data().as_slice(), &[1, 2, 3]);
    assert!(
        bytes
            .as_ptr_range()
            .contains(&view.data().as_slice().as_ptr())
    );
    assert_eq!(&view.fixed_block().tag, b"abcd");
    let debug = alloc::format!("{view:?}");
    assert!(debug.contains("name: \"n\""), "{debug}");
}
