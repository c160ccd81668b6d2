//! Free space on the recordings' file system, and when it is too little to start recording.
//!
//! Two lines of defence keep a full disk from costing audio that was already captured:
//!
//! 1. **The low-water mark** (the normal path). About once a second the recorder measures the
//!    file system with `statvfs`; below [`SpacePolicy::low_water`] it stops *starting*
//!    recordings, while the calls being recorded carry on into the space that is left. A
//!    disk therefore rarely fills in the middle of a call, and the database (which lives in
//!    the same data directory) keeps room for the rows that say which calls were missed.
//! 2. **`ENOSPC` / `EDQUOT`** (the backstop): when a write, a file creation or a sync fails
//!    because the disk or the quota is full, the recorder enters the same state at once and
//!    finalises every open recording with what reached the disk.
//!
//! The state is left only when the free space is back above [`SpacePolicy::resume`], higher
//! than the low-water mark: retention or an operator frees space in steps, and without the
//! gap a disk hovering at the mark would flip between recording and refusing every second,
//! with an alarm and a recovery in the logs each time.
//!
//! `statvfs` cannot see a user quota, so after `EDQUOT` the state ends at the first measure
//! that shows room on the file system (though never sooner than one sync interval after it
//! began, so the alarm is seen); the next recording then meets the quota again and re-enters
//! it. That costs a log line per attempt, not per packet.

use std::io;
use std::path::Path;

/// The low-water mark is at least this much free space: room for a few seconds of every
/// call of a busy appliance (a stereo 16-bit 8 kHz call writes 32 kB/s) and for the database
/// to record the calls it misses while the disk is full.
pub const LOW_WATER_MIN_BYTES: u64 = 64 << 20;

/// ... or this share of the file system, in per cent, if that is more: ext4 and XFS slow down
/// and fragment when nearly full, and a bigger disk usually serves more calls at once.
pub const LOW_WATER_PERCENT: u64 = 1;

/// ... but never more than this: 1 GiB is half a minute of a thousand calls, time enough for
/// the alarm to be seen, and on a disk of many terabytes a whole per cent would be tens of
/// gigabytes, hours of recordings, left unused.
pub const LOW_WATER_MAX_BYTES: u64 = 1 << 30;

/// Free inodes below which new recordings are refused (each recording is one or two files,
/// plus a directory a day): running out of inodes is `ENOSPC` on creation like running out of
/// blocks. File systems that allocate inodes on demand (btrfs) report none and are not checked.
pub const LOW_WATER_INODES: u64 = 1_000;

/// What `statvfs` says about the recordings' file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged writer may still use (`f_bavail`: ext4's reserved blocks are not
    /// counted; the daemon must not depend on them).
    pub available: u64,
    /// Size of the file system in bytes.
    pub total: u64,
    /// Free inodes, when the file system has a fixed number of them.
    pub available_inodes: Option<u64>,
}

impl FreeSpace {
    /// Measures the file system that holds `path`, or would hold it: the recordings'
    /// directory is created with the first recording, so until then its nearest existing
    /// ancestor is measured.
    pub fn of(path: &Path) -> io::Result<FreeSpace> {
        let mut at = path;
        let stat = loop {
            match rustix::fs::statvfs(at) {
                Ok(stat) => break stat,
                Err(rustix::io::Errno::NOENT) => match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                    _ => return Err(rustix::io::Errno::NOENT.into()),
                },
                Err(err) => return Err(err.into()),
            }
        };
        Ok(FreeSpace {
            available: stat.f_bavail.saturating_mul(stat.f_frsize),
            total: stat.f_blocks.saturating_mul(stat.f_frsize),
            available_inodes: (stat.f_files > 0).then_some(stat.f_favail),
        })
    }
}

/// When recording stops and starts again, by free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpacePolicy {
    /// New recordings are refused while fewer bytes than this are free.
    pub low_water: u64,
    /// Once refusing, recording resumes when at least this many bytes are free (and the
    /// inodes are above [`LOW_WATER_INODES`] twice over). Not below `low_water`.
    pub resume: u64,
}

impl SpacePolicy {
    /// The policy for a file system of `total` bytes: the low-water mark is
    /// [`LOW_WATER_PERCENT`] of the disk, within [`LOW_WATER_MIN_BYTES`] and
    /// [`LOW_WATER_MAX_BYTES`], and recording resumes at twice that, so the state changes
    /// only after a low-water mark's worth of space has been freed.
    pub fn for_file_system(total: u64) -> SpacePolicy {
        let low_water =
            (total / 100 * LOW_WATER_PERCENT).clamp(LOW_WATER_MIN_BYTES, LOW_WATER_MAX_BYTES);
        SpacePolicy {
            low_water,
            resume: low_water.saturating_mul(2),
        }
    }

