//! The TURN server state machine (RFC 8656, compatible with RFC 5766 clients), with STUN
//! Binding (RFC 8489).
//!
//! The shell owns the sockets and the clock. It feeds the server what arrives and asks it
//! what to do:
//!
//! ```text
//! loop {
//!     select! {
//!         (bytes, client) = listener.recv()      => server.handle_client(now, tuple, &bytes),
//!         (bytes, peer)   = relay[id].recv()     => server.handle_peer_data(now, id, peer, &bytes),
//!         _ = sleep_until(server.poll_timeout()) => server.handle_timeout(now),
//!     }
//!     while let Some(action) = server.poll_action() {
//!         match action {
//!             Transmit { tuple, bytes }            => send on tuple's listener or connection
//!                                                     (then, optionally, server.recycle(bytes)),
//!             OpenRelay { allocation, relayed, dont_fragment }
//!                                                  => bind relayed, DF on its datagrams if asked
//!                                                     (on failure:
//!                                                     server.handle_relay_failed(now, allocation)),
//!             OpenTcpRelay { allocation, relayed } => listen on relayed (RFC 6062); each peer
//!                                                     that connects: handle_peer_connection,
//!             RelayTo { relayed, peer, bytes, .. } => send from relayed to peer (and recycle),
//!             ConnectPeer { connection, .. }       => dial the peer from relayed, then
//!                                                     handle_peer_connected or _connect_failed,
//!             BindData { connection, tuple }       => pipe tuple's connection and the peer's,
//!             CloseConnection { connection }       => drop that peer connection and its pipe,
//!             CloseRelay { relayed, .. }           => drop that socket,
//!         }
//!     }
//!     while let Some(event) = server.poll_event() { metrics and audit }
//! }
//! ```
//!
//! Over TCP the shell cuts the stream with [`crate::framing::frame_len`] and passes one frame
//! at a time. Nothing here blocks, reads a clock or draws randomness except from the
//! [`Entropy`] it was given.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::allocation::{
    Allocation, AllocationId, CHANNEL_LIFETIME, ChannelBinding, EndReason, FastMap, FiveTuple,
    Summary, TokenBucket,
};
use crate::auth::{self, ChallengeLimiter, Credentials, Lookup, NonceCheck, NonceIssuer};
use crate::entropy::Entropy;
use crate::framing::{CHANNEL_NUMBERS, ChannelData};
use crate::policy::{PeerPolicy, Refusal};
use crate::ports::{PortParity, RelayPorts};
use crate::stun::{
    AddressFamily, Class, ErrorCode, IntegrityKind, Message, MessageBuilder, Method,
    PasswordAlgorithm, attribute_type as attr, encode_address,
};

mod requests;
mod tcp;
#[cfg(test)]
mod tests;

pub use tcp::{CONNECTION_BIND_WITHIN, ConnectionId, MAX_CONNECTIONS_PER_ALLOCATION};

/// The error codes this server sends (RFC 8489 §14.8, RFC 8656 §19).
pub mod error {
    pub const BAD_REQUEST: (u16, &str) = (400, "Bad Request");
    pub const UNAUTHENTICATED: (u16, &str) = (401, "Unauthenticated");
    pub const FORBIDDEN: (u16, &str) = (403, "Forbidden");
    pub const UNKNOWN_ATTRIBUTE: (u16, &str) = (420, "Unknown Attribute");
    pub const ALLOCATION_MISMATCH: (u16, &str) = (437, "Allocation Mismatch");
    pub const STALE_NONCE: (u16, &str) = (438, "Stale Nonce");
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: (u16, &str) = (440, "Address Family not Supported");
    pub const WRONG_CREDENTIALS: (u16, &str) = (441, "Wrong Credentials");
    pub const UNSUPPORTED_TRANSPORT: (u16, &str) = (442, "Unsupported Transport Protocol");
    pub const PEER_ADDRESS_FAMILY_MISMATCH: (u16, &str) = (443, "Peer Address Family Mismatch");
    pub const CONNECTION_ALREADY_EXISTS: (u16, &str) = (446, "Connection Already Exists");
    pub const CONNECTION_FAILURE: (u16, &str) = (447, "Connection Timeout or Failure");
    pub const ALLOCATION_QUOTA_REACHED: (u16, &str) = (486, "Allocation Quota Reached");
    pub const INSUFFICIENT_CAPACITY: (u16, &str) = (508, "Insufficient Capacity");
}

/// The most peer data relayed in one packet: what still fits a Data indication (header,
/// XOR-PEER-ADDRESS for IPv6, DATA's header and FINGERPRINT) within STUN's 16-bit length.
pub const MAX_RELAYED_DATA: usize = 0xFFFF - 64;

