//! Wire frame v1: the fixed little-endian header every TamTam frame starts with.
//!
//! The normative description is `spec/wire/Frame-v1.md`; this module follows it. A frame is a
//! 48-byte base header, an optional 16-byte segment extension (present exactly when the
//! `SEGMENTED` wire bit is set, which only bulk-lane DATA frames may do), then the payload.
//!
//! ```text
//!  0       1       2       3       4       5       6       7
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |     magic     |version| lane  | type  | rkind |     flags     |  0
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |           sender_id           |         recipient_id          |  8
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! | recipient_port|  sender_port  |           route_id            | 16
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |                          request_id                           | 24
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |           sequence            |attempt| hops  | life  | prio  | 32
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |          payload_len          |            crc32c             | 40
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |         segment_index         |         segment_count         | 48  (SEGMENTED only)
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |                         object_offset                         | 56  (SEGMENTED only)
//! +-------+-------+-------+-------+-------+-------+-------+-------+
//! |                     payload (payload_len bytes)               | 48 or 64
//! ```
//!
//! All integers are little-endian. The CRC32C (Castagnoli) covers every byte of the frame
//! except the four bytes of the `crc32c` field itself: bytes `0..44`, then `48..end`.
//!
//! Decoding never panics, never allocates and never reads past the input: it either returns a
//! [`FrameView`] over validated bytes, whose accessors are then infallible, or a [`FrameError`]
//! naming what is wrong.

use core::fmt;

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The two magic bytes, `"TT"`, read as a little-endian `u16`.
pub const MAGIC: u16 = u16::from_le_bytes(*b"TT");
/// The wire version this module speaks.
pub const VERSION: u8 = 1;
/// Size of the base header in bytes.
pub const BASE_HEADER_LEN: usize = 48;
/// Size of the segment extension in bytes (bulk-lane DATA frames only).
pub const SEGMENT_EXTENSION_LEN: usize = 16;
/// Size of the header of a segmented frame (base + segment extension).
pub const SEGMENTED_HEADER_LEN: usize = BASE_HEADER_LEN + SEGMENT_EXTENSION_LEN;
/// The largest payload any v1 frame may declare (16 MiB). Receivers usually set a lower limit
/// with [`DecodeOptions::payload_len_max`].
pub const PAYLOAD_LEN_MAX_PROTOCOL: u32 = 16 * 1024 * 1024;
/// The default payload limit of a receiver (1 MiB).
pub const PAYLOAD_LEN_MAX_DEFAULT: u32 = 1024 * 1024;
/// Byte offset of the CRC32C field inside the base header.
pub const CRC_OFFSET: usize = 44;

const _: () = assert!(core::mem::size_of::<RawHeader>() == BASE_HEADER_LEN);
const _: () = assert!(core::mem::size_of::<RawSegment>() == SEGMENT_EXTENSION_LEN);
const _: () = assert!(CRC_OFFSET + 4 == BASE_HEADER_LEN);
const _: () = assert!(PAYLOAD_LEN_MAX_DEFAULT <= PAYLOAD_LEN_MAX_PROTOCOL);

/// The base header exactly as laid out on the wire (see the module diagram).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct RawHeader {
    magic: U16,
    version: u8,
    lane: u8,
    packet_type: u8,
    recipient_kind: u8,
    flags: U16,
    sender_id: U32,
    recipient_id: U32,
    recipient_port: U16,
    sender_port: U16,
    route_id: U32,
    request_id: U64,
    sequence: U32,
    attempt: u8,
    hop_limit: u8,
    lifetime: u8,
    priority: u8,
    payload_len: U32,
    crc32c: U32,
}

/// The segment extension exactly as laid out on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
struct RawSegment {
    segment_index: U32,
    segment_count: U32,
    object_offset: U64,
}

/// Declares a `#[repr(u8)]` wire enum with a checked conversion from its byte.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $error:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The byte this value is encoded as.
            #[inline]
            pub const fn to_u8(self) -> u8 {
                self as u8
            }

            /// The value encoded by `byte`, or the error naming the unknown byte.
            #[inline]
            pub const fn from_u8(byte: u8) -> Result<Self, FrameError> {
                match byte {
                    $( $value => Ok($name::$variant), )+
                    other => Err(FrameError::$error(other)),
                }
            }

            /// The spec's name of this value (upper case, as in the vectors).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Parses the spec's name of a value.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// The Safari Bus lane a frame travels on.
    Lane, UnknownLane {
        /// Single-frame messages with ACK, always served first.
        Fast = 0 => "FAST",
        /// Segmented large transfers with selective ACK, disk-first, fair between transfers.
        Bulk = 1 => "BULK",
        /// Unacknowledged frames with a lifetime in cycles.
        Stream = 2 => "STREAM",
    }
}

