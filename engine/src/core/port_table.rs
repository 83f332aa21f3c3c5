//! Per-port state by port number, and the set of ports with something to deliver.
//!
//! Both are indexed by the port number itself, so a lookup, an insertion and a removal cost
//! the same with one port as with 10 000 (a `BTreeMap` with 10 000 ports made every lookup
//! walk four nodes, and the deliver phase looks ports up several times per message). Both
//! iterate in ascending port order, as the delivery order and adverts need.

/// Ports per page: the low byte of the port number.
const PAGE: usize = 256;
/// Pages: the high byte of the port number.
const PAGES: usize = 65_536 / PAGE;

/// A map from port number to `T`: two levels of 256 slots, a page allocated when a port in
/// it is first used (2 KiB per page plus one box per port; at most 256 pages).
pub(crate) struct PortTable<T> {
    pages: Vec<Option<Page<T>>>,
}

/// One page: [`PAGE`] slots, each the port number and its value.
type Page<T> = Box<[Option<Box<(u16, T)>>]>;

/// A slot of [`PortTable::entry`], filled on demand.
pub(crate) struct Entry<'a, T> {
    slot: &'a mut Option<Box<(u16, T)>>,
    port: u16,
}

impl<'a, T: Default> Entry<'a, T> {
    /// The port's value, a default one inserted first if the port had none.
    pub(crate) fn or_default(self) -> &'a mut T {
        let port = self.port;
        &mut self
            .slot
            .get_or_insert_with(|| Box::new((port, T::default())))
            .1
    }
}

fn split(port: u16) -> (usize, usize) {
    (usize::from(port) / PAGE, usize::from(port) % PAGE)
}

impl<T> PortTable<T> {
    /// An empty table.
    pub(crate) fn new() -> PortTable<T> {
        PortTable {
            pages: (0..PAGES).map(|_| None).collect(),
        }
    }

    /// The value of `port`, if it has one.
    pub(crate) fn get(&self, port: &u16) -> Option<&T> {
        let (page, slot) = split(*port);
        self.pages[page].as_ref()?[slot].as_ref().map(|b| &b.1)
    }

    /// The value of `port`, if it has one, to change.
    pub(crate) fn get_mut(&mut self, port: &u16) -> Option<&mut T> {
        let (page, slot) = split(*port);
        self.pages[page].as_mut()?[slot].as_mut().map(|b| &mut b.1)
    }

    /// Whether `port` has a value.
    pub(crate) fn contains_key(&self, port: &u16) -> bool {
        self.get(port).is_some()
    }

    /// The slot of `port` (its page allocated if needed), to fill with [`Entry::or_default`].
    pub(crate) fn entry(&mut self, port: u16) -> Entry<'_, T> {
        let (page, slot) = split(port);
        let page = self.pages[page].get_or_insert_with(|| (0..PAGE).map(|_| None).collect());
        Entry {
            slot: &mut page[slot],
            port,
        }
    }

    /// Every port with a value and its value, in ascending port order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u16, &T)> {
        self.pages
            .iter()
            .flatten()
            .flat_map(|page| page.iter().flatten())
            .map(|b| (&b.0, &b.1))
    }

    /// Every value, in ascending port order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, v)| v)
    }
}

/// A set of port numbers: one bit per port, plus one bit per word telling whether the word
/// has any bit set, so walking the set costs 16 summary words plus one step per member.
pub(crate) struct PortSet {
    words: Box<[u64; 1024]>,
    summary: [u64; 16],
    len: usize,
}

impl PortSet {
    /// An empty set.
    pub(crate) fn new() -> PortSet {
        PortSet {
            words: Box::new([0; 1024]),
            summary: [0; 16],
            len: 0,
        }
    }

