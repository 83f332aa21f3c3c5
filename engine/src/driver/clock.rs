//! The real clock: monotonic nanoseconds since the shard started, read once per cycle and
//! passed into the sans-IO core. It asserts that time never goes backwards.

use std::cell::Cell;
use std::time::Instant as StdInstant;

use crate::core::Instant;

/// A monotonic clock for one shard.
#[derive(Debug)]
pub struct Clock {
    start: StdInstant,
    last: Cell<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Clock {
        Clock {
            start: StdInstant::now(),
            last: Cell::new(0),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        let nanos = self.start.elapsed().as_nanos() as u64;
        assert!(nanos >= self.last.get(), "monotonic clock went backwards");
        self.last.set(nanos);
        Instant::from_nanos(nanos)
    }
}
