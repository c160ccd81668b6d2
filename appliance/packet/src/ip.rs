//! IPv4 and IPv6, and the reassembly of fragmented datagrams.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::{PacketError, be16, be32, take};

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// An IP packet's addresses and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol (after any IPv6 extension headers).
    pub protocol: u8,
    /// The upper-layer bytes of this packet (one fragment's worth, if fragmented).
    pub payload: &'a [u8],
    pub fragment: Option<Fragment>,
}

/// Where a fragment's bytes belong in the original datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// Byte offset of this fragment's payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
}

/// Parses an IPv4 or IPv6 packet.
pub fn parse(packet: &[u8]) -> Result<IpPacket<'_>, PacketError> {
    let first = *packet.first().ok_or(PacketError::Truncated("IP"))?;
    match first >> 4 {
        4 => ipv4(packet),
        6 => ipv6(packet),
        other => Err(PacketError::BadIpVersion(other)),
    }
}

fn ipv4(packet: &[u8]) -> Result<IpPacket<'_>, PacketError> {
    let (header, _) = take(packet, 20, "IPv4")?;
    let header_len = usize::from(header[0] & 0x0F) * 4;
    let total_len = usize::from(be16(header, 2));
    if header_len < 20 || total_len < header_len {
        return Err(PacketError::BadIpHeaderLength);
    }
    // Ethernet pads short frames, so the frame may be longer than the packet; never shorter.
    if packet.len() < total_len {
        return Err(PacketError::BadIpLength);
    }
    let flags_offset = be16(header, 6);
    let more = flags_offset & 0x2000 != 0;
    let offset = usize::from(flags_offset & 0x1FFF) * 8;
    let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    Ok(IpPacket {
        src: src.into(),
        dst: dst.into(),
        protocol: header[9],
        payload: &packet[header_len..total_len],
        fragment: (more || offset > 0).then_some(Fragment {
            id: u32::from(be16(header, 4)),
            offset,
            more,
        }),
    })
}

fn ipv6(packet: &[u8]) -> Result<IpPacket<'_>, PacketError> {
    let (header, rest) = take(packet, 40, "IPv6")?;
    let payload_len = usize::from(be16(header, 4));
    if rest.len() < payload_len {
        return Err(PacketError::BadIpLength);
    }
    let mut payload = &rest[..payload_len];
    let address = |at: usize| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&header[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let mut next = header[6];
    let mut fragment = None;
    // Walk extension headers; a bound on their number keeps a crafted chain cheap.
    for _ in 0..8 {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, not counting
            // the first 8.
            0 | 43 | 60 => {
                let (ext, _) = take(payload, 8, "IPv6 extension")?;
                let len = (usize::from(ext[1]) + 1) * 8;
                let (ext, after) = take(payload, len, "IPv6 extension")?;
                next = ext[0];
                payload = after;
            }
            44 => {
                let (ext, after) = take(payload, 8, "IPv6 fragment")?;
                let field = be16(ext, 2);
                fragment = Some(Fragment {
                    id: be32(ext, 4),
                    offset: usize::from(field >> 3) * 8,
                    more: field & 1 != 0,
                });
                next = ext[0];
                payload = after;
            }
            _ => break,
        }
    }
    // An atomic fragment (offset 0, no more) is a whole datagram.
    let fragment = fragment.filter(|f| f.more || f.offset > 0);
    Ok(IpPacket {
        src: address(8),
        dst: address(24),
        protocol: next,
        payload,
        fragment,
    })
}

