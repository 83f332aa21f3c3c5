//! How each Rust type maps onto TPF: the [`Field`] trait and its implementations for the
//! scalar types, fixed byte arrays, `String`, `Vec<T>` and `Option<T>`; `#[derive(Tpf)]` and
//! `#[derive(TpfEnum)]` implement it for messages and enums.
//!
//! A type is either *fixed-size* ([`Field::FIXED_SIZE`] > 0: it lives in the fixed block of a
//! message and is packed directly in lists) or *variable* (`FIXED_SIZE == 0`: it is a part,
//! a `u32` length then content, in the variable section or in a list). The generated code
//! calls the same methods for every field and never needs to know which kind a type is; the
//! constants make the untaken branches disappear at compile time.
//!
//! | Rust type        | TPF type              | kind     | borrowed view (`View<'a>`) |
//! |------------------|-----------------------|----------|----------------------------|
//! | `u8` … `u64`, `i8` … `i64` | same        | fixed    | the value                  |
//! | `f32`, `f64`     | same (exact bits)     | fixed    | the value                  |
//! | `bool`           | bool                  | fixed    | the value                  |
//! | `[u8; N]`        | array N               | fixed    | the value                  |
//! | enum (derived)   | enum                  | fixed    | the value                  |
//! | `Option<T>`      | optional T            | T's kind | `Option<T::View>`          |
//! | `String`         | string (max)          | variable | `&'a str`                  |
//! | `Vec<u8>`        | bytes (max)           | variable | [`ListView`] (derefs to `[u8]`) |
//! | `Vec<T>`         | list T (max)          | variable | [`ListView<T>`]            |
//! | message (derived)| message               | variable | the message's view type    |

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use zerocopy::byteorder::little_endian::{F32, F64, I16, I32, I64, U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::dynamic::Value;
use crate::error::{Error, FieldName};
use crate::schema::{EnumDef, Repr, Schema, Type, Variant};
use crate::wire::{self, ABSENT, OptionalWire, PREFIX_LEN, Reader, Writer};

/// Where a value is being encoded or decoded: the field it belongs to (for errors), the
/// declared maxima that apply from this level down, and the message nesting depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// The field's name.
    pub field: &'static str,
    /// Declared maxima, outermost variable level first (`#[tpf(max = .., item_max = ..)]`).
    pub maxima: &'static [u32],
    /// Depth of the message the field belongs to (the top-level message is at depth 1).
    pub depth: usize,
}

impl Ctx {
    /// The maximum of the current level. The derive checks at compile time that a field
    /// declares exactly [`Field::MAXIMA`] maxima, so a missing one is a bug in a hand-written
    /// [`Field`] implementation; it then reads as 0, which refuses every non-empty value.
    pub fn max(&self) -> u32 {
        debug_assert!(
            !self.maxima.is_empty(),
            "field `{}` lacks a maximum",
            self.field
        );
        self.maxima.first().copied().unwrap_or(0)
    }

    /// The context of the items of a list at this level.
    pub fn items(&self) -> Ctx {
        Ctx {
            maxima: self.maxima.get(1..).unwrap_or(&[]),
            ..*self
        }
    }

    /// The field name as stored in an error.
    pub fn name(&self) -> FieldName {
        FieldName::Borrowed(self.field)
    }

    fn too_long(&self, len: usize) -> Error {
        Error::FieldTooLong {
            field: self.name(),
            len: len as u64,
            max: self.max(),
        }
    }
}

/// A Rust type that has a TPF encoding. See the [module documentation](self) for the
/// mapping. Most methods are plumbing for the code `#[derive(Tpf)]` generates; applications
/// use [`crate::TpfMessage`].
///
/// Fixed-size types implement the `*_wire` methods and leave the `*_part` methods at their
/// defaults; variable types do the opposite. The defaults of the other kind are never called,
/// because every caller branches on [`Field::FIXED_SIZE`] first.
pub trait Field: Sized {
    /// Bytes in the fixed encoding (1 or more), or 0 for a variable type.
    const FIXED_SIZE: usize;
    /// How many declared maxima the type consumes: 1 for a string or byte string, 1 plus the
    /// item's for a list, the inner type's for an optional, 0 otherwise.
    const MAXIMA: usize;
    /// Whether the type is an optional (only optional fields may be added after version 1).
    const OPTIONAL: bool;

