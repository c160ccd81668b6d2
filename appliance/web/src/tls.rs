//! The web listener's certificate: the administrator's, or one we make on first start.
//!
//! Files live in `<data_dir>/tls/`: `cert.pem` (the chain, leaf first) and `key.pem` (mode
//! 0600). A self-signed certificate is generated only when neither file exists; a half-present
//! pair is an error, never silently replaced, because it usually means an upload went wrong.
//!
//! The listener asks a [`ReloadableCert`] for its certificate at every handshake, so an
//! administrator's upload ([`ReloadableCert::replace`]: checked, written atomically, then
//! swapped in) takes effect for the next connection without a restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{} has no certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} exists but {} does not; restore the pair or remove both", present.display(), missing.display())]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    #[error("the certificate and key are not usable together")]
    Rustls(#[source] rustls::Error),
    #[error("the uploaded {what} is not PEM")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the uploaded certificate file has no certificate in it")]
    NoUploadedCertificate,
}

/// Paths of the certificate pair under `<data_dir>/tls/`.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    pub fn in_data_dir(data_dir: &Path) -> CertPaths {
        let dir = data_dir.join("tls");
        CertPaths {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// Loads the certificate pair, generating a self-signed one for `names` (DNS names or IP
/// addresses) when there is none yet. Returns the TLS configuration and whether it generated.
pub fn load_or_create(
    paths: &CertPaths,
    names: &[String],
) -> Result<(Arc<ServerConfig>, bool), TlsError> {
    let created = match (paths.cert.exists(), paths.key.exists()) {
        (true, true) => false,
        (false, false) => {
            create_self_signed(paths, names)?;
            true
        }
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: paths.cert.clone(),
                missing: paths.key.clone(),
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: paths.key.clone(),
                missing: paths.cert.clone(),
            });
        }
    };
    Ok((Arc::new(server_config(paths)?), created))
}

/// Like [`load_or_create`], with the certificate behind a [`ReloadableCert`] that an upload
/// can replace while the listener runs.
pub fn load_reloadable(
    paths: &CertPaths,
    names: &[String],
) -> Result<(Arc<ServerConfig>, Arc<ReloadableCert>, bool), TlsError> {
    let (_, created) = load_or_create(paths, names)?;
    let current = certified_key(paths)?;
    let reloadable = Arc::new(ReloadableCert {
        paths: paths.clone(),
        current: RwLock::new(Arc::new(current)),
    });
    let mut config = builder()?.with_cert_resolver(reloadable.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), reloadable, created))
}

/// The certificate in use, replaceable while the listener runs.
#[derive(Debug)]
pub struct ReloadableCert {
    paths: CertPaths,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Checks an uploaded chain and key (PEM; they must belong together), writes them over
    /// the pair in the data directory (key first, each atomically) and uses them for every
    /// handshake from now on.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate",
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoUploadedCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(TlsError::Rustls)?;
        write_atomically(&self.paths.key, key_pem, 0o600)?;
        write_atomically(&self.paths.cert, cert_pem, 0o644)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(certified);
        tracing::info!(path = %self.paths.cert.display(), "replaced the TLS certificate");
        Ok(())
    }

    /// The leaf certificate in use, DER.
    pub fn leaf(&self) -> Vec<u8> {
        self.current()
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn builder()
-> Result<rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_no_client_auth())
}

fn read_pair(
    paths: &CertPaths,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Read { path, source }
    };
    let chain = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(read_err(&paths.cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(&paths.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: paths.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(read_err(&paths.key))?;
    Ok((chain, key))
}

fn certified_key(paths: &CertPaths) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = read_pair(paths)?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(TlsError::Rustls)
}

fn server_config(paths: &CertPaths) -> Result<ServerConfig, TlsError> {
    let (chain, key) = read_pair(paths)?;
    let mut config = builder()?
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn create_self_signed(paths: &CertPaths, names: &[String]) -> Result<(), TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Tapline");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tapline appliance");
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    // Key first: a crash between the two leaves a key without a certificate, which the next
    // start reports instead of running with a certificate whose key is lost.
    write_atomically(&paths.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %paths.cert.display(), names = ?names, "generated a self-signed TLS certificate");
    Ok(())
}

/// Write to a temporary file beside `path`, fsync, rename over `path`, fsync the directory: a
/// reader sees the old file or the new one, never half of one, even across a power cut.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write_err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)?;
    Ok(())
}

/// The names a self-signed certificate should carry for a listener on `listen`.
pub fn default_names(listen: std::net::SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = rustix::system::uname().nodename().to_str()
        && !host.is_empty()
        && !names.iter().any(|n| n == host)
    {
        names.push(host.to_owned());
    }
    let ip = listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_generates_then_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_data_dir(dir.path());
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (_, created) = load_or_create(&paths, &names).unwrap();
        assert!(created);
        let first = std::fs::read(&paths.cert).unwrap();
        let (_, created) = load_or_create(&paths, &names).unwrap();
        assert!(!created);
        assert!(
            std::fs::read(&paths.cert).unwrap() == first,
            "certificate kept"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_lone_certificate_is_an_error_not_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_data_dir(dir.path());
        load_or_create(&paths, &["localhost".to_owned()]).unwrap();
        std::fs::remove_file(&paths.key).unwrap();
        let err = load_or_create(&paths, &["localhost".to_owned()]).unwrap_err();
        assert!(matches!(err, TlsError::HalfPair { .. }), "{err}");
    }

    #[test]
    fn an_upload_is_checked_written_and_used_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_data_dir(dir.path());
        let (_, reloadable, created) = load_reloadable(&paths, &["localhost".to_owned()]).unwrap();
        assert!(created);
        let before = reloadable.leaf();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["tapline.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let err = reloadable
            .replace(cert.pem().as_bytes(), other_key.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(matches!(err, TlsError::Rustls(_)), "{err}");
        let err = reloadable
            .replace(b"hello", key.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(matches!(err, TlsError::NoUploadedCertificate), "{err}");
        assert_eq!(
            reloadable.leaf(),
            before,
            "a refused upload changes nothing"
        );
        reloadable
            .replace(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
            .unwrap();
        assert_eq!(reloadable.leaf(), cert.der().to_vec());
        assert_eq!(std::fs::read_to_string(&paths.cert).unwrap(), cert.pem());
        let (_, again, created) = load_reloadable(&paths, &["localhost".to_owned()]).unwrap();
        assert!(!created);
        assert_eq!(again.leaf(), cert.der().to_vec(), "kept across restarts");
    }

    #[test]
    fn garbage_in_the_certificate_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::in_data_dir(dir.path());
        load_or_create(&paths, &["localhost".to_owned()]).unwrap();
        std::fs::write(&paths.cert, b"not a certificate").unwrap();
        let err = load_or_create(&paths, &["localhost".to_owned()]).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
