//! Byte-level building blocks shared by the derived and the dynamic codecs: the message
//! header, the checked [`Reader`] and [`Writer`], the optional wrapper of fixed-size values,
//! and the steps of opening a message (header checks, fixed block, trailing parts).
//!
//! Everything that touches untrusted bytes goes through [`Reader`], whose reads return
//! [`Error::Truncated`] instead of panicking, or through zerocopy's `*_from_prefix` forms.
//!
//! ```text
//! message  = length:u32 schema_id:u16 template_id:u16 version:u16 block_length:u16
//!            fixed_block[block_length] part*
//! part     = length:u32 content[length]      (length != 0xFFFF_FFFF)
//!          | 0xFFFF_FFFF                      (an absent optional; no content)
//! ```

use zerocopy::byteorder::little_endian::{F32, F64, I16, I32, I64, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, TryFromBytes, Unaligned};

use crate::error::Error;

/// Bytes in a message header.
pub const HEADER_LEN: usize = 12;
/// Bytes in a length prefix (of a message or of a variable part).
pub const PREFIX_LEN: usize = 4;
/// Smallest value of a message's `length` field: the header after the length field.
pub const MESSAGE_LENGTH_MIN: u32 = (HEADER_LEN - PREFIX_LEN) as u32;
/// The part length that marks an absent optional variable value. It has no content.
pub const ABSENT: u32 = u32::MAX;
/// The largest `length` a message may carry (one below [`ABSENT`]).
pub const MESSAGE_LENGTH_MAX: u32 = ABSENT - 1;
/// The deepest nesting of messages a codec accepts; the top-level message is at depth 1.
pub const DEPTH_MAX: usize = 32;
/// The largest fixed block a message may declare.
pub const BLOCK_LENGTH_MAX: usize = u16::MAX as usize;

const _: () = assert!(HEADER_LEN == PREFIX_LEN + 8);
const _: () = assert!(MESSAGE_LENGTH_MAX < ABSENT);
const _: () = assert!(DEPTH_MAX >= 2);

/// The 12-byte header every message starts with, top-level or nested.
///
/// ```text
///  0               4       6       8       10      12
///  +---------------+-------+-------+-------+-------+--------------------+---------+
///  | length  (u32) |schema |templ. |version|block  | fixed block        | parts   |
///  |               |id u16 |id u16 |  u16  |len u16| (block_length B)   | ...     |
///  +---------------+-------+-------+-------+-------+--------------------+---------+
///  length = number of bytes after the length field = 8 + block_length + parts
/// ```
///
/// All integers are little-endian and the struct has no alignment requirement, so it can be
/// read in place at any offset with [`zerocopy::TryFromBytes::try_ref_from_prefix`].
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct Header {
    /// Bytes that follow this field, up to the end of the message.
    pub length: U32,
    /// The schema (namespace of templates) the message belongs to.
    pub schema_id: U16,
    /// The message type within the schema.
    pub template_id: U16,
    /// The schema version the message was encoded at (1 or more).
    pub version: U16,
    /// Bytes in the fixed block that follows the header.
    pub block_length: U16,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_LEN);

/// The fixed-block form of an optional fixed-size value: a presence byte, then the value.
///
/// ```text
///  +---------+---------------------+
///  | present | value (size of W)   |   present = 1: value is the value's encoding
///  |   u8    |                     |   present = 0: value bytes are all zero
///  +---------+---------------------+
/// ```
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct OptWire<W> {
    /// 1 when the value is present, 0 when absent.
    pub present: u8,
    /// The value's wire form; all zero when absent.
    pub value: W,
}

