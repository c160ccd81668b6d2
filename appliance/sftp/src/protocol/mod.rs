//! SFTP version 3 (draft-ietf-secsh-filexfer-02, with OpenSSH's extensions) as a sans-IO
//! codec: channel bytes in, [`Message`]s out; replies encoded into bytes by [`encode`].
//!
//! ```text
//! channel data ─▶ Decoder::handle_data ─▶ Decoder::poll_message ─▶ Message { id, Op }
//!                                              encode::status / data / name … ─▶ channel data
//! ```
//!
//! Feed each chunk of channel data to [`Decoder::handle_data`], then call
//! [`Decoder::poll_message`] until it returns `Ok(None)`. Packets may be split across chunks
//! and chunks may hold many packets, so requests can be pipelined as deeply as the client
//! likes; what to do with them is the caller's business.
//!
//! **Nothing here does I/O, reads a clock or panics on any input.** Every length is checked
//! against the bytes present before it is used, a packet longer than [`MAX_PACKET_LENGTH`] is
//! refused before it is buffered, and nothing allocates more than the packet it decodes. The
//! cargo-fuzz target `packets` holds that to account.

mod decode;
pub mod encode;
mod wire;

pub use decode::{Decoder, FramingError, Incoming, Message, Op, OpenFlags};

/// The only version spoken, and the one nearly every client uses.
pub const VERSION: u32 = 3;

/// The longest packet accepted from a client, as OpenSSH's `SFTP_MAX_MSG_LENGTH`.
pub const MAX_PACKET_LENGTH: u32 = 256 * 1024;

/// The most data one read returns. A reply carries 13 bytes of header, and OpenSSH's client
/// refuses replies longer than 256 KiB, so reads stop 1 KiB short of that, as OpenSSH's own
/// server does; longer requests get a short read, which every client handles.
pub const MAX_READ_LENGTH: u32 = MAX_PACKET_LENGTH - 1024;

/// Extensions announced in `SSH_FXP_VERSION`: OpenSSH's list, in OpenSSH's order, so that
/// clients probe for and use the same features. Those that would write are answered with
/// `SSH_FX_PERMISSION_DENIED`, as OpenSSH's `sftp-server -R` answers them.
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("lsetstat@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
    ("home-directory", "1"),
    ("users-groups-by-id@openssh.com", "1"),
];

/// Packet types.
pub(crate) mod kind {
    pub(crate) const INIT: u8 = 1;
    pub(crate) const VERSION: u8 = 2;
    pub(crate) const OPEN: u8 = 3;
    pub(crate) const CLOSE: u8 = 4;
    pub(crate) const READ: u8 = 5;
    pub(crate) const WRITE: u8 = 6;
    pub(crate) const LSTAT: u8 = 7;
    pub(crate) const FSTAT: u8 = 8;
    pub(crate) const SETSTAT: u8 = 9;
    pub(crate) const FSETSTAT: u8 = 10;
    pub(crate) const OPENDIR: u8 = 11;
    pub(crate) const READDIR: u8 = 12;
    pub(crate) const REMOVE: u8 = 13;
    pub(crate) const MKDIR: u8 = 14;
    pub(crate) const RMDIR: u8 = 15;
    pub(crate) const REALPATH: u8 = 16;
    pub(crate) const STAT: u8 = 17;
    pub(crate) const RENAME: u8 = 18;
    pub(crate) const READLINK: u8 = 19;
    pub(crate) const SYMLINK: u8 = 20;
    pub(crate) const STATUS: u8 = 101;
    pub(crate) const HANDLE: u8 = 102;
    pub(crate) const DATA: u8 = 103;
    pub(crate) const NAME: u8 = 104;
    pub(crate) const ATTRS: u8 = 105;
    pub(crate) const EXTENDED: u8 = 200;
    pub(crate) const EXTENDED_REPLY: u8 = 201;
}

/// Which fields an `ATTRS` structure carries.
pub(crate) mod attr_flags {
    pub(crate) const SIZE: u32 = 0x01;
    pub(crate) const UIDGID: u32 = 0x02;
    pub(crate) const PERMISSIONS: u32 = 0x04;
    pub(crate) const ACMODTIME: u32 = 0x08;
    pub(crate) const EXTENDED: u32 = 0x8000_0000;
}

/// An open file or directory, as the client names it. This server's handles are four bytes;
/// any other handle string decodes to [`Handle::FOREIGN`], which is never issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(pub u32);

impl Handle {
    pub const FOREIGN: Handle = Handle(u32::MAX);

    pub fn from_wire(bytes: &[u8]) -> Handle {
        match <[u8; 4]>::try_from(bytes) {
            Ok(bytes) => Handle(u32::from_be_bytes(bytes)),
            Err(_) => Handle::FOREIGN,
        }
    }

    pub fn to_wire(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

/// `SSH_FX_*` status codes of version 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Ok = 0,
    Eof = 1,
    NoSuchFile = 2,
    PermissionDenied = 3,
    Failure = 4,
    BadMessage = 5,
    OpUnsupported = 8,
}

/// File attributes; absent fields are not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    /// User and group ids.
    pub owner: Option<(u32, u32)>,
    /// The whole `st_mode`: type and permission bits.
    pub permissions: Option<u32>,
    /// Access and modification times, seconds since the epoch (version 3 has 32 bits).
    pub times: Option<(u32, u32)>,
}

/// One entry of an `SSH_FXP_NAME` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameEntry {
    pub filename: Vec<u8>,
    /// What `ls -l` would print; clients show it as is.
    pub longname: Vec<u8>,
    pub attrs: Attrs,
}

#[cfg(test)]
mod tests;