/// How long a port kept by EVEN-PORT's R bit waits for the Allocate that names its
/// RESERVATION-TOKEN (RFC 8656 §7.2: about 30 seconds).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Buffers handed back by [`Server::recycle`] kept for the next relayed datagrams: enough for
/// the datagrams of a busy moment, each no larger than [`SPARE_BUFFER_BYTES`], so the pool
/// never holds more than a few MiB.
const SPARE_BUFFERS: usize = 256;
const SPARE_BUFFER_BYTES: usize = 2048;

/// A per-allocation bandwidth limit, applied to each direction separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    pub bytes_per_second: u64,
    pub burst_bytes: u64,
}

/// How the server behaves. [`ServerConfig::default`] has RFC 8656's suggested lifetimes and
/// conservative quotas.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub realm: String,
    /// SOFTWARE in every reply, if set.
    pub software: Option<String>,
    /// The addresses relayed sockets are bound to; a family without one is refused (440).
    pub relay_ipv4: Option<Ipv4Addr>,
    pub relay_ipv6: Option<Ipv6Addr>,
    pub default_lifetime: Duration,
    pub max_lifetime: Duration,
    pub nonce_lifetime: Duration,
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    pub max_permissions_per_allocation: usize,
    pub max_channels_per_allocation: usize,
    pub bandwidth: Option<Bandwidth>,
    /// 401 and 438 replies to one source address within `challenge_window`; more are dropped.
    pub challenges_per_source: u32,
    pub challenge_window: Duration,
    pub policy: PeerPolicy,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            realm: "tapline".to_owned(),
            software: Some("Tapline".to_owned()),
            relay_ipv4: None,
            relay_ipv6: None,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
            max_allocations: 4096,
            max_allocations_per_user: 16,
            max_permissions_per_allocation: 64,
            max_channels_per_allocation: 64,
            bandwidth: None,
            challenges_per_source: 20,
            challenge_window: Duration::from_secs(10),
            policy: PeerPolicy::default(),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send on the listening socket (UDP) or connection (TCP) of `tuple`. Over TCP the bytes
    /// are one whole frame, padding included.
    Transmit { tuple: FiveTuple, bytes: Vec<u8> },
    /// Bind a UDP socket on `relayed` for the allocation and pass what it receives to
    /// [`Server::handle_peer_data`]. With `dont_fragment` (the client's DONT-FRAGMENT, RFC
    /// 8656 §7.2), what it sends must carry the DF bit and never be fragmented: a datagram
    /// too large for the path is dropped instead. Without it, the system's default applies.
    OpenRelay {
        allocation: AllocationId,
        relayed: SocketAddr,
        dont_fragment: bool,
    },
    /// Send `bytes` from the relayed socket to `peer`.
    RelayTo {
        allocation: AllocationId,
        relayed: SocketAddr,
        peer: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Listen for TCP on `relayed` for an RFC 6062 allocation, and pass each peer that
    /// connects to [`Server::handle_peer_connection`]. The socket may share its address with
    /// the connections dialled from it (`SO_REUSEPORT`).
    OpenTcpRelay {
        allocation: AllocationId,
        relayed: SocketAddr,
    },
    /// Dial `peer` over TCP from `relayed`, within a timeout; then tell
    /// [`Server::handle_peer_connected`] or [`Server::handle_peer_connect_failed`].
    ConnectPeer {
        allocation: AllocationId,
        connection: ConnectionId,
        relayed: SocketAddr,
        peer: SocketAddr,
    },
    /// After the frame already queued for `tuple` (the ConnectionBind reply), stop reading
    /// frames on that client connection and pipe its raw bytes both ways with the peer
    /// connection `connection`; report the bytes to [`Server::handle_connection_bytes`].
    BindData {
        connection: ConnectionId,
        tuple: FiveTuple,
    },
    /// Close the peer connection `connection` and its pipe, if any.
    CloseConnection { connection: ConnectionId },
    /// Close the relayed socket; the allocation is gone.
    CloseRelay {
        allocation: AllocationId,
        relayed: SocketAddr,
    },
}

/// What happened, for metrics and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    AllocationStarted {
        allocation: AllocationId,
        username: String,
        client: FiveTuple,
        relayed: Vec<SocketAddr>,
    },
    AllocationEnded(Summary),
    /// A client asked for a peer the policy refuses (CreatePermission, ChannelBind or
    /// Connect), or such a peer connected to a TCP allocation.
    PeerRefused {
        allocation: AllocationId,
        peer: IpAddr,
        reason: Refusal,
    },
}

