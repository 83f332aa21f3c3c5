//! Goal: round trips hold for every value, not just hand-picked ones, and the decoders agree
//! on arbitrary input. Method: proptest strategies for each test schema, for random schemas
//! with random values (dynamic codec), and for valid encodings with random damage.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::collection::vec as vec_of;
use proptest::prelude::*;

use super::{decode_all, round_trip};
use crate::dynamic::{Codec, MessageValue, Value};
use crate::schema::{EnumDef, FieldDef, MessageDef, Repr, Schema, Type, Variant};
use crate::testing::*;
use crate::{Error, TpfMessage};

fn text(max_bytes: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex("\\PC{0,8}")
        .unwrap()
        .prop_map(move |s| {
            let mut end = s.len().min(max_bytes);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            String::from(&s[..end])
        })
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Low), Just(Level::Mid), Just(Level::High)]
}

fn scalars() -> impl Strategy<Value = Scalars> {
    (
        (
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
        ),
        (any::<u32>(), any::<u64>(), any::<bool>(), side(), level()),
    )
        .prop_map(
            |(
                (byte, short, word, long, sbyte, sshort, sword, slong),
                (single, double, flag, side, level),
            )| Scalars {
                byte,
                short,
                word,
                long,
                sbyte,
                sshort,
                sword,
                slong,
                single: f32::from_bits(single),
                double: f64::from_bits(double),
                flag,
                side,
                level,
            },
        )
}

fn point() -> impl Strategy<Value = Point> {
    (any::<i32>(), any::<i32>()).prop_map(|(x, y)| Point { x, y })
}

fn blobs() -> impl Strategy<Value = Blobs> {
    (any::<[u8; 4]>(), vec_of(any::<u8>(), 0..=16), text(16)).prop_map(|(tag, data, name)| Blobs {
        tag,
        data,
        name,
    })
}

fn optionals() -> impl Strategy<Value = Optionals> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(side()),
        proptest::option::of(any::<[u8; 2]>()),
        proptest::option::of(text(8)),
        proptest::option::of(vec_of(any::<u8>(), 0..=4)),
        proptest::option::of(point()),
    )
        .prop_map(|(count, flag, side, tag, label, data, point)| Optionals {
            count,
            flag,
            side,
            tag,
            label,
            data,
            point,
        })
}

fn lists() -> impl Strategy<Value = Lists> {
    (
        vec_of(any::<u16>(), 0..=4),
        vec_of(text(8), 0..=3),
        vec_of(point(), 0..=3),
        vec_of(proptest::option::of(any::<u8>()), 0..=3),
        vec_of(vec_of(any::<i8>(), 0..=2), 0..=2),
        vec_of(side(), 0..=2),
    )
        .prop_map(|(numbers, words, points, maybe, matrix, sides)| Lists {
            numbers,
            words,
            points,
            maybe,
            matrix,
            sides,
        })
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = any::<u32>().prop_map(|value| Tree {
        value,
        children: vec![],
    });
    leaf.prop_recursive(5, 32, 4, |inner| {
        (any::<u32>(), vec_of(inner, 0..=4)).prop_map(|(value, children)| Tree { value, children })
    })
}

fn order_v2() -> impl Strategy<Value = OrderV2> {
    (
        any::<u64>(),
        text(16),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text(16)),
    )
        .prop_map(|(id, symbol, qty, note)| OrderV2 {
            id,
            symbol,
            qty,
            note,
        })
}

fn envelope() -> impl Strategy<Value = EnvelopeV2> {
    (any::<u32>(), order_v2(), vec_of(order_v2(), 0..=2)).prop_map(|(seq, order, history)| {
        EnvelopeV2 {
            seq,
            order,
            history,
        }
    })
}

/// Accepted input re-encodes to itself, unless a message in it is from a newer version than
/// the reader's; then the re-encoding is a fixed point.
fn check_canonical<M: TpfMessage + core::fmt::Debug>(bytes: &[u8]) {
    if let Ok(decoded) = decode_all::<M>(bytes) {
        let again = decoded.encode_to_vec().unwrap();
        if again != bytes {
            let twice = M::decode(&again).unwrap().encode_to_vec().unwrap();
            assert_eq!(twice, again);
        }
    }
}

