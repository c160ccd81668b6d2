//! The cheap check of each recording's file: is it there, is it the size its row says, does
//! its WAV header read, is its raw media file beside it?
//!
//! Cheap because a day can hold a hundred thousand calls and its index must be written in
//! seconds: one `open`, two `lseek`s and one `read` a file, never the whole file. The SHA-256
//! in the index is the one the recorder stored when the file was complete; an auditor who
//! doubts a file hashes it again.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use tapline_media::wav;

use crate::query::{Recording, Status};

/// What the check found, written to the detailed index's STATUS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileStatus {
    Ok,
    /// The recording failed (its row says so); its file is not looked at.
    Failed,
    Missing,
    /// There, but it cannot be opened or read (permissions, I/O error).
    Unreadable,
    /// Its length is not the `size_bytes` of its row.
    SizeDiffers {
        on_disk: u64,
    },
    /// Not a WAV file the recorder writes, or its header declares more audio than it holds.
    HeaderUnreadable,
    /// The row names a raw media file that is not there.
    RawMediaMissing,
}

impl FileStatus {
    /// The STATUS cell: short and fixed, so a spreadsheet filters on it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileStatus::Ok => "ok",
            FileStatus::Failed => "failed",
            FileStatus::Missing => "file missing",
            FileStatus::Unreadable => "file unreadable",
            FileStatus::SizeDiffers { .. } => "size differs",
            FileStatus::HeaderUnreadable => "wav header unreadable",
            FileStatus::RawMediaMissing => "raw media file missing",
        }
    }

    /// A problem with the files of a recording that should be whole.
    pub(crate) fn is_problem(self) -> bool {
        !matches!(self, FileStatus::Ok | FileStatus::Failed)
    }
}

/// The check of one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileCheck {
    pub status: FileStatus,
    /// The audio's length by its header, when the header reads: the stop time of a
    /// recording recovered after a crash, whose row has none.
    pub audio: Option<Duration>,
}

/// Checks every recording's files, on all cores: most of the time goes into system calls.
pub(crate) fn check_all(root: &Path, recordings: &[&Recording]) -> Vec<FileCheck> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = recordings.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = recordings
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|r| check(root, r)).collect()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| -> Vec<FileCheck> {
                // `check` returns a value for every outcome it meets; a panic there is a bug
                // that must not be hidden as a missing line of the index.
                worker.join().expect("a file check does not panic")
            })
            .collect()
    })
}

/// Checks one recording's files under the SFTP `root`.
pub(crate) fn check(root: &Path, recording: &Recording) -> FileCheck {
    let status_only = |status| FileCheck {
        status,
        audio: None,
    };
    if recording.status == Status::Failed {
        return status_only(FileStatus::Failed);
    }
    let directory = root.join(&recording.directory);
    let file = match File::open(directory.join(&recording.file_name)) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return status_only(FileStatus::Missing);
        }
        Err(_) => return status_only(FileStatus::Unreadable),
    };
    // Our headers are 44 to 58 bytes: one read takes them whole.
    let mut reader = BufReader::with_capacity(128, file);
    let Ok(on_disk) = reader.seek(SeekFrom::End(0)) else {
        return status_only(FileStatus::Unreadable);
    };
    if let Some(recorded) = recording.size_bytes
        && u64::try_from(recorded).ok() != Some(on_disk)
    {
        return status_only(FileStatus::SizeDiffers { on_disk });
    }
    let Ok(info) = wav::read_info(&mut reader) else {
        return status_only(FileStatus::HeaderUnreadable);
    };
    let audio = Some(audio_length(info.frames, info.spec.sample_rate));
    if let Some(raw) = &recording.raw_media_file
        && !directory.join(raw).exists()
    {
        return FileCheck {
            status: FileStatus::RawMediaMissing,
            audio,
        };
    }
    FileCheck {
        status: FileStatus::Ok,
        audio,
    }
}

fn audio_length(frames: u64, sample_rate: u32) -> Duration {
    if sample_rate == 0 {
        return Duration::ZERO;
    }
    let rate = u64::from(sample_rate);
    let nanos = u128::from(frames % rate) * 1_000_000_000 / u128::from(rate);
    // Below one second's worth of frames, so below 10^9.
    Duration::new(frames / rate, u32::try_from(nanos).unwrap_or(0))
}
