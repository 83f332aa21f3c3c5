//! The schema-driven codec: encodes and decodes any message of a [`Schema`] to and from a
//! dynamic [`Value`] tree, without generated code.
//!
//! This is the reference the golden vectors, the fuzzer and implementations in other
//! languages are checked against; `#[derive(Tpf)]` types must agree with it byte for byte.
//!
//! Unlike a derived type, which always encodes at its current version, a [`MessageValue`]
//! records the version it was decoded at (the payload's version, or the reader's when the
//! payload is newer) and is encoded at that version again. So for every payload `b` whose
//! version (and the version of every message nested in it) is at most the reader's,
//! `encode(decode(b)) == b`, byte for byte.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, FieldName};
use crate::schema::{Repr, Schema, Type};
use crate::wire::{self, ABSENT, MESSAGE_LENGTH_MAX, Reader, Writer};

/// A decoded value of any TPF type.
///
/// Equality compares floats by bit pattern, the way TPF does: `-0.0 != 0.0` and a NaN
/// equals a NaN with the same bits.
#[derive(Clone, Debug)]
pub enum Value {
    /// `u8`.
    U8(u8),
    /// `u16`.
    U16(u16),
    /// `u32`.
    U32(u32),
    /// `u64`.
    U64(u64),
    /// `i8`.
    I8(i8),
    /// `i16`.
    I16(i16),
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32`, exact bits.
    F32(f32),
    /// `f64`, exact bits.
    F64(f64),
    /// `bool`.
    Bool(bool),
    /// An enum, by its value on the wire.
    Enum(u64),
    /// A fixed byte array.
    Array(Vec<u8>),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A UTF-8 string.
    String(String),
    /// An absent optional (also a field the payload's version does not have).
    None,
    /// A present optional.
    Some(Box<Value>),
    /// A list.
    List(Vec<Value>),
    /// A nested message.
    Message(MessageValue),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value as V;
        match (self, other) {
            (V::U8(a), V::U8(b)) => a == b,
            (V::U16(a), V::U16(b)) => a == b,
            (V::U32(a), V::U32(b)) => a == b,
            (V::U64(a), V::U64(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::F32(a), V::F32(b)) => a.to_bits() == b.to_bits(),
            (V::F64(a), V::F64(b)) => a.to_bits() == b.to_bits(),
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Enum(a), V::Enum(b)) => a == b,
            (V::Array(a), V::Array(b)) | (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::String(a), V::String(b)) => a == b,
            (V::None, V::None) => true,
            (V::Some(a), V::Some(b)) => a == b,
            (V::List(a), V::List(b)) => a == b,
            (V::Message(a), V::Message(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

/// A decoded message: the version it was decoded at and one value per field of the reader's
/// definition, in declaration order (fields the version lacks are [`Value::None`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageValue {
    /// Version the message is encoded at.
    pub version: u16,
    /// Field values, in the definition's order.
    pub fields: Vec<Value>,
}

/// A resolved type: names replaced by indexes, fixed sizes known.
#[derive(Clone, Debug)]
enum Ty {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Enum(usize),
    Array(usize),
    Bytes(u32),
    String(u32),
    Optional(Box<Ty>),
    List(Box<Ty>, u32),
    Message(usize),
}

#[derive(Debug)]
struct FieldInfo {
    name: String,
    ty: Ty,
    since: u16,
    /// Bytes in the fixed block, or `None` for a variable field.
    fixed: Option<usize>,
}

#[derive(Debug)]
struct MessageInfo {
    name: String,
    schema_id: u16,
    template_id: u16,
    version: u16,
    fields: Vec<FieldInfo>,
}

impl MessageInfo {
    fn block_length(&self, version: u16) -> u16 {
        let length: usize = self
            .fields
            .iter()
            .filter(|f| f.since <= version)
            .filter_map(|f| f.fixed)
            .sum();
        length as u16
    }
}

#[derive(Debug)]
struct EnumInfo {
    repr: Repr,
    values: Vec<u64>,
}

/// A validated schema, resolved for encoding and decoding [`Value`]s.
#[derive(Debug)]
pub struct Codec {
    messages: Vec<MessageInfo>,
    enums: Vec<EnumInfo>,
    by_name: BTreeMap<String, usize>,
}

impl Codec {
    /// Validates `schema` ([`Schema::validate`]) and resolves it.
    pub fn new(schema: &Schema) -> Result<Codec, Error> {
        schema.validate()?;
        let enum_index: BTreeMap<&str, usize> = schema
            .enums
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.as_str(), i))
            .collect();
        let message_index: BTreeMap<&str, usize> = schema
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let resolve = |ty: &Type| resolve(ty, &enum_index, &message_index);
        let messages = schema
            .messages
            .iter()
            .map(|m| MessageInfo {
                name: m.name.clone(),
                schema_id: m.schema_id,
                template_id: m.template_id,
                version: m.version,
                fields: m
                    .fields
                    .iter()
                    .map(|f| FieldInfo {
                        name: f.name.clone(),
                        ty: resolve(&f.ty),
                        since: f.since,
                        fixed: f.ty.fixed_size(&schema.enums),
                    })
                    .collect(),
            })
            .collect();
        let enums = schema
            .enums
            .iter()
            .map(|e| EnumInfo {
                repr: e.repr,
                values: e.variants.iter().map(|v| v.value).collect(),
            })
            .collect();
        let by_name = message_index
            .iter()
            .map(|(name, i)| ((*name).into(), *i))
            .collect();
        Ok(Codec {
            messages,
            enums,
            by_name,
        })
    }

    fn index(&self, name: &str) -> Result<usize, Error> {
        self.by_name.get(name).copied().ok_or_else(|| {
            Error::InvalidSchema(alloc::format!("no message `{name}` in the schema"))
        })
    }

    /// The current version of message `name`.
    pub fn version(&self, name: &str) -> Result<u16, Error> {
        Ok(self.messages[self.index(name)?].version)
    }

    /// The field names of message `name`, in order.
    pub fn field_names(&self, name: &str) -> Result<Vec<&str>, Error> {
        Ok(self.messages[self.index(name)?]
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect())
    }

    /// Bytes [`Codec::encode`] writes for `value` as message `name`.
    pub fn encoded_len(&self, name: &str, value: &MessageValue) -> Result<usize, Error> {
        let mut scratch = Vec::new();
        self.encode_to(name, value, &mut scratch)?;
        Ok(scratch.len())
    }

    /// Encodes `value` as message `name` at `value.version` into the start of `buf`.
    pub fn encode(&self, name: &str, value: &MessageValue, buf: &mut [u8]) -> Result<usize, Error> {
        let mut bytes = Vec::new();
        self.encode_to(name, value, &mut bytes)?;
        let had = buf.len();
        let target = buf.get_mut(..bytes.len()).ok_or(Error::BufferTooSmall {
            needed: bytes.len(),
            had,
        })?;
        target.copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// Encodes `value` as message `name` at `value.version` into a new vector.
    pub fn encode_to_vec(&self, name: &str, value: &MessageValue) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        self.encode_to(name, value, &mut bytes)?;
        Ok(bytes)
    }

    fn encode_to(&self, name: &str, value: &MessageValue, out: &mut Vec<u8>) -> Result<(), Error> {
        let index = self.index(name)?;
        // The reference codec favours simplicity over speed: it sizes the output by encoding
        // into a buffer that grows until the encoding fits.
        let mut size = 64usize;
        loop {
            out.clear();
            out.resize(size, 0);
            let mut writer = Writer::new(out);
            match self.encode_message(index, value, &mut writer, 1) {
                Ok(()) => {
                    let written = writer.position();
                    out.truncate(written);
                    return Ok(());
                }
                Err(Error::BufferTooSmall { .. }) if size <= MESSAGE_LENGTH_MAX as usize => {
                    size *= 2
                }
                Err(Error::BufferTooSmall { .. }) => {
                    return Err(Error::MessageTooLong { len: size as u64 });
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn encode_message(
        &self,
        index: usize,
        value: &MessageValue,
        writer: &mut Writer<'_>,
        depth: usize,
    ) -> Result<(), Error> {
        let info = &self.messages[index];
        let version = value.version;
        if version == 0 || version > info.version {
            return Err(Error::InvalidVersion { version });
        }
        if value.fields.len() != info.fields.len() {
            return Err(Error::ValueMismatch {
                field: info.name.clone().into(),
                expected: "one value per field",
            });
        }
        for (field, value) in info.fields.iter().zip(&value.fields) {
            if field.since > version && *value != Value::None {
                return Err(Error::FieldNotInVersion {
                    field: owned(&field.name),
                    version,
                });
            }
        }
        let block_length = info.block_length(version) as usize;
        let start = wire::begin_message(writer, block_length, depth)?;
        let fields = || {
            info.fields
                .iter()
                .zip(&value.fields)
                .filter(|(f, _)| f.since <= version)
        };
        // The fixed block, then the parts, each in declaration order.
        let mut block = Vec::with_capacity(block_length);
        for (field, value) in fields().filter(|(f, _)| f.fixed.is_some()) {
            self.fixed_bytes(&field.ty, value, &field.name, &mut block)?;
        }
        assert_eq!(block.len(), block_length);
        for (field, value) in fields().filter(|(f, _)| f.fixed.is_none()) {
            self.encode_part(&field.ty, value, &field.name, writer, depth)?;
        }
        wire::end_message(
            writer,
            start,
            (info.schema_id, info.template_id, version),
            &block,
        )
    }

    /// Appends the fixed encoding of `value` (of fixed-size type `ty`) to `out`.
    fn fixed_bytes(
        &self,
        ty: &Ty,
        value: &Value,
        field: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mismatch = || Error::ValueMismatch {
            field: owned(field),
            expected: kind(ty),
        };
        match (ty, value) {
            (Ty::U8, Value::U8(v)) => out.push(*v),
            (Ty::U16, Value::U16(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::U32, Value::U32(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::U64, Value::U64(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::I8, Value::I8(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::I16, Value::I16(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::I32, Value::I32(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::I64, Value::I64(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Ty::F32, Value::F32(v)) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            (Ty::F64, Value::F64(v)) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            (Ty::Bool, Value::Bool(v)) => out.push(u8::from(*v)),
            (Ty::Enum(e), Value::Enum(v)) => {
                let info = &self.enums[*e];
                if !info.values.contains(v) {
                    return Err(Error::InvalidEnum {
                        field: owned(field),
                        value: *v,
                    });
                }
                out.extend_from_slice(&v.to_le_bytes()[..info.repr.size()]);
            }
            (Ty::Array(len), Value::Array(bytes)) if bytes.len() == *len => {
                out.extend_from_slice(bytes)
            }
            (Ty::Optional(inner), Value::None) => {
                let size = self.fixed_size(inner).ok_or_else(mismatch)?;
                out.resize(out.len() + 1 + size, 0);
            }
            (Ty::Optional(inner), Value::Some(v)) => {
                out.push(1);
                self.fixed_bytes(inner, v, field, out)?;
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    fn fixed_size(&self, ty: &Ty) -> Option<usize> {
        match ty {
            Ty::U8 | Ty::I8 | Ty::Bool => Some(1),
            Ty::U16 | Ty::I16 => Some(2),
            Ty::U32 | Ty::I32 | Ty::F32 => Some(4),
            Ty::U64 | Ty::I64 | Ty::F64 => Some(8),
            Ty::Enum(e) => Some(self.enums[*e].repr.size()),
            Ty::Array(len) => Some(*len),
            Ty::Optional(inner) => self.fixed_size(inner).map(|size| size + 1),
            Ty::Bytes(_) | Ty::String(_) | Ty::List(..) | Ty::Message(_) => None,
        }
    }

    /// Writes `value` (of variable type `ty`) as a part.
    fn encode_part(
        &self,
        ty: &Ty,
        value: &Value,
        field: &str,
        writer: &mut Writer<'_>,
        depth: usize,
    ) -> Result<(), Error> {
        let too_long = |len: usize, max: u32| Error::FieldTooLong {
            field: owned(field),
            len: len as u64,
            max,
        };
        match (ty, value) {
            (Ty::Bytes(max), Value::Bytes(bytes)) => {
                if bytes.len() > *max as usize {
                    return Err(too_long(bytes.len(), *max));
                }
                wire::put_part(writer, bytes)
            }
            (Ty::String(max), Value::String(text)) => {
                if text.len() > *max as usize {
                    return Err(too_long(text.len(), *max));
                }
                wire::put_part(writer, text.as_bytes())
            }
            (Ty::List(item, max), Value::List(items)) => {
                if items.len() > *max as usize {
                    return Err(too_long(items.len(), *max));
                }
                let start = wire::begin_part(writer)?;
                for item_value in items {
                    if self.fixed_size(item).is_some() {
                        let mut bytes = Vec::new();
                        self.fixed_bytes(item, item_value, field, &mut bytes)?;
                        writer.put(&bytes)?;
                    } else {
                        self.encode_part(item, item_value, field, writer, depth)?;
                    }
                }
                wire::end_part(writer, start)
            }
            (Ty::Message(index), Value::Message(message)) => {
                self.encode_message(*index, message, writer, depth + 1)
            }
            (Ty::Optional(_), Value::None) => writer.put_u32(ABSENT),
            (Ty::Optional(inner), Value::Some(v)) => {
                self.encode_part(inner, v, field, writer, depth)
            }
            _ => Err(Error::ValueMismatch {
                field: owned(field),
                expected: kind(ty),
            }),
        }
    }

    /// Decodes `bytes` (exactly one message) as whichever message of the schema its header
    /// names; returns the message's name and value.
    pub fn decode(&self, bytes: &[u8]) -> Result<(&str, MessageValue), Error> {
        let msg = wire::top_level(bytes)?;
        let (header, _) = wire::read_header(msg, 1)?;
        let (schema_id, template_id) = (header.schema_id.get(), header.template_id.get());
        let index = self
            .messages
            .iter()
            .position(|m| m.schema_id == schema_id && m.template_id == template_id)
            .ok_or(if self.messages.iter().any(|m| m.schema_id == schema_id) {
                Error::UnknownTemplate {
                    schema_id,
                    template_id,
                }
            } else {
                Error::UnknownSchema { schema_id }
            })?;
        let value = self.decode_message(index, msg, 1)?;
        Ok((&self.messages[index].name, value))
    }

    /// Decodes `bytes` (exactly one message) as message `name`.
    pub fn decode_as(&self, name: &str, bytes: &[u8]) -> Result<MessageValue, Error> {
        let index = self.index(name)?;
        self.decode_message(index, wire::top_level(bytes)?, 1)
    }

    fn decode_message(
        &self,
        index: usize,
        msg: &[u8],
        depth: usize,
    ) -> Result<MessageValue, Error> {
        let info = &self.messages[index];
        let (header, rest) = wire::read_header(msg, depth)?;
        wire::check_ids(header, info.schema_id, info.template_id)?;
        let opened = wire::open_body(header, rest, info.version, |v| info.block_length(v))?;
        let version = opened.version.min(info.version);
        let mut fields = vec![Value::None; info.fields.len()];
        let mut block = Reader::new(opened.fixed);
        for (field, slot) in info.fields.iter().zip(fields.iter_mut()) {
            if let Some(size) = field.fixed.filter(|_| field.since <= version) {
                *slot = self.decode_fixed(&field.ty, block.take(size)?, &field.name)?;
            }
        }
        let mut parts = opened.parts;
        for (field, slot) in info.fields.iter().zip(fields.iter_mut()) {
            if field.fixed.is_none() && field.since <= version {
                *slot = self.decode_part(&field.ty, &mut parts, &field.name, depth)?;
            }
        }
        wire::finish(parts, opened.version, info.version)?;
        Ok(MessageValue { version, fields })
    }

    /// Decodes the fixed encoding `bytes` (exactly the type's size) of type `ty`.
    fn decode_fixed(&self, ty: &Ty, bytes: &[u8], field: &str) -> Result<Value, Error> {
        let mut array = [0u8; 8];
        let n = bytes.len().min(8);
        array[..n].copy_from_slice(&bytes[..n]);
        let word = u64::from_le_bytes(array);
        Ok(match ty {
            Ty::U8 => Value::U8(word as u8),
            Ty::U16 => Value::U16(word as u16),
            Ty::U32 => Value::U32(word as u32),
            Ty::U64 => Value::U64(word),
            Ty::I8 => Value::I8(word as u8 as i8),
            Ty::I16 => Value::I16(word as u16 as i16),
            Ty::I32 => Value::I32(word as u32 as i32),
            Ty::I64 => Value::I64(word as i64),
            Ty::F32 => Value::F32(f32::from_bits(word as u32)),
            Ty::F64 => Value::F64(f64::from_bits(word)),
            Ty::Bool => match word {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => {
                    return Err(Error::InvalidBool {
                        field: owned(field),
                        value: other as u8,
                    });
                }
            },
            Ty::Enum(e) => {
                if !self.enums[*e].values.contains(&word) {
                    return Err(Error::InvalidEnum {
                        field: owned(field),
                        value: word,
                    });
                }
                Value::Enum(word)
            }
            Ty::Array(_) => Value::Array(bytes.to_vec()),
            Ty::Optional(inner) => {
                let (present, value) = bytes.split_first().ok_or(Error::BadLength {
                    what: "optional",
                    len: 0,
                })?;
                match present {
                    1 => Value::Some(Box::new(self.decode_fixed(inner, value, field)?)),
                    0 if value.iter().all(|&b| b == 0) => Value::None,
                    0 => {
                        return Err(Error::NonCanonical {
                            field: owned(field),
                            what: "absent optional with non-zero value bytes",
                        });
                    }
                    other => {
                        return Err(Error::InvalidPresence {
                            field: owned(field),
                            value: u32::from(*other),
                        });
                    }
                }
            }
            Ty::Bytes(_) | Ty::String(_) | Ty::List(..) | Ty::Message(_) => {
                return Err(Error::ValueMismatch {
                    field: owned(field),
                    expected: "fixed-size type",
                });
            }
        })
    }

    /// Reads a part of variable type `ty`.
    fn decode_part(
        &self,
        ty: &Ty,
        reader: &mut Reader<'_>,
        field: &str,
        depth: usize,
    ) -> Result<Value, Error> {
        if let Ty::Optional(inner) = ty {
            let mut peek = *reader;
            if peek.prefix()? == ABSENT {
                *reader = peek;
                return Ok(Value::None);
            }
            return Ok(Value::Some(Box::new(
                self.decode_part(inner, reader, field, depth)?,
            )));
        }
        if let Ty::Message(index) = ty {
            let msg = reader.message()?.ok_or(Error::InvalidPresence {
                field: owned(field),
                value: ABSENT,
            })?;
            return Ok(Value::Message(self.decode_message(
                *index,
                msg,
                depth + 1,
            )?));
        }
        let len = reader.prefix()?;
        if len == ABSENT {
            return Err(Error::InvalidPresence {
                field: owned(field),
                value: ABSENT,
            });
        }
        let too_long = |len: u64, max: u32| Error::FieldTooLong {
            field: owned(field),
            len,
            max,
        };
        // A part is read whole before its content is checked.
        let content = reader.content(len)?;
        match ty {
            Ty::Bytes(max) | Ty::String(max) if len > *max => Err(too_long(len.into(), *max)),
            Ty::Bytes(_) => Ok(Value::Bytes(content.to_vec())),
            Ty::String(_) => {
                let text = core::str::from_utf8(content).map_err(|_| Error::InvalidUtf8 {
                    field: owned(field),
                })?;
                Ok(Value::String(text.into()))
            }
            Ty::List(item, max) => {
                let count = match self.fixed_size(item) {
                    Some(size) => {
                        if content.len() % size != 0 {
                            return Err(Error::BadLength {
                                what: "list of fixed-size items",
                                len: content.len() as u64,
                            });
                        }
                        (content.len() / size) as u64
                    }
                    None => Reader::new(content).count_parts()?,
                };
                if count > u64::from(*max) {
                    return Err(too_long(count, *max));
                }
                let mut items = Vec::with_capacity(count as usize);
                let mut reader = Reader::new(content);
                for _ in 0..count {
                    items.push(match self.fixed_size(item) {
                        Some(size) => self.decode_fixed(item, reader.take(size)?, field)?,
                        None => self.decode_part(item, &mut reader, field, depth)?,
                    });
                }
                debug_assert!(reader.is_empty());
                Ok(Value::List(items))
            }
            _ => Err(Error::ValueMismatch {
                field: owned(field),
                expected: "variable type",
            }),
        }
    }
}

fn resolve(ty: &Type, enums: &BTreeMap<&str, usize>, messages: &BTreeMap<&str, usize>) -> Ty {
    // `Schema::validate` has checked that every name resolves.
    match ty {
        Type::U8 => Ty::U8,
        Type::U16 => Ty::U16,
        Type::U32 => Ty::U32,
        Type::U64 => Ty::U64,
        Type::I8 => Ty::I8,
        Type::I16 => Ty::I16,
        Type::I32 => Ty::I32,
        Type::I64 => Ty::I64,
        Type::F32 => Ty::F32,
        Type::F64 => Ty::F64,
        Type::Bool => Ty::Bool,
        Type::Enum(name) => Ty::Enum(enums[name.as_str()]),
        Type::Array(len) => Ty::Array(*len as usize),
        Type::Bytes { max } => Ty::Bytes(*max),
        Type::String { max } => Ty::String(*max),
        Type::Optional(inner) => Ty::Optional(Box::new(resolve(inner, enums, messages))),
        Type::List { item, max } => Ty::List(Box::new(resolve(item, enums, messages)), *max),
        Type::Message(name) => Ty::Message(messages[name.as_str()]),
    }
}

fn kind(ty: &Ty) -> &'static str {
    match ty {
        Ty::U8 => "u8",
        Ty::U16 => "u16",
        Ty::U32 => "u32",
        Ty::U64 => "u64",
        Ty::I8 => "i8",
        Ty::I16 => "i16",
        Ty::I32 => "i32",
        Ty::I64 => "i64",
        Ty::F32 => "f32",
        Ty::F64 => "f64",
        Ty::Bool => "bool",
        Ty::Enum(_) => "enum",
        Ty::Array(_) => "array",
        Ty::Bytes(_) => "bytes",
        Ty::String(_) => "string",
        Ty::Optional(_) => "optional",
        Ty::List(..) => "list",
        Ty::Message(_) => "message",
    }
}

fn owned(name: &str) -> FieldName {
    Cow::Owned(name.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EnumDef, FieldDef, MessageDef, Variant};

    fn schema() -> Schema {
        let field = |name: &str, ty| FieldDef {
            name: name.into(),
            ty,
            since: 1,
        };
        Schema {
            messages: vec![MessageDef {
                name: "M".into(),
                schema_id: 4,
                template_id: 1,
                version: 1,
                fields: vec![
                    field("kind", Type::Enum("K".into())),
                    field("tag", Type::Array(2)),
                    field("name", Type::String { max: 2 }),
                    field(
                        "items",
                        Type::List {
                            item: Box::new(Type::U8),
                            max: 1,
                        },
                    ),
                ],
            }],
            enums: vec![EnumDef {
                name: "K".into(),
                repr: Repr::U8,
                variants: vec![Variant {
                    name: "A".into(),
                    value: 1,
                }],
            }],
        }
    }

    fn value(kind: u64, tag: Vec<u8>, name: &str, items: Vec<Value>) -> MessageValue {
        MessageValue {
            version: 1,
            fields: vec![
                Value::Enum(kind),
                Value::Array(tag),
                Value::String(name.into()),
                Value::List(items),
            ],
        }
    }

    #[test]
    fn values_must_fit_their_schema() {
        let codec = Codec::new(&schema()).unwrap();
        let ok = value(1, vec![1, 2], "ab", vec![Value::U8(7)]);
        let bytes = codec.encode_to_vec("M", &ok).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(("M", ok)));
        let field = |name: &'static str| FieldName::Borrowed(name);
        assert_eq!(
            codec.encode_to_vec("M", &value(2, vec![1, 2], "", vec![])),
            Err(Error::InvalidEnum {
                field: field("kind"),
                value: 2
            })
        );
        assert_eq!(
            codec.encode_to_vec("M", &value(1, vec![1], "", vec![])),
            Err(Error::ValueMismatch {
                field: field("tag"),
                expected: "array"
            })
        );
        assert_eq!(
            codec.encode_to_vec("M", &value(1, vec![1, 2], "abc", vec![])),
            Err(Error::FieldTooLong {
                field: field("name"),
                len: 3,
                max: 2
            })
        );
        assert_eq!(
            codec.encode_to_vec(
                "M",
                &value(1, vec![1, 2], "", vec![Value::U8(1), Value::U8(2)])
            ),
            Err(Error::FieldTooLong {
                field: field("items"),
                len: 2,
                max: 1
            })
        );
        assert_eq!(
            codec.encode_to_vec("M", &value(1, vec![1, 2], "", vec![Value::I8(1)])),
            Err(Error::ValueMismatch {
                field: field("items"),
                expected: "u8"
            })
        );
        let short = MessageValue {
            version: 1,
            fields: vec![Value::Enum(1)],
        };
        assert_eq!(
            codec.encode_to_vec("M", &short),
            Err(Error::ValueMismatch {
                field: field("M"),
                expected: "one value per field"
            })
        );
        assert!(matches!(
            codec.encode_to_vec("Nope", &short),
            Err(Error::InvalidSchema(_))
        ));
    }

    #[test]
    fn decoding_by_header_names_what_is_unknown() {
        let codec = Codec::new(&schema()).unwrap();
        let header = |schema: u16, template: u16| {
            let mut bytes = vec![8, 0, 0, 0];
            bytes.extend_from_slice(&schema.to_le_bytes());
            bytes.extend_from_slice(&template.to_le_bytes());
            bytes.extend_from_slice(&[1, 0, 0, 0]);
            bytes
        };
        assert_eq!(
            codec.decode(&header(5, 1)),
            Err(Error::UnknownSchema { schema_id: 5 })
        );
        assert_eq!(
            codec.decode(&header(4, 2)),
            Err(Error::UnknownTemplate {
                schema_id: 4,
                template_id: 2
            })
        );
    }

    #[test]
    fn floats_compare_by_bits() {
        assert_eq!(Value::F64(f64::NAN), Value::F64(f64::NAN));
        assert_ne!(Value::F32(0.0), Value::F32(-0.0));
        assert_ne!(Value::U8(1), Value::I8(1));
    }
}
