//! Retention: recordings whose local tenant day is more than `storage.retention_days` before
//! today are removed, unless held (the call, or its whole day).
//!
//! Day by day, oldest first, and for each day:
//!
//! 1. under the removal guard (see `holds`), the day's unheld, finished recordings are read;
//! 2. their WAV and raw media files are deleted and the directories synced;
//! 3. their rows are deleted, with one audit row for the day, in one transaction;
//! 4. the day's index files are written again for what is left, or removed when nothing is.
//!
//! A crash at any point leaves a state the next run finishes: rows whose files are gone
//! (removed then, a missing file counted, not an error), or index files of a day with nothing
//! left (removed then). Nothing is removed that should stay: a file goes only while its row
//! says it is not held, and holds wait while a day is being removed. A file that cannot be
//! deleted keeps its row, to be tried again.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use tapline_audit::{Actor, Entry, events};
use tapline_runtime::CancellationToken;
use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection};

use crate::day::{DaySpan, iso_utc, local_day, parse_day_directory, parse_index_file_name};
use crate::publish::{remove_day, sync_directory};
use crate::{INDEX_DIR, IndexError, generate_day, holds, query};

/// Files deleted between two looks at the cancellation token.
const CANCEL_CHECK_EVERY: usize = 256;

/// The first local day kept when today is `today`: with `retention_days` of 0 (keep for
/// ever) none is removed, and `None` says so.
pub fn cutoff(today: Date, retention_days: u32) -> Option<Date> {
    if retention_days == 0 {
        return None;
    }
    // A span of more days than the calendar holds is refused, not panicked on.
    let span = jiff::Span::new().try_days(i64::from(retention_days)).ok()?;
    today.checked_sub(span).ok()
}

/// What one run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The first local day kept; `None` when recordings are kept for ever.
    pub cutoff: Option<Date>,
    /// Days recordings were removed from, oldest first.
    pub days: Vec<DayRemoved>,
    /// Expired days whose index files were written again for the held calls left.
    pub indexes_rewritten: Vec<Date>,
    /// Index files of expired days with nothing left.
    pub index_files_removed: Vec<PathBuf>,
    /// Empty `S` directories removed.
    pub directories_removed: Vec<PathBuf>,
    /// The run stopped early for shutdown; the next one finishes.
    pub interrupted: bool,
}

/// What was removed from one local day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayRemoved {
    pub day: Date,
    /// Rows removed.
    pub recordings: usize,
    /// WAV files deleted.
    pub wav_files: usize,
    pub raw_media_files: usize,
    /// Files of removed rows that were already gone (a crash in an earlier run, or lost).
    pub files_already_missing: usize,
    /// The recorded sizes of the recordings removed.
    pub bytes: u64,
    /// Calls of the day kept because each is held.
    pub held_kept: usize,
    /// Recordings kept because a file could not be deleted (logged; tried again next run).
    pub undeletable: usize,
}

