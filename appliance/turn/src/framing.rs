//! What travels on the listening socket besides STUN: ChannelData messages (RFC 8656 §12.4),
//! and how a TCP stream is cut into STUN messages and ChannelData frames.
//!
//! Over UDP each datagram is one message. Over TCP, STUN is self-delimiting by its header's
//! length field, and ChannelData by its own length plus padding to 4 bytes. The shell keeps a
//! buffer per connection and asks [`frame_len`] how much of it is the next frame.

use crate::stun::HEADER_LEN;

/// The channel numbers a client may bind: 0x4000 through 0x7FFF, as RFC 5766 §11 allowed.
/// RFC 8656 §12 narrowed the range to 0x4FFF, but RFC 5766 clients still pick above it
/// (coturn's `turnutils_uclient` draws from the whole range, and coturn's server accepts it),
/// and the two leading bits 0b01 already tell ChannelData from STUN, so nothing is ambiguous.
pub const CHANNEL_NUMBERS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;

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

/// A TCP or TLS connection's input buffer: bytes read from the stream go in, whole frames
/// come out. Its size is fixed at [`MAX_FRAME_LEN`] (the largest frame always fits), so a
/// client can never make it grow.
#[derive(Debug)]
pub struct FrameBuffer {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

/// The stream holds something that is neither STUN nor ChannelData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("neither a STUN message nor ChannelData on the stream")]
pub struct InvalidStream;

impl Default for FrameBuffer {
    fn default() -> FrameBuffer {
        FrameBuffer::new()
    }
}

impl FrameBuffer {
    pub fn new() -> FrameBuffer {
        FrameBuffer {
            bytes: vec![0; MAX_FRAME_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Where the next read goes. Never empty: whatever is buffered is less than a frame,
    /// which is moved to the front first.
    pub fn unfilled(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.bytes[self.end..]
    }

    /// Records that `n` bytes were read into [`FrameBuffer::unfilled`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.bytes.len());
    }

    /// What is buffered past the last whole frame taken: on a connection that stops being
    /// framed (RFC 6062 ConnectionBind), the first bytes of its raw data.
    pub fn pending(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Every whole frame buffered, in one slice (cut it with [`frames`]); they are consumed.
    pub fn take_frames(&mut self) -> Result<&[u8], InvalidStream> {
        let from = self.start;
        loop {
            match frame_len(&self.bytes[self.start..self.end]) {
                FrameLen::Complete(n) => self.start += n,
                FrameLen::Incomplete => break,
                FrameLen::Invalid => return Err(InvalidStream),
            }
        }
        Ok(&self.bytes[from..self.start])
    }
}

/// The frames of a slice made of whole frames, as [`FrameBuffer::take_frames`] gives.
pub fn frames(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || match frame_len(bytes) {
        FrameLen::Complete(n) => {
            let (frame, rest) = bytes.split_at(n);
            bytes = rest;
            Some(frame)
        }
        FrameLen::Incomplete | FrameLen::Invalid => None,
    })
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
        let mut bytes = Vec::with_capacity(4 + data.len() + 3);
        ChannelData::encode_into(channel, data, pad, &mut bytes);
        bytes
    }

    /// [`ChannelData::encode`] into `bytes`, which is cleared first, so that a buffer can
    /// carry one message after another without being allocated again.
    pub fn encode_into(channel: u16, data: &[u8], pad: bool, bytes: &mut Vec<u8>) {
        let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
        let data = &data[..usize::from(length)];
        bytes.clear();
        bytes.extend_from_slice(&channel.to_be_bytes());
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(data);
        if pad {
            let padded = bytes.len().next_multiple_of(4);
            bytes.resize(padded, 0);
        }
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
    fn other_leading_bits_are_invalid_and_the_rfc_5766_range_is_accepted() {
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), FrameLen::Invalid);
        assert_eq!(frame_len(&[0xC0, 0, 0, 0]), FrameLen::Invalid);
        let high = ChannelData::decode(&[0x7F, 0xFF, 0, 1, 9]).expect("RFC 5766 range");
        assert_eq!((high.channel, high.data), (0x7FFF, &[9u8][..]));
        assert_eq!(ChannelData::decode(&[0x80, 0x00, 0, 0]), None);
        assert_eq!(ChannelData::decode(&[0x3F, 0xFF, 0, 0]), None);
        assert_eq!(ChannelData::decode(&[0x40, 0x00, 0, 2, 1]), None);
    }

    #[test]
    fn a_frame_buffer_yields_whole_frames_across_reads() {
        let mut stream = ChannelData::encode(0x4001, b"hello", true);
        stream.extend_from_slice(&ChannelData::encode(0x7FFF, b"abc", true));
        let mut buffer = FrameBuffer::new();
        for chunk in stream.chunks(5) {
            buffer.unfilled()[..chunk.len()].copy_from_slice(chunk);
            buffer.filled(chunk.len());
            let taken = buffer.take_frames().expect("valid").to_vec();
            for frame in frames(&taken) {
                let decoded = ChannelData::decode(frame).expect("ChannelData");
                assert!(matches!(decoded.channel, 0x4001 | 0x7FFF), "{decoded:?}");
            }
        }
        assert_eq!(buffer.take_frames(), Ok(&[][..]));
        assert_eq!(buffer.unfilled().len(), MAX_FRAME_LEN, "nothing left over");
        let largest = ChannelData::encode(0x4000, &vec![7; 0xFFFF], true);
        buffer.unfilled()[..largest.len()].copy_from_slice(&largest);
        buffer.filled(largest.len());
        assert_eq!(buffer.take_frames().map(<[u8]>::len), Ok(largest.len()));
        buffer.unfilled()[..4].copy_from_slice(&[0x80, 0, 0, 0]);
        buffer.filled(4);
        assert_eq!(buffer.take_frames(), Err(InvalidStream));
    }
}
