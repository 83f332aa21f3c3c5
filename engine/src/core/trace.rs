//! Trace reports (seed `001`): collecting them and rebuilding a packet's route.
//!
//! A station that receives a frame with `TRACE_REQUESTED` emits [`TraceReport`]s as CONTROL
//! packets to TRACE_REPORT (port 4), best effort, through a bounded queue. Whoever serves
//! TRACE_REPORT feeds them to a [`TraceCollector`], which rebuilds the route hop by hop.

use std::collections::{BTreeMap, VecDeque};

use super::control::{TraceEvent, TraceReport};
use super::wire::frame::PacketType;

/// The key of a traced packet flow: `(RouteId, SenderId, RequestId, PacketType)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceKey {
    /// Route id.
    pub route_id: u32,
    /// Original sender.
    pub sender_id: u32,
    /// Request id.
    pub request_id: u64,
    /// Packet type.
    pub packet_type: PacketType,
}

/// One station's part in a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The station.
    pub node: u32,
    /// Events it reported, in arrival order.
    pub events: Vec<TraceEvent>,
    /// Where it forwarded the packet, if it did.
    pub next_hop: Option<u32>,
}

/// Collects trace reports (bounded) and rebuilds routes.
#[derive(Debug)]
pub struct TraceCollector {
    flows: BTreeMap<TraceKey, Vec<TraceReport>>,
    order: VecDeque<TraceKey>,
    flows_max: usize,
    reports_per_flow_max: usize,
}

impl TraceCollector {
    /// A collector remembering at most `flows_max` flows of at most `reports_per_flow_max`
    /// reports each; the oldest flow is forgotten first.
    pub fn new(flows_max: usize, reports_per_flow_max: usize) -> TraceCollector {
        TraceCollector {
            flows: BTreeMap::new(),
            order: VecDeque::new(),
            flows_max,
            reports_per_flow_max,
        }
    }

    /// Adds a report for the packet with `route_id` and `request_id` (from the report frame's
    /// header).
    pub fn add(&mut self, route_id: u32, request_id: u64, report: TraceReport) {
        let key = TraceKey {
            route_id,
            sender_id: report.traced_sender,
            request_id,
            packet_type: report.packet_type,
        };
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.flows_max {
                if let Some(old) = self.order.pop_front() {
                    self.flows.remove(&old);
                }
            }
            self.order.push_back(key);
        }
        let reports = self.flows.entry(key).or_default();
        if reports.len() < self.reports_per_flow_max {
            reports.push(report);
        }
    }

    /// Keys of the flows held.
    pub fn keys(&self) -> impl Iterator<Item = &TraceKey> {
        self.flows.keys()
    }

    /// The raw reports of a flow.
    pub fn reports(&self, key: &TraceKey) -> &[TraceReport] {
        self.flows.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The route of a flow: starting at the original sender, follow FORWARDED `next_hop`s.
    /// Stations that reported but are not on the forwarding chain are appended in report order.
    pub fn route(&self, key: &TraceKey) -> Vec<Hop> {
        let reports = self.reports(key);
        let mut by_node: BTreeMap<u32, Hop> = BTreeMap::new();
        let mut first_seen: Vec<u32> = Vec::new();
        for report in reports {
            let hop = by_node.entry(report.node).or_insert_with(|| {
                first_seen.push(report.node);
                Hop {
                    node: report.node,
                    events: Vec::new(),
                    next_hop: None,
                }
            });
            hop.events.push(report.event);
            if report.event == TraceEvent::Forwarded && report.next_hop != 0 {
                hop.next_hop = Some(report.next_hop);
            }
        }
        let mut route = Vec::new();
        let mut at = Some(key.sender_id);
        while let Some(node) = at {
            let Some(hop) = by_node.remove(&node) else {
                break;
            };
            at = hop.next_hop;
            route.push(hop);
        }
        for node in first_seen {
            if let Some(hop) = by_node.remove(&node) {
                route.push(hop);
            }
        }
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: u32, event: TraceEvent, next_hop: u32) -> TraceReport {
        TraceReport {
            event,
            packet_type: PacketType::Data,
            reason: 0,
            traced_sender: 1,
            node,
            next_hop,
            queue_depth: 0,
            timestamp_ns: 0,
        }
    }

    #[test]
    fn rebuilds_a_three_hop_route_from_shuffled_reports() {
        let mut c = TraceCollector::new(8, 64);
        for r in [
            report(3, TraceEvent::Received, 0),
            report(1, TraceEvent::Forwarded, 2),
            report(3, TraceEvent::Claimed, 0),
            report(2, TraceEvent::Received, 0),
            report(2, TraceEvent::Forwarded, 3),
            report(3, TraceEvent::AckSent, 0),
        ] {
            c.add(7, 9, r);
        }
        let key = *c.keys().next().unwrap();
        let route: Vec<u32> = c.route(&key).iter().map(|h| h.node).collect();
        assert_eq!(route, vec![1, 2, 3]);
    }
}