/// Wire forms that may be wrapped in an optional.
///
/// Implemented for the wire form of every fixed-size type, where the optional form is
/// [`OptWire`], and for `()`, the (empty) wire form of variable types, whose optional form
/// is `()` again because variable optionals live in the variable section. [`OptWire`] itself
/// does not implement it, which is how optionals of optionals are refused at compile time.
pub trait OptionalWire: Sized {
    /// The wire form of an optional holding this wire form.
    type Optional: FromBytes
        + IntoBytes
        + KnownLayout
        + Immutable
        + Unaligned
        + Copy
        + core::fmt::Debug;
    /// Wraps a value (or its absence) into the optional wire form.
    fn wrap(value: Option<Self>) -> Self::Optional;
    /// The presence byte and the value of an optional wire form (`None` for `()`).
    fn unwrap(optional: &Self::Optional) -> Option<(u8, &Self)>;
}

impl OptionalWire for () {
    type Optional = ();
    fn wrap(_: Option<Self>) {}
    fn unwrap(_: &()) -> Option<(u8, &Self)> {
        None
    }
}

macro_rules! optional_wire {
    ($($w:ty),*) => {$(
        impl OptionalWire for $w {
            type Optional = OptWire<$w>;
            fn wrap(value: Option<Self>) -> OptWire<$w> {
                match value {
                    Some(value) => OptWire { present: 1, value },
                    None => OptWire::new_zeroed(),
                }
            }
            fn unwrap(optional: &OptWire<$w>) -> Option<(u8, &Self)> {
                Some((optional.present, &optional.value))
            }
        }
    )*};
}
optional_wire!(u8, i8, U16, U32, U64, I16, I32, I64, F32, F64);

impl<const N: usize> OptionalWire for [u8; N] {
    type Optional = OptWire<[u8; N]>;
    fn wrap(value: Option<Self>) -> OptWire<[u8; N]> {
        match value {
            Some(value) => OptWire { present: 1, value },
            None => OptWire::new_zeroed(),
        }
    }
    fn unwrap(optional: &OptWire<[u8; N]>) -> Option<(u8, &Self)> {
        Some((optional.present, &optional.value))
    }
}

/// A checked cursor over untrusted bytes. Every read either returns the bytes asked for or
/// [`Error::Truncated`]; nothing indexes the input directly.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether every byte has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(Error::Truncated {
                needed: n as u64,
                had: self.rest.len() as u64,
            }),
        }
    }

    /// The next little-endian `u32` (a length prefix).
    #[inline]
    pub fn prefix(&mut self) -> Result<u32, Error> {
        match U32::read_from_prefix(self.rest) {
            Ok((value, tail)) => {
                self.rest = tail;
                Ok(value.get())
            }
            Err(_) => Err(Error::Truncated {
                needed: PREFIX_LEN as u64,
                had: self.rest.len() as u64,
            }),
        }
    }

    /// Reads the content of a part of length `len` (the prefix already read).
    #[inline]
    pub fn content(&mut self, len: u32) -> Result<&'a [u8], Error> {
        self.take(len as usize)
    }

    /// Reads a nested message (a part whose length prefix is the message's own length field)
    /// and returns its bytes, prefix included; `None` for the absent marker.
    #[inline]
    pub fn message(&mut self) -> Result<Option<&'a [u8]>, Error> {
        let start = self.rest;
        let len = self.prefix()?;
        if len == ABSENT {
            return Ok(None);
        }
        self.content(len)?;
        // The prefix and the content were just read from `start`, so the range is in bounds.
        Ok(start.get(..PREFIX_LEN + len as usize))
    }

    /// Skips parts up to the end of the input, checking only that each is complete. This is
    /// how the trailing parts of a newer payload, unknown to the reader, are passed over.
    pub fn skip_parts(&mut self) -> Result<(), Error> {
        while !self.is_empty() {
            let len = self.prefix()?;
            if len != ABSENT {
                self.content(len)?;
            }
        }
        Ok(())
    }

    /// Counts the parts up to the end of the input, checking only that each is complete.
    pub fn count_parts(mut self) -> Result<u64, Error> {
        let mut count = 0u64;
        while !self.is_empty() {
            let len = self.prefix()?;
            if len != ABSENT {
                self.content(len)?;
            }
            count += 1;
        }
        Ok(count)
    }
}