wire_enum! {
    /// What a frame is.
    PacketType, UnknownPacketType {
        /// Application or service data.
        Data = 0 => "DATA",
        /// Acknowledgement of `request_id` (bulk: the payload carries the segment map).
        Ack = 1 => "ACK",
        /// Negative acknowledgement / error for `request_id`; payload carries the error code.
        Nack = 2 => "NACK",
        /// An audit record (for example a dead-lettered message) sent to the original sender.
        Audit = 3 => "AUDIT",
        /// Control-plane message to a system port (discovery, trace report, transfer control).
        Control = 4 => "CONTROL",
        /// A stream-lane frame (never acknowledged).
        Stream = 5 => "STREAM",
        /// Link liveness probe for dead-man detection.
        Heartbeat = 6 => "HEARTBEAT",
        /// Backpressure: the recipient's queue for `request_id` is full; back off and resend.
        Busy = 7 => "BUSY",
    }
}

wire_enum! {
    /// How `recipient_id` is interpreted.
    RecipientKind, UnknownRecipientKind {
        /// `recipient_id` is a StationId.
        Station = 0 => "STATION",
        /// Any station serving `recipient_port`; `recipient_id` is 0 or a service instance.
        Service = 1 => "SERVICE",
        /// `recipient_id` is a group id; every member receives it.
        Group = 2 => "GROUP",
        /// Every station; `recipient_id` is 0.
        Broadcast = 3 => "BROADCAST",
    }
}

/// Frame flags (the `flags` field). Bits not named here are reserved and must be zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// The recipient must acknowledge this frame.
    pub const ACK_REQUIRED: Flags = Flags(1 << 0);
    /// Every station the frame crosses emits trace reports (see `spec/model/Trace-v1.md`).
    pub const TRACE_REQUESTED: Flags = Flags(1 << 1);
    /// Wire-only bit: a segment extension follows the base header. Never part of
    /// [`Header::flags`]: it is derived from [`Header::segment`].
    pub const SEGMENTED: Flags = Flags(1 << 2);
    /// The payload is LZ4 block-compressed.
    pub const COMPRESSED: Flags = Flags(1 << 3);
    /// The payload is a TPF v1 message.
    pub const TPF: Flags = Flags(1 << 4);
    /// The frame answers the request `request_id` sent from `recipient_port`.
    pub const REPLY: Flags = Flags(1 << 5);
    /// This is the last frame of a bulk object or of a stream.
    pub const FINAL: Flags = Flags(1 << 6);
    /// The frame was forwarded by at least one intermediate station.
    pub const FORWARDED: Flags = Flags(1 << 7);
    /// Every defined bit.
    pub const DEFINED: Flags = Flags(0x00FF);

    const NAMES: [(Flags, &'static str); 8] = [
        (Flags::ACK_REQUIRED, "ACK_REQUIRED"),
        (Flags::TRACE_REQUESTED, "TRACE_REQUESTED"),
        (Flags::SEGMENTED, "SEGMENTED"),
        (Flags::COMPRESSED, "COMPRESSED"),
        (Flags::TPF, "TPF"),
        (Flags::REPLY, "REPLY"),
        (Flags::FINAL, "FINAL"),
        (Flags::FORWARDED, "FORWARDED"),
    ];

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Flags from raw bits; fails with [`FrameError::ReservedFlags`] when a reserved bit is set.
    #[inline]
    pub const fn from_bits(bits: u16) -> Result<Flags, FrameError> {
        if bits & !Flags::DEFINED.0 != 0 {
            return Err(FrameError::ReservedFlags {
                bits: bits & !Flags::DEFINED.0,
            });
        }
        Ok(Flags(bits))
    }

    /// Whether every bit of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with the bits of `other` added.
    #[inline]
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// These flags with the bits of `other` removed.
    #[inline]
    #[must_use]
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The spec names of the set flags, lowest bit first.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }

    /// The flag with the spec name `name`.
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::NAMES
            .into_iter()
            .find(|(_, n)| *n == name)
            .map(|(flag, _)| flag)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flags(")?;
        let mut first = true;
        for name in self.names() {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        f.write_str(")")
    }
}