/// Applies retention on local day `today` in `tz` to the database and the SFTP `root`.
/// Stops between days, and within a day between files, once `cancel` is cancelled.
pub fn apply_retention(
    store: &Store,
    root: &Path,
    tz: &TimeZone,
    retention_days: u32,
    today: Date,
    cancel: &CancellationToken,
) -> Result<RetentionReport, IndexError> {
    let Some(cutoff) = cutoff(today, retention_days) else {
        return Ok(RetentionReport::default());
    };
    let mut report = RetentionReport {
        cutoff: Some(cutoff),
        ..RetentionReport::default()
    };
    let kept_from = DaySpan::of(cutoff, tz)?.start;
    let context = Context {
        store,
        root,
        tz,
        retention_days,
    };

    let mut touched = BTreeSet::new();
    if let Some(oldest) = store.read(|conn| oldest_removable(conn, kept_from))? {
        let mut day = local_day(oldest, tz);
        while day < cutoff {
            if cancel.is_cancelled() {
                report.interrupted = true;
                return Ok(report);
            }
            if let Some(removed) = context.remove_day_recordings(day, cancel)? {
                touched.insert(day);
                report.days.push(removed);
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
    }
    if cancel.is_cancelled() {
        report.interrupted = true;
        return Ok(report);
    }
    context.settle_indexes(cutoff, &touched, &mut report)?;
    report.directories_removed = remove_empty_day_directories(root, cutoff);
    Ok(report)
}

/// The answer time of the oldest recording retention may remove, before `kept_from`.
fn oldest_removable(
    conn: &Connection,
    kept_from: Timestamp,
) -> rusqlite::Result<Option<Timestamp>> {
    let oldest: Option<String> = conn.query_row(
        "SELECT MIN(answered_at) FROM recordings
         WHERE answered_at < ?1 AND legal_hold = 0 AND status != 'recording'",
        [iso_utc(kept_from)],
        |row| row.get(0),
    )?;
    Ok(oldest.and_then(|text| text.parse().ok()))
}

struct Context<'a> {
    store: &'a Store,
    root: &'a Path,
    tz: &'a TimeZone,
    retention_days: u32,
}

/// A recording retention is about to remove.
struct Expired {
    id: i64,
    directory: String,
    file_name: String,
    raw_media_file: Option<String>,
    size_bytes: Option<i64>,
}

impl Context<'_> {
    /// Removes the unheld, finished recordings of local `day`; `None` when there are none.
    fn remove_day_recordings(
        &self,
        day: Date,
        cancel: &CancellationToken,
    ) -> Result<Option<DayRemoved>, IndexError> {
        let span = DaySpan::of(day, self.tz)?;
        // From here to the commit no hold can change (see `holds`).
        let _removal = holds::exclude_removal();
        let (held_day, expired, held_kept) = self.store.read(|conn| {
            Ok::<_, IndexError>((
                query::is_day_held(conn, day)?,
                expired_in(conn, &span)?,
                held_in(conn, &span)?,
            ))
        })?;
        if held_day || expired.is_empty() {
            return Ok(None);
        }
        let mut removed = DayRemoved {
            day,
            held_kept,
            ..DayRemoved::default()
        };
        let mut gone = Vec::with_capacity(expired.len());
        let mut directories = BTreeSet::new();
        for (n, recording) in expired.iter().enumerate() {
            if n % CANCEL_CHECK_EVERY == 0 && cancel.is_cancelled() {
                break;
            }
            directories.insert(self.root.join(&recording.directory));
            if self.delete_files(recording, &mut removed) {
                gone.push(recording);
            } else {
                removed.undeletable += 1;
            }
        }
        // The deletions must be on disk before the rows that name the files go: otherwise a
        // power cut could bring back files that nothing lists any more.
        for directory in &directories {
            sync_directory(directory)?;
        }
        removed.recordings = gone.len();
        removed.bytes = gone
            .iter()
            .filter_map(|r| u64::try_from(r.size_bytes?).ok())
            .sum();
        if gone.is_empty() {
            return Ok(Some(removed));
        }
        self.store.write(|tx| {
            let mut delete_row =
                tx.prepare_cached("DELETE FROM recordings WHERE id = ?1 AND legal_hold = 0")?;
            for recording in &gone {
                delete_row.execute([recording.id])?;
            }
            let day_text = day.to_string();
            let comment = format!(
                "{} recordings of {day} removed: older than {} days",
                removed.recordings, self.retention_days
            );
            tapline_audit::append(tx, &self.audit_entry(&removed, &day_text, &comment))?;
            Ok::<_, IndexError>(())
        })?;
        tracing::info!(
            day = %day,
            recordings = removed.recordings,
            raw_media_files = removed.raw_media_files,
            files_already_missing = removed.files_already_missing,
            bytes = removed.bytes,
            held_kept = removed.held_kept,
            undeletable = removed.undeletable,
            retention_days = self.retention_days,
            "recordings removed by retention"
        );
        Ok(Some(removed))
    }

    /// Deletes a recording's WAV and raw media files, counting them in `removed`. Returns
    /// whether its row may go: not when a file is still there, or when the row does not name
    /// a file of the recordings layout (a row the recorder did not write is left alone).
    fn delete_files(&self, recording: &Expired, removed: &mut DayRemoved) -> bool {
        let names_ok = parse_day_directory(&recording.directory).is_some()
            && is_plain_name(&recording.file_name)
            && recording
                .raw_media_file
                .as_deref()
                .is_none_or(is_plain_name);
        if !names_ok {
            tracing::error!(
                directory = recording.directory,
                file = recording.file_name,
                "a recording's row does not name a file of the recordings layout; kept"
            );
            return false;
        }
        let directory = self.root.join(&recording.directory);
        let wav = Some(delete(&directory.join(&recording.file_name)));
        let raw = (recording.raw_media_file.as_ref()).map(|name| delete(&directory.join(name)));
        let mut deletable = true;
        for (outcome, deleted) in [
            (wav, &mut removed.wav_files),
            (raw, &mut removed.raw_media_files),
        ] {
            match outcome {
                None => {}
                Some(Deleted::Yes) => *deleted += 1,
                Some(Deleted::AlreadyGone) => removed.files_already_missing += 1,
                Some(Deleted::Failed) => deletable = false,
            }
        }
        deletable
    }

    /// One audit row per day, by "system": the day is its object, the counts its params.
    fn audit_entry<'e>(&self, removed: &DayRemoved, day: &'e str, comment: &'e str) -> Entry<'e> {
        Actor::SYSTEM.entry(
            events::RECORDINGS,
            events::RETENTION_REMOVED,
            day,
            comment,
            serde_json::json!({
                "day": removed.day.to_string(),
                "retention_days": self.retention_days,
                "recordings": removed.recordings,
                "wav_files": removed.wav_files,
                "raw_media_files": removed.raw_media_files,
                "files_already_missing": removed.files_already_missing,
                "bytes": removed.bytes,
                "held_kept": removed.held_kept,
                "undeletable": removed.undeletable,
            }),
        )
    }

    /// Brings the index files of expired days in line with what is left: written again where
    /// held calls remain, removed where nothing does. Held days are left as they are.
    fn settle_indexes(
        &self,
        cutoff: Date,
        touched: &BTreeSet<Date>,
        report: &mut RetentionReport,
    ) -> Result<(), IndexError> {
        let mut days = expired_index_days(self.root, cutoff)?;
        days.extend(touched);
        for day in days {
            let span = DaySpan::of(day, self.tz)?;
            let (held_day, any_left) = self.store.read(|conn| {
                Ok::<_, IndexError>((
                    query::is_day_held(conn, day)?,
                    query::any_answered_in(conn, &span)?,
                ))
            })?;
            if held_day {
                continue;
            }
            if any_left {
                let written = generate_day(self.store, self.root, self.tz, day)?;
                if !written.written.is_empty() {
                    report.indexes_rewritten.push(day);
                }
            } else {
                let removed = remove_day(self.root, day)?;
                if !removed.is_empty() {
                    tracing::info!(
                        day = %day,
                        files = removed.len(),
                        "index files of an expired day removed"
                    );
                }
                report.index_files_removed.extend(removed);
            }
        }
        Ok(())
    }
}

