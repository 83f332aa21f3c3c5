//! Goal: the Rust TPF implementation matches the golden vectors of `spec/vectors/tpf/`, which
//! were produced from the spec by an independent encoder (`spec/tools/tpf_vectors.py`).
//!
//! Method: load every vector; for a valid one, decode it with the dynamic codec built from the
//! vector's own schema, compare every field with the expected values, re-encode and compare
//! byte for byte (with `reencoded_hex` when the payload is newer than the reader); for an
//! invalid one, check that decoding fails with the named error. Then do the same with the
//! derived Rust type whose schema is the vector's, so the derive agrees with the vectors too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use tamtam_tpf::dynamic::{Codec, MessageValue, Value};
use tamtam_tpf::schema::{Schema, Type};
use tamtam_tpf::testing::*;
use tamtam_tpf::{Error, TpfMessage};

/// One vector file; see `spec/vectors/README.md`, section "TPF vectors".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    description: String,
    schema: Schema,
    message: String,
    hex: String,
    #[serde(default)]
    decoded: Option<Json>,
    #[serde(default)]
    reencoded_hex: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_field: Option<String>,
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors/tpf")
}

fn load_vectors() -> Vec<(String, Vector)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("spec/vectors/tpf exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable vector");
            let vector: Vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                vector,
            )
        })
        .collect()
}

/// Converts an expected value from the vector JSON form to a dynamic value of type `ty`.
fn json_value(schema: &Schema, ty: &Type, json: &Json) -> Value {
    let int = || {
        json.as_u64()
            .map(i128::from)
            .or_else(|| json.as_i64().map(i128::from))
            .unwrap_or_else(|| panic!("integer expected, got {json}"))
    };
    let hex = || hex::decode(json.as_str().expect("hex string expected")).expect("valid hex");
    let bits = || {
        let text = json.as_str().expect("float bits expected");
        u64::from_str_radix(text.strip_prefix("0x").expect("0x prefix"), 16).expect("hex bits")
    };
    match ty {
        Type::U8 => Value::U8(int().try_into().unwrap()),
        Type::U16 => Value::U16(int().try_into().unwrap()),
        Type::U32 => Value::U32(int().try_into().unwrap()),
        Type::U64 => Value::U64(int().try_into().unwrap()),
        Type::I8 => Value::I8(int().try_into().unwrap()),
        Type::I16 => Value::I16(int().try_into().unwrap()),
        Type::I32 => Value::I32(int().try_into().unwrap()),
        Type::I64 => Value::I64(int().try_into().unwrap()),
        Type::F32 => Value::F32(f32::from_bits(bits().try_into().unwrap())),
        Type::F64 => Value::F64(f64::from_bits(bits())),
        Type::Bool => Value::Bool(json.as_bool().expect("bool expected")),
        Type::Enum(name) => {
            let def = schema.enum_def(name).expect("enum in schema");
            let variant = json.as_str().expect("variant name expected");
            Value::Enum(
                def.variants
                    .iter()
                    .find(|v| v.name == variant)
                    .expect("known variant")
                    .value,
            )
        }
        Type::Array(_) => Value::Array(hex()),
        Type::Bytes { .. } => Value::Bytes(hex()),
        Type::String { .. } => Value::String(json.as_str().expect("string expected").to_owned()),
        Type::Optional(inner) => match json {
            Json::Null => Value::None,
            json => Value::Some(Box::new(json_value(schema, inner, json))),
        },
        Type::List { item, .. } => Value::List(
            json.as_array()
                .expect("array expected")
                .iter()
                .map(|j| json_value(schema, item, j))
                .collect(),
        ),
        Type::Message(name) => Value::Message(json_message(schema, name, json)),
    }
}

/// Converts `{"version": v, "fields": {..}}` to a message value; every field of the
/// definition must be given.
fn json_message(schema: &Schema, name: &str, json: &Json) -> MessageValue {
    let def = schema.message(name).expect("message in schema");
    let version = json["version"].as_u64().expect("version") as u16;
    let fields = json["fields"].as_object().expect("fields object");
    assert_eq!(
        fields.len(),
        def.fields.len(),
        "message {name}: every field has an expected value"
    );
    let values = def
        .fields
        .iter()
        .map(|field| {
            let json = fields
                .get(&field.name)
                .unwrap_or_else(|| panic!("no expected value for `{}`", field.name));
            json_value(schema, &field.ty, json)
        })
        .collect();
    MessageValue {
        version,
        fields: values,
    }
}

/// The same value with every message at its definition's current version, which is what a
/// derived type (always encoding at its own version) produces.
fn at_current_versions(schema: &Schema, ty: &Type, value: &mut Value) {
    match (ty, value) {
        (Type::Message(name), Value::Message(message)) => {
            message_at_current_versions(schema, name, message)
        }
        (Type::Optional(inner), Value::Some(value)) => at_current_versions(schema, inner, value),
        (Type::List { item, .. }, Value::List(items)) => items
            .iter_mut()
            .for_each(|value| at_current_versions(schema, item, value)),
        _ => {}
    }
}

