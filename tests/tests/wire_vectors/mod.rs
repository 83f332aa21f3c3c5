//! The golden wire vectors of `spec/vectors/frame/` and `spec/vectors/stream/`: their JSON
//! shape (documented in `spec/vectors/README.md`) and the generator that writes them.
//!
//! The generator builds every valid vector from a typed [`Header`] and payload chosen by hand,
//! encodes it with the engine, and records the *intended* field values, not values read back
//! by the decoder: the check in `frame_vectors.rs` then proves that decoding the committed
//! bytes yields what was intended. Every invalid vector starts from a valid encoding, breaks
//! exactly the rule it is named after (the CRC is recomputed afterwards unless the checksum is
//! the point), and states the error the spec says decode must report. The generator asserts
//! that the engine agrees before it writes anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tamtam_engine::core::wire::frame::{
    self, BASE_HEADER_LEN, CRC_OFFSET, DecodeOptions, Flags, FrameError, FrameView, Header, Lane,
    PAYLOAD_LEN_MAX_DEFAULT, PAYLOAD_LEN_MAX_PROTOCOL, PacketType, RecipientKind, Segment,
};
use tamtam_engine::core::wire::stream::{PREFIX_LEN, StreamError, encode_prefixed};

/// Serialises a `u64` as a decimal string, so that parsers that hold JSON numbers in a
/// double (JavaScript, cJSON) do not round values above 2^53.
pub mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `value` as a decimal string.
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    /// Reads a decimal string as a `u64`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// The options a vector is decoded with.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OptionsJson {
    /// The receiver's payload limit (the effective limit is at most 16 MiB).
    pub payload_len_max: u32,
    /// Whether the CRC32C is verified.
    pub verify_checksum: bool,
}

impl OptionsJson {
    /// The receiver defaults: 1 MiB payloads, checksum verified.
    pub const DEFAULT: OptionsJson = OptionsJson {
        payload_len_max: PAYLOAD_LEN_MAX_DEFAULT,
        verify_checksum: true,
    };

    /// The engine's decode options.
    pub fn to_options(self) -> DecodeOptions {
        DecodeOptions {
            payload_len_max: self.payload_len_max,
            verify_checksum: self.verify_checksum,
        }
    }
}

/// The segment extension of a valid vector.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SegmentJson {
    /// `segment_index`.
    pub index: u32,
    /// `segment_count`.
    pub count: u32,
    /// `object_offset`, as a decimal string.
    #[serde(with = "u64_string")]
    pub offset: u64,
}

/// Every field of a valid frame, as the spec names them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrameJson {
    /// Lane name (`FAST`, `BULK`, `STREAM`).
    pub lane: String,
    /// Packet type name.
    pub packet_type: String,
    /// Recipient kind name.
    pub recipient_kind: String,
    /// Names of the set wire flags, lowest bit first (including `SEGMENTED`).
    pub flags: Vec<String>,
    /// The `flags` word as on the wire.
    pub flags_bits: u16,
    /// `sender_id`.
    pub sender_id: u32,
    /// `recipient_id`.
    pub recipient_id: u32,
    /// `recipient_port`.
    pub recipient_port: u16,
    /// `sender_port`.
    pub sender_port: u16,
    /// `route_id`.
    pub route_id: u32,
    /// `request_id`, as a decimal string.
    #[serde(with = "u64_string")]
    pub request_id: u64,
    /// `sequence`.
    pub sequence: u32,
    /// `attempt`.
    pub attempt: u8,
    /// `hop_limit`.
    pub hop_limit: u8,
    /// `lifetime`.
    pub lifetime: u8,
    /// `priority`.
    pub priority: u8,
    /// `payload_len`.
    pub payload_len: u32,
    /// `crc32c`.
    pub crc32c: u32,
    /// Header bytes before the payload (48 or 64).
    pub header_len: u32,
    /// The segment extension, or `null`.
    pub segment: Option<SegmentJson>,
    /// The payload, hex.
    pub payload: String,
}

/// An expected error: its spec name and its details.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorJson {
    /// The spec name ([`FrameError::name`] or [`StreamError::name`]).
    pub name: String,
    /// The error's fields (for example `needed` and `had` of `Truncated`).
    pub details: BTreeMap<String, serde_json::Value>,
}

/// One file of `spec/vectors/frame/`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrameVector {
    /// Unique name, also the file stem.
    pub name: String,
    /// What the vector shows.
    pub description: String,
    /// The options to decode with.
    pub decode_options: OptionsJson,
    /// The bytes given to the decoder, hex.
    pub hex: String,
    /// Whether decode accepts the bytes.
    pub valid: bool,
    /// The decoded fields of a valid vector, `null` for an invalid one.
    pub frame: Option<FrameJson>,
    /// The error of an invalid vector, `null` for a valid one.
    pub error: Option<ErrorJson>,
}

/// One file of `spec/vectors/stream/`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamVector {
    /// Unique name, also the file stem.
    pub name: String,
    /// What the vector shows.
    pub description: String,
    /// The receiver's `frame_len_max`.
    pub frame_len_max: u32,
    /// The byte stream, hex.
    pub hex: String,
    /// The frames the framer yields, in order, without their prefixes, hex.
    pub frames: Vec<String>,
    /// The framing error that ends the stream after those frames, or `null`.
    pub error: Option<ErrorJson>,
    /// Bytes still held (an incomplete frame) when the stream ends without an error, else
    /// `null`.
    pub buffered_at_end: Option<u32>,
}

