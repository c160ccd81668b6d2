//! One allocation's state: its relayed addresses, permissions, channel bindings, bandwidth
//! budget and the counts that become its [`Summary`].

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::stun::TransactionId;

/// RFC 8656 §9: a permission lives 300 s unless refreshed.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// RFC 8656 §12: a channel binding lives 600 s unless refreshed.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8656 §12: after a binding expires, its number and peer stay reserved this long, so a
/// late packet cannot reach a different peer.
pub const CHANNEL_QUARANTINE: Duration = Duration::from_secs(300);
/// The peers kept for an allocation's summary; more are counted, not listed.
const MAX_LISTED_PEERS: usize = 64;

/// The maps looked up for every relayed datagram. foldhash, seeded per map from the
/// process's random state, hashes an address several times faster than the standard
/// library's SipHash; the maps are capped (allocations, permissions and channels per
/// allocation), which bounds what crafted collisions could cost.
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

/// Names an allocation in actions and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub u64);

/// How the client reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// TCP and TLS carry a byte stream: ChannelData is padded and frames are cut by length.
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// The client side of an allocation: which listening socket, which client, which transport.
/// Over TCP the connection is named by its client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub transport: Transport,
}

/// Why an allocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Its lifetime ran out without a Refresh.
    Expired,
    /// The client sent Refresh with LIFETIME 0.
    Deleted,
    /// The shell could not open or keep its relay socket.
    RelayFailed,
    /// The client's TCP or TLS connection closed (RFC 8656 §7: the allocation goes with it).
    ConnectionClosed,
    /// The server was finished.
    Shutdown,
}

impl EndReason {
    /// The name in metrics and summary rows.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Deleted => "deleted",
            EndReason::RelayFailed => "relay_failed",
            EndReason::ConnectionClosed => "connection_closed",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// Bytes and packets relayed in one direction, and what was dropped on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flow {
    pub bytes: u64,
    pub packets: u64,
    /// Dropped for lack of permission, by peer policy or over the bandwidth limit.
    pub dropped_packets: u64,
}

/// What an allocation did, handed out when it ends: the audit trail and metrics read this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub allocation: AllocationId,
    pub username: String,
    pub client: FiveTuple,
    pub relayed: Vec<SocketAddr>,
    /// Peer addresses permitted during its life (the first 64).
    pub peers: Vec<IpAddr>,
    pub permissions_created: u64,
    pub channels_bound: u64,
    pub to_peers: Flow,
    pub from_peers: Flow,
    pub started: Instant,
    pub ended: Instant,
    pub reason: EndReason,
}

