//! Getting an appliance (or a demo) ready to run.
//!
//! - [`prepare_data_dir`]: the directory layout under `[storage] data_dir`, with permissions
//!   that keep recordings and keys from other local users.
//! - [`demo`]: the self-contained set-up behind `tapline demo`.

pub mod demo;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("cannot prepare {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Account(#[from] tapline_accounts::AccountError),
}

/// Sub-directories of the data directory, and their modes.
pub const DATA_LAYOUT: &[(&str, u32)] = &[
    // Served read-only over SFTP; the daily `S` directories and `Index/` live here.
    ("recordings", 0o750),
    // The web listener's certificate and key.
    ("tls", 0o700),
];

/// Creates the data directory and its layout where missing. Existing directories keep their
/// contents; their modes are tightened to the layout's, never loosened.
pub fn prepare_data_dir(data_dir: &Path) -> Result<(), ProvisioningError> {
    make_dir(data_dir, 0o750)?;
    for (name, mode) in DATA_LAYOUT {
        make_dir(&data_dir.join(name), *mode)?;
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<(), ProvisioningError> {
    let io_err = |source| ProvisioningError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_err)?;
    let current = std::fs::metadata(path)
        .map_err(io_err)?
        .permissions()
        .mode()
        & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))
            .map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_created_with_tight_modes_and_contents_survive() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("lib/tapline");
        prepare_data_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o750);
        assert_eq!(mode(&data.join("recordings")), 0o750);
        assert_eq!(mode(&data.join("tls")), 0o700);

        std::fs::write(data.join("recordings/keep.wav"), b"RIFF").unwrap();
        std::fs::set_permissions(data.join("tls"), std::fs::Permissions::from_mode(0o777)).unwrap();
        prepare_data_dir(&data).unwrap();
        assert_eq!(mode(&data.join("tls")), 0o700, "tightened");
        assert!(data.join("recordings/keep.wav").exists());
    }
}
