//! Golden wire vectors: the committed JSON of `spec/vectors/frame/` and `spec/vectors/stream/`
//! checked against the engine.
//!
//! Goal: prove that the engine decodes, rejects and frames exactly as the committed vectors
//! (and so the spec) say, so that a C or C# implementation checked against the same files
//! interoperates with it. Method: every valid frame vector is decoded and each field compared
//! with the JSON; the header built from the JSON alone is re-encoded and compared byte for
//! byte, as is the header read back by the decoder. Every invalid vector must fail with its
//! named error and details. Every stream vector is fed through `StreamDecoder` split at every
//! byte position, and byte by byte. Finally the committed files must be exactly what the
//! generator in `wire_vectors/mod.rs` writes, so no vector goes stale.
//!
//! Regenerate after a deliberate change (and review the diff):
//! `cargo test -p tamtam-tests --test frame_vectors -- --ignored write_vectors`

mod wire_vectors;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tamtam_engine::core::wire::frame::{
    self, BASE_HEADER_LEN, CRC_OFFSET, DecodeOptions, Flags, FrameView, Header, Lane, PacketType,
    RecipientKind, Segment,
};
use tamtam_engine::core::wire::stream::{PREFIX_LEN, StreamDecoder, StreamError, encode_prefixed};
use wire_vectors::{
    FrameJson, FrameVector, SegmentJson, StreamVector, crc32c_reference, frame_error_json,
    frame_vectors, fuzz_seeds, stream_error_json, stream_vectors,
};

/// Every error `FrameView::decode` can produce; each needs at least one invalid vector.
const DECODE_ERRORS: [&str; 15] = [
    "Truncated",
    "BadMagic",
    "UnsupportedVersion",
    "UnknownLane",
    "UnknownPacketType",
    "UnknownRecipientKind",
    "ReservedFlags",
    "TypeNotAllowedOnLane",
    "AckOnStreamLane",
    "SegmentMismatch",
    "SegmentOutOfRange",
    "LifetimeOutsideStream",
    "Oversize",
    "LengthMismatch",
    "ChecksumMismatch",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `*.json` files of `dir`, sorted by name, each checked to be named after its vector.
fn load_json<T: serde::de::DeserializeOwned>(dir: &str, name_of: impl Fn(&T) -> &str) -> Vec<T> {
    let dir = repo_root().join(dir);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path).expect("vector file");
            let value: T =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("file stem");
            assert_eq!(name_of(&value), stem, "{}", path.display());
            value
        })
        .collect()
}

fn committed_frame_vectors() -> Vec<FrameVector> {
    load_json("spec/vectors/frame", |v: &FrameVector| &v.name)
}

fn committed_stream_vectors() -> Vec<StreamVector> {
    load_json("spec/vectors/stream", |v: &StreamVector| &v.name)
}

/// The JSON fields read from a decoded frame through the view's accessors.
fn json_of_view(view: &FrameView<'_>) -> FrameJson {
    let bytes = view.as_bytes();
    let wire_flags = if view.segment().is_some() {
        view.flags().with(Flags::SEGMENTED)
    } else {
        view.flags()
    };
    FrameJson {
        lane: view.lane().name().to_owned(),
        packet_type: view.packet_type().name().to_owned(),
        recipient_kind: view.recipient_kind().name().to_owned(),
        flags: wire_flags.names().map(str::to_owned).collect(),
        flags_bits: wire_flags.bits(),
        sender_id: view.sender_id(),
        recipient_id: view.recipient_id(),
        recipient_port: view.recipient_port(),
        sender_port: view.sender_port(),
        route_id: view.route_id(),
        request_id: view.request_id(),
        sequence: view.sequence(),
        attempt: view.attempt(),
        hop_limit: view.hop_limit(),
        lifetime: view.lifetime(),
        priority: view.priority(),
        payload_len: view.payload().len() as u32,
        crc32c: view.crc32c(),
        header_len: (bytes.len() - view.payload().len()) as u32,
        segment: view.segment().map(|s| SegmentJson {
            index: s.index,
            count: s.count,
            offset: s.offset,
        }),
        payload: hex::encode(view.payload()),
    }
}

