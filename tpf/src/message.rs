//! Messages: the [`TpfMessage`] trait that `#[derive(Tpf)]` implements, and the generic
//! encode, decode and view drivers behind it.
//!
//! A derived message is encoded at its current [`TpfMessage::VERSION`]:
//!
//! ```text
//!  +--------+-----------------------------+-------------------------------+
//!  | header | fixed block                 | variable section              |
//!  | 12 B   | fixed-size fields, packed,  | one part per variable field,  |
//!  |        | in declaration order        | in declaration order          |
//!  +--------+-----------------------------+-------------------------------+
//! ```
//!
//! Decoding checks, in wire order, the header, every fixed field, then every part, and
//! stops at the first problem. A payload at an older version decodes the fields it lacks as
//! absent (`None`); a payload at a newer version has its unknown trailing fixed bytes and
//! parts skipped. A view ([`TpfMessage::view`]) performs exactly the same checks without
//! allocating and then lends the fields in place.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::Error;
use crate::field::{Ctx, Field};
use crate::schema::{FieldDef, Schema, Type};
use crate::wire::{self, FixedRef, HEADER_LEN, Reader, Writer};

/// A TPF message type, implemented by `#[derive(Tpf)]`.
///
/// ```
/// use tamtam_tpf::{Tpf, TpfEnum, TpfMessage};
///
/// #[derive(TpfEnum, Clone, Copy, Debug, PartialEq, Eq)]
/// #[repr(u8)]
/// enum Side { Buy = 1, Sell = 2 }
///
/// #[derive(Tpf, Clone, Debug, PartialEq)]
/// #[tpf(schema = 1, template = 7, version = 2)]
/// struct Order {
///     id: u64,
///     side: Side,
///     #[tpf(max = 16)]
///     symbol: String,
///     #[tpf(since = 2)]
///     qty: Option<u32>,
/// }
///
/// let order = Order { id: 9, side: Side::Sell, symbol: "ACME".into(), qty: Some(100) };
/// let mut buf = [0u8; 64];
/// let n = order.encode(&mut buf)?;
/// assert_eq!(n, order.encoded_len());
/// assert_eq!(Order::decode(&buf[..n])?, order);
///
/// let view = Order::view(&buf[..n])?;   // validated, nothing copied
/// assert_eq!(view.symbol(), "ACME");
/// assert_eq!(view.fixed_block().id.get(), 9);
/// # Ok::<(), tamtam_tpf::Error>(())
/// ```
pub trait TpfMessage: Field {
    /// Name in the schema.
    const NAME: &'static str;
    /// Schema id written in the header.
    const SCHEMA_ID: u16;
    /// Template id written in the header.
    const TEMPLATE_ID: u16;
    /// The version this type encodes at (the highest `since` of its fields, or more).
    const VERSION: u16;
    /// The fixed block as a zerocopy struct of little-endian fields (all fields at
    /// [`TpfMessage::VERSION`]; variable fields appear as zero-sized `()`).
    type Fixed: FromBytes
        + IntoBytes
        + KnownLayout
        + Immutable
        + Unaligned
        + Copy
        + fmt::Debug
        + 'static;

    /// Fixed-block length of a payload at `version` (at most [`TpfMessage::VERSION`]).
    fn block_length(version: u16) -> u16;

    /// Bytes the variable section takes.
    #[doc(hidden)]
    fn body_len(&self) -> usize;
    /// Fills the fixed block and writes the parts.
    #[doc(hidden)]
    fn encode_body(
        &self,
        fixed: &mut Self::Fixed,
        writer: &mut Writer<'_>,
        depth: usize,
    ) -> Result<(), Error>;
    /// Checks every fixed field, in order.
    #[doc(hidden)]
    fn check_fixed(fixed: &Self::Fixed, depth: usize) -> Result<(), Error>;
    /// Builds the value from a checked fixed block and the parts.
    #[doc(hidden)]
    fn decode_body(
        fixed: &Self::Fixed,
        parts: &mut Reader<'_>,
        version: u16,
        depth: usize,
    ) -> Result<Self, Error>;
    /// Builds the view from a checked fixed block and the parts.
    #[doc(hidden)]
    fn view_body<'a>(
        fixed: FixedRef<'a, Self::Fixed>,
        parts: &mut Reader<'a>,
        version: u16,
        depth: usize,
    ) -> Result<<Self as Field>::View<'a>, Error>;
    /// The field definitions, registering the types they refer to.
    #[doc(hidden)]
    fn field_defs(schema: &mut Schema) -> Vec<FieldDef>;

    /// Bytes [`TpfMessage::encode`] writes.
    fn encoded_len(&self) -> usize {
        HEADER_LEN + Self::block_length(Self::VERSION) as usize + self.body_len()
    }

    /// Encodes the message into the start of `buf`, allocating nothing, and returns the
    /// number of bytes written. On error the contents of `buf` are unspecified.
    fn encode(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let had = buf.len();
        let mut writer = Writer::new(buf);
        match encode_message(self, &mut writer, 1) {
            Ok(()) => {
                let written = writer.position();
                debug_assert_eq!(written, self.encoded_len());
                Ok(written)
            }
            Err(Error::BufferTooSmall { .. }) => Err(Error::BufferTooSmall {
                needed: self.encoded_len(),
                had,
            }),
            Err(error) => Err(error),
        }
    }

    /// Encodes the message into a new vector.
    fn encode_to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; self.encoded_len()];
        let written = self.encode(&mut buf)?;
        assert_eq!(written, buf.len());
        Ok(buf)
    }

    /// Validates `bytes` (exactly one message) and decodes them into an owned value.
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        decode_message(wire::top_level(bytes)?, 1)
    }

    /// Validates `bytes` (exactly one message) and returns a view that reads the fields in
    /// place: the fixed block through its zerocopy struct, strings and byte strings as
    /// borrowed slices. Every read on the view is infallible.
    fn view(bytes: &[u8]) -> Result<<Self as Field>::View<'_>, Error> {
        view_message::<Self>(wire::top_level(bytes)?, 1)
    }

    /// The schema of this message and of every type it refers to (this message first).
    fn schema() -> Schema {
        let mut schema = Schema::default();
        Self::register(&mut schema);
        schema
    }

    /// Adds this message and the types it refers to to `schema`.
    fn register(schema: &mut Schema) {
        schema.register_message(
            Self::NAME,
            (Self::SCHEMA_ID, Self::TEMPLATE_ID, Self::VERSION),
            Self::field_defs,
        );
    }
}