    /// Whether new recordings are to be refused, given the free space just measured and
    /// whether they are refused now (the hysteresis between `low_water` and `resume`).
    pub fn refuse(&self, refusing: bool, space: &FreeSpace) -> bool {
        let (bytes, inodes) = if refusing {
            (self.resume.max(self.low_water), LOW_WATER_INODES * 2)
        } else {
            (self.low_water, LOW_WATER_INODES)
        };
        space.available < bytes || space.available_inodes.is_some_and(|free| free < inodes)
    }
}

/// Whether an error, or any error it was caused by, is the disk or the quota being full.
pub fn is_disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn space(available: u64) -> FreeSpace {
        FreeSpace {
            available,
            total: 100 * GIB,
            available_inodes: Some(1_000_000),
        }
    }

    #[test]
    fn the_low_water_mark_is_one_per_cent_within_64_mib_and_1_gib() {
        assert_eq!(
            SpacePolicy::for_file_system(2 * GIB),
            SpacePolicy {
                low_water: 64 * MIB,
                resume: 128 * MIB
            }
        );
        let policy = SpacePolicy::for_file_system(50 * GIB);
        assert_eq!(policy.low_water, GIB / 2);
        assert_eq!(policy.resume, GIB);
        assert_eq!(SpacePolicy::for_file_system(1000 * GIB).low_water, GIB);
        assert_eq!(SpacePolicy::for_file_system(1000 * GIB).resume, 2 * GIB);
        // A file system smaller than the mark can never record; nothing overflows.
        assert_eq!(SpacePolicy::for_file_system(0).low_water, 64 * MIB);
        assert_eq!(SpacePolicy::for_file_system(u64::MAX).low_water, GIB);
    }

    #[test]
    fn recording_stops_below_the_low_water_mark_and_resumes_above_the_resume_mark() {
        let policy = SpacePolicy::for_file_system(2 * GIB);
        // Recording: refused only below the low-water mark.
        assert!(!policy.refuse(false, &space(64 * MIB)));
        assert!(policy.refuse(false, &space(64 * MIB - 1)));
        assert!(policy.refuse(false, &space(0)));
        // Refusing: between the marks it stays refused; at the resume mark it records again.
        assert!(policy.refuse(true, &space(64 * MIB)));
        assert!(policy.refuse(true, &space(128 * MIB - 1)));
        assert!(!policy.refuse(true, &space(128 * MIB)));
        assert!(!policy.refuse(true, &space(50 * GIB)));
    }

    #[test]
    fn a_resume_mark_below_the_low_water_mark_means_the_low_water_mark() {
        let policy = SpacePolicy {
            low_water: 10 * MIB,
            resume: MIB,
        };
        assert!(policy.refuse(true, &space(5 * MIB)));
        assert!(!policy.refuse(true, &space(10 * MIB)));
    }

    #[test]
    fn running_out_of_inodes_counts_as_full() {
        let policy = SpacePolicy::for_file_system(2 * GIB);
        let few_inodes = |free| FreeSpace {
            available_inodes: Some(free),
            ..space(GIB)
        };
        assert!(!policy.refuse(false, &few_inodes(LOW_WATER_INODES)));
        assert!(policy.refuse(false, &few_inodes(LOW_WATER_INODES - 1)));
        assert!(policy.refuse(true, &few_inodes(2 * LOW_WATER_INODES - 1)));
        assert!(!policy.refuse(true, &few_inodes(2 * LOW_WATER_INODES)));
        let dynamic = FreeSpace {
            available_inodes: None,
            ..space(GIB)
        };
        assert!(!policy.refuse(false, &dynamic), "no fixed inode count");
    }

    #[test]
    fn enospc_and_edquot_are_disk_full_wherever_they_are_in_the_chain() {
        let enospc = io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let edquot = io::Error::from_raw_os_error(rustix::io::Errno::DQUOT.raw_os_error());
        let eio = io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        assert!(is_disk_full(&enospc));
        assert!(is_disk_full(&edquot));
        assert!(!is_disk_full(&eio));
        let wrapped = tapline_media::wav::WavError::Io(enospc);
        assert!(is_disk_full(&wrapped));
        assert!(!is_disk_full(&tapline_media::wav::WavError::Poisoned));
    }

    #[test]
    fn a_directory_not_created_yet_is_measured_on_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("recordings").join("S20261121");
        let space = FreeSpace::of(&missing).unwrap();
        assert!(space.total > 0);
        assert_eq!(space.total, FreeSpace::of(dir.path()).unwrap().total);
    }
}
