//! TCP byte streams rebuilt from segments seen on the wire, one per direction of a connection.
//!
//! A passive observer sees retransmissions, segments out of order, and (on a busy SPAN port)
//! segments that never arrive. Bytes are delivered once, in order. When a hole is not filled
//! while [`MAX_BUFFERED`] bytes wait behind it, the stream skips the hole and says so with
//! [`Chunk::Gap`], so the consumer can find the start of its next message.
//!
//! Bounded: at most [`StreamReassembler::MAX_FLOWS`] streams (the idlest is dropped to make
//! room), each holding at most [`MAX_BUFFERED`] bytes out of order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::transport::Tcp;

/// Bytes held back waiting for a missing segment, per stream.
pub const MAX_BUFFERED: usize = 256 * 1024;

/// Segments held back, per stream: with the byte limit, this keeps a flood of tiny
/// out-of-order segments from making each delivery slow.
pub const MAX_SEGMENTS_AHEAD: usize = 512;

/// What a stream delivers.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// Bytes are missing here; what follows does not continue what came before.
    Gap,
    /// The connection was reset or closed; nothing more follows.
    Closed,
}

/// Identifies one direction of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub retransmitted: u64,
    pub reordered: u64,
    pub gaps: u64,
    pub evicted: u64,
}

#[derive(Debug, Default)]
pub struct StreamReassembler {
    flows: HashMap<StreamKey, Flow>,
    pub stats: StreamStats,
}

#[derive(Debug)]
struct Flow {
    /// The sequence number of the next byte to deliver.
    next: u32,
    /// Segments ahead of `next`, by sequence number (compared with wrapping arithmetic).
    ahead: HashMap<u32, Vec<u8>>,
    buffered: usize,
    last_seen: Duration,
}

impl StreamReassembler {
    pub const MAX_FLOWS: usize = 16_384;
    /// A stream silent this long is forgotten.
    pub const IDLE: Duration = Duration::from_secs(300);

    /// Takes in one segment of the stream `key`, calling `deliver` with what it makes
    /// available, in order.
    pub fn handle(
        &mut self,
        now: Duration,
        key: StreamKey,
        segment: &Tcp<'_>,
        mut deliver: impl FnMut(Chunk<'_>),
    ) {
        if segment.flags.rst {
            if self.flows.remove(&key).is_some() {
                deliver(Chunk::Closed);
            }
            return;
        }
        if segment.flags.syn {
            // A new connection: its data starts after the SYN's sequence number.
            self.insert(key, Flow::new(segment.seq.wrapping_add(1), now));
            return;
        }
        if !self.flows.contains_key(&key) {
            // Joined mid-connection (the capture started after the handshake): take this
            // segment as the start.
            self.insert(key, Flow::new(segment.seq, now));
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen = now;
        let stats = &mut self.stats;
        flow.accept(segment.seq, segment.payload, stats, &mut deliver);
        if segment.flags.fin {
            self.flows.remove(&key);
            deliver(Chunk::Closed);
        }
    }

    /// Forgets streams idle for [`Self::IDLE`].
    pub fn expire(&mut self, now: Duration) {
        self.flows
            .retain(|_, f| now.saturating_sub(f.last_seen) < Self::IDLE);
    }

    pub fn streams(&self) -> usize {
        self.flows.len()
    }

    pub fn contains(&self, key: &StreamKey) -> bool {
        self.flows.contains_key(key)
    }

    fn insert(&mut self, key: StreamKey, flow: Flow) {
        if !self.flows.contains_key(&key) && self.flows.len() >= Self::MAX_FLOWS {
            let idlest = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_seen)
                .map(|(k, _)| *k);
            if let Some(idlest) = idlest {
                self.flows.remove(&idlest);
                self.stats.evicted += 1;
            }
        }
        self.flows.insert(key, flow);
    }
}

impl Flow {
    fn new(next: u32, now: Duration) -> Flow {
        Flow {
            next,
            ahead: HashMap::new(),
            buffered: 0,
            last_seen: now,
        }
    }

