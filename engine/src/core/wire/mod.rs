//! The wire format: frame v1 (header, validation, encode/decode) and length-prefixed stream
//! framing for byte-stream links. Normative text: `spec/wire/Frame-v1.md`.

pub mod frame;
pub mod stream;

pub use frame::{
    DecodeOptions, Flags, FrameError, FrameView, Header, Lane, PacketType, RecipientKind, Segment,
};
pub use stream::{StreamDecoder, StreamError};