    /// The type's form in a zerocopy fixed-block struct: little-endian integer types,
    /// `u8` for bools, `[u8; N]`, [`wire::OptWire`] for optionals, `()` for variable types.
    type Wire: FromBytes + IntoBytes + KnownLayout + Immutable + Unaligned + Copy + fmt::Debug;
    /// How a validated payload lends the value: the value itself for fixed-size types,
    /// borrowed slices and views for variable ones.
    type View<'a>: Copy + fmt::Debug;
    /// What a message view stores for the field: `()` for fixed-size types (they are read
    /// from the fixed block), the view for variable ones.
    type Slot<'a>: Copy + fmt::Debug;

    /// The schema type, registering any enum or message it refers to.
    fn field_type(maxima: &[u32], schema: &mut Schema) -> Type;

    /// The schema type of a list of `Self` (`bytes` for `u8`, `list` otherwise).
    fn list_type(maxima: &[u32], schema: &mut Schema) -> Type {
        let max = maxima.first().copied().unwrap_or(0);
        let item = Self::field_type(maxima.get(1..).unwrap_or(&[]), schema);
        Type::List {
            item: Box::new(item),
            max,
        }
    }

    /// The value as a dynamic [`Value`].
    fn to_value(&self) -> Value;

    /// A list of `Self` as a dynamic [`Value`] (`Bytes` for `u8`, `List` otherwise).
    fn list_to_value(items: &[Self]) -> Value {
        Value::List(items.iter().map(Field::to_value).collect())
    }

    /// Fixed-size types: the wire form.
    fn to_wire(&self) -> Self::Wire {
        Self::Wire::new_zeroed()
    }

    /// Fixed-size types: checks that a wire form is canonical (bool 0/1, known enum value,
    /// presence byte 0/1 with zero bytes when absent).
    fn check_wire(wire: &Self::Wire, ctx: &Ctx) -> Result<(), Error> {
        let _ = (wire, ctx);
        Ok(())
    }

    /// Fixed-size types: the value of a wire form that passed [`Field::check_wire`].
    ///
    /// # Panics
    ///
    /// If the wire form was not checked, or if called for a variable type.
    fn from_wire(wire: &Self::Wire) -> Self {
        let _ = wire;
        unreachable!("from_wire called on a variable type")
    }

    /// Fixed-size types: the view of a wire form that passed [`Field::check_wire`].
    ///
    /// # Panics
    ///
    /// As [`Field::from_wire`].
    fn wire_view<'a>(wire: &Self::Wire) -> Self::View<'a> {
        let _ = wire;
        unreachable!("wire_view called on a variable type")
    }

    /// Variable types: bytes of the part, length prefix included.
    fn part_len(&self) -> usize {
        0
    }

    /// Variable types: writes the part (length prefix, then content).
    fn encode_part(&self, writer: &mut Writer<'_>, ctx: &Ctx) -> Result<(), Error> {
        let _ = (writer, ctx);
        unreachable!("encode_part called on a fixed-size type")
    }

    /// Variable types: reads and validates a part into an owned value.
    fn decode_part(reader: &mut Reader<'_>, ctx: &Ctx) -> Result<Self, Error> {
        let _ = (reader, ctx);
        unreachable!("decode_part called on a fixed-size type")
    }

