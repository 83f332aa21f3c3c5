//! Discovery and routing: link-state over flooded adverts.
//!
//! Every station floods an [`Advert`] listing its live neighbours, the ports it serves, the
//! stream ports it listens to and the groups it belongs to. Each station keeps the newest
//! advert of every origin (ordered by `(incarnation, seq)`), forgets origins not refreshed for
//! `advert_ttl`, and computes shortest paths (breadth-first, ties broken by the lower station
//! id so every station computes the same tree). `spec/model/SafariBus-v1.md` §4.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::control::Advert;
use super::time::{Duration, Instant};

/// What this station knows about another.
#[derive(Debug, Clone)]
pub struct StationInfo {
    /// The newest advert.
    pub advert: Advert,
    /// When it arrived.
    pub refreshed_at: Instant,
}

/// A route to a station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The neighbour to hand frames to.
    pub next_hop: u32,
    /// Hops to the destination.
    pub hops: u32,
}

/// The link-state database and the routes computed from it.
#[derive(Debug)]
pub struct Topology {
    self_id: u32,
    stations_max: usize,
    stations: BTreeMap<u32, StationInfo>,
    /// No later than the oldest `refreshed_at` in `stations`: `expire`, called every cycle,
    /// scans the stations only once one of them may be older than the TTL.
    oldest_refresh: Instant,
    /// This station's live neighbours.
    neighbours: BTreeSet<u32>,
    routes: BTreeMap<u32, Route>,
    dirty: bool,
    /// Bumped whenever a station, an advert's content or a route may have changed.
    version: u64,
}

/// Whether an arriving advert was news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// Newer than what was known: stored; flood it on.
    Accepted,
    /// Known already or older: drop, do not flood.
    Stale,
    /// The table is full: dropped and counted.
    Full,
}

impl Topology {
    /// An empty topology for station `self_id`.
    pub fn new(self_id: u32, stations_max: usize) -> Topology {
        Topology {
            self_id,
            stations_max,
            stations: BTreeMap::new(),
            oldest_refresh: Instant::NEVER,
            neighbours: BTreeSet::new(),
            routes: BTreeMap::new(),
            dirty: false,
            version: 0,
        }
    }

    /// Records a live neighbour.
    pub fn neighbour_up(&mut self, station: u32) -> bool {
        let added = self.neighbours.insert(station);
        self.mark(added);
        added
    }

    /// Records that a neighbour went silent or its link closed.
    pub fn neighbour_down(&mut self, station: u32) -> bool {
        let removed = self.neighbours.remove(&station);
        self.mark(removed);
        removed
    }

    /// This station's live neighbours.
    pub fn neighbours(&self) -> &BTreeSet<u32> {
        &self.neighbours
    }

    /// Stores `advert` from `origin` if it is newer than the one known.
    pub fn handle_advert(&mut self, now: Instant, origin: u32, advert: Advert) -> AdvertOutcome {
        if origin == self.self_id {
            return AdvertOutcome::Stale;
        }
        match self.stations.get_mut(&origin) {
            Some(info) => {
                let known = (info.advert.incarnation, info.advert.seq);
                if (advert.incarnation, advert.seq) <= known {
                    return AdvertOutcome::Stale;
                }
                let changed = info.advert.neighbours != advert.neighbours
                    || info.advert.ports != advert.ports
                    || info.advert.subscriptions != advert.subscriptions
                    || info.advert.groups != advert.groups;
                info.advert = advert;
                info.refreshed_at = now;
                self.mark(changed);
                AdvertOutcome::Accepted
            }
            None => {
                if self.stations.len() >= self.stations_max {
                    return AdvertOutcome::Full;
                }
                self.stations.insert(
                    origin,
                    StationInfo {
                        advert,
                        refreshed_at: now,
                    },
                );
                self.oldest_refresh = self.oldest_refresh.min(now);
                self.mark(true);
                AdvertOutcome::Accepted
            }
        }
    }

