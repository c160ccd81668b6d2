//! The appliance's HTTPS listener on `[web] listen`: the admin web UI, its JSON API and the
//! operational endpoints.
//!
//! - `GET /health` and `GET /metrics` (in [`ops`]) for monitoring, open to anyone who can reach
//!   the port, as before the UI existed.
//! - Server-rendered pages ([`pages`], askama templates checked at compile time, htmx for
//!   partial updates) and the JSON API under `/api/v1` ([`api`], described by the OpenAPI
//!   document at `/api/v1/openapi.json`), for everything the pages do.
//! - **Authorization in one place.** Every route is declared once in the route table
//!   ([`routes`]) with the access it needs; the one guard ([`guard`]) signs the caller in from
//!   the session cookie, checks the permission, the CSRF token of state-changing requests and
//!   the agent scope, and only then hands the handler a [`guard::Caller`], the proof it needs
//!   as an argument. A route that is not in the table is refused.
//!
//! **Plain HTTP is never served**: the listener speaks TLS only; the optional
//! `http_redirect_listen` answers every request with a redirect to HTTPS and nothing else.

pub mod accounts;
pub mod api;
mod assets;
mod body;
pub mod guard;
mod ops;
pub mod pages;
mod redirect;
pub mod roles;
pub mod routes;
pub mod scope;
mod security;
mod server;
pub mod session;
pub mod settings;
pub mod signin;
pub mod tls;
pub mod whisper;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use tapline_accounts::lockout::LockoutPolicy;
use tapline_accounts::throttle::SourceThrottle;
use tapline_runtime::{BoxError, ServiceContext, SupervisorHandle};
use tapline_store::Store;

pub use server::serve;

/// Everything the web service needs, built once at start.
#[derive(Clone)]
pub struct Web {
    pub listen: SocketAddr,
    /// Plain HTTP that only redirects to `listen`.
    pub http_redirect_listen: Option<SocketAddr>,
    pub tls: Arc<ServerConfig>,
    pub state: WebState,
}

/// Shared with every request handler.
#[derive(Clone)]
pub struct WebState {
    pub supervisor: SupervisorHandle,
    pub store: Arc<Store>,
    pub metrics: Arc<Registry>,
    pub options: Arc<WebOptions>,
    /// Which agents each caller may see and act on.
    pub scopes: Arc<dyn scope::ScopeResolver>,
    /// The certificate the listener presents, replaced by an administrator's upload.
    pub certificate: Option<Arc<tls::ReloadableCert>>,
    /// Failed sign-ins per source address; kept across restarts of the service.
    pub(crate) throttle: Arc<Mutex<SourceThrottle>>,
}

/// The web UI's settings from the configuration file.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// A session unused for this long is signed out.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in.
    pub session_lifetime: Duration,
    /// The per-name lockout, shared with SFTP (one table, one policy).
    pub lockout: LockoutPolicy,
    /// How long every refused sign-in takes, whatever the reason.
    pub failure_delay: Duration,
    /// The values the settings page shows when the UI has not overridden them.
    pub file_settings: settings::FileSettings,
}

/// Failed sign-ins from one address within [`SOURCE_WINDOW`] before it must wait.
const SOURCE_MAX_FAILURES: u32 = 10;
const SOURCE_WINDOW: Duration = Duration::from_secs(300);
const SOURCE_CAPACITY: usize = 4096;
/// How long every refused sign-in takes: long enough to hide the Argon2 work and the database,
/// short enough for a person who mistyped.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

impl WebState {
    pub fn new(
        supervisor: SupervisorHandle,
        store: Arc<Store>,
        metrics: Arc<Registry>,
        options: WebOptions,
    ) -> WebState {
        WebState {
            supervisor,
            store,
            metrics,
            options: Arc::new(options),
            scopes: Arc::new(scope::EveryAgent),
            certificate: None,
            throttle: Arc::new(Mutex::new(SourceThrottle::new(
                SOURCE_MAX_FAILURES,
                SOURCE_WINDOW,
                SOURCE_CAPACITY,
            ))),
        }
    }
}

impl WebOptions {
    /// The options `[web]`, `[sftp]` (the lockout policy), `[tenant]`, `[storage]` and
    /// `[recording]` of the configuration file give.
    pub fn from_config(config: &tapline_config::Config) -> WebOptions {
        WebOptions {
            idle_timeout: Duration::from_secs(u64::from(config.web.idle_timeout_minutes) * 60),
            session_lifetime: Duration::from_secs(
                u64::from(config.web.session_lifetime_hours) * 3600,
            ),
            lockout: LockoutPolicy {
                failures_before_lockout: config.sftp.failures_before_lockout,
                lockout: Duration::from_secs(u64::from(config.sftp.lockout_minutes) * 60),
            },
            failure_delay: FAILURE_DELAY,
            file_settings: settings::FileSettings::from_config(config),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// The supervised web service: bind, say where we are, serve until shutdown.
pub async fn run(ctx: ServiceContext, web: Web) -> Result<(), BoxError> {
    let listener = bind(web.listen).await?;
    let local = listener.local_addr()?;
    let mut endpoints = vec![format!("https://{}/", reachable(local))];
    let redirect = match web.http_redirect_listen {
        Some(addr) => {
            let plain = bind(addr).await?;
            endpoints.push(format!("http://{}/", reachable(plain.local_addr()?)));
            Some(plain)
        }
        None => None,
    };
    ctx.set_ready_at(endpoints);
    let shutdown = ctx.shutdown().clone();
    let https = serve(listener, web.tls, router(web.state), shutdown.clone());
    match redirect {
        Some(plain) => {
            let http = redirect::serve(plain, local.port(), shutdown);
            let (https, http) = tokio::join!(https, http);
            https?;
            http?;
        }
        None => https.await?,
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// How to reach a listener bound to `addr` from this machine.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if !ip.is_unspecified() => addr,
        std::net::IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        std::net::IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
    }
}

/// Every route of the route table, behind the guard and the security headers.
pub fn router(state: WebState) -> Router {
    routes::router(state)
}

#[cfg(test)]
mod tests;
