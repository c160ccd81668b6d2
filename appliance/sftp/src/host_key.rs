//! The server's Ed25519 host key: made on first start, kept in
//! `<data_dir>/ssh/host_ed25519_key` (OpenSSH's private key format, mode 0600, written
//! atomically), so that clients see the same key across restarts and upgrades.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{self, HashAlg, LineEnding};
use russh::keys::{Algorithm, PrivateKey};

/// Where the key lives, relative to the data directory.
pub const HOST_KEY_FILE: &str = "ssh/host_ed25519_key";

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read the SSH host key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the SSH host key {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an unencrypted Ed25519 key in OpenSSH's format")]
    Invalid {
        path: PathBuf,
        #[source]
        source: Option<ssh_key::Error>,
    },
    #[error("cannot make an SSH host key")]
    Generate(#[source] ssh_key::Error),
    #[error("the system's random number generator failed")]
    Random(#[source] getrandom::Error),
}

/// The host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`), or `None` before
/// the SFTP service has first started and made the key.
pub fn host_key_fingerprint(data_dir: &Path) -> Result<Option<String>, HostKeyError> {
    let path = data_dir.join(HOST_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let key = read(&path)?;
    Ok(Some(
        key.public_key().fingerprint(HashAlg::Sha256).to_string(),
    ))
}

/// The host key, made and saved first if there is none. A key file that is there but cannot
/// be used is an error, never silently replaced: clients would see a different server.
pub(crate) fn load_or_create(data_dir: &Path) -> Result<PrivateKey, HostKeyError> {
    let path = data_dir.join(HOST_KEY_FILE);
    if path.exists() {
        tighten_mode(&path)?;
        return read(&path);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(HostKeyError::Random)?;
    let keypair = KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed));
    let key = PrivateKey::new(keypair, "tapline host key").map_err(HostKeyError::Generate)?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(HostKeyError::Generate)?;
    write_atomically(&path, text.as_bytes())?;
    tracing::info!(
        path = %path.display(),
        fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
        "made the SSH host key"
    );
    Ok(key)
}

fn read(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| HostKeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |source| HostKeyError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    let key = PrivateKey::from_openssh(&text).map_err(|e| invalid(Some(e)))?;
    if key.is_encrypted() || key.algorithm() != Algorithm::Ed25519 {
        return Err(invalid(None));
    }
    Ok(key)
}

/// Modes are tightened, never loosened: a key readable by others is made 0600 again, as the
/// data directory's layout is.
fn tighten_mode(path: &Path) -> Result<(), HostKeyError> {
    let write_err = |source| HostKeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(write_err)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the SSH host key was readable by others; made it 0600"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
    }
    Ok(())
}

/// Write to a temporary file beside `path`, fsync, rename over `path`, fsync the directory: a
/// reader sees no key or the whole key, even across a power cut.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), HostKeyError> {
    let write_err = |source| HostKeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_err)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err)?;
    // A temporary file left by a crash may have had another mode.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(host_key_fingerprint(dir.path()).unwrap(), None);
        let key = load_or_create(dir.path()).unwrap();
        let path = dir.path().join(HOST_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(
            key.public_key(),
            again.public_key(),
            "the same key after a restart"
        );
        let fingerprint = host_key_fingerprint(dir.path()).unwrap().unwrap();
        assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        assert_eq!(fingerprint.len(), "SHA256:".len() + 43);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "tightened");
    }

    #[test]
    fn a_damaged_key_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HOST_KEY_FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(HostKeyError::Invalid { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