    /// Variable types: reads and validates a part into a borrowed view.
    fn view_part<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<Self::View<'a>, Error> {
        let _ = (reader, ctx);
        unreachable!("view_part called on a fixed-size type")
    }

    /// The value of a field absent because the payload predates it: `None` for optionals.
    /// Other types return `None` here and are never absent, because only optional fields may
    /// be added after version 1.
    fn absent() -> Option<Self> {
        None
    }

    /// The view of a field absent because the payload predates it (see [`Field::absent`]).
    fn absent_view<'a>() -> Option<Self::View<'a>> {
        None
    }

    /// The slot a message view keeps for this field: `()` for fixed-size types, the view of
    /// the part for variable ones (read only when `present`, i.e. when the payload's version
    /// has the field).
    fn view_slot<'a>(
        reader: &mut Reader<'a>,
        present: bool,
        ctx: &Ctx,
    ) -> Result<Self::Slot<'a>, Error>;

    /// The field's view, from the fixed block (fixed-size types) or the slot (variable ones).
    fn view_field<'a>(wire: &Self::Wire, slot: Self::Slot<'a>) -> Self::View<'a>;

    /// An owned value from a view.
    fn from_view(view: Self::View<'_>) -> Self;

    /// Encodes the value as a message field: fixed-size types into the fixed block, variable
    /// ones as the next part.
    #[inline]
    fn encode_field(
        &self,
        wire: &mut Self::Wire,
        writer: &mut Writer<'_>,
        ctx: &Ctx,
    ) -> Result<(), Error> {
        if Self::FIXED_SIZE != 0 {
            *wire = self.to_wire();
            Ok(())
        } else {
            self.encode_part(writer, ctx)
        }
    }

    /// Bytes the field adds to the variable section.
    #[inline]
    fn field_len(&self) -> usize {
        if Self::FIXED_SIZE != 0 {
            0
        } else {
            self.part_len()
        }
    }

    /// Decodes a message field whose fixed-block wire form was already checked.
    #[inline]
    fn decode_field(
        wire: &Self::Wire,
        reader: &mut Reader<'_>,
        present: bool,
        ctx: &Ctx,
    ) -> Result<Self, Error> {
        if Self::FIXED_SIZE != 0 {
            Ok(Self::from_wire(wire))
        } else if present {
            Self::decode_part(reader, ctx)
        } else {
            Ok(Self::absent()
                .expect("fields added after version 1 are optional (checked at compile time)"))
        }
    }

    /// Bytes the value takes as a list item.
    #[inline]
    fn item_len(&self) -> usize {
        if Self::FIXED_SIZE != 0 {
            Self::FIXED_SIZE
        } else {
            self.part_len()
        }
    }

    /// Writes the items of a list, back to back.
    fn encode_items(items: &[Self], writer: &mut Writer<'_>, ctx: &Ctx) -> Result<(), Error> {
        for item in items {
            if Self::FIXED_SIZE != 0 {
                writer.put(item.to_wire().as_bytes())?;
            } else {
                item.encode_part(writer, ctx)?;
            }
        }
        Ok(())
    }

    /// Reads the items of a list of fixed-size items; `content` is a whole number of items.
    fn decode_fixed_items(content: &[u8], items: &mut Vec<Self>, ctx: &Ctx) -> Result<(), Error> {
        for chunk in content.chunks_exact(Self::FIXED_SIZE) {
            let wire = Self::Wire::ref_from_bytes(chunk).map_err(|_| Error::BadLength {
                what: "list item",
                len: chunk.len() as u64,
            })?;
            Self::check_wire(wire, ctx)?;
            items.push(Self::from_wire(wire));
        }
        Ok(())
    }

    /// Reads the next list item into a view.
    fn view_item<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<Self::View<'a>, Error> {
        if Self::FIXED_SIZE != 0 {
            let bytes = reader.take(Self::FIXED_SIZE)?;
            let wire = Self::Wire::ref_from_bytes(bytes).map_err(|_| Error::BadLength {
                what: "list item",
                len: bytes.len() as u64,
            })?;
            Self::check_wire(wire, ctx)?;
            Ok(Self::wire_view(wire))
        } else {
            Self::view_part(reader, ctx)
        }
    }
}

/// An enum declared with `#[derive(TpfEnum)]`: a fieldless `#[repr(u8|u16|u32|u64)]` enum
/// whose variants are the only values accepted on the wire.
pub trait TpfEnum: Copy + 'static {
    /// Name in the schema.
    const NAME: &'static str;
    /// Integer width on the wire.
    const REPR: Repr;
    /// Variant names and values, in declaration order.
    const VARIANTS: &'static [(&'static str, u64)];
    /// The variant's value.
    fn to_repr(self) -> u64;
    /// The variant with this value, if any.
    fn from_repr(value: u64) -> Option<Self>;

    /// The schema definition.
    fn enum_def() -> EnumDef {
        EnumDef {
            name: Self::NAME.into(),
            repr: Self::REPR,
            variants: Self::VARIANTS
                .iter()
                .map(|(name, value)| Variant {
                    name: (*name).into(),
                    value: *value,
                })
                .collect(),
        }
    }
}

/// Helpers the code generated by `#[derive(TpfEnum)]` calls.
pub mod enums {
    use super::*;

    /// Registers the enum and returns its type.
    pub fn field_type<E: TpfEnum>(schema: &mut Schema) -> Type {
        schema.register_enum(E::NAME, E::enum_def);
        Type::Enum(E::NAME.into())
    }

    /// Checks a decoded repr value.
    pub fn check<E: TpfEnum>(value: u64, ctx: &Ctx) -> Result<(), Error> {
        match E::from_repr(value) {
            Some(_) => Ok(()),
            None => Err(Error::InvalidEnum {
                field: ctx.name(),
                value,
            }),
        }
    }

    /// The variant of a checked repr value.
    ///
    /// # Panics
    ///
    /// If the value was not checked with [`check`].
    pub fn from_checked<E: TpfEnum>(value: u64) -> E {
        E::from_repr(value).expect("enum value checked during validation")
    }
}

