//! Runs the fast-lane path of `benches/core.rs` (`fast_lane/batch_1000` or `single`) a given
//! number of times, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/examples/fast_lane_count batch 20`.
//! Two runs with different counts give the cost per message as the difference.

#[path = "../benches/common/mod.rs"]
mod common;
use common::Pair;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = if args.get(1).map(String::as_str) == Some("single") {
        1
    } else {
        1000
    };
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut pair = Pair::new();
    let payload = vec![0xa5u8; 64];
    for _ in 0..reps {
        pair.confirm(batch, &payload);
    }
}
