#!/usr/bin/env python3
"""Generates the TPF v1 golden vectors (spec/vectors/tpf/*.json) and the fuzzer's seed corpus
(fuzz/seeds/tpf_decode/*).

This is a second, independent implementation of the encoding rules of
spec/payload/TPF-v1.md, written from the text of the spec and sharing no code with the Rust
crate: valid vectors are encoded here from a schema and a value; invalid ones are valid
encodings with one rule broken by hand. tests/tests/tpf_vectors.rs then checks the Rust
implementation against every vector.

Run from the repository root:  python3 spec/tools/tpf_vectors.py
The output is deterministic; commit the regenerated files.
"""

import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.join(ROOT, "spec", "vectors", "tpf")
SEEDS = os.path.join(ROOT, "fuzz", "seeds", "tpf_decode")

ABSENT = 0xFFFFFFFF

# ---------------------------------------------------------------------------------------------
# Test schemas (section "Test schemas" of the spec; tamtam_tpf::testing in Rust)
# ---------------------------------------------------------------------------------------------

SIDE = {"name": "Side", "repr": "u8", "variants": [{"name": "Buy", "value": 1}, {"name": "Sell", "value": 2}]}
LEVEL = {
    "name": "Level",
    "repr": "u16",
    "variants": [{"name": "Low", "value": 0}, {"name": "Mid", "value": 500}, {"name": "High", "value": 1000}],
}


def field(name, ty, since=1):
    f = {"name": name, "type": ty}
    if since != 1:
        f["since"] = since
    return f


def message(name, schema_id, template_id, version, fields):
    return {"name": name, "schema_id": schema_id, "template_id": template_id, "version": version, "fields": fields}


def opt(t):
    return {"optional": t}


def string(m):
    return {"string": {"max": m}}


def bytes_(m):
    return {"bytes": {"max": m}}


def lst(item, m):
    return {"list": {"item": item, "max": m}}


def msg(name):
    return {"message": name}


SCALARS = message("Scalars", 1, 1, 1, [
    field("byte", "u8"), field("short", "u16"), field("word", "u32"), field("long", "u64"),
    field("sbyte", "i8"), field("sshort", "i16"), field("sword", "i32"), field("slong", "i64"),
    field("single", "f32"), field("double", "f64"), field("flag", "bool"),
    field("side", {"enum": "Side"}), field("level", {"enum": "Level"}),
])
BLOBS = message("Blobs", 1, 2, 1, [field("tag", {"array": 4}), field("data", bytes_(16)), field("name", string(16))])
POINT = message("Point", 1, 3, 1, [field("x", "i32"), field("y", "i32")])
OPTIONALS = message("Optionals", 1, 4, 1, [
    field("count", opt("u32")), field("flag", opt("bool")), field("side", opt({"enum": "Side"})),
    field("tag", opt({"array": 2})), field("label", opt(string(8))), field("data", opt(bytes_(4))),
    field("point", opt(msg("Point"))),
])
LISTS = message("Lists", 1, 5, 1, [
    field("numbers", lst("u16", 4)), field("words", lst(string(8), 3)), field("points", lst(msg("Point"), 3)),
    field("maybe", lst(opt("u8"), 3)), field("matrix", lst(lst("i8", 2), 2)),
    field("sides", lst({"enum": "Side"}, 2)),
])
TREE = message("Tree", 1, 6, 1, [field("value", "u32"), field("children", lst(msg("Tree"), 4))])
ORDER_V1 = message("Order", 1, 7, 1, [field("id", "u64"), field("symbol", string(16))])
ORDER_V2 = message("Order", 1, 7, 2, [
    field("id", "u64"), field("symbol", string(16)), field("qty", opt("u32"), 2), field("note", opt(string(16)), 2),
])
# Version 3 exists only here, as a writer from the future: it appends a u16 and two parts.
ORDER_V3 = message("Order", 1, 7, 3, ORDER_V2["fields"] + [
    field("code", opt("u16"), 3), field("memo", opt(string(16)), 3), field("tags", opt(lst(string(8), 4)), 3),
])
ENVELOPE = message("Envelope", 1, 8, 1, [field("seq", "u32"), field("order", msg("Order")), field("history", lst(msg("Order"), 2))])
TICK = message("Tick", 2, 1, 1, [
    field("id", "u64"), field("price", "i64"), field("qty", "u32"), field("side", {"enum": "Side"}),
    field("flags", "u8"), field("live", "bool"), field("symbol", string(16)),
])