macro_rules! fixed_common {
    () => {
        type View<'a> = Self;
        type Slot<'a> = ();

        fn wire_view<'a>(wire: &Self::Wire) -> Self::View<'a> {
            Self::from_wire(wire)
        }
        fn view_slot<'a>(_: &mut Reader<'a>, _: bool, _: &Ctx) -> Result<Self::Slot<'a>, Error> {
            Ok(())
        }
        fn view_field<'a>(wire: &Self::Wire, _: Self::Slot<'a>) -> Self::View<'a> {
            Self::from_wire(wire)
        }
        fn from_view(view: Self) -> Self {
            view
        }
    };
}

macro_rules! impl_number {
    ($($t:ty => $wire:ty, $ty:ident, $value:ident, $to:expr, $from:expr;)*) => {$(
        impl Field for $t {
            const FIXED_SIZE: usize = core::mem::size_of::<$t>();
            const MAXIMA: usize = 0;
            const OPTIONAL: bool = false;
            type Wire = $wire;
            fixed_common!();

            fn field_type(_: &[u32], _: &mut Schema) -> Type {
                Type::$ty
            }
            fn to_value(&self) -> Value {
                Value::$value(*self)
            }
            #[inline]
            fn to_wire(&self) -> $wire {
                $to(*self)
            }
            #[inline]
            fn from_wire(wire: &$wire) -> Self {
                $from(wire)
            }
        }
    )*};
}

impl_number! {
    u16 => U16, U16, U16, U16::new, |w: &U16| w.get();
    u32 => U32, U32, U32, U32::new, |w: &U32| w.get();
    u64 => U64, U64, U64, U64::new, |w: &U64| w.get();
    i8 => i8, I8, I8, |v| v, |w: &i8| *w;
    i16 => I16, I16, I16, I16::new, |w: &I16| w.get();
    i32 => I32, I32, I32, I32::new, |w: &I32| w.get();
    i64 => I64, I64, I64, I64::new, |w: &I64| w.get();
    f32 => F32, F32, F32, F32::new, |w: &F32| w.get();
    f64 => F64, F64, F64, F64::new, |w: &F64| w.get();
}

impl Field for u8 {
    const FIXED_SIZE: usize = 1;
    const MAXIMA: usize = 0;
    const OPTIONAL: bool = false;
    type Wire = u8;
    fixed_common!();

    fn field_type(_: &[u32], _: &mut Schema) -> Type {
        Type::U8
    }
    fn list_type(maxima: &[u32], _: &mut Schema) -> Type {
        Type::Bytes {
            max: maxima.first().copied().unwrap_or(0),
        }
    }
    fn to_value(&self) -> Value {
        Value::U8(*self)
    }
    fn list_to_value(items: &[u8]) -> Value {
        Value::Bytes(items.to_vec())
    }
    #[inline]
    fn to_wire(&self) -> u8 {
        *self
    }
    #[inline]
    fn from_wire(wire: &u8) -> u8 {
        *wire
    }
    fn encode_items(items: &[u8], writer: &mut Writer<'_>, _: &Ctx) -> Result<(), Error> {
        writer.put(items)
    }
    fn decode_fixed_items(content: &[u8], items: &mut Vec<u8>, _: &Ctx) -> Result<(), Error> {
        items.extend_from_slice(content);
        Ok(())
    }
}

impl Field for bool {
    const FIXED_SIZE: usize = 1;
    const MAXIMA: usize = 0;
    const OPTIONAL: bool = false;
    type Wire = u8;
    fixed_common!();

    fn field_type(_: &[u32], _: &mut Schema) -> Type {
        Type::Bool
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    #[inline]
    fn to_wire(&self) -> u8 {
        u8::from(*self)
    }
    #[inline]
    fn check_wire(wire: &u8, ctx: &Ctx) -> Result<(), Error> {
        match *wire {
            0 | 1 => Ok(()),
            value => Err(Error::InvalidBool {
                field: ctx.name(),
                value,
            }),
        }
    }
    #[inline]
    fn from_wire(wire: &u8) -> bool {
        *wire != 0
    }
}

impl<const N: usize> Field for [u8; N] {
    const FIXED_SIZE: usize = {
        assert!(N > 0, "TPF arrays hold at least one byte");
        assert!(
            N <= u16::MAX as usize,
            "TPF arrays hold at most 65535 bytes"
        );
        N
    };
    const MAXIMA: usize = 0;
    const OPTIONAL: bool = false;
    type Wire = [u8; N];
    fixed_common!();

