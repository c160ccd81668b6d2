//! RTP fixed headers (RFC 3550 §5.1).

use crate::{PacketError, be16, be32, take};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtp<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// The media payload, after CSRCs, the header extension and padding are removed.
    pub payload: &'a [u8],
}

/// Parses an RTP packet. RTCP, which shares ports with RTP when multiplexed (RFC 5761), is
/// refused: its "payload types" 72 to 76 (packet types 200 to 204 with the marker bit) are
/// never RTP's.
pub fn parse(packet: &[u8]) -> Result<Rtp<'_>, PacketError> {
    let (header, mut rest) = take(packet, 12, "RTP")?;
    if header[0] >> 6 != 2 {
        return Err(PacketError::NotRtp);
    }
    let payload_type = header[1] & 0x7F;
    if (72..=76).contains(&payload_type) {
        return Err(PacketError::NotRtp);
    }
    let csrc_len = usize::from(header[0] & 0x0F) * 4;
    (_, rest) = take(rest, csrc_len, "RTP CSRC list")?;
    if header[0] & 0x10 != 0 {
        let (extension, _) = take(rest, 4, "RTP header extension")?;
        let len = 4 + usize::from(be16(extension, 2)) * 4;
        (_, rest) = take(rest, len, "RTP header extension")?;
    }
    if header[0] & 0x20 != 0 {
        let pad = usize::from(*rest.last().ok_or(PacketError::NotRtp)?);
        if pad == 0 || pad > rest.len() {
            return Err(PacketError::NotRtp);
        }
        rest = &rest[..rest.len() - pad];
    }
    Ok(Rtp {
        marker: header[1] & 0x80 != 0,
        payload_type,
        sequence: be16(header, 2),
        timestamp: be32(header, 4),
        ssrc: be32(header, 8),
        payload: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(first: u8, pt: u8, extra: &[u8]) -> Vec<u8> {
        let mut p = vec![
            first, pt, 0x12, 0x34, 0, 0, 0x03, 0x20, 0xDE, 0xAD, 0xBE, 0xEF,
        ];
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn fields_and_payload() {
        let p = rtp(0x80, 0x80, b"\xFF\xFE");
        let r = parse(&p).unwrap();
        assert_eq!(
            r,
            Rtp {
                marker: true,
                payload_type: 0,
                sequence: 0x1234,
                timestamp: 800,
                ssrc: 0xDEADBEEF,
                payload: b"\xFF\xFE"
            }
        );
    }

    #[test]
    fn csrcs_extension_and_padding_are_stripped() {
        // One CSRC, an extension of one word, then payload "ab" and 2 bytes of padding.
        let extra = [
            &[0u8, 0, 0, 1][..],
            &[0xBE, 0xDE, 0, 1, 9, 9, 9, 9],
            b"ab",
            &[0, 2],
        ]
        .concat();
        let p = rtp(0x80 | 0x20 | 0x10 | 1, 8, &extra);
        assert_eq!(parse(&p).unwrap().payload, b"ab");
    }

    #[test]
    fn not_rtp() {
        assert_eq!(
            parse(&rtp(0x40, 0, b"")),
            Err(PacketError::NotRtp),
            "version 1"
        );
        assert_eq!(
            parse(&rtp(0x80, 200, b"")),
            Err(PacketError::NotRtp),
            "RTCP sender report"
        );
        assert_eq!(
            parse(&rtp(0xA0, 0, b"\x00")),
            Err(PacketError::NotRtp),
            "zero padding"
        );
        assert_eq!(
            parse(&rtp(0xA0, 0, b"\x05")),
            Err(PacketError::NotRtp),
            "padding past the end"
        );
        assert_eq!(parse(&[0x80; 11]), Err(PacketError::Truncated("RTP")));
    }
}