/// Position of a bulk segment inside its object.
///
/// `segment_index` is `u32`, so an object may have 4 Gi segments; `object_offset` is `u64`, so
/// objects far beyond 4 GiB are addressed directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Zero-based index of this segment.
    pub index: u32,
    /// Number of segments in the object (at least 1, greater than `index`).
    pub count: u32,
    /// Byte offset of this segment's first payload byte inside the object.
    pub offset: u64,
}

/// A decoded or to-be-encoded frame header, with typed fields.
///
/// The field widths and their reasons are in `spec/wire/Frame-v1.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Lane the frame travels on.
    pub lane: Lane,
    /// What the frame is.
    pub packet_type: PacketType,
    /// How `recipient_id` is interpreted.
    pub recipient_kind: RecipientKind,
    /// Flags, never including the wire-only [`Flags::SEGMENTED`] bit.
    pub flags: Flags,
    /// StationId of the original sender (not of the forwarding hop).
    pub sender_id: u32,
    /// Station, service instance or group id, by `recipient_kind`.
    pub recipient_id: u32,
    /// Logical service port on the recipient (see `spec/registry/Ports-v1.md`).
    pub recipient_port: u16,
    /// Port on the sender that replies and ACKs address.
    pub sender_port: u16,
    /// Route / conversation id chosen by the originator; keys traces.
    pub route_id: u32,
    /// Per-sender message id: ACKs, NACKs, duplicate suppression and traces refer to it.
    pub request_id: u64,
    /// Stream frame number, or per-flow order; wraps (serial-number arithmetic).
    pub sequence: u32,
    /// Transmission attempt, 0 for the first send.
    pub attempt: u8,
    /// Remaining hops this frame may be forwarded; 0 means deliver locally or drop.
    pub hop_limit: u8,
    /// Stream lane: remaining lifetime in cycles. Zero on other lanes.
    pub lifetime: u8,
    /// Scheduling priority, 0 lowest. Aging raises it while a message waits.
    pub priority: u8,
    /// Present exactly on segmented bulk DATA frames.
    pub segment: Option<Segment>,
}

impl Header {
    /// A header with the given lane, type and addressing, and every other field zero.
    pub const fn new(lane: Lane, packet_type: PacketType) -> Header {
        Header {
            lane,
            packet_type,
            recipient_kind: RecipientKind::Station,
            flags: Flags::NONE,
            sender_id: 0,
            recipient_id: 0,
            recipient_port: 0,
            sender_port: 0,
            route_id: 0,
            request_id: 0,
            sequence: 0,
            attempt: 0,
            hop_limit: 0,
            lifetime: 0,
            priority: 0,
            segment: None,
        }
    }

    /// Bytes of header this frame has on the wire (48, or 64 when segmented).
    #[inline]
    pub const fn header_len(&self) -> usize {
        if self.segment.is_some() {
            SEGMENTED_HEADER_LEN
        } else {
            BASE_HEADER_LEN
        }
    }

    /// Checks the rules that relate fields to one another (`spec/wire/Frame-v1.md` §5).
    pub fn validate(&self) -> Result<(), FrameError> {
        check_combination(
            self.lane,
            self.packet_type,
            self.flags,
            self.segment.is_some(),
            self.lifetime,
        )?;
        if self.flags.contains(Flags::SEGMENTED) {
            return Err(FrameError::SegmentFlagInHeader);
        }
        if let Some(segment) = self.segment {
            check_segment(segment)?;
        }
        Ok(())
    }
}

/// Limits a receiver applies while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest payload accepted; at most [`PAYLOAD_LEN_MAX_PROTOCOL`].
    pub payload_len_max: u32,
    /// Whether to verify the CRC32C. Links with end-to-end integrity of their own (in-process
    /// memory, shared memory) may skip it; every link from outside must verify.
    pub verify_checksum: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            payload_len_max: PAYLOAD_LEN_MAX_DEFAULT,
            verify_checksum: true,
        }
    }
}

