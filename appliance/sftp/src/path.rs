//! Paths as clients see them: absolute within the recordings root, `/` being the root.
//!
//! A client's path is normalised here, without touching the file system: `.` and empty
//! components dropped, `..` taking one component off (never above the root), relative paths
//! taken from the root, which is every session's working directory. The result names the
//! same place for the client and for [`crate::jail::Jail`], which resolves it in the kernel
//! with `RESOLVE_IN_ROOT`, so that symbolic links cannot lead out either.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// As Linux's `PATH_MAX`: the kernel would refuse anything longer anyway.
pub const MAX_PATH_LEN: usize = 4096;

/// A normalised path inside the jail.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct JailPath {
    /// Components joined by `/`, without a leading one; empty for the root.
    relative: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

impl JailPath {
    pub fn root() -> JailPath {
        JailPath::default()
    }

    /// Normalises a path sent by a client.
    pub fn parse(raw: &[u8]) -> Result<JailPath, PathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut components: Vec<&[u8]> = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    components.pop();
                }
                name => components.push(name),
            }
        }
        Ok(JailPath {
            relative: components.join(&b'/'),
        })
    }

    pub fn is_root(&self) -> bool {
        self.relative.is_empty()
    }

    /// The path for `openat2` beneath the root's descriptor: `.` for the root itself.
    pub fn for_kernel(&self) -> &OsStr {
        if self.is_root() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(&self.relative)
        }
    }

    /// The path as the client is shown it: `/S20261121/R….wav`.
    pub fn to_client(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.relative.len() + 1);
        out.push(b'/');
        out.extend_from_slice(&self.relative);
        out
    }

    /// The last component, or `/` for the root.
    pub fn file_name(&self) -> &[u8] {
        match self.relative.iter().rposition(|&b| b == b'/') {
            Some(slash) => &self.relative[slash + 1..],
            None if self.is_root() => b"/",
            None => &self.relative,
        }
    }
}

/// The client's form, lossily as UTF-8: what logs and the audit log show.
impl fmt::Display for JailPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.relative))
    }
}

impl fmt::Debug for JailPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JailPath({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: &str) {
        let path = JailPath::parse(raw.as_bytes()).expect(raw);
        assert_eq!(path.to_string(), expected, "{raw:?}");
        assert_eq!(path.to_client(), expected.as_bytes());
    }

    #[test]
    fn paths_normalise_inside_the_root() {
        check("", "/");
        check(".", "/");
        check("/", "/");
        check("//S20261121///R1.wav", "/S20261121/R1.wav");
        check("S20261121", "/S20261121");
        check("./S20261121/.", "/S20261121");
        check("..", "/");
        check("../../etc/passwd", "/etc/passwd");
        check("/S20261121/../../..", "/");
        check("Index/../S1/./R.wav/", "/S1/R.wav");
        check("a/b/../../c", "/c");
        check("...", "/...");
        check("~", "/~");
    }

    #[test]
    fn the_kernel_gets_relative_paths() {
        assert_eq!(JailPath::root().for_kernel(), ".");
        let path = JailPath::parse(b"/../S1/R.wav").unwrap();
        assert_eq!(path.for_kernel(), "S1/R.wav");
        assert_eq!(path.file_name(), b"R.wav");
        assert_eq!(JailPath::parse(b"/S1").unwrap().file_name(), b"S1");
        assert_eq!(JailPath::root().file_name(), b"/");
    }

    #[test]
    fn nul_and_overlong_paths_are_refused() {
        assert_eq!(JailPath::parse(b"a\0b"), Err(PathError::Nul));
        assert_eq!(
            JailPath::parse(&vec![b'a'; MAX_PATH_LEN + 1]),
            Err(PathError::TooLong)
        );
        assert!(JailPath::parse(&vec![b'a'; MAX_PATH_LEN]).is_ok());
    }

    #[test]
    fn non_utf8_names_survive_for_the_kernel() {
        let path = JailPath::parse(b"/S1/\xff.wav").unwrap();
        assert_eq!(path.for_kernel().as_bytes(), b"S1/\xff.wav");
        assert_eq!(path.to_string(), "/S1/\u{fffd}.wav");
    }
}