/// The header described by a vector's JSON, built without the decoder.
fn header_of_json(name: &str, frame: &FrameJson) -> Header {
    let flags = frame.flags.iter().fold(Flags::NONE, |acc, flag| {
        acc.with(Flags::from_name(flag).unwrap_or_else(|| panic!("{name}: flag {flag}")))
    });
    assert_eq!(
        flags.bits(),
        frame.flags_bits,
        "{name}: flags vs flags_bits"
    );
    assert_eq!(
        flags.contains(Flags::SEGMENTED),
        frame.segment.is_some(),
        "{name}: SEGMENTED bit vs segment object"
    );
    Header {
        lane: Lane::from_name(&frame.lane).expect("lane name"),
        packet_type: PacketType::from_name(&frame.packet_type).expect("packet type name"),
        recipient_kind: RecipientKind::from_name(&frame.recipient_kind)
            .expect("recipient kind name"),
        flags: flags.without(Flags::SEGMENTED),
        sender_id: frame.sender_id,
        recipient_id: frame.recipient_id,
        recipient_port: frame.recipient_port,
        sender_port: frame.sender_port,
        route_id: frame.route_id,
        request_id: frame.request_id,
        sequence: frame.sequence,
        attempt: frame.attempt,
        hop_limit: frame.hop_limit,
        lifetime: frame.lifetime,
        priority: frame.priority,
        segment: frame.segment.map(|s| Segment {
            index: s.index,
            count: s.count,
            offset: s.offset,
        }),
    }
}

#[test]
fn valid_frame_vectors_decode_to_their_fields_and_re_encode_exactly() {
    let vectors = committed_frame_vectors();
    let mut checked = 0;
    for vector in vectors.iter().filter(|v| v.valid) {
        let name = &vector.name;
        assert!(vector.error.is_none(), "{name}: valid vector with an error");
        let expected = vector.frame.as_ref().expect("valid vector has fields");
        let bytes = vector.bytes();
        let options = vector.decode_options.to_options();
        let view =
            FrameView::decode(&bytes, options).unwrap_or_else(|e| panic!("{name}: rejected: {e}"));
        assert_eq!(&json_of_view(&view), expected, "{name}: decoded fields");
        assert_eq!(
            u16::from_le_bytes([bytes[6], bytes[7]]),
            expected.flags_bits,
            "{name}: flags word on the wire"
        );
        assert_eq!(
            expected.header_len as usize + expected.payload_len as usize,
            bytes.len(),
            "{name}: header_len + payload_len"
        );

        // Skipping the checksum must not change what is decoded.
        let unchecked = DecodeOptions {
            verify_checksum: false,
            ..options
        };
        let view_unchecked = FrameView::decode(&bytes, unchecked).expect("decodes unchecked");
        assert_eq!(view_unchecked.header(), view.header(), "{name}: unchecked");

        // Re-encode what the decoder read, and what the JSON alone says.
        let from_view = frame::encode_to_vec(&view.header(), view.payload()).expect("encode");
        assert_eq!(
            hex::encode(&from_view),
            vector.hex,
            "{name}: re-encoded view"
        );
        let header = header_of_json(name, expected);
        assert_eq!(header, view.header(), "{name}: header from JSON");
        let payload = hex::decode(&expected.payload).expect("payload hex");
        let from_json = frame::encode_to_vec(&header, &payload).expect("encode from JSON");
        assert_eq!(from_json, bytes, "{name}: encoded from JSON");

        // The zero-copy path: header, payload written in place, then seal.
        let mut in_place = vec![0u8; bytes.len()];
        let header_len = frame::write_header(&header, payload.len(), &mut in_place).unwrap();
        assert_eq!(header_len, expected.header_len as usize);
        assert!(
            in_place[CRC_OFFSET..BASE_HEADER_LEN]
                .iter()
                .all(|&b| b == 0),
            "{name}: write_header leaves the CRC zero"
        );
        in_place[header_len..].copy_from_slice(&payload);
        frame::seal(&mut in_place);
        assert_eq!(in_place, bytes, "{name}: write_header + seal");

        // The stream record is the prefix plus the same bytes.
        let mut record = vec![0u8; PREFIX_LEN + bytes.len()];
        let n = encode_prefixed(&header, &payload, &mut record).expect("encode_prefixed");
        assert_eq!(n, record.len());
        assert_eq!(record[..PREFIX_LEN], (bytes.len() as u32).to_le_bytes());
        assert_eq!(record[PREFIX_LEN..], bytes[..], "{name}: encode_prefixed");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} valid frame vectors");
}

