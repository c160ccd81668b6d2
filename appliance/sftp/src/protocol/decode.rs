//! Client packets: framing ([`Decoder`]) and their contents ([`Message`], [`Op`]).

use super::wire::{Reader, Truncated};
use super::{Handle, MAX_PACKET_LENGTH, kind};

/// Splits the channel's byte stream into packets and decodes each.
///
/// Feed it with [`handle_data`](Decoder::handle_data), then call
/// [`poll_message`](Decoder::poll_message) until it returns `Ok(None)`. It holds at most one
/// incomplete packet, so its buffer never exceeds [`MAX_PACKET_LENGTH`] plus one read's worth
/// of bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` already decoded.
    consumed: usize,
    /// Once the stream cannot be framed, it never can again.
    failed: Option<FramingError>,
}

/// The stream cannot be split into packets any more: the channel has to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("a packet of {0} bytes is longer than the {MAX_PACKET_LENGTH} allowed")]
    TooLong(u32),
    #[error("an empty packet (no type byte)")]
    Empty,
}

/// One decoded packet and how many bytes it took on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub message: Message,
    pub wire_len: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes received on the channel.
    pub fn handle_data(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.consumed > 0 {
            // Only the tail of an incomplete packet is left to move.
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(data);
    }

    /// The next complete packet, `Ok(None)` while one is still arriving.
    pub fn poll_message(&mut self) -> Result<Option<Incoming>, FramingError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let available = self.buffer.get(self.consumed..).unwrap_or_default();
        let Some((length, rest)) = available.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*length);
        let error = match length {
            0 => Some(FramingError::Empty),
            n if n > MAX_PACKET_LENGTH => Some(FramingError::TooLong(n)),
            _ => None,
        };
        if let Some(error) = error {
            self.failed = Some(error);
            self.buffer = Vec::new();
            self.consumed = 0;
            return Err(error);
        }
        // Within MAX_PACKET_LENGTH, so it fits a usize.
        let length = length as usize;
        let Some(body) = rest.get(..length) else {
            return Ok(None);
        };
        let message = decode(body);
        self.consumed += 4 + length;
        if self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        }
        Ok(Some(Incoming {
            message,
            wire_len: 4 + length,
        }))
    }

    /// Bytes held that are not yet a whole packet.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.consumed
    }
}

/// A packet from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `SSH_FXP_INIT`: the first packet, with the highest version the client speaks.
    Init { version: u32 },
    /// Every other packet carries a request id, which its reply repeats.
    Request { id: u32, op: Op },
    /// A packet too short to hold even its request id: nothing can answer it.
    Unanswerable { kind: u8 },
}

/// What a request asks for. Paths are the client's bytes, not yet resolved; data sent with
/// writes is dropped at once, since this server writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Open {
        path: Vec<u8>,
        flags: OpenFlags,
    },
    Close {
        handle: Handle,
    },
    Read {
        handle: Handle,
        offset: u64,
        len: u32,
    },
    Write {
        handle: Handle,
    },
    Lstat {
        path: Vec<u8>,
    },
    Fstat {
        handle: Handle,
    },
    Setstat {
        path: Vec<u8>,
    },
    Fsetstat {
        handle: Handle,
    },
    Opendir {
        path: Vec<u8>,
    },
    Readdir {
        handle: Handle,
    },
    Remove {
        path: Vec<u8>,
    },
    Mkdir {
        path: Vec<u8>,
    },
    Rmdir {
        path: Vec<u8>,
    },
    Realpath {
        path: Vec<u8>,
    },
    Stat {
        path: Vec<u8>,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Readlink {
        path: Vec<u8>,
    },
    /// OpenSSH sends the target first and the new link second, the reverse of the draft;
    /// every other common client follows OpenSSH.
    Symlink {
        target: Vec<u8>,
        link: Vec<u8>,
    },
    /// `posix-rename@openssh.com`.
    PosixRename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    /// `statvfs@openssh.com`.
    Statvfs {
        path: Vec<u8>,
    },
    /// `fstatvfs@openssh.com`.
    Fstatvfs {
        handle: Handle,
    },
    /// `hardlink@openssh.com`.
    Hardlink {
        target: Vec<u8>,
        link: Vec<u8>,
    },
    /// `fsync@openssh.com`.
    Fsync {
        handle: Handle,
    },
    /// `lsetstat@openssh.com`.
    Lsetstat {
        path: Vec<u8>,
    },
    /// `limits@openssh.com`.
    Limits,
    /// `expand-path@openssh.com`: a path that may start with `~`.
    ExpandPath {
        path: Vec<u8>,
    },
    /// `copy-data`: copy between two handles on the server.
    CopyData,
    /// `home-directory`.
    HomeDirectory,
    /// `users-groups-by-id@openssh.com`.
    UsersGroupsById {
        uids: Vec<u32>,
        gids: Vec<u32>,
    },
    /// An `SSH_FXP_EXTENDED` request this server does not know.
    UnknownExtension {
        name: Vec<u8>,
    },
    /// A packet type this server does not know.
    Unsupported {
        kind: u8,
    },
    /// A known packet type whose fields run past the end of the packet.
    Malformed {
        kind: u8,
    },
}

/// `pflags` of `SSH_FXP_OPEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;

    /// Whether opening with these flags could change the file system.
    pub fn writes(self) -> bool {
        self.0 & (Self::WRITE | Self::APPEND | Self::CREAT | Self::TRUNC | Self::EXCL) != 0
    }
}