    /// Adds `port`; returns whether it was absent.
    pub(crate) fn insert(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, 1u64 << (port % 64));
        if self.words[word] & bit != 0 {
            return false;
        }
        self.words[word] |= bit;
        self.summary[word / 64] |= 1 << (word % 64);
        self.len += 1;
        true
    }

    /// Removes `port`; returns whether it was present.
    pub(crate) fn remove(&mut self, port: u16) -> bool {
        let (word, bit) = (usize::from(port) / 64, 1u64 << (port % 64));
        if self.words[word] & bit == 0 {
            return false;
        }
        self.words[word] &= !bit;
        if self.words[word] == 0 {
            self.summary[word / 64] &= !(1 << (word % 64));
        }
        self.len -= 1;
        true
    }

    /// Whether `port` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, port: u16) -> bool {
        self.words[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// How many ports are in the set.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the members in `from..to` (`to` exclusive, up to 65 536) to `out`, ascending.
    pub(crate) fn extend_ascending(&self, from: u16, to: u32, out: &mut Vec<u16>) {
        if self.len == 0 || u32::from(from) >= to {
            return;
        }
        let first_word = usize::from(from) / 64;
        let end_word = (to as usize).div_ceil(64);
        let mut s = first_word / 64;
        while s < 16 && s * 64 < end_word {
            let mut summary = self.summary[s];
            while summary != 0 {
                let word = s * 64 + summary.trailing_zeros() as usize;
                summary &= summary - 1;
                if word < first_word {
                    continue;
                }
                if word >= end_word {
                    return;
                }
                let mut bits = self.words[word];
                while bits != 0 {
                    let port = word as u32 * 64 + bits.trailing_zeros();
                    bits &= bits - 1;
                    if port < u32::from(from) {
                        continue;
                    }
                    if port >= to {
                        return;
                    }
                    out.push(port as u16);
                }
            }
            s += 1;
        }
    }

    /// Appends the members in `0..to` (`to` exclusive) to `out`, descending.
    pub(crate) fn extend_descending_below(&self, to: u16, out: &mut Vec<u16>) {
        let start = out.len();
        self.extend_ascending(0, u32::from(to), out);
        out[start..].reverse();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::core::rng::Rng;

    #[test]
    fn port_set_ranges_match_a_btree_set() {
        // Method: random inserts and removals (seeded), with every word and summary boundary
        // among the candidates; after each step, ranges must list what a BTreeSet lists.
        let mut rng = Rng::new(7);
        let mut set = PortSet::new();
        let mut model = BTreeSet::new();
        let edges = [
            0u16, 1, 63, 64, 65, 100, 101, 4095, 4096, 4097, 65_471, 65_534, 65_535,
        ];
        for step in 0..4000 {
            let port = if rng.next_u64() % 2 == 0 {
                edges[(rng.next_u64() % edges.len() as u64) as usize]
            } else {
                rng.next_u64() as u16
            };
            if rng.next_u64() % 3 == 0 {
                assert_eq!(set.remove(port), model.remove(&port));
            } else {
                assert_eq!(set.insert(port), model.insert(port));
            }
            assert_eq!(set.len(), model.len());
            assert_eq!(set.contains(port), model.contains(&port));
            let a = edges[(rng.next_u64() % edges.len() as u64) as usize];
            let b = u32::from(edges[(rng.next_u64() % edges.len() as u64) as usize]) + 1;
            let mut got = Vec::new();
            set.extend_ascending(a, b, &mut got);
            let want: Vec<u16> = model
                .iter()
                .copied()
                .filter(|&p| p >= a && u32::from(p) < b)
                .collect();
            assert_eq!(got, want, "step {step}: {a}..{b}");
            let mut got = Vec::new();
            set.extend_ascending(0, 65_536, &mut got);
            assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
            let mut got = Vec::new();
            set.extend_descending_below(a, &mut got);
            let want: Vec<u16> = model.range(..a).rev().copied().collect();
            assert_eq!(got, want, "step {step}: below {a}");
        }
    }

    #[test]
    fn port_table_matches_a_btree_map() {
        let mut rng = Rng::new(9);
        let mut table: PortTable<u32> = PortTable::new();
        let mut model: BTreeMap<u16, u32> = BTreeMap::new();
        for _ in 0..3000 {
            let port = rng.next_u64() as u16 % 2048 * 32;
            *table.entry(port).or_default() += 1;
            *model.entry(port).or_default() += 1;
            if let Some(v) = table.get_mut(&(port ^ 32)) {
                *v += 10;
                *model.get_mut(&(port ^ 32)).unwrap() += 10;
            }
            assert_eq!(table.get(&port), model.get(&port));
            assert!(table.contains_key(&port));
        }
        let got: Vec<(u16, u32)> = table.iter().map(|(&p, &v)| (p, v)).collect();
        let want: Vec<(u16, u32)> = model.into_iter().collect();
        assert_eq!(got, want);
        assert!(!table.contains_key(&1));
    }
}