/// The spec's details of a frame error.
pub fn frame_error_json(error: &FrameError) -> ErrorJson {
    use serde_json::Value;
    let number = |v: u64| Value::from(v);
    let text = |v: &str| Value::from(v);
    let details: Vec<(&str, Value)> = match *error {
        FrameError::Truncated { needed, had } => {
            vec![
                ("needed", number(needed as u64)),
                ("had", number(had as u64)),
            ]
        }
        FrameError::BadMagic { found } => vec![("found", number(found.into()))],
        FrameError::UnsupportedVersion { found }
        | FrameError::UnknownLane(found)
        | FrameError::UnknownPacketType(found)
        | FrameError::UnknownRecipientKind(found) => vec![("found", number(found.into()))],
        FrameError::ReservedFlags { bits } => vec![("bits", number(bits.into()))],
        FrameError::TypeNotAllowedOnLane { lane, packet_type } => vec![
            ("lane", text(lane.name())),
            ("packet_type", text(packet_type.name())),
        ],
        FrameError::AckOnStreamLane
        | FrameError::SegmentMismatch
        | FrameError::SegmentFlagInHeader => vec![],
        FrameError::SegmentOutOfRange { index, count } => {
            vec![
                ("index", number(index.into())),
                ("count", number(count.into())),
            ]
        }
        FrameError::LifetimeOutsideStream { lifetime } => {
            vec![("lifetime", number(lifetime.into()))]
        }
        FrameError::Oversize { len, max } => {
            vec![("len", number(len)), ("max", number(max.into()))]
        }
        FrameError::LengthMismatch { declared, actual } => vec![
            ("declared", number(declared as u64)),
            ("actual", number(actual as u64)),
        ],
        FrameError::ChecksumMismatch { expected, computed } => vec![
            ("expected", number(expected.into())),
            ("computed", number(computed.into())),
        ],
        FrameError::BufferTooSmall { needed, had } => {
            vec![
                ("needed", number(needed as u64)),
                ("had", number(had as u64)),
            ]
        }
    };
    ErrorJson {
        name: error.name().to_owned(),
        details: details
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    }
}

/// The spec's details of a stream framing error.
pub fn stream_error_json(error: &StreamError) -> ErrorJson {
    let details: Vec<(&str, u32)> = match *error {
        StreamError::FrameTooLarge { len, max } => vec![("len", len), ("max", max)],
        StreamError::FrameTooSmall { len } => vec![("len", len)],
        StreamError::Poisoned => vec![],
    };
    ErrorJson {
        name: error.name().to_owned(),
        details: details
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect(),
    }
}

/// The JSON fields of a frame encoded from `header` and `payload`, taken from the inputs of
/// the encoder (and the CRC from the encoded bytes).
pub fn frame_json(header: &Header, payload: &[u8], bytes: &[u8]) -> FrameJson {
    let wire_flags = if header.segment.is_some() {
        header.flags.with(Flags::SEGMENTED)
    } else {
        header.flags
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[CRC_OFFSET..BASE_HEADER_LEN]);
    FrameJson {
        lane: header.lane.name().to_owned(),
        packet_type: header.packet_type.name().to_owned(),
        recipient_kind: header.recipient_kind.name().to_owned(),
        flags: wire_flags.names().map(str::to_owned).collect(),
        flags_bits: wire_flags.bits(),
        sender_id: header.sender_id,
        recipient_id: header.recipient_id,
        recipient_port: header.recipient_port,
        sender_port: header.sender_port,
        route_id: header.route_id,
        request_id: header.request_id,
        sequence: header.sequence,
        attempt: header.attempt,
        hop_limit: header.hop_limit,
        lifetime: header.lifetime,
        priority: header.priority,
        payload_len: payload.len() as u32,
        crc32c: u32::from_le_bytes(crc),
        header_len: header.header_len() as u32,
        segment: header.segment.map(|s| SegmentJson {
            index: s.index,
            count: s.count,
            offset: s.offset,
        }),
        payload: hex::encode(payload),
    }
}

/// CRC-32C (Castagnoli) exactly as `spec/wire/Frame-v1.md` §6 defines it, bit by bit:
/// reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF. Slow and
/// independent of the `crc32c` crate the engine uses.
pub fn crc32c_reference(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc ^ 0xFFFF_FFFF
}

/// A payload of `len` bytes counting up from `start`.
fn ramp(start: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(i as u8)).collect()
}

fn segment(index: u32, count: u32, offset: u64) -> Option<Segment> {
    Some(Segment {
        index,
        count,
        offset,
    })
}

/// Collects the vectors in order; names must be unique.
struct Builder {
    frames: Vec<FrameVector>,
}

impl Builder {
    fn valid(&mut self, name: &str, description: &str, header: Header, payload: &[u8]) {
        let bytes = frame::encode_to_vec(&header, payload)
            .unwrap_or_else(|e| panic!("vector {name}: encode failed: {e}"));
        self.frames.push(FrameVector {
            name: format!("valid_{name}"),
            description: description.to_owned(),
            decode_options: OptionsJson::DEFAULT,
            hex: hex::encode(&bytes),
            valid: true,
            frame: Some(frame_json(&header, payload, &bytes)),
            error: None,
        });
    }

    fn invalid(&mut self, name: &str, description: &str, bytes: Vec<u8>, expected: &str) {
        self.invalid_with(name, description, OptionsJson::DEFAULT, bytes, expected);
    }

    fn invalid_with(
        &mut self,
        name: &str,
        description: &str,
        options: OptionsJson,
        bytes: Vec<u8>,
        expected: &str,
    ) {
        let error = match FrameView::decode(&bytes, options.to_options()) {
            Ok(_) => panic!("vector {name}: decode accepted bytes meant to fail with {expected}"),
            Err(error) => error,
        };
        assert_eq!(error.name(), expected, "vector {name}: {error}");
        self.frames.push(FrameVector {
            name: format!("invalid_{name}"),
            description: description.to_owned(),
            decode_options: options,
            hex: hex::encode(&bytes),
            valid: false,
            frame: None,
            error: Some(frame_error_json(&error)),
        });
    }
}

/// Encodes `header` + `payload`, lets `mutate` break it, then recomputes the CRC so that the
/// mutation is the only thing wrong with the frame.
fn broken(header: Header, payload: &[u8], mutate: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = frame::encode_to_vec(&header, payload).expect("base of an invalid vector");
    mutate(&mut bytes);
    frame::seal(&mut bytes);
    bytes
}

