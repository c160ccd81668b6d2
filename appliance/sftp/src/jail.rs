//! The recordings root as a directory descriptor, and every file system call the server
//! makes, resolved beneath it by the kernel.
//!
//! **Every path is resolved by `openat2` from the root's descriptor with `RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS`.** The kernel treats the root as `/` for the whole walk: `..` stops
//! there, absolute symbolic links start there, and a directory renamed during the walk makes
//! it fail (`EAGAIN`, retried) rather than escape. Nothing here takes a path as a string of
//! the host's file system, so no path a client sends, and no link found on disk, reaches a
//! file outside the root. Only reads are ever asked of the kernel.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, StatVfs};

use crate::path::JailPath;

/// How often a walk that raced a rename is tried again before giving up.
const RESOLVE_ATTEMPTS: usize = 8;

/// The recordings root, opened once.
#[derive(Debug)]
pub(crate) struct Jail {
    root: OwnedFd,
}

/// What `stat` says about a file, in the units the protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// `st_mode`: type and permission bits.
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) links: u64,
    pub(crate) accessed: i64,
    pub(crate) modified: i64,
}

impl Metadata {
    fn from_stat(stat: &Stat) -> Metadata {
        Metadata {
            mode: stat.st_mode,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            uid: stat.st_uid,
            gid: stat.st_gid,
            #[allow(clippy::useless_conversion)] // `st_nlink` is u32 or u64 by architecture.
            links: u64::try_from(stat.st_nlink).unwrap_or(0),
            accessed: stat.st_atime,
            modified: stat.st_mtime,
        }
    }

    /// The metadata of an open file or directory.
    pub(crate) fn of(fd: impl std::os::fd::AsFd) -> Result<Metadata, JailError> {
        Ok(Metadata::from_stat(&rustix::fs::fstat(fd)?))
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
}

/// A failure the client is told about.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JailError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a regular file")]
    NotRegularFile,
}

impl From<rustix::io::Errno> for JailError {
    fn from(errno: rustix::io::Errno) -> JailError {
        JailError::Io(errno.into())
    }
}

