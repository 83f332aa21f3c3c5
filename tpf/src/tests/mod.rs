//! Tests that exercise the whole crate: derived types against the dynamic codec, canonical
//! rejection, evolution, views, and property-based round trips.

extern crate std;

use alloc::vec::Vec;
use core::fmt::Debug;

use crate::dynamic::{Codec, Value};
use crate::{Error, TpfMessage};

mod agreement;
mod canonical;
mod evolution;
mod props;
mod regressions;

/// The dynamic codec for message type `M`.
pub(crate) fn codec<M: TpfMessage>() -> Codec {
    Codec::new(&M::schema()).expect("derived schemas are valid")
}

/// The dynamic form of a derived message.
pub(crate) fn message_value<M: TpfMessage>(message: &M) -> crate::dynamic::MessageValue {
    match message.to_value() {
        Value::Message(value) => value,
        other => panic!("a message converts to Value::Message, not {other:?}"),
    }
}

/// Encodes `message` with the derived and the dynamic codec, checks that both give the same
/// bytes, that `encoded_len` is exact, that every decoder gives the value back, and that the
/// bytes re-encode to themselves. Returns the bytes.
pub(crate) fn round_trip<M: TpfMessage + Debug>(message: &M) -> Vec<u8> {
    let bytes = message.encode_to_vec().expect("encodes");
    assert_eq!(bytes.len(), message.encoded_len());

    // Encode into a buffer of exactly the right size and into one byte less.
    let mut exact = alloc::vec![0u8; bytes.len()];
    assert_eq!(message.encode(&mut exact), Ok(bytes.len()));
    assert_eq!(exact, bytes);
    let mut short = alloc::vec![0u8; bytes.len() - 1];
    assert_eq!(
        message.encode(&mut short),
        Err(Error::BufferTooSmall {
            needed: bytes.len(),
            had: bytes.len() - 1
        })
    );

    // The dynamic codec agrees byte for byte, and decodes to the same value.
    let codec = codec::<M>();
    let value = message_value(message);
    assert_eq!(
        codec.encode_to_vec(M::NAME, &value).as_deref(),
        Ok(&bytes[..]),
        "dynamic encoding differs"
    );
    let (name, decoded) = codec.decode(&bytes).expect("dynamic decode");
    assert_eq!(name, M::NAME);
    assert_eq!(decoded, value);

    // The derived decoder and the view give the value back.
    let decoded = M::decode(&bytes).expect("derived decode");
    assert_eq!(decoded.to_value(), message.to_value());
    let view = M::view(&bytes).expect("view");
    assert_eq!(M::from_view(view).to_value(), message.to_value());
    assert_eq!(decoded.encode_to_vec().as_deref(), Ok(&bytes[..]));
    bytes
}

/// Decodes `bytes` as `M` and returns the outcome, after checking with the fuzzer's property
/// checks that the derived decoder, the view and the dynamic codec agree (the same value or
/// the same error) and that an accepted input is canonical.
pub(crate) fn decode_all<M: TpfMessage + Debug>(bytes: &[u8]) -> Result<M, Error> {
    crate::testing::properties::check::<M>(bytes);
    M::decode(bytes)
}

/// Little-endian byte builder for hand-written payloads.
#[derive(Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Bytes {
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A part holding `content`.
    pub(crate) fn part(self, content: &[u8]) -> Self {
        self.u32(content.len() as u32).raw(content)
    }
    /// A message: header (with the length computed) around `body` (fixed block + parts).
    pub(crate) fn message(ids: (u16, u16, u16), block_length: u16, body: Bytes) -> Bytes {
        let (schema, template, version) = ids;
        Bytes::default()
            .u32(8 + body.0.len() as u32)
            .u16(schema)
            .u16(template)
            .u16(version)
            .u16(block_length)
            .raw(&body.0)
    }
}