/// A checked cursor over the caller's output buffer. Writes past the end return
/// [`Error::BufferTooSmall`]; the top-level encoder then reports the full length needed.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    /// A writer at the start of `buf`.
    #[inline]
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Appends `bytes`.
    #[inline]
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let start = self.reserve(bytes.len())?;
        // `reserve` just made `start..start + len` part of the written region.
        self.buf[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Appends a little-endian `u32`.
    #[inline]
    pub fn put_u32(&mut self, value: u32) -> Result<(), Error> {
        self.put(&value.to_le_bytes())
    }

    /// Advances over `n` bytes to be filled later with [`Writer::patch`]; returns their start.
    #[inline]
    pub fn reserve(&mut self, n: usize) -> Result<usize, Error> {
        let start = self.pos;
        match start.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                Ok(start)
            }
            _ => Err(Error::BufferTooSmall {
                needed: start.saturating_add(n),
                had: self.buf.len(),
            }),
        }
    }

    /// Overwrites already written or reserved bytes at `at`.
    ///
    /// # Panics
    ///
    /// If the range was not written or reserved before, which is a bug in the encoder.
    #[inline]
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        assert!(
            at + bytes.len() <= self.pos,
            "patch outside the written region"
        );
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// A fixed block seen through its zerocopy struct: borrowed in place from the payload when
/// the payload's block is at least as long as the reader's, or a zero-extended copy when the
/// payload comes from an older version whose block is shorter. Zero extension is exact: the
/// fields an older version lacks are optionals, and an absent optional is all zero bytes.
#[derive(Clone, Copy, Debug)]
pub enum FixedRef<'a, F> {
    /// The block, read in place.
    Borrowed(&'a F),
    /// A copy of an older, shorter block followed by zeros.
    Extended(F),
}

impl<'a, F> FixedRef<'a, F>
where
    F: FromBytes + IntoBytes + KnownLayout + Immutable + Copy,
{
    /// Views `block` as `F`.
    #[inline]
    pub fn new(block: &'a [u8]) -> Self {
        match F::try_ref_from_prefix(block) {
            Ok((fixed, _)) => FixedRef::Borrowed(fixed),
            Err(_) => {
                let mut fixed = F::new_zeroed();
                let bytes = fixed.as_mut_bytes();
                let n = block.len().min(bytes.len());
                bytes[..n].copy_from_slice(&block[..n]);
                FixedRef::Extended(fixed)
            }
        }
    }
}

impl<F> core::ops::Deref for FixedRef<'_, F> {
    type Target = F;
    #[inline]
    fn deref(&self) -> &F {
        match self {
            FixedRef::Borrowed(fixed) => fixed,
            FixedRef::Extended(fixed) => fixed,
        }
    }
}

/// Splits a top-level payload into exactly one message: the input must be as long as the
/// message's length field says, no shorter ([`Error::Truncated`]) and no longer
/// ([`Error::TrailingBytes`]).
#[inline]
pub fn top_level(bytes: &[u8]) -> Result<&[u8], Error> {
    let mut reader = Reader::new(bytes);
    let length = reader.prefix()? as usize;
    let had = reader.remaining();
    if had < length {
        return Err(Error::Truncated {
            needed: length as u64,
            had: had as u64,
        });
    }
    if had > length {
        return Err(Error::TrailingBytes {
            extra: (had - length) as u64,
        });
    }
    Ok(bytes)
}

/// Reads the header of a message whose bytes (`msg`, length prefix included) are known to be
/// complete, after checking the nesting depth. Returns the header and the bytes after it.
#[inline]
pub fn read_header(msg: &[u8], depth: usize) -> Result<(&Header, &[u8]), Error> {
    if depth > DEPTH_MAX {
        return Err(Error::DepthExceeded { max: DEPTH_MAX });
    }
    let length = msg.len().saturating_sub(PREFIX_LEN);
    if length < MESSAGE_LENGTH_MIN as usize {
        return Err(Error::BadLength {
            what: "message",
            len: length as u64,
        });
    }
    Header::try_ref_from_prefix(msg).map_err(|_| Error::Truncated {
        needed: HEADER_LEN as u64,
        had: msg.len() as u64,
    })
}

