//! Putting a day's index files in place, and taking them away.
//!
//! Each file is written to a temporary name in its own directory, synced, renamed over the
//! old one, and the directory synced: a reader, over SFTP or on the appliance, sees the old
//! file or the new one, never part of one, and after a power cut one of the two is there.
//! A file whose bytes are already the ones to write is left alone, so regenerating a day
//! keeps its files' times. The copy in the `S` directory is a hard link to the file in
//! `Index/` (the same bytes at no cost), or a real copy on a file system without links.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use jiff::civil::Date;

use crate::day::{brief_file_name, day_directory, detailed_file_name};
use crate::{INDEX_DIR, IndexError};

/// Mode of `Index/` and of the `S` directories this crate creates, as provisioning gives
/// `recordings/`: readable by the service's group (SFTP), by nobody else.
const DIRECTORY_MODE: u32 = 0o750;
/// Mode of index files.
const FILE_MODE: u32 = 0o640;
/// A temporary file this old was left by a crash, not by a writer still at work.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Where a day's files went, and which of them changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Published {
    /// Files replaced or created.
    pub written: Vec<PathBuf>,
    /// Files that already held these bytes.
    pub unchanged: Vec<PathBuf>,
}

/// Puts `brief` and `detailed` in place as local `day`'s index files, in `Index/` and in
/// `Syyyymmdd/` (created if absent) under `root`.
pub(crate) fn publish_day(
    root: &Path,
    day: Date,
    brief: &[u8],
    detailed: &[u8],
) -> Result<Published, IndexError> {
    let index_dir = root.join(INDEX_DIR);
    let copy_dir = root.join(day_directory(day));
    make_directory(&index_dir)?;
    make_directory(&copy_dir)?;
    // Only here: the `S` directory can hold a hundred thousand recordings, too many to list
    // for every day written. `remove_day` sweeps it once its recordings are gone.
    sweep_stale(&index_dir, day);
    let mut published = Published::default();
    for (name, bytes) in [
        (brief_file_name(day), brief),
        (detailed_file_name(day), detailed),
    ] {
        let main = index_dir.join(&name);
        let copy = copy_dir.join(&name);
        if contains_exactly(&main, bytes) {
            published.unchanged.push(main.clone());
        } else {
            replace(&main, bytes)?;
            published.written.push(main.clone());
        }
        if same_file(&main, &copy) || contains_exactly(&copy, bytes) {
            published.unchanged.push(copy);
        } else {
            replace_with_link(&main, &copy, bytes)?;
            published.written.push(copy);
        }
    }
    sync_directory(&index_dir)?;
    sync_directory(&copy_dir)?;
    Ok(published)
}

/// Removes local `day`'s index files from `Index/` and its `S` directory. Returns the files
/// removed; files already gone are not an error.
pub(crate) fn remove_day(root: &Path, day: Date) -> Result<Vec<PathBuf>, IndexError> {
    let mut removed = Vec::new();
    for dir in [root.join(INDEX_DIR), root.join(day_directory(day))] {
        sweep_stale(&dir, day);
        let mut changed = false;
        for name in [brief_file_name(day), detailed_file_name(day)] {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {
                    changed = true;
                    removed.push(path);
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(IndexError::io("remove", &path)(err)),
            }
        }
        if changed {
            sync_directory(&dir)?;
        }
    }
    Ok(removed)
}

/// The local days that have a brief index file in `Index/`.
pub(crate) fn indexed_days(root: &Path) -> Result<std::collections::BTreeSet<Date>, IndexError> {
    let dir = root.join(INDEX_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(err) => return Err(IndexError::io("list", &dir)(err)),
    };
    let mut days = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(IndexError::io("list", &dir))?;
        if let Some(day) = entry
            .file_name()
            .to_str()
            .and_then(crate::day::parse_brief_file_name)
        {
            days.insert(day);
        }
    }
    Ok(days)
}

fn make_directory(path: &Path) -> Result<(), IndexError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(path)
        .map_err(IndexError::io("create directory", path))
}

/// Whether `path` holds exactly `bytes`. A file that is missing, or cannot be read (left by
/// another user, say), does not: it is replaced, which needs only the directory's write
/// permission.
fn contains_exactly(path: &Path, bytes: &[u8]) -> bool {
    let same_length = fs::metadata(path).is_ok_and(|meta| meta.len() == bytes.len() as u64);
    same_length && fs::read(path).is_ok_and(|existing| existing == bytes)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Writes `bytes` to a temporary file beside `target`, syncs it and renames it over `target`.
/// The caller syncs the directory.
fn replace(target: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let temporary = temporary_name(target);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let renamed = written.and_then(|()| fs::rename(&temporary, target));
    if let Err(err) = renamed {
        let _ = fs::remove_file(&temporary);
        return Err(IndexError::io("write", target)(err));
    }
    Ok(())
}

/// Makes `target` a second name of `source` (already synced), atomically; copies `bytes`
/// instead where the file system refuses the link.
fn replace_with_link(source: &Path, target: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let temporary = temporary_name(target);
    match fs::hard_link(source, &temporary) {
        Ok(()) => fs::rename(&temporary, target).map_err(|err| {
            let _ = fs::remove_file(&temporary);
            IndexError::io("write", target)(err)
        }),
        Err(_) => replace(target, bytes),
    }
}

/// `.<name>.<pid>.<n>.tmp` beside `target`: hidden, and unique to this writer, so that two
/// writers (the daemon and `tapline index`) never write into the same temporary file.
fn temporary_name(target: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("index");
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Removes temporary index files for local `day` in `dir` older than [`STALE_AFTER`]: only a
/// crash between writing and renaming leaves them.
fn sweep_stale(dir: &Path, day: Date) {
    let prefixes = [
        format!(".{}.", brief_file_name(day)),
        format!(".{}.", detailed_file_name(day)),
    ];
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let ours = prefixes.iter().any(|p| file_name.starts_with(p.as_str()));
        if !(ours && file_name.ends_with(".tmp")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| {
                now.duration_since(modified)
                    .is_ok_and(|age| age > STALE_AFTER)
            });
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A new or renamed name is durable only once its directory is synced.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(IndexError::io("sync", dir))
}
