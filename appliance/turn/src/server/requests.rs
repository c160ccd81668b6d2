//! The four authenticated TURN requests. Each returns the signed success reply or the
//! failure to put in an error reply.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{
    Authenticated, Event, Failure, RESERVATION_LIFETIME, Reservation, Server, address_error_value,
    channel_conflict, channel_expiry, error, is_bindable_channel, parity_of,
};
use crate::allocation::{Allocation, ChannelBinding, EndReason, FastMap, FiveTuple, Flow};
use crate::server::Action;
use crate::stun::{AddressFamily, Class, Message, attribute_type as attr};

/// IANA's protocol numbers for the REQUESTED-TRANSPORT values served.
const PROTOCOL_UDP: u8 = 17;
const PROTOCOL_TCP: u8 = 6;

type Outcome = Result<Vec<u8>, Failure>;

impl Server {
    pub(super) fn allocate(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Outcome {
        if let Some(alloc) = self
            .by_tuple
            .get(&tuple)
            .and_then(|id| self.allocations.get(id))
        {
            if alloc.allocate_reply.0 == request.transaction_id {
                return Ok(alloc.allocate_reply.1.clone());
            }
            return Err(error::ALLOCATION_MISMATCH.into());
        }
        let tcp = match request.attribute(attr::REQUESTED_TRANSPORT) {
            None => return Err(error::BAD_REQUEST.into()),
            Some(value) => match value.first().copied() {
                Some(PROTOCOL_UDP) => false,
                Some(PROTOCOL_TCP) => true,
                _ => return Err(error::UNSUPPORTED_TRANSPORT.into()),
            },
        };
        // RFC 6062 §5.1: a TCP allocation needs a TCP or TLS control connection, and has no
        // use for the UDP-only port and fragmentation attributes.
        if tcp
            && (!tuple.transport.is_stream()
                || request.attribute(attr::EVEN_PORT).is_some()
                || request.attribute(attr::RESERVATION_TOKEN).is_some()
                || request.attribute(attr::DONT_FRAGMENT).is_some())
        {
            return Err(error::BAD_REQUEST.into());
        }
        let dont_fragment = request.attribute(attr::DONT_FRAGMENT).is_some();
        let even_port = request.attribute(attr::EVEN_PORT);
        let requested_family = request.attribute(attr::REQUESTED_ADDRESS_FAMILY);
        let additional_family = request.attribute(attr::ADDITIONAL_ADDRESS_FAMILY);
        let token = request.attribute(attr::RESERVATION_TOKEN);
        if token.is_some()
            && (even_port.is_some() || requested_family.is_some() || additional_family.is_some())
        {
            return Err(error::BAD_REQUEST.into());
        }
        let (parity, reserve_next) = parity_of(even_port);
        if reserve_next && additional_family.is_some() {
            // A reservation keeps one port of one family; a dual allocation has two.
            return Err(error::BAD_REQUEST.into());
        }
        let families = match (requested_family, additional_family) {
            (Some(_), Some(_)) => return Err(error::BAD_REQUEST.into()),
            (Some(value), None) => {
                let family = value
                    .first()
                    .and_then(|code| AddressFamily::from_code(*code))
                    .ok_or(error::ADDRESS_FAMILY_NOT_SUPPORTED)?;
                vec![family]
            }
            (None, Some(value)) => {
                // RFC 8656 §7.2: only IPv6 may be the additional family.
                if value.first().copied() != Some(AddressFamily::V6.code()) {
                    return Err(error::BAD_REQUEST.into());
                }
                vec![AddressFamily::V4, AddressFamily::V6]
            }
            (None, None) => vec![AddressFamily::V4],
        };
        let user_count = self.per_user.get(&auth.username).copied().unwrap_or(0);
        if user_count >= self.config.max_allocations_per_user {
            return Err(error::ALLOCATION_QUOTA_REACHED.into());
        }
        if self.allocations.len() >= self.config.max_allocations {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }

        let mut relays: Vec<SocketAddr> = Vec::new();
        let mut address_errors: Vec<Vec<u8>> = Vec::new();
        let mut reserved: Option<([u8; 8], SocketAddr)> = None;
        if let Some(token) = token {
            let token: [u8; 8] = token.try_into().map_err(|_| error::BAD_REQUEST)?;
            // An unknown, expired or already used token (RFC 8656 §7.2).
            let reservation = self
                .reservations
                .remove(&token)
                .ok_or(error::INSUFFICIENT_CAPACITY)?;
            relays.push(reservation.relayed);
        } else if reserve_next {
            reserved = Some(self.reserve_pair(families[0], &mut relays)?);
        } else {
            for (index, family) in families.iter().copied().enumerate() {
                let failure = match self.relay_ip(family) {
                    None => error::ADDRESS_FAMILY_NOT_SUPPORTED,
                    Some(ip) => match self.ports.acquire(family, parity) {
                        Some(port) => {
                            relays.push(SocketAddr::new(ip, port));
                            continue;
                        }
                        None => error::INSUFFICIENT_CAPACITY,
                    },
                };
                if index == 0 {
                    // The first family is the one asked for; without it there is no allocation.
                    return Err(failure.into());
                }
                address_errors.push(address_error_value(family, failure));
            }
        }

        let lifetime = self.lifetime_for(request);
        let id = self.new_allocation_id();
        let mut builder = self.reply_builder(request, Class::SuccessResponse);
        for relayed in &relays {
            builder.add_xor_address(attr::XOR_RELAYED_ADDRESS, *relayed);
        }
        for value in &address_errors {
            builder.add(attr::ADDRESS_ERROR_CODE, value);
        }
        if let Some((token, _)) = reserved {
            builder.add(attr::RESERVATION_TOKEN, &token);
        }
        builder.add_u32(attr::LIFETIME, lifetime_seconds(lifetime));
        builder.add_xor_address(attr::XOR_MAPPED_ADDRESS, tuple.client);
        let reply = self.sign(builder, request, Some(auth));
        if let Some((token, relayed)) = reserved {
            let expires = now + RESERVATION_LIFETIME;
            self.reservations.insert(token, Reservation { relayed });
            self.reservation_expiry.push_back((expires, token));
        }

        let (to_peers_budget, from_peers_budget) = self.bandwidth_buckets(now);
        let expires = now + lifetime;
        self.allocations.insert(
            id,
            Allocation {
                id,
                tuple,
                username: auth.username.clone(),
                relays: relays.clone(),
                tcp,
                expires,
                permissions: FastMap::default(),
                channels: FastMap::default(),
                channel_of_peer: FastMap::default(),
                allocate_reply: (request.transaction_id, reply.clone()),
                to_peers_budget,
                from_peers_budget,
                to_peers: Flow::default(),
                from_peers: Flow::default(),
                peers: Vec::new(),
                permissions_created: 0,
                channels_bound: 0,
                started: now,
                scheduled: expires,
            },
        );
        self.timers.push(std::cmp::Reverse((expires, id)));
        self.by_tuple.insert(tuple, id);
        *self.per_user.entry(auth.username.clone()).or_insert(0) += 1;
        for relayed in &relays {
            let relayed = *relayed;
            self.actions.push_back(if tcp {
                Action::OpenTcpRelay {
                    allocation: id,
                    relayed,
                }
            } else {
                Action::OpenRelay {
                    allocation: id,
                    relayed,
                    dont_fragment,
                }
            });
        }
        self.events.push_back(Event::AllocationStarted {
            allocation: id,
            username: auth.username.clone(),
            client: tuple,
            relayed: relays,
        });
        Ok(reply)
    }

    /// EVEN-PORT with the R bit: an even port for this allocation (pushed onto `relays`) and
    /// the next one kept under a fresh token, returned with the address it keeps.
    fn reserve_pair(
        &mut self,
        family: AddressFamily,
        relays: &mut Vec<SocketAddr>,
    ) -> Result<([u8; 8], SocketAddr), Failure> {
        let ip = self
            .relay_ip(family)
            .ok_or(error::ADDRESS_FAMILY_NOT_SUPPORTED)?;
        // The expiry queue also holds tokens already used, so bounding it bounds both.
        if self.reservation_expiry.len() >= self.config.max_allocations {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let mut token = [0u8; 8];
        self.entropy.fill(&mut token);
        if self.reservations.contains_key(&token) {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let even = self
            .ports
            .acquire_pair(family)
            .ok_or(error::INSUFFICIENT_CAPACITY)?;
        relays.push(SocketAddr::new(ip, even));
        // acquire_pair only returns an even port below u16::MAX, whose successor exists.
        Ok((token, SocketAddr::new(ip, even + 1)))
    }

    pub(super) fn refresh(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Outcome {
        let id = self.owned_allocation(tuple, auth)?;
        if let Some(value) = request.attribute(attr::REQUESTED_ADDRESS_FAMILY) {
            let family = value
                .first()
                .and_then(|code| AddressFamily::from_code(*code));
            let has_family = self.allocations.get(&id).is_some_and(|alloc| {
                alloc
                    .relays
                    .iter()
                    .any(|relay| Some(AddressFamily::of(relay.ip())) == family)
            });
            if !has_family {
                return Err(error::PEER_ADDRESS_FAMILY_MISMATCH.into());
            }
        }
        let lifetime = if request.u32_value(attr::LIFETIME) == Some(0) {
            Duration::ZERO
        } else {
            self.lifetime_for(request)
        };
        let mut builder = self.reply_builder(request, Class::SuccessResponse);
        builder.add_u32(attr::LIFETIME, lifetime_seconds(lifetime));
        let reply = self.sign(builder, request, Some(auth));
        if lifetime.is_zero() {
            self.end_allocation(now, id, EndReason::Deleted);
        } else if let Some(alloc) = self.allocations.get_mut(&id) {
            alloc.expires = now + lifetime;
            let expires = alloc.expires;
            self.schedule(id, expires);
        }
        Ok(reply)
    }

    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Outcome {
        let id = self.owned_allocation(tuple, auth)?;
        let mut peers: Vec<IpAddr> = Vec::new();
        for value in request.attributes_of(attr::XOR_PEER_ADDRESS) {
            let peer = crate::stun::decode_xor_address(value, &request.transaction_id)
                .ok_or(error::BAD_REQUEST)?;
            peers.push(peer.ip());
        }
        if peers.is_empty() {
            return Err(error::BAD_REQUEST.into());
        }
        let Some(alloc) = self.allocations.get(&id) else {
            return Err(error::ALLOCATION_MISMATCH.into());
        };
        // All or nothing: one refused peer refuses the request (RFC 8656 §10.2).
        for peer in &peers {
            if alloc.relay_for(*peer).is_none() {
                return Err(error::PEER_ADDRESS_FAMILY_MISMATCH.into());
            }
            if let Err(reason) = self.config.policy.check_ip(*peer) {
                self.events.push_back(Event::PeerRefused {
                    allocation: id,
                    peer: *peer,
                    reason,
                });
                return Err(error::FORBIDDEN.into());
            }
        }
        let wanted = alloc.active_permissions(now) + alloc.new_permissions(&peers, now);
        if wanted > self.config.max_permissions_per_allocation {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let builder = self.reply_builder(request, Class::SuccessResponse);
        let reply = self.sign(builder, request, Some(auth));
        if let Some(alloc) = self.allocations.get_mut(&id) {
            for peer in peers {
                alloc.permit(peer, now);
            }
        }
        self.schedule(id, now + crate::allocation::PERMISSION_LIFETIME);
        Ok(reply)
    }

    pub(super) fn channel_bind(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        request: &Message<'_>,
        auth: &Authenticated,
    ) -> Outcome {
        let id = self.owned_allocation(tuple, auth)?;
        let channel = request
            .attribute(attr::CHANNEL_NUMBER)
            .and_then(|value| Some(u16::from_be_bytes([*value.first()?, *value.get(1)?])))
            .filter(|channel| is_bindable_channel(*channel))
            .ok_or(error::BAD_REQUEST)?;
        let peer = request
            .xor_address(attr::XOR_PEER_ADDRESS)
            .ok_or(error::BAD_REQUEST)?;
        let Some(alloc) = self.allocations.get(&id) else {
            return Err(error::ALLOCATION_MISMATCH.into());
        };
        if alloc.tcp {
            // RFC 6062 §5: a TCP allocation's data goes over connections, not channels.
            return Err(error::BAD_REQUEST.into());
        }
        if alloc.relay_for(peer.ip()).is_none() {
            return Err(error::PEER_ADDRESS_FAMILY_MISMATCH.into());
        }
        if let Err(reason) = self.config.policy.check(peer) {
            self.events.push_back(Event::PeerRefused {
                allocation: id,
                peer: peer.ip(),
                reason,
            });
            return Err(error::FORBIDDEN.into());
        }
        if channel_conflict(alloc, channel, peer, now) {
            return Err(error::BAD_REQUEST.into());
        }
        let is_new = !alloc.channels.contains_key(&channel);
        let reserved = alloc
            .channels
            .values()
            .filter(|binding| binding.is_reserved(now))
            .count();
        if is_new && reserved >= self.config.max_channels_per_allocation {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let new_permission = usize::from(!alloc.has_permission(peer.ip(), now));
        if alloc.active_permissions(now) + new_permission
            > self.config.max_permissions_per_allocation
        {
            return Err(error::INSUFFICIENT_CAPACITY.into());
        }
        let builder = self.reply_builder(request, Class::SuccessResponse);
        let reply = self.sign(builder, request, Some(auth));
        if let Some(alloc) = self.allocations.get_mut(&id) {
            if is_new {
                alloc.channels_bound += 1;
            }
            alloc.channels.insert(
                channel,
                ChannelBinding {
                    peer,
                    expires: channel_expiry(now),
                },
            );
            alloc.channel_of_peer.insert(peer, channel);
            alloc.permit(peer.ip(), now);
        }
        self.schedule(id, now + crate::allocation::PERMISSION_LIFETIME);
        Ok(reply)
    }

    /// The allocation of this 5-tuple, if the request's user owns it: 437 when there is
    /// none, 441 when it is someone else's (RFC 8656 §5).
    pub(super) fn owned_allocation(
        &self,
        tuple: FiveTuple,
        auth: &Authenticated,
    ) -> Result<crate::allocation::AllocationId, Failure> {
        let id = *self
            .by_tuple
            .get(&tuple)
            .ok_or(error::ALLOCATION_MISMATCH)?;
        let alloc = self
            .allocations
            .get(&id)
            .ok_or(error::ALLOCATION_MISMATCH)?;
        if alloc.username != auth.username {
            return Err(error::WRONG_CREDENTIALS.into());
        }
        Ok(id)
    }
}

fn lifetime_seconds(lifetime: Duration) -> u32 {
    u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX)
}
