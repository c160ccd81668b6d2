//! The operational endpoints, open to anyone who can reach the port (monitoring systems hold
//! no account): `GET /health` (200 or 503 with each service's state) and `GET /metrics`
//! (OpenMetrics text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tapline_runtime::{ServiceState, ServiceStatus};

use crate::WebState;
use crate::routes::{Access, Route};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/health", Access::Public, health),
        Route::get("/metrics", Access::Public, metrics),
    ]
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
            state: state_name(&s),
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

/// A service's state as `/health` and the home page name it.
pub(crate) fn state_name(status: &ServiceStatus) -> &'static str {
    match status.state {
        ServiceState::Running if status.ready => "running",
        ServiceState::Running => "starting",
        ServiceState::Backoff => "restarting",
        ServiceState::Stopping => "stopping",
        ServiceState::Stopped => "stopped",
    }
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
