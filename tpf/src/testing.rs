//! The test schemas of TPF v1, as derived Rust types (feature `testing`).
//!
//! These are the schemas the golden vectors in `spec/vectors/tpf/` use (each vector also
//! carries its schema as JSON, and `tests/tests/tpf_vectors.rs` checks that the two agree),
//! plus the two messages the benches encode. The fuzzer decodes its inputs with every one of
//! them, through both the derived and the dynamic codec.
//!
//! Section "Test schemas" of `spec/payload/TPF-v1.md` lists them in the language-neutral form.

#![allow(missing_docs)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::{Tpf, TpfEnum};

/// A `u8` enum.
#[derive(TpfEnum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    Buy = 1,
    Sell = 2,
}

/// A `u16` enum with a wide value.
#[derive(TpfEnum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Level {
    Low = 0,
    Mid = 500,
    High = 1000,
}

/// Every scalar type, in the fixed block.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 1, template = 1)]
pub struct Scalars {
    pub byte: u8,
    pub short: u16,
    pub word: u32,
    pub long: u64,
    pub sbyte: i8,
    pub sshort: i16,
    pub sword: i32,
    pub slong: i64,
    pub single: f32,
    pub double: f64,
    pub flag: bool,
    pub side: Side,
    pub level: Level,
}

/// A fixed byte array, a byte string and a string.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 2)]
pub struct Blobs {
    pub tag: [u8; 4],
    #[tpf(max = 16)]
    pub data: Vec<u8>,
    #[tpf(max = 16)]
    pub name: String,
}

/// A small nested message.
#[derive(Tpf, Clone, Copy, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 3)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// Optionals of every kind: fixed-size ones in the fixed block, variable ones as parts.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 4)]
pub struct Optionals {
    pub count: Option<u32>,
    pub flag: Option<bool>,
    pub side: Option<Side>,
    pub tag: Option<[u8; 2]>,
    #[tpf(max = 8)]
    pub label: Option<String>,
    #[tpf(max = 4)]
    pub data: Option<Vec<u8>>,
    pub point: Option<Point>,
}

/// Lists of fixed-size and variable items, including nested messages and lists of lists.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 5)]
pub struct Lists {
    #[tpf(max = 4)]
    pub numbers: Vec<u16>,
    #[tpf(max = 3, item_max = 8)]
    pub words: Vec<String>,
    #[tpf(max = 3)]
    pub points: Vec<Point>,
    #[tpf(max = 3)]
    pub maybe: Vec<Option<u8>>,
    #[tpf(max = 2, item_max = 2)]
    pub matrix: Vec<Vec<i8>>,
    #[tpf(max = 2)]
    pub sides: Vec<Side>,
}

/// A recursive message, for nesting depth.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 6)]
pub struct Tree {
    pub value: u32,
    #[tpf(max = 4)]
    pub children: Vec<Tree>,
}

/// Message `Order` as version 1 of the schema knows it.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 7, version = 1, name = "Order")]
pub struct OrderV1 {
    pub id: u64,
    #[tpf(max = 16)]
    pub symbol: String,
}

/// Message `Order` as version 2 of the schema knows it: one fixed and one variable field
/// appended.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 7, version = 2, name = "Order")]
pub struct OrderV2 {
    pub id: u64,
    #[tpf(max = 16)]
    pub symbol: String,
    #[tpf(since = 2)]
    pub qty: Option<u32>,
    #[tpf(since = 2, max = 16)]
    pub note: Option<String>,
}

/// Message `Envelope` (version 1) nesting an `Order` of version 1.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 8, name = "Envelope")]
pub struct EnvelopeV1 {
    pub seq: u32,
    pub order: OrderV1,
    #[tpf(max = 2)]
    pub history: Vec<OrderV1>,
}

/// Message `Envelope` (version 1) nesting an `Order` of version 2: the envelope did not
/// change, the message inside it evolved.
#[derive(Tpf, Clone, Debug, PartialEq, Eq)]
#[tpf(schema = 1, template = 8, name = "Envelope")]
pub struct EnvelopeV2 {
    pub seq: u32,
    pub order: OrderV2,
    #[tpf(max = 2)]
    pub history: Vec<OrderV2>,
}

/// The bench's small message: a handful of scalars and a short string.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 2, template = 1)]
pub struct Tick {
    pub id: u64,
    pub price: i64,
    pub qty: u32,
    pub side: Side,
    pub flags: u8,
    pub live: bool,
    #[tpf(max = 16)]
    pub symbol: String,
}