#[test]
fn crc32c_of_valid_vectors_follows_the_spec_definition() {
    // The spec's bit-by-bit CRC over bytes 0..44 and 48..end, not the engine's crc32c crate.
    assert_eq!(
        crc32c_reference(b"123456789"),
        0xE306_9283,
        "CRC-32C check value"
    );
    for vector in committed_frame_vectors().iter().filter(|v| v.valid) {
        let bytes = vector.bytes();
        let mut covered = bytes[..CRC_OFFSET].to_vec();
        covered.extend_from_slice(&bytes[BASE_HEADER_LEN..]);
        let frame = vector.frame.as_ref().expect("fields");
        assert_eq!(crc32c_reference(&covered), frame.crc32c, "{}", vector.name);
    }
}

#[test]
fn invalid_frame_vectors_fail_with_their_named_error() {
    let vectors = committed_frame_vectors();
    let mut names = BTreeSet::new();
    let mut checked = 0;
    for vector in vectors.iter().filter(|v| !v.valid) {
        let name = &vector.name;
        assert!(vector.frame.is_none(), "{name}: invalid vector with fields");
        let expected = vector.error.as_ref().expect("invalid vector has an error");
        assert!(
            DECODE_ERRORS.contains(&expected.name.as_str()),
            "{name}: {} is not an error decode produces",
            expected.name
        );
        let bytes = vector.bytes();
        match FrameView::decode(&bytes, vector.decode_options.to_options()) {
            Ok(view) => panic!("{name}: accepted as {view:?}"),
            Err(error) => assert_eq!(&frame_error_json(&error), expected, "{name}: {error}"),
        }
        names.insert(expected.name.as_str());
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} invalid frame vectors");
    let missing: Vec<_> = DECODE_ERRORS
        .iter()
        .filter(|error| !names.contains(*error))
        .collect();
    assert!(missing.is_empty(), "no invalid vector for {missing:?}");
}

#[test]
fn valid_vectors_cover_every_enumeration_and_flag() {
    let vectors = committed_frame_vectors();
    let frames: Vec<&FrameJson> = vectors.iter().filter_map(|v| v.frame.as_ref()).collect();
    let seen = |get: fn(&FrameJson) -> &str| -> BTreeSet<String> {
        frames.iter().map(|f| get(f).to_owned()).collect()
    };
    let lanes = seen(|f| &f.lane);
    for lane in Lane::ALL {
        assert!(lanes.contains(lane.name()), "no vector on lane {lane}");
    }
    let kinds = seen(|f| &f.recipient_kind);
    for kind in RecipientKind::ALL {
        assert!(
            kinds.contains(kind.name()),
            "no vector for recipient {kind}"
        );
    }
    for lane in Lane::ALL {
        for packet_type in PacketType::ALL {
            let on_lane = frames
                .iter()
                .any(|f| f.lane == lane.name() && f.packet_type == packet_type.name());
            let allowed = frame::type_allowed_on_lane(*lane, *packet_type);
            assert!(
                on_lane == allowed,
                "{packet_type} on {lane}: allowed {allowed}, vector {on_lane}"
            );
        }
    }
    let flags: BTreeSet<&str> = frames
        .iter()
        .flat_map(|f| f.flags.iter().map(String::as_str))
        .collect();
    for bit in 0..8 {
        let flag = Flags::from_bits(1 << bit).expect("defined bit");
        let name = flag.names().next().expect("named");
        assert!(flags.contains(name), "no vector with flag {name}");
    }
    assert!(
        frames
            .iter()
            .any(|f| f.segment.is_some_and(|s| s.offset > u64::from(u32::MAX))),
        "no segment beyond 4 GiB"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.payload_len == 0 && f.segment.is_none()),
        "no empty unsegmented payload"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.payload_len == 0 && f.segment.is_some()),
        "no empty segment"
    );
    assert!(
        frames.iter().any(|f| f.request_id == u64::MAX),
        "no maximal request id"
    );
}