def schema(messages, enums=()):
    return {"messages": list(messages), "enums": list(enums)}


S_SCALARS = schema([SCALARS], [SIDE, LEVEL])
S_BLOBS = schema([BLOBS])
S_POINT = schema([POINT])
S_OPTIONALS = schema([OPTIONALS, POINT], [SIDE])
S_LISTS = schema([LISTS, POINT], [SIDE])
S_TREE = schema([TREE])
S_ORDER_V1 = schema([ORDER_V1])
S_ORDER_V2 = schema([ORDER_V2])
S_ORDER_V3 = schema([ORDER_V3])
S_ENVELOPE_V1 = schema([ENVELOPE, ORDER_V1])
S_ENVELOPE_V2 = schema([ENVELOPE, ORDER_V2])
S_TICK = schema([TICK], [SIDE])

# ---------------------------------------------------------------------------------------------
# The encoder, from the spec
# ---------------------------------------------------------------------------------------------

SCALAR = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i8": "<b", "i16": "<h", "i32": "<i", "i64": "<q", "bool": "<B"}
REPR = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q"}


def find(items, name):
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(name)


def fixed_size(sch, t):
    """Bytes of a fixed-size type, or None for a variable type."""
    if isinstance(t, str):
        return {"u8": 1, "i8": 1, "bool": 1, "u16": 2, "i16": 2, "u32": 4, "i32": 4, "f32": 4,
                "u64": 8, "i64": 8, "f64": 8}[t]
    (kind, arg), = t.items()
    if kind == "enum":
        return struct.calcsize(REPR[find(sch["enums"], arg)["repr"]])
    if kind == "array":
        return arg
    if kind == "optional":
        inner = fixed_size(sch, arg)
        return None if inner is None else 1 + inner
    return None


def enc_fixed(sch, t, v):
    if isinstance(t, str):
        if t in ("f32", "f64"):
            bits = int(v, 16)
            return struct.pack("<I" if t == "f32" else "<Q", bits)
        if t == "bool":
            return bytes([1 if v else 0])
        return struct.pack(SCALAR[t], v)
    (kind, arg), = t.items()
    if kind == "enum":
        e = find(sch["enums"], arg)
        return struct.pack(REPR[e["repr"]], find(e["variants"], v)["value"])
    if kind == "array":
        b = bytes.fromhex(v)
        assert len(b) == arg
        return b
    if kind == "optional":
        if v is None:
            return bytes(fixed_size(sch, t))
        return b"\x01" + enc_fixed(sch, arg, v)
    raise ValueError(t)


def part(content):
    return struct.pack("<I", len(content)) + content


def enc_part(sch, t, v):
    (kind, arg), = t.items()
    if kind == "optional":
        return struct.pack("<I", ABSENT) if v is None else enc_part(sch, arg, v)
    if kind == "bytes":
        b = bytes.fromhex(v)
        assert len(b) <= arg["max"]
        return part(b)
    if kind == "string":
        b = v.encode("utf-8")
        assert len(b) <= arg["max"]
        return part(b)
    if kind == "list":
        assert len(v) <= arg["max"]
        item = arg["item"]
        if fixed_size(sch, item) is not None:
            return part(b"".join(enc_fixed(sch, item, x) for x in v))
        return part(b"".join(enc_part(sch, item, x) for x in v))
    if kind == "message":
        return enc_message(sch, arg, v)
    raise ValueError(t)


def header(length, schema_id, template_id, version, block_length):
    return struct.pack("<IHHHH", length, schema_id, template_id, version, block_length)