/// The bench's ~1 KiB message: strings, a list of nested messages and a byte string.
#[derive(Tpf, Clone, Debug, PartialEq)]
#[tpf(schema = 2, template = 2)]
pub struct Batch {
    pub id: u64,
    pub created_ns: u64,
    #[tpf(max = 64)]
    pub source: String,
    #[tpf(max = 32)]
    pub ticks: Vec<Tick>,
    #[tpf(max = 1024)]
    pub blob: Vec<u8>,
}

impl Tick {
    /// A representative small message (45 bytes encoded).
    pub fn sample(id: u64) -> Tick {
        Tick {
            id,
            price: 1_234_567,
            qty: 300,
            side: if id % 2 == 0 { Side::Buy } else { Side::Sell },
            flags: 0x05,
            live: true,
            symbol: String::from("EURUSD"),
        }
    }
}

impl Batch {
    /// A representative message of about 1 KiB.
    pub fn sample() -> Batch {
        Batch {
            id: 42,
            created_ns: 1_700_000_000_000_000_000,
            source: String::from("station-7/port-1001/ticks"),
            ticks: (0..8).map(Tick::sample).collect(),
            blob: (0..=255u8).cycle().take(600).collect(),
        }
    }
}

/// The property checks the fuzzer runs on every input, here so that unit tests can replay the
/// seed corpus and every past finding through exactly the same code.
pub mod properties {
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use core::any::type_name;
    use core::fmt::Debug;
    use std::sync::OnceLock;

    use super::*;
    use crate::dynamic::{Codec, Value};
    use crate::{Error, TpfMessage};

