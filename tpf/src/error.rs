//! The one error type of the crate.
//!
//! Every way a payload, an output buffer, a dynamic value or a schema descriptor can be wrong
//! is a variant here. The variant names are normative: `spec/payload/TPF-v1.md` lists them and
//! the invalid golden vectors name the one a decoder must report, so other implementations can
//! be checked against them. The numbers inside a variant (offsets, counts) are informative.

use alloc::borrow::Cow;
use alloc::string::String;

/// The name of a field as it appears in an error: borrowed for derived types, owned for
/// schemas loaded at run time.
pub type FieldName = Cow<'static, str>;

/// Everything that can go wrong while encoding, decoding or validating TPF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before an item was complete: the item needed `needed` bytes from the
    /// point where it started and only `had` were left in the enclosing message or part.
    #[error("truncated: needed {needed} bytes, had {had}")]
    Truncated {
        /// Bytes the item needed.
        needed: u64,
        /// Bytes that were left.
        had: u64,
    },
    /// The caller's output buffer cannot hold the encoding.
    #[error("buffer too small: needed {needed} bytes, had {had}")]
    BufferTooSmall {
        /// Length of the whole encoding.
        needed: usize,
        /// Length of the buffer.
        had: usize,
    },
    /// A length field disagrees with the structure it describes: a message length below the
    /// 8 bytes its header needs, or a list of fixed-size items whose byte length is not a
    /// multiple of the item size.
    #[error("bad length {len} for {what}")]
    BadLength {
        /// What the length belongs to.
        what: &'static str,
        /// The length found.
        len: u64,
    },
    /// The header's block length is not the fixed-block length of the payload's version
    /// (or, for a payload newer than the reader, is shorter than the reader's fixed block).
    #[error("bad block length {found} for version {version}, expected {expected}")]
    BadBlockLength {
        /// Version the payload claims.
        version: u16,
        /// Block length found in the header.
        found: u16,
        /// Block length required (exact, or the minimum for a newer payload).
        expected: u16,
    },
    /// The header names a schema id the reader does not expect.
    #[error("unknown schema {schema_id}")]
    UnknownSchema {
        /// Schema id found in the header.
        schema_id: u16,
    },
    /// The header names a template id the reader does not expect within a known schema.
    #[error("unknown template {template_id} in schema {schema_id}")]
    UnknownTemplate {
        /// Schema id found in the header.
        schema_id: u16,
        /// Template id found in the header.
        template_id: u16,
    },
    /// The header claims version 0, which is reserved.
    #[error("invalid version {version}")]
    InvalidVersion {
        /// Version found in the header.
        version: u16,
    },
    /// A string or byte string is longer than its declared maximum (in bytes), or a list has
    /// more items than its declared maximum.
    #[error("field `{field}` too long: {len} > max {max}")]
    FieldTooLong {
        /// Field involved.
        field: FieldName,
        /// Bytes (strings, bytes) or items (lists) found.
        len: u64,
        /// Declared maximum.
        max: u32,
    },
    /// A string field is not well-formed UTF-8.
    #[error("field `{field}` is not valid utf-8")]
    InvalidUtf8 {
        /// Field involved.
        field: FieldName,
    },
    /// An enum field holds a value that is not one of its declared variants.
    #[error("field `{field}` has unknown enum value {value}")]
    InvalidEnum {
        /// Field involved.
        field: FieldName,
        /// Value found.
        value: u64,
    },
    /// A bool field holds a byte other than 0 or 1.
    #[error("field `{field}` has invalid bool byte {value}")]
    InvalidBool {
        /// Field involved.
        field: FieldName,
        /// Byte found.
        value: u8,
    },
    /// An optional's presence byte is neither 0 nor 1, or the absent marker `0xFFFF_FFFF`
    /// stands where a required variable part must be.
    #[error("field `{field}` has invalid presence marker {value:#x}")]
    InvalidPresence {
        /// Field involved.
        field: FieldName,
        /// Presence byte or part length found.
        value: u32,
    },
    /// The bytes are well-formed but not the one canonical encoding of their value
    /// (an absent fixed-size optional whose value bytes are not all zero).
    #[error("field `{field}` is not canonical: {what}")]
    NonCanonical {
        /// Field involved.
        field: FieldName,
        /// What is wrong.
        what: &'static str,
    },
    /// Bytes follow the last part of a message the reader fully knows, or follow the
    /// top-level message.
    #[error("{extra} trailing bytes")]
    TrailingBytes {
        /// Number of unexpected bytes.
        extra: u64,
    },
    /// Messages are nested deeper than the limit.
    #[error("nesting depth exceeds {max}")]
    DepthExceeded {
        /// The nesting limit ([`crate::DEPTH_MAX`]).
        max: usize,
    },
    /// The encoding of a message would not fit the 32-bit length field.
    #[error("message of {len} bytes is too long to encode")]
    MessageTooLong {
        /// Length of the message in bytes.
        len: u64,
    },
    /// A dynamic value sets a field that does not exist at the version it is encoded at.
    #[error("field `{field}` is not in version {version}")]
    FieldNotInVersion {
        /// Field involved.
        field: FieldName,
        /// Version being encoded.
        version: u16,
    },
    /// A dynamic value does not have the shape its schema type requires.
    #[error("field `{field}` expects a value of type {expected}")]
    ValueMismatch {
        /// Field involved.
        field: FieldName,
        /// The type the schema declares.
        expected: &'static str,
    },
    /// A schema descriptor breaks one of the rules of TPF v1 (section "Schemas" of the spec).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
}

impl Error {
    /// The variant's name, as the spec and the golden vectors spell it (`"Truncated"`,
    /// `"InvalidUtf8"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "Truncated",
            Error::BufferTooSmall { .. } => "BufferTooSmall",
            Error::BadLength { .. } => "BadLength",
            Error::BadBlockLength { .. } => "BadBlockLength",
            Error::UnknownSchema { .. } => "UnknownSchema",
            Error::UnknownTemplate { .. } => "UnknownTemplate",
            Error::InvalidVersion { .. } => "InvalidVersion",
            Error::FieldTooLong { .. } => "FieldTooLong",
            Error::InvalidUtf8 { .. } => "InvalidUtf8",
            Error::InvalidEnum { .. } => "InvalidEnum",
            Error::InvalidBool { .. } => "InvalidBool",
            Error::InvalidPresence { .. } => "InvalidPresence",
            Error::NonCanonical { .. } => "NonCanonical",
            Error::TrailingBytes { .. } => "TrailingBytes",
            Error::DepthExceeded { .. } => "DepthExceeded",
            Error::MessageTooLong { .. } => "MessageTooLong",
            Error::FieldNotInVersion { .. } => "FieldNotInVersion",
            Error::ValueMismatch { .. } => "ValueMismatch",
            Error::InvalidSchema(_) => "InvalidSchema",
        }
    }

    /// The field the error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::FieldTooLong { field, .. }
            | Error::InvalidUtf8 { field }
            | Error::InvalidEnum { field, .. }
            | Error::InvalidBool { field, .. }
            | Error::InvalidPresence { field, .. }
            | Error::NonCanonical { field, .. }
            | Error::FieldNotInVersion { field, .. }
            | Error::ValueMismatch { field, .. } => Some(field),
            _ => None,
        }
    }
}
