//! Fuzz the shared memory ring reader with arbitrary ring contents and heads, and the
//! writer/reader pair with arbitrary frame sizes.
//!
//! Goal: a broken or hostile peer writing anything into its ring and its `head` can never
//! make the reader read outside the ring, lend a frame outside the published region or over
//! the limit, move its tail past the head, or panic; and frames written by `RingWriter` are
//! read back exactly, in order, whatever the sizes and the interleaving. Method: (1) a ring of
//! 256 bytes filled from the input, then a sequence of heads from the input, reading after
//! each (slice-backed memory: any out-of-bounds access would panic); (2) frames of sizes taken
//! from the input written while there is room, read in batches the input chooses.
//!
//! Input layout (seeds under `fuzz/seeds/shm_ring/` follow it): byte 0: bit 0 selects part
//! (1) or (2); part (1): bytes 1..257 the ring, then `u16` LE head increments; part (2):
//! bytes 1.. are pairs (frame size `48 + byte`, reader batch `byte % 8`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tamtam_transports::shm::ring::{RingReader, RingWriter};

const RING: usize = 256;
const LIMIT: usize = 200;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let (ring, heads) = rest.split_at(RING.min(rest.len()));
        let mut memory = [0u8; RING];
        memory[..ring.len()].copy_from_slice(ring);
        let mut reader = RingReader::new(RING, LIMIT);
        let mut head = 0u64;
        for pair in heads.chunks(2) {
            let step = u64::from(u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            head = head.wrapping_add(step);
            let before = reader.tail();
            let result = reader.read(&memory[..], || head, 16, &mut |frame| {
                assert!((48..=LIMIT).contains(&frame.len()));
            });
            assert!(reader.tail() >= before);
            if result.is_ok() {
                assert!(reader.tail() <= head);
            } else {
                break;
            }
        }
    } else {
        let mut memory = [0u8; RING];
        let mut writer = RingWriter::new(RING);
        let mut reader = RingReader::new(RING, LIMIT);
        let mut written = std::collections::VecDeque::new();
        let mut n = 0u8;
        for pair in rest.chunks(2) {
            let size = 48 + usize::from(pair[0]) % (LIMIT - 47);
            let frame = vec![n; size];
            let tail = reader.tail();
            if writer.write(&mut memory[..], &frame, || tail) {
                written.push_back(frame);
                n = n.wrapping_add(1);
            }
            let batch = usize::from(*pair.get(1).unwrap_or(&1) % 8);
            let head = writer.head();
            reader
                .read(&memory[..], || head, batch, &mut |frame| {
                    assert_eq!(Some(frame.to_vec()), written.pop_front());
                })
                .expect("a well-behaved writer never corrupts the ring");
        }
        let head = writer.head();
        reader
            .read(&memory[..], || head, usize::MAX, &mut |frame| {
                assert_eq!(Some(frame.to_vec()), written.pop_front());
            })
            .unwrap();
        assert!(written.is_empty());
        assert_eq!(reader.tail(), writer.head());
    }
});
