//! UDP and TCP headers.

use crate::{PacketError, be16, be32, take};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Parses a UDP datagram (a whole one: reassembled, if it was fragmented).
pub fn udp(datagram: &[u8]) -> Result<Udp<'_>, PacketError> {
    let (header, rest) = take(datagram, 8, "UDP")?;
    let length = usize::from(be16(header, 4));
    // Trust the length field when it is sane; a zero length (jumbograms, some offloads) or one
    // past the end means "the rest".
    let payload = if (8..=datagram.len()).contains(&length) {
        &rest[..length - 8]
    } else {
        rest
    };
    Ok(Udp {
        src_port: be16(header, 0),
        dst_port: be16(header, 2),
        payload,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

/// Parses a TCP segment.
pub fn tcp(segment: &[u8]) -> Result<Tcp<'_>, PacketError> {
    let (header, _) = take(segment, 20, "TCP")?;
    let header_len = usize::from(header[12] >> 4) * 4;
    if header_len < 20 || header_len > segment.len() {
        return Err(PacketError::BadTcpHeaderLength);
    }
    let flags = header[13];
    Ok(Tcp {
        src_port: be16(header, 0),
        dst_port: be16(header, 2),
        seq: be32(header, 4),
        flags: TcpFlags {
            fin: flags & 0x01 != 0,
            syn: flags & 0x02 != 0,
            rst: flags & 0x04 != 0,
        },
        payload: &segment[header_len..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_header_and_length() {
        let mut d = vec![0x13, 0xC4, 0x13, 0xC4, 0, 13, 0, 0];
        d.extend_from_slice(b"hello");
        d.extend_from_slice(b"pad");
        let u = udp(&d).unwrap();
        assert_eq!(
            (u.src_port, u.dst_port, u.payload),
            (5060, 5060, &b"hello"[..])
        );
        d[5] = 0;
        assert_eq!(udp(&d).unwrap().payload, b"hellopad");
        assert_eq!(udp(&d[..7]), Err(PacketError::Truncated("UDP")));
    }

    #[test]
    fn tcp_header_options_and_flags() {
        let mut s = vec![
            0x13, 0xC4, 0xC0, 0x00, 0, 0, 1, 0, 0, 0, 0, 0, 0x60, 0x19, 0, 0, 0, 0, 0, 0,
        ];
        s.extend_from_slice(&[1, 1, 1, 0]); // options: 4 bytes, header is 24
        s.extend_from_slice(b"INVITE");
        let t = tcp(&s).unwrap();
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.payload),
            (5060, 49152, 256, &b"INVITE"[..])
        );
        assert_eq!(
            t.flags,
            TcpFlags {
                syn: false,
                fin: true,
                rst: false
            }
        );
        s[12] = 0xF0; // 60-byte header, longer than the segment
        assert_eq!(tcp(&s), Err(PacketError::BadTcpHeaderLength));
    }
}
