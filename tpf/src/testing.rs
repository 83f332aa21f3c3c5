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