/// Byte offsets of the base header fields the invalid vectors touch (see the spec's table).
mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 2;
    pub const LANE: usize = 3;
    pub const PACKET_TYPE: usize = 4;
    pub const RECIPIENT_KIND: usize = 5;
    pub const FLAGS: usize = 6;
    pub const LIFETIME: usize = 38;
    pub const PAYLOAD_LEN: usize = 40;
    pub const SEGMENT_INDEX: usize = 48;
    pub const SEGMENT_COUNT: usize = 52;
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// A typical fast-lane request used as the base of most invalid vectors.
fn request() -> Header {
    Header {
        flags: Flags::ACK_REQUIRED,
        sender_id: 17,
        recipient_id: 42,
        recipient_port: 1101,
        sender_port: 1200,
        route_id: 5,
        request_id: 1000,
        hop_limit: 8,
        ..Header::new(Lane::Fast, PacketType::Data)
    }
}

/// A bulk-lane segment used as the base of the segment vectors.
fn bulk_segment() -> Header {
    Header {
        flags: Flags::ACK_REQUIRED,
        sender_id: 17,
        recipient_id: 42,
        recipient_port: 1102,
        sender_port: 1200,
        route_id: 6,
        request_id: 2000,
        hop_limit: 8,
        segment: segment(2, 8, 2 * 65_536),
        ..Header::new(Lane::Bulk, PacketType::Data)
    }
}

/// A stream-lane frame used as the base of the stream vectors.
fn stream_frame() -> Header {
    Header {
        recipient_kind: RecipientKind::Group,
        sender_id: 17,
        recipient_id: 900,
        recipient_port: 1300,
        sender_port: 1300,
        route_id: 7,
        request_id: 3000,
        sequence: 3000,
        hop_limit: 4,
        lifetime: 4,
        ..Header::new(Lane::Stream, PacketType::Stream)
    }
}

/// Every frame vector, valid ones first.
pub fn frame_vectors() -> Vec<FrameVector> {
    let mut b = Builder { frames: Vec::new() };
    valid_vectors(&mut b);
    invalid_vectors(&mut b);
    b.frames
}