fn message_at_current_versions(schema: &Schema, name: &str, message: &mut MessageValue) {
    let def = schema.message(name).expect("message in schema");
    message.version = def.version;
    for (field, value) in def.fields.iter().zip(&mut message.fields) {
        at_current_versions(schema, &field.ty, value);
    }
}

/// What the derived code made of a payload: the value (as a dynamic value) and its
/// re-encoding, or the error; checked to be the same through `decode` and through `view`.
type DerivedOutcome = Result<(Value, Vec<u8>), Error>;

/// Decodes a payload with one derived type.
type DerivedDecoder = fn(&[u8]) -> DerivedOutcome;

fn derived<M: TpfMessage + std::fmt::Debug>(bytes: &[u8]) -> DerivedOutcome {
    let decoded = M::decode(bytes);
    let viewed = M::view(bytes).map(M::from_view);
    match (decoded, viewed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.to_value(), b.to_value(), "decode and view disagree");
            let bytes = a.encode_to_vec().expect("a decoded value re-encodes");
            Ok((a.to_value(), bytes))
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "decode and view disagree");
            Err(a)
        }
        (a, b) => panic!("decode and view disagree: {a:?} / {b:?}"),
    }
}

/// The derived test types, each with its schema.
fn derived_types() -> Vec<(Schema, DerivedDecoder)> {
    let mut types: Vec<(Schema, DerivedDecoder)> = Vec::new();
    macro_rules! add {
        ($($t:ty),*) => {$( types.push((<$t>::schema().normalized(), derived::<$t>)); )*};
    }
    add!(
        Scalars, Blobs, Point, Optionals, Lists, Tree, OrderV1, OrderV2, EnvelopeV1, EnvelopeV2,
        Tick, Batch
    );
    types
}

fn check_valid(vector: &Vector, codec: &Codec, bytes: &[u8]) -> Result<MessageValue, String> {
    let expected = json_message(
        &vector.schema,
        &vector.message,
        vector.decoded.as_ref().unwrap(),
    );
    let decoded = codec
        .decode_as(&vector.message, bytes)
        .map_err(|e| format!("decode failed: {e} ({})", e.name()))?;
    let def = vector.schema.message(&vector.message).unwrap();
    for ((field, got), want) in def.fields.iter().zip(&decoded.fields).zip(&expected.fields) {
        if got != want {
            return Err(format!(
                "field `{}`: decoded {got:?}, expected {want:?}",
                field.name
            ));
        }
    }
    if decoded != expected {
        return Err(format!("decoded {decoded:?}, expected {expected:?}"));
    }
    let (name, any) = codec
        .decode(bytes)
        .map_err(|e| format!("decode by header failed: {e}"))?;
    if name != vector.message || any != decoded {
        return Err(format!("decode by header gave {name} {any:?}"));
    }
    let want = match &vector.reencoded_hex {
        Some(reencoded) => hex::decode(reencoded).map_err(|e| e.to_string())?,
        None => bytes.to_vec(),
    };
    let again = codec
        .encode_to_vec(&vector.message, &decoded)
        .map_err(|e| format!("re-encode failed: {e}"))?;
    if again != want {
        return Err(format!(
            "re-encoded {}, expected {}",
            hex::encode(&again),
            hex::encode(&want)
        ));
    }
    let from_expected = codec
        .encode_to_vec(&vector.message, &expected)
        .map_err(|e| format!("encode failed: {e}"))?;
    if from_expected != want {
        return Err(format!(
            "encoding the expected value gave {}",
            hex::encode(&from_expected)
        ));
    }
    Ok(decoded)
}

fn check_invalid(vector: &Vector, codec: &Codec, bytes: &[u8]) -> Result<Error, String> {
    let expected = vector.error.as_deref().unwrap();
    let error = match codec.decode_as(&vector.message, bytes) {
        Ok(value) => return Err(format!("decoded {value:?}, expected error {expected}")),
        Err(error) => error,
    };
    if error.name() != expected {
        return Err(format!(
            "error {error:?} ({}), expected {expected}",
            error.name()
        ));
    }
    if let Some(field) = &vector.error_field
        && error.field() != Some(field.as_str())
    {
        return Err(format!(
            "error names field {:?}, expected {field}",
            error.field()
        ));
    }
    match codec.decode(bytes) {
        Err(by_header) if by_header == error => Ok(error),
        other => Err(format!(
            "decode by header gave {other:?}, expected {error:?}"
        )),
    }
}

fn check_derived(
    vector: &Vector,
    bytes: &[u8],
    outcome: &Result<MessageValue, Error>,
    decode: DerivedDecoder,
) -> Result<(), String> {
    match (decode(bytes), outcome) {
        (Ok((value, reencoded)), Ok(expected)) => {
            let mut current = Value::Message(expected.clone());
            at_current_versions(
                &vector.schema,
                &Type::Message(vector.message.clone()),
                &mut current,
            );
            if value != current {
                return Err(format!("derived decoded {value:?}, expected {current:?}"));
            }
            let Value::Message(current) = current else {
                unreachable!()
            };
            let codec = Codec::new(&vector.schema).unwrap();
            let want = codec.encode_to_vec(&vector.message, &current).unwrap();
            if reencoded != want {
                return Err(format!(
                    "derived re-encoded {}, expected {}",
                    hex::encode(reencoded),
                    hex::encode(want)
                ));
            }
            Ok(())
        }
        (Err(error), Err(expected)) if &error == expected => Ok(()),
        (got, want) => Err(format!("derived gave {got:?}, dynamic gave {want:?}")),
    }
}

