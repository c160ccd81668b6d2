//! One SFTP subsystem: requests answered from the jail, read-only.
//!
//! [`SftpSession::handle_message`] makes file system calls and so blocks; the channel shell
//! runs it on a thread of its own. Replies are appended to the caller's buffer, and whatever
//! the audit log must hear of comes out as [`Activity`].
//!
//! **Nothing a client asks can change the file system.** Opening for write, create, truncate
//! or append, `WRITE`, `REMOVE`, `RENAME`, `MKDIR`, `RMDIR`, `SETSTAT`, `FSETSTAT`, `SYMLINK`
//! and the writing extensions are answered `SSH_FX_PERMISSION_DENIED` before anything is
//! looked up, as OpenSSH's `sftp-server -R` answers them, and each refusal is audited.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use jiff::Timestamp;
use rustix::io::Errno;
use serde_json::json;
use tapline_audit::events;

use crate::handles::{Handles, MAX_OPEN_HANDLES, Open, OpenDir, OpenFile, Transfer};
use crate::jail::{Jail, JailError, Metadata};
use crate::listing;
use crate::path::{JailPath, PathError};
use crate::protocol::encode::{self, Limits, Statvfs};
use crate::protocol::{
    EXTENSIONS, Handle, MAX_PACKET_LENGTH, MAX_READ_LENGTH, Message, NameEntry, Op, StatusCode,
};

/// Entries per `SSH_FXP_NAME` reply to `READDIR`, as OpenSSH sends them: about 60 KiB at
/// most, whatever the names.
const NAMES_PER_READDIR: usize = 100;

/// Refused writes audited one by one per session; beyond that they are counted and reported
/// once when the session ends, so that a client looping on `REMOVE` cannot flood the log.
const REFUSALS_AUDITED: u32 = 100;

/// `ST_RDONLY` in `statvfs` flags: the tree is read-only as far as any client can tell.
const ST_RDONLY: u64 = 1;

/// Something the audit log must record: the sub-event, the path in the jail, and details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Activity {
    pub(crate) sub_event: &'static str,
    pub(crate) object: String,
    pub(crate) params: serde_json::Value,
}

/// Whether the subsystem goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The client sent something that cannot be answered; close the channel.
    End,
}

#[derive(Debug)]
pub(crate) struct SftpSession {
    jail: Arc<Jail>,
    handles: Handles,
    initialised: bool,
    refusals: u32,
}

/// Why a request failed, as the client is told.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    message: &'static str,
}

impl Failure {
    const INVALID_HANDLE: Failure = Failure {
        code: StatusCode::Failure,
        message: "Invalid handle",
    };

    fn new(code: StatusCode) -> Failure {
        let message = match code {
            StatusCode::Ok => "Success",
            StatusCode::Eof => "End of file",
            StatusCode::NoSuchFile => "No such file",
            StatusCode::PermissionDenied => "Permission denied",
            StatusCode::Failure => "Failure",
            StatusCode::BadMessage => "Bad message",
            StatusCode::OpUnsupported => "Operation unsupported",
        };
        Failure { code, message }
    }
}

/// The errno mapping of OpenSSH's `errno_to_portable`.
impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        let code = match error.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::NOENT | Errno::NOTDIR | Errno::BADF | Errno::LOOP) => {
                StatusCode::NoSuchFile
            }
            Some(Errno::PERM | Errno::ACCESS | Errno::FAULT) => StatusCode::PermissionDenied,
            Some(Errno::NAMETOOLONG | Errno::INVAL) => StatusCode::BadMessage,
            Some(Errno::NOSYS) => StatusCode::OpUnsupported,
            _ => StatusCode::Failure,
        };
        Failure::new(code)
    }
}

impl From<JailError> for Failure {
    fn from(error: JailError) -> Failure {
        match error {
            JailError::Io(error) => error.into(),
            JailError::NotRegularFile => Failure {
                code: StatusCode::Failure,
                message: "Not a regular file",
            },
        }
    }
}

impl From<PathError> for Failure {
    fn from(_: PathError) -> Failure {
        Failure::new(StatusCode::NoSuchFile)
    }
}

impl SftpSession {
    pub(crate) fn new(jail: Arc<Jail>) -> SftpSession {
        SftpSession {
            jail,
            handles: Handles::default(),
            initialised: false,
            refusals: 0,
        }
    }