fn valid_vectors(b: &mut Builder) {
    let zero_fast = Header::new(Lane::Fast, PacketType::Data);
    b.valid(
        "fast_data_minimal",
        "The smallest frame: fast-lane DATA, every field zero, empty payload (48 bytes).",
        zero_fast,
        &[],
    );
    b.valid(
        "fast_data_hello",
        "A fast-lane request to station 2, port 1101, asking for an ACK; the CRC32C worked \
         example of the spec.",
        Header {
            flags: Flags::ACK_REQUIRED,
            sender_id: 1,
            recipient_id: 2,
            recipient_port: 1101,
            sender_port: 1101,
            route_id: 1,
            request_id: 1,
            hop_limit: 8,
            ..zero_fast
        },
        b"hello",
    );
    b.valid(
        "fast_ack",
        "ACK of request 1000 from station 42 back to the sender port of the request.",
        Header {
            packet_type: PacketType::Ack,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1101,
            route_id: 5,
            request_id: 1000,
            hop_limit: 8,
            priority: 7,
            ..zero_fast
        },
        &[],
    );
    b.valid(
        "fast_nack",
        "NACK of request 1000 carrying an (illustrative) 2-byte error code in the payload.",
        Header {
            packet_type: PacketType::Nack,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1101,
            route_id: 5,
            request_id: 1000,
            hop_limit: 8,
            ..zero_fast
        },
        &[0x04, 0x00],
    );
    b.valid(
        "fast_audit",
        "AUDIT record of a dead-lettered request, sent back to its sender after the last attempt.",
        Header {
            packet_type: PacketType::Audit,
            flags: Flags::ACK_REQUIRED,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 5,
            route_id: 5,
            request_id: 1000,
            attempt: 7,
            hop_limit: 8,
            ..zero_fast
        },
        b"dead-letter: attempt budget exhausted",
    );
    b.valid(
        "fast_control_discovery",
        "CONTROL to the DISCOVERY service (port 3) of any station.",
        Header {
            packet_type: PacketType::Control,
            recipient_kind: RecipientKind::Service,
            flags: Flags::ACK_REQUIRED,
            sender_id: 17,
            recipient_port: 3,
            sender_port: 3,
            request_id: 77,
            hop_limit: 16,
            priority: 255,
            ..zero_fast
        },
        &ramp(0x30, 12),
    );
    b.valid(
        "fast_heartbeat",
        "HEARTBEAT from station 17 to its neighbour for dead-man detection; no payload.",
        Header {
            packet_type: PacketType::Heartbeat,
            sender_id: 17,
            recipient_id: 42,
            recipient_port: 7,
            sender_port: 7,
            request_id: 123_456,
            sequence: 99,
            hop_limit: 1,
            ..zero_fast
        },
        &[],
    );
    b.valid(
        "fast_busy",
        "BUSY: station 42's queue for port 1101 is full; the sender of request 1000 backs off.",
        Header {
            packet_type: PacketType::Busy,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1101,
            route_id: 5,
            request_id: 1000,
            hop_limit: 8,
            ..zero_fast
        },
        &[],
    );

    let bulk = bulk_segment();
    b.valid(
        "bulk_data_first_segment",
        "First of 8 bulk segments, offset 0.",
        Header {
            segment: segment(0, 8, 0),
            ..bulk
        },
        &ramp(0, 64),
    );
    b.valid(
        "bulk_data_beyond_4gib",
        "Last segment of a 4.6 GB object: index 70000 of 70001 at offset 4 587 520 000, past \
         the 4 GiB a u32 offset could reach.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::FINAL),
            segment: segment(70_000, 70_001, 70_000 * 65_536),
            ..bulk
        },
        &ramp(0xA0, 100),
    );
    b.valid(
        "bulk_data_single_segment",
        "An object of one segment: index 0, count 1, FINAL.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::FINAL),
            segment: segment(0, 1, 0),
            ..bulk
        },
        b"whole object",
    );
    b.valid(
        "bulk_data_max_segment",
        "Largest segment position: index 4294967294 of 4294967295, offset 2^64 - 2^16.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::FINAL),
            segment: segment(u32::MAX - 1, u32::MAX, u64::MAX - 65_535),
            ..bulk
        },
        &ramp(0xF0, 16),
    );
    b.valid(
        "bulk_data_empty_segment",
        "A segment with an empty payload (an empty object is one empty segment).",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::FINAL),
            segment: segment(0, 1, 0),
            ..bulk
        },
        &[],
    );
    b.valid(
        "bulk_ack",
        "Selective bulk ACK carrying the receiver's segment map as its payload (here an \
         illustrative one-byte bitmap; the map's format belongs to the bulk lane), without a \
         segment extension.",
        Header {
            packet_type: PacketType::Ack,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1102,
            segment: None,
            ..bulk
        },
        &[0b1011_0111],
    );
    b.valid(
        "bulk_nack",
        "Bulk NACK: the transfer is refused with an error code.",
        Header {
            packet_type: PacketType::Nack,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1102,
            segment: None,
            ..bulk
        },
        &[0x09, 0x00],
    );
    b.valid(
        "bulk_audit",
        "Bulk AUDIT record of a transfer that was abandoned.",
        Header {
            packet_type: PacketType::Audit,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 6,
            segment: None,
            ..bulk
        },
        b"transfer abandoned",
    );
    b.valid(
        "bulk_control_transfer",
        "Bulk CONTROL to the TRANSFER service (port 9): a resume request.",
        Header {
            packet_type: PacketType::Control,
            recipient_port: 9,
            sender_port: 9,
            segment: None,
            ..bulk
        },
        &ramp(0x10, 24),
    );
    b.valid(
        "bulk_busy",
        "Bulk BUSY: the receiver's spool is full, the sender pauses the transfer.",
        Header {
            packet_type: PacketType::Busy,
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1102,
            segment: None,
            ..bulk
        },
        &[],
    );

    let stream = stream_frame();
    b.valid(
        "stream_frame",
        "Stream frame to group 900 with 4 cycles of lifetime left.",
        stream,
        &ramp(0x80, 32),
    );
    b.valid(
        "stream_final_max_lifetime",
        "Last frame of a stream (FINAL), largest lifetime 255.",
        Header {
            flags: Flags::FINAL,
            lifetime: 255,
            sequence: u32::MAX,
            ..stream
        },
        b"eof",
    );
    b.valid(
        "stream_expired_lifetime_zero",
        "Stream frame whose lifetime reached 0: still well formed; the receiver drops it \
         instead of forwarding it.",
        Header {
            lifetime: 0,
            ..stream
        },
        &ramp(0x81, 8),
    );
    b.valid(
        "stream_control",
        "CONTROL on the stream lane (Terminator phase change), never acknowledged.",
        Header {
            packet_type: PacketType::Control,
            recipient_kind: RecipientKind::Broadcast,
            recipient_id: 0,
            recipient_port: 0,
            sender_port: 0,
            lifetime: 3,
            ..stream
        },
        &[0x02],
    );

    let flagged = request();
    b.valid(
        "flag_trace_requested",
        "TRACE_REQUESTED: every station the frame crosses sends trace reports.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::TRACE_REQUESTED),
            ..flagged
        },
        b"trace me",
    );
    b.valid(
        "flag_compressed",
        "COMPRESSED: the payload is an LZ4 block.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::COMPRESSED),
            ..flagged
        },
        &[0x50, 0x61, 0x62, 0x63, 0x64, 0x65],
    );
    b.valid(
        "flag_tpf",
        "TPF: the payload is a TPF v1 message.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::TPF),
            ..flagged
        },
        &ramp(0x01, 20),
    );
    b.valid(
        "flag_reply",
        "REPLY without ACK_REQUIRED: the answer to request 1000.",
        Header {
            flags: Flags::REPLY,
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1101,
            ..flagged
        },
        b"answer",
    );
    b.valid(
        "flag_final_fast",
        "FINAL on the fast lane: the last of a yield-style series of replies.",
        Header {
            flags: Flags::REPLY.with(Flags::FINAL),
            sender_id: 42,
            recipient_id: 17,
            recipient_port: 1200,
            sender_port: 1101,
            sequence: 3,
            ..flagged
        },
        b"last part",
    );
    b.valid(
        "flag_forwarded",
        "FORWARDED by an intermediate station: sender_id is still the originator, hop_limit \
         has been decremented.",
        Header {
            flags: Flags::ACK_REQUIRED.with(Flags::FORWARDED),
            hop_limit: 6,
            ..flagged
        },
        b"relayed",
    );
    let all_but_segmented = Flags::ACK_REQUIRED
        | Flags::TRACE_REQUESTED
        | Flags::COMPRESSED
        | Flags::TPF
        | Flags::REPLY
        | Flags::FINAL
        | Flags::FORWARDED;
    b.valid(
        "flags_all_fast",
        "Every flag a fast-lane frame may carry (all defined bits but SEGMENTED): 0x00FB.",
        Header {
            flags: all_but_segmented,
            ..flagged
        },
        &ramp(0x40, 4),
    );
    b.valid(
        "flags_all_bulk_data",
        "Every defined flag, SEGMENTED included, on a bulk DATA segment: 0x00FF.",
        Header {
            flags: all_but_segmented,
            ..bulk
        },
        &ramp(0x41, 4),
    );
    b.valid(
        "recipient_service_instance",
        "SERVICE recipient with a service instance id: Czech translation port 150.",
        Header {
            recipient_kind: RecipientKind::Service,
            recipient_id: 3,
            recipient_port: 150,
            ..flagged
        },
        "Dobrý den".as_bytes(),
    );
    b.valid(
        "recipient_group",
        "GROUP recipient: chat group 77 on port 1400.",
        Header {
            recipient_kind: RecipientKind::Group,
            recipient_id: 77,
            recipient_port: 1400,
            ..flagged
        },
        b"hi all",
    );
    b.valid(
        "recipient_broadcast",
        "BROADCAST to every station (recipient_id 0), emergency notice on port 1401.",
        Header {
            recipient_kind: RecipientKind::Broadcast,
            recipient_id: 0,
            recipient_port: 1401,
            flags: Flags::NONE,
            hop_limit: 255,
            ..flagged
        },
        b"evacuate",
    );
    b.valid(
        "max_values_fast",
        "Every integer at its maximum on a fast-lane frame: ids 2^32-1, ports 65535, \
         request_id 2^64-1, sequence 2^32-1, attempt, hop_limit and priority 255.",
        Header {
            lane: Lane::Fast,
            packet_type: PacketType::Control,
            recipient_kind: RecipientKind::Broadcast,
            flags: all_but_segmented,
            sender_id: u32::MAX,
            recipient_id: u32::MAX,
            recipient_port: u16::MAX,
            sender_port: u16::MAX,
            route_id: u32::MAX,
            request_id: u64::MAX,
            sequence: u32::MAX,
            attempt: u8::MAX,
            hop_limit: u8::MAX,
            lifetime: 0,
            priority: u8::MAX,
            segment: None,
        },
        &[0xFF; 8],
    );
    b.valid(
        "payload_1k",
        "A 1 KiB payload counting up from 0.",
        flagged,
        &ramp(0, 1024),
    );
    b.valid(
        "payload_all_byte_values",
        "A payload holding every byte value 0x00..=0xFF once.",
        flagged,
        &ramp(0, 256),
    );
    let inner = frame::encode_to_vec(&request(), b"inner").expect("inner frame");
    b.valid(
        "payload_is_a_frame",
        "The payload is itself a complete frame: decoders must not look inside payloads.",
        Header {
            recipient_port: 20,
            ..flagged
        },
        &inner,
    );
}

