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
/// tag), if any, and the sender's MAC address where the framing carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network<'a> {
    pub vlan: Option<u16>,
    /// The Ethernet source address: on a SPAN port of the phones' own switch, the phone's.
    pub source_mac: Option<Mac>,
    pub packet: &'a [u8],
}

/// An Ethernet (EUI-48) address.
pub type Mac = [u8; 6];

/// ARPHRD_ETHER: a cooked capture's address is an Ethernet one.
const ARPHRD_ETHER: u16 = 1;

/// Strips the link-layer framing of `frame`, captured with pcap link type `link_type`.
pub fn network(link_type: u32, frame: &[u8]) -> Result<Network<'_>, PacketError> {
    match link_type {
        link_type::ETHERNET => ethernet(frame),
        link_type::LINUX_SLL => {
            let (header, rest) = take(frame, 16, "Linux cooked")?;
            let mac = cooked_mac(be16(header, 2), be16(header, 4), &header[6..12]);
            ip_ethertype(be16(header, 14), None, mac, rest)
        }
        link_type::LINUX_SLL2 => {
            let (header, rest) = take(frame, 20, "Linux cooked v2")?;
            let mac = cooked_mac(be16(header, 8), u16::from(header[11]), &header[12..18]);
            ip_ethertype(be16(header, 0), None, mac, rest)
        }
        link_type::RAW | link_type::IPV4 | link_type::IPV6 => Ok(Network {
            vlan: None,
            source_mac: None,
            packet: frame,
        }),
        other => Err(PacketError::UnsupportedLinkType(other)),
    }
}

fn ethernet(frame: &[u8]) -> Result<Network<'_>, PacketError> {
    let (header, mut rest) = take(frame, 14, "Ethernet")?;
    let source_mac = mac_at(header, 6);
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
    ip_ethertype(ethertype, vlan, source_mac, rest)
}

/// A cooked capture's sender address, when it is an Ethernet one.
fn cooked_mac(hardware_type: u16, address_length: u16, address: &[u8]) -> Option<Mac> {
    (hardware_type == ARPHRD_ETHER && address_length == 6)
        .then(|| mac_at(address, 0))
        .flatten()
}

fn mac_at(bytes: &[u8], at: usize) -> Option<Mac> {
    bytes.get(at..at + 6)?.try_into().ok()
}

fn ip_ethertype<'a>(
    ethertype: u16,
    vlan: Option<u16>,
    source_mac: Option<Mac>,
    packet: &'a [u8],
) -> Result<Network<'a>, PacketError> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(Network {
            vlan,
            source_mac,
            packet,
        }),
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
    fn the_sender_mac_is_read_where_the_framing_has_one() {
        let phone = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&phone);
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45]);
        let got = network(link_type::ETHERNET, &frame).unwrap();
        assert_eq!(got.source_mac, Some(phone));

        // Linux cooked v1: packet type, ARPHRD_ETHER, address length 6, address (8 bytes).
        let mut sll = vec![0, 0, 0, 1, 0, 6];
        sll.extend_from_slice(&phone);
        sll.extend_from_slice(&[0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(
            network(link_type::LINUX_SLL, &sll).unwrap().source_mac,
            Some(phone)
        );
        // The same from a non-Ethernet device (ARPHRD_PPP) has no MAC.
        sll[3] = 0;
        sll[2] = 2;
        assert_eq!(
            network(link_type::LINUX_SLL, &sll).unwrap().source_mac,
            None
        );

        // Linux cooked v2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, length 6.
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&phone);
        sll2.extend_from_slice(&[0, 0, 0x45]);
        assert_eq!(
            network(link_type::LINUX_SLL2, &sll2).unwrap().source_mac,
            Some(phone)
        );

        assert_eq!(network(link_type::RAW, b"\x45").unwrap().source_mac, None);
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