/// Checks that a header names the expected schema and template.
#[inline]
pub fn check_ids(header: &Header, schema_id: u16, template_id: u16) -> Result<(), Error> {
    if header.schema_id.get() != schema_id {
        return Err(Error::UnknownSchema {
            schema_id: header.schema_id.get(),
        });
    }
    if header.template_id.get() != template_id {
        return Err(Error::UnknownTemplate {
            schema_id: header.schema_id.get(),
            template_id: header.template_id.get(),
        });
    }
    Ok(())
}

/// A message whose header has been checked: its version, fixed block and variable section.
#[derive(Clone, Copy, Debug)]
pub struct Opened<'a> {
    /// The version the payload claims.
    pub version: u16,
    /// The fixed block (`block_length` bytes, possibly longer or shorter than the reader's).
    pub fixed: &'a [u8],
    /// The variable section.
    pub parts: Reader<'a>,
}

/// Checks the version and block length of a message and splits off its fixed block.
///
/// `known` is the reader's version of the message type and `block_length(v)` its fixed-block
/// length at version `v <= known`. A payload at a version up to `known` must carry exactly
/// the block of its version; a newer payload must carry at least the reader's block.
#[inline]
pub fn open_body<'a>(
    header: &Header,
    rest: &'a [u8],
    known: u16,
    block_length: impl FnOnce(u16) -> u16,
) -> Result<Opened<'a>, Error> {
    let version = header.version.get();
    if version == 0 {
        return Err(Error::InvalidVersion { version });
    }
    let found = header.block_length.get();
    let expected = block_length(version.min(known));
    let fits = if version <= known {
        found == expected
    } else {
        found >= expected
    };
    if !fits {
        return Err(Error::BadBlockLength {
            version,
            found,
            expected,
        });
    }
    let mut reader = Reader::new(rest);
    let fixed = reader.take(found as usize)?;
    Ok(Opened {
        version,
        fixed,
        parts: reader,
    })
}

/// Ends a message after its known parts: a payload at a version the reader knows must end
/// here; the unknown trailing parts of a newer payload are skipped.
#[inline]
pub fn finish(mut parts: Reader<'_>, version: u16, known: u16) -> Result<(), Error> {
    if version > known {
        return parts.skip_parts();
    }
    if !parts.is_empty() {
        return Err(Error::TrailingBytes {
            extra: parts.remaining() as u64,
        });
    }
    Ok(())
}

/// Reserves the header and fixed block of a message about to be encoded at the writer's
/// position; returns where the message starts.
#[inline]
pub fn begin_message(
    writer: &mut Writer<'_>,
    block_length: usize,
    depth: usize,
) -> Result<usize, Error> {
    if depth > DEPTH_MAX {
        return Err(Error::DepthExceeded { max: DEPTH_MAX });
    }
    writer.reserve(HEADER_LEN + block_length)
}

/// Writes the header and fixed block of a message begun with [`begin_message`] once its parts
/// are written.
#[inline]
pub fn end_message(
    writer: &mut Writer<'_>,
    start: usize,
    ids: (u16, u16, u16),
    fixed: &[u8],
) -> Result<(), Error> {
    let (schema_id, template_id, version) = ids;
    let length = writer.position() - start - PREFIX_LEN;
    if length > MESSAGE_LENGTH_MAX as usize {
        return Err(Error::MessageTooLong {
            len: (length + PREFIX_LEN) as u64,
        });
    }
    assert!(fixed.len() <= BLOCK_LENGTH_MAX);
    let header = Header {
        length: U32::new(length as u32),
        schema_id: U16::new(schema_id),
        template_id: U16::new(template_id),
        version: U16::new(version),
        block_length: U16::new(fixed.len() as u16),
    };
    writer.patch(start, header.as_bytes());
    writer.patch(start + HEADER_LEN, fixed);
    Ok(())
}