fn invalid_vectors(b: &mut Builder) {
    let base = frame::encode_to_vec(&request(), b"hello").expect("base frame");

    b.invalid(
        "truncated_empty",
        "No bytes at all.",
        Vec::new(),
        "Truncated",
    );
    b.invalid(
        "truncated_base_header",
        "47 bytes: one short of a base header.",
        base[..BASE_HEADER_LEN - 1].to_vec(),
        "Truncated",
    );
    let segmented = frame::encode_to_vec(&bulk_segment(), &ramp(0, 10)).expect("segmented");
    b.invalid(
        "truncated_segment_extension",
        "A SEGMENTED bulk DATA frame cut at byte 56, inside its segment extension: 64 needed.",
        segmented[..56].to_vec(),
        "Truncated",
    );
    b.invalid(
        "truncated_payload",
        "payload_len says 5 but only 3 payload bytes follow: 53 needed.",
        base[..base.len() - 2].to_vec(),
        "Truncated",
    );
    b.invalid(
        "bad_magic",
        "The magic is \"TX\" instead of \"TT\".",
        broken(request(), b"hello", |f| f[at::MAGIC + 1] = b'X'),
        "BadMagic",
    );
    b.invalid(
        "bad_magic_zeros",
        "48 zero bytes: magic 0x0000.",
        vec![0; BASE_HEADER_LEN],
        "BadMagic",
    );
    b.invalid(
        "unsupported_version_0",
        "Version byte 0.",
        broken(request(), b"hello", |f| f[at::VERSION] = 0),
        "UnsupportedVersion",
    );
    b.invalid(
        "unsupported_version_2",
        "Version byte 2: a later version this decoder does not speak.",
        broken(request(), b"hello", |f| f[at::VERSION] = 2),
        "UnsupportedVersion",
    );
    b.invalid(
        "unknown_lane",
        "Lane byte 3: only 0 (FAST), 1 (BULK) and 2 (STREAM) exist.",
        broken(request(), b"hello", |f| f[at::LANE] = 3),
        "UnknownLane",
    );
    b.invalid(
        "unknown_lane_255",
        "Lane byte 255.",
        broken(request(), b"hello", |f| f[at::LANE] = 255),
        "UnknownLane",
    );
    b.invalid(
        "unknown_packet_type",
        "Packet type byte 8: only 0..=7 exist.",
        broken(request(), b"hello", |f| f[at::PACKET_TYPE] = 8),
        "UnknownPacketType",
    );
    b.invalid(
        "unknown_recipient_kind",
        "Recipient kind byte 4: only 0..=3 exist.",
        broken(request(), b"hello", |f| f[at::RECIPIENT_KIND] = 4),
        "UnknownRecipientKind",
    );
    b.invalid(
        "reserved_flag_bit_8",
        "Reserved flag bit 8 set (flags 0x0101).",
        broken(request(), b"hello", |f| put_u16(f, at::FLAGS, 0x0101)),
        "ReservedFlags",
    );
    b.invalid(
        "reserved_flag_bit_15",
        "Reserved flag bit 15 set (flags 0x8001).",
        broken(request(), b"hello", |f| put_u16(f, at::FLAGS, 0x8001)),
        "ReservedFlags",
    );
    b.invalid(
        "type_stream_on_fast_lane",
        "Packet type STREAM on the FAST lane.",
        broken(request(), b"hello", |f| {
            f[at::PACKET_TYPE] = PacketType::Stream.to_u8();
            put_u16(f, at::FLAGS, 0);
        }),
        "TypeNotAllowedOnLane",
    );
    b.invalid(
        "type_heartbeat_on_bulk_lane",
        "Packet type HEARTBEAT on the BULK lane.",
        broken(request(), b"hello", |f| {
            f[at::LANE] = Lane::Bulk.to_u8();
            f[at::PACKET_TYPE] = PacketType::Heartbeat.to_u8();
        }),
        "TypeNotAllowedOnLane",
    );
    b.invalid(
        "type_data_on_stream_lane",
        "Packet type DATA on the STREAM lane.",
        broken(stream_frame(), b"hello", |f| {
            f[at::PACKET_TYPE] = PacketType::Data.to_u8();
        }),
        "TypeNotAllowedOnLane",
    );
    b.invalid(
        "ack_required_on_stream_lane",
        "ACK_REQUIRED on a STREAM frame: the stream lane is never acknowledged.",
        broken(stream_frame(), b"hello", |f| {
            put_u16(f, at::FLAGS, Flags::ACK_REQUIRED.bits());
        }),
        "AckOnStreamLane",
    );
    b.invalid(
        "segment_missing_on_bulk_data",
        "A bulk DATA frame without the SEGMENTED bit (and without the extension).",
        broken(request(), b"hello", |f| f[at::LANE] = Lane::Bulk.to_u8()),
        "SegmentMismatch",
    );
    b.invalid(
        "segment_on_fast_data",
        "SEGMENTED set on a fast-lane DATA frame.",
        broken(bulk_segment(), &ramp(0, 10), |f| {
            f[at::LANE] = Lane::Fast.to_u8()
        }),
        "SegmentMismatch",
    );
    b.invalid(
        "segment_on_bulk_ack",
        "SEGMENTED set on a bulk ACK: only bulk DATA carries the extension.",
        broken(bulk_segment(), &ramp(0, 10), |f| {
            f[at::PACKET_TYPE] = PacketType::Ack.to_u8();
        }),
        "SegmentMismatch",
    );
    b.invalid(
        "segment_index_equals_count",
        "segment_index 8 with segment_count 8.",
        broken(bulk_segment(), &ramp(0, 10), |f| {
            put_u32(f, at::SEGMENT_INDEX, 8)
        }),
        "SegmentOutOfRange",
    );
    b.invalid(
        "segment_count_zero",
        "segment_count 0 (and index 0): an object has at least one segment.",
        broken(bulk_segment(), &ramp(0, 10), |f| {
            put_u32(f, at::SEGMENT_INDEX, 0);
            put_u32(f, at::SEGMENT_COUNT, 0);
        }),
        "SegmentOutOfRange",
    );
    b.invalid(
        "lifetime_on_fast_lane",
        "lifetime 3 on a fast-lane frame.",
        broken(request(), b"hello", |f| f[at::LIFETIME] = 3),
        "LifetimeOutsideStream",
    );
    b.invalid(
        "lifetime_on_bulk_lane",
        "lifetime 1 on a bulk segment.",
        broken(bulk_segment(), &ramp(0, 10), |f| f[at::LIFETIME] = 1),
        "LifetimeOutsideStream",
    );
    b.invalid(
        "oversize_default_limit",
        "payload_len 1 MiB + 1 against the default 1 MiB limit; only the header is present, \
         because the limit is checked before the length.",
        broken(request(), &[], |f| {
            put_u32(f, at::PAYLOAD_LEN, PAYLOAD_LEN_MAX_DEFAULT + 1);
        }),
        "Oversize",
    );
    b.invalid_with(
        "oversize_receiver_limit",
        "A complete, correct frame with a 17-byte payload, decoded by a receiver whose limit \
         is 16 bytes.",
        OptionsJson {
            payload_len_max: 16,
            verify_checksum: true,
        },
        frame::encode_to_vec(&request(), &ramp(0, 17)).expect("17-byte frame"),
        "Oversize",
    );
    b.invalid_with(
        "oversize_protocol_limit",
        "payload_len 16 MiB + 1 against a receiver limit of 2^32 - 1: the protocol's 16 MiB \
         caps every receiver limit.",
        OptionsJson {
            payload_len_max: u32::MAX,
            verify_checksum: true,
        },
        broken(request(), &[], |f| {
            put_u32(f, at::PAYLOAD_LEN, PAYLOAD_LEN_MAX_PROTOCOL + 1);
        }),
        "Oversize",
    );
    let mut trailing = base.clone();
    trailing.push(0);
    b.invalid(
        "length_mismatch_trailing_byte",
        "One byte after the declared end: a datagram or stream record holds exactly one frame.",
        trailing,
        "LengthMismatch",
    );
    let mut flipped = base.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    b.invalid(
        "checksum_payload_bit_flip",
        "The lowest bit of the last payload byte flipped after sealing.",
        flipped,
        "ChecksumMismatch",
    );
    let mut wrong_crc = base.clone();
    wrong_crc[CRC_OFFSET] ^= 0x80;
    b.invalid(
        "checksum_field_corrupted",
        "The crc32c field itself corrupted.",
        wrong_crc,
        "ChecksumMismatch",
    );
    let mut whole = base.clone();
    whole[CRC_OFFSET..BASE_HEADER_LEN].fill(0);
    let crc_whole = crc32c_reference(&whole);
    whole[CRC_OFFSET..BASE_HEADER_LEN].copy_from_slice(&crc_whole.to_le_bytes());
    b.invalid(
        "checksum_over_zeroed_field",
        "A common mistake: the CRC computed over all bytes with the crc32c field zeroed, \
         instead of skipping those four bytes.",
        whole,
        "ChecksumMismatch",
    );
    b.invalid(
        "checksum_big_endian",
        "A common mistake: the right CRC32C stored big-endian.",
        {
            let mut bytes = base.clone();
            bytes[CRC_OFFSET..BASE_HEADER_LEN].reverse();
            bytes
        },
        "ChecksumMismatch",
    );

    // Vectors with several faults pin the normative check order.
    b.invalid(
        "order_version_before_lane",
        "Version 2 and lane 9: the version is checked first.",
        broken(request(), b"hello", |f| {
            f[at::VERSION] = 2;
            f[at::LANE] = 9;
        }),
        "UnsupportedVersion",
    );
    b.invalid(
        "order_enums_before_flags",
        "Unknown recipient kind 7 and reserved flag bit 12: enumerations come before flags.",
        broken(request(), b"hello", |f| {
            f[at::RECIPIENT_KIND] = 7;
            put_u16(f, at::FLAGS, 0x1001);
        }),
        "UnknownRecipientKind",
    );
    b.invalid(
        "order_flags_before_combination",
        "Reserved flag bit 9 on a STREAM-type fast frame: reserved bits come before the \
         combination rules.",
        broken(request(), b"hello", |f| {
            f[at::PACKET_TYPE] = PacketType::Stream.to_u8();
            put_u16(f, at::FLAGS, 0x0200);
        }),
        "ReservedFlags",
    );
    b.invalid(
        "order_lane_type_before_lifetime",
        "HEARTBEAT on the bulk lane with lifetime 5: the lane/type rule comes first.",
        broken(request(), b"hello", |f| {
            f[at::LANE] = Lane::Bulk.to_u8();
            f[at::PACKET_TYPE] = PacketType::Heartbeat.to_u8();
            f[at::LIFETIME] = 5;
        }),
        "TypeNotAllowedOnLane",
    );
    b.invalid(
        "order_segment_before_oversize",
        "segment_count 0 and payload_len 2 MiB: the segment range comes before the limit.",
        broken(bulk_segment(), &[], |f| {
            put_u32(f, at::SEGMENT_COUNT, 0);
            put_u32(f, at::PAYLOAD_LEN, 2 * 1024 * 1024);
        }),
        "SegmentOutOfRange",
    );
    b.invalid(
        "order_combination_before_extension_length",
        "SEGMENTED on a fast frame that is only 48 bytes long: the combination rule is \
         checked before the extension's length.",
        broken(request(), &[], |f| {
            put_u16(f, at::FLAGS, Flags::SEGMENTED.bits());
        }),
        "SegmentMismatch",
    );
    b.invalid(
        "order_length_before_checksum",
        "A trailing byte and a corrupted CRC: the length is checked before the checksum.",
        {
            let mut bytes = base.clone();
            bytes[CRC_OFFSET] ^= 0xFF;
            bytes.push(0xEE);
            bytes
        },
        "LengthMismatch",
    );
}

