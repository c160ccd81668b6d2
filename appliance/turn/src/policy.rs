//! Which peers a client may reach through the relay.
//!
//! A TURN server relays to any address it is asked to, from inside the network it stands
//! in. Without a policy, a client could reach the appliance's own services on loopback, a
//! cloud metadata endpoint, or the relay itself. Every peer address (CreatePermission,
//! ChannelBind, Send, and data arriving from peers) goes through [`PeerPolicy::check`].
//!
//! The address is normalised first, because the same IPv4 destination can be spelled as
//! IPv6 in several ways that an operating system may route as IPv4: IPv4-mapped
//! (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses are refused outright (they
//! are never real IPv6 peers, and a dual-stack socket sends a mapped address over IPv4); a
//! NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`) or Teredo (`2001::/32`) address is judged by the
//! IPv4 address it carries as well as by itself. The local-use NAT64 prefix `64:ff9b:1::/48`
//! is refused, since where its IPv4 address sits depends on a prefix length we cannot know.
//!
//! Then, in order: the always-deny list (loopback, unspecified, `0.0.0.0/8`, link-local,
//! multicast, broadcast, reserved `240.0.0.0/4`, cloud metadata, the server's own listening
//! and relay addresses) refuses; the shared address space `100.64.0.0/10` (carrier-grade NAT)
//! is refused unless an allowlist entry covers it; an allowlist, when configured, must cover
//! the address; otherwise the peer is allowed. Private ranges (RFC 1918, `fc00::/7`) are
//! allowed by default: an on-premises appliance's peers usually live there.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a
/// network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("{0:?} is not a prefix length for this address family")]
    PrefixLen(String),
    #[error("{0} has bits set after the prefix; did you mean {1}?")]
    HostBits(String, Network),
}

impl Network {
    pub const fn v4(a: u8, b: u8, c: u8, d: u8, prefix_len: u8) -> Network {
        Network {
            address: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix_len,
        }
    }