    /// Answers one message, appending the reply to `out`. `now` dates listings.
    pub(crate) fn handle_message(
        &mut self,
        message: Message,
        now: Timestamp,
        out: &mut Vec<u8>,
        activity: &mut Vec<Activity>,
    ) -> Flow {
        match message {
            // Whatever version the client offers, version 3 is what it gets, as from OpenSSH.
            Message::Init { .. } => {
                self.initialised = true;
                encode::version(out, EXTENSIONS);
            }
            Message::Unanswerable { .. } => return Flow::End,
            Message::Request { id, .. } if !self.initialised => {
                encode::status(out, id, StatusCode::Failure, "SSH_FXP_INIT must come first");
            }
            Message::Request { id, op } => {
                if let Err(failure) = self.handle_request(id, op, now, out, activity) {
                    encode::status(out, id, failure.code, failure.message);
                }
            }
        }
        Flow::Continue
    }

    /// Closes every handle still open, as the session ends, reporting each as its `CLOSE`
    /// would have.
    pub(crate) fn close_all(&mut self, activity: &mut Vec<Activity>) {
        for open in self.handles.drain() {
            activity.push(closed(open, "the session ended"));
        }
        if self.refusals > REFUSALS_AUDITED {
            activity.push(Activity {
                sub_event: events::WRITE_REFUSED,
                object: String::new(),
                params: json!({ "further_refusals": self.refusals - REFUSALS_AUDITED }),
            });
        }
        self.refusals = 0;
    }