/// Damages `bytes`: overwrites a few bytes, truncates or extends.
fn damage(bytes: &mut Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) {
    for &(at, value) in edits {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] = value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes.extend_from_slice(extra);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn scalars_round_trip(value in scalars()) { round_trip(&value); }

    #[test]
    fn blobs_round_trip(value in blobs()) { round_trip(&value); }

    #[test]
    fn optionals_round_trip(value in optionals()) { round_trip(&value); }

    #[test]
    fn lists_round_trip(value in lists()) { round_trip(&value); }

    #[test]
    fn trees_round_trip(value in tree()) { round_trip(&value); }

    #[test]
    fn envelopes_round_trip(value in envelope()) {
        let bytes = round_trip(&value);
        // Version 1 of the envelope reads the same bytes, skipping what it does not know.
        let old = decode_all::<EnvelopeV1>(&bytes).unwrap();
        prop_assert_eq!(old.order.id, value.order.id);
        prop_assert_eq!(old.history.len(), value.history.len());
    }

    #[test]
    fn damaged_payloads_are_refused_or_canonical(
        value in optionals(),
        edits in vec_of((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        extra in vec_of(any::<u8>(), 0..3),
    ) {
        let mut bytes = value.encode_to_vec().unwrap();
        damage(&mut bytes, &edits, cut, &extra);
        check_canonical::<Optionals>(&bytes);
    }

    #[test]
    fn damaged_lists_are_refused_or_canonical(
        value in lists(),
        edits in vec_of((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        extra in vec_of(any::<u8>(), 0..3),
    ) {
        let mut bytes = value.encode_to_vec().unwrap();
        damage(&mut bytes, &edits, cut, &extra);
        check_canonical::<Lists>(&bytes);
    }

    #[test]
    fn damaged_envelopes_are_refused_or_canonical(
        value in envelope(),
        edits in vec_of((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        extra in vec_of(any::<u8>(), 0..3),
    ) {
        let mut bytes = value.encode_to_vec().unwrap();
        damage(&mut bytes, &edits, cut, &extra);
        check_canonical::<EnvelopeV2>(&bytes);
        check_canonical::<EnvelopeV1>(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec_of(any::<u8>(), 0..64)) {
        check_canonical::<Scalars>(&bytes);
        check_canonical::<Tree>(&bytes);
        check_canonical::<Point>(&bytes);
    }
}

// Random schemas, for the dynamic codec: a root message with random field types (including
// an enum, a nested message, optionals, lists of anything), and random values for them.

fn leaf_type() -> impl Strategy<Value = Type> {
    prop_oneof![
        Just(Type::U8),
        Just(Type::U16),
        Just(Type::U32),
        Just(Type::U64),
        Just(Type::I8),
        Just(Type::I16),
        Just(Type::I32),
        Just(Type::I64),
        Just(Type::F32),
        Just(Type::F64),
        Just(Type::Bool),
        Just(Type::Enum("Code".into())),
        (1u16..5).prop_map(Type::Array),
        (0u32..6).prop_map(|max| Type::Bytes { max }),
        (0u32..6).prop_map(|max| Type::String { max }),
        Just(Type::Message("Leaf".into())),
    ]
}

fn any_type() -> impl Strategy<Value = Type> {
    leaf_type().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_filter_map("optionals do not nest", |t| match t {
                    Type::Optional(_) => None,
                    t => Some(Type::Optional(Box::new(t))),
                }),
            (inner, 0u32..4).prop_map(|(item, max)| Type::List {
                item: Box::new(item),
                max
            }),
        ]
    })
}

fn random_schema(types: Vec<Type>) -> Schema {
    let fields = types
        .into_iter()
        .enumerate()
        .map(|(i, ty)| FieldDef {
            name: alloc::format!("f{i}"),
            ty,
            since: 1,
        })
        .collect();
    Schema {
        messages: vec![
            MessageDef {
                name: "Root".into(),
                schema_id: 3,
                template_id: 1,
                version: 1,
                fields,
            },
            MessageDef {
                name: "Leaf".into(),
                schema_id: 3,
                template_id: 2,
                version: 1,
                fields: vec![
                    FieldDef {
                        name: "a".into(),
                        ty: Type::U8,
                        since: 1,
                    },
                    FieldDef {
                        name: "b".into(),
                        ty: Type::Optional(Box::new(Type::String { max: 3 })),
                        since: 1,
                    },
                ],
            },
        ],
        enums: vec![EnumDef {
            name: "Code".into(),
            repr: Repr::U16,
            variants: vec![
                Variant {
                    name: "Zero".into(),
                    value: 0,
                },
                Variant {
                    name: "Seven".into(),
                    value: 7,
                },
                Variant {
                    name: "Top".into(),
                    value: 65535,
                },
            ],
        }],
    }
}

fn value_of(ty: &Type) -> BoxedStrategy<Value> {
    match ty {
        Type::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        Type::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        Type::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        Type::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        Type::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        Type::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        Type::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        Type::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        Type::F32 => any::<u32>()
            .prop_map(|b| Value::F32(f32::from_bits(b)))
            .boxed(),
        Type::F64 => any::<u64>()
            .prop_map(|b| Value::F64(f64::from_bits(b)))
            .boxed(),
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Enum(_) => prop_oneof![Just(0u64), Just(7), Just(65535)]
            .prop_map(Value::Enum)
            .boxed(),
        Type::Array(len) => vec_of(any::<u8>(), *len as usize)
            .prop_map(Value::Array)
            .boxed(),
        Type::Bytes { max } => vec_of(any::<u8>(), 0..=*max as usize)
            .prop_map(Value::Bytes)
            .boxed(),
        Type::String { max } => text(*max as usize).prop_map(Value::String).boxed(),
        Type::Optional(inner) => proptest::option::of(value_of(inner))
            .prop_map(|v| v.map_or(Value::None, |v| Value::Some(Box::new(v))))
            .boxed(),
        Type::List { item, max } => vec_of(value_of(item), 0..=*max as usize)
            .prop_map(Value::List)
            .boxed(),
        Type::Message(_) => (any::<u8>(), proptest::option::of(text(3)))
            .prop_map(|(a, b)| {
                let b = b.map_or(Value::None, |b| Value::Some(Box::new(Value::String(b))));
                Value::Message(MessageValue {
                    version: 1,
                    fields: vec![Value::U8(a), b],
                })
            })
            .boxed(),
    }
}

fn schema_and_value() -> impl Strategy<Value = (Schema, MessageValue)> {
    vec_of(any_type(), 1..6).prop_flat_map(|types| {
        let values: Vec<BoxedStrategy<Value>> = types.iter().map(value_of).collect();
        (Just(random_schema(types)), values)
            .prop_map(|(schema, fields)| (schema, MessageValue { version: 1, fields }))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_schemas_round_trip((schema, value) in schema_and_value()) {
        let codec = Codec::new(&schema).unwrap();
        let bytes = codec.encode_to_vec("Root", &value).unwrap();
        prop_assert_eq!(codec.encoded_len("Root", &value), Ok(bytes.len()));
        let (name, decoded) = codec.decode(&bytes).unwrap();
        prop_assert_eq!(name, "Root");
        prop_assert_eq!(&decoded, &value);
        prop_assert_eq!(codec.encode_to_vec("Root", &decoded).unwrap(), bytes.clone());
        // Every strict prefix is refused.
        for cut in 0..bytes.len() {
            prop_assert!(codec.decode(&bytes[..cut]).is_err());
        }
        // A buffer one byte short is refused.
        let mut short = vec![0u8; bytes.len() - 1];
        prop_assert_eq!(
            codec.encode("Root", &value, &mut short),
            Err(Error::BufferTooSmall { needed: bytes.len(), had: bytes.len() - 1 })
        );
    }
}