    pub const fn v6(segments: [u16; 8], prefix_len: u8) -> Network {
        let [a, b, c, d, e, f, g, h] = segments;
        Network {
            address: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix_len,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(net.to_bits()), self.prefix_len, 32)
                    == masked(u128::from(ip.to_bits()), self.prefix_len, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.to_bits(), self.prefix_len, 128)
                    == masked(ip.to_bits(), self.prefix_len, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix_len` bits of a `width`-bit number.
fn masked(bits: u128, prefix_len: u8, width: u32) -> u128 {
    let keep = u32::from(prefix_len).min(width);
    if keep == 0 {
        return 0;
    }
    bits >> (width - keep)
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Network, NetworkError> {
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address_text
            .parse()
            .map_err(|_| NetworkError::Address(address_text.to_owned()))?;
        let width: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|len| *len <= width)
                .ok_or_else(|| NetworkError::PrefixLen(prefix.to_owned()))?,
        };
        let network = Network {
            address,
            prefix_len,
        };
        let canonical = Network {
            address: match address {
                IpAddr::V4(ip) => {
                    let shift = 32 - u32::from(prefix_len);
                    let bits = if shift == 32 {
                        0
                    } else {
                        (ip.to_bits() >> shift) << shift
                    };
                    IpAddr::V4(Ipv4Addr::from_bits(bits))
                }
                IpAddr::V6(ip) => {
                    let shift = 128 - u32::from(prefix_len);
                    let bits = if shift == 128 {
                        0
                    } else {
                        (ip.to_bits() >> shift) << shift
                    };
                    IpAddr::V6(Ipv6Addr::from_bits(bits))
                }
            },
            prefix_len,
        };
        if canonical != network {
            return Err(NetworkError::HostBits(text.to_owned(), canonical));
        }
        Ok(network)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// Why a peer is refused, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("an IPv4 address written as IPv6 (mapped or compatible)")]
    EmbeddedIpv4,
    #[error("local-use NAT64 prefix")]
    LocalNat64,
    #[error("loopback")]
    Loopback,
    #[error("always denied ({0})")]
    Denied(Network),
    #[error("shared address space 100.64.0.0/10, not allowlisted")]
    SharedAddressSpace,
    #[error("not in the allowlist")]
    NotAllowed,
    #[error("the server's own address")]
    OwnAddress,
}

impl Refusal {
    /// A short fixed name, for metric labels and summary rows.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::EmbeddedIpv4 => "embedded_ipv4",
            Refusal::LocalNat64 => "local_nat64",
            Refusal::Loopback => "loopback",
            Refusal::Denied(_) => "always_denied",
            Refusal::SharedAddressSpace => "shared_address_space",
            Refusal::NotAllowed => "not_allowed",
            Refusal::OwnAddress => "own_address",
        }
    }
}

const LOOPBACK: [Network; 2] = [
    Network::v4(127, 0, 0, 0, 8),
    Network::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
];

/// Never a peer, whatever the allowlist says.
const ALWAYS_DENIED: [Network; 13] = [
    Network::v4(0, 0, 0, 0, 8),
    Network::v4(169, 254, 0, 0, 16),
    Network::v4(224, 0, 0, 0, 4),
    Network::v4(240, 0, 0, 0, 4),
    Network::v4(255, 255, 255, 255, 32),
    // The metadata services of the large clouds (169.254.169.254 is inside the link-local
    // block above; Amazon's IPv6 one is not).
    Network::v6([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], 128),
    Network::v6([0, 0, 0, 0, 0, 0, 0, 0], 128),
    Network::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    // Site-local, deprecated but still routed by some stacks.
    Network::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
    Network::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
    // Discard-only (RFC 6666) and the IPv4/IPv6 translation block we cannot read.
    Network::v6([0x0100, 0, 0, 0, 0, 0, 0, 0], 64),
    Network::v6([0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0], 48),
    // Documentation addresses never exist on a real network.
    Network::v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
];

const SHARED_ADDRESS_SPACE: Network = Network::v4(100, 64, 0, 0, 10);
const NAT64_WELL_KNOWN: Network = Network::v6([0x0064, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Network = Network::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);
const TEREDO: Network = Network::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32);
const IPV4_MAPPED: Network = Network::v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
const IPV4_COMPATIBLE: Network = Network::v6([0, 0, 0, 0, 0, 0, 0, 0], 96);

/// The rules for peers. Build it once from configuration; it holds no per-peer state.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// When not empty, peers must be inside one of these.
    pub allow: Vec<Network>,
    /// Refused in addition to the built-in list.
    pub deny: Vec<Network>,
    /// The server's listening addresses: a peer may not be the server itself.
    pub own_addresses: Vec<SocketAddr>,
    /// Lets peers on loopback through, for test rigs where everything runs on one host.
    /// Everything else on the always-deny list stays refused.
    pub danger_allow_loopback_peers: bool,
}

impl PeerPolicy {
    /// Checks a peer by address alone, as CreatePermission must (it carries no port that
    /// matters).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let IpAddr::V6(v6) = ip else {
            return self.check_one(ip);
        };
        if IPV4_MAPPED.contains(ip) {
            return Err(Refusal::EmbeddedIpv4);
        }
        // `::` and `::1` are inside ::/96 but are the unspecified and loopback addresses,
        // judged as themselves below.
        if IPV4_COMPATIBLE.contains(ip) && v6.to_bits() > 1 {
            return Err(Refusal::EmbeddedIpv4);
        }
        self.check_one(ip)?;
        if let Some(embedded) = embedded_ipv4(v6) {
            self.check_one(IpAddr::V4(embedded))?;
        }
        Ok(())
    }

    /// Checks a peer's full transport address: its IP, and that it is not one of the server's
    /// own listening sockets.
    ///
    /// Another allocation's relayed address is a valid peer: two browsers that can only reach
    /// each other through this relay (a supervisor and an agent on segmented networks, both
    /// with `iceTransportPolicy: "relay"`) send to each other's relayed addresses. That
    /// allocation still needs its own permission for the sender, as every peer does.
    pub fn check(&self, peer: SocketAddr) -> Result<(), Refusal> {
        self.check_ip(peer.ip())?;
        let candidates = std::iter::once(peer.ip()).chain(match peer.ip() {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        });
        for ip in candidates {
            let own_listener = self.own_addresses.iter().any(|own| {
                own.port() == peer.port() && (own.ip() == ip || own.ip().is_unspecified())
            });
            if own_listener {
                return Err(Refusal::OwnAddress);
            }
        }
        Ok(())
    }

    fn check_one(&self, ip: IpAddr) -> Result<(), Refusal> {
        if LOOPBACK.iter().any(|net| net.contains(ip)) {
            return if self.danger_allow_loopback_peers {
                Ok(())
            } else {
                Err(Refusal::Loopback)
            };
        }
        if let Some(net) = ALWAYS_DENIED
            .iter()
            .chain(&self.deny)
            .find(|net| net.contains(ip))
        {
            return Err(Refusal::Denied(*net));
        }
        let allowlisted = self.allow.iter().any(|net| net.contains(ip));
        if SHARED_ADDRESS_SPACE.contains(ip) && !allowlisted {
            return Err(Refusal::SharedAddressSpace);
        }
        if !self.allow.is_empty() && !allowlisted {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

/// The IPv4 address a translation or tunnelling prefix carries, if any.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let as_ip = IpAddr::V6(ip);
    if NAT64_WELL_KNOWN.contains(as_ip) {
        return Some(Ipv4Addr::from_bits(u32::try_from(bits & 0xFFFF_FFFF).ok()?));
    }
    if SIX_TO_FOUR.contains(as_ip) {
        return Some(Ipv4Addr::from_bits(
            u32::try_from((bits >> 80) & 0xFFFF_FFFF).ok()?,
        ));
    }
    if TEREDO.contains(as_ip) {
        // The client's address, inverted (RFC 4380 §4).
        return Some(Ipv4Addr::from_bits(
            !u32::try_from(bits & 0xFFFF_FFFF).ok()?,
        ));
    }
    None
}

#[cfg(test)]
mod tests;