/// Writes a part holding `content`.
#[inline]
pub fn put_part(writer: &mut Writer<'_>, content: &[u8]) -> Result<(), Error> {
    debug_assert!(content.len() < ABSENT as usize);
    writer.put_u32(content.len() as u32)?;
    writer.put(content)
}

/// Reserves a part's length prefix; [`end_part`] fills it once the content is written.
#[inline]
pub fn begin_part(writer: &mut Writer<'_>) -> Result<usize, Error> {
    writer.reserve(PREFIX_LEN)
}

/// Fills the length prefix reserved by [`begin_part`].
#[inline]
pub fn end_part(writer: &mut Writer<'_>, start: usize) -> Result<(), Error> {
    let len = writer.position() - start - PREFIX_LEN;
    if len > MESSAGE_LENGTH_MAX as usize {
        return Err(Error::MessageTooLong { len: len as u64 });
    }
    writer.patch(start, &(len as u32).to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_requested_and_available_bytes() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.take(2), Ok(&[1u8, 2][..]));
        assert_eq!(reader.take(2), Err(Error::Truncated { needed: 2, had: 1 }));
        assert_eq!(reader.prefix(), Err(Error::Truncated { needed: 4, had: 1 }));
        assert_eq!(reader.remaining(), 1);
    }

    #[test]
    fn absent_marker_is_a_part_without_content() {
        let bytes = [0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0, 9, 9];
        assert_eq!(Reader::new(&bytes).count_parts(), Ok(2));
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.message(), Ok(None));
        assert_eq!(reader.message(), Ok(Some(&bytes[4..])));
        assert!(reader.is_empty());
    }

    #[test]
    fn skip_parts_rejects_an_incomplete_part() {
        let bytes = [3, 0, 0, 0, 9, 9];
        assert_eq!(
            Reader::new(&bytes).skip_parts(),
            Err(Error::Truncated { needed: 3, had: 2 })
        );
        assert_eq!(
            Reader::new(&bytes[..2]).skip_parts(),
            Err(Error::Truncated { needed: 4, had: 2 })
        );
    }

    #[test]
    fn top_level_wants_exactly_one_message() {
        assert_eq!(
            top_level(&[8, 0, 0]),
            Err(Error::Truncated { needed: 4, had: 3 })
        );
        assert_eq!(
            top_level(&[1, 0, 0, 0]),
            Err(Error::Truncated { needed: 1, had: 0 })
        );
        assert_eq!(
            top_level(&[0, 0, 0, 0, 7]),
            Err(Error::TrailingBytes { extra: 1 })
        );
        assert_eq!(top_level(&[0, 0, 0, 0]), Ok(&[0u8, 0, 0, 0][..]));
    }

    #[test]
    fn writer_refuses_to_overflow() {
        let mut buf = [0u8; 6];
        let mut writer = Writer::new(&mut buf);
        writer.put_u32(7).unwrap();
        assert_eq!(
            writer.put(&[1, 2, 3]),
            Err(Error::BufferTooSmall { needed: 7, had: 6 })
        );
        assert_eq!(writer.position(), 4);
    }

    #[test]
    fn fixed_ref_zero_extends_a_short_block() {
        #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
        #[repr(C)]
        struct Block {
            a: U16,
            b: OptWire<U32>,
        }
        let short = [1, 0];
        let fixed = FixedRef::<Block>::new(&short);
        assert!(matches!(fixed, FixedRef::Extended(_)));
        assert_eq!(fixed.a.get(), 1);
        assert_eq!(fixed.b.present, 0);
        let long = [1, 0, 1, 5, 0, 0, 0, 9];
        let fixed = FixedRef::<Block>::new(&long);
        assert!(matches!(fixed, FixedRef::Borrowed(_)));
        assert_eq!(fixed.b.value.get(), 5);
    }
}
