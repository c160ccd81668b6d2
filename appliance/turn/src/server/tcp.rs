//! RFC 6062 TCP allocations: the peer connections of an allocation, from Connect (the relay
//! dials the peer) or from a peer dialling the relayed address (ConnectionAttempt), until a
//! client data connection claims one with ConnectionBind and the shell pipes bytes between
//! the two.
//!
//! The core only decides: it hands out CONNECTION-IDs, checks policy, permission and
//! credentials, and forgets connections nobody binds within [`CONNECTION_BIND_WITHIN`]. The
//! shell dials, accepts and pipes, and reports back what happened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Authenticated, Event, Failure, Server, error};
use crate::allocation::{AllocationId, FiveTuple};
use crate::server::Action;
use crate::stun::{Class, Message, MessageBuilder, Method, TransactionId, attribute_type as attr};

/// RFC 6062 §5.2 and §5.3: a peer connection not bound by a ConnectionBind within 30 seconds
/// is closed.
pub const CONNECTION_BIND_WITHIN: Duration = Duration::from_secs(30);

/// Peer connections one allocation may hold at once (connecting, waiting or bound).
pub const MAX_CONNECTIONS_PER_ALLOCATION: usize = 64;

/// Names a peer connection of a TCP allocation (CONNECTION-ID, RFC 6062 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u32);

/// The Connect request still waiting for the shell to reach the peer.
#[derive(Debug, Clone)]
pub(super) struct PendingConnect {
    tuple: FiveTuple,
    transaction_id: TransactionId,
    fingerprint: bool,
    auth: Authenticated,
}

#[derive(Debug, Clone)]
pub(super) enum ConnectionState {
    /// The shell is dialling the peer for this Connect.
    Connecting(PendingConnect),
    /// Open to the peer, waiting for a ConnectionBind until the time given.
    Unbound(Instant),
    /// Piped to this client data connection.
    Bound(FiveTuple),
}

#[derive(Debug, Clone)]
pub(super) struct PeerConnection {
    pub(super) allocation: AllocationId,
    pub(super) peer: SocketAddr,
    pub(super) state: ConnectionState,
}

impl Server {
    /// The shell reached the peer of a Connect: the client gets its CONNECTION-ID. False
    /// means the connection is no longer wanted (its allocation ended); close it.
    pub fn handle_peer_connected(&mut self, now: Instant, connection: ConnectionId) -> bool {
        let Some(conn) = self.connections.get_mut(&connection) else {
            return false;
        };
        let ConnectionState::Connecting(pending) = &conn.state else {
            return false;
        };
        let pending = pending.clone();
        let expires = now + CONNECTION_BIND_WITHIN;
        conn.state = ConnectionState::Unbound(expires);
        self.connection_expiry.push_back((expires, connection));
        let mut builder = MessageBuilder::new(
            Class::SuccessResponse,
            Method::Connect,
            &pending.transaction_id,
        );
        if let Some(software) = &self.config.software {
            builder.add(attr::SOFTWARE, software.as_bytes());
        }
        builder.add(attr::CONNECTION_ID, &connection.0.to_be_bytes());
        let bytes = builder.finish(
            Some((pending.auth.kind, pending.auth.key.as_slice())),
            pending.fingerprint,
        );
        self.transmit(pending.tuple, bytes);
        true
    }

    /// The shell could not reach the peer of a Connect (refused, unreachable, timed out):
    /// 447 (RFC 6062 §5.2).
    pub fn handle_peer_connect_failed(&mut self, _now: Instant, connection: ConnectionId) {
        let Some(conn) = self.connections.get(&connection) else {
            return;
        };
        let ConnectionState::Connecting(pending) = &conn.state else {
            return;
        };
        let pending = pending.clone();
        self.connections.remove(&connection);
        self.stats.error_replies += 1;
        let mut builder = MessageBuilder::new(
            Class::ErrorResponse,
            Method::Connect,
            &pending.transaction_id,
        );
        if let Some(software) = &self.config.software {
            builder.add(attr::SOFTWARE, software.as_bytes());
        }
        let (code, reason) = error::CONNECTION_FAILURE;
        builder.add_error(code, reason);
        let bytes = builder.finish(
            Some((pending.auth.kind, pending.auth.key.as_slice())),
            pending.fingerprint,
        );
        self.transmit(pending.tuple, bytes);
    }

