//! The appliance's HTTPS listener on `[web] listen`.
//!
//! Today it serves the operational endpoints every later page builds beside:
//! - `GET /health`: JSON with each service's state and the database's; 200 when everything is
//!   up, 503 otherwise, so a load balancer or monitoring system can poll it.
//! - `GET /metrics`: every counter and gauge of the daemon in the OpenMetrics text format,
//!   which Prometheus scrapes natively.
//!
//! **Plain HTTP is never served**: the listener speaks TLS only.

mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use serde::Serialize;
use tapline_runtime::{BoxError, ServiceContext, ServiceState, SupervisorHandle};
use tapline_store::Store;

pub use server::serve;

/// Everything the web service needs, built once at start.
#[derive(Clone)]
pub struct Web {
    pub listen: SocketAddr,
    pub tls: Arc<ServerConfig>,
    pub state: WebState,
}

/// Shared with every request handler.
#[derive(Clone)]
pub struct WebState {
    pub supervisor: SupervisorHandle,
    pub store: Arc<Store>,
    pub metrics: Arc<Registry>,
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
    let listener = tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|source| BindError {
            addr: web.listen,
            source,
        })?;
    let local = listener.local_addr()?;
    ctx.set_ready_at(vec![format!("https://{}/", reachable(local))]);
    serve(listener, web.tls, router(web.state), ctx.shutdown().clone()).await?;
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

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: String,
    services: Vec<ServiceHealth>,
}

#[derive(Serialize)]
struct ServiceHealth {
    name: &'static str,
    state: &'static str,
    ready: bool,
    restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

async fn health(State(state): State<WebState>) -> Response {
    let store = state.store.clone();
    let database = match tokio::task::spawn_blocking(move || store.check_writable()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => format!("error: {err}"),
        Err(err) => format!("error: {err}"),
    };
    let services: Vec<ServiceHealth> = state
        .supervisor
        .statuses()
        .into_iter()
        .map(|s| ServiceHealth {
            name: s.name,
            state: match s.state {
                ServiceState::Running if s.ready => "running",
                ServiceState::Running => "starting",
                ServiceState::Backoff => "restarting",
                ServiceState::Stopping => "stopping",
                ServiceState::Stopped => "stopped",
            },
            ready: s.ready,
            restarts: s.restarts,
            last_error: s.last_error,
        })
        .collect();
    let healthy = database == "ok" && services.iter().all(|s| s.state == "running");
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if healthy { "ok" } else { "degraded" },
        database,
        services,
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<WebState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