    fn handle_request(
        &mut self,
        id: u32,
        op: Op,
        now: Timestamp,
        out: &mut Vec<u8>,
        activity: &mut Vec<Activity>,
    ) -> Result<(), Failure> {
        match op {
            Op::Open { path, flags } if flags.writes() => {
                let params = json!({ "flags": flags.0 });
                self.refuse("open for writing", &path, params, out, id, activity);
            }
            Op::Open { path, .. } => {
                let path = JailPath::parse(&path)?;
                let (file, _) = self.jail.open_file(&path)?;
                let object = path.to_string();
                let open = Open::File(OpenFile {
                    file,
                    path,
                    transfer: Transfer::default(),
                });
                encode::handle(out, id, self.insert(open)?);
                activity.push(Activity {
                    sub_event: events::DOWNLOAD_STARTED,
                    object,
                    params: json!({}),
                });
            }
            Op::Opendir { path } => {
                let path = JailPath::parse(&path)?;
                let dir = self.jail.open_dir(&path)?;
                let open = Open::Dir(OpenDir {
                    dir,
                    path,
                    entries_listed: 0,
                });
                encode::handle(out, id, self.insert(open)?);
            }
            Op::Read {
                handle,
                offset,
                len,
            } => {
                let Some(Open::File(open)) = self.handles.get_mut(handle) else {
                    return Err(Failure::INVALID_HANDLE);
                };
                let len = len.min(MAX_READ_LENGTH) as usize;
                let sent = encode::data(out, id, len, |buf| open.file.read_at(buf, offset))?;
                if sent == 0 {
                    encode::status(out, id, StatusCode::Eof, "End of file");
                } else {
                    open.transfer.record(offset, sent as u64);
                }
            }
            Op::Readdir { handle } => {
                let Some(Open::Dir(open)) = self.handles.get_mut(handle) else {
                    return Err(Failure::INVALID_HANDLE);
                };
                let batch = open.dir.next_batch(NAMES_PER_READDIR)?;
                if batch.is_empty() {
                    encode::status(out, id, StatusCode::Eof, "End of file");
                } else {
                    open.entries_listed += batch.len() as u64;
                    let entries: Vec<NameEntry> = batch
                        .into_iter()
                        .map(|(name, metadata)| NameEntry {
                            longname: listing::longname(&name, &metadata, now),
                            attrs: listing::attrs(&metadata),
                            filename: name,
                        })
                        .collect();
                    encode::name(out, id, &entries);
                }
            }
            Op::Close { handle } => {
                let open = self.handles.remove(handle).ok_or(Failure::INVALID_HANDLE)?;
                activity.push(closed(open, "closed"));
                encode::status(out, id, StatusCode::Ok, "Success");
            }
            Op::Stat { path } => {
                let metadata = self.jail.stat(&JailPath::parse(&path)?)?;
                encode::attrs(out, id, &listing::attrs(&metadata));
            }
            Op::Lstat { path } => {
                let metadata = self.jail.lstat(&JailPath::parse(&path)?)?;
                encode::attrs(out, id, &listing::attrs(&metadata));
            }
            Op::Fstat { handle } => {
                let metadata = match self.handles.get_mut(handle) {
                    Some(Open::File(open)) => Metadata::of(&open.file)?,
                    Some(Open::Dir(open)) => open.dir.metadata()?,
                    None => return Err(Failure::INVALID_HANDLE),
                };
                encode::attrs(out, id, &listing::attrs(&metadata));
            }
            Op::Realpath { path } => {
                let path = JailPath::parse(&path)?;
                name_only(out, id, path.to_client());
            }
            Op::ExpandPath { path } => {
                // Every login's home is the root, and no other user's home is known.
                let path = match path.strip_prefix(b"~") {
                    Some(rest) if rest.is_empty() || rest.starts_with(b"/") => rest,
                    Some(_) => return Err(Failure::new(StatusCode::NoSuchFile)),
                    None => &path,
                };
                name_only(out, id, JailPath::parse(path)?.to_client());
            }
            Op::HomeDirectory => name_only(out, id, JailPath::root().to_client()),
            Op::Readlink { path } => {
                let target = self.jail.read_link(&JailPath::parse(&path)?)?;
                name_only(out, id, target);
            }
            Op::Statvfs { path } => {
                let stats = self.jail.statvfs(&JailPath::parse(&path)?)?;
                encode::statvfs(out, id, &read_only_statvfs(&stats));
            }
            Op::Fstatvfs { handle } => {
                let stats = match self.handles.get_mut(handle) {
                    Some(Open::File(open)) => {
                        rustix::fs::fstatvfs(&open.file).map_err(io::Error::from)?
                    }
                    Some(Open::Dir(open)) => open.dir.statvfs()?,
                    None => return Err(Failure::INVALID_HANDLE),
                };
                encode::statvfs(out, id, &read_only_statvfs(&stats));
            }
            Op::Limits => encode::limits(
                out,
                id,
                &Limits {
                    max_packet_length: u64::from(MAX_PACKET_LENGTH),
                    max_read_length: u64::from(MAX_READ_LENGTH),
                    // As OpenSSH's read-only server reports it; every write is refused anyway.
                    max_write_length: u64::from(MAX_READ_LENGTH),
                    max_open_handles: MAX_OPEN_HANDLES as u64,
                },
            ),
            Op::UsersGroupsById { uids, gids } => {
                // The appliance's own user names are nobody's business: every id is unknown.
                let users = vec![&b""[..]; uids.len()];
                let groups = vec![&b""[..]; gids.len()];
                encode::users_groups(out, id, &users, &groups);
            }
            Op::Write { handle } => self.refuse_on(handle, "write", out, id, activity),
            Op::Fsetstat { handle } => self.refuse_on(handle, "fsetstat", out, id, activity),
            Op::Fsync { handle } => self.refuse_on(handle, "fsync", out, id, activity),
            Op::CopyData => self.refuse("copy-data", b"", json!({}), out, id, activity),
            Op::Setstat { path } => self.refuse("setstat", &path, json!({}), out, id, activity),
            Op::Lsetstat { path } => self.refuse("lsetstat", &path, json!({}), out, id, activity),
            Op::Remove { path } => self.refuse("remove", &path, json!({}), out, id, activity),
            Op::Mkdir { path } => self.refuse("mkdir", &path, json!({}), out, id, activity),
            Op::Rmdir { path } => self.refuse("rmdir", &path, json!({}), out, id, activity),
            Op::Rename { from, to } => {
                let params = json!({ "to": shown(&to) });
                self.refuse("rename", &from, params, out, id, activity);
            }
            Op::PosixRename { from, to } => {
                let params = json!({ "to": shown(&to) });
                self.refuse("posix-rename", &from, params, out, id, activity);
            }
            Op::Symlink { target, link } => {
                let params = json!({ "target": String::from_utf8_lossy(&target) });
                self.refuse("symlink", &link, params, out, id, activity);
            }
            Op::Hardlink { target, link } => {
                let params = json!({ "target": shown(&target) });
                self.refuse("hardlink", &link, params, out, id, activity);
            }
            Op::UnknownExtension { .. } | Op::Unsupported { .. } => {
                return Err(Failure::new(StatusCode::OpUnsupported));
            }
            Op::Malformed { .. } => return Err(Failure::new(StatusCode::BadMessage)),
        }
        Ok(())
    }

