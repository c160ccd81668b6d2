//! The relay's metrics, registered in the daemon's registry like every other service's.
//! Counters follow the server's running [`Stats`] (synced once a second and at the end);
//! allocation and refusal counts follow its events.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::server::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

/// The TURN metrics. Cloning shares them; `Metrics::default()` counts without being exposed.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    allocations_started: Family<TransportLabel, Counter>,
    allocations_ended: Family<ReasonLabel, Counter>,
    allocations_active: Gauge,
    relayed_bytes: Family<DirectionLabel, Counter>,
    relayed_datagrams: Family<DirectionLabel, Counter>,
    refused_peers: Family<ReasonLabel, Counter>,
    challenges: Counter,
    challenges_suppressed: Counter,
    stream_clients: Gauge,
    shell_drops: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "turn_allocations_started",
            "TURN allocations made, by the client's transport",
            m.allocations_started.clone(),
        );
        registry.register(
            "turn_allocations_ended",
            "TURN allocations ended, by reason",
            m.allocations_ended.clone(),
        );
        registry.register(
            "turn_allocations_active",
            "TURN allocations alive now",
            m.allocations_active.clone(),
        );
        registry.register(
            "turn_relayed_bytes",
            "Payload bytes relayed, by direction (to_peers, from_peers)",
            m.relayed_bytes.clone(),
        );
        registry.register(
            "turn_relayed_datagrams",
            "Datagrams relayed, by direction (to_peers, from_peers)",
            m.relayed_datagrams.clone(),
        );
        registry.register(
            "turn_refused_peers",
            "Peers a client asked for that the peer policy refused, by reason",
            m.refused_peers.clone(),
        );
        registry.register(
            "turn_challenges",
            "401 and 438 replies sent",
            m.challenges.clone(),
        );
        registry.register(
            "turn_challenges_suppressed",
            "401 and 438 replies not sent because their source was over its budget",
            m.challenges_suppressed.clone(),
        );
        registry.register(
            "turn_stream_clients",
            "TCP and TLS client connections open now",
            m.stream_clients.clone(),
        );
        registry.register(
            "turn_shell_drops",
            "Datagrams and frames the relay's network side dropped, by reason",
            m.shell_drops.clone(),
        );
        m
    }

    pub(crate) fn allocation_started(&self, transport: &'static str) {
        self.allocations_started
            .get_or_create(&TransportLabel { transport })
            .inc();
        self.allocations_active.inc();
    }

    pub(crate) fn allocation_ended(&self, reason: &'static str) {
        self.allocations_ended
            .get_or_create(&ReasonLabel { reason })
            .inc();
        self.allocations_active.dec();
    }

    pub(crate) fn peer_refused(&self, reason: &'static str) {
        self.refused_peers
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub(crate) fn set_stream_clients(&self, count: usize) {
        self.stream_clients
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn dropped(&self, reason: &'static str, count: u64) {
        if count > 0 {
            self.shell_drops
                .get_or_create(&ReasonLabel { reason })
                .inc_by(count);
        }
    }

    /// Brings the counters up to the server's totals, which only grow.
    pub(crate) fn sync(&self, now: &Stats, seen: &mut Stats) {
        let add = |counter: &Counter, now: u64, before: u64| {
            counter.inc_by(now.saturating_sub(before));
        };
        let to = DirectionLabel {
            direction: "to_peers",
        };
        let from = DirectionLabel {
            direction: "from_peers",
        };
        add(
            &self.relayed_bytes.get_or_create(&to),
            now.to_peers_bytes,
            seen.to_peers_bytes,
        );
        add(
            &self.relayed_bytes.get_or_create(&from),
            now.from_peers_bytes,
            seen.from_peers_bytes,
        );
        add(
            &self.relayed_datagrams.get_or_create(&to),
            now.to_peers_packets,
            seen.to_peers_packets,
        );
        add(
            &self.relayed_datagrams.get_or_create(&from),
            now.from_peers_packets,
            seen.from_peers_packets,
        );
        add(&self.challenges, now.challenges_sent, seen.challenges_sent);
        add(
            &self.challenges_suppressed,
            now.challenges_suppressed,
            seen.challenges_suppressed,
        );
        *seen = *now;
    }
}