#[test]
fn every_vector_decodes_as_specified() {
    let vectors = load_vectors();
    let derived = derived_types();
    let mut failures = Vec::new();
    for (file, vector) in &vectors {
        assert!(!vector.description.is_empty(), "{file}: description");
        assert!(
            file.ends_with(&format!("{}.json", vector.name)),
            "{file}: file named after the vector"
        );
        assert!(
            vector.decoded.is_some() != vector.error.is_some(),
            "{file}: a vector has either `decoded` or `error`"
        );
        let codec = Codec::new(&vector.schema).unwrap_or_else(|e| panic!("{file}: schema: {e}"));
        let bytes = hex::decode(&vector.hex).unwrap_or_else(|e| panic!("{file}: hex: {e}"));
        // What the dynamic codec made of the vector: the value, or the expected error.
        let checked = if vector.decoded.is_some() {
            check_valid(vector, &codec, &bytes).map(Ok)
        } else {
            check_invalid(vector, &codec, &bytes).map(Err)
        };
        let outcome = match checked {
            Ok(outcome) => outcome,
            Err(message) => {
                failures.push(format!("{file}: {message}"));
                continue;
            }
        };
        // The derived type with the vector's schema must agree.
        let normalized = vector.schema.normalized();
        match derived.iter().find(|(schema, _)| *schema == normalized) {
            Some((_, decode)) => {
                if let Err(message) = check_derived(vector, &bytes, &outcome, *decode) {
                    failures.push(format!("{file}: {message}"));
                }
            }
            None => failures.push(format!("{file}: no derived test type has this schema")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

/// Collects the kinds of the types in `ty`.
fn kinds(ty: &Type, out: &mut std::collections::BTreeSet<&'static str>) {
    out.insert(ty.kind());
    match ty {
        Type::Optional(inner) | Type::List { item: inner, .. } => kinds(inner, out),
        _ => {}
    }
}

#[test]
fn the_vectors_cover_the_format() {
    let vectors = load_vectors();
    let valid: Vec<&Vector> = vectors
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.decoded.is_some())
        .collect();
    let invalid: Vec<&Vector> = vectors
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.error.is_some())
        .collect();
    assert!(
        vectors.len() >= 30,
        "at least 30 vectors, found {}",
        vectors.len()
    );
    assert!(
        invalid.len() >= 12,
        "at least 12 invalid vectors, found {}",
        invalid.len()
    );

    // Every type appears in a valid vector.
    let mut seen = std::collections::BTreeSet::new();
    for vector in &valid {
        let def = vector.schema.message(&vector.message).unwrap();
        def.fields.iter().for_each(|f| kinds(&f.ty, &mut seen));
    }
    let all = [
        "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64", "bool", "enum",
        "array", "bytes", "string", "optional", "list", "message",
    ];
    for kind in all {
        assert!(
            seen.contains(kind),
            "no valid vector has a field of type {kind}"
        );
    }

    // Every decoding error has an invalid vector.
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for vector in &invalid {
        *errors.entry(vector.error.as_deref().unwrap()).or_default() += 1;
    }
    let decoding_errors = [
        "Truncated",
        "BadLength",
        "BadBlockLength",
        "UnknownSchema",
        "UnknownTemplate",
        "InvalidVersion",
        "FieldTooLong",
        "InvalidUtf8",
        "InvalidEnum",
        "InvalidBool",
        "InvalidPresence",
        "NonCanonical",
        "TrailingBytes",
        "DepthExceeded",
    ];
    for error in decoding_errors {
        assert!(
            errors.contains_key(error),
            "no invalid vector expects {error}"
        );
    }

    // Evolution both ways, and re-encoding at another version.
    assert!(
        valid.iter().any(|v| v.reencoded_hex.is_some()),
        "a newer payload read by an older reader"
    );
    assert!(
        valid.iter().any(|v| {
            let version = v.decoded.as_ref().unwrap()["version"].as_u64().unwrap();
            version < u64::from(v.schema.message(&v.message).unwrap().version)
        }),
        "an older payload read by a newer reader"
    );
}

/// Every vector's bytes are a seed of the fuzzer, so the fuzzer starts from valid and
/// nearly-valid inputs of every shape.
#[test]
fn the_fuzz_seeds_are_the_vectors() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/tpf_decode");
    for (file, vector) in load_vectors() {
        let seed = seeds.join(file.trim_end_matches(".json"));
        let bytes = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        assert_eq!(hex::encode(bytes), vector.hex, "{}", seed.display());
    }
}
