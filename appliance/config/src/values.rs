//! How each kind of value is parsed. Every function returns the reason a value is unusable as
//! a sentence fragment that follows "key `x` = value: ".

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Secret, TurnUser};

/// An inclusive range of UDP ports, written `"first-last"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

pub(crate) fn recording_format(s: &str) -> Result<crate::RecordingFormat, String> {
    match s {
        "pcm16" => Ok(crate::RecordingFormat::Pcm16),
        "mulaw" => Ok(crate::RecordingFormat::MuLaw),
        "alaw" => Ok(crate::RecordingFormat::ALaw),
        _ => Err(
            "expected \"pcm16\" (16-bit linear), \"mulaw\" or \"alaw\" (G.711, half the size)"
                .to_owned(),
        ),
    }
}

pub(crate) fn percentage(n: i64) -> Result<u8, String> {
    u8::try_from(n)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| "expected a percentage from 0 to 100".to_owned())
}

/// A whole number from `min` to `max`, both included.
pub(crate) fn whole_number(n: i64, min: u32, max: u32) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("expected a whole number from {min} to {max}"))
}

/// A SIP header name (RFC 3261 token characters).
pub(crate) fn header_name(s: &str) -> Result<String, String> {
    let token = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c));
    if token {
        Ok(s.to_owned())
    } else {
        Err("not a SIP header name (letters, digits and -.!%*_+`'~)".to_owned())
    }
}

pub(crate) fn tenant_name(s: &str) -> Result<String, String> {
    let well_formed = (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if well_formed {
        Ok(s.to_owned())
    } else {
        Err(
            "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit \
             (it is also the SFTP login name)"
                .to_owned(),
        )
    }
}

/// An IANA time-zone name, looked up in the system's time-zone database.
pub(crate) fn time_zone(s: &str) -> Result<(String, jiff::tz::TimeZone), String> {
    jiff::tz::TimeZone::get(s)
        .map(|tz| (s.to_owned(), tz))
        .map_err(|_| {
            "not a known IANA time zone name (for example \"UTC\", \"Europe/London\" or \
         \"America/Los_Angeles\")"
                .to_owned()
        })
}

/// A directory path; relative paths are taken relative to `base_dir`.
pub(crate) fn directory(s: &str, base_dir: &Path) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(base_dir.join(s))
}

/// A file path; relative paths are taken relative to `base_dir`. Whether it can be read is
/// checked with the environment ([`readable_file`]).
pub(crate) fn file(s: &str, base_dir: &Path) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(base_dir.join(s))
}

/// A file that must exist now (it is read, never written).
pub(crate) fn readable_file(path: &Path) -> Result<(), String> {
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(err) => Err(format!("cannot open {}: {err}", path.display())),
    }
}

/// A Linux network interface name, as the kernel accepts it.
pub(crate) fn interface_name(s: &str) -> Result<String, String> {
    const IFNAMSIZ: usize = 16;
    let well_formed = !s.is_empty()
        && s.len() < IFNAMSIZ
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(s.to_owned())
    } else {
        Err("not a network interface name (1 to 15 characters, no '/', ':' or spaces)".to_owned())
    }
}

pub(crate) fn distinct(names: &[String]) -> Result<(), String> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!("lists interface \"{name}\" twice"));
        }
    }
    Ok(())
}

pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        "expected an IP address and port such as \"0.0.0.0:443\" or \"[::]:443\" \
         (port 0 picks a free port)"
            .to_owned()
    })
}

pub(crate) fn port_range(s: &str) -> Result<PortRange, String> {
    let shape = || "expected two ports such as \"49152-65535\"".to_owned();
    let (first, last) = s.split_once('-').ok_or_else(shape)?;
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "\"{}\" is not a port number from 1 to 65535",
                p.trim()
            )),
            Ok(port) => Ok(port),
        }
    };
    let (first, last) = (port(first)?, port(last)?);
    if first > last {
        return Err(format!("the range is upside down: {first} is above {last}"));
    }
    Ok(PortRange { first, last })
}

/// Can this process use `dir` as its data directory, creating it if needed?
pub(crate) fn usable_directory(dir: &Path) -> Result<(), String> {
    use rustix::fs::{Access, access};
    let needed = Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK;
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err("exists but is not a directory".to_owned()),
        Ok(_) => access(dir, needed).map_err(|err| {
            format!(
                "is not readable and writable by this user: {}",
                std::io::Error::from(err)
            )
        }),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            // It will be created at start: the nearest existing ancestor must allow that.
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| std::fs::symlink_metadata(a).is_ok())
                .unwrap_or(Path::new("/"));
            match std::fs::metadata(ancestor) {
                Ok(meta) if meta.is_dir() => access(ancestor, needed).map_err(|err| {
                    format!(
                        "does not exist and cannot be created: {} is not writable: {}",
                        ancestor.display(),
                        std::io::Error::from(err)
                    )
                }),
                _ => Err(format!(
                    "does not exist and cannot be created: {} is not a directory",
                    ancestor.display()
                )),
            }
        }
        Err(err) => Err(format!("cannot be examined: {err}")),
    }
}

/// A TURN realm: printable ASCII without quotes or backslashes (it travels in a quoted string),
/// 1 to 127 characters (RFC 8489 section 14.9).
pub(crate) fn turn_realm(s: &str) -> Result<String, String> {
    let ok = (1..=127).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("must be 1 to 127 printable ASCII characters without quotes or backslashes".to_owned())
    }
}

/// The TURN REST API shared secret: long enough not to be guessed.
pub(crate) fn turn_secret(s: &str) -> Result<Secret, String> {
    if s.chars().count() < 16 {
        return Err("must be at least 16 characters (the value is not shown)".to_owned());
    }
    Ok(Secret::new(s.to_owned()))
}

/// A static TURN user, `name:password`.
pub(crate) fn turn_user(s: &str) -> Result<TurnUser, String> {
    let Some((name, password)) = s.split_once(':') else {
        return Err("expected \"name:password\" (the value is not shown)".to_owned());
    };
    let name_ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !name_ok {
        return Err(
            "the name before ':' must be 1 to 64 letters, digits, '.', '_', '-' or '@'".to_owned(),
        );
    }
    if password.chars().count() < 12 {
        return Err(format!(
            "the password of \"{name}\" must be at least 12 characters"
        ));
    }
    Ok(TurnUser {
        name: name.to_owned(),
        password: Secret::new(password.to_owned()),
    })
}

/// A network in CIDR form, such as `10.0.0.0/8` or `fd00::/8`.
pub(crate) fn network(s: &str) -> Result<tapline_turn::Network, String> {
    use tapline_turn::policy::NetworkError;
    s.parse().map_err(|err: NetworkError| match err {
        NetworkError::HostBits(..) => err.to_string(),
        _ => format!("{err}: expected a network such as \"10.0.0.0/8\" or \"fd00::/8\""),
    })
}

/// The first user name given twice (names ignore case), if any.
pub(crate) fn repeated_turn_user(users: &[TurnUser]) -> Option<&str> {
    users.iter().enumerate().find_map(|(i, user)| {
        users[..i]
            .iter()
            .any(|earlier| earlier.name.eq_ignore_ascii_case(&user.name))
            .then_some(user.name.as_str())
    })
}