/// Why bytes are not a valid v1 frame. Each variant names the rule of `spec/wire/Frame-v1.md`
/// that was broken; the vectors in `spec/vectors/frame/` use [`FrameError::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length needs.
    #[error("truncated frame: needed {needed} bytes, had {had}")]
    Truncated {
        /// Bytes needed to go on.
        needed: usize,
        /// Bytes available.
        had: usize,
    },
    /// The first two bytes are not `"TT"`.
    #[error("bad magic {found:#06x}, expected {MAGIC:#06x}")]
    BadMagic {
        /// The little-endian `u16` found.
        found: u16,
    },
    /// A version this decoder does not speak.
    #[error("unsupported wire version {found}, this decoder speaks {VERSION}")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The lane byte names no lane.
    #[error("unknown lane {0}")]
    UnknownLane(u8),
    /// The type byte names no packet type.
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    /// The recipient kind byte names no recipient kind.
    #[error("unknown recipient kind {0}")]
    UnknownRecipientKind(u8),
    /// A reserved flag bit is set.
    #[error("reserved flag bits set: {bits:#06x}")]
    ReservedFlags {
        /// The reserved bits that were set.
        bits: u16,
    },
    /// The packet type may not travel on this lane.
    #[error("packet type {packet_type} not allowed on the {lane} lane")]
    TypeNotAllowedOnLane {
        /// The frame's lane.
        lane: Lane,
        /// The frame's packet type.
        packet_type: PacketType,
    },
    /// `ACK_REQUIRED` on the stream lane, which is never acknowledged.
    #[error("ack required on the stream lane")]
    AckOnStreamLane,
    /// The segment extension on anything but a bulk DATA frame, or missing on a bulk DATA frame.
    #[error("segment extension must be present exactly on bulk data frames")]
    SegmentMismatch,
    /// The `SEGMENTED` bit was set in [`Header::flags`] (it is derived from `segment`).
    #[error("the segmented bit is derived from the segment field and may not be set by hand")]
    SegmentFlagInHeader,
    /// `segment_count` is zero or `segment_index` is not below it.
    #[error("segment index {index} out of range for count {count}")]
    SegmentOutOfRange {
        /// The segment index.
        index: u32,
        /// The segment count.
        count: u32,
    },
    /// A non-zero lifetime outside the stream lane.
    #[error("lifetime {lifetime} set outside the stream lane")]
    LifetimeOutsideStream {
        /// The lifetime byte.
        lifetime: u8,
    },
    /// The payload is longer than the receiver's (or the protocol's) limit.
    #[error("oversized payload: {len} bytes, limit {max}")]
    Oversize {
        /// The declared payload length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// More bytes than the header declares.
    #[error("length mismatch: header declares {declared} bytes, had {actual}")]
    LengthMismatch {
        /// Frame length the header declares.
        declared: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The CRC32C does not match.
    #[error("checksum mismatch: frame says {expected:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The value in the frame.
        expected: u32,
        /// The value computed over the bytes.
        computed: u32,
    },
    /// The caller's buffer is too small for the encoded frame.
    #[error("buffer too small: needed {needed} bytes, had {had}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes in the buffer.
        had: usize,
    },
}

impl FrameError {
    /// The spec name of the error, as used by the golden vectors.
    pub const fn name(&self) -> &'static str {
        match self {
            FrameError::Truncated { .. } => "Truncated",
            FrameError::BadMagic { .. } => "BadMagic",
            FrameError::UnsupportedVersion { .. } => "UnsupportedVersion",
            FrameError::UnknownLane(_) => "UnknownLane",
            FrameError::UnknownPacketType(_) => "UnknownPacketType",
            FrameError::UnknownRecipientKind(_) => "UnknownRecipientKind",
            FrameError::ReservedFlags { .. } => "ReservedFlags",
            FrameError::TypeNotAllowedOnLane { .. } => "TypeNotAllowedOnLane",
            FrameError::AckOnStreamLane => "AckOnStreamLane",
            FrameError::SegmentMismatch => "SegmentMismatch",
            FrameError::SegmentFlagInHeader => "SegmentFlagInHeader",
            FrameError::SegmentOutOfRange { .. } => "SegmentOutOfRange",
            FrameError::LifetimeOutsideStream { .. } => "LifetimeOutsideStream",
            FrameError::Oversize { .. } => "Oversize",
            FrameError::LengthMismatch { .. } => "LengthMismatch",
            FrameError::ChecksumMismatch { .. } => "ChecksumMismatch",
            FrameError::BufferTooSmall { .. } => "BufferTooSmall",
        }
    }
}