def enc_message(sch, name, value):
    """value = {"version": v, "fields": {name: value}}; fields with since > version are omitted."""
    m = find(sch["messages"], name)
    version = value["version"]
    fields = [f for f in m["fields"] if f.get("since", 1) <= version]
    block = b"".join(enc_fixed(sch, f["type"], value["fields"][f["name"]]) for f in fields
                     if fixed_size(sch, f["type"]) is not None)
    parts = b"".join(enc_part(sch, f["type"], value["fields"][f["name"]]) for f in fields
                     if fixed_size(sch, f["type"]) is None)
    return header(8 + len(block) + len(parts), m["schema_id"], m["template_id"], version, len(block)) + block + parts


def raw_message(schema_id, template_id, version, block, parts=b"", block_length=None):
    """A message from raw pieces, for the invalid vectors."""
    if block_length is None:
        block_length = len(block)
    return header(8 + len(block) + len(parts), schema_id, template_id, version, block_length) + block + parts


def mv(version, **fields):
    return {"version": version, "fields": fields}


# ---------------------------------------------------------------------------------------------
# The vectors
# ---------------------------------------------------------------------------------------------

VECTORS_OUT = []


def valid(name, description, sch, root, data, decoded, reencoded=None):
    v = {"name": name, "description": description, "schema": sch, "message": root, "hex": data.hex(), "decoded": decoded}
    if reencoded is not None:
        v["reencoded_hex"] = reencoded.hex()
    VECTORS_OUT.append(v)


def invalid(name, description, sch, root, data, error, error_field=None):
    v = {"name": name, "description": description, "schema": sch, "message": root, "hex": data.hex(), "error": error}
    if error_field is not None:
        v["error_field"] = error_field
    VECTORS_OUT.append(v)


def f32(x):
    return "0x%08x" % struct.unpack("<I", struct.pack("<f", x))[0]


def f64(x):
    return "0x%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def scalars(**over):
    base = dict(byte=0, short=0, word=0, long=0, sbyte=0, sshort=0, sword=0, slong=0,
                single="0x00000000", double="0x0000000000000000", flag=False, side="Buy", level="Low")
    base.update(over)
    return mv(1, **base)


def point(x, y):
    return mv(1, x=x, y=y)


def tree(depth):
    t = mv(1, value=0, children=[])
    for level in range(1, depth):
        t = mv(1, value=level, children=[t])
    return t


