//! The simulated network: two directed wires per link, each a queue of `(deliver_at, frame)`.
//!
//! A wire serializes frames at its bandwidth, adds propagation delay and jitter (which
//! reorders frames), and during the fault phase loses, duplicates, corrupts (one flipped bit,
//! or a burst inside 32 bits: always caught by the frame CRC32C) and holds back stragglers.
//! A partitioned wire (one direction of a link, or both) drops everything sent on it and
//! everything still in flight on it.

use std::collections::BTreeMap;

use tamtam_engine::core::rng::Rng;

use super::params::LinkParams;

/// A frame in flight.
#[derive(Debug)]
pub struct InFlight {
    /// The bytes (possibly corrupted).
    pub bytes: Vec<u8>,
    /// Whether the wire flipped bits in it.
    pub corrupted: bool,
    /// For stream frames: the frame's age in cycles when it left the sender.
    pub stream_age: Option<u64>,
}

/// One direction of a link.
#[derive(Debug)]
pub struct Wire {
    /// Sending station index.
    pub from: usize,
    /// Receiving station index.
    pub to: usize,
    /// The link (edge) index.
    pub edge: usize,
    /// Frames in flight by `(deliver_at, serial)`.
    pub queue: BTreeMap<(u64, u64), InFlight>,
    busy_until: u64,
    rng: Rng,
}

/// Counters of what the wires did.
#[derive(Debug, Default, Clone)]
pub struct NetCounts {
    /// Frames lost (loss fault).
    pub lost: u64,
    /// Frames dropped by a partition.
    pub partitioned: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames corrupted.
    pub corrupted: u64,
    /// Stragglers.
    pub straggled: u64,
}

/// Every wire.
#[derive(Debug)]
pub struct Network {
    /// Wires `2e` (a→b) and `2e + 1` (b→a) of edge `e = (a, b)`.
    pub wires: Vec<Wire>,
    /// Per wire: how many partitions cut it now.
    pub down: Vec<u32>,
    links: Vec<LinkParams>,
    serial: u64,
    /// Counters.
    pub counts: NetCounts,
}

impl Network {
    /// Wires for `edges`, each direction with its own generator forked from `rng`.
    pub fn new(edges: &[(usize, usize)], links: &[LinkParams], rng: &mut Rng) -> Network {
        let mut wires = Vec::with_capacity(edges.len() * 2);
        for (edge, &(a, b)) in edges.iter().enumerate() {
            for (from, to) in [(a, b), (b, a)] {
                wires.push(Wire {
                    from,
                    to,
                    edge,
                    queue: BTreeMap::new(),
                    busy_until: 0,
                    rng: rng.fork(),
                });
            }
        }
        Network {
            wires,
            down: vec![0; edges.len() * 2],
            links: links.to_vec(),
            serial: 0,
            counts: NetCounts::default(),
        }
    }

    /// The wire of `edge` leaving station index `from`.
    pub fn wire_from(&self, edge: usize, from: usize) -> usize {
        if self.wires[2 * edge].from == from {
            2 * edge
        } else {
            2 * edge + 1
        }
    }

    /// Puts `bytes` on wire `wire` at `now`; `faulty` enables the fault phase's faults.
    /// Returns the times copies will arrive (none if lost).
    pub fn send(
        &mut self,
        wire: usize,
        now: u64,
        bytes: Vec<u8>,
        faulty: bool,
        stream_age: Option<u64>,
    ) -> Vec<u64> {
        let edge = self.wires[wire].edge;
        if self.down[wire] > 0 {
            self.counts.partitioned += 1;
            return Vec::new();
        }
        let link = &self.links[edge];
        let w = &mut self.wires[wire];
        if faulty && w.rng.chance(link.loss, 10_000) {
            self.counts.lost += 1;
            return Vec::new();
        }
        let serialize = bytes.len() as u64 * link.ns_per_kib / 1024;
        let start = now.max(w.busy_until);
        w.busy_until = start + serialize;
        let copies = if faulty && w.rng.chance(link.duplicate, 10_000) {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        let mut arrivals = Vec::with_capacity(copies);
        let mut bytes = Some(bytes);
        for copy in 0..copies {
            let mut at = w.busy_until + link.delay_ns + w.rng.below(link.jitter_ns + 1);
            if faulty && w.rng.chance(link.straggle, 10_000) {
                self.counts.straggled += 1;
                at += w.rng.below(link.straggle_ns + 1);
            }
            let mut frame = if copy + 1 == copies {
                bytes.take().unwrap_or_default()
            } else {
                bytes.clone().unwrap_or_default()
            };
            let corrupted = faulty && !frame.is_empty() && w.rng.chance(link.corrupt, 10_000);
            if corrupted {
                self.counts.corrupted += 1;
                // One bit, or a burst of bits inside one 32-bit window: CRC32C detects both.
                let bit = w.rng.below(frame.len() as u64 * 8);
                let burst = if w.rng.chance(1, 2) {
                    1u64
                } else {
                    w.rng.next_u64() as u32 as u64 | 1
                };
                for k in 0..32 {
                    let b = bit + k;
                    if burst >> k & 1 == 1 && b < frame.len() as u64 * 8 {
                        frame[(b / 8) as usize] ^= 1 << (b % 8);
                    }
                }
            }
            self.serial += 1;
            w.queue.insert(
                (at, self.serial),
                InFlight {
                    bytes: frame,
                    corrupted,
                    stream_age,
                },
            );
            arrivals.push(at);
        }
        arrivals
    }

    /// Frames due at station index `to` by `now`, in arrival order, with their wire.
    pub fn due(&mut self, to: usize, now: u64) -> Vec<(usize, InFlight)> {
        let mut out: Vec<((u64, u64), usize, InFlight)> = Vec::new();
        for (i, w) in self.wires.iter_mut().enumerate() {
            if w.to != to {
                continue;
            }
            while let Some(entry) = w.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (key, frame) = entry.remove_entry();
                if self.down[i] > 0 {
                    self.counts.partitioned += 1;
                    continue;
                }
                out.push((key, i, frame));
            }
        }
        out.sort_by_key(|(key, ..)| *key);
        out.into_iter()
            .map(|(_, wire, frame)| (wire, frame))
            .collect()
    }

    /// The earliest arrival at station index `to`, if any frame is in flight to it.
    pub fn next_arrival(&self, to: usize) -> Option<u64> {
        self.wires
            .iter()
            .filter(|w| w.to == to)
            .filter_map(|w| w.queue.first_key_value().map(|(k, _)| k.0))
            .min()
    }

    /// Drops every frame in flight to station index `to` (it crashed).
    pub fn drop_to(&mut self, to: usize) {
        for w in self.wires.iter_mut().filter(|w| w.to == to) {
            w.queue.clear();
        }
    }

    /// Drops every frame in flight on `edge`, both directions (the connection was reset).
    pub fn reset(&mut self, edge: usize) {
        self.wires[2 * edge].queue.clear();
        self.wires[2 * edge + 1].queue.clear();
    }

    /// Whether no frame is in flight anywhere.
    pub fn is_empty(&self) -> bool {
        self.wires.iter().all(|w| w.queue.is_empty())
    }
}
