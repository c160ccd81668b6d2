//! Account administration (Administration permission).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tapline_accounts::Permission;

use crate::WebState;
use crate::accounts::{self, AccountView};
use crate::api::session::Ended;
use crate::api::{ApiError, ErrorBody};
use crate::guard::{Caller, timeouts};
use crate::routes::{Access, Route};
use crate::signin;

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/accounts", ADMIN, list),
        Route::post("/api/v1/accounts", ADMIN, create),
        Route::post(
            "/api/v1/accounts/{name}/password-reset",
            ADMIN,
            reset_password,
        ),
        Route::put("/api/v1/accounts/{name}/role", ADMIN, set_role),
        Route::put("/api/v1/accounts/{name}/disabled", ADMIN, set_disabled),
        Route::delete(
            "/api/v1/accounts/{name}/sessions",
            ADMIN,
            sign_out_everywhere,
        ),
    ]
}

/// Every account.
#[utoipa::path(get, path = "/api/v1/accounts", responses((status = 200, body = Vec<AccountView>)))]
pub(crate) async fn list(
    State(state): State<WebState>,
    _caller: Caller,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let timeouts = timeouts(&state);
    let rows = tokio::task::spawn_blocking(move || {
        state
            .store
            .read(|c| accounts::list(c, timeouts, jiff::Timestamp::now()))
    })
    .await??;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewAccount {
    pub name: String,
    /// A built-in or custom role.
    pub role: String,
    /// Empty or absent: one is generated, returned once, and must be changed at first sign-in.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub name: String,
    /// The generated password, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Creates an account with a role.
#[utoipa::path(post, path = "/api/v1/accounts", request_body = NewAccount,
    responses((status = 201, body = Created), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<WebState>,
    caller: Caller,
    Json(new): Json<NewAccount>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let created = tokio::task::spawn_blocking(move || {
        let tenant = tenant_name(&state)?;
        accounts::create(
            &state.store,
            &tenant,
            &new.name,
            &new.role,
            new.password.as_deref(),
            &caller.actor(),
        )
        .map(|password| Created {
            name: new.name.trim().to_owned(),
            password,
        })
    })
    .await??;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewPassword {
    /// Shown this once; the account must change it at its next sign-in.
    pub password: String,
}

/// Resets an account's password to a generated one and ends its sessions.
#[utoipa::path(post, path = "/api/v1/accounts/{name}/password-reset",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = NewPassword), (status = 404, body = ErrorBody)))]
pub(crate) async fn reset_password(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<NewPassword>, ApiError> {
    let password = tokio::task::spawn_blocking(move || {
        accounts::reset_password(&state.store, &name, &caller.actor())
    })
    .await??;
    Ok(Json(NewPassword { password }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountRoleBody {
    /// A built-in or custom role, any case; the answer spells it as stored.
    pub role: String,
}

/// Gives an account another role. Its sessions stay open and are answered with the new
/// role's permissions from their next request.
#[utoipa::path(put, path = "/api/v1/accounts/{name}/role", request_body = AccountRoleBody,
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = AccountRoleBody), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn set_role(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<AccountRoleBody>,
) -> Result<Json<AccountRoleBody>, ApiError> {
    let role = tokio::task::spawn_blocking(move || {
        accounts::set_role(&state.store, &name, &body.role, &caller.actor())
    })
    .await??;
    Ok(Json(AccountRoleBody { role }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Disabled {
    pub disabled: bool,
}

/// Disables (ending its sessions) or enables an account.
#[utoipa::path(put, path = "/api/v1/accounts/{name}/disabled", request_body = Disabled,
    params(("name" = String, Path, description = "Account name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_disabled(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Disabled>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || {
        accounts::set_disabled(&state.store, &name, body.disabled, &caller.actor())
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of an account.
#[utoipa::path(delete, path = "/api/v1/accounts/{name}/sessions",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = Ended)))]
pub(crate) async fn sign_out_everywhere(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Ended>, ApiError> {
    let ended = tokio::task::spawn_blocking(move || {
        signin::sign_out_everywhere(&state, &name, &caller.actor())
    })
    .await??;
    Ok(Json(Ended { ended }))
}

/// The tenant's SFTP login name in force, as the SFTP server uses it: the settings page's
/// override, else the configuration file's. Blocking.
pub(crate) fn tenant_name(state: &WebState) -> tapline_store::rusqlite::Result<String> {
    let file = state
        .options
        .file_settings
        .get(tapline_store::settings::TENANT_NAME)
        .unwrap_or_default();
    state
        .store
        .read(|conn| tapline_store::settings::tenant_name(conn, file))
}
