//! The language-neutral schema descriptor.
//!
//! A [`Schema`] is a set of message and enum definitions. It is what the golden vectors carry
//! (as JSON, with the `serde` feature), what the dynamic codec ([`crate::dynamic`]) walks, and
//! what `#[derive(Tpf)]` generates for every message type ([`crate::TpfMessage::schema`]), so
//! a derived type can be checked byte for byte against the dynamic codec and against other
//! implementations.
//!
//! In JSON a schema looks like this (the `since` of a field defaults to 1):
//!
//! ```json
//! {
//!   "messages": [
//!     { "name": "Order", "schema_id": 1, "template_id": 6, "version": 2,
//!       "fields": [
//!         { "name": "id", "type": "u64" },
//!         { "name": "side", "type": { "enum": "Side" } },
//!         { "name": "symbol", "type": { "string": { "max": 16 } } },
//!         { "name": "qty", "type": { "optional": "u32" }, "since": 2 },
//!         { "name": "legs", "type": { "list": { "item": { "message": "Leg" }, "max": 4 } }, "since": 2 }
//!       ] }
//!   ],
//!   "enums": [
//!     { "name": "Side", "repr": "u8", "variants": [ { "name": "Buy", "value": 1 } ] }
//!   ]
//! }
//! ```

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::wire::{BLOCK_LENGTH_MAX, MESSAGE_LENGTH_MAX};

/// A set of message and enum definitions that refer to each other by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Schema {
    /// Message definitions.
    pub messages: Vec<MessageDef>,
    /// Enum definitions.
    #[cfg_attr(feature = "serde", serde(default))]
    pub enums: Vec<EnumDef>,
}

/// One message type: its identity on the wire and its fields in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct MessageDef {
    /// Name, unique in the schema; other definitions refer to the message by it.
    pub name: String,
    /// Schema id written in the header.
    pub schema_id: u16,
    /// Template id written in the header.
    pub template_id: u16,
    /// Current version (1 or more); fields have a `since` between 1 and this.
    pub version: u16,
    /// Fields in declaration order, which is also wire order.
    pub fields: Vec<FieldDef>,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct FieldDef {
    /// Name, unique in the message.
    pub name: String,
    /// Type.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub ty: Type,
    /// The message version that added the field (1 for the original fields).
    #[cfg_attr(feature = "serde", serde(default = "since_default"))]
    pub since: u16,
}

#[cfg(feature = "serde")]
fn since_default() -> u16 {
    1
}

/// The type of a field, of a list item or of an optional's value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Type {
    /// Unsigned 8-bit integer, 1 byte.
    U8,
    /// Unsigned 16-bit integer, 2 bytes little-endian.
    U16,
    /// Unsigned 32-bit integer, 4 bytes little-endian.
    U32,
    /// Unsigned 64-bit integer, 8 bytes little-endian.
    U64,
    /// Signed 8-bit integer, 1 byte two's complement.
    I8,
    /// Signed 16-bit integer, 2 bytes little-endian two's complement.
    I16,
    /// Signed 32-bit integer, 4 bytes little-endian two's complement.
    I32,
    /// Signed 64-bit integer, 8 bytes little-endian two's complement.
    I64,
    /// IEEE 754 binary32, 4 bytes little-endian, bit pattern preserved exactly.
    F32,
    /// IEEE 754 binary64, 8 bytes little-endian, bit pattern preserved exactly.
    F64,
    /// Boolean, 1 byte: 0 or 1.
    Bool,
    /// An enum declared in the schema, encoded as its repr integer.
    Enum(String),
    /// A fixed-length byte array of this many bytes (1 or more).
    Array(u16),
    /// A byte string of at most `max` bytes (a variable part).
    Bytes {
        /// Declared maximum length in bytes.
        max: u32,
    },
    /// A UTF-8 string of at most `max` bytes (a variable part).
    String {
        /// Declared maximum length in bytes.
        max: u32,
    },
    /// An optional value of the inner type, which must not itself be optional.
    Optional(Box<Type>),
    /// A list of at most `max` items (a variable part).
    List {
        /// Item type.
        item: Box<Type>,
        /// Declared maximum number of items.
        max: u32,
    },
    /// A nested message declared in the schema (a variable part that is a whole message).
    Message(String),
}

