//! Fuzz the bus state machine with frames from a lying peer.
//!
//! Goal: whatever a neighbour sends (valid frames with hostile field values, forged ACKs,
//! BUSY storms, bogus bulk maps, adverts claiming thousands of stations, garbage), the bus
//! never panics, never hangs, and keeps its queues bounded. Method: a two-station bus pair,
//! the first serving a few ports; the fuzz input is a sequence of operations: raw bytes as a
//! frame on the link, a well-formed frame built from fuzzed header fields and payload, an
//! application send, or a cycle with time advancing. After each step the outputs are drained
//! and their counts checked against the configured bounds.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tamtam_engine::core::wire::frame::{self, Flags, Header, Lane, PacketType, RecipientKind, Segment};
use tamtam_engine::core::{Bus, BusConfig, Context, Duration, Instant, Message, Outgoing};

#[derive(Arbitrary, Debug)]
enum Op {
    Raw(Vec<u8>),
    Framed {
        lane: u8,
        packet_type: u8,
        kind: u8,
        flags: u8,
        sender: u8,
        recipient: u8,
        port: u16,
        request_id: u64,
        sequence: u32,
        hop_limit: u8,
        lifetime: u8,
        segment: Option<(u16, u16)>,
        payload: Vec<u8>,
    },
    Send { port: u16, payload: Vec<u8>, ack: bool },
    Cycle { millis: u16 },
}

fuzz_target!(|ops: Vec<Op>| {
    let mut config = BusConfig::new(1);
    config.port_queue_capacity = 8;
    config.outbox_capacity = 64;
    config.link_queue_capacity = 64;
    config.stations_max = 16;
    config.segment_len = 64;
    let mut bus = Bus::new(config).expect("valid config");
    bus.serve(2000, Box::new(|_: &mut Context<'_>, _: &Message<'_>| {})).expect("free port");
    bus.subscribe(3000);
    let mut now = Instant::ZERO;
    let link = bus.add_link(now);
    for op in ops.into_iter().take(256) {
        match op {
            Op::Raw(bytes) => bus.handle_frame(now, link, &bytes),
            Op::Framed {
                lane,
                packet_type,
                kind,
                flags,
                sender,
                recipient,
                port,
                request_id,
                sequence,
                hop_limit,
                lifetime,
                segment,
                payload,
            } => {
                let lane = Lane::ALL[usize::from(lane) % Lane::ALL.len()];
                let packet_type = PacketType::ALL[usize::from(packet_type) % PacketType::ALL.len()];
                let header = Header {
                    lane,
                    packet_type,
                    recipient_kind: RecipientKind::ALL[usize::from(kind) % 4],
                    flags: Flags::from_bits(u16::from(flags)).unwrap_or(Flags::NONE).without(Flags::SEGMENTED),
                    sender_id: u32::from(sender % 4),
                    recipient_id: u32::from(recipient % 4),
                    recipient_port: port,
                    sender_port: port,
                    route_id: 0,
                    request_id,
                    sequence,
                    attempt: 0,
                    hop_limit,
                    lifetime: if lane == Lane::Stream { lifetime } else { 0 },
                    priority: 0,
                    segment: segment.map(|(index, count)| Segment {
                        index: u32::from(index.min(count.saturating_sub(1))),
                        count: u32::from(count.max(1)),
                        offset: u64::from(index) * 64,
                    }),
                };
                if let Ok(bytes) = frame::encode_to_vec(&header, &payload) {
                    bus.handle_frame(now, link, &bytes);
                }
            }
            Op::Send { port, payload, ack } => {
                let mut message = Outgoing::to_station(2, port, payload);
                message.ack = ack;
                let _ = bus.send(now, message);
            }
            Op::Cycle { millis } => {
                now = now + Duration::from_millis(u64::from(millis));
                bus.cycle(now);
            }
        }
        let mut transmitted = 0;
        while let Some(t) = bus.poll_transmit() {
            assert!(frame::FrameView::decode(&t.frame, Default::default()).is_ok());
            transmitted += 1;
            bus.recycle(t.frame);
        }
        assert!(transmitted <= 64 * 2 + 4096, "link queue bound exceeded");
        while let Some(io) = bus.poll_io() {
            let _ = io;
        }
        while bus.poll_event().is_some() {}
        assert!(bus.topology().len() <= 16);
    }
});