    fn field_type(_: &[u32], _: &mut Schema) -> Type {
        Type::Array(Self::FIXED_SIZE as u16)
    }
    fn to_value(&self) -> Value {
        Value::Array(self.to_vec())
    }
    #[inline]
    fn to_wire(&self) -> [u8; N] {
        *self
    }
    #[inline]
    fn from_wire(wire: &[u8; N]) -> [u8; N] {
        *wire
    }
}

/// Reads a required part (not the absent marker) and returns its content.
#[inline]
fn required_content<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<&'a [u8], Error> {
    let len = reader.prefix()?;
    if len == ABSENT {
        return Err(Error::InvalidPresence {
            field: ctx.name(),
            value: ABSENT,
        });
    }
    reader.content(len)
}

/// Reads a required string or byte string part: the whole part first, then its maximum.
#[inline]
fn bounded_content<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<&'a [u8], Error> {
    let content = required_content(reader, ctx)?;
    if content.len() > ctx.max() as usize {
        return Err(ctx.too_long(content.len()));
    }
    Ok(content)
}

#[inline]
fn utf8<'a>(bytes: &'a [u8], ctx: &Ctx) -> Result<&'a str, Error> {
    core::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 { field: ctx.name() })
}

macro_rules! variable_common {
    () => {
        type Wire = ();
        type Slot<'a> = Self::View<'a>;

        fn view_slot<'a>(
            reader: &mut Reader<'a>,
            present: bool,
            ctx: &Ctx,
        ) -> Result<Self::View<'a>, Error> {
            if present {
                Self::view_part(reader, ctx)
            } else {
                Ok(Self::absent_view()
                    .expect("fields added after version 1 are optional (checked at compile time)"))
            }
        }
        fn view_field<'a>(_: &(), slot: Self::View<'a>) -> Self::View<'a> {
            slot
        }
    };
}

impl Field for String {
    const FIXED_SIZE: usize = 0;
    const MAXIMA: usize = 1;
    const OPTIONAL: bool = false;
    type View<'a> = &'a str;
    variable_common!();

    fn field_type(maxima: &[u32], _: &mut Schema) -> Type {
        Type::String {
            max: maxima.first().copied().unwrap_or(0),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    #[inline]
    fn part_len(&self) -> usize {
        PREFIX_LEN + self.len()
    }
    #[inline]
    fn encode_part(&self, writer: &mut Writer<'_>, ctx: &Ctx) -> Result<(), Error> {
        if self.len() > ctx.max() as usize {
            return Err(ctx.too_long(self.len()));
        }
        wire::put_part(writer, self.as_bytes())
    }
    #[inline]
    fn decode_part(reader: &mut Reader<'_>, ctx: &Ctx) -> Result<String, Error> {
        Self::view_part(reader, ctx).map(String::from)
    }
    #[inline]
    fn view_part<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<&'a str, Error> {
        utf8(bounded_content(reader, ctx)?, ctx)
    }
    fn from_view(view: &str) -> String {
        String::from(view)
    }
}

/// The items of a validated list, read in place. Iterating yields each item's view;
/// [`ListView::wire`] lends fixed-size items as a slice of their zerocopy wire form, and a
/// list of `u8` (a TPF byte string) derefs to `[u8]`.
pub struct ListView<'a, T> {
    content: &'a [u8],
    len: usize,
    ctx: Ctx,
    item: PhantomData<fn() -> T>,
}

impl<T> Clone for ListView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ListView<'_, T> {}

impl<T: Field> fmt::Debug for ListView<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Field> ListView<'a, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded items (the part's content).
    pub fn content(&self) -> &'a [u8] {
        self.content
    }

    /// The items' views, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter {
            reader: Reader::new(self.content),
            left: self.len,
            ctx: self.ctx,
            item: PhantomData,
        }
    }

    /// Fixed-size items as a slice of their wire form, read in place (`None` for variable
    /// items). Bools, enums and optionals in the slice were validated like every item.
    pub fn wire(&self) -> Option<&'a [T::Wire]> {
        if T::FIXED_SIZE == 0 {
            return None;
        }
        <[T::Wire]>::ref_from_bytes(self.content).ok()
    }
}

impl<'a> ListView<'a, u8> {
    /// The bytes, borrowed from the payload.
    pub fn as_slice(&self) -> &'a [u8] {
        self.content
    }
}

impl core::ops::Deref for ListView<'_, u8> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.content
    }
}

impl<'a, T: Field> IntoIterator for ListView<'a, T> {
    type Item = T::View<'a>;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// Iterator over the items of a [`ListView`].
pub struct ListIter<'a, T> {
    reader: Reader<'a>,
    left: usize,
    ctx: Ctx,
    item: PhantomData<fn() -> T>,
}

impl<'a, T: Field> Iterator for ListIter<'a, T> {
    type Item = T::View<'a>;