/// Every stream vector.
pub fn stream_vectors() -> Vec<StreamVector> {
    let frames: Vec<Vec<u8>> = [
        (request(), b"one".as_slice()),
        (bulk_segment(), &[7u8; 20]),
        (stream_frame(), &[]),
        (
            Header {
                request_id: 1001,
                ..request()
            },
            b"four".as_slice(),
        ),
    ]
    .iter()
    .map(|(header, payload)| prefixed(header, payload))
    .collect();
    let concat = |parts: &[&[u8]]| parts.concat();
    let body = |record: &[u8]| record[PREFIX_LEN..].to_vec();
    let mut vectors = Vec::new();
    let mut push = |name: &str,
                    description: &str,
                    frame_len_max: u32,
                    wire: Vec<u8>,
                    expected: Vec<Vec<u8>>,
                    error: Option<StreamError>,
                    buffered_at_end: Option<u32>| {
        let vector = StreamVector {
            name: name.to_owned(),
            description: description.to_owned(),
            frame_len_max,
            hex: hex::encode(&wire),
            frames: expected.iter().map(hex::encode).collect(),
            error: error.as_ref().map(stream_error_json),
            buffered_at_end,
        };
        assert_eq!(
            run_reference(&vector.wire(), frame_len_max),
            (expected, error, buffered_at_end),
            "stream vector {name}"
        );
        vectors.push(vector);
    };

    push(
        "stream_empty",
        "No bytes: no frames, nothing held.",
        1024,
        Vec::new(),
        vec![],
        None,
        Some(0),
    );
    push(
        "stream_one_frame",
        "One length-prefixed fast-lane frame.",
        1024,
        frames[0].clone(),
        vec![body(&frames[0])],
        None,
        Some(0),
    );
    push(
        "stream_four_frames",
        "Four frames of three lanes back to back, one of them segmented.",
        1024,
        concat(&[&frames[0], &frames[1], &frames[2], &frames[3]]),
        frames.iter().map(|f| body(f)).collect(),
        None,
        Some(0),
    );
    push(
        "stream_partial_tail",
        "Two frames followed by the first 10 bytes of a third: the tail stays buffered.",
        1024,
        concat(&[&frames[0], &frames[2], &frames[3][..10]]),
        vec![body(&frames[0]), body(&frames[2])],
        None,
        Some(10),
    );
    push(
        "stream_partial_prefix",
        "One frame followed by 2 bytes of the next prefix.",
        1024,
        concat(&[&frames[0], &frames[1][..2]]),
        vec![body(&frames[0])],
        None,
        Some(2),
    );
    let header_only = frames[2].clone();
    let header_only_len = (header_only.len() - PREFIX_LEN) as u32;
    push(
        "stream_frame_len_at_max",
        "A frame exactly frame_len_max bytes long is accepted.",
        header_only_len,
        header_only.clone(),
        vec![body(&header_only)],
        None,
        Some(0),
    );
    push(
        "stream_not_parsed",
        "The framer does not parse frames: 48 zero bytes (not a valid frame) are still \
         delimited and returned.",
        1024,
        concat(&[&48u32.to_le_bytes(), &[0u8; 48]]),
        vec![vec![0u8; 48]],
        None,
        Some(0),
    );
    push(
        "stream_too_large",
        "A prefix one above frame_len_max fails at once, before the frame's bytes arrive.",
        1024,
        1025u32.to_le_bytes().to_vec(),
        vec![],
        Some(StreamError::FrameTooLarge {
            len: 1025,
            max: 1024,
        }),
        None,
    );
    push(
        "stream_too_large_after_frames",
        "Two good frames, then a prefix of 0xFFFFFFFF: the frames are delivered, then the \
         stream fails.",
        1024,
        concat(&[&frames[0], &frames[3], &u32::MAX.to_le_bytes(), &[0xAB; 8]]),
        vec![body(&frames[0]), body(&frames[3])],
        Some(StreamError::FrameTooLarge {
            len: u32::MAX,
            max: 1024,
        }),
        None,
    );
    push(
        "stream_too_large_prefix_at_max_plus_one",
        "With frame_len_max equal to a 48-byte frame, a 49-byte frame is too large.",
        header_only_len,
        concat(&[&header_only, &(header_only_len + 1).to_le_bytes()]),
        vec![body(&header_only)],
        Some(StreamError::FrameTooLarge {
            len: header_only_len + 1,
            max: header_only_len,
        }),
        None,
    );
    push(
        "stream_too_small",
        "A prefix of 47: shorter than any frame header.",
        1024,
        concat(&[&47u32.to_le_bytes(), &[0u8; 47]]),
        vec![],
        Some(StreamError::FrameTooSmall { len: 47 }),
        None,
    );
    push(
        "stream_too_small_zero_after_frame",
        "One frame, then a zero prefix.",
        1024,
        concat(&[&frames[0], &0u32.to_le_bytes()]),
        vec![body(&frames[0])],
        Some(StreamError::FrameTooSmall { len: 0 }),
        None,
    );
    vectors
}