/// An enum type: the integer width it is encoded with and its variants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct EnumDef {
    /// Name, unique in the schema.
    pub name: String,
    /// Integer width on the wire.
    pub repr: Repr,
    /// Variants; values are unique and fit `repr`.
    pub variants: Vec<Variant>,
}

/// The integer width an enum is encoded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Repr {
    /// 1 byte.
    U8,
    /// 2 bytes little-endian.
    U16,
    /// 4 bytes little-endian.
    U32,
    /// 8 bytes little-endian.
    U64,
}

impl Repr {
    /// Bytes on the wire.
    pub const fn size(self) -> usize {
        match self {
            Repr::U8 => 1,
            Repr::U16 => 2,
            Repr::U32 => 4,
            Repr::U64 => 8,
        }
    }

    /// The largest value the repr holds.
    pub const fn max_value(self) -> u64 {
        match self {
            Repr::U8 => u8::MAX as u64,
            Repr::U16 => u16::MAX as u64,
            Repr::U32 => u32::MAX as u64,
            Repr::U64 => u64::MAX,
        }
    }
}

/// One variant of an enum.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Variant {
    /// Name, unique in the enum.
    pub name: String,
    /// Value on the wire.
    pub value: u64,
}

impl Type {
    /// A short lowercase name of the type's kind, as used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::I8 => "i8",
            Type::I16 => "i16",
            Type::I32 => "i32",
            Type::I64 => "i64",
            Type::F32 => "f32",
            Type::F64 => "f64",
            Type::Bool => "bool",
            Type::Enum(_) => "enum",
            Type::Array(_) => "array",
            Type::Bytes { .. } => "bytes",
            Type::String { .. } => "string",
            Type::Optional(_) => "optional",
            Type::List { .. } => "list",
            Type::Message(_) => "message",
        }
    }

    /// Bytes the type takes in a fixed block or a fixed-size list item, or `None` for the
    /// variable types (bytes, string, list, message, and optionals of those). `enums` resolves
    /// enum names; an unknown enum also gives `None`.
    pub fn fixed_size(&self, enums: &[EnumDef]) -> Option<usize> {
        match self {
            Type::U8 | Type::I8 | Type::Bool => Some(1),
            Type::U16 | Type::I16 => Some(2),
            Type::U32 | Type::I32 | Type::F32 => Some(4),
            Type::U64 | Type::I64 | Type::F64 => Some(8),
            Type::Enum(name) => enums
                .iter()
                .find(|e| &e.name == name)
                .map(|e| e.repr.size()),
            Type::Array(len) => Some(*len as usize),
            Type::Optional(inner) => inner.fixed_size(enums).map(|size| 1 + size),
            Type::Bytes { .. } | Type::String { .. } | Type::List { .. } | Type::Message(_) => None,
        }
    }
}

impl MessageDef {
    /// Length of the fixed block of a payload at `version` (the fixed fields with
    /// `since <= version`). Enum names are resolved in `enums`.
    pub fn block_length(&self, version: u16, enums: &[EnumDef]) -> usize {
        self.fields
            .iter()
            .filter(|field| field.since <= version)
            .filter_map(|field| field.ty.fixed_size(enums))
            .sum()
    }
}

impl Schema {
    /// The message definition called `name`.
    pub fn message(&self, name: &str) -> Option<&MessageDef> {
        self.messages.iter().find(|m| m.name == name)
    }

    /// The enum definition called `name`.
    pub fn enum_def(&self, name: &str) -> Option<&EnumDef> {
        self.enums.iter().find(|e| e.name == name)
    }

    /// The same schema with messages and enums sorted by name, for comparing two schemas
    /// that list the same definitions in another order.
    pub fn normalized(&self) -> Schema {
        let mut schema = self.clone();
        schema.messages.sort_by(|a, b| a.name.cmp(&b.name));
        schema.enums.sort_by(|a, b| a.name.cmp(&b.name));
        schema
    }

