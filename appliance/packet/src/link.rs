//! From a captured frame to its network-layer packet.

use crate::{PacketError, be16, take};

/// pcap LINKTYPE_ values we understand.
pub mod link_type {
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LINUX_SLL: u32 = 113;
    pub const LINUX_SLL2: u32 = 276;
    /// LINKTYPE_IPV4 and LINKTYPE_IPV6 are raw IP too.
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
/// Pre-standard QinQ outer tag, still seen on some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Tags deeper than this are refused: real networks use one or two.
const MAX_VLAN_TAGS: usize = 4;

/// The network-layer packet inside a frame, with the VLAN it was tagged with (the innermost
/// tag), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network<'a> {
    pub vlan: Option<u16>,
    pub packet: &'a [u8],
}

/// Strips the link-layer framing of `frame`, captured with pcap link type `link_type`.
pub fn network(link_type: u32, frame: &[u8]) -> Result<Network<'_>, PacketError> {
    match link_type {
        link_type::ETHERNET => ethernet(frame),
        link_type::LINUX_SLL => {
            let (header, rest) = take(frame, 16, "Linux cooked")?;
            ip_ethertype(be16(header, 14), None, rest)
        }
        link_type::LINUX_SLL2 => {
            let (header, rest) = take(frame, 20, "Linux cooked v2")?;
            ip_ethertype(be16(header, 0), None, rest)
        }
        link_type::RAW | link_type::IPV4 | link_type::IPV6 => Ok(Network {
            vlan: None,
            packet: frame,
        }),
        other => Err(PacketError::UnsupportedLinkType(other)),
    }
}

fn ethernet(frame: &[u8]) -> Result<Network<'_>, PacketError> {
    let (header, mut rest) = take(frame, 14, "Ethernet")?;
    let mut ethertype = be16(header, 12);
    let mut vlan = None;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        let (tag, inner) = take(rest, 4, "VLAN tag")?;
        vlan = Some(be16(tag, 0) & 0x0FFF);
        ethertype = be16(tag, 2);
        rest = inner;
    }
    ip_ethertype(ethertype, vlan, rest)
}

fn ip_ethertype(
    ethertype: u16,
    vlan: Option<u16>,
    packet: &[u8],
) -> Result<Network<'_>, PacketError> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(Network { vlan, packet }),
        other => Err(PacketError::NotIp(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ether(ethertype_and_tags: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 12]; // MAC addresses
        frame.extend_from_slice(ethertype_and_tags);
        frame.extend_from_slice(payload);
        frame
    }

    #[track_caller]
    fn check(link: u32, frame: &[u8], expected: Result<(Option<u16>, &[u8]), PacketError>) {
        let got = network(link, frame).map(|n| (n.vlan, n.packet));
        assert_eq!(got, expected);
    }

    #[test]
    fn every_framing_yields_the_ip_packet() {
        let ip = b"\x45payload";
        check(
            link_type::ETHERNET,
            &ether(&[0x08, 0x00], ip),
            Ok((None, ip)),
        );
        check(
            link_type::ETHERNET,
            &ether(&[0x86, 0xDD], ip),
            Ok((None, ip)),
        );
        // 802.1Q, VLAN 100.
        check(
            link_type::ETHERNET,
            &ether(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00], ip),
            Ok((Some(100), ip)),
        );
        // QinQ: outer 200, inner 300; the inner one is the voice VLAN.
        let qinq = [0x88, 0xA8, 0x00, 0xC8, 0x81, 0x00, 0x21, 0x2C, 0x08, 0x00];
        check(link_type::ETHERNET, &ether(&qinq, ip), Ok((Some(300), ip)));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(ip);
        check(link_type::LINUX_SLL, &sll, Ok((None, ip)));
        let mut sll2 = vec![0x86, 0xDD];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(ip);
        check(link_type::LINUX_SLL2, &sll2, Ok((None, ip)));
        check(link_type::RAW, ip, Ok((None, ip)));
    }

    #[test]
    fn bad_frames_say_why() {
        check(
            link_type::ETHERNET,
            &[0u8; 13],
            Err(PacketError::Truncated("Ethernet")),
        );
        check(
            link_type::ETHERNET,
            &ether(&[0x08, 0x06], b"arp"),
            Err(PacketError::NotIp(0x0806)),
        );
        check(
            link_type::ETHERNET,
            &ether(&[0x81, 0x00, 0x00], b""),
            Err(PacketError::Truncated("VLAN tag")),
        );
        let endless: Vec<u8> = [0x81, 0x00, 0x00, 0x01].repeat(8);
        check(
            link_type::ETHERNET,
            &ether(&endless, b""),
            Err(PacketError::NotIp(0x8100)),
        );
        check(147, b"x", Err(PacketError::UnsupportedLinkType(147)));
    }
}
