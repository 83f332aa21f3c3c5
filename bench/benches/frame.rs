//! Micro-benchmarks of the wire frame v1 codec and the stream framer.
//!
//! What each measures:
//! - `frame/write_header`: validating and writing a 48-byte header (CRC left zero), the first
//!   half of the zero-copy encode path;
//! - `frame/encode/{64,1024}`: a whole frame, header + payload copy + CRC32C;
//! - `frame/decode_unchecked/64`: `FrameView::decode` with every check but the checksum (the
//!   cost on links with their own integrity, and the floor under every receive);
//! - `frame/decode_checked/{64,1024}`: the same with the CRC32C verified;
//! - `stream/decode_64b_frames`: `StreamDecoder` splitting a 4 KiB-chunked byte stream of
//!   length-prefixed frames with 64-byte payloads, per frame and per byte.
//!
//! Run: `cargo bench -p tamtam-bench --bench frame -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use tamtam_engine::core::wire::frame::{
    self, DecodeOptions, Flags, FrameView, Header, Lane, PacketType, RecipientKind,
};
use tamtam_engine::core::wire::stream::{PREFIX_LEN, StreamDecoder, encode_prefixed};

/// Payload sizes of the encode and checked-decode benchmarks.
const PAYLOAD_SIZES: [usize; 2] = [64, 1024];
/// Frames in one batch of the stream benchmark.
const STREAM_FRAMES: usize = 1024;
/// Bytes handed to the stream decoder per read, like one socket read.
const STREAM_CHUNK: usize = 4096;

/// A typical fast-lane request with every field non-zero.
fn header() -> Header {
    Header {
        recipient_kind: RecipientKind::Service,
        flags: Flags::ACK_REQUIRED | Flags::TPF,
        sender_id: 0x0102_0304,
        recipient_id: 7,
        recipient_port: 150,
        sender_port: 1200,
        route_id: 99,
        request_id: 1 << 40,
        sequence: 12,
        attempt: 1,
        hop_limit: 8,
        priority: 3,
        ..Header::new(Lane::Fast, PacketType::Data)
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let header = header();
    let mut out = vec![0u8; 64 + 1024];
    group.bench_function("write_header", |b| {
        b.iter(|| frame::write_header(black_box(&header), black_box(64), &mut out))
    });
    for size in PAYLOAD_SIZES {
        let payload = payload(size);
        group.throughput(Throughput::Bytes(frame::encoded_len(&header, size) as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, payload| {
            b.iter(|| frame::encode(black_box(&header), black_box(payload), &mut out))
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let unchecked = DecodeOptions {
        verify_checksum: false,
        ..DecodeOptions::default()
    };
    let small = frame::encode_to_vec(&header(), &payload(64)).expect("encode");
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function(BenchmarkId::new("decode_unchecked", 64), |b| {
        b.iter(|| {
            let view = FrameView::decode(black_box(&small), unchecked).expect("valid");
            black_box(view.request_id())
        })
    });
    for size in PAYLOAD_SIZES {
        let bytes = frame::encode_to_vec(&header(), &payload(size)).expect("encode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("decode_checked", size),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let view = FrameView::decode(black_box(bytes), DecodeOptions::default())
                        .expect("valid");
                    black_box(view.request_id())
                })
            },
        );
    }
    group.finish();
}

fn bench_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    let payload = payload(64);
    let header = header();
    let record_len = PREFIX_LEN + frame::encoded_len(&header, payload.len());
    let mut wire = vec![0u8; record_len * STREAM_FRAMES];
    for record in wire.chunks_mut(record_len) {
        encode_prefixed(&header, &payload, record).expect("encode record");
    }
    let mut decoder = StreamDecoder::new(64 * 1024);
    group.throughput(Throughput::Elements(STREAM_FRAMES as u64));
    group.bench_function("decode_64b_frames", |b| {
        b.iter(|| {
            let mut frames = 0usize;
            let mut bytes = 0usize;
            for chunk in wire.chunks(STREAM_CHUNK) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let taken = decoder.feed(rest);
                    rest = &rest[taken..];
                    while let Some(frame) = decoder.next_frame().expect("in sync") {
                        frames += 1;
                        bytes += frame.len();
                    }
                }
            }
            assert_eq!(frames, STREAM_FRAMES);
            black_box(bytes)
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_encode(&mut criterion);
    bench_decode(&mut criterion);
    bench_stream(&mut criterion);
    criterion.final_summary();
}