/// Puts fragmented datagrams back together.
///
/// Bounded: at most [`Reassembler::MAX_PENDING`] datagrams are in progress (the oldest is
/// dropped to make room), none may exceed 65,535 bytes, and one that has not completed within
/// [`Reassembler::TIMEOUT`] of capture time is dropped.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: HashMap<Key, Pending>,
    pub stats: ReassemblyStats,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyStats {
    pub completed: u64,
    pub expired: u64,
    pub evicted: u64,
    pub invalid: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

#[derive(Debug)]
struct Pending {
    first_seen: Duration,
    data: Vec<u8>,
    /// Byte ranges received so far, sorted and merged.
    have: Vec<(usize, usize)>,
    /// Known once the last fragment (more = false) has arrived.
    total: Option<usize>,
}

const MAX_DATAGRAM: usize = 65_535;

impl Reassembler {
    pub const MAX_PENDING: usize = 1024;
    /// As Linux's default `ipfrag_time`.
    pub const TIMEOUT: Duration = Duration::from_secs(30);

    /// Returns the upper-layer bytes of the datagram `packet` belongs to: borrowed when it was
    /// never fragmented, owned when this fragment completed it, `None` while incomplete.
    pub fn handle<'a>(&mut self, now: Duration, packet: &IpPacket<'a>) -> Option<Cow<'a, [u8]>> {
        let Some(fragment) = packet.fragment else {
            return Some(Cow::Borrowed(packet.payload));
        };
        let end = fragment.offset + packet.payload.len();
        if end > MAX_DATAGRAM || (fragment.more && !packet.payload.len().is_multiple_of(8)) {
            self.stats.invalid += 1;
            return None;
        }
        let key = Key {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            id: fragment.id,
        };
        if !self.pending.contains_key(&key) && self.pending.len() >= Self::MAX_PENDING {
            self.evict_oldest();
        }
        let entry = self.pending.entry(key).or_insert_with(|| Pending {
            first_seen: now,
            data: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        if entry.data.len() < end {
            entry.data.resize(end, 0);
        }
        entry.data[fragment.offset..end].copy_from_slice(packet.payload);
        insert_range(&mut entry.have, (fragment.offset, end));
        if !fragment.more {
            entry.total = Some(end);
        }
        let complete = entry.total.is_some_and(|total| entry.have == [(0, total)]);
        if !complete {
            return None;
        }
        let mut done = self.pending.remove(&key)?;
        done.data.truncate(done.total.unwrap_or(0));
        self.stats.completed += 1;
        Some(Cow::Owned(done.data))
    }

    /// Drops datagrams that have waited longer than [`Self::TIMEOUT`].
    pub fn expire(&mut self, now: Duration) {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.saturating_sub(p.first_seen) < Self::TIMEOUT);
        self.stats.expired += (before - self.pending.len()) as u64;
    }

    /// Datagrams in progress.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.pending.remove(&key);
            self.stats.evicted += 1;
        }
    }
}