    /// For each test type: the dynamic codec of its schema, and of the same schema with every
    /// message's version raised to the largest one ("open"). The open reader knows every
    /// version, so it accepts exactly the payloads that carry no field unknown to the real
    /// reader, and for those it must reproduce the input byte for byte.
    fn codecs<M: TpfMessage>() -> &'static (Codec, Codec) {
        static CODECS: OnceLock<BTreeMap<&'static str, (Codec, Codec)>> = OnceLock::new();
        let codecs = CODECS.get_or_init(|| {
            let mut codecs = BTreeMap::new();
            fn add<M: TpfMessage>(codecs: &mut BTreeMap<&'static str, (Codec, Codec)>) {
                let schema = M::schema();
                let mut open = schema.clone();
                open.messages.iter_mut().for_each(|m| m.version = u16::MAX);
                let pair = (
                    Codec::new(&schema).expect("valid schema"),
                    Codec::new(&open).expect("valid schema"),
                );
                codecs.insert(type_name::<M>(), pair);
            }
            add::<Scalars>(&mut codecs);
            add::<Blobs>(&mut codecs);
            add::<Point>(&mut codecs);
            add::<Optionals>(&mut codecs);
            add::<Lists>(&mut codecs);
            add::<Tree>(&mut codecs);
            add::<OrderV1>(&mut codecs);
            add::<OrderV2>(&mut codecs);
            add::<EnvelopeV1>(&mut codecs);
            add::<EnvelopeV2>(&mut codecs);
            add::<Tick>(&mut codecs);
            add::<Batch>(&mut codecs);
            codecs
        });
        &codecs[type_name::<M>()]
    }

    /// Checks every property of decoding `data` with every test type; panics on a violation.
    pub fn check_payload(data: &[u8]) {
        check::<Scalars>(data);
        check::<Blobs>(data);
        check::<Point>(data);
        check::<Optionals>(data);
        check::<Lists>(data);
        check::<Tree>(data);
        check::<OrderV1>(data);
        check::<OrderV2>(data);
        check::<EnvelopeV1>(data);
        check::<EnvelopeV2>(data);
        check::<Tick>(data);
        check::<Batch>(data);
    }

    /// Sets the version of every message in `value` to 0, to compare a derived value (always
    /// at the type's versions) with a dynamic one (at the payload's).
    pub fn without_versions(value: &mut Value) {
        match value {
            Value::Message(message) => {
                message.version = 0;
                message.fields.iter_mut().for_each(without_versions);
            }
            Value::Some(inner) => without_versions(inner),
            Value::List(items) => items.iter_mut().for_each(without_versions),
            _ => {}
        }
    }

    fn unversioned(mut value: Value) -> Value {
        without_versions(&mut value);
        value
    }

    /// Checks the properties of decoding `data` as `M`:
    ///
    /// 1. the derived decoder, the view and the dynamic codec agree: the same value (up to
    ///    the versions the dynamic value records) or the same error;
    /// 2. lengths add up: the header's length is the input's, `encoded_len` is what `encode`
    ///    writes;
    /// 3. re-encoding is stable: the derived re-encoding decodes to the same value, and the
    ///    dynamic codec encodes the derived value to the same bytes;
    /// 4. canonicality: an input that carries no field unknown to the reader is reproduced
    ///    byte for byte by a reader that knows every version; by the real reader too when no
    ///    message in it is newer than the reader; and by the derived code when every message
    ///    is at the type's own version. An input that does carry unknown fields is accepted
    ///    by the real reader only, never by the one that knows every version.
    pub fn check<M: TpfMessage + Debug>(data: &[u8]) {
        let (codec, open) = codecs::<M>();
        let derived: Result<M, Error> = M::decode(data);
        let viewed: Result<M, Error> = M::view(data).map(M::from_view);
        let dynamic = codec.decode_as(M::NAME, data);
        let opened = open.decode_as(M::NAME, data);

        let (message, value) = match (derived, viewed, dynamic) {
            (Ok(message), Ok(viewed), Ok(value)) => {
                assert_eq!(
                    message.to_value(),
                    viewed.to_value(),
                    "decode and view disagree"
                );
                assert_eq!(
                    unversioned(message.to_value()),
                    unversioned(Value::Message(value.clone())),
                    "derived and dynamic values disagree"
                );
                (message, value)
            }
            (Err(derived), Err(viewed), Err(dynamic)) => {
                assert_eq!(derived, viewed, "decode and view fail differently");
                assert_eq!(derived, dynamic, "derived and dynamic fail differently");
                assert!(
                    opened.is_err(),
                    "the open reader accepts what the real one refuses"
                );
                return;
            }
            (derived, viewed, dynamic) => {
                panic!(
                    "decoders disagree: derived {derived:?}, view {viewed:?}, dynamic {dynamic:?}"
                )
            }
        };

        // 2. Lengths add up.
        let length = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert_eq!(length + 4, data.len());
        let bytes = message.encode_to_vec().expect("a decoded value encodes");
        assert_eq!(bytes.len(), message.encoded_len());

        // 3. Re-encoding is stable and both codecs write the same bytes.
        assert_eq!(
            M::decode(&bytes).expect("re-encoding decodes").to_value(),
            message.to_value()
        );
        let Value::Message(current) = message.to_value() else {
            unreachable!("messages are Value::Message")
        };
        assert_eq!(
            codec.encode_to_vec(M::NAME, &current).as_deref(),
            Ok(&bytes[..]),
            "codecs encode differently"
        );
        let again = codec
            .encode_to_vec(M::NAME, &value)
            .expect("a decoded value encodes");
        assert_eq!(codec.decode_as(M::NAME, &again).as_ref(), Ok(&value));

        // 4. Canonicality.
        match opened {
            Ok(open_value) => {
                // At the payload's own versions the input is reproduced exactly.
                assert_eq!(
                    open.encode_to_vec(M::NAME, &open_value).as_deref(),
                    Ok(data),
                    "accepted input is not canonical"
                );
                // The real reader reproduces it when no version exceeds the reader's ...
                if open_value == value {
                    assert_eq!(
                        again, data,
                        "accepted input at known versions is not canonical"
                    );
                } else {
                    assert_ne!(again, data);
                }
                // ... and the derived code when every version is the type's own.
                if Value::Message(open_value) == message.to_value() {
                    assert_eq!(
                        bytes, data,
                        "accepted input at the type's versions is not canonical"
                    );
                } else {
                    assert_ne!(bytes, data);
                }
            }
            Err(_) => assert_ne!(
                again, data,
                "input with unknown fields re-encoded unchanged"
            ),
        }
    }

    /// Replays every file of a directory (a corpus) through [`check_payload`]; returns how
    /// many files there were.
    pub fn replay_dir(dir: &std::path::Path) -> usize {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("readable directory").path())
            .collect();
        paths.sort();
        for path in &paths {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            check_payload(&data);
        }
        paths.len()
    }
}