    /// Checks every rule a TPF v1 schema must follow; the first broken rule is reported as
    /// [`Error::InvalidSchema`].
    ///
    /// - Names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`); message and enum names are unique
    ///   together, field names within their message, variant names within their enum.
    /// - `(schema_id, template_id)` pairs are unique; versions are 1 or more.
    /// - Every field's `since` is between 1 and the message version and does not decrease in
    ///   declaration order (append-only evolution); a field with `since > 1` is optional.
    /// - Optionals do not nest; arrays have 1 to 65535 bytes; maxima are at most
    ///   `0xFFFF_FFFE`; enum and message references resolve.
    /// - The fixed block is at most 65535 bytes.
    /// - Enums have at least one variant; values are unique and fit the repr.
    /// - No message contains itself through required fields only (such a message would have
    ///   no finite encoding); recursion through optionals and lists is fine.
    pub fn validate(&self) -> Result<(), Error> {
        let mut names = BTreeSet::new();
        for def in &self.enums {
            check_ident("enum", &def.name)?;
            if !names.insert(def.name.as_str()) {
                return invalid(format!("duplicate name `{}`", def.name));
            }
            check_enum(def)?;
        }
        let mut ids = BTreeSet::new();
        for def in &self.messages {
            check_ident("message", &def.name)?;
            if !names.insert(def.name.as_str()) {
                return invalid(format!("duplicate name `{}`", def.name));
            }
            if !ids.insert((def.schema_id, def.template_id)) {
                return invalid(format!(
                    "message `{}` reuses schema {} template {}",
                    def.name, def.schema_id, def.template_id
                ));
            }
        }
        for def in &self.messages {
            self.check_message(def)?;
        }
        self.check_required_cycles()
    }

    fn check_message(&self, def: &MessageDef) -> Result<(), Error> {
        if def.version == 0 {
            return invalid(format!("message `{}` has version 0", def.name));
        }
        let mut field_names = BTreeSet::new();
        let mut since_last = 1;
        for field in &def.fields {
            check_ident("field", &field.name)?;
            let at = format!("field `{}` of `{}`", field.name, def.name);
            if !field_names.insert(field.name.as_str()) {
                return invalid(format!("duplicate {at}"));
            }
            if field.since == 0 || field.since > def.version {
                return invalid(format!(
                    "{at} has since {} outside 1..={}",
                    field.since, def.version
                ));
            }
            if field.since < since_last {
                return invalid(format!(
                    "{at} has since {} after a field with since {since_last}",
                    field.since
                ));
            }
            since_last = field.since;
            if field.since > 1 && !matches!(field.ty, Type::Optional(_)) {
                return invalid(format!(
                    "{at} was added in version {} and must be optional",
                    field.since
                ));
            }
            self.check_type(&field.ty, &at)?;
        }
        let block = def.block_length(def.version, &self.enums);
        if block > BLOCK_LENGTH_MAX {
            return invalid(format!(
                "message `{}` has a fixed block of {block} bytes",
                def.name
            ));
        }
        Ok(())
    }