/// Encodes `message` at the writer's position at nesting `depth`.
pub fn encode_message<M: TpfMessage>(
    message: &M,
    writer: &mut Writer<'_>,
    depth: usize,
) -> Result<(), Error> {
    let block_length = M::block_length(M::VERSION) as usize;
    debug_assert_eq!(block_length, core::mem::size_of::<M::Fixed>());
    let start = wire::begin_message(writer, block_length, depth)?;
    let mut fixed = M::Fixed::new_zeroed();
    message.encode_body(&mut fixed, writer, depth)?;
    wire::end_message(
        writer,
        start,
        (M::SCHEMA_ID, M::TEMPLATE_ID, M::VERSION),
        fixed.as_bytes(),
    )
}

/// Checks the header of a message of type `M` and splits off its fixed block.
fn open<M: TpfMessage>(msg: &[u8], depth: usize) -> Result<wire::Opened<'_>, Error> {
    let (header, rest) = wire::read_header(msg, depth)?;
    wire::check_ids(header, M::SCHEMA_ID, M::TEMPLATE_ID)?;
    wire::open_body(header, rest, M::VERSION, M::block_length)
}

/// Decodes one complete message (`msg` holds exactly its bytes, length prefix included).
pub fn decode_message<M: TpfMessage>(msg: &[u8], depth: usize) -> Result<M, Error> {
    let opened = open::<M>(msg, depth)?;
    let fixed = FixedRef::<M::Fixed>::new(opened.fixed);
    M::check_fixed(&fixed, depth)?;
    let mut parts = opened.parts;
    let message = M::decode_body(&fixed, &mut parts, opened.version, depth)?;
    wire::finish(parts, opened.version, M::VERSION)?;
    Ok(message)
}

/// Validates one complete message and returns its view.
pub fn view_message<M: TpfMessage>(
    msg: &[u8],
    depth: usize,
) -> Result<<M as Field>::View<'_>, Error> {
    let opened = open::<M>(msg, depth)?;
    let fixed = FixedRef::<M::Fixed>::new(opened.fixed);
    M::check_fixed(&fixed, depth)?;
    let mut parts = opened.parts;
    let view = M::view_body(fixed, &mut parts, opened.version, depth)?;
    wire::finish(parts, opened.version, M::VERSION)?;
    Ok(view)
}

/// [`Field`] methods of a nested message, which is a part whose length prefix is the
/// message's own length field. `#[derive(Tpf)]` delegates to these.
pub mod nested {
    use super::*;

    /// The message's schema type, registering it.
    pub fn field_type<M: TpfMessage>(schema: &mut Schema) -> Type {
        M::register(schema);
        Type::Message(M::NAME.into())
    }

    /// Bytes of the nested message.
    pub fn part_len<M: TpfMessage>(message: &M) -> usize {
        message.encoded_len()
    }

    /// Writes the nested message one level below `ctx`.
    pub fn encode_part<M: TpfMessage>(
        message: &M,
        writer: &mut Writer<'_>,
        ctx: &Ctx,
    ) -> Result<(), Error> {
        encode_message(message, writer, ctx.depth + 1)
    }

    fn message_bytes<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<&'a [u8], Error> {
        reader.message()?.ok_or(Error::InvalidPresence {
            field: ctx.name(),
            value: wire::ABSENT,
        })
    }

    /// Reads and decodes the nested message.
    pub fn decode_part<M: TpfMessage>(reader: &mut Reader<'_>, ctx: &Ctx) -> Result<M, Error> {
        decode_message(message_bytes(reader, ctx)?, ctx.depth + 1)
    }

    /// Reads and validates the nested message into its view.
    pub fn view_part<'a, M: TpfMessage>(
        reader: &mut Reader<'a>,
        ctx: &Ctx,
    ) -> Result<<M as Field>::View<'a>, Error> {
        view_message::<M>(message_bytes(reader, ctx)?, ctx.depth + 1)
    }
}