/// Whether `packet_type` may travel on `lane` (`spec/wire/Frame-v1.md` §5, table L).
#[inline]
pub const fn type_allowed_on_lane(lane: Lane, packet_type: PacketType) -> bool {
    use PacketType as T;
    match lane {
        Lane::Fast => !matches!(packet_type, T::Stream),
        Lane::Bulk => matches!(
            packet_type,
            T::Data | T::Ack | T::Nack | T::Control | T::Busy | T::Audit
        ),
        Lane::Stream => matches!(packet_type, T::Stream | T::Control),
    }
}

#[inline]
const fn check_combination(
    lane: Lane,
    packet_type: PacketType,
    flags: Flags,
    segmented: bool,
    lifetime: u8,
) -> Result<(), FrameError> {
    if !type_allowed_on_lane(lane, packet_type) {
        return Err(FrameError::TypeNotAllowedOnLane { lane, packet_type });
    }
    let lane_stream = matches!(lane, Lane::Stream);
    if lane_stream && flags.contains(Flags::ACK_REQUIRED) {
        return Err(FrameError::AckOnStreamLane);
    }
    let bulk_data = matches!(lane, Lane::Bulk) && matches!(packet_type, PacketType::Data);
    if segmented != bulk_data {
        return Err(FrameError::SegmentMismatch);
    }
    if !lane_stream && lifetime != 0 {
        return Err(FrameError::LifetimeOutsideStream { lifetime });
    }
    Ok(())
}

#[inline]
const fn check_segment(segment: Segment) -> Result<(), FrameError> {
    if segment.count == 0 || segment.index >= segment.count {
        return Err(FrameError::SegmentOutOfRange {
            index: segment.index,
            count: segment.count,
        });
    }
    Ok(())
}

/// The CRC32C of a frame: every byte except the four at [`CRC_OFFSET`].
#[inline]
fn frame_crc(frame: &[u8]) -> u32 {
    debug_assert!(frame.len() >= BASE_HEADER_LEN);
    let crc = crc32c::crc32c(&frame[..CRC_OFFSET]);
    crc32c::crc32c_append(crc, &frame[BASE_HEADER_LEN..])
}