    /// A peer connected to a TCP allocation's relayed address. With policy and permission,
    /// the client is told by a ConnectionAttempt indication and the connection gets an ID to
    /// keep it by; `None` means close it.
    pub fn handle_peer_connection(
        &mut self,
        now: Instant,
        allocation: AllocationId,
        peer: SocketAddr,
    ) -> Option<ConnectionId> {
        let policy = self.config.policy.check(peer);
        let alloc = self.allocations.get(&allocation)?;
        if let Err(reason) = policy {
            self.events.push_back(Event::PeerRefused {
                allocation,
                peer: peer.ip(),
                reason,
            });
            self.stats.dropped += 1;
            return None;
        }
        if !alloc.tcp
            || !alloc.has_permission(peer.ip(), now)
            || self.connections_of(allocation) >= MAX_CONNECTIONS_PER_ALLOCATION
        {
            self.stats.dropped += 1;
            return None;
        }
        let tuple = alloc.tuple;
        let connection = self.new_connection_id()?;
        let expires = now + CONNECTION_BIND_WITHIN;
        self.connections.insert(
            connection,
            PeerConnection {
                allocation,
                peer,
                state: ConnectionState::Unbound(expires),
            },
        );
        self.connection_expiry.push_back((expires, connection));
        let mut transaction_id = [0u8; 12];
        self.entropy.fill(&mut transaction_id);
        let mut builder = MessageBuilder::new(
            Class::Indication,
            Method::ConnectionAttempt,
            &transaction_id,
        );
        builder.add(attr::CONNECTION_ID, &connection.0.to_be_bytes());
        builder.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
        let bytes = builder.finish(None, false);
        self.transmit(tuple, bytes);
        Some(connection)
    }

    /// Bytes the shell piped for a bound connection since it last said, counted in the
    /// allocation's summary.
    pub fn handle_connection_bytes(
        &mut self,
        connection: ConnectionId,
        to_peer: u64,
        from_peer: u64,
    ) {
        let Some(alloc) = self
            .connections
            .get(&connection)
            .and_then(|conn| self.allocations.get_mut(&conn.allocation))
        else {
            return;
        };
        alloc.to_peers.bytes += to_peer;
        alloc.from_peers.bytes += from_peer;
        self.stats.to_peers_bytes += to_peer;
        self.stats.from_peers_bytes += from_peer;
    }

