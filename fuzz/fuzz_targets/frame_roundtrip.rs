//! Fuzz the frame encoders with arbitrary headers and payloads.
//!
//! Goal: whatever a caller builds, encoding either fails exactly as `Header::validate` says or
//! produces bytes the decoder accepts and reads back unchanged. Method: build a `Header` and a
//! payload from the input; if `validate` passes, encode it with `encode`, with
//! `write_header` + in-place payload + `seal`, and with `encode_prefixed`, check that all three
//! agree, decode the frame (and the prefixed record through `StreamDecoder`) and compare the
//! header and payload; if `validate` fails, every encoder must fail with the same error.
//!
//! Input layout (seeds under `fuzz/seeds/frame_roundtrip/` follow it), all little-endian:
//! lane, packet type and recipient kind as one byte each (taken modulo the number of values),
//! flags `u16` (defined bits only, so `SEGMENTED` may appear and must be refused), sender id
//! `u32`, recipient id `u32`, recipient port `u16`, sender port `u16`, route id `u32`, request
//! id `u64`, sequence `u32`, attempt, hop limit, lifetime and priority as one byte each, a byte
//! whose lowest bit says whether a segment follows, then segment index `u32`, count `u32` and
//! offset `u64` if it does, and the rest of the input as the payload. Missing bytes read as 0.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::{
    self, DecodeOptions, Flags, FrameView, Header, Lane, PAYLOAD_LEN_MAX_PROTOCOL, PacketType,
    RecipientKind, Segment,
};
use tamtam_engine::core::wire::stream::{PREFIX_LEN, StreamDecoder, encode_prefixed};

#[derive(Debug)]
struct Input<'a> {
    header: Header,
    payload: &'a [u8],
}

fn le<const N: usize>(u: &mut Unstructured<'_>) -> arbitrary::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    u.fill_buffer(&mut bytes)?;
    Ok(bytes)
}

fn pick<T: Copy>(u: &mut Unstructured<'_>, values: &[T]) -> arbitrary::Result<T> {
    let [byte] = le::<1>(u)?;
    Ok(values[usize::from(byte) % values.len()])
}

impl<'a> Arbitrary<'a> for Input<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let lane = pick(u, Lane::ALL)?;
        let packet_type = pick(u, PacketType::ALL)?;
        let recipient_kind = pick(u, RecipientKind::ALL)?;
        let bits = u16::from_le_bytes(le(u)?) & Flags::DEFINED.bits();
        let flags = Flags::from_bits(bits).expect("defined bits only");
        let sender_id = u32::from_le_bytes(le(u)?);
        let recipient_id = u32::from_le_bytes(le(u)?);
        let recipient_port = u16::from_le_bytes(le(u)?);
        let sender_port = u16::from_le_bytes(le(u)?);
        let route_id = u32::from_le_bytes(le(u)?);
        let request_id = u64::from_le_bytes(le(u)?);
        let sequence = u32::from_le_bytes(le(u)?);
        let [attempt, hop_limit, lifetime, priority] = le(u)?;
        let [present] = le(u)?;
        let segment = if present & 1 == 1 {
            Some(Segment {
                index: u32::from_le_bytes(le(u)?),
                count: u32::from_le_bytes(le(u)?),
                offset: u64::from_le_bytes(le(u)?),
            })
        } else {
            None
        };
        let header = Header {
            lane,
            packet_type,
            recipient_kind,
            flags,
            sender_id,
            recipient_id,
            recipient_port,
            sender_port,
            route_id,
            request_id,
            sequence,
            attempt,
            hop_limit,
            lifetime,
            priority,
            segment,
        };
        let payload = u.bytes(u.len())?;
        Ok(Input { header, payload })
    }
}

fuzz_target!(|input: Input<'_>| {
    let Input { header, payload } = input;
    let len = frame::encoded_len(&header, payload.len());
    let mut out = vec![0u8; len];
    let mut record = vec![0u8; PREFIX_LEN + len];

    if let Err(error) = header.validate() {
        assert_eq!(frame::encode(&header, payload, &mut out), Err(error));
        assert_eq!(
            frame::write_header(&header, payload.len(), &mut out),
            Err(error)
        );
        assert_eq!(encode_prefixed(&header, payload, &mut record), Err(error));
        return;
    }

    assert_eq!(frame::encode(&header, payload, &mut out), Ok(len));
    assert_eq!(len, header.header_len() + payload.len());

    let mut in_place = vec![0u8; len];
    let header_len = frame::write_header(&header, payload.len(), &mut in_place)
        .expect("a valid header is written");
    assert_eq!(header_len, header.header_len());
    in_place[header_len..].copy_from_slice(payload);
    frame::seal(&mut in_place);
    assert_eq!(in_place, out, "write_header + seal differs from encode");

    assert_eq!(
        encode_prefixed(&header, payload, &mut record),
        Ok(record.len())
    );
    assert_eq!(record[..PREFIX_LEN], (len as u32).to_le_bytes());
    assert_eq!(
        record[PREFIX_LEN..],
        out[..],
        "encode_prefixed differs from encode"
    );

    let options = DecodeOptions {
        payload_len_max: PAYLOAD_LEN_MAX_PROTOCOL,
        verify_checksum: true,
    };
    let view = FrameView::decode(&out, options).expect("an encoded frame decodes");
    assert_eq!(view.header(), header);
    assert_eq!(view.payload(), payload);

    let mut decoder = StreamDecoder::new(len as u32);
    assert_eq!(decoder.feed(&record), record.len());
    let frame = decoder
        .next_frame()
        .expect("record frames")
        .expect("whole record present");
    assert_eq!(frame, &out[..]);
    assert_eq!(decoder.next_frame(), Ok(None));
});
