//! Settings (Administration permission): overrides of the configuration file, the tenant
//! login's SFTP password and the TLS certificate.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tapline_accounts::Permission;
use tapline_audit::events;

use crate::api::accounts::tenant_name;
use crate::api::{ApiError, ErrorBody};
use crate::guard::Caller;
use crate::routes::{Access, Route};
use crate::settings::{self, SettingView};
use crate::{WebState, tls};

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/settings", ADMIN, list),
        Route::put("/api/v1/settings", ADMIN, save),
        Route::put("/api/v1/settings/sftp-password", ADMIN, sftp_password),
        Route::put("/api/v1/settings/certificate", ADMIN, certificate),
    ]
}

/// Every setting: the value in force, the file's, and whether the UI overrides it.
#[utoipa::path(get, path = "/api/v1/settings", responses((status = 200, body = Vec<SettingView>)))]
pub(crate) async fn list(
    State(state): State<WebState>,
    _caller: Caller,
) -> Result<Json<Vec<SettingView>>, ApiError> {
    Ok(Json(
        tokio::task::spawn_blocking(move || {
            state
                .store
                .read(|c| settings::effective(c, &state.options.file_settings))
        })
        .await??,
    ))
}

/// Overrides settings (key → value); an empty value or the file's removes the override.
#[utoipa::path(put, path = "/api/v1/settings", request_body = BTreeMap<String, String>,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub(crate) async fn save(
    State(state): State<WebState>,
    caller: Caller,
    Json(changes): Json<BTreeMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    save_settings(&state, &caller, changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn save_settings(
    state: &WebState,
    caller: &Caller,
    changes: BTreeMap<String, String>,
) -> Result<usize, ApiError> {
    let (state, caller) = (state.clone(), caller.clone());
    Ok(tokio::task::spawn_blocking(move || {
        state
            .store
            .write(|tx| settings::save(tx, &state.options.file_settings, &changes, &caller.actor()))
    })
    .await??)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SftpPassword {
    pub password: String,
}

/// Sets the SFTP password of the tenant login.
#[utoipa::path(put, path = "/api/v1/settings/sftp-password", request_body = SftpPassword,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub(crate) async fn sftp_password(
    State(state): State<WebState>,
    caller: Caller,
    Json(body): Json<SftpPassword>,
) -> Result<StatusCode, ApiError> {
    set_sftp_password(&state, &caller, body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn set_sftp_password(
    state: &WebState,
    caller: &Caller,
    password: String,
) -> Result<(), ApiError> {
    let (state, caller) = (state.clone(), caller.clone());
    tokio::task::spawn_blocking(move || {
        tapline_accounts::login::set_tenant_password(
            &state.store,
            &tenant_name(&state)?,
            &password,
            &caller.actor(),
        )
        .map_err(ApiError::from)
    })
    .await??;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Certificate {
    /// PEM: the server certificate first, then any intermediates.
    pub certificate: String,
    /// PEM private key matching the certificate.
    pub key: String,
}

/// Replaces the HTTPS certificate; the next connection uses it, without a restart.
#[utoipa::path(put, path = "/api/v1/settings/certificate", request_body = Certificate,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub(crate) async fn certificate(
    State(state): State<WebState>,
    caller: Caller,
    Json(body): Json<Certificate>,
) -> Result<StatusCode, ApiError> {
    replace_certificate(&state, &caller, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn replace_certificate(
    state: &WebState,
    caller: &Caller,
    upload: Certificate,
) -> Result<String, ApiError> {
    let Some(reloadable) = state.certificate.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this listener's certificate cannot be replaced while it runs",
        ));
    };
    let (state, caller) = (state.clone(), caller.clone());
    tokio::task::spawn_blocking(move || {
        reloadable
            .replace(upload.certificate.as_bytes(), upload.key.as_bytes())
            .map_err(|err| match err {
                tls::TlsError::Write { .. } => ApiError::internal(err),
                refused => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    tapline_runtime::supervisor::error_chain(&refused),
                ),
            })?;
        let fingerprint = hex(&Sha256::digest(reloadable.leaf()));
        let entry = caller.actor().entry(
            events::SETTINGS,
            events::CERTIFICATE_REPLACED,
            "tls/cert.pem",
            "",
            serde_json::json!({ "sha256": fingerprint }),
        );
        tapline_audit::record(&state.store, &entry).map_err(ApiError::internal)?;
        Ok(fingerprint)
    })
    .await?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