/// Feeds `chunks` into a fresh decoder, draining after every feed, and reports what a
/// [`StreamVector`] records: the frames, the error, the bytes held at the end.
fn run_decoder<'a>(
    frame_len_max: u32,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Vec<u8>>, Option<StreamError>, Option<u32>) {
    let mut decoder = StreamDecoder::new(frame_len_max);
    let mut frames = Vec::new();
    for chunk in chunks {
        let mut rest = chunk;
        loop {
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => frames.push(frame.to_vec()),
                    Ok(None) => break,
                    Err(error) => {
                        // A framing error is final.
                        assert!(decoder.is_failed());
                        assert_eq!(decoder.next_frame(), Err(StreamError::Poisoned));
                        decoder.feed(&[0u8; 64]);
                        assert_eq!(decoder.next_frame(), Err(StreamError::Poisoned));
                        return (frames, Some(error), None);
                    }
                }
            }
            if rest.is_empty() {
                break;
            }
            let taken = decoder.feed(rest);
            assert!(taken > 0, "feed took nothing after a full drain");
            assert!(decoder.buffered() <= PREFIX_LEN + frame_len_max as usize);
            rest = &rest[taken..];
        }
    }
    (frames, None, Some(decoder.buffered() as u32))
}

#[test]
fn stream_vectors_at_every_split_point() {
    let vectors = committed_stream_vectors();
    assert!(vectors.len() >= 10, "only {} stream vectors", vectors.len());
    let mut errors = BTreeSet::new();
    for vector in &vectors {
        let name = &vector.name;
        let wire = vector.wire();
        let frames: Vec<Vec<u8>> = vector
            .frames
            .iter()
            .map(|f| hex::decode(f).expect("frame hex"))
            .collect();
        let expected = (frames, vector.error.clone(), vector.buffered_at_end);
        let as_json =
            |(frames, error, buffered): (Vec<Vec<u8>>, Option<StreamError>, Option<u32>)| {
                (frames, error.as_ref().map(stream_error_json), buffered)
            };
        for split in 0..=wire.len() {
            let got = run_decoder(vector.frame_len_max, [&wire[..split], &wire[split..]]);
            assert_eq!(as_json(got), expected, "{name}: split at {split}");
        }
        let got = run_decoder(vector.frame_len_max, wire.chunks(1));
        assert_eq!(as_json(got), expected, "{name}: byte by byte");
        if let Some(error) = &vector.error {
            errors.insert(error.name.clone());
        }
    }
    for name in ["FrameTooLarge", "FrameTooSmall"] {
        assert!(errors.contains(name), "no stream vector for {name}");
    }
}

#[test]
fn committed_vectors_match_the_generator() {
    let generated = frame_vectors();
    let committed = committed_frame_vectors();
    let mut generated_sorted = generated.clone();
    generated_sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        committed, generated_sorted,
        "spec/vectors/frame is stale: rerun the generator (see this file's header)"
    );
    let mut generated = stream_vectors();
    generated.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        committed_stream_vectors(),
        generated,
        "spec/vectors/stream is stale: rerun the generator (see this file's header)"
    );
}

#[test]
fn committed_fuzz_seeds_match_the_generator() {
    for (target, name, bytes) in fuzz_seeds() {
        let path = repo_root().join("fuzz/seeds").join(target).join(&name);
        let committed = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(committed, bytes, "{} is stale", path.display());
    }
}

/// Writes every vector and fuzz seed. Not a check: run it by hand after a deliberate change.
#[test]
#[ignore = "writes spec/vectors and fuzz/seeds; run by hand"]
fn write_vectors() {
    let root = repo_root();
    let write_dir = |dir: &Path, files: Vec<(String, Vec<u8>)>| {
        if dir.exists() {
            fs::remove_dir_all(dir).expect("clear old files");
        }
        fs::create_dir_all(dir).expect("create dir");
        for (name, bytes) in files {
            fs::write(dir.join(name), bytes).expect("write file");
        }
    };
    write_dir(
        &root.join("spec/vectors/frame"),
        frame_vectors()
            .iter()
            .map(|v| (format!("{}.json", v.name), pretty(v)))
            .collect(),
    );
    write_dir(
        &root.join("spec/vectors/stream"),
        stream_vectors()
            .iter()
            .map(|v| (format!("{}.json", v.name), pretty(v)))
            .collect(),
    );
    let seeds = fuzz_seeds();
    let targets: BTreeSet<&str> = seeds.iter().map(|(target, _, _)| *target).collect();
    for target in targets {
        write_dir(
            &root.join("fuzz/seeds").join(target),
            seeds
                .iter()
                .filter(|(t, _, _)| *t == target)
                .map(|(_, name, bytes)| (name.clone(), bytes.clone()))
                .collect(),
        );
    }
}

/// Pretty JSON with a final newline: the committed file format.
fn pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).expect("serialise vector");
    text.push('\n');
    text.into_bytes()
}