    fn check_type(&self, ty: &Type, at: &str) -> Result<(), Error> {
        match ty {
            Type::Enum(name) if self.enum_def(name).is_none() => {
                return invalid(format!("{at} refers to unknown enum `{name}`"));
            }
            Type::Message(name) if self.message(name).is_none() => {
                return invalid(format!("{at} refers to unknown message `{name}`"));
            }
            Type::Array(0) => return invalid(format!("{at} is an empty array")),
            Type::Bytes { max } | Type::String { max } => check_max(*max, at)?,
            Type::List { item, max } => {
                check_max(*max, at)?;
                self.check_type(item, at)?;
            }
            Type::Optional(inner) => {
                if matches!(**inner, Type::Optional(_)) {
                    return invalid(format!("{at} is an optional of an optional"));
                }
                self.check_type(inner, at)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Finds a cycle of messages that contain each other through required fields.
    fn check_required_cycles(&self) -> Result<(), Error> {
        let index: BTreeMap<&str, usize> = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let edges: Vec<Vec<usize>> = self
            .messages
            .iter()
            .map(|m| {
                m.fields
                    .iter()
                    .filter_map(|f| match &f.ty {
                        Type::Message(name) => index.get(name.as_str()).copied(),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        // Iterative three-colour depth-first search: 0 unvisited, 1 on the stack, 2 done.
        let mut colour = alloc::vec![0u8; self.messages.len()];
        for root in 0..self.messages.len() {
            if colour[root] != 0 {
                continue;
            }
            let mut stack = alloc::vec![(root, 0usize)];
            colour[root] = 1;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&child) = edges[node].get(*next) {
                    *next += 1;
                    match colour[child] {
                        0 => {
                            colour[child] = 1;
                            stack.push((child, 0));
                        }
                        1 => {
                            return invalid(format!(
                                "message `{}` contains itself through required fields",
                                self.messages[child].name
                            ));
                        }
                        _ => {}
                    }
                } else {
                    colour[node] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }
}

fn check_enum(def: &EnumDef) -> Result<(), Error> {
    if def.variants.is_empty() {
        return invalid(format!("enum `{}` has no variants", def.name));
    }
    let mut names = BTreeSet::new();
    let mut values = BTreeSet::new();
    for variant in &def.variants {
        check_ident("variant", &variant.name)?;
        if !names.insert(variant.name.as_str()) {
            return invalid(format!(
                "enum `{}` repeats variant `{}`",
                def.name, variant.name
            ));
        }
        if !values.insert(variant.value) {
            return invalid(format!(
                "enum `{}` repeats value {}",
                def.name, variant.value
            ));
        }
        if variant.value > def.repr.max_value() {
            return invalid(format!(
                "enum `{}` value {} does not fit its repr",
                def.name, variant.value
            ));
        }
    }
    Ok(())
}

fn check_max(max: u32, at: &str) -> Result<(), Error> {
    if max > MESSAGE_LENGTH_MAX {
        return invalid(format!("{at} has maximum {max} above {MESSAGE_LENGTH_MAX}"));
    }
    Ok(())
}

fn check_ident(what: &str, name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let head_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !head_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid(format!("{what} name `{name}` is not an identifier"));
    }
    Ok(())
}

fn invalid<T>(message: String) -> Result<T, Error> {
    Err(Error::InvalidSchema(message))
}

/// Builds a schema by registering message and enum definitions once each, even when
/// messages refer to each other recursively. Used by the code `#[derive(Tpf)]` generates.
impl Schema {
    /// Adds the message `name` unless present, computing its fields with `fields` (which may
    /// register further definitions, including this one again). Returns whether it was added.
    pub fn register_message(
        &mut self,
        name: &str,
        ids: (u16, u16, u16),
        fields: impl FnOnce(&mut Schema) -> Vec<FieldDef>,
    ) -> bool {
        if self.message(name).is_some() {
            return false;
        }
        let (schema_id, template_id, version) = ids;
        let at = self.messages.len();
        self.messages.push(MessageDef {
            name: name.to_owned(),
            schema_id,
            template_id,
            version,
            fields: Vec::new(),
        });
        let fields = fields(self);
        self.messages[at].fields = fields;
        true
    }

    /// Adds the enum `def()` unless an enum called `name` is present.
    pub fn register_enum(&mut self, name: &str, def: impl FnOnce() -> EnumDef) {
        if self.enum_def(name).is_none() {
            self.enums.push(def());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn field(name: &str, ty: Type, since: u16) -> FieldDef {
        FieldDef {
            name: name.to_string(),
            ty,
            since,
        }
    }

    fn message(name: &str, template_id: u16, version: u16, fields: Vec<FieldDef>) -> MessageDef {
        MessageDef {
            name: name.to_string(),
            schema_id: 1,
            template_id,
            version,
            fields,
        }
    }

    fn reason(schema: &Schema) -> String {
        match schema.validate() {
            Err(Error::InvalidSchema(reason)) => reason,
            other => panic!("expected InvalidSchema, got {other:?}"),
        }
    }

    #[test]
    fn a_sound_schema_validates() {
        let schema = Schema {
            messages: vec![message(
                "Tree",
                1,
                2,
                vec![
                    field("value", Type::U32, 1),
                    field("kind", Type::Enum("Kind".into()), 1),
                    field(
                        "children",
                        Type::List {
                            item: Box::new(Type::Message("Tree".into())),
                            max: 4,
                        },
                        1,
                    ),
                    field("note", Type::Optional(Box::new(Type::String { max: 8 })), 2),
                ],
            )],
            enums: vec![EnumDef {
                name: "Kind".into(),
                repr: Repr::U16,
                variants: vec![
                    Variant {
                        name: "Leaf".into(),
                        value: 1,
                    },
                    Variant {
                        name: "Node".into(),
                        value: 500,
                    },
                ],
            }],
        };
        assert_eq!(schema.validate(), Ok(()));
        assert_eq!(schema.messages[0].block_length(1, &schema.enums), 6);
    }

    #[test]
    fn evolution_rules_are_enforced() {
        let late_required = Schema {
            messages: vec![message("M", 1, 2, vec![field("a", Type::U8, 2)])],
            enums: vec![],
        };
        assert!(reason(&late_required).contains("must be optional"));
        let opt = |t| Type::Optional(Box::new(t));
        let decreasing = Schema {
            messages: vec![message(
                "M",
                1,
                2,
                vec![field("a", opt(Type::U8), 2), field("b", Type::U8, 1)],
            )],
            enums: vec![],
        };
        assert!(reason(&decreasing).contains("after a field"));
        let future = Schema {
            messages: vec![message("M", 1, 1, vec![field("a", opt(Type::U8), 2)])],
            enums: vec![],
        };
        assert!(reason(&future).contains("outside"));
        let zero = Schema {
            messages: vec![message("M", 1, 0, vec![])],
            enums: vec![],
        };
        assert!(reason(&zero).contains("version 0"));
    }

    #[test]
    fn type_rules_are_enforced() {
        let one = |ty| Schema {
            messages: vec![message("M", 1, 1, vec![field("a", ty, 1)])],
            enums: vec![],
        };
        let nested = Type::Optional(Box::new(Type::Optional(Box::new(Type::U8))));
        assert!(reason(&one(nested)).contains("optional of an optional"));
        assert!(reason(&one(Type::Array(0))).contains("empty array"));
        assert!(reason(&one(Type::String { max: u32::MAX })).contains("maximum"));
        assert!(reason(&one(Type::Enum("Nope".into()))).contains("unknown enum"));
        assert!(reason(&one(Type::Message("Nope".into()))).contains("unknown message"));
        let wide = Schema {
            messages: vec![message(
                "M",
                1,
                1,
                vec![
                    field("a", Type::Array(60000), 1),
                    field("b", Type::Array(6000), 1),
                ],
            )],
            enums: vec![],
        };
        assert!(reason(&wide).contains("fixed block"));
    }

    #[test]
    fn names_and_ids_are_unique() {
        let dup = Schema {
            messages: vec![message("M", 1, 1, vec![]), message("M", 2, 1, vec![])],
            enums: vec![],
        };
        assert!(reason(&dup).contains("duplicate name"));
        let ids = Schema {
            messages: vec![message("A", 1, 1, vec![]), message("B", 1, 1, vec![])],
            enums: vec![],
        };
        assert!(reason(&ids).contains("reuses"));
        let fields = Schema {
            messages: vec![message(
                "M",
                1,
                1,
                vec![field("a", Type::U8, 1), field("a", Type::U8, 1)],
            )],
            enums: vec![],
        };
        assert!(reason(&fields).contains("duplicate field"));
        let ident = Schema {
            messages: vec![message("9x", 1, 1, vec![])],
            enums: vec![],
        };
        assert!(reason(&ident).contains("identifier"));
    }

    #[test]
    fn enum_rules_are_enforced() {
        let with = |variants| Schema {
            messages: vec![],
            enums: vec![EnumDef {
                name: "E".into(),
                repr: Repr::U8,
                variants,
            }],
        };
        assert!(reason(&with(vec![])).contains("no variants"));
        let v = |name: &str, value| Variant {
            name: name.into(),
            value,
        };
        assert!(reason(&with(vec![v("A", 1), v("B", 1)])).contains("repeats value"));
        assert!(reason(&with(vec![v("A", 1), v("A", 2)])).contains("repeats variant"));
        assert!(reason(&with(vec![v("A", 256)])).contains("does not fit"));
    }

    #[test]
    fn required_cycles_are_refused() {
        let schema = Schema {
            messages: vec![
                message("A", 1, 1, vec![field("b", Type::Message("B".into()), 1)]),
                message("B", 2, 1, vec![field("a", Type::Message("A".into()), 1)]),
            ],
            enums: vec![],
        };
        assert!(reason(&schema).contains("contains itself"));
        let through_optional = Schema {
            messages: vec![
                message("A", 1, 1, vec![field("b", Type::Message("B".into()), 1)]),
                message(
                    "B",
                    2,
                    1,
                    vec![field(
                        "a",
                        Type::Optional(Box::new(Type::Message("A".into()))),
                        1,
                    )],
                ),
            ],
            enums: vec![],
        };
        assert_eq!(through_optional.validate(), Ok(()));
    }
}