    fn accept(
        &mut self,
        seq: u32,
        payload: &[u8],
        stats: &mut StreamStats,
        deliver: &mut impl FnMut(Chunk<'_>),
    ) {
        if payload.is_empty() {
            return;
        }
        let offset = seq.wrapping_sub(self.next) as i32;
        if offset < 0 {
            // Starts before what was delivered: a retransmission, maybe with new bytes after.
            let old = offset.unsigned_abs() as usize;
            if old >= payload.len() {
                stats.retransmitted += 1;
                return;
            }
            self.deliver_in_order(&payload[old..], deliver);
        } else if offset == 0 {
            self.deliver_in_order(payload, deliver);
        } else {
            stats.reordered += 1;
            self.store_ahead(seq, payload);
            if self.buffered > MAX_BUFFERED || self.ahead.len() > MAX_SEGMENTS_AHEAD {
                // The hole is not coming back: skip to the earliest stored segment.
                stats.gaps += 1;
                deliver(Chunk::Gap);
                if let Some(first) = self.earliest_ahead() {
                    self.next = first;
                }
            }
        }
        self.drain_ahead(stats, deliver);
    }

    fn deliver_in_order(&mut self, bytes: &[u8], deliver: &mut impl FnMut(Chunk<'_>)) {
        deliver(Chunk::Data(bytes));
        self.next = self.next.wrapping_add(bytes.len() as u32);
    }

    fn store_ahead(&mut self, seq: u32, payload: &[u8]) {
        if self
            .ahead
            .get(&seq)
            .is_some_and(|existing| existing.len() >= payload.len())
        {
            return;
        }
        self.buffered += payload.len();
        if let Some(old) = self.ahead.insert(seq, payload.to_vec()) {
            self.buffered -= old.len();
        }
    }

    /// The stored segment nearest after (or overlapping) `next`.
    fn earliest_ahead(&self) -> Option<u32> {
        self.ahead
            .keys()
            .copied()
            .min_by_key(|seq| seq.wrapping_sub(self.next) as i32)
    }

    /// Delivers stored segments that now continue the stream.
    fn drain_ahead(&mut self, stats: &mut StreamStats, deliver: &mut impl FnMut(Chunk<'_>)) {
        while let Some(seq) = self.earliest_ahead() {
            let offset = seq.wrapping_sub(self.next) as i32;
            if offset > 0 {
                return;
            }
            let Some(bytes) = self.ahead.remove(&seq) else {
                return;
            };
            self.buffered -= bytes.len();
            let old = offset.unsigned_abs() as usize;
            if old >= bytes.len() {
                stats.retransmitted += 1;
                continue;
            }
            self.deliver_in_order(&bytes[old..], deliver);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TcpFlags;

    fn key() -> StreamKey {
        StreamKey {
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "192.0.2.2:40000".parse().unwrap(),
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> Tcp<'_> {
        Tcp {
            src_port: 5060,
            dst_port: 40000,
            seq,
            flags: TcpFlags::default(),
            payload,
        }
    }

    /// Feeds segments and returns what was delivered, with gaps as "|".
    fn run(r: &mut StreamReassembler, segments: &[(u32, &[u8])]) -> String {
        let mut out = String::new();
        for (seq, payload) in segments {
            r.handle(
                Duration::ZERO,
                key(),
                &seg(*seq, payload),
                |chunk| match chunk {
                    Chunk::Data(d) => out.push_str(std::str::from_utf8(d).unwrap()),
                    Chunk::Gap => out.push('|'),
                    Chunk::Closed => out.push('.'),
                },
            );
        }
        out
    }

    #[test]
    fn in_order_out_of_order_and_retransmitted_segments_deliver_each_byte_once() {
        let mut r = StreamReassembler::default();
        let syn = Tcp {
            flags: TcpFlags {
                syn: true,
                ..TcpFlags::default()
            },
            ..seg(999, b"")
        };
        r.handle(Duration::ZERO, key(), &syn, |_| {});
        let got = run(
            &mut r,
            &[
                (1000, b"abc"),
                (1006, b"ghi"),
                (1003, b"def"),
                (1003, b"def"),
                (1001, b"bcdefgXYZ"),
            ],
        );
        assert_eq!(got, "abcdefghiZ");
        assert_eq!((r.stats.reordered, r.stats.retransmitted), (1, 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = StreamReassembler::default();
        let got = run(&mut r, &[(u32::MAX - 1, b"ab"), (0, b"cd"), (2, b"ef")]);
        assert_eq!(got, "abcdef");
    }

    #[test]
    fn a_hole_that_never_fills_is_skipped_with_a_gap() {
        let mut r = StreamReassembler::default();
        let big = vec![b'x'; MAX_BUFFERED / 2 + 1];
        let got = run(
            &mut r,
            &[(0, b"start"), (100, &big), (100 + big.len() as u32, &big)],
        );
        assert!(got.starts_with("start|"), "{}", &got[..10]);
        assert_eq!(got.len(), 5 + 1 + 2 * big.len());
        assert_eq!(r.stats.gaps, 1);
    }

    #[test]
    fn fin_and_rst_close_the_stream() {
        let mut r = StreamReassembler::default();
        let fin = Tcp {
            flags: TcpFlags {
                fin: true,
                ..TcpFlags::default()
            },
            ..seg(0, b"bye")
        };
        let mut out = Vec::new();
        r.handle(Duration::ZERO, key(), &fin, |c| out.push(format!("{c:?}")));
        assert_eq!(out, ["Data([98, 121, 101])", "Closed"]);
        assert_eq!(r.streams(), 0);
    }

    #[test]
    fn streams_are_bounded_and_expire() {
        let mut r = StreamReassembler::default();
        for port in 0..(StreamReassembler::MAX_FLOWS as u16 + 5) {
            let k = StreamKey {
                src: SocketAddr::from(([192, 0, 2, 1], port)),
                dst: key().dst,
            };
            r.handle(
                Duration::from_secs(u64::from(port)),
                k,
                &seg(0, b"x"),
                |_| {},
            );
        }
        assert_eq!(r.streams(), StreamReassembler::MAX_FLOWS);
        assert_eq!(r.stats.evicted, 5);
        r.expire(Duration::from_secs(1_000_000));
        assert_eq!(r.streams(), 0);
    }
}
