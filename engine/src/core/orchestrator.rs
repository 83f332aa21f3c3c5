//! The Orchestrator (port 0): runs last in every cycle, sees what the cycle did, and decides
//! two things (`spec/model/Cycle-v1.md` §4, `spec/model/Stream-v1.md` §2):
//!
//! - **Pace.** How fast the next cycle should come: spin while there is work, yield after a
//!   short idle streak, park until the next deadline after a longer one. The driver's idle
//!   strategy follows the hint, so cycle speed adapts to load.
//! - **Terminators.** For each outbound stream it assigns a Terminator when it discovers the
//!   stream's listeners: the farthest listener (most hops; ties: the highest station id). The
//!   stream's lifetime is set so that frames live exactly long enough to reach the Terminator,
//!   and are removed deterministically after that.

use super::time::Instant;

/// How the driver should wait before the next cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Run the next cycle at once (busy-poll the links).
    #[default]
    Spin,
    /// Yield the core once, then run.
    Yield,
    /// Park (block on I/O) until this deadline or until input arrives.
    Park(Instant),
}

/// Idle cycles in a row before the pace drops from spin to yield.
pub const SPIN_CYCLES_IDLE_MAX: u32 = 64;
/// Idle cycles in a row before the pace drops from yield to park.
pub const YIELD_CYCLES_IDLE_MAX: u32 = 256;

/// The pacing half of the Orchestrator.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    idle_streak: u32,
    /// Exponentially weighted work per cycle, in 1/16ths (load indicator for the Reporter).
    load_x16: u64,
}

impl Pacer {
    /// Records one cycle's `work` and returns the pace for the next, given the bus's next
    /// deadline.
    pub fn pace(&mut self, work: usize, backlog: bool, deadline: Option<Instant>) -> Pace {
        self.load_x16 = (self.load_x16 * 15 + (work as u64) * 16) / 16;
        if work > 0 || backlog {
            self.idle_streak = 0;
            return Pace::Spin;
        }
        self.idle_streak = self.idle_streak.saturating_add(1);
        if self.idle_streak <= SPIN_CYCLES_IDLE_MAX {
            Pace::Spin
        } else if self.idle_streak <= YIELD_CYCLES_IDLE_MAX {
            Pace::Yield
        } else {
            Pace::Park(deadline.unwrap_or(Instant::NEVER))
        }
    }

    /// Average work per cycle (smoothed).
    pub fn load(&self) -> f64 {
        self.load_x16 as f64 / 16.0
    }
}

/// A stream's plan: who listens, who terminates, how long frames live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// Listener stations with their hop distance (0 for this station).
    pub listeners: Vec<(u32, u32)>,
    /// The Terminator: the farthest listener.
    pub terminator: Option<u32>,
    /// Lifetime in cycles given to each frame.
    pub lifetime: u8,
}

impl StreamPlan {
    /// Plans a stream over `listeners` with the configured default `lifetime` (3–5 cycles).
    /// A frame spends one cycle in the source's queue and one per hop, and must arrive with
    /// at least one cycle left, so the lifetime is raised to the Terminator's distance plus
    /// two when the default would expire every frame before it arrives.
    pub fn new(mut listeners: Vec<(u32, u32)>, lifetime: u8) -> StreamPlan {
        listeners.sort_by_key(|&(id, hops)| (hops, id));
        let terminator = listeners.last().map(|&(id, _)| id);
        let farthest = listeners.last().map_or(0, |&(_, hops)| hops);
        let needed = u8::try_from(farthest.saturating_add(2)).unwrap_or(u8::MAX);
        StreamPlan {
            listeners,
            terminator,
            lifetime: lifetime.max(needed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_drops_from_spin_to_park_when_idle() {
        let mut pacer = Pacer::default();
        assert_eq!(pacer.pace(3, false, None), Pace::Spin);
        for _ in 0..SPIN_CYCLES_IDLE_MAX {
            assert_eq!(pacer.pace(0, false, None), Pace::Spin);
        }
        assert_eq!(pacer.pace(0, false, None), Pace::Yield);
        for _ in 0..YIELD_CYCLES_IDLE_MAX {
            pacer.pace(0, false, None);
        }
        let deadline = Instant::from_nanos(5);
        assert_eq!(pacer.pace(0, false, Some(deadline)), Pace::Park(deadline));
        assert_eq!(pacer.pace(1, false, None), Pace::Spin);
    }

    #[test]
    fn terminator_is_the_farthest_listener() {
        let plan = StreamPlan::new(vec![(5, 1), (9, 3), (7, 3), (2, 0)], 4);
        assert_eq!(plan.terminator, Some(9));
        assert_eq!(plan.lifetime, 5, "three hops need 3 + 2 cycles");
        let near = StreamPlan::new(vec![(5, 1), (6, 2)], 4);
        assert_eq!(near.lifetime, 4, "the default when it suffices");
        let far = StreamPlan::new(vec![(5, 6)], 4);
        assert_eq!(far.lifetime, 8);
        assert_eq!(StreamPlan::new(vec![], 4).terminator, None);
    }
}