/// Running counts of what the server has seen and done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub binding_requests: u64,
    pub turn_requests: u64,
    pub challenges_sent: u64,
    /// 401 or 438 replies not sent because a source was over its budget.
    pub challenges_suppressed: u64,
    pub error_replies: u64,
    /// Bytes that were neither STUN nor ChannelData, or malformed.
    pub malformed: u64,
    /// Send indications, ChannelData and peer data dropped (no allocation, no permission,
    /// policy, bandwidth, size).
    pub dropped: u64,
    /// Payload bytes and datagrams relayed from clients to peers.
    pub to_peers_bytes: u64,
    pub to_peers_packets: u64,
    /// Payload bytes and datagrams relayed from peers to clients.
    pub from_peers_bytes: u64,
    pub from_peers_packets: u64,
}

/// A request that passed authentication: who, and how to sign the reply.
#[derive(Debug, Clone)]
struct Authenticated {
    username: String,
    key: Vec<u8>,
    kind: IntegrityKind,
}

/// A refusal to put in an error reply.
#[derive(Debug, Clone)]
struct Failure {
    code: (u16, &'static str),
    unknown: Vec<u16>,
}

impl From<(u16, &'static str)> for Failure {
    fn from(code: (u16, &'static str)) -> Failure {
        Failure {
            code,
            unknown: Vec::new(),
        }
    }
}

/// A relayed address kept for a later Allocate carrying its token.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    relayed: SocketAddr,
}

/// The STUN and TURN server. See the module docs for the drive loop.
pub struct Server {
    config: ServerConfig,
    credentials: Credentials,
    ports: Box<dyn RelayPorts + Send>,
    entropy: Box<dyn Entropy + Send>,
    nonces: NonceIssuer,
    challenges: ChallengeLimiter,
    started: Instant,
    /// A moment and the Unix time then, for REST usernames' expiry.
    wall_clock: (Instant, u64),
    allocations: FastMap<AllocationId, Allocation>,
    by_tuple: FastMap<FiveTuple, AllocationId>,
    per_user: HashMap<String, usize>,
    /// Ports kept by EVEN-PORT's R bit, by RESERVATION-TOKEN. At most one per allocation
    /// made in the last [`RESERVATION_LIFETIME`], and never more than `max_allocations`.
    reservations: HashMap<[u8; 8], Reservation>,
    /// The same tokens in the order they expire (every reservation lives as long).
    reservation_expiry: VecDeque<(Instant, [u8; 8])>,
    next_id: u64,
    /// RFC 6062 peer connections, by CONNECTION-ID.
    connections: HashMap<ConnectionId, tcp::PeerConnection>,
    /// Client data connections bound to a peer connection.
    data_connections: FastMap<FiveTuple, ConnectionId>,
    /// Unbound connections in the order their bind time runs out (all get the same).
    connection_expiry: VecDeque<(Instant, ConnectionId)>,
    timers: BinaryHeap<Reverse<(Instant, AllocationId)>>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Buffers of relayed datagrams the shell has sent and given back.
    spare: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("allocations", &self.allocations.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server started at `now`, when the Unix time was `unix_now` seconds. The nonce key and
    /// the limiter's key are drawn from `entropy`.
    pub fn new(
        config: ServerConfig,
        credentials: Credentials,
        ports: Box<dyn RelayPorts + Send>,
        mut entropy: Box<dyn Entropy + Send>,
        now: Instant,
        unix_now: u64,
    ) -> Server {
        let mut nonce_key = [0u8; 32];
        entropy.fill(&mut nonce_key);
        let mut limiter_key = [0u8; 16];
        entropy.fill(&mut limiter_key);
        Server {
            nonces: NonceIssuer::new(nonce_key, config.nonce_lifetime),
            challenges: ChallengeLimiter::new(
                limiter_key,
                config.challenges_per_source,
                config.challenge_window,
            ),
            config,
            credentials,
            ports,
            entropy,
            started: now,
            wall_clock: (now, unix_now),
            allocations: FastMap::default(),
            by_tuple: FastMap::default(),
            per_user: HashMap::new(),
            reservations: HashMap::new(),
            reservation_expiry: VecDeque::new(),
            next_id: 1,
            connections: HashMap::new(),
            data_connections: FastMap::default(),
            connection_expiry: VecDeque::new(),
            timers: BinaryHeap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            spare: Vec::new(),
        }
    }

    /// Tells the server the Unix time again, so REST expiry follows the wall clock.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.wall_clock = (now, unix_now);
    }

    /// Bytes from a client on a listening socket: one datagram, or one TCP frame.
    pub fn handle_client(&mut self, now: Instant, tuple: FiveTuple, bytes: &[u8]) {
        match bytes.first().map(|b| b >> 6) {
            Some(0b00) => match Message::decode(bytes) {
                Ok(message) => self.handle_stun(now, tuple, &message),
                Err(_) => self.stats.malformed += 1,
            },
            Some(0b01) => match ChannelData::decode(bytes) {
                Some(channel_data) => self.handle_channel_data(now, tuple, channel_data),
                None => self.stats.malformed += 1,
            },
            _ => self.stats.malformed += 1,
        }
    }