fn prefixed(header: &Header, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; PREFIX_LEN + header.header_len() + payload.len()];
    let n = encode_prefixed(header, payload, &mut out).expect("stream vector frame");
    assert_eq!(n, out.len());
    out
}

impl StreamVector {
    /// The byte stream.
    pub fn wire(&self) -> Vec<u8> {
        hex::decode(&self.hex).expect("stream vector hex")
    }
}

impl FrameVector {
    /// The frame bytes.
    pub fn bytes(&self) -> Vec<u8> {
        hex::decode(&self.hex).expect("frame vector hex")
    }
}

/// What a framer must produce for `wire`: the frames, the error if any, and the bytes held at
/// the end when there is no error. A plain reading of `spec/wire/Frame-v1.md` §7 over the
/// whole stream, independent of [`tamtam_engine::core::wire::stream::StreamDecoder`].
pub fn run_reference(
    wire: &[u8],
    frame_len_max: u32,
) -> (Vec<Vec<u8>>, Option<StreamError>, Option<u32>) {
    let mut frames = Vec::new();
    let mut rest = wire;
    loop {
        let Some((prefix, after)) = rest.split_first_chunk::<PREFIX_LEN>() else {
            return (frames, None, Some(rest.len() as u32));
        };
        let len = u32::from_le_bytes(*prefix);
        if len > frame_len_max {
            let error = StreamError::FrameTooLarge {
                len,
                max: frame_len_max,
            };
            return (frames, Some(error), None);
        }
        if (len as usize) < BASE_HEADER_LEN {
            return (frames, Some(StreamError::FrameTooSmall { len }), None);
        }
        if after.len() < len as usize {
            return (frames, None, Some(rest.len() as u32));
        }
        let (frame, next) = after.split_at(len as usize);
        frames.push(frame.to_vec());
        rest = next;
    }
}