/// A validated frame borrowed from a receive buffer. Field reads are infallible.
#[derive(Clone, Copy)]
pub struct FrameView<'a> {
    raw: &'a RawHeader,
    segment: Option<&'a RawSegment>,
    payload: &'a [u8],
    bytes: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// Validates `bytes` as exactly one frame and returns a view over it.
    ///
    /// Checks, in this order (the order is normative, so every implementation reports the same
    /// error for the same bytes): length of the base header, magic, version, lane, packet type,
    /// recipient kind, reserved flags, lane/type/flag combinations, segment extension length and
    /// range, payload limit, total length, checksum.
    pub fn decode(bytes: &'a [u8], options: DecodeOptions) -> Result<FrameView<'a>, FrameError> {
        let (raw, rest) = RawHeader::ref_from_prefix(bytes).map_err(|_| FrameError::Truncated {
            needed: BASE_HEADER_LEN,
            had: bytes.len(),
        })?;
        let magic = raw.magic.get();
        if magic != MAGIC {
            return Err(FrameError::BadMagic { found: magic });
        }
        if raw.version != VERSION {
            return Err(FrameError::UnsupportedVersion { found: raw.version });
        }
        let lane = Lane::from_u8(raw.lane)?;
        let packet_type = PacketType::from_u8(raw.packet_type)?;
        RecipientKind::from_u8(raw.recipient_kind)?;
        let wire_flags = Flags::from_bits(raw.flags.get())?;
        let segmented = wire_flags.contains(Flags::SEGMENTED);
        check_combination(lane, packet_type, wire_flags, segmented, raw.lifetime)?;

        let (segment, payload_area) = if segmented {
            let (segment, after) =
                RawSegment::ref_from_prefix(rest).map_err(|_| FrameError::Truncated {
                    needed: SEGMENTED_HEADER_LEN,
                    had: bytes.len(),
                })?;
            check_segment(Segment {
                index: segment.segment_index.get(),
                count: segment.segment_count.get(),
                offset: 0,
            })?;
            (Some(segment), after)
        } else {
            (None, rest)
        };

        let payload_len = raw.payload_len.get();
        let payload_len_max = if options.payload_len_max < PAYLOAD_LEN_MAX_PROTOCOL {
            options.payload_len_max
        } else {
            PAYLOAD_LEN_MAX_PROTOCOL
        };
        if payload_len > payload_len_max {
            return Err(FrameError::Oversize {
                len: u64::from(payload_len),
                max: payload_len_max,
            });
        }
        let header_len = bytes.len() - payload_area.len();
        let declared = header_len + payload_len as usize;
        if bytes.len() < declared {
            return Err(FrameError::Truncated {
                needed: declared,
                had: bytes.len(),
            });
        }
        if bytes.len() > declared {
            return Err(FrameError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        if options.verify_checksum {
            let computed = frame_crc(bytes);
            let expected = raw.crc32c.get();
            if computed != expected {
                return Err(FrameError::ChecksumMismatch { expected, computed });
            }
        }
        Ok(FrameView {
            raw,
            segment,
            payload: payload_area,
            bytes,
        })
    }

    /// The lane.
    #[inline]
    pub fn lane(&self) -> Lane {
        // Validated in `decode`; the fallback is unreachable and keeps this branch-free of panics.
        Lane::from_u8(self.raw.lane).unwrap_or(Lane::Fast)
    }

    /// The packet type.
    #[inline]
    pub fn packet_type(&self) -> PacketType {
        PacketType::from_u8(self.raw.packet_type).unwrap_or(PacketType::Data)
    }

    /// The recipient kind.
    #[inline]
    pub fn recipient_kind(&self) -> RecipientKind {
        RecipientKind::from_u8(self.raw.recipient_kind).unwrap_or(RecipientKind::Station)
    }

    /// The flags, without the wire-only `SEGMENTED` bit.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.raw.flags.get()).without(Flags::SEGMENTED)
    }

    /// The original sender's StationId.
    #[inline]
    pub fn sender_id(&self) -> u32 {
        self.raw.sender_id.get()
    }

    /// The recipient id.
    #[inline]
    pub fn recipient_id(&self) -> u32 {
        self.raw.recipient_id.get()
    }

    /// The recipient port.
    #[inline]
    pub fn recipient_port(&self) -> u16 {
        self.raw.recipient_port.get()
    }

    /// The sender port.
    #[inline]
    pub fn sender_port(&self) -> u16 {
        self.raw.sender_port.get()
    }

    /// The route id.
    #[inline]
    pub fn route_id(&self) -> u32 {
        self.raw.route_id.get()
    }

    /// The request id.
    #[inline]
    pub fn request_id(&self) -> u64 {
        self.raw.request_id.get()
    }

    /// The sequence number.
    #[inline]
    pub fn sequence(&self) -> u32 {
        self.raw.sequence.get()
    }

    /// The attempt counter.
    #[inline]
    pub fn attempt(&self) -> u8 {
        self.raw.attempt
    }

    /// The remaining hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.raw.hop_limit
    }

    /// The remaining stream lifetime in cycles.
    #[inline]
    pub fn lifetime(&self) -> u8 {
        self.raw.lifetime
    }

    /// The priority.
    #[inline]
    pub fn priority(&self) -> u8 {
        self.raw.priority
    }

    /// The CRC32C carried by the frame.
    #[inline]
    pub fn crc32c(&self) -> u32 {
        self.raw.crc32c.get()
    }

    /// The segment position of a bulk DATA frame.
    #[inline]
    pub fn segment(&self) -> Option<Segment> {
        self.segment.map(|s| Segment {
            index: s.segment_index.get(),
            count: s.segment_count.get(),
            offset: s.object_offset.get(),
        })
    }

    /// The payload, borrowed from the receive buffer.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The whole frame, borrowed from the receive buffer.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The typed header.
    pub fn header(&self) -> Header {
        Header {
            lane: self.lane(),
            packet_type: self.packet_type(),
            recipient_kind: self.recipient_kind(),
            flags: self.flags(),
            sender_id: self.sender_id(),
            recipient_id: self.recipient_id(),
            recipient_port: self.recipient_port(),
            sender_port: self.sender_port(),
            route_id: self.route_id(),
            request_id: self.request_id(),
            sequence: self.sequence(),
            attempt: self.attempt(),
            hop_limit: self.hop_limit(),
            lifetime: self.lifetime(),
            priority: self.priority(),
            segment: self.segment(),
        }
    }
}

