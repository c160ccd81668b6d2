//! Tapline's SFTP server: recordings and index files, read-only, for the tenant login and for
//! local accounts holding the SFTP permission.
//!
//! Clients see `<data_dir>/recordings` as `/`: the daily `Syyyymmdd/` directories with their
//! `R….wav` recordings and index copies, and `Index/` with the `Iyyyymmdd.csv` files.
//!
//! - **Read-only, always.** Every request that could change a file is refused with
//!   `SSH_FX_PERMISSION_DENIED` before anything is looked up, and audited ([`session`]).
//! - **Jailed in the kernel.** Every path is resolved by `openat2` with `RESOLVE_IN_ROOT`
//!   from a descriptor of the root ([`jail`]), so `..`, absolute paths, symbolic links and
//!   rename races cannot reach a file outside it.
//! - **A sans-IO protocol core.** [`protocol`] turns channel bytes into requests and replies
//!   into bytes, and never panics on any input (its fuzz target is `fuzz/`).
//! - **Pipelined.** Requests are answered in order as fast as the disk and the client's
//!   window allow; a client may keep many in flight, but the requests waiting and the replies
//!   not yet sent are both bounded ([`channel`]).
//! - **Audited.** Logins, failed logins, lockouts, listings, downloads (with the bytes sent,
//!   when the handle is closed) and refused writes go to the activity audit log.
//!
//! The drive loop, per connection: russh runs the SSH session on a task and calls
//! [`server`]'s handler; an `sftp` subsystem gets a [`channel::ChannelInput`], which decodes
//! data into an inbox, and a thread that runs [`session::SftpSession::handle_message`] for each
//! request and hands the replies back to russh.

mod audit;
mod auth;
mod channel;
mod handles;
mod host_key;
mod jail;
mod listing;
pub mod path;
pub mod protocol;
mod server;
mod session;
mod stream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tapline_accounts::lockout::LockoutPolicy;
use tapline_config::SftpConfig;
use tapline_runtime::{BoxError, ServiceContext};
use tapline_store::Store;

pub use auth::FAILURE_DELAY;
pub use host_key::{HOST_KEY_FILE, HostKeyError, host_key_fingerprint};

/// The directory of the data directory that clients see as `/`.
pub const RECORDINGS_DIR: &str = "recordings";

/// How long the audit rows of closing sessions get to reach the database on shutdown.
const AUDIT_DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    #[error("cannot open the recordings directory {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the SFTP listener failed")]
    Accept(#[source] std::io::Error),
}

/// Everything the SFTP service needs, built once at start and cloned for each run.
#[derive(Clone)]
pub struct SftpServer {
    listen: SocketAddr,
    max_connections: usize,
    max_connections_per_account: u32,
    idle_timeout: Duration,
    policy: LockoutPolicy,
    tenant: String,
    data_dir: PathBuf,
    store: Arc<Store>,
    /// Failures per source address, kept across restarts of the service.
    throttle: auth::SharedThrottle,
}

impl SftpServer {
    /// The server of `[sftp]`, for the tenant login `tenant_name` (`[tenant] name`).
    pub fn new(
        config: &SftpConfig,
        tenant_name: &str,
        data_dir: &Path,
        store: Arc<Store>,
    ) -> SftpServer {
        SftpServer {
            listen: config.listen,
            max_connections: config.max_connections as usize,
            max_connections_per_account: config.max_connections_per_account,
            idle_timeout: Duration::from_secs(config.idle_timeout_seconds.into()),
            policy: LockoutPolicy {
                failures_before_lockout: config.failures_before_lockout,
                lockout: Duration::from_secs(u64::from(config.lockout_minutes) * 60),
            },
            tenant: tenant_name.to_owned(),
            data_dir: data_dir.to_path_buf(),
            store,
            throttle: auth::new_throttle(),
        }
    }
}

/// The supervised SFTP service: load or make the host key, bind, say where we are, serve
/// until shutdown, then close every session (each download audited as it ends).
pub async fn run(ctx: ServiceContext, server: SftpServer) -> Result<(), BoxError> {
    let data_dir = server.data_dir.clone();
    let host_key =
        tokio::task::spawn_blocking(move || host_key::load_or_create(&data_dir)).await??;
    let root = server.data_dir.join(RECORDINGS_DIR);
    let jail = jail::Jail::open(&root).map_err(|source| SftpError::Root { path: root, source })?;
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .map_err(|source| SftpError::Bind {
            addr: server.listen,
            source,
        })?;
    let local = listener.local_addr()?;
    let (audit, writer) = audit::AuditLog::start(server.store.clone());
    let shared = Arc::new(server::Shared {
        ssh: Arc::new(server::ssh_config(host_key)),
        gate: Arc::new(auth::Gate {
            store: server.store.clone(),
            tenant: server.tenant.clone(),
            policy: server.policy,
            throttle: server.throttle.clone(),
            failure_delay: FAILURE_DELAY,
        }),
        jail: Arc::new(jail),
        audit,
        sessions: Arc::new(server::AccountSessions::new(
            server.max_connections_per_account,
        )),
        idle_timeout: server.idle_timeout,
        runtime: tokio::runtime::Handle::current(),
    });
    ctx.set_ready_at(vec![format!("sftp://{}", reachable(local))]);
    let served = server::serve(
        listener,
        shared,
        server.max_connections,
        ctx.shutdown().clone(),
    )
    .await;
    // The writer ends once every session's channel thread has reported its last rows.
    if tokio::time::timeout(AUDIT_DRAIN, writer).await.is_err() {
        tracing::error!("SFTP audit rows were still being written at shutdown");
    }
    served.map_err(SftpError::Accept)?;
    Ok(())
}

/// How to reach a listener bound to `addr` from this machine.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if !ip.is_unspecified() => addr,
        std::net::IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
    }
}
