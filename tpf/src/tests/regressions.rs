//! Inputs found by the fuzzer (`fuzz/fuzz_targets/tpf_decode.rs`), kept so they stay fixed.