impl fmt::Debug for FrameView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameView")
            .field("header", &self.header())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Bytes a frame with this header and payload length occupies on the wire.
#[inline]
pub const fn encoded_len(header: &Header, payload_len: usize) -> usize {
    header.header_len() + payload_len
}

/// Writes the header for a payload of `payload_len` bytes into the front of `out`, leaving the
/// CRC zero, and returns the header length. The caller then writes the payload right after the
/// header (zero-copy, in place) and calls [`seal`] on the whole frame.
pub fn write_header(
    header: &Header,
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, FrameError> {
    header.validate()?;
    if payload_len > PAYLOAD_LEN_MAX_PROTOCOL as usize {
        return Err(FrameError::Oversize {
            len: payload_len as u64,
            max: PAYLOAD_LEN_MAX_PROTOCOL,
        });
    }
    let header_len = header.header_len();
    let needed = header_len + payload_len;
    if out.len() < needed {
        return Err(FrameError::BufferTooSmall {
            needed,
            had: out.len(),
        });
    }
    let wire_flags = if header.segment.is_some() {
        header.flags.with(Flags::SEGMENTED)
    } else {
        header.flags
    };
    let raw = RawHeader {
        magic: U16::new(MAGIC),
        version: VERSION,
        lane: header.lane.to_u8(),
        packet_type: header.packet_type.to_u8(),
        recipient_kind: header.recipient_kind.to_u8(),
        flags: U16::new(wire_flags.bits()),
        sender_id: U32::new(header.sender_id),
        recipient_id: U32::new(header.recipient_id),
        recipient_port: U16::new(header.recipient_port),
        sender_port: U16::new(header.sender_port),
        route_id: U32::new(header.route_id),
        request_id: U64::new(header.request_id),
        sequence: U32::new(header.sequence),
        attempt: header.attempt,
        hop_limit: header.hop_limit,
        lifetime: header.lifetime,
        priority: header.priority,
        payload_len: U32::new(payload_len as u32),
        crc32c: U32::new(0),
    };
    out[..BASE_HEADER_LEN].copy_from_slice(raw.as_bytes());
    if let Some(segment) = header.segment {
        let raw_segment = RawSegment {
            segment_index: U32::new(segment.index),
            segment_count: U32::new(segment.count),
            object_offset: U64::new(segment.offset),
        };
        out[BASE_HEADER_LEN..SEGMENTED_HEADER_LEN].copy_from_slice(raw_segment.as_bytes());
    }
    Ok(header_len)
}

/// Computes the CRC32C of a complete frame (header written by [`write_header`], payload in
/// place) and stores it in the header.
///
/// # Panics
/// If `frame` is shorter than the base header: that is a caller bug, not bad input.
pub fn seal(frame: &mut [u8]) {
    assert!(
        frame.len() >= BASE_HEADER_LEN,
        "seal: frame shorter than a header"
    );
    let crc = frame_crc(frame);
    frame[CRC_OFFSET..BASE_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes a whole frame into `out` and returns its length.
pub fn encode(header: &Header, payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    let header_len = write_header(header, payload.len(), out)?;
    let len = header_len + payload.len();
    out[header_len..len].copy_from_slice(payload);
    seal(&mut out[..len]);
    Ok(len)
}

/// Encodes a whole frame into a new vector (control paths and tests; the hot path uses
/// [`encode`] into pooled buffers).
pub fn encode_to_vec(header: &Header, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; encoded_len(header, payload.len())];
    encode(header, payload, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            recipient_kind: RecipientKind::Service,
            flags: Flags::ACK_REQUIRED | Flags::TRACE_REQUESTED,
            sender_id: 0x0102_0304,
            recipient_id: 7,
            recipient_port: 150,
            sender_port: 4242,
            route_id: 99,
            request_id: u64::MAX - 1,
            sequence: 12,
            attempt: 2,
            hop_limit: 8,
            priority: 3,
            ..Header::new(Lane::Fast, PacketType::Data)
        }
    }

    #[test]
    fn round_trip_fast() {
        let header = sample();
        let bytes = encode_to_vec(&header, b"hello").unwrap();
        assert_eq!(bytes.len(), 53);
        let view = FrameView::decode(&bytes, DecodeOptions::default()).unwrap();
        assert_eq!(view.header(), header);
        assert_eq!(view.payload(), b"hello");
        let again = encode_to_vec(&view.header(), view.payload()).unwrap();
        assert_eq!(again, bytes);
    }

    #[test]
    fn round_trip_segmented_beyond_4gib() {
        let header = Header {
            segment: Some(Segment {
                index: 70_000,
                count: 70_001,
                offset: 70_000 * 65_536,
            }),
            flags: Flags::ACK_REQUIRED | Flags::FINAL,
            ..Header::new(Lane::Bulk, PacketType::Data)
        };
        let bytes = encode_to_vec(&header, &[0xAB; 100]).unwrap();
        assert_eq!(bytes.len(), SEGMENTED_HEADER_LEN + 100);
        let view = FrameView::decode(&bytes, DecodeOptions::default()).unwrap();
        assert_eq!(view.header(), header);
        assert!(view.segment().unwrap().offset > u64::from(u32::MAX));
    }

    #[test]
    fn every_truncation_is_reported_not_panicked() {
        let bytes = encode_to_vec(&sample(), &[1, 2, 3, 4, 5, 6, 7]).unwrap();
        for cut in 0..bytes.len() {
            let error = FrameView::decode(&bytes[..cut], DecodeOptions::default()).unwrap_err();
            assert!(
                matches!(error, FrameError::Truncated { .. }),
                "cut {cut}: {error}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let bytes = encode_to_vec(&sample(), b"payload bytes").unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut corrupt = bytes.clone();
            corrupt[bit / 8] ^= 1 << (bit % 8);
            assert!(
                FrameView::decode(&corrupt, DecodeOptions::default()).is_err(),
                "bit {bit} flip accepted"
            );
        }
    }

    #[test]
    fn combination_rules() {
        let stream_ack = Header {
            flags: Flags::ACK_REQUIRED,
            ..Header::new(Lane::Stream, PacketType::Stream)
        };
        assert_eq!(stream_ack.validate(), Err(FrameError::AckOnStreamLane));
        let bulk_unsegmented = Header::new(Lane::Bulk, PacketType::Data);
        assert_eq!(
            bulk_unsegmented.validate(),
            Err(FrameError::SegmentMismatch)
        );
        let stream_on_fast = Header::new(Lane::Fast, PacketType::Stream);
        assert!(matches!(
            stream_on_fast.validate(),
            Err(FrameError::TypeNotAllowedOnLane { .. })
        ));
        let lifetime_on_fast = Header {
            lifetime: 3,
            ..Header::new(Lane::Fast, PacketType::Data)
        };
        assert_eq!(
            lifetime_on_fast.validate(),
            Err(FrameError::LifetimeOutsideStream { lifetime: 3 })
        );
    }

    #[test]
    fn oversize_is_checked_before_length() {
        let mut bytes = encode_to_vec(&sample(), b"x").unwrap();
        bytes[40..44].copy_from_slice(&(2u32 * 1024 * 1024).to_le_bytes());
        let error = FrameView::decode(&bytes, DecodeOptions::default()).unwrap_err();
        assert_eq!(
            error,
            FrameError::Oversize {
                len: 2 * 1024 * 1024,
                max: PAYLOAD_LEN_MAX_DEFAULT
            }
        );
    }

    #[test]
    fn trailing_bytes_are_a_length_mismatch() {
        let mut bytes = encode_to_vec(&sample(), b"x").unwrap();
        bytes.push(0);
        let error = FrameView::decode(&bytes, DecodeOptions::default()).unwrap_err();
        assert_eq!(
            error,
            FrameError::LengthMismatch {
                declared: 49,
                actual: 50
            }
        );
    }

    #[test]
    fn buffer_too_small() {
        let mut out = [0u8; 50];
        let error = encode(&sample(), &[0; 10], &mut out).unwrap_err();
        assert_eq!(
            error,
            FrameError::BufferTooSmall {
                needed: 58,
                had: 50
            }
        );
    }
}