/// The unheld, finished recordings answered within `span`.
fn expired_in(conn: &Connection, span: &DaySpan) -> rusqlite::Result<Vec<Expired>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, directory, file_name, raw_media_file, size_bytes FROM recordings
         WHERE answered_at >= ?1 AND answered_at < ?2
           AND legal_hold = 0 AND status != 'recording'
         ORDER BY answered_at, file_name",
    )?;
    let rows = statement.query_map((iso_utc(span.start), iso_utc(span.end)), |row| {
        Ok(Expired {
            id: row.get(0)?,
            directory: row.get(1)?,
            file_name: row.get(2)?,
            raw_media_file: row.get(3)?,
            size_bytes: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// How many recordings answered within `span` are held one by one.
fn held_in(conn: &Connection, span: &DaySpan) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM recordings
         WHERE answered_at >= ?1 AND answered_at < ?2 AND legal_hold = 1",
    )?
    .query_row((iso_utc(span.start), iso_utc(span.end)), |row| {
        row.get::<_, i64>(0)
    })
    .map(|n| usize::try_from(n).unwrap_or(0))
}

/// A file name with no directory in it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

enum Deleted {
    Yes,
    AlreadyGone,
    Failed,
}

fn delete(path: &Path) -> Deleted {
    match fs::remove_file(path) {
        Ok(()) => Deleted::Yes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Deleted::AlreadyGone,
        Err(err) => {
            tracing::error!(
                file = %path.display(),
                error = %err,
                "retention cannot delete a recording's file; it is kept with its row"
            );
            Deleted::Failed
        }
    }
}

/// The local days before `cutoff` with an index file in `Index/`.
fn expired_index_days(root: &Path, cutoff: Date) -> Result<BTreeSet<Date>, IndexError> {
    let dir = root.join(INDEX_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(err) => return Err(IndexError::io("list", &dir)(err)),
    };
    let mut days = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(IndexError::io("list", &dir))?;
        if let Some(day) = entry.file_name().to_str().and_then(parse_index_file_name)
            && day < cutoff
        {
            days.insert(day);
        }
    }
    Ok(days)
}

/// Removes the empty `S` directories dated before `cutoff`. The recorder writes only into
/// the directory of the current UTC day, never that old, so none is removed under it.
fn remove_empty_day_directories(root: &Path, cutoff: Date) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let expired = entry
            .file_name()
            .to_str()
            .and_then(parse_day_directory)
            .is_some_and(|day| day < cutoff);
        // remove_dir refuses a directory that is not empty, which is the check.
        if expired && fs::remove_dir(entry.path()).is_ok() {
            tracing::info!(directory = %entry.path().display(), "empty day directory removed");
            removed.push(entry.path());
        }
    }
    if !removed.is_empty()
        && let Err(err) = sync_directory(root)
    {
        tracing::warn!(
            error = %tapline_runtime::supervisor::error_chain(&err),
            "cannot sync the recordings directory"
        );
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    #[test]
    fn the_cutoff_is_the_first_day_kept() {
        let today = date(2026, 3, 10);
        assert_eq!(cutoff(today, 0), None);
        // Kept for one day after its own: the 8th goes on the 10th, the 9th stays.
        assert_eq!(cutoff(today, 1), Some(date(2026, 3, 9)));
        assert_eq!(cutoff(today, 30), Some(date(2026, 2, 8)));
        // Beyond the calendar's range nothing can be that old.
        assert_eq!(cutoff(today, u32::MAX), None);
    }
}