/// The seed inputs of the fuzz targets, one `(target, file name, bytes)` per file of
/// `fuzz/seeds/`. The input layouts are documented in each target.
pub fn fuzz_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for vector in frame_vectors() {
        seeds.push(("frame_decode", vector.name.clone(), vector.bytes()));
        if let Some(frame) = &vector.frame {
            seeds.push((
                "frame_roundtrip",
                vector.name.clone(),
                roundtrip_seed(frame),
            ));
        }
    }
    for vector in stream_vectors() {
        // frame_len_max = 48 + (selector % 4096); vectors above that range are clamped.
        let selector = vector
            .frame_len_max
            .saturating_sub(BASE_HEADER_LEN as u32)
            .min(4095) as u16;
        let mut input = selector.to_le_bytes().to_vec();
        // Three chunk sizes (1 + byte): 1, 7 and 64 bytes, cycled over the stream.
        input.extend_from_slice(&[3, 0, 6, 63]);
        input.extend_from_slice(&vector.wire());
        seeds.push(("stream_framer", vector.name.clone(), input));
    }
    seeds
}

/// A valid vector in the input layout of the `frame_roundtrip` fuzz target: the header fields
/// in wire order, little-endian, flags without `SEGMENTED`, then a presence byte and the
/// segment, then the payload.
fn roundtrip_seed(frame: &FrameJson) -> Vec<u8> {
    let lane = Lane::ALL.iter().position(|l| l.name() == frame.lane);
    let packet_type = PacketType::ALL
        .iter()
        .position(|t| t.name() == frame.packet_type);
    let recipient_kind = RecipientKind::ALL
        .iter()
        .position(|k| k.name() == frame.recipient_kind);
    let mut out = vec![
        lane.expect("lane") as u8,
        packet_type.expect("packet type") as u8,
        recipient_kind.expect("recipient kind") as u8,
    ];
    let flags = frame.flags_bits & !Flags::SEGMENTED.bits();
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&frame.sender_id.to_le_bytes());
    out.extend_from_slice(&frame.recipient_id.to_le_bytes());
    out.extend_from_slice(&frame.recipient_port.to_le_bytes());
    out.extend_from_slice(&frame.sender_port.to_le_bytes());
    out.extend_from_slice(&frame.route_id.to_le_bytes());
    out.extend_from_slice(&frame.request_id.to_le_bytes());
    out.extend_from_slice(&frame.sequence.to_le_bytes());
    out.extend_from_slice(&[
        frame.attempt,
        frame.hop_limit,
        frame.lifetime,
        frame.priority,
    ]);
    match frame.segment {
        Some(segment) => {
            out.push(1);
            out.extend_from_slice(&segment.index.to_le_bytes());
            out.extend_from_slice(&segment.count.to_le_bytes());
            out.extend_from_slice(&segment.offset.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&hex::decode(&frame.payload).expect("payload hex"));
    out
}