/// Decodes one packet body (type byte first). Never fails: what cannot be read becomes
/// [`Op::Malformed`] or [`Message::Unanswerable`]. Bytes after the last field are ignored,
/// as OpenSSH's server ignores them, because clients append fields of later drafts.
fn decode(body: &[u8]) -> Message {
    let mut reader = Reader::new(body);
    let Ok(kind) = reader.u8() else {
        return Message::Unanswerable { kind: 0 };
    };
    let Ok(first) = reader.u32() else {
        return Message::Unanswerable { kind };
    };
    if kind == kind::INIT {
        return Message::Init { version: first };
    }
    let op = decode_op(kind, &mut reader).unwrap_or(Op::Malformed { kind });
    Message::Request { id: first, op }
}

fn decode_op(kind: u8, r: &mut Reader<'_>) -> Result<Op, Truncated> {
    let path = |r: &mut Reader<'_>| r.string().map(<[u8]>::to_vec);
    let handle = |r: &mut Reader<'_>| r.string().map(Handle::from_wire);
    Ok(match kind {
        kind::OPEN => {
            let path = path(r)?;
            let flags = OpenFlags(r.u32()?);
            skip_attrs(r)?;
            Op::Open { path, flags }
        }
        kind::CLOSE => Op::Close { handle: handle(r)? },
        kind::READ => Op::Read {
            handle: handle(r)?,
            offset: r.u64()?,
            len: r.u32()?,
        },
        kind::WRITE => {
            let handle = handle(r)?;
            r.u64()?;
            r.string()?;
            Op::Write { handle }
        }
        kind::LSTAT => Op::Lstat { path: path(r)? },
        kind::FSTAT => Op::Fstat { handle: handle(r)? },
        kind::SETSTAT => {
            let path = path(r)?;
            skip_attrs(r)?;
            Op::Setstat { path }
        }
        kind::FSETSTAT => {
            let handle = handle(r)?;
            skip_attrs(r)?;
            Op::Fsetstat { handle }
        }
        kind::OPENDIR => Op::Opendir { path: path(r)? },
        kind::READDIR => Op::Readdir { handle: handle(r)? },
        kind::REMOVE => Op::Remove { path: path(r)? },
        kind::MKDIR => {
            let path = path(r)?;
            skip_attrs(r)?;
            Op::Mkdir { path }
        }
        kind::RMDIR => Op::Rmdir { path: path(r)? },
        kind::REALPATH => Op::Realpath { path: path(r)? },
        kind::STAT => Op::Stat { path: path(r)? },
        kind::RENAME => Op::Rename {
            from: path(r)?,
            to: path(r)?,
        },
        kind::READLINK => Op::Readlink { path: path(r)? },
        kind::SYMLINK => Op::Symlink {
            target: path(r)?,
            link: path(r)?,
        },
        kind::EXTENDED => decode_extended(r)?,
        other => Op::Unsupported { kind: other },
    })
}

fn decode_extended(r: &mut Reader<'_>) -> Result<Op, Truncated> {
    let name = r.string()?;
    let path = |r: &mut Reader<'_>| r.string().map(<[u8]>::to_vec);
    let handle = |r: &mut Reader<'_>| r.string().map(Handle::from_wire);
    Ok(match name {
        b"posix-rename@openssh.com" => Op::PosixRename {
            from: path(r)?,
            to: path(r)?,
        },
        b"statvfs@openssh.com" => Op::Statvfs { path: path(r)? },
        b"fstatvfs@openssh.com" => Op::Fstatvfs { handle: handle(r)? },
        b"hardlink@openssh.com" => Op::Hardlink {
            target: path(r)?,
            link: path(r)?,
        },
        b"fsync@openssh.com" => Op::Fsync { handle: handle(r)? },
        b"lsetstat@openssh.com" => {
            let path = path(r)?;
            skip_attrs(r)?;
            Op::Lsetstat { path }
        }
        b"limits@openssh.com" => Op::Limits,
        b"expand-path@openssh.com" => Op::ExpandPath { path: path(r)? },
        b"copy-data" => Op::CopyData,
        b"home-directory" => {
            r.string()?;
            Op::HomeDirectory
        }
        b"users-groups-by-id@openssh.com" => Op::UsersGroupsById {
            uids: ids(r.string()?)?,
            gids: ids(r.string()?)?,
        },
        other => Op::UnknownExtension {
            name: other.to_vec(),
        },
    })
}

/// A string holding a sequence of `uint32`s.
fn ids(bytes: &[u8]) -> Result<Vec<u32>, Truncated> {
    let (chunks, rest) = bytes.as_chunks::<4>();
    if !rest.is_empty() {
        return Err(Truncated);
    }
    Ok(chunks
        .iter()
        .map(|chunk| u32::from_be_bytes(*chunk))
        .collect())
}

/// Reads past an `ATTRS` structure, checking that it is whole. Every extended pair takes at
/// least eight bytes, so a huge count ends at the packet's end rather than looping on.
fn skip_attrs(r: &mut Reader<'_>) -> Result<(), Truncated> {
    use super::attr_flags::*;
    let flags = r.u32()?;
    if flags & SIZE != 0 {
        r.u64()?;
    }
    if flags & UIDGID != 0 {
        r.u32()?;
        r.u32()?;
    }
    if flags & PERMISSIONS != 0 {
        r.u32()?;
    }
    if flags & ACMODTIME != 0 {
        r.u32()?;
        r.u32()?;
    }
    if flags & EXTENDED != 0 {
        let count = r.u32()?;
        for _ in 0..count {
            if r.remaining() < 8 {
                return Err(Truncated);
            }
            r.string()?;
            r.string()?;
        }
    }
    Ok(())
}