    /// A datagram that arrived on an allocation's relayed socket from `peer`.
    pub fn handle_peer_data(
        &mut self,
        now: Instant,
        allocation: AllocationId,
        peer: SocketAddr,
        bytes: &[u8],
    ) {
        let policy_ok = self.config.policy.check(peer).is_ok();
        let Some(alloc) = self.allocations.get_mut(&allocation) else {
            self.stats.dropped += 1;
            return;
        };
        let budget_ok = alloc
            .from_peers_budget
            .as_mut()
            .is_none_or(|bucket| bucket.take(bytes.len(), now));
        if !policy_ok
            || !budget_ok
            || bytes.len() > MAX_RELAYED_DATA
            || !alloc.has_permission(peer.ip(), now)
        {
            alloc.from_peers.dropped_packets += 1;
            self.stats.dropped += 1;
            return;
        }
        alloc.from_peers.bytes += bytes.len() as u64;
        alloc.from_peers.packets += 1;
        self.stats.from_peers_bytes += bytes.len() as u64;
        self.stats.from_peers_packets += 1;
        let tuple = alloc.tuple;
        let frame = match alloc.active_channel_to(peer, now) {
            Some(channel) => {
                let mut frame = self.spare.pop().unwrap_or_default();
                ChannelData::encode_into(channel, bytes, tuple.transport.is_stream(), &mut frame);
                frame
            }
            None => {
                let mut transaction_id = [0u8; 12];
                self.entropy.fill(&mut transaction_id);
                let mut builder =
                    MessageBuilder::new(Class::Indication, Method::Data, &transaction_id);
                builder.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
                builder.add(attr::DATA, bytes);
                builder.finish(None, false)
            }
        };
        self.actions.push_back(Action::Transmit {
            tuple,
            bytes: frame,
        });
    }

    /// The shell could not open, or lost, an allocation's relayed socket: the allocation ends.
    pub fn handle_relay_failed(&mut self, now: Instant, allocation: AllocationId) {
        self.end_allocation(now, allocation, EndReason::RelayFailed);
    }

    /// The client's TCP or TLS connection is gone: its allocation, if any, ends with it.
    pub fn handle_connection_closed(&mut self, now: Instant, tuple: FiveTuple) {
        if let Some(id) = self.by_tuple.get(&tuple).copied() {
            self.end_allocation(now, id, EndReason::ConnectionClosed);
        }
        self.data_connection_closed(tuple);
    }

    /// Lets time pass: ends expired allocations, forgets expired permissions and channels,
    /// and gives back reserved ports nobody claimed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_connections(now);
        while let Some((due, token)) = self.reservation_expiry.front().copied() {
            if due > now {
                break;
            }
            self.reservation_expiry.pop_front();
            if let Some(reservation) = self.reservations.remove(&token) {
                let relayed = reservation.relayed;
                self.ports
                    .release(AddressFamily::of(relayed.ip()), relayed.port());
            }
        }
        while let Some(Reverse((due, id))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some(alloc) = self.allocations.get_mut(&id) else {
                continue;
            };
            if alloc.scheduled != due {
                // A later entry replaced this one.
                continue;
            }
            if alloc.expires <= now {
                self.end_allocation(now, id, EndReason::Expired);
                continue;
            }
            let next = alloc.prune(now);
            alloc.scheduled = next;
            self.timers.push(Reverse((next, id)));
        }
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let allocations = self.timers.peek().map(|Reverse((due, _))| *due);
        let reservations = self.reservation_expiry.front().map(|(due, _)| *due);
        let connections = self.connection_expiry.front().map(|(due, _)| *due);
        [allocations, reservations, connections]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ports kept for a RESERVATION-TOKEN now.
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Gives back the bytes of a [`Action::Transmit`] or [`Action::RelayTo`] once sent, so
    /// that relayed datagrams reuse buffers instead of allocating one each. Optional: a
    /// shell that drops them instead only allocates more.
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && bytes.capacity() <= SPARE_BUFFER_BYTES {
            self.spare.push(bytes);
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Allocations alive now.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// Ends every allocation, as at shutdown: each gets its `CloseRelay` and summary.
    pub fn finish(&mut self, now: Instant) {
        let mut ids: Vec<AllocationId> = self.allocations.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.end_allocation(now, id, EndReason::Shutdown);
        }
        for (_, reservation) in self.reservations.drain() {
            let relayed = reservation.relayed;
            self.ports
                .release(AddressFamily::of(relayed.ip()), relayed.port());
        }
        self.reservation_expiry.clear();
    }