    fn next(&mut self) -> Option<T::View<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The list was validated item by item when its view was made, so reading it again
        // cannot fail.
        Some(
            T::view_item(&mut self.reader, &self.ctx)
                .expect("list items validated with the payload"),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T: Field> ExactSizeIterator for ListIter<'_, T> {}

/// Splits a list part's content into its item count, checking the structure: a whole number
/// of fixed-size items, or a sequence of complete parts; then the declared maximum.
fn list_len<T: Field>(content: &[u8], ctx: &Ctx) -> Result<usize, Error> {
    let len = if T::FIXED_SIZE != 0 {
        if content.len() % T::FIXED_SIZE != 0 {
            return Err(Error::BadLength {
                what: "list of fixed-size items",
                len: content.len() as u64,
            });
        }
        (content.len() / T::FIXED_SIZE) as u64
    } else {
        Reader::new(content).count_parts()?
    };
    if len > ctx.max() as u64 {
        return Err(Error::FieldTooLong {
            field: ctx.name(),
            len,
            max: ctx.max(),
        });
    }
    Ok(len as usize)
}

impl<T: Field> Field for Vec<T> {
    const FIXED_SIZE: usize = 0;
    const MAXIMA: usize = 1 + T::MAXIMA;
    const OPTIONAL: bool = false;
    type View<'a> = ListView<'a, T>;
    variable_common!();

    fn field_type(maxima: &[u32], schema: &mut Schema) -> Type {
        T::list_type(maxima, schema)
    }
    fn to_value(&self) -> Value {
        T::list_to_value(self)
    }
    fn part_len(&self) -> usize {
        if T::FIXED_SIZE != 0 {
            PREFIX_LEN + self.len() * T::FIXED_SIZE
        } else {
            PREFIX_LEN + self.iter().map(Field::part_len).sum::<usize>()
        }
    }
    fn encode_part(&self, writer: &mut Writer<'_>, ctx: &Ctx) -> Result<(), Error> {
        if self.len() > ctx.max() as usize {
            return Err(ctx.too_long(self.len()));
        }
        let start = wire::begin_part(writer)?;
        T::encode_items(self, writer, &ctx.items())?;
        wire::end_part(writer, start)
    }
    fn decode_part(reader: &mut Reader<'_>, ctx: &Ctx) -> Result<Vec<T>, Error> {
        let content = required_content(reader, ctx)?;
        let len = list_len::<T>(content, ctx)?;
        // `len` is at most the declared maximum and at most the content length, because
        // every item takes at least one byte (fixed) or four (a part).
        let mut items = Vec::with_capacity(len);
        let ctx = ctx.items();
        if T::FIXED_SIZE != 0 {
            T::decode_fixed_items(content, &mut items, &ctx)?;
        } else {
            let mut reader = Reader::new(content);
            for _ in 0..len {
                items.push(T::decode_part(&mut reader, &ctx)?);
            }
            debug_assert!(reader.is_empty());
        }
        Ok(items)
    }
    fn view_part<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<ListView<'a, T>, Error> {
        let content = required_content(reader, ctx)?;
        let len = list_len::<T>(content, ctx)?;
        let ctx = ctx.items();
        let mut items = Reader::new(content);
        for _ in 0..len {
            T::view_item(&mut items, &ctx)?;
        }
        debug_assert!(items.is_empty());
        Ok(ListView {
            content,
            len,
            ctx,
            item: PhantomData,
        })
    }
    fn from_view(view: ListView<'_, T>) -> Vec<T> {
        view.iter().map(T::from_view).collect()
    }
}

impl<T: Field> Field for Option<T>
where
    T::Wire: OptionalWire,
{
    const FIXED_SIZE: usize = {
        assert!(!T::OPTIONAL, "TPF optionals do not nest");
        if T::FIXED_SIZE == 0 {
            0
        } else {
            1 + T::FIXED_SIZE
        }
    };
    const MAXIMA: usize = T::MAXIMA;
    const OPTIONAL: bool = true;
    type Wire = <T::Wire as OptionalWire>::Optional;
    type View<'a> = Option<T::View<'a>>;
    type Slot<'a> = Option<T::Slot<'a>>;

    fn field_type(maxima: &[u32], schema: &mut Schema) -> Type {
        Type::Optional(Box::new(T::field_type(maxima, schema)))
    }
    fn to_value(&self) -> Value {
        match self {
            Some(value) => Value::Some(Box::new(value.to_value())),
            None => Value::None,
        }
    }
    #[inline]
    fn to_wire(&self) -> Self::Wire {
        <T::Wire as OptionalWire>::wrap(self.as_ref().map(T::to_wire))
    }
    #[inline]
    fn check_wire(wire: &Self::Wire, ctx: &Ctx) -> Result<(), Error> {
        let Some((present, value)) = <T::Wire as OptionalWire>::unwrap(wire) else {
            return Ok(());
        };
        match present {
            1 => T::check_wire(value, ctx),
            0 if value.as_bytes().iter().all(|&b| b == 0) => Ok(()),
            0 => Err(Error::NonCanonical {
                field: ctx.name(),
                what: "absent optional with non-zero value bytes",
            }),
            other => Err(Error::InvalidPresence {
                field: ctx.name(),
                value: u32::from(other),
            }),
        }
    }
    #[inline]
    fn from_wire(wire: &Self::Wire) -> Self {
        match <T::Wire as OptionalWire>::unwrap(wire) {
            Some((1, value)) => Some(T::from_wire(value)),
            _ => None,
        }
    }
    fn wire_view<'a>(wire: &Self::Wire) -> Self::View<'a> {
        match <T::Wire as OptionalWire>::unwrap(wire) {
            Some((1, value)) => Some(T::wire_view(value)),
            _ => None,
        }
    }
    fn part_len(&self) -> usize {
        match self {
            Some(value) => value.part_len(),
            None => PREFIX_LEN,
        }
    }
    fn encode_part(&self, writer: &mut Writer<'_>, ctx: &Ctx) -> Result<(), Error> {
        match self {
            Some(value) => value.encode_part(writer, ctx),
            None => writer.put_u32(ABSENT),
        }
    }
    fn decode_part(reader: &mut Reader<'_>, ctx: &Ctx) -> Result<Self, Error> {
        if take_absent(reader)? {
            Ok(None)
        } else {
            T::decode_part(reader, ctx).map(Some)
        }
    }
    fn view_part<'a>(reader: &mut Reader<'a>, ctx: &Ctx) -> Result<Self::View<'a>, Error> {
        if take_absent(reader)? {
            Ok(None)
        } else {
            T::view_part(reader, ctx).map(Some)
        }
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
    fn absent_view<'a>() -> Option<Self::View<'a>> {
        Some(None)
    }
    fn view_slot<'a>(
        reader: &mut Reader<'a>,
        present: bool,
        ctx: &Ctx,
    ) -> Result<Self::Slot<'a>, Error> {
        if T::FIXED_SIZE != 0 {
            return Ok(None);
        }
        if !present || take_absent(reader)? {
            return Ok(None);
        }
        T::view_slot(reader, true, ctx).map(Some)
    }
    fn view_field<'a>(wire: &Self::Wire, slot: Self::Slot<'a>) -> Self::View<'a> {
        if T::FIXED_SIZE != 0 {
            Self::wire_view(wire)
        } else {
            slot.map(|slot| T::view_field(&T::Wire::new_zeroed(), slot))
        }
    }
    fn from_view(view: Self::View<'_>) -> Self {
        view.map(T::from_view)
    }
}