    /// Connections open now (connecting, unbound or bound).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Connect (RFC 6062 §5.2): on success the reply waits for the shell's dial.
    pub(super) fn connect(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Result<(), Failure> {
        let id = self.owned_allocation(tuple, auth)?;
        let peer = request
            .xor_address(attr::XOR_PEER_ADDRESS)
            .ok_or(error::BAD_REQUEST)?;
        let Some(alloc) = self.allocations.get(&id) else {
            return Err(error::ALLOCATION_MISMATCH.into());
        };
        if !alloc.tcp {
            return Err(error::BAD_REQUEST.into());
        }
        let relayed = alloc
            .relay_for(peer.ip())
            .ok_or(error::PEER_ADDRESS_FAMILY_MISMATCH)?;
        if let Err(reason) = self.config.policy.check(peer) {
            self.events.push_back(Event::PeerRefused {
                allocation: id,
                peer: peer.ip(),
                reason,
            });
            return Err(error::FORBIDDEN.into());
        }
        if !alloc.has_permission(peer.ip(), now) {
            return Err(error::FORBIDDEN.into());
        }
        if self
            .connections
            .values()
            .any(|conn| conn.allocation == id && conn.peer == peer)
        {
            return Err(error::CONNECTION_ALREADY_EXISTS.into());
        }
        if self.connections_of(id) >= MAX_CONNECTIONS_PER_ALLOCATION {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let connection = self
            .new_connection_id()
            .ok_or(error::INSUFFICIENT_CAPACITY)?;
        self.connections.insert(
            connection,
            PeerConnection {
                allocation: id,
                peer,
                state: ConnectionState::Connecting(PendingConnect {
                    tuple,
                    transaction_id: request.transaction_id,
                    fingerprint: request.has_fingerprint(),
                    auth: auth.clone(),
                }),
            },
        );
        self.actions.push_back(Action::ConnectPeer {
            allocation: id,
            connection,
            relayed,
            peer,
        });
        Ok(())
    }

    /// ConnectionBind (RFC 6062 §5.4) on a fresh client connection: the reply goes out on it,
    /// then the shell turns it into a pipe to the peer.
    pub(super) fn connection_bind(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Result<(), Failure> {
        if !tuple.transport.is_stream()
            || self.by_tuple.contains_key(&tuple)
            || self.data_connections.contains_key(&tuple)
        {
            return Err(error::BAD_REQUEST.into());
        }
        let connection = request
            .attribute(attr::CONNECTION_ID)
            .and_then(|value| <[u8; 4]>::try_from(value).ok())
            .map(|value| ConnectionId(u32::from_be_bytes(value)))
            .ok_or(error::BAD_REQUEST)?;
        let conn = self
            .connections
            .get(&connection)
            .ok_or(error::BAD_REQUEST)?;
        let ConnectionState::Unbound(expires) = conn.state else {
            return Err(error::BAD_REQUEST.into());
        };
        if expires <= now {
            return Err(error::BAD_REQUEST.into());
        }
        let owner = self
            .allocations
            .get(&conn.allocation)
            .ok_or(error::BAD_REQUEST)?;
        if owner.username != auth.username {
            return Err(error::WRONG_CREDENTIALS.into());
        }
        let builder = self.reply_builder(request, Class::SuccessResponse);
        let reply = self.sign(builder, request, Some(auth));
        if let Some(conn) = self.connections.get_mut(&connection) {
            conn.state = ConnectionState::Bound(tuple);
        }
        self.data_connections.insert(tuple, connection);
        self.transmit(tuple, reply);
        self.actions
            .push_back(Action::BindData { connection, tuple });
        Ok(())
    }

    /// Forgets connections nobody bound in time.
    pub(super) fn expire_connections(&mut self, now: Instant) {
        while let Some((due, connection)) = self.connection_expiry.front().copied() {
            if due > now {
                break;
            }
            self.connection_expiry.pop_front();
            let unbound = self.connections.get(&connection).is_some_and(
                |conn| matches!(conn.state, ConnectionState::Unbound(at) if at == due),
            );
            if unbound {
                self.connections.remove(&connection);
                self.actions
                    .push_back(Action::CloseConnection { connection });
            }
        }
    }

    /// A client data connection closed: its peer connection goes with it.
    pub(super) fn data_connection_closed(&mut self, tuple: FiveTuple) {
        if let Some(connection) = self.data_connections.remove(&tuple) {
            self.connections.remove(&connection);
            self.actions
                .push_back(Action::CloseConnection { connection });
        }
    }

    /// Closes every connection of an allocation that ends.
    pub(super) fn close_connections_of(&mut self, allocation: AllocationId) {
        let mut closed: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, conn)| conn.allocation == allocation)
            .map(|(id, _)| *id)
            .collect();
        closed.sort_unstable();
        for connection in closed {
            if let Some(PeerConnection {
                state: ConnectionState::Bound(tuple),
                ..
            }) = self.connections.remove(&connection)
            {
                self.data_connections.remove(&tuple);
            }
            self.actions
                .push_back(Action::CloseConnection { connection });
        }
    }

    fn connections_of(&self, allocation: AllocationId) -> usize {
        self.connections
            .values()
            .filter(|conn| conn.allocation == allocation)
            .count()
    }

    /// A fresh, unused, non-zero CONNECTION-ID (random, so one client cannot guess another's).
    fn new_connection_id(&mut self) -> Option<ConnectionId> {
        for _ in 0..8 {
            let mut bytes = [0u8; 4];
            self.entropy.fill(&mut bytes);
            let id = ConnectionId(u32::from_be_bytes(bytes));
            if id.0 != 0 && !self.connections.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}