    fn unix_now(&self, now: Instant) -> u64 {
        let (then, unix_then) = self.wall_clock;
        unix_then + now.saturating_duration_since(then).as_secs()
    }

    fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    fn handle_stun(&mut self, now: Instant, tuple: FiveTuple, message: &Message<'_>) {
        match (message.class, message.method) {
            (Class::Request, Method::Binding) => self.handle_binding(tuple, message),
            (Class::Request, _) => self.handle_turn_request(now, tuple, message),
            (Class::Indication, Method::Send) => self.handle_send(now, tuple, message),
            // Binding indications are keepalives; responses are not expected from clients.
            _ => {}
        }
    }

    fn handle_binding(&mut self, tuple: FiveTuple, request: &Message<'_>) {
        self.stats.binding_requests += 1;
        let unknown = request.unknown_required(is_known_binding_attribute);
        if !unknown.is_empty() {
            let failure = Failure {
                code: error::UNKNOWN_ATTRIBUTE,
                unknown,
            };
            let bytes = self.error_reply(request, &failure, None);
            self.transmit(tuple, bytes);
            return;
        }
        let mut builder = self.reply_builder(request, Class::SuccessResponse);
        builder.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
        // For clients from before RFC 5389 that only read MAPPED-ADDRESS.
        builder.add(attr::MAPPED_ADDRESS, &encode_address(tuple.client));
        let bytes = builder.finish(None, request.has_fingerprint());
        self.transmit(tuple, bytes);
    }

    fn handle_turn_request(&mut self, now: Instant, tuple: FiveTuple, request: &Message<'_>) {
        self.stats.turn_requests += 1;
        if !matches!(
            request.method,
            Method::Allocate
                | Method::Refresh
                | Method::CreatePermission
                | Method::ChannelBind
                | Method::Connect
                | Method::ConnectionBind
        ) {
            let bytes = self.error_reply(request, &error::BAD_REQUEST.into(), None);
            self.transmit(tuple, bytes);
            return;
        }
        let auth = match self.authenticate(now, tuple, request) {
            Ok(auth) => auth,
            Err(Some(bytes)) => {
                self.transmit(tuple, bytes);
                return;
            }
            Err(None) => return,
        };
        let unknown = request.unknown_required(is_known_turn_attribute);
        if unknown.is_empty() && matches!(request.method, Method::Connect | Method::ConnectionBind)
        {
            // Their replies go out later (Connect, after the dial) or before an action
            // (ConnectionBind, before the pipe), so they send them themselves.
            let outcome = if request.method == Method::Connect {
                self.connect(now, tuple, request, &auth)
            } else {
                self.connection_bind(now, tuple, request, &auth)
            };
            if let Err(failure) = outcome {
                let bytes = self.error_reply(request, &failure, Some(&auth));
                self.transmit(tuple, bytes);
            }
            return;
        }
        let outcome = if unknown.is_empty() {
            match request.method {
                Method::Allocate => self.allocate(now, tuple, request, &auth),
                Method::Refresh => self.refresh(now, tuple, request, &auth),
                Method::CreatePermission => self.create_permission(now, tuple, request, &auth),
                _ => self.channel_bind(now, tuple, request, &auth),
            }
        } else {
            Err(Failure {
                code: error::UNKNOWN_ATTRIBUTE,
                unknown,
            })
        };
        let bytes = match outcome {
            Ok(bytes) => bytes,
            Err(failure) => self.error_reply(request, &failure, Some(&auth)),
        };
        self.transmit(tuple, bytes);
    }

