//! What travels on the listening socket besides STUN: ChannelData messages (RFC 8656 §12.4),
//! and how a TCP stream is cut into STUN messages and ChannelData frames.
//!
//! Over UDP each datagram is one message. Over TCP, STUN is self-delimiting by its header's
//! length field, and ChannelData by its own length plus padding to 4 bytes. The shell keeps a
//! buffer per connection and asks [`frame_len`] how much of it is the next frame.

use crate::stun::HEADER_LEN;

/// The channel numbers a client may bind (RFC 8656 §12: 0x4000 through 0x4FFF; the rest of
/// 0x4000..0x7FFF is reserved).
pub const CHANNEL_NUMBERS: std::ops::RangeInclusive<u16> = 0x4000..=0x4FFF;

/// The largest frame a client may send over TCP: a STUN message or ChannelData with the
/// largest 16-bit length.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + 0xFFFF;

/// How much of a stream buffer is the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameLen {
    /// Not enough bytes yet to know, or to have, the whole frame.
    Incomplete,
    /// The next frame is this many bytes (padding included).
    Complete(usize),
    /// Neither STUN nor ChannelData: the stream cannot be resynchronised; close it.
    Invalid,
}

/// Where the next frame ends in a TCP stream buffer.
pub fn frame_len(buffer: &[u8]) -> FrameLen {
    let (Some(&first), Some(&len_hi), Some(&len_lo)) =
        (buffer.first(), buffer.get(2), buffer.get(3))
    else {
        return FrameLen::Incomplete;
    };
    let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let total = match first >> 6 {
        0b00 => HEADER_LEN + length,
        0b01 => 4 + length.next_multiple_of(4),
        _ => return FrameLen::Invalid,
    };
    if buffer.len() < total {
        FrameLen::Incomplete
    } else {
        FrameLen::Complete(total)
    }
}

/// One ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u16,
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Reads ChannelData from a datagram or a TCP frame. Bytes after the declared length are
    /// padding (required over TCP, allowed over UDP) and ignored.
    pub fn decode(bytes: &'a [u8]) -> Option<ChannelData<'a>> {
        let channel = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
        if !CHANNEL_NUMBERS.contains(&channel) {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]));
        let data = bytes.get(4..4 + length)?;
        Some(ChannelData { channel, data })
    }

    /// Writes ChannelData; over TCP the frame is padded to a multiple of 4 bytes. `data` longer
    /// than 65,535 bytes is cut: the server never passes more (it drops larger peer data).
    pub fn encode(channel: u16, data: &[u8], pad: bool) -> Vec<u8> {
        let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
        let data = &data[..usize::from(length)];
        let mut bytes = Vec::with_capacity(4 + data.len() + 3);
        bytes.extend_from_slice(&channel.to_be_bytes());
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(data);
        if pad {
            let padded = bytes.len().next_multiple_of(4);
            bytes.resize(padded, 0);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_frames_end_where_the_header_says() {
        let mut stream = vec![0x00, 0x01, 0x00, 0x04];
        assert_eq!(frame_len(&stream), FrameLen::Incomplete);
        stream.extend_from_slice(&[0; 20]);
        assert_eq!(frame_len(&stream), FrameLen::Complete(24));
    }

    #[test]
    fn channel_data_frames_include_padding_over_tcp() {
        let frame = ChannelData::encode(0x4001, b"hello", true);
        assert_eq!(frame.len(), 12);
        assert_eq!(frame_len(&frame), FrameLen::Complete(12));
        assert_eq!(frame_len(&frame[..9]), FrameLen::Incomplete);
        let decoded = ChannelData::decode(&frame).expect("own encoding");
        assert_eq!((decoded.channel, decoded.data), (0x4001, &b"hello"[..]));
        assert_eq!(ChannelData::encode(0x4001, b"hello", false).len(), 9);
    }

    #[test]
    fn other_leading_bits_are_invalid_and_reserved_channels_refused() {
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), FrameLen::Invalid);
        assert_eq!(frame_len(&[0xC0, 0, 0, 0]), FrameLen::Invalid);
        assert_eq!(ChannelData::decode(&[0x50, 0x00, 0, 0]), None);
        assert_eq!(ChannelData::decode(&[0x40, 0x00, 0, 2, 1]), None);
    }
}
