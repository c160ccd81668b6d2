//! SSH wire types (RFC 4251 §5) as SFTP uses them: big-endian integers and strings prefixed
//! by their length. Every read checks what is left, so no input can make one panic.

/// The packet ended before the field being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Reads fields off the front of a packet body.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A string's bytes, borrowed from the packet; its length is checked against what is
    /// left before anything is taken, so a huge length allocates nothing.
    pub(crate) fn string(&mut self) -> Result<&'a [u8], Truncated> {
        let len = usize::try_from(self.u32()?).map_err(|_| Truncated)?;
        self.take(len)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or(Truncated)?;
        self.rest = rest;
        Ok(taken)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(Truncated)?;
        self.rest = rest;
        Ok(*head)
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, wire_len(bytes.len()));
    out.extend_from_slice(bytes);
}

/// Starts a packet of `kind`; returns where it starts, for [`end_packet`].
pub(crate) fn begin_packet(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    put_u32(out, 0);
    put_u8(out, kind);
    start
}

/// Writes the length of the packet begun at `start`, now that its body is complete.
pub(crate) fn end_packet(out: &mut [u8], start: usize) {
    let len = wire_len(out.len().saturating_sub(start + 4));
    if let Some(field) = out.get_mut(start..start + 4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// A length as the wire carries it. Everything this server encodes is bounded far below
/// 4 GiB (names by the kernel, data by the read limit), so saturating never happens.
fn wire_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_check_what_is_left() {
        let mut reader = Reader::new(&[0, 0, 0, 5, b'a', b'b']);
        assert_eq!(reader.string(), Err(Truncated), "length beyond the packet");
        let mut reader = Reader::new(&[0, 0, 0, 2, b'a', b'b', 7]);
        assert_eq!(reader.string(), Ok(&b"ab"[..]));
        assert_eq!(reader.u8(), Ok(7));
        assert_eq!(reader.u8(), Err(Truncated));
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(Truncated));
        assert_eq!(Reader::new(&[0xff; 4]).string(), Err(Truncated));
    }

    #[test]
    fn packets_carry_their_length() {
        let mut out = vec![9];
        let start = begin_packet(&mut out, 101);
        put_u32(&mut out, 7);
        put_string(&mut out, b"hi");
        end_packet(&mut out, start);
        assert_eq!(
            out,
            [9, 0, 0, 0, 11, 101, 0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i']
        );
    }
}
