//! Roles: the built-in ones (read-only) and custom ones (Administration permission).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tapline_accounts::Permission;

use crate::WebState;
use crate::api::{ApiError, ErrorBody};
use crate::guard::Caller;
use crate::roles::{self, Permissions, RoleView};
use crate::routes::{Access, Route};

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/roles", ADMIN, list),
        Route::put("/api/v1/roles/{name}", ADMIN, save),
        Route::delete("/api/v1/roles/{name}", ADMIN, delete),
    ]
}

/// Every role and its permissions.
#[utoipa::path(get, path = "/api/v1/roles", responses((status = 200, body = Vec<RoleView>)))]
pub(crate) async fn list(
    State(state): State<WebState>,
    _caller: Caller,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    Ok(Json(
        tokio::task::spawn_blocking(move || state.store.read(roles::list)).await??,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RolePermissions {
    /// Permission names as the catalogue spells them ("Recordings", "show_activity_log", ...).
    pub permissions: Vec<String>,
}

/// Creates or replaces a custom role.
#[utoipa::path(put, path = "/api/v1/roles/{name}", request_body = RolePermissions,
    params(("name" = String, Path, description = "Role name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn save(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<RolePermissions>,
) -> Result<StatusCode, ApiError> {
    let permissions = body
        .permissions
        .iter()
        .map(|p| roles::parse_permission(p))
        .collect::<Result<Vec<_>, _>>()?;
    tokio::task::spawn_blocking(move || {
        state
            .store
            .write(|tx| roles::save(tx, &name, &Permissions::of(permissions), &caller.actor()))
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a custom role that no account holds.
#[utoipa::path(delete, path = "/api/v1/roles/{name}",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || {
        state
            .store
            .write(|tx| roles::delete(tx, &name, &caller.actor()))
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}