/// A token bucket over the time passed in.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    bytes_per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(bytes_per_second: u64, burst_bytes: u64, now: Instant) -> TokenBucket {
        // Precision beyond 2^53 bytes per second does not matter.
        #[allow(clippy::cast_precision_loss)]
        let (rate, burst) = (bytes_per_second as f64, burst_bytes as f64);
        TokenBucket {
            bytes_per_second: rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `bytes` if the budget allows, refilling for the time since the last call.
    pub(crate) fn take(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.burst);
        #[allow(clippy::cast_precision_loss)]
        let cost = bytes as f64;
        if cost <= self.tokens {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelBinding {
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

impl ChannelBinding {
    pub(crate) fn is_active(&self, now: Instant) -> bool {
        now < self.expires
    }

    /// Whether the number and peer are still reserved to each other (active or quarantined).
    pub(crate) fn is_reserved(&self, now: Instant) -> bool {
        now < self.expires + CHANNEL_QUARANTINE
    }
}

#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) id: AllocationId,
    pub(crate) tuple: FiveTuple,
    pub(crate) username: String,
    pub(crate) relays: Vec<SocketAddr>,
    /// An RFC 6062 TCP allocation: peers are reached by Connect and ConnectionAttempt, never
    /// by Send or channels.
    pub(crate) tcp: bool,
    pub(crate) expires: Instant,
    pub(crate) permissions: FastMap<IpAddr, Instant>,
    pub(crate) channels: FastMap<u16, ChannelBinding>,
    pub(crate) channel_of_peer: FastMap<SocketAddr, u16>,
    /// The Allocate request's transaction ID and the success reply, to answer a
    /// retransmission with the same bytes instead of 437 (RFC 8656 §7.2).
    pub(crate) allocate_reply: (TransactionId, Vec<u8>),
    pub(crate) to_peers_budget: Option<TokenBucket>,
    pub(crate) from_peers_budget: Option<TokenBucket>,
    pub(crate) to_peers: Flow,
    pub(crate) from_peers: Flow,
    pub(crate) peers: Vec<IpAddr>,
    pub(crate) permissions_created: u64,
    pub(crate) channels_bound: u64,
    pub(crate) started: Instant,
    /// When the timer queue will next look at this allocation.
    pub(crate) scheduled: Instant,
}

impl Allocation {
    pub(crate) fn relay_for(&self, peer: IpAddr) -> Option<SocketAddr> {
        self.relays
            .iter()
            .copied()
            .find(|relay| relay.is_ipv4() == peer.is_ipv4())
    }

    pub(crate) fn has_permission(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions
            .get(&peer)
            .is_some_and(|expires| now < *expires)
    }

    /// Installs or refreshes a permission.
    pub(crate) fn permit(&mut self, peer: IpAddr, now: Instant) {
        let previous = self.permissions.insert(peer, now + PERMISSION_LIFETIME);
        if previous.is_none_or(|expires| expires <= now) {
            self.permissions_created += 1;
            if self.peers.len() < MAX_LISTED_PEERS && !self.peers.contains(&peer) {
                self.peers.push(peer);
            }
        }
    }

    /// Counts the permissions a CreatePermission for `peers` would add.
    pub(crate) fn new_permissions(&self, peers: &[IpAddr], now: Instant) -> usize {
        let mut fresh: Vec<IpAddr> = Vec::new();
        for peer in peers {
            if !self.has_permission(*peer, now) && !fresh.contains(peer) {
                fresh.push(*peer);
            }
        }
        fresh.len()
    }

    pub(crate) fn active_permissions(&self, now: Instant) -> usize {
        self.permissions.values().filter(|e| now < **e).count()
    }

    /// The active channel bound to `peer`, for wrapping its data in ChannelData.
    pub(crate) fn active_channel_to(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let channel = *self.channel_of_peer.get(&peer)?;
        self.channels
            .get(&channel)
            .filter(|binding| binding.is_active(now))
            .map(|_| channel)
    }

    /// Forgets what has expired; the earliest moment something else will.
    pub(crate) fn prune(&mut self, now: Instant) -> Instant {
        self.permissions.retain(|_, expires| now < *expires);
        let quarantined_out: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, binding)| !binding.is_reserved(now))
            .map(|(channel, _)| *channel)
            .collect();
        for channel in quarantined_out {
            if let Some(binding) = self.channels.remove(&channel) {
                self.channel_of_peer.remove(&binding.peer);
            }
        }
        let mut next = self.expires;
        for expires in self.permissions.values() {
            next = next.min(*expires);
        }
        for binding in self.channels.values() {
            let deadline = if binding.is_active(now) {
                binding.expires
            } else {
                binding.expires + CHANNEL_QUARANTINE
            };
            next = next.min(deadline);
        }
        next
    }

    pub(crate) fn summary(&self, ended: Instant, reason: EndReason) -> Summary {
        Summary {
            allocation: self.id,
            username: self.username.clone(),
            client: self.tuple,
            relayed: self.relays.clone(),
            peers: self.peers.clone(),
            permissions_created: self.permissions_created,
            channels_bound: self.channels_bound,
            to_peers: self.to_peers,
            from_peers: self.from_peers,
            started: self.started,
            ended,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_bucket_refills_at_its_rate_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, 1500, start);
        assert!(bucket.take(1500, start));
        assert!(!bucket.take(1, start));
        assert!(bucket.take(500, start + Duration::from_millis(500)));
        assert!(!bucket.take(10, start + Duration::from_millis(500)));
        assert!(bucket.take(1500, start + Duration::from_secs(100)));
    }
}