    /// The long-term credential mechanism (RFC 8489 §9.2.4). `Err(Some(reply))` is an error to
    /// send unsigned; `Err(None)` means stay silent (the source is over its 401 budget).
    fn authenticate(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
    ) -> Result<Authenticated, Option<Vec<u8>>> {
        if !request.has_integrity() {
            return Err(self.challenge(now, tuple, request, error::UNAUTHENTICATED));
        }
        let realm = request.text(attr::REALM);
        let nonce = request.text(attr::NONCE);
        let username = match (
            request.text(attr::USERNAME),
            request.attribute(attr::USERHASH),
        ) {
            (Some(username), _) => Some(username.to_owned()),
            (None, Some(hash)) => self
                .credentials
                .username_for_userhash(hash, &self.config.realm)
                .map(str::to_owned),
            (None, None) => None,
        };
        let (Some(realm), Some(nonce)) = (realm, nonce) else {
            return Err(Some(self.error_reply(
                request,
                &error::BAD_REQUEST.into(),
                None,
            )));
        };
        if request.text(attr::USERNAME).is_none() && request.attribute(attr::USERHASH).is_none() {
            return Err(Some(self.error_reply(
                request,
                &error::BAD_REQUEST.into(),
                None,
            )));
        }
        let stale = self.nonces.check(nonce, tuple.client, self.uptime(now)) == NonceCheck::Stale;
        if stale && !self.binds_a_waiting_connection(tuple, request) {
            return Err(self.challenge(now, tuple, request, error::STALE_NONCE));
        }
        let algorithm = match self.password_algorithm(request, nonce) {
            Ok(algorithm) => algorithm,
            Err(()) => {
                return Err(Some(self.error_reply(
                    request,
                    &error::BAD_REQUEST.into(),
                    None,
                )));
            }
        };
        let Some(username) = username else {
            return Err(self.challenge(now, tuple, request, error::UNAUTHENTICATED));
        };
        if realm != self.config.realm {
            return Err(self.challenge(now, tuple, request, error::UNAUTHENTICATED));
        }
        let passwords = match self.credentials.lookup(&username, self.unix_now(now)) {
            Lookup::Passwords(passwords) => passwords,
            Lookup::Expired | Lookup::Unknown => {
                return Err(self.challenge(now, tuple, request, error::UNAUTHENTICATED));
            }
        };
        let kind = if request.has_integrity_sha256() {
            IntegrityKind::Sha256
        } else {
            IntegrityKind::Sha1
        };
        for password in passwords {
            let key = auth::long_term_key(algorithm, &username, realm, &password);
            if request.check_integrity(&key) == crate::stun::IntegrityCheck::Valid {
                return Ok(Authenticated {
                    username,
                    key,
                    kind,
                });
            }
        }
        Err(self.challenge(now, tuple, request, error::UNAUTHENTICATED))
    }

    /// Whether `request` is a ConnectionBind, from the host of the control connection, for a
    /// connection waiting to be bound. Such a request is signed with the nonce of the control
    /// connection (coturn's clients do, and give up at a 438 on the fresh data connection), so
    /// its nonce is not held to this connection's address; the password must still match, and
    /// the CONNECTION-ID it names is random, unbound, used once and gone within 30 s.
    fn binds_a_waiting_connection(&self, tuple: FiveTuple, request: &Message<'_>) -> bool {
        if request.method != Method::ConnectionBind {
            return false;
        }
        request
            .attribute(attr::CONNECTION_ID)
            .and_then(|value| <[u8; 4]>::try_from(value).ok())
            .and_then(|value| {
                self.connections
                    .get(&ConnectionId(u32::from_be_bytes(value)))
            })
            .filter(|conn| matches!(conn.state, tcp::ConnectionState::Unbound(_)))
            .and_then(|conn| self.allocations.get(&conn.allocation))
            .is_some_and(|alloc| alloc.tuple.client.ip() == tuple.client.ip())
    }

    /// RFC 8489 §9.2.4's bid-down protection: a client that names an algorithm must echo the
    /// list this server offered, and pick from it. A client that names none uses MD5.
    fn password_algorithm(
        &self,
        request: &Message<'_>,
        nonce: &str,
    ) -> Result<PasswordAlgorithm, ()> {
        let chosen = request.attribute(attr::PASSWORD_ALGORITHM);
        let offered = request.attribute(attr::PASSWORD_ALGORITHMS);
        match (chosen, offered) {
            (None, None) => Ok(PasswordAlgorithm::Md5),
            (Some(chosen), Some(offered)) if NonceIssuer::has_feature_cookie(nonce) => {
                if offered != password_algorithms_value().as_slice() {
                    return Err(());
                }
                let code =
                    u16::from_be_bytes([*chosen.first().ok_or(())?, *chosen.get(1).ok_or(())?]);
                PasswordAlgorithm::from_code(code).ok_or(())
            }
            _ => Err(()),
        }
    }

