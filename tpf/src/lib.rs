//! TPF v1, the TamTam Payload Format: a canonical, schema-driven, little-endian binary
//! encoding for message payloads, with zero-copy views of validated bytes.
//!
//! The normative specification is `spec/payload/TPF-v1.md`; the golden vectors are in
//! `spec/vectors/tpf/`. This crate has no I/O and no engine types, and is `no_std` + `alloc`
//! (the default `std` feature only adds `std::error::Error` support to [`Error`]).
//!
//! # Layout
//!
//! Every message, top-level or nested, has the same shape. All integers are little-endian;
//! nothing is aligned or padded.
//!
//! ```text
//!  byte 0         4        6          8         10           12
//!  +--------------+--------+----------+---------+------------+------------------+----------+
//!  | length u32   | schema | template | version | block      | fixed block      | parts    |
//!  |              | id u16 | id u16   | u16     | length u16 | (block length B) | ...      |
//!  +--------------+--------+----------+---------+------------+------------------+----------+
//!  \_ length = bytes after this field = 8 + B + bytes of all parts
//!
//!  fixed block: the fixed-size fields of the payload's version, packed in declaration order
//!    u8/i8/bool 1 B | u16/i16 2 B | u32/i32/f32 4 B | u64/i64/f64 8 B | enum: its repr
//!    array N: N B   | optional T: presence u8 (0/1) + T's bytes (all zero when absent)
//!
//!  parts: one per variable field, in declaration order
//!  +------------+-----------------+        +-------------+
//!  | length u32 | content         |   or   | FF FF FF FF |  (absent optional, no content)
//!  +------------+-----------------+        +-------------+
//!    string: UTF-8 bytes | bytes: raw bytes | list: the items back to back
//!    (fixed-size items packed, variable items as parts) | message: the nested message,
//!    whose length field is the part's length prefix
//! ```
//!
//! # Using it
//!
//! Derive [`Tpf`] on a struct and [`TpfEnum`] on its enums, then use [`TpfMessage`]:
//! [`TpfMessage::encode`] into a caller buffer (no allocation), [`TpfMessage::encoded_len`],
//! [`TpfMessage::decode`] into the owned struct, and [`TpfMessage::view`] for a validated
//! zero-copy view whose fixed block is a zerocopy struct and whose strings and byte strings
//! are borrowed from the payload. See [`TpfMessage`] for an example.
//!
//! The attributes:
//!
//! - on the struct: `#[tpf(schema = S, template = T, version = V)]` (version defaults to 1;
//!   also `name = "..."` to rename the message in the schema, `crate = "..."` to name this
//!   crate's path when it is re-exported);
//! - on fields: `#[tpf(since = N)]` for a field added in version N (it must be an `Option`),
//!   `#[tpf(max = M)]` for the maximum length of a string or byte string or the maximum
//!   item count of a list, and `#[tpf(item_max = M)]` for the maximum of a list's items.
//!
//! Besides the [`TpfMessage`] implementation, the derive generates `NameFixed` (the fixed
//! block as a zerocopy struct) and `NameView<'a>` (the view, with one accessor per field,
//! `fixed_block()`, `payload_version()` and `to_owned_message()`).
//!
//! # Canonical encoding and evolution
//!
//! Each value has one encoding at a given version, and decoders refuse every other byte
//! string with a named [`Error`]: bools other than 0/1, unknown enum values, presence bytes
//! other than 0/1, absent optionals with non-zero bytes, lengths over their declared maximum
//! or disagreeing with the data, ill-formed UTF-8, trailing bytes, nesting deeper than
//! [`DEPTH_MAX`]. Floats are carried as exact bit patterns (every NaN payload, `-0.0`).
//!
//! Message types evolve by appending optional fields (`since`). A payload from an older
//! version decodes the newer fields as absent; a payload from a newer version has its unknown
//! trailing fixed bytes and parts skipped (after checking that each part is complete) and
//! re-encodes at the reader's version. Canonicality is per version: a payload at the reader's
//! version re-encodes byte for byte. Spec sections 7 and 8 give the exact rules.
//!
//! Mistakes in a declaration are compile errors. A field added after version 1 must be
//! optional:
//!
//! ```compile_fail
//! #[derive(tamtam_tpf::Tpf)]
//! #[tpf(schema = 1, template = 1, version = 2)]
//! struct M { a: u8, #[tpf(since = 2)] b: u8 }
//! ```
//!
//! Every variable-length level declares its maximum (here the string items lack one):
//!
//! ```compile_fail
//! #[derive(tamtam_tpf::Tpf)]
//! #[tpf(schema = 1, template = 1)]
//! struct M { #[tpf(max = 4)] names: Vec<String> }
//! ```
//!
//! Optionals do not nest:
//!
//! ```compile_fail
//! #[derive(tamtam_tpf::Tpf)]
//! #[tpf(schema = 1, template = 1)]
//! struct M { a: Option<Option<u8>> }
//! ```
//!
//! And fields are only ever appended:
//!
//! ```compile_fail
//! #[derive(tamtam_tpf::Tpf)]
//! #[tpf(schema = 1, template = 1, version = 2)]
//! struct M { #[tpf(since = 2)] a: Option<u8>, b: u8 }
//! ```
//!
//! The same declarations with the mistakes fixed compile:
//!
//! ```
//! #[derive(tamtam_tpf::Tpf)]
//! #[tpf(schema = 1, template = 1, version = 2)]
//! struct M {
//!     b: u8,
//!     #[tpf(max = 4, item_max = 16)]
//!     names: Vec<String>,
//!     #[tpf(since = 2)]
//!     a: Option<u8>,
//! }
//! ```
//!
//! For schemas known only at run time, [`dynamic::Codec`] encodes and decodes
//! [`dynamic::Value`] trees from a [`schema::Schema`]; every derived type describes itself as
//! such a schema ([`TpfMessage::schema`]), and both codecs produce identical bytes.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

// The derive macros name this crate `::tamtam_tpf`; make that path work inside it too.
extern crate self as tamtam_tpf;

pub mod dynamic;
mod error;
pub mod field;
pub mod message;
pub mod schema;
#[cfg(all(feature = "derive", feature = "std", any(test, feature = "testing")))]
pub mod testing;
pub mod wire;

#[cfg(test)]
mod tests;

pub use error::{Error, FieldName};
pub use field::{Field, ListView, TpfEnum};
pub use message::TpfMessage;
pub use wire::{DEPTH_MAX, FixedRef, HEADER_LEN, Header};
/// The zerocopy crate this crate's wire types come from, re-exported for generated code and
/// for applications that name the little-endian field types.
pub use zerocopy;

/// Names the code generated by the derive macros uses; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
}

/// `#[derive(Tpf)]`: implements [`TpfMessage`] for a struct with named fields.
#[cfg(feature = "derive")]
pub use tamtam_tpf_derive::Tpf;
/// `#[derive(TpfEnum)]`: implements [`TpfEnum`] and [`Field`] for a fieldless
/// `#[repr(u8|u16|u32|u64)]` enum.
#[cfg(feature = "derive")]
pub use tamtam_tpf_derive::TpfEnum;