def build():
    # ---- valid: every type -------------------------------------------------------------------
    v = scalars()
    valid("scalars_zero", "Every scalar type at zero (the enums at their zero-or-first variant).",
          S_SCALARS, "Scalars", enc_message(S_SCALARS, "Scalars", v), v)
    v = scalars(byte=255, short=65535, word=4294967295, long=18446744073709551615, sbyte=-128, sshort=-32768,
                sword=-2147483648, slong=-9223372036854775808, single=f32(-0.0), double=f64(float("-inf")),
                flag=True, side="Sell", level="High")
    valid("scalars_extreme", "Every scalar type at an extreme: unsigned maxima, signed minima, -0.0, -infinity.",
          S_SCALARS, "Scalars", enc_message(S_SCALARS, "Scalars", v), v)
    v = scalars(byte=1, short=0x0102, word=0x01020304, long=0x0102030405060708, sbyte=-1, sshort=-2, sword=-3,
                slong=-4, single="0x7f800001", double="0x7ff8000000000123", flag=True, side="Buy", level="Mid")
    valid("scalars_nan_bits", "Little-endian byte order, and float bit patterns kept exactly: a signalling f32 NaN and "
          "an f64 NaN with a payload.", S_SCALARS, "Scalars", enc_message(S_SCALARS, "Scalars", v), v)
    v = mv(1, tag="54504631", data="010203", name="hello")
    valid("blobs_basic", "A fixed byte array, a byte string and an ASCII string.", S_BLOBS, "Blobs",
          enc_message(S_BLOBS, "Blobs", v), v)
    v = mv(1, tag="00000000", data="", name="")
    valid("blobs_empty", "An all-zero array, an empty byte string and an empty string: a part of length 0.",
          S_BLOBS, "Blobs", enc_message(S_BLOBS, "Blobs", v), v)
    v = mv(1, tag="ffffffff", data="00" * 16, name="é漢🎵abcdefg")
    valid("blobs_at_max", "A byte string and a UTF-8 string of 2-, 3- and 4-byte characters, both at their 16-byte maximum.",
          S_BLOBS, "Blobs", enc_message(S_BLOBS, "Blobs", v), v)
    v = point(-1, 2147483647)
    valid("point", "A two-field message; a negative i32.", S_POINT, "Point", enc_message(S_POINT, "Point", v), v)
    v = mv(1, count=None, flag=None, side=None, tag=None, label=None, data=None, point=None)
    valid("optionals_absent", "Every optional absent: zero presence byte and zero value bytes in the fixed block, "
          "the FF FF FF FF marker in the variable section.", S_OPTIONALS, "Optionals",
          enc_message(S_OPTIONALS, "Optionals", v), v)
    v = mv(1, count=7, flag=True, side="Sell", tag="abcd", label="hi", data="01020304", point=point(1, -1))
    valid("optionals_present", "Every optional present, including a nested message.", S_OPTIONALS, "Optionals",
          enc_message(S_OPTIONALS, "Optionals", v), v)
    v = mv(1, count=0, flag=False, side="Buy", tag="0000", label="", data="", point=point(0, 0))
    valid("optionals_present_zero", "Present optionals holding zero or empty values, which differ from absent ones.",
          S_OPTIONALS, "Optionals", enc_message(S_OPTIONALS, "Optionals", v), v)
    v = mv(1, numbers=[], words=[], points=[], maybe=[], matrix=[], sides=[])
    valid("lists_empty", "Every list empty: parts of length 0.", S_LISTS, "Lists", enc_message(S_LISTS, "Lists", v), v)
    v = mv(1, numbers=[1, 2, 65534, 65535], words=["a", "", "12345678"], points=[point(1, 2), point(-3, -4), point(0, 0)],
           maybe=[None, 0, 255], matrix=[[], [-128, 127]], sides=["Buy", "Sell"])
    valid("lists_full", "Every list at its maximum item count: packed fixed-size items, string items, message items, "
          "optional items, list items and enum items.", S_LISTS, "Lists", enc_message(S_LISTS, "Lists", v), v)
    v = mv(1, value=1, children=[mv(1, value=2, children=[]), mv(1, value=3, children=[mv(1, value=4, children=[])])])
    valid("tree_nested", "A recursive message three levels deep.", S_TREE, "Tree", enc_message(S_TREE, "Tree", v), v)
    v = tree(32)
    valid("tree_depth_32", "Messages nested 32 deep, the most a reader accepts.", S_TREE, "Tree",
          enc_message(S_TREE, "Tree", v), v)
    v = mv(1, id=1001, symbol="ACME")
    valid("order_v1", "Order at version 1, read by a version-1 reader.", S_ORDER_V1, "Order",
          enc_message(S_ORDER_V1, "Order", v), v)
    v = mv(2, id=1001, symbol="ACME", qty=300, note="rush")
    valid("order_v2", "Order at version 2 with both fields of version 2 present.", S_ORDER_V2, "Order",
          enc_message(S_ORDER_V2, "Order", v), v)
    v = mv(2, id=1001, symbol="ACME", qty=None, note=None)
    valid("order_v2_absent", "Order at version 2 with both fields of version 2 absent: not the same bytes as version 1.",
          S_ORDER_V2, "Order", enc_message(S_ORDER_V2, "Order", v), v)
    v = mv(1, id=1, price=1234567, qty=300, side="Sell", flags=5, live=True, symbol="EURUSD")
    valid("tick", "The benchmark's small message.", S_TICK, "Tick", enc_message(S_TICK, "Tick", v), v)

    # ---- valid: evolution --------------------------------------------------------------------
    old = enc_message(S_ORDER_V1, "Order", mv(1, id=1001, symbol="ACME"))
    valid("evolution_new_reader_old_payload", "A version-2 reader reads a version-1 payload: the fields of version 2 "
          "are absent, and re-encoding at the payload's version gives the same bytes.", S_ORDER_V2, "Order", old,
          mv(1, id=1001, symbol="ACME", qty=None, note=None))
    new = enc_message(S_ORDER_V2, "Order", mv(2, id=1001, symbol="ACME", qty=300, note="rush"))
    valid("evolution_old_reader_new_payload", "A version-1 reader reads a version-2 payload: the 5 trailing bytes of "
          "the fixed block and the trailing part are skipped; re-encoding gives the version-1 bytes.", S_ORDER_V1,
          "Order", new, mv(1, id=1001, symbol="ACME"), reencoded=old)
    new_absent = enc_message(S_ORDER_V2, "Order", mv(2, id=1001, symbol="ACME", qty=None, note=None))
    valid("evolution_old_reader_new_payload_absent", "A version-1 reader reads a version-2 payload whose new fields are "
          "absent: the absent marker is skipped like any part.", S_ORDER_V1, "Order", new_absent,
          mv(1, id=1001, symbol="ACME"), reencoded=old)
    # Fixed block of version 3: id (8), qty (1 + 4), code (1 + 2).
    future = enc_message(S_ORDER_V3, "Order", mv(3, id=1001, symbol="ACME", qty=300, note="rush", code=0xBEEF,
                                                   memo=None, tags=["x", "yz"]))
    valid("evolution_future_version", "A version-2 reader reads a payload from version 3: a longer fixed block and "
          "two unknown parts (one the absent marker) are skipped; re-encoding gives the version-2 bytes.", S_ORDER_V2,
          "Order", future, mv(2, id=1001, symbol="ACME", qty=300, note="rush"), reencoded=new)
    inner_old = mv(1, id=7, symbol="A")
    env_old = enc_message(S_ENVELOPE_V1, "Envelope", mv(1, seq=9, order=inner_old, history=[inner_old]))
    inner_read = mv(1, id=7, symbol="A", qty=None, note=None)
    valid("evolution_nested_old_payload", "An Envelope whose nested Orders are at version 1, read by a reader whose "
          "Order is at version 2: each nested message keeps its own version.", S_ENVELOPE_V2, "Envelope", env_old,
          mv(1, seq=9, order=inner_read, history=[inner_read]))
    inner_new = mv(2, id=7, symbol="A", qty=5, note=None)
    env_new = enc_message(S_ENVELOPE_V2, "Envelope", mv(1, seq=9, order=inner_new, history=[inner_new, inner_new]))
    env_new_as_old = enc_message(S_ENVELOPE_V1, "Envelope", mv(1, seq=9, order=inner_old, history=[inner_old, inner_old]))
    valid("evolution_nested_new_payload", "An Envelope whose nested Orders are at version 2, read by a reader whose "
          "Order is at version 1: the nested messages are read as far as known.", S_ENVELOPE_V1, "Envelope", env_new,
          mv(1, seq=9, order=inner_old, history=[inner_old, inner_old]), reencoded=env_new_as_old)

    # ---- invalid -----------------------------------------------------------------------------
    good_point = enc_message(S_POINT, "Point", point(1, 2))
    invalid("truncated_empty", "No bytes at all.", S_POINT, "Point", b"", "Truncated")
    invalid("truncated_length", "Three bytes: not even a length field.", S_POINT, "Point", good_point[:3], "Truncated")
    invalid("truncated_body", "The last byte of the message is missing.", S_POINT, "Point", good_point[:-1], "Truncated")
    invalid("trailing_bytes", "A byte after the message.", S_POINT, "Point", good_point + b"\x00", "TrailingBytes")
    invalid("length_below_header", "A length of 4, less than the 8 header bytes after the length field.", S_POINT,
            "Point", struct.pack("<IHH", 4, 1, 3), "BadLength")
    pt = struct.pack("<ii", 1, 2)
    invalid("unknown_schema", "Schema id 9 where 1 is expected.", S_POINT, "Point", raw_message(9, 3, 1, pt),
            "UnknownSchema")
    invalid("unknown_template", "Template id 9 where 3 is expected.", S_POINT, "Point", raw_message(1, 9, 1, pt),
            "UnknownTemplate")
    invalid("version_zero", "Version 0 is reserved.", S_POINT, "Point", raw_message(1, 3, 0, pt), "InvalidVersion")
    invalid("block_length_disagrees", "A block length of 7 for a version whose fixed block has 8 bytes.", S_POINT,
            "Point", raw_message(1, 3, 1, pt, block_length=7), "BadBlockLength")
    invalid("block_longer_than_message", "A version-2 payload (newer than the reader) whose block length runs past "
            "the end of the message.", S_POINT, "Point", raw_message(1, 3, 2, pt, block_length=9), "Truncated")
    sc = enc_message(S_SCALARS, "Scalars", scalars(flag=True, side="Sell", level="Mid"))
    flag_at = 12 + 1 + 2 + 4 + 8 + 1 + 2 + 4 + 8 + 4 + 8
    bad = bytearray(sc)
    bad[flag_at] = 2
    invalid("bool_not_0_or_1", "A bool byte of 2.", S_SCALARS, "Scalars", bytes(bad), "InvalidBool", "flag")
    bad = bytearray(sc)
    bad[flag_at + 1] = 3
    invalid("enum_unknown_u8", "Side value 3 is not a variant.", S_SCALARS, "Scalars", bytes(bad), "InvalidEnum", "side")
    bad = bytearray(sc)
    bad[flag_at + 2:flag_at + 4] = struct.pack("<H", 501)
    invalid("enum_unknown_u16", "Level value 501 is not a variant.", S_SCALARS, "Scalars", bytes(bad), "InvalidEnum",
            "level")
    opts = enc_message(S_OPTIONALS, "Optionals", mv(1, count=None, flag=None, side=None, tag=None, label=None,
                                                      data=None, point=None))
    bad = bytearray(opts)
    bad[12] = 2
    invalid("presence_byte_2", "An optional's presence byte of 2.", S_OPTIONALS, "Optionals", bytes(bad),
            "InvalidPresence", "count")
    bad = bytearray(opts)
    bad[13] = 1
    invalid("absent_optional_not_zero", "An absent optional u32 whose value bytes are not zero.", S_OPTIONALS,
            "Optionals", bytes(bad), "NonCanonical", "count")
    bad = bytearray(opts)
    bad[12 + 5] = 1
    bad[12 + 6] = 2
    invalid("optional_bool_2", "A present optional bool holding 2.", S_OPTIONALS, "Optionals", bytes(bad),
            "InvalidBool", "flag")
    blob_block = bytes.fromhex("54504631")
    invalid("required_part_absent", "The absent marker where a required string must be.", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"") + struct.pack("<I", ABSENT)), "InvalidPresence", "name")
    invalid("string_too_long", "A string of 17 bytes, maximum 16.", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"") + part(b"x" * 17)), "FieldTooLong", "name")
    invalid("bytes_too_long", "A byte string of 17 bytes, maximum 16.", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"\x00" * 17) + part(b"")), "FieldTooLong", "data")
    invalid("invalid_utf8", "A string with a lone continuation byte after a lead byte (C3 28).", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"") + part(b"\xc3\x28")), "InvalidUtf8", "name")
    invalid("overlong_utf8", "A string with an overlong encoding of '/' (C0 AF).", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"") + part(b"\xc0\xaf")), "InvalidUtf8", "name")
    invalid("surrogate_utf8", "A string holding a UTF-16 surrogate (ED A0 80).", S_BLOBS, "Blobs",
            raw_message(1, 2, 1, blob_block, part(b"") + part(b"\xed\xa0\x80")), "InvalidUtf8", "name")
    invalid("part_overruns_message", "A string part whose length (10) runs past the end of the message.", S_BLOBS,
            "Blobs", raw_message(1, 2, 1, blob_block, part(b"") + struct.pack("<I", 10) + b"ab"), "Truncated")
    empty = part(b"")
    invalid("list_too_many_items", "Five u16 items, maximum 4.", S_LISTS, "Lists",
            raw_message(1, 5, 1, b"", part(b"\x00" * 10) + empty * 5), "FieldTooLong", "numbers")
    invalid("list_bad_length", "A list of u16 items three bytes long.", S_LISTS, "Lists",
            raw_message(1, 5, 1, b"", part(b"\x01\x00\x02") + empty * 5), "BadLength")
    invalid("list_item_too_long", "A string item of 9 bytes, item maximum 8.", S_LISTS, "Lists",
            raw_message(1, 5, 1, b"", empty + part(part(b"123456789")) + empty * 4), "FieldTooLong", "words")
    invalid("list_item_bad_presence", "An optional u8 item with presence byte 3.", S_LISTS, "Lists",
            raw_message(1, 5, 1, b"", empty * 3 + part(b"\x01\x07\x03\x00") + empty * 2), "InvalidPresence", "maybe")
    invalid("list_absent", "The absent marker where a required list must be.", S_LISTS, "Lists",
            raw_message(1, 5, 1, b"", struct.pack("<I", ABSENT) + empty * 5), "InvalidPresence", "numbers")
    wrong = raw_message(1, 5, 1, b"")
    invalid("nested_wrong_template", "A nested message with template 5 where Point (3) is declared.", S_OPTIONALS,
            "Optionals", raw_message(1, 4, 1, b"\x00" * 12, struct.pack("<II", ABSENT, ABSENT) + wrong),
            "UnknownTemplate")
    deep = enc_message(S_TREE, "Tree", tree(32))
    invalid("depth_exceeded", "Messages nested 33 deep.", S_TREE, "Tree",
            raw_message(1, 6, 1, struct.pack("<I", 99), part(deep)), "DepthExceeded")
    v2_block = struct.pack("<Q", 1001) + b"\x01" + struct.pack("<I", 300)
    invalid("old_version_with_new_block", "A payload claiming version 1 that carries the version-2 fixed block.",
            S_ORDER_V2, "Order", raw_message(1, 7, 1, v2_block, part(b"ACME") + part(b"rush")), "BadBlockLength")
    invalid("old_version_with_new_part", "A payload claiming version 1 that carries a version-2 part.", S_ORDER_V2,
            "Order", raw_message(1, 7, 1, struct.pack("<Q", 1001), part(b"ACME") + part(b"rush")), "TrailingBytes")
    inner = raw_message(1, 7, 1, struct.pack("<Q", 7), part(b"A") + b"\x00")
    invalid("trailing_bytes_in_nested", "A nested version-1 Order with one byte after its last part.", S_ENVELOPE_V1,
            "Envelope", raw_message(1, 8, 1, struct.pack("<I", 9), inner + part(b"")), "TrailingBytes")
    invalid("future_version_broken_part", "A version-3 payload whose unknown trailing part is incomplete.", S_ORDER_V2,
            "Order", raw_message(1, 7, 3, future[12:28], future[28:] + struct.pack("<I", 10) + b"short"), "Truncated")
    invalid("future_version_short_block", "A version-3 payload whose fixed block is shorter than version 2's.",
            S_ORDER_V2, "Order", raw_message(1, 7, 3, struct.pack("<QI", 1001, 0), part(b"ACME")), "BadBlockLength")


def main():
    build()
    names = [v["name"] for v in VECTORS_OUT]
    assert len(names) == len(set(names)), "vector names are unique"
    os.makedirs(VECTORS, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    for old in os.listdir(VECTORS):
        if old.endswith(".json"):
            os.remove(os.path.join(VECTORS, old))
    for old in os.listdir(SEEDS):
        os.remove(os.path.join(SEEDS, old))
    for i, v in enumerate(VECTORS_OUT, start=1):
        stem = "%03d_%s" % (i, v["name"])
        with open(os.path.join(VECTORS, stem + ".json"), "w", encoding="utf-8") as out:
            json.dump(v, out, indent=2, ensure_ascii=False)
            out.write("\n")
        with open(os.path.join(SEEDS, stem), "wb") as out:
            out.write(bytes.fromhex(v["hex"]))
    valid_count = sum(1 for v in VECTORS_OUT if "error" not in v)
    print("wrote %d vectors (%d valid, %d invalid)" % (len(VECTORS_OUT), valid_count, len(VECTORS_OUT) - valid_count),
          file=sys.stderr)


if __name__ == "__main__":
    main()