    /// A 401 or 438 with a fresh nonce, unless the source has had its share.
    fn challenge(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        code: (u16, &'static str),
    ) -> Option<Vec<u8>> {
        // The budget stops 401s being reflected at a forged UDP source. A TCP or TLS client
        // has completed a handshake from its address, and cannot retransmit a dropped reply
        // (STUN over a stream never does), so streams are not budgeted.
        if !tuple.transport.is_stream()
            && !self.challenges.allow(tuple.client.ip(), self.uptime(now))
        {
            self.stats.challenges_suppressed += 1;
            return None;
        }
        self.stats.challenges_sent += 1;
        self.stats.error_replies += 1;
        let nonce = self.nonces.issue(tuple.client, self.uptime(now));
        let mut builder = self.reply_builder(request, Class::ErrorResponse);
        builder.add_error(code.0, code.1);
        builder.add(attr::REALM, self.config.realm.as_bytes());
        builder.add(attr::NONCE, nonce.as_bytes());
        builder.add(attr::PASSWORD_ALGORITHMS, &password_algorithms_value());
        Some(builder.finish(None, request.has_fingerprint()))
    }

    fn reply_builder(&self, request: &Message<'_>, class: Class) -> MessageBuilder {
        let mut builder = MessageBuilder::new(class, request.method, &request.transaction_id);
        if let Some(software) = &self.config.software {
            builder.add(attr::SOFTWARE, software.as_bytes());
        }
        builder
    }

    fn error_reply(
        &mut self,
        request: &Message<'_>,
        failure: &Failure,
        auth: Option<&Authenticated>,
    ) -> Vec<u8> {
        self.stats.error_replies += 1;
        let mut builder = self.reply_builder(request, Class::ErrorResponse);
        builder.add_error(failure.code.0, failure.code.1);
        if !failure.unknown.is_empty() {
            let list: Vec<u8> = failure
                .unknown
                .iter()
                .flat_map(|t| t.to_be_bytes())
                .collect();
            builder.add(attr::UNKNOWN_ATTRIBUTES, &list);
        }
        self.sign(builder, request, auth)
    }

    fn sign(
        &self,
        builder: MessageBuilder,
        request: &Message<'_>,
        auth: Option<&Authenticated>,
    ) -> Vec<u8> {
        builder.finish(
            auth.map(|auth| (auth.kind, auth.key.as_slice())),
            request.has_fingerprint(),
        )
    }

    fn transmit(&mut self, tuple: FiveTuple, bytes: Vec<u8>) {
        self.actions.push_back(Action::Transmit { tuple, bytes });
    }

    fn schedule(&mut self, id: AllocationId, at: Instant) {
        if let Some(alloc) = self.allocations.get_mut(&id)
            && at < alloc.scheduled
        {
            alloc.scheduled = at;
            self.timers.push(Reverse((at, id)));
        }
    }

    fn end_allocation(&mut self, now: Instant, id: AllocationId, reason: EndReason) {
        let Some(alloc) = self.allocations.remove(&id) else {
            return;
        };
        self.by_tuple.remove(&alloc.tuple);
        if let Some(count) = self.per_user.get_mut(&alloc.username) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_user.remove(&alloc.username);
            }
        }
        self.close_connections_of(id);
        for relayed in &alloc.relays {
            self.ports
                .release(AddressFamily::of(relayed.ip()), relayed.port());
            self.actions.push_back(Action::CloseRelay {
                allocation: id,
                relayed: *relayed,
            });
        }
        self.events
            .push_back(Event::AllocationEnded(alloc.summary(now, reason)));
    }

    fn handle_send(&mut self, now: Instant, tuple: FiveTuple, indication: &Message<'_>) {
        let (Some(peer), Some(data)) = (
            indication.xor_address(attr::XOR_PEER_ADDRESS),
            indication.attribute(attr::DATA),
        ) else {
            self.stats.dropped += 1;
            return;
        };
        self.relay_from_client(now, tuple, peer, data);
    }

    fn handle_channel_data(&mut self, now: Instant, tuple: FiveTuple, frame: ChannelData<'_>) {
        let peer = self
            .by_tuple
            .get(&tuple)
            .and_then(|id| self.allocations.get(id))
            .and_then(|alloc| alloc.channels.get(&frame.channel))
            .filter(|binding| binding.is_active(now))
            .map(|binding| binding.peer);
        match peer {
            Some(peer) => self.relay_from_client(now, tuple, peer, frame.data),
            None => self.stats.dropped += 1,
        }
    }

    /// Send indications and ChannelData: permission, policy and budget, then out.
    fn relay_from_client(&mut self, now: Instant, tuple: FiveTuple, peer: SocketAddr, data: &[u8]) {
        let policy_ok = self.config.policy.check(peer).is_ok();
        let Some(alloc) = self
            .by_tuple
            .get(&tuple)
            .and_then(|id| self.allocations.get_mut(id))
        else {
            self.stats.dropped += 1;
            return;
        };
        // RFC 6062 §5: a TCP allocation relays over its connections only.
        let relayed = alloc.relay_for(peer.ip()).filter(|_| !alloc.tcp);
        let budget_ok = alloc
            .to_peers_budget
            .as_mut()
            .is_none_or(|bucket| bucket.take(data.len(), now));
        let (true, Some(relayed), true, true) = (
            policy_ok,
            relayed,
            budget_ok,
            alloc.has_permission(peer.ip(), now),
        ) else {
            alloc.to_peers.dropped_packets += 1;
            self.stats.dropped += 1;
            return;
        };
        alloc.to_peers.bytes += data.len() as u64;
        alloc.to_peers.packets += 1;
        self.stats.to_peers_bytes += data.len() as u64;
        self.stats.to_peers_packets += 1;
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(data);
        self.actions.push_back(Action::RelayTo {
            allocation: alloc.id,
            relayed,
            peer,
            bytes,
        });
    }

