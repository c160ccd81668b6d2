//! Server packets. Each function appends one complete packet to `out`, so a caller can
//! gather many replies into one buffer and send them with one channel write.

use super::wire::{begin_packet, end_packet, put_string, put_u32, put_u64};
use super::{Attrs, Handle, NameEntry, StatusCode, VERSION, attr_flags, kind};

/// `SSH_FXP_VERSION` with the extensions announced.
pub fn version(out: &mut Vec<u8>, extensions: &[(&str, &str)]) {
    let start = begin_packet(out, kind::VERSION);
    put_u32(out, VERSION);
    for (name, data) in extensions {
        put_string(out, name.as_bytes());
        put_string(out, data.as_bytes());
    }
    end_packet(out, start);
}

pub fn status(out: &mut Vec<u8>, id: u32, code: StatusCode, message: &str) {
    let start = begin_packet(out, kind::STATUS);
    put_u32(out, id);
    put_u32(out, code as u32);
    put_string(out, message.as_bytes());
    // Language tag: empty, as OpenSSH sends it.
    put_string(out, b"");
    end_packet(out, start);
}

pub fn handle(out: &mut Vec<u8>, id: u32, handle: Handle) {
    let start = begin_packet(out, kind::HANDLE);
    put_u32(out, id);
    put_string(out, &handle.to_wire());
    end_packet(out, start);
}

/// `SSH_FXP_DATA` whose bytes `fill` writes straight into the packet (a file read, without
/// copying), given room for at most `max_len`. Returns how many bytes it wrote; when that is
/// zero, nothing is appended and the caller answers with `SSH_FX_EOF` instead. When `fill`
/// fails, nothing is appended either.
pub fn data<E>(
    out: &mut Vec<u8>,
    id: u32,
    max_len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<usize, E> {
    let start = begin_packet(out, kind::DATA);
    put_u32(out, id);
    let len_at = out.len();
    put_u32(out, 0);
    let data_at = out.len();
    out.resize(data_at + max_len, 0);
    let written = match fill(&mut out[data_at..]) {
        Ok(written) => written.min(max_len),
        Err(error) => {
            out.truncate(start);
            return Err(error);
        }
    };
    if written == 0 {
        out.truncate(start);
        return Ok(0);
    }
    out.truncate(data_at + written);
    // `written` is at most `max_len`, itself at most MAX_READ_LENGTH for every caller.
    let len = u32::try_from(written).unwrap_or(u32::MAX);
    out[len_at..data_at].copy_from_slice(&len.to_be_bytes());
    end_packet(out, start);
    Ok(written)
}

pub fn name(out: &mut Vec<u8>, id: u32, entries: &[NameEntry]) {
    let start = begin_packet(out, kind::NAME);
    put_u32(out, id);
    // A listing reply holds a bounded batch of entries, far below 2^32.
    put_u32(out, u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for entry in entries {
        put_string(out, &entry.filename);
        put_string(out, &entry.longname);
        put_attrs(out, &entry.attrs);
    }
    end_packet(out, start);
}

pub fn attrs(out: &mut Vec<u8>, id: u32, attrs: &Attrs) {
    let start = begin_packet(out, kind::ATTRS);
    put_u32(out, id);
    put_attrs(out, attrs);
    end_packet(out, start);
}

/// The reply to `limits@openssh.com`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_packet_length: u64,
    pub max_read_length: u64,
    pub max_write_length: u64,
    pub max_open_handles: u64,
}

pub fn limits(out: &mut Vec<u8>, id: u32, limits: &Limits) {
    let start = begin_packet(out, kind::EXTENDED_REPLY);
    put_u32(out, id);
    put_u64(out, limits.max_packet_length);
    put_u64(out, limits.max_read_length);
    put_u64(out, limits.max_write_length);
    put_u64(out, limits.max_open_handles);
    end_packet(out, start);
}

/// The reply to `statvfs@openssh.com` and `fstatvfs@openssh.com`: `struct statvfs`, every
/// field as a `uint64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statvfs {
    pub block_size: u64,
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
    pub files_available: u64,
    pub fs_id: u64,
    /// `ST_RDONLY` (1), `ST_NOSUID` (2).
    pub flags: u64,
    pub name_max: u64,
}

pub fn statvfs(out: &mut Vec<u8>, id: u32, stats: &Statvfs) {
    let start = begin_packet(out, kind::EXTENDED_REPLY);
    put_u32(out, id);
    for value in [
        stats.block_size,
        stats.fragment_size,
        stats.blocks,
        stats.blocks_free,
        stats.blocks_available,
        stats.files,
        stats.files_free,
        stats.files_available,
        stats.fs_id,
        stats.flags,
        stats.name_max,
    ] {
        put_u64(out, value);
    }
    end_packet(out, start);
}

/// The reply to `users-groups-by-id@openssh.com`: one name per id asked, empty where unknown.
pub fn users_groups(out: &mut Vec<u8>, id: u32, users: &[&[u8]], groups: &[&[u8]]) {
    let start = begin_packet(out, kind::EXTENDED_REPLY);
    put_u32(out, id);
    for names in [users, groups] {
        let mut list = Vec::new();
        for name in names {
            put_string(&mut list, name);
        }
        put_string(out, &list);
    }
    end_packet(out, start);
}

fn put_attrs(out: &mut Vec<u8>, attrs: &Attrs) {
    let mut flags = 0;
    if attrs.size.is_some() {
        flags |= attr_flags::SIZE;
    }
    if attrs.owner.is_some() {
        flags |= attr_flags::UIDGID;
    }
    if attrs.permissions.is_some() {
        flags |= attr_flags::PERMISSIONS;
    }
    if attrs.times.is_some() {
        flags |= attr_flags::ACMODTIME;
    }
    put_u32(out, flags);
    if let Some(size) = attrs.size {
        put_u64(out, size);
    }
    if let Some((uid, gid)) = attrs.owner {
        put_u32(out, uid);
        put_u32(out, gid);
    }
    if let Some(permissions) = attrs.permissions {
        put_u32(out, permissions);
    }
    if let Some((atime, mtime)) = attrs.times {
        put_u32(out, atime);
        put_u32(out, mtime);
    }
}