    /// Forgets stations whose advert is older than `ttl`. Returns the forgotten ids.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<u32> {
        if self.oldest_refresh == Instant::NEVER || now.saturating_since(self.oldest_refresh) <= ttl
        {
            return Vec::new();
        }
        let expired: Vec<u32> = self
            .stations
            .iter()
            .filter(|(_, info)| now.saturating_since(info.refreshed_at) > ttl)
            .map(|(&id, _)| id)
            .collect();
        for id in &expired {
            self.stations.remove(id);
        }
        self.oldest_refresh = self
            .stations
            .values()
            .map(|info| info.refreshed_at)
            .min()
            .unwrap_or(Instant::NEVER);
        self.mark(!expired.is_empty());
        expired
    }

    /// Forgets one station at once (it restarted with a new incarnation and said so).
    pub fn forget(&mut self, station: u32) {
        let removed = self.stations.remove(&station).is_some();
        self.mark(removed);
    }

    /// Notes a change of stations, adverts or neighbours: routes must be recomputed.
    fn mark(&mut self, changed: bool) {
        if changed {
            self.dirty = true;
            self.version += 1;
        }
    }

    /// Changes whenever what [`Topology::listeners_of`], [`Topology::servers_of`] and
    /// [`Topology::route`] answer may have changed (a new station or advert content, a
    /// station forgotten, routes recomputed); callers cache their answers under it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Recomputes routes if anything changed. Returns whether routes were recomputed.
    pub fn refresh(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        self.version += 1;
        self.routes.clear();
        // Breadth-first from this station. An edge A→B counts when A lists B (for this
        // station: a live link), and B is known or is a direct neighbour.
        let mut queue = VecDeque::new();
        for &n in &self.neighbours {
            self.routes.insert(
                n,
                Route {
                    next_hop: n,
                    hops: 1,
                },
            );
            queue.push_back(n);
        }
        while let Some(at) = queue.pop_front() {
            let Some(info) = self.stations.get(&at) else {
                continue;
            };
            let via = self.routes[&at];
            let mut next: Vec<u32> = info.advert.neighbours.clone();
            next.sort_unstable();
            for n in next {
                if n == self.self_id || self.routes.contains_key(&n) {
                    continue;
                }
                self.routes.insert(
                    n,
                    Route {
                        next_hop: via.next_hop,
                        hops: via.hops + 1,
                    },
                );
                queue.push_back(n);
            }
        }
        true
    }

    /// The route to `station`, if reachable.
    pub fn route(&self, station: u32) -> Option<Route> {
        self.routes.get(&station).copied()
    }

    /// Reachable stations whose advert lists `port` as served, nearest first.
    pub fn servers_of(&self, port: u16) -> Vec<(u32, u32)> {
        self.matching(|advert| advert.ports.contains(&port))
    }

    /// Reachable stations listening to stream port `port`.
    pub fn listeners_of(&self, port: u16) -> Vec<(u32, u32)> {
        self.matching(|advert| advert.subscriptions.contains(&port))
    }

    /// Reachable members of group `group`.
    pub fn members_of(&self, group: u16) -> Vec<(u32, u32)> {
        self.matching(|advert| advert.groups.contains(&group))
    }

    /// Every reachable station, nearest first.
    pub fn reachable(&self) -> Vec<(u32, u32)> {
        self.matching(|_| true)
    }

    fn matching(&self, predicate: impl Fn(&Advert) -> bool) -> Vec<(u32, u32)> {
        let mut found: Vec<(u32, u32)> = self
            .stations
            .iter()
            .filter(|(_, info)| predicate(&info.advert))
            .filter_map(|(&id, _)| self.route(id).map(|r| (id, r.hops)))
            .collect();
        found.sort_by_key(|&(id, hops)| (hops, id));
        found
    }

    /// The stored advert of `station`.
    pub fn station(&self, station: u32) -> Option<&StationInfo> {
        self.stations.get(&station)
    }

    /// Number of known stations.
    pub fn len(&self) -> usize {
        self.stations.len()
    }

    /// Whether no other station is known.
    pub fn is_empty(&self) -> bool {
        self.stations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(seq: u32, neighbours: &[u32], ports: &[u16]) -> Advert {
        Advert {
            incarnation: 1,
            seq,
            neighbours: neighbours.to_vec(),
            ports: ports.to_vec(),
            ..Advert::default()
        }
    }

    #[test]
    fn line_topology_routes_through_middle() {
        // 1 - 2 - 3 - 4, seen from 1.
        let mut t = Topology::new(1, 16);
        t.neighbour_up(2);
        let now = Instant::ZERO;
        assert_eq!(
            t.handle_advert(now, 2, advert(1, &[1, 3], &[])),
            AdvertOutcome::Accepted
        );
        assert_eq!(
            t.handle_advert(now, 3, advert(1, &[2, 4], &[])),
            AdvertOutcome::Accepted
        );
        assert_eq!(
            t.handle_advert(now, 4, advert(1, &[3], &[500])),
            AdvertOutcome::Accepted
        );
        t.refresh();
        assert_eq!(
            t.route(4),
            Some(Route {
                next_hop: 2,
                hops: 3
            })
        );
        assert_eq!(t.servers_of(500), vec![(4, 3)]);
        assert_eq!(
            t.handle_advert(now, 4, advert(1, &[3], &[])),
            AdvertOutcome::Stale
        );
    }

    #[test]
    fn expiry_removes_routes() {
        let mut t = Topology::new(1, 16);
        t.neighbour_up(2);
        t.handle_advert(Instant::ZERO, 2, advert(1, &[1, 3], &[]));
        t.handle_advert(Instant::ZERO, 3, advert(1, &[2], &[]));
        t.refresh();
        assert!(t.route(3).is_some());
        let later = Instant::from_nanos(10_000_000_000);
        assert_eq!(t.expire(later, Duration::from_secs(1)).len(), 2);
        t.refresh();
        assert!(t.route(3).is_none());
        assert!(t.route(2).is_some());
    }
}