/// Adds `new` to a sorted list of disjoint ranges, merging overlaps and neighbours.
fn insert_range(ranges: &mut Vec<(usize, usize)>, new: (usize, usize)) {
    let (mut start, mut end) = new;
    let mut kept = Vec::with_capacity(ranges.len() + 1);
    for &(s, e) in ranges.iter() {
        if e < start || s > end {
            kept.push((s, e));
        } else {
            start = start.min(s);
            end = end.max(e);
        }
    }
    kept.push((start, end));
    kept.sort_unstable();
    *ranges = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 packet: UDP from 10.0.0.1 to 10.0.0.2, with the given fragment fields.
    fn v4(id: u16, offset: usize, more: bool, payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len();
        let field = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_UDP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6..8].copy_from_slice(&field.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn v6(next: u8, extensions: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p[4..6].copy_from_slice(&((extensions.len() + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8].repeat(4)); // 2001:db8:...
        p.extend_from_slice(&[0xfe, 0x80, 0, 0].repeat(4));
        p.extend_from_slice(extensions);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv4_header_and_padding() {
        let mut packet = v4(7, 0, false, b"udp bytes");
        packet.extend_from_slice(&[0; 6]); // Ethernet padding
        let parsed = parse(&packet).unwrap();
        assert_eq!(parsed.src.to_string(), "10.0.0.1");
        assert_eq!(parsed.dst.to_string(), "10.0.0.2");
        assert_eq!(
            (parsed.protocol, parsed.payload, parsed.fragment),
            (PROTO_UDP, &b"udp bytes"[..], None)
        );
    }

    #[test]
    fn ipv6_walks_extension_headers_to_the_fragment_header() {
        // Hop-by-hop (8 bytes) then a fragment header (offset 16, more), then UDP bytes.
        let hop = [44, 0, 0, 0, 0, 0, 0, 0];
        let frag = [PROTO_UDP, 0, 0, ((16 / 8) << 3) as u8 | 1, 0, 0, 0x12, 0x34];
        let ext = [hop.as_slice(), frag.as_slice()].concat();
        let packet = v6(0, &ext, b"12345678");
        let parsed = parse(&packet).unwrap();
        assert_eq!(parsed.protocol, PROTO_UDP);
        assert_eq!(parsed.payload, b"12345678");
        assert_eq!(
            parsed.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 16,
                more: true
            })
        );
        assert_eq!(
            parsed.src.to_string(),
            "2001:db8:2001:db8:2001:db8:2001:db8"
        );
    }

    #[test]
    fn bad_packets_say_why() {
        assert_eq!(parse(&[]), Err(PacketError::Truncated("IP")));
        assert_eq!(parse(&[0x55]), Err(PacketError::BadIpVersion(5)));
        let mut short = v4(1, 0, false, b"abc");
        short.truncate(21);
        assert_eq!(parse(&short), Err(PacketError::BadIpLength));
        let mut bad_ihl = v4(1, 0, false, b"abc");
        bad_ihl[0] = 0x44;
        assert_eq!(parse(&bad_ihl), Err(PacketError::BadIpHeaderLength));
    }

    #[test]
    fn fragments_in_any_order_make_the_datagram() {
        let datagram: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let pieces = [(0, 1480, true), (1480, 1480, true), (2960, 40, false)];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut reassembler = Reassembler::default();
            let mut outputs = Vec::new();
            for &i in &order {
                let (offset, len, more) = pieces[i];
                let packet = v4(99, offset, more, &datagram[offset..offset + len]);
                outputs.push(
                    reassembler
                        .handle(Duration::ZERO, &parse(&packet).unwrap())
                        .map(Cow::into_owned),
                );
            }
            assert_eq!(outputs[..2], [None, None]);
            assert_eq!(
                outputs[2].as_deref(),
                Some(datagram.as_slice()),
                "order {order:?}"
            );
            assert_eq!(reassembler.pending(), 0);
            assert_eq!(reassembler.stats.completed, 1);
        }
    }

    #[test]
    fn a_duplicate_fragment_does_not_complete_early() {
        let mut r = Reassembler::default();
        let first = v4(5, 0, true, &[1; 16]);
        assert_eq!(r.handle(Duration::ZERO, &parse(&first).unwrap()), None);
        assert_eq!(r.handle(Duration::ZERO, &parse(&first).unwrap()), None);
        let last = v4(5, 24, false, &[3; 4]);
        assert_eq!(
            r.handle(Duration::ZERO, &parse(&last).unwrap()),
            None,
            "a hole at 16..24"
        );
        let middle = v4(5, 16, true, &[2; 8]);
        let whole = r.handle(Duration::ZERO, &parse(&middle).unwrap()).unwrap();
        assert_eq!(whole.len(), 28);
    }

    #[test]
    fn unfinished_datagrams_expire_and_memory_is_bounded() {
        let mut r = Reassembler::default();
        for id in 0..(Reassembler::MAX_PENDING as u16 + 10) {
            let first = v4(id, 0, true, &[0; 8]);
            r.handle(Duration::from_secs(u64::from(id)), &parse(&first).unwrap());
        }
        assert_eq!(r.pending(), Reassembler::MAX_PENDING);
        assert_eq!(r.stats.evicted, 10);
        r.expire(Duration::from_secs(2000));
        assert_eq!(r.pending(), 0);
        assert_eq!(r.stats.expired, Reassembler::MAX_PENDING as u64);
    }

    #[test]
    fn oversized_or_misaligned_fragments_are_refused() {
        let mut r = Reassembler::default();
        let too_far = v4(1, 65_528, false, &[0; 16]);
        assert_eq!(r.handle(Duration::ZERO, &parse(&too_far).unwrap()), None);
        let odd = v4(2, 0, true, &[0; 7]);
        assert_eq!(r.handle(Duration::ZERO, &parse(&odd).unwrap()), None);
        assert_eq!(r.stats.invalid, 2);
        assert_eq!(r.pending(), 0);
    }
}
