//! Attribute types and the values that need more than a byte copy: addresses (plain and
//! XOR'd), ERROR-CODE and the password algorithms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{MAGIC_COOKIE, TransactionId};

/// Attribute type codes (RFC 8489 §18.3, RFC 8656 §18, RFC 6062).
pub mod attribute_type {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub const USERHASH: u16 = 0x001E;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    /// ICE (RFC 8445) attributes; comprehension-required by number, harmless to a server.
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const CONNECTION_ID: u16 = 0x002A;
    pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
    pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
    pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Types below 0x8000 must be understood by the receiver (RFC 8489 §14).
pub fn is_comprehension_required(attribute_type: u16) -> bool {
    attribute_type < 0x8000
}

/// The address families of the STUN address attributes and of REQUESTED-ADDRESS-FAMILY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn of(ip: IpAddr) -> AddressFamily {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }

    pub fn from_code(code: u8) -> Option<AddressFamily> {
        match code {
            0x01 => Some(AddressFamily::V4),
            0x02 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }
}

/// Reads MAPPED-ADDRESS (and the layout every address attribute shares).
pub fn decode_address(value: &[u8]) -> Option<SocketAddr> {
    let family = AddressFamily::from_code(*value.get(1)?)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let ip = match family {
        AddressFamily::V4 => {
            let bytes: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            if value.len() != 8 {
                return None;
            }
            IpAddr::V4(Ipv4Addr::from(bytes))
        }
        AddressFamily::V6 => {
            let bytes: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            if value.len() != 20 {
                return None;
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
    };
    Some(SocketAddr::new(ip, port))
}

/// Writes MAPPED-ADDRESS's value.
pub fn encode_address(address: SocketAddr) -> Vec<u8> {
    let mut value = vec![0, AddressFamily::of(address.ip()).code()];
    value.extend_from_slice(&address.port().to_be_bytes());
    match address.ip() {
        IpAddr::V4(ip) => value.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => value.extend_from_slice(&ip.octets()),
    }
    value
}

/// The mask the XOR-*-ADDRESS attributes apply: the cookie, then (for IPv6) the
/// transaction ID.
fn xor_mask(transaction_id: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    mask
}

/// Reads XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS or XOR-RELAYED-ADDRESS.
pub fn decode_xor_address(value: &[u8], transaction_id: &TransactionId) -> Option<SocketAddr> {
    let plain = decode_address(value)?;
    Some(xor_socket_addr(plain, transaction_id))
}

/// Writes an XOR-*-ADDRESS value.
pub fn encode_xor_address(address: SocketAddr, transaction_id: &TransactionId) -> Vec<u8> {
    encode_address(xor_socket_addr(address, transaction_id))
}

/// XOR is its own inverse, so one function both hides and reveals an address.
fn xor_socket_addr(address: SocketAddr, transaction_id: &TransactionId) -> SocketAddr {
    let mask = xor_mask(transaction_id);
    // The cookie's top 16 bits.
    let port = address.port() ^ 0x2112;
    let ip = match address.ip() {
        IpAddr::V4(ip) => {
            let mut octets = ip.octets();
            for (octet, m) in octets.iter_mut().zip(mask) {
                *octet ^= m;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        IpAddr::V6(ip) => {
            let mut octets = ip.octets();
            for (octet, m) in octets.iter_mut().zip(mask) {
                *octet ^= m;
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    };
    SocketAddr::new(ip, port)
}

/// An ERROR-CODE: a number from 300 to 699 and a reason phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u16,
    pub reason: String,
}

impl ErrorCode {
    pub fn decode(value: &[u8]) -> Option<ErrorCode> {
        let class = u16::from(*value.get(2)? & 0x07);
        let number = u16::from(*value.get(3)?);
        if !(3..=6).contains(&class) || number > 99 {
            return None;
        }
        let reason = String::from_utf8_lossy(value.get(4..)?).into_owned();
        Some(ErrorCode {
            code: class * 100 + number,
            reason,
        })
    }

    pub fn encode(code: u16, reason: &str) -> Vec<u8> {
        // Callers pass the constants of `server::error`, all within 300..=699.
        let class = u8::try_from(code / 100).unwrap_or(5);
        let number = u8::try_from(code % 100).unwrap_or(0);
        let mut value = vec![0, 0, class, number];
        // RFC 8489 §14.8: at most 127 characters; every reason here is a short constant.
        value.extend_from_slice(reason.as_bytes());
        value
    }
}

/// How a long-term credential's key is derived (RFC 8489 §18.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAlgorithm {
    Md5,
    Sha256,
}

impl PasswordAlgorithm {
    pub fn from_code(code: u16) -> Option<PasswordAlgorithm> {
        match code {
            0x0001 => Some(PasswordAlgorithm::Md5),
            0x0002 => Some(PasswordAlgorithm::Sha256),
            _ => None,
        }
    }

    pub fn code(self) -> u16 {
        match self {
            PasswordAlgorithm::Md5 => 0x0001,
            PasswordAlgorithm::Sha256 => 0x0002,
        }
    }
}