impl Jail {
    /// Opens `root` (the recordings directory) as the jail.
    pub(crate) fn open(root: &Path) -> io::Result<Jail> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Jail { root })
    }

    /// A regular file, opened for reading, and its metadata.
    pub(crate) fn open_file(&self, path: &JailPath) -> Result<(File, Metadata), JailError> {
        // O_NONBLOCK so that a FIFO someone left in the tree cannot hang the open; it is
        // refused just below, and regular files ignore the flag.
        let fd = self.resolve(
            path,
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        )?;
        let metadata = Metadata::from_stat(&rustix::fs::fstat(&fd)?);
        if metadata.file_type() != FileType::RegularFile {
            return Err(JailError::NotRegularFile);
        }
        Ok((File::from(fd), metadata))
    }

    /// A directory, opened for listing.
    pub(crate) fn open_dir(&self, path: &JailPath) -> Result<Directory, JailError> {
        let fd = self.resolve(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)?;
        Ok(Directory {
            entries: Dir::new(fd)?,
        })
    }

    /// `stat`: symbolic links followed, within the root.
    pub(crate) fn stat(&self, path: &JailPath) -> Result<Metadata, JailError> {
        let fd = self.resolve(path, OFlags::PATH | OFlags::CLOEXEC)?;
        Ok(Metadata::from_stat(&rustix::fs::fstat(&fd)?))
    }

    /// `lstat`: a symbolic link itself, not what it points to.
    pub(crate) fn lstat(&self, path: &JailPath) -> Result<Metadata, JailError> {
        let fd = self.resolve(path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
        Ok(Metadata::from_stat(&rustix::fs::fstat(&fd)?))
    }

    /// The text of a symbolic link, as stored. Following it goes through [`Jail::stat`] and
    /// the same confinement as any other path.
    pub(crate) fn read_link(&self, path: &JailPath) -> Result<Vec<u8>, JailError> {
        let fd = self.resolve(path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
        // An empty path reads the link the descriptor itself refers to.
        Ok(rustix::fs::readlinkat(&fd, "", Vec::new())?.into_bytes())
    }

    /// File system statistics for the file system holding `path`.
    pub(crate) fn statvfs(&self, path: &JailPath) -> Result<StatVfs, JailError> {
        let fd = self.resolve(path, OFlags::PATH | OFlags::CLOEXEC)?;
        Ok(rustix::fs::fstatvfs(&fd)?)
    }

    fn resolve(&self, path: &JailPath, flags: OFlags) -> Result<OwnedFd, JailError> {
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut attempts = 0;
        loop {
            match rustix::fs::openat2(&self.root, path.for_kernel(), flags, Mode::empty(), resolve)
            {
                // A rename somewhere on the path raced the walk; the kernel refused rather
                // than risk a wrong answer, and a new walk sees the tree as it is now.
                Err(rustix::io::Errno::AGAIN) if attempts + 1 < RESOLVE_ATTEMPTS => attempts += 1,
                other => return Ok(other?),
            }
        }
    }
}

/// An open directory being listed.
#[derive(Debug)]
pub(crate) struct Directory {
    entries: Dir,
}

impl Directory {
    /// Up to `max` more entries with their `lstat` metadata; empty once all have been read.
    /// `.` and `..` are left out (`..` of the root would be outside it), and so are entries
    /// removed between being listed and being looked at.
    pub(crate) fn next_batch(&mut self, max: usize) -> Result<Vec<(Vec<u8>, Metadata)>, JailError> {
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(entry) = self.entries.read() else {
                break;
            };
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // A plain name looked up in this directory, never followed: no resolution to
            // confine.
            let fd = self.entries.fd()?;
            match rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => batch.push((name.to_vec(), Metadata::from_stat(&stat))),
                Err(rustix::io::Errno::NOENT) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(batch)
    }

    pub(crate) fn metadata(&self) -> Result<Metadata, JailError> {
        Ok(Metadata::from_stat(&rustix::fs::fstat(self.entries.fd()?)?))
    }

    pub(crate) fn statvfs(&self) -> Result<StatVfs, JailError> {
        Ok(rustix::fs::fstatvfs(self.entries.fd()?)?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn jail() -> (tempfile::TempDir, Jail) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        std::fs::create_dir_all(root.join("S20261121")).unwrap();
        std::fs::write(root.join("S20261121/R1.wav"), b"RIFF").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let jail = Jail::open(&root).unwrap();
        (dir, jail)
    }

    fn path(p: &str) -> JailPath {
        JailPath::parse(p.as_bytes()).unwrap()
    }

    fn not_found(result: Result<impl std::fmt::Debug, JailError>) {
        match result {
            Err(JailError::Io(err)) => assert_eq!(err.kind(), io::ErrorKind::NotFound),
            other => panic!("expected not found, got {other:?}"),
        }
    }

    #[test]
    fn files_inside_open_and_list() {
        let (_dir, jail) = jail();
        let (file, metadata) = jail.open_file(&path("/S20261121/R1.wav")).unwrap();
        assert_eq!(metadata.size, 4);
        drop(file);
        let mut listing = jail.open_dir(&JailPath::root()).unwrap();
        let names: Vec<Vec<u8>> = listing
            .next_batch(10)
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(names, vec![b"S20261121".to_vec()]);
        assert!(listing.next_batch(10).unwrap().is_empty());
        assert!(matches!(
            jail.open_file(&path("/S20261121")),
            Err(JailError::NotRegularFile)
        ));
    }

    #[test]
    fn symbolic_links_out_resolve_inside() {
        let (dir, jail) = jail();
        let root = dir.path().join("recordings");
        let secret = dir.path().join("secret");
        symlink(&secret, root.join("absolute")).unwrap();
        symlink("../secret", root.join("relative")).unwrap();
        symlink("../../../../secret", root.join("S20261121/deep")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
        for link in ["/absolute", "/relative", "/S20261121/deep", "/magic"] {
            not_found(jail.open_file(&path(link)));
            not_found(jail.stat(&path(link)));
            let metadata = jail.lstat(&path(link)).unwrap();
            assert_eq!(metadata.file_type(), FileType::Symlink);
        }
        assert_eq!(
            jail.read_link(&path("/absolute")).unwrap(),
            secret.as_os_str().as_encoded_bytes()
        );
        // A link that points inside, absolutely, lands inside.
        symlink("/S20261121/R1.wav", root.join("inside")).unwrap();
        assert_eq!(jail.stat(&path("/inside")).unwrap().size, 4);
        // A directory link out cannot be listed through either.
        symlink(dir.path(), root.join("up")).unwrap();
        not_found(jail.open_dir(&path("/up")).map(|_| ()));
    }

    #[test]
    fn statvfs_answers() {
        let (_dir, jail) = jail();
        assert!(jail.statvfs(&JailPath::root()).unwrap().f_bsize > 0);
    }
}
