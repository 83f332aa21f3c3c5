//! Goal: no input makes a TPF decoder panic, hang or allocate without bound, and every input
//! is treated the same way by the three decoders (derived, view, dynamic) with the format's
//! properties intact.
//!
//! Method: decode the input as each test message type of `tamtam_tpf::testing` (the schemas
//! of the golden vectors, whose bytes seed the corpus) and run
//! `tamtam_tpf::testing::properties::check`: the decoders agree on the value or the error;
//! the header's length is the input's and `encoded_len` is what `encode` writes; accepted
//! input re-encodes to itself unless it carries fields the reader does not know, in which
//! case a reader that knows every version refuses it.
//!
//! Run: `cd fuzz && cargo fuzz run --sanitizer none tpf_decode -- -max_total_time=60
//! /tmp/tpfcorpus seeds/tpf_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tamtam_tpf::testing::properties::check_payload(data);
});
