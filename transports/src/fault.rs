//! A seeded fault hook around any link: drops and duplicates outgoing frames with given
//! probabilities, and a [`CutSwitch`] that closes the wrapped link on demand (a pulled cable).
//! Used by the conformance suite; cheap enough to leave in a production build.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ExternalLink;

/// Closes every link created before the latest [`cut`](CutSwitch::cut). Cloning shares the
/// switch.
#[derive(Debug, Clone, Default)]
pub struct CutSwitch {
    generation: Arc<AtomicU64>,
}

impl CutSwitch {
    /// A switch that has never been cut.
    pub fn new() -> CutSwitch {
        CutSwitch::default()
    }

    /// Closes the links wrapped so far (their next call returns an error).
    pub fn cut(&self) {
        // Release/Acquire: a link that sees the new generation also sees everything the
        // cutting thread did before (the test's bookkeeping).
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times the switch was cut.
    pub fn cuts(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// What the hook does to outgoing frames. Probabilities are in parts per million.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Seed of the hook's PRNG (log it with a failure to replay it).
    pub seed: u64,
    /// Outgoing frames silently lost.
    pub drop_ppm: u32,
    /// Outgoing frames sent twice.
    pub duplicate_ppm: u32,
    /// The cable.
    pub cut: CutSwitch,
}

/// A link wrapped by the fault hook.
pub struct Faulty {
    inner: Box<dyn ExternalLink>,
    faults: Faults,
    rng: u64,
    generation: u64,
}

impl Faulty {
    /// Wraps `inner`; the link is cut by the next [`CutSwitch::cut`] of `faults.cut`.
    pub fn new(inner: Box<dyn ExternalLink>, faults: Faults) -> Faulty {
        let generation = faults.cut.cuts();
        Faulty {
            inner,
            rng: faults.seed ^ 0x9E37_79B9_7F4A_7C15,
            faults,
            generation,
        }
    }

    fn check_cut(&self) -> io::Result<()> {
        if self.faults.cut.cuts() != self.generation {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("{}: cut by the fault hook", self.inner.describe()),
            ));
        }
        Ok(())
    }

    /// splitmix64: one draw in parts per million.
    fn draw_ppm(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % 1_000_000) as u32
    }
}

impl ExternalLink for Faulty {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        self.check_cut()?;
        self.inner.poll_recv(frames_max, on_frame)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        self.check_cut()?;
        if self.draw_ppm() < self.faults.drop_ppm {
            return Ok(true);
        }
        if self.draw_ppm() < self.faults.duplicate_ppm {
            let _ = self.inner.send(frame)?;
        }
        self.inner.send(frame)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_cut()?;
        self.inner.flush()
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}