/// Consumes the absent marker if it is next; the reader is unchanged otherwise.
#[inline]
fn take_absent(reader: &mut Reader<'_>) -> Result<bool, Error> {
    let mut peek = *reader;
    if peek.prefix()? == ABSENT {
        *reader = peek;
        Ok(true)
    } else {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const CTX: Ctx = Ctx {
        field: "f",
        maxima: &[3, 2],
        depth: 1,
    };

    fn encode_part<T: Field>(value: &T, ctx: &Ctx) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; 64];
        let mut writer = Writer::new(&mut buf);
        value.encode_part(&mut writer, ctx)?;
        let n = writer.position();
        assert_eq!(n, value.part_len());
        buf.truncate(n);
        Ok(buf)
    }

    #[test]
    fn strings_are_bounded_and_validated() {
        assert_eq!(
            encode_part(&String::from("abc"), &CTX),
            Ok(vec![3, 0, 0, 0, b'a', b'b', b'c'])
        );
        assert_eq!(
            encode_part(&String::from("abcd"), &CTX),
            Err(Error::FieldTooLong {
                field: "f".into(),
                len: 4,
                max: 3
            })
        );
        let mut reader = Reader::new(&[2, 0, 0, 0, 0xC3, 0x28]);
        assert_eq!(
            String::decode_part(&mut reader, &CTX),
            Err(Error::InvalidUtf8 { field: "f".into() })
        );
        let mut reader = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            String::view_part(&mut reader, &CTX),
            Err(Error::InvalidPresence {
                field: "f".into(),
                value: ABSENT
            })
        );
        // A part is read whole before its maximum is checked.
        let mut reader = Reader::new(&[9, 0, 0, 0]);
        assert_eq!(
            String::view_part(&mut reader, &CTX),
            Err(Error::Truncated { needed: 9, had: 0 })
        );
        let mut reader = Reader::new(&[4, 0, 0, 0, b'a', b'b', b'c', b'd']);
        assert_eq!(
            String::view_part(&mut reader, &CTX),
            Err(Error::FieldTooLong {
                field: "f".into(),
                len: 4,
                max: 3
            })
        );
    }

    #[test]
    fn lists_check_structure_then_count() {
        let words: Vec<String> = vec!["ab".into(), "c".into()];
        let bytes = encode_part(&words, &CTX).unwrap();
        assert_eq!(
            bytes,
            vec![11, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, b'c']
        );
        let mut reader = Reader::new(&bytes);
        let view = <Vec<String>>::view_part(&mut reader, &CTX).unwrap();
        assert_eq!(view.iter().collect::<Vec<_>>(), vec!["ab", "c"]);
        assert_eq!(<Vec<String>>::from_view(view), words);

        let mut reader = Reader::new(&[3, 0, 0, 0, 1, 0, 2]);
        assert_eq!(
            <Vec<u16>>::decode_part(&mut reader, &CTX),
            Err(Error::BadLength {
                what: "list of fixed-size items",
                len: 3
            })
        );
        let mut reader = Reader::new(&[8, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0]);
        assert_eq!(
            <Vec<u16>>::decode_part(&mut reader, &CTX),
            Err(Error::FieldTooLong {
                field: "f".into(),
                len: 4,
                max: 3
            })
        );
        let items: Vec<u16> = vec![1, 2, 3, 4];
        assert_eq!(
            encode_part(&items, &CTX),
            Err(Error::FieldTooLong {
                field: "f".into(),
                len: 4,
                max: 3
            })
        );
    }

    #[test]
    fn fixed_list_views_lend_wire_slices() {
        let items: Vec<u16> = vec![7, 0x0102];
        let bytes = encode_part(&items, &CTX).unwrap();
        let view = <Vec<u16>>::view_part(&mut Reader::new(&bytes), &CTX).unwrap();
        let wire = view.wire().unwrap();
        assert_eq!(wire.iter().map(|w| w.get()).collect::<Vec<_>>(), items);
        let blob: Vec<u8> = vec![1, 2, 3];
        let bytes = encode_part(&blob, &CTX).unwrap();
        let view = <Vec<u8>>::view_part(&mut Reader::new(&bytes), &CTX).unwrap();
        assert_eq!(view.as_slice(), &[1, 2, 3]);
        assert_eq!(&*view, &[1, 2, 3]);
    }

    #[test]
    fn optional_fixed_values_are_canonical() {
        let ctx = Ctx { maxima: &[], ..CTX };
        assert_eq!(Some(5u16).to_wire().as_bytes(), &[1, 5, 0]);
        assert_eq!(None::<u16>.to_wire().as_bytes(), &[0, 0, 0]);
        let check = |bytes: [u8; 3]| {
            <Option<u16>>::check_wire(&wire::OptWire::read_from_bytes(&bytes).unwrap(), &ctx)
        };
        assert_eq!(check([0, 0, 0]), Ok(()));
        assert_eq!(check([1, 0, 0]), Ok(()));
        assert_eq!(
            check([2, 0, 0]),
            Err(Error::InvalidPresence {
                field: "f".into(),
                value: 2
            })
        );
        assert!(matches!(check([0, 1, 0]), Err(Error::NonCanonical { .. })));
        let check_bool = |bytes: [u8; 2]| {
            <Option<bool>>::check_wire(&wire::OptWire::read_from_bytes(&bytes).unwrap(), &ctx)
        };
        assert_eq!(
            check_bool([1, 2]),
            Err(Error::InvalidBool {
                field: "f".into(),
                value: 2
            })
        );
    }

    #[test]
    fn optional_variable_values_use_the_absent_marker() {
        assert_eq!(encode_part(&None::<String>, &CTX), Ok(vec![0xFF; 4]));
        assert_eq!(encode_part(&Some(String::new()), &CTX), Ok(vec![0; 4]));
        let mut reader = Reader::new(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
        assert_eq!(<Option<String>>::decode_part(&mut reader, &CTX), Ok(None));
        assert_eq!(
            <Option<String>>::decode_part(&mut reader, &CTX),
            Ok(Some(String::new()))
        );
    }

    #[test]
    fn floats_keep_their_bits() {
        let nan = f64::from_bits(0x7FF0_0000_0000_0001);
        assert_eq!(f64::from_wire(&nan.to_wire()).to_bits(), nan.to_bits());
        let negative_zero = -0.0f32;
        assert_eq!(negative_zero.to_wire().as_bytes(), &[0, 0, 0, 0x80]);
    }
}
