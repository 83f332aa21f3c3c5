//! Inputs found by the fuzzer (`fuzz/fuzz_targets/tpf_decode.rs`), kept so they stay fixed,
//! and a replay of the fuzzer's seed corpus through the same property checks.

use crate::testing::properties::{check_payload, replay_dir};

#[test]
fn the_seed_corpus_passes_the_fuzzer_checks() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/tpf_decode");
    assert!(replay_dir(&seeds) >= 30);
}

#[test]
fn short_inputs_pass_the_fuzzer_checks() {
    // Every input of up to two bytes, and a few headers without bodies.
    check_payload(&[]);
    for a in 0..=255u8 {
        check_payload(&[a]);
        for b in [0u8, 1, 8, 0xFF] {
            check_payload(&[a, b]);
        }
    }
    check_payload(&[8, 0, 0, 0, 1, 0, 3, 0, 1, 0, 0, 0]);
    check_payload(&[8, 0, 0, 0, 1, 0, 3, 0, 1, 0, 8, 0]);
}

/// The fuzzer's first finding was in the checks, not the codec: a Point claiming version 1025
/// with nothing beyond version 1 is accepted (as a newer payload) and re-encoded at version 1,
/// so the real reader does not reproduce it; only a reader that knows version 1025 does.
#[test]
fn a_newer_version_without_new_fields() {
    let data = [
        16, 0, 0, 0, 1, 0, 3, 0, 1, 4, 8, 0, 255, 255, 255, 255, 255, 255, 255, 127,
    ];
    check_payload(&data);
    let point = super::decode_all::<crate::testing::Point>(&data).unwrap();
    assert_eq!((point.x, point.y), (-1, i32::MAX));
}
