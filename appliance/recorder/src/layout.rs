//! Where a recording lives, and the UTC times it is named and stamped with.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Calls answered in one second are told apart by a four-digit sequence.
const MAX_PER_SECOND: u32 = 10_000;

fn timestamp(since_epoch: Duration) -> Timestamp {
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    Timestamp::new(seconds, since_epoch.subsec_nanos() as i32).unwrap_or(Timestamp::MAX)
}

/// `Syyyymmdd` for the UTC day of `at`.
pub fn day_directory(at: Duration) -> String {
    timestamp(at)
        .to_zoned(TimeZone::UTC)
        .strftime("S%Y%m%d")
        .to_string()
}

/// `Ryyyymmddhhmmssssss.wav`: the UTC second of `at` and a four-digit `sequence`.
pub fn file_name(at: Duration, sequence: u32) -> String {
    let second = timestamp(at)
        .to_zoned(TimeZone::UTC)
        .strftime("R%Y%m%d%H%M%S")
        .to_string();
    format!("{second}{sequence:04}.wav")
}

/// ISO 8601 in UTC with microseconds, the form rows store times in.
pub(crate) fn iso_utc(at: Duration) -> String {
    tapline_store::utc_text(timestamp(at))
}

/// Remembers the next free sequence of the latest second, so that a thousand calls answered
/// in one second cost a thousand file creations rather than half a million attempts.
#[derive(Debug, Default)]
pub(crate) struct Sequences {
    second: u64,
    next: u32,
}

impl Sequences {
    /// Creates the first free file name for a call answered at `at`. `create_new` makes the
    /// choice atomic: two calls in the same second, or a restart, can never share a file.
    pub(crate) fn create_unique(
        &mut self,
        dir: &Path,
        at: Duration,
    ) -> std::io::Result<(String, File)> {
        let first = if self.second == at.as_secs() {
            self.next
        } else {
            0
        };
        for sequence in first..MAX_PER_SECOND {
            let name = file_name(at, sequence);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(dir.join(&name))
            {
                Ok(file) => {
                    (self.second, self.next) = (at.as_secs(), sequence + 1);
                    return Ok((name, file));
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(err),
            }
        }
        Err(std::io::Error::other(
            "more than 10,000 calls answered in one second",
        ))
    }
}

/// A new file's name is durable only once its directory is synced.
pub(crate) fn sync_directory(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_daily_layout_in_utc() {
        // 2026-11-21 23:59:59.5 UTC.
        let at = Duration::from_millis(1_795_305_599_500);
        assert_eq!(day_directory(at), "S20261121");
        assert_eq!(file_name(at, 0), "R202611212359590000.wav");
        assert_eq!(file_name(at, 42), "R202611212359590042.wav");
        assert_eq!(iso_utc(at), "2026-11-21T23:59:59.500000Z");
    }

    #[test]
    fn calls_in_the_same_second_get_the_next_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let at = Duration::from_secs(1_795_305_599);
        let mut sequences = Sequences::default();
        let names: Vec<String> = (0..3)
            .map(|_| sequences.create_unique(dir.path(), at).unwrap().0)
            .collect();
        assert_eq!(
            names,
            [
                "R202611212359590000.wav",
                "R202611212359590001.wav",
                "R202611212359590002.wav"
            ]
        );
    }
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn files_left_by_an_earlier_run_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let at = Duration::from_secs(1_795_305_599);
        std::fs::write(dir.path().join(file_name(at, 0)), b"").unwrap();
        std::fs::write(dir.path().join(file_name(at, 1)), b"").unwrap();
        let (name, _) = Sequences::default().create_unique(dir.path(), at).unwrap();
        assert_eq!(name, "R202611212359590002.wav");
    }
}
