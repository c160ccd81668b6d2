//! File metadata as SFTP shows it: protocol attributes, and the `ls -l` line clients print.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::jail::Metadata;
use crate::protocol::Attrs;

/// OpenSSH's rule for `ls -l` dates: a time within the last six months shows the time of
/// day, anything else the year.
const SIX_MONTHS_SECONDS: i64 = 182 * 24 * 3600;

pub(crate) fn attrs(metadata: &Metadata) -> Attrs {
    Attrs {
        size: Some(metadata.size),
        owner: Some((metadata.uid, metadata.gid)),
        permissions: Some(metadata.mode),
        times: Some((seconds32(metadata.accessed), seconds32(metadata.modified))),
    }
}

/// `-rw-r-----   1 998      998       1048620 Nov 21 14:03 R202611211403120001.wav`, as
/// OpenSSH's server formats it (numeric owners: the appliance's user names mean nothing to a
/// client). Times are UTC, like the names of the recordings.
pub(crate) fn longname(name: &[u8], metadata: &Metadata, now: Timestamp) -> Vec<u8> {
    let date = match Timestamp::from_second(metadata.modified) {
        Ok(modified) => {
            let age = now.as_second() - metadata.modified;
            let zoned = modified.to_zoned(TimeZone::UTC);
            if (0..SIX_MONTHS_SECONDS).contains(&age) {
                zoned.strftime("%b %e %H:%M").to_string()
            } else {
                zoned.strftime("%b %e  %Y").to_string()
            }
        }
        Err(_) => "Jan  1  1970".to_owned(),
    };
    let mut line = format!(
        "{} {:>3} {:<8} {:<8} {:>8} {date} ",
        mode_string(metadata.mode),
        metadata.links,
        metadata.uid,
        metadata.gid,
        metadata.size,
    )
    .into_bytes();
    line.extend_from_slice(name);
    line
}

/// `drwxr-x---` and friends, set-id and sticky bits included.
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |exec: bool, set: bool, on: char, off: char| match (exec, set) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        kind,
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'),
    ]
    .into_iter()
    .collect()
}

/// Version 3 carries 32-bit times; before 1970 or after 2106 is shown as the nearest end.
fn seconds32(seconds: i64) -> u32 {
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(mode: u32, modified: i64) -> Metadata {
        Metadata {
            mode,
            size: 1_048_620,
            uid: 998,
            gid: 998,
            links: 1,
            accessed: modified,
            modified,
        }
    }

    #[test]
    fn long_names_read_like_ls() {
        let now: Timestamp = "2026-11-21T15:00:00Z".parse().unwrap();
        let recent = "2026-11-21T14:03:12Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        let old = "2025-01-02T08:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        let check = |mode, modified, expected: &str| {
            let line = longname(b"R.wav", &metadata(mode, modified), now);
            assert_eq!(String::from_utf8(line).unwrap(), expected);
        };
        check(
            0o100640,
            recent,
            "-rw-r-----   1 998      998       1048620 Nov 21 14:03 R.wav",
        );
        check(
            0o040750,
            old,
            "drwxr-x---   1 998      998       1048620 Jan  2  2025 R.wav",
        );
        check(
            0o120777,
            recent + 3600,
            "lrwxrwxrwx   1 998      998       1048620 Nov 21  2026 R.wav",
        );
        check(
            0o106744,
            recent,
            "-rwsr-Sr--   1 998      998       1048620 Nov 21 14:03 R.wav",
        );
        check(
            0o041777,
            recent,
            "drwxrwxrwt   1 998      998       1048620 Nov 21 14:03 R.wav",
        );
    }

    #[test]
    fn attributes_carry_the_whole_mode_and_clamped_times() {
        let a = attrs(&metadata(0o100640, -5));
        assert_eq!(a.permissions, Some(0o100640));
        assert_eq!(a.times, Some((0, 0)));
        assert_eq!(
            attrs(&metadata(0, 1 << 40)).times,
            Some((u32::MAX, u32::MAX))
        );
    }
}
