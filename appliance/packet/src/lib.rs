//! Captured frames taken apart, layer by layer, without copying and without panicking.
//!
//! - [`link`]: Ethernet (with 802.1Q and QinQ tags), Linux cooked capture (SLL and SLL2) and
//!   raw IP, down to the network-layer packet.
//! - [`ip`]: IPv4 and IPv6 headers (IPv6 extension headers walked), and [`ip::Reassembler`],
//!   which puts fragmented datagrams back together (a SIP INVITE with a large SDP body is
//!   often fragmented).
//! - [`transport`]: UDP and TCP headers.
//! - [`stream`]: TCP byte streams rebuilt from the segments seen (SIP over TCP).
//! - [`rtp`]: RTP fixed headers (RFC 3550), and telling RTCP apart.
//!
//! **Architecture Invariant:** nothing here does I/O or reads a clock. Time, where needed (to
//! expire fragments), is the capture time passed in.
//!
//! **Architecture Invariant:** no input makes these functions panic, loop without bound, or
//! hold more than a fixed amount of memory: they are fed whatever is on the wire.

pub mod ip;
pub mod link;
pub mod rtp;
pub mod stream;
pub mod transport;

/// Why a frame could not be taken apart. Counted by reason; never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("frame too short for its {0} header")]
    Truncated(&'static str),
    #[error("link type {0} is not supported")]
    UnsupportedLinkType(u32),
    #[error("ethertype {0:#06x} is not IP")]
    NotIp(u16),
    #[error("IP version {0} is not 4 or 6")]
    BadIpVersion(u8),
    #[error("IPv4 header length is invalid")]
    BadIpHeaderLength,
    #[error("IP length field disagrees with the frame")]
    BadIpLength,
    #[error("IP protocol {0} is not UDP or TCP")]
    NotUdpOrTcp(u8),
    #[error("TCP header length is invalid")]
    BadTcpHeaderLength,
    #[error("not an RTP packet")]
    NotRtp,
}

impl PacketError {
    /// A short stable name for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PacketError::Truncated(_) => "truncated",
            PacketError::UnsupportedLinkType(_) => "unsupported_link_type",
            PacketError::NotIp(_) => "not_ip",
            PacketError::BadIpVersion(_) => "bad_ip_version",
            PacketError::BadIpHeaderLength => "bad_ip_header_length",
            PacketError::BadIpLength => "bad_ip_length",
            PacketError::NotUdpOrTcp(_) => "not_udp_or_tcp",
            PacketError::BadTcpHeaderLength => "bad_tcp_header_length",
            PacketError::NotRtp => "not_rtp",
        }
    }
}

/// Reads a big-endian u16 at `at`; the caller has checked the length.
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Reads a big-endian u32 at `at`; the caller has checked the length.
fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Splits off `n` bytes or reports which header was cut short.
fn take<'a>(
    data: &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), PacketError> {
    if data.len() < n {
        Err(PacketError::Truncated(what))
    } else {
        Ok(data.split_at(n))
    }
}