    fn insert(&mut self, open: Open) -> Result<Handle, Failure> {
        self.handles.insert(open).ok_or(Failure {
            code: StatusCode::Failure,
            message: "Too many open handles",
        })
    }

    /// Answers a request that would write, and audits it.
    fn refuse(
        &mut self,
        request: &'static str,
        path: &[u8],
        params: serde_json::Value,
        out: &mut Vec<u8>,
        id: u32,
        activity: &mut Vec<Activity>,
    ) {
        self.refuse_object(request, shown(path), params, out, id, activity);
    }

    /// [`refuse`](Self::refuse) for a request on a handle, audited with the handle's path.
    fn refuse_on(
        &mut self,
        handle: Handle,
        request: &'static str,
        out: &mut Vec<u8>,
        id: u32,
        activity: &mut Vec<Activity>,
    ) {
        let object = match self.handles.get_mut(handle) {
            Some(open) => open.path().to_string(),
            None => String::new(),
        };
        self.refuse_object(request, object, json!({}), out, id, activity);
    }

    fn refuse_object(
        &mut self,
        request: &'static str,
        object: String,
        mut params: serde_json::Value,
        out: &mut Vec<u8>,
        id: u32,
        activity: &mut Vec<Activity>,
    ) {
        encode::status(out, id, StatusCode::PermissionDenied, "Permission denied");
        self.refusals = self.refusals.saturating_add(1);
        if self.refusals <= REFUSALS_AUDITED {
            if let Some(map) = params.as_object_mut() {
                map.insert("request".to_owned(), request.into());
            }
            activity.push(Activity {
                sub_event: events::WRITE_REFUSED,
                object,
                params,
            });
        }
    }
}

/// What closing `open` means for the audit log: a download with what was sent, or a listing.
fn closed(open: Open, how: &str) -> Activity {
    match open {
        Open::File(file) => {
            // The size now, not at open: a recording still being written may have grown,
            // and only a read of all of it is a whole download.
            let size = Metadata::of(&file.file).map(|m| m.size).ok();
            Activity {
                sub_event: events::DOWNLOAD,
                object: file.path.to_string(),
                params: json!({
                    "bytes_sent": file.transfer.bytes_sent(),
                    "file_size": size,
                    "whole_file": size.is_some_and(|size| file.transfer.covers(size)),
                    "ended": how,
                }),
            }
        }
        Open::Dir(dir) => Activity {
            sub_event: events::LIST_DIRECTORY,
            object: dir.path.to_string(),
            params: json!({ "entries": dir.entries_listed, "ended": how }),
        },
    }
}

/// A `NAME` reply with one entry and no attributes: what `REALPATH` and `READLINK` send.
fn name_only(out: &mut Vec<u8>, id: u32, name: Vec<u8>) {
    let entry = NameEntry {
        longname: name.clone(),
        filename: name,
        attrs: Default::default(),
    };
    encode::name(out, id, &[entry]);
}

fn read_only_statvfs(stats: &rustix::fs::StatVfs) -> Statvfs {
    Statvfs {
        block_size: stats.f_bsize,
        fragment_size: stats.f_frsize,
        blocks: stats.f_blocks,
        blocks_free: stats.f_bfree,
        blocks_available: stats.f_bavail,
        files: stats.f_files,
        files_free: stats.f_ffree,
        files_available: stats.f_favail,
        fs_id: stats.f_fsid,
        flags: stats.f_flag.bits() | ST_RDONLY,
        name_max: stats.f_namemax,
    }
}

/// A client's path as the audit log shows it: normalised where it can be.
fn shown(raw: &[u8]) -> String {
    match JailPath::parse(raw) {
        Ok(path) => path.to_string(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

#[cfg(test)]
mod tests;