    fn new_allocation_id(&mut self) -> AllocationId {
        let id = AllocationId(self.next_id);
        self.next_id += 1;
        id
    }

    fn relay_ip(&self, family: AddressFamily) -> Option<IpAddr> {
        match family {
            AddressFamily::V4 => self.config.relay_ipv4.map(IpAddr::V4),
            AddressFamily::V6 => self.config.relay_ipv6.map(IpAddr::V6),
        }
    }

    fn bandwidth_buckets(&self, now: Instant) -> (Option<TokenBucket>, Option<TokenBucket>) {
        match self.config.bandwidth {
            Some(limit) => (
                Some(TokenBucket::new(
                    limit.bytes_per_second,
                    limit.burst_bytes,
                    now,
                )),
                Some(TokenBucket::new(
                    limit.bytes_per_second,
                    limit.burst_bytes,
                    now,
                )),
            ),
            None => (None, None),
        }
    }

    /// The lifetime a client gets: its request capped at the maximum, and never below the
    /// default (RFC 8656 §7.2).
    fn lifetime_for(&self, request: &Message<'_>) -> Duration {
        match request.u32_value(attr::LIFETIME) {
            Some(seconds) => Duration::from_secs(u64::from(seconds))
                .min(self.config.max_lifetime)
                .max(self.config.default_lifetime),
            None => self.config.default_lifetime,
        }
    }
}

/// PASSWORD-ALGORITHMS as this server offers it: SHA-256 first, MD5 for older clients, each
/// with no parameters.
fn password_algorithms_value() -> Vec<u8> {
    let mut value = Vec::with_capacity(8);
    for algorithm in [PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5] {
        value.extend_from_slice(&algorithm.code().to_be_bytes());
        value.extend_from_slice(&[0, 0]);
    }
    value
}

/// Comprehension-required attributes a Binding request may carry.
fn is_known_binding_attribute(t: u16) -> bool {
    matches!(
        t,
        attr::USERNAME
            | attr::REALM
            | attr::NONCE
            | attr::USERHASH
            | attr::PASSWORD_ALGORITHM
            | attr::PRIORITY
            | attr::USE_CANDIDATE
    )
}

/// Comprehension-required attributes the TURN requests understand.
fn is_known_turn_attribute(t: u16) -> bool {
    matches!(
        t,
        attr::USERNAME
            | attr::REALM
            | attr::NONCE
            | attr::USERHASH
            | attr::PASSWORD_ALGORITHM
            | attr::CHANNEL_NUMBER
            | attr::LIFETIME
            | attr::XOR_PEER_ADDRESS
            | attr::DATA
            | attr::REQUESTED_ADDRESS_FAMILY
            | attr::EVEN_PORT
            | attr::REQUESTED_TRANSPORT
            | attr::DONT_FRAGMENT
            | attr::RESERVATION_TOKEN
            | attr::CONNECTION_ID
    )
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): the family that could not be relayed, and why.
fn address_error_value(family: AddressFamily, code: (u16, &str)) -> Vec<u8> {
    let mut value = ErrorCode::encode(code.0, code.1);
    value[0] = family.code();
    value
}

/// The allocation's channel binding for `channel` if the number may be (re)bound to `peer`.
fn channel_conflict(alloc: &Allocation, channel: u16, peer: SocketAddr, now: Instant) -> bool {
    let number_taken = alloc
        .channels
        .get(&channel)
        .is_some_and(|binding: &ChannelBinding| binding.peer != peer && binding.is_reserved(now));
    let peer_taken = alloc.channel_of_peer.get(&peer).is_some_and(|other| {
        *other != channel
            && alloc
                .channels
                .get(other)
                .is_some_and(|binding| binding.is_reserved(now))
    });
    number_taken || peer_taken
}

/// Whether `channel` is a number clients may bind.
fn is_bindable_channel(channel: u16) -> bool {
    CHANNEL_NUMBERS.contains(&channel)
}

/// The time a channel binding made now runs out.
fn channel_expiry(now: Instant) -> Instant {
    now + CHANNEL_LIFETIME
}

/// Whether a relayed-port request wants an even port, and whether it wants the next one kept.
fn parity_of(even_port: Option<&[u8]>) -> (PortParity, bool) {
    match even_port {
        None => (PortParity::Any, false),
        Some(value) => (
            PortParity::Even,
            value.first().is_some_and(|flags| flags & 0x80 != 0),
        ),
    }
}
