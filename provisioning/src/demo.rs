//! `tapline demo`: a whole appliance in one directory, with no set-up.
//!
//! The demo directory holds its own config file (written once, then the user's to edit), the
//! data directory, and a bundled capture of real SIP calls with their RTP audio that the
//! capture service replays in a loop as if a switch were mirroring a voice VLAN to us. Every
//! listener is on loopback, so a demo never exposes anything to the network.

use std::path::{Path, PathBuf};

use tapline_accounts::Role;
use tapline_store::Store;

use crate::ProvisioningError;

/// SIPp calls with G.711 audio both ways, captured on a veth; `demo/README.md` says how.
pub const CALLS_PCAP: &[u8] = include_bytes!("../demo/calls.pcap");

/// The demo's administrator account.
pub const ADMIN: &str = "admin";

/// Where the demo keeps everything unless told otherwise (relative to the working directory).
pub const DEFAULT_DIR: &str = "var/demo";

/// The demo's configuration: a tenant, loopback listeners on unprivileged ports, and the
/// bundled capture as the SPAN source. Relative paths are relative to the file.
pub const CONFIG: &str = r#"# Tapline demo configuration. Edit freely: `tapline demo` keeps this file once written.
[tenant]
name = "Demo"
timezone = "America/Los_Angeles"

[storage]
data_dir = "data"

[capture]
interfaces = []
replay = "calls.pcap"

[web]
listen = "127.0.0.1:8443"

[sftp]
listen = "127.0.0.1:2222"

[turn]
listen = "127.0.0.1:3478"
relay_ports = "49152-65535"
"#;

/// Makes the demo directory ready and returns the path of its config file.
pub fn prepare(dir: &Path) -> Result<PathBuf, ProvisioningError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProvisioningError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let config = dir.join("tapline.toml");
    if !config.exists() {
        std::fs::write(&config, CONFIG).map_err(io_err(&config))?;
    }
    let capture = dir.join("calls.pcap");
    if std::fs::read(&capture).ok().as_deref() != Some(CALLS_PCAP) {
        std::fs::write(&capture, CALLS_PCAP).map_err(io_err(&capture))?;
    }
    Ok(config)
}

/// Who sets the demo's passwords, for the audit log.
const DEMO_ACTOR: tapline_audit::Actor<'static> = tapline_audit::Actor {
    username: "demo",
    user_ip: "",
    request_uri: "tapline demo",
};

/// Gives the demo administrator a fresh one-time password and returns it.
pub fn reset_admin(store: &Store) -> Result<String, ProvisioningError> {
    let password = tapline_accounts::generate_password()?;
    tapline_accounts::upsert(
        store,
        ADMIN,
        Role::Administrator,
        &password,
        true,
        &DEMO_ACTOR,
    )?;
    Ok(password)
}

/// Gives the tenant login a fresh SFTP password and returns it.
pub fn reset_tenant_sftp(store: &Store, tenant_name: &str) -> Result<String, ProvisioningError> {
    let password = tapline_accounts::generate_password()?;
    tapline_accounts::login::set_tenant_password(store, tenant_name, &password, &DEMO_ACTOR)?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_writes_config_once_and_keeps_user_edits() {
        let dir = tempfile::tempdir().unwrap();
        let config = prepare(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap(), CONFIG);
        assert!(std::fs::read(dir.path().join("calls.pcap")).unwrap() == CALLS_PCAP);
        std::fs::write(&config, "# edited\n").unwrap();
        prepare(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "# edited\n");
    }

    #[test]
    fn the_bundled_capture_is_a_pcap_file() {
        assert!(CALLS_PCAP.len() > 1000);
        assert_eq!(
            &CALLS_PCAP[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "little-endian microsecond pcap"
        );
    }

    #[test]
    fn reset_admin_makes_a_one_time_administrator() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let first = reset_admin(&store).unwrap();
        let second = reset_admin(&store).unwrap();
        assert_ne!(first, second);
        assert!(!tapline_accounts::authenticate(&store, ADMIN, &first).unwrap());
        assert!(tapline_accounts::authenticate(&store, ADMIN, &second).unwrap());
        let account = tapline_accounts::find(&store, ADMIN).unwrap().unwrap();
        assert_eq!(account.role, "Administrator");
        assert!(account.must_change_password);
    }
}
