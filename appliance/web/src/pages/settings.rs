//! Settings (Administration): overrides of the configuration file, the tenant login's SFTP
//! password, and the TLS certificate.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tapline_accounts::Permission;

use crate::WebState;
use crate::api::ApiError;
use crate::api::accounts::tenant_name;
use crate::api::settings::{Certificate, replace_certificate, save_settings, set_sftp_password};
use crate::guard::{CSRF_FIELD, Caller};
use crate::pages::{Layout, failed, render_with};
use crate::routes::{Access, Route};
use crate::settings::{self, SettingView};

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/settings", ADMIN, page).nav("Settings"),
        Route::post("/settings", ADMIN, save),
        Route::post("/settings/sftp-password", ADMIN, sftp_password),
        Route::post("/settings/certificate", ADMIN, certificate),
    ]
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    settings: Vec<SettingView>,
    tenant: String,
    sftp_password_set: bool,
}

async fn show(
    state: WebState,
    caller: Caller,
    outcome: Option<Result<String, ApiError>>,
) -> Response {
    let status = match &outcome {
        Some(Err(err)) => err.status,
        _ => StatusCode::OK,
    };
    let outcome = outcome.map(|o| o.map_err(|err| err.message));
    let loaded = tokio::task::spawn_blocking(move || {
        let tenant = tenant_name(&state)?;
        let views = state
            .store
            .read(|c| settings::effective(c, &state.options.file_settings))?;
        let set = tapline_accounts::login::tenant_password_set(&state.store)
            .map_err(ApiError::internal)?;
        Ok::<_, ApiError>((views, set, tenant))
    })
    .await;
    match loaded {
        Ok(Ok((settings, sftp_password_set, tenant))) => render_with(
            status,
            &SettingsPage {
                layout: Layout::new(&caller, "Settings", "/settings").with_outcome(outcome),
                settings,
                tenant,
                sftp_password_set,
            },
        ),
        Ok(Err(err)) => failed(err.message),
        Err(err) => failed(err),
    }
}

async fn page(State(state): State<WebState>, caller: Caller) -> Response {
    show(state, caller, None).await
}

/// The form: one field per setting key.
async fn save(
    State(state): State<WebState>,
    caller: Caller,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let changes: BTreeMap<String, String> = fields
        .into_iter()
        .filter(|(key, _)| key != CSRF_FIELD)
        .collect();
    let outcome = save_settings(&state, &caller, changes)
        .await
        .map(|changed| format!("{changed} setting(s) changed."));
    show(state, caller, Some(outcome)).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct SftpPasswordForm {
    password: String,
}

async fn sftp_password(
    State(state): State<WebState>,
    caller: Caller,
    Form(form): Form<SftpPasswordForm>,
) -> Response {
    let outcome = set_sftp_password(&state, &caller, form.password)
        .await
        .map(|()| "The SFTP password of the tenant login is set.".to_owned());
    show(state, caller, Some(outcome)).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertificateForm {
    certificate: String,
    key: String,
}

async fn certificate(
    State(state): State<WebState>,
    caller: Caller,
    Form(form): Form<CertificateForm>,
) -> Response {
    let upload = Certificate {
        certificate: form.certificate,
        key: form.key,
    };
    let outcome = replace_certificate(&state, &caller, upload)
        .await
        .map(|sha256| {
            format!("The certificate is replaced (SHA-256 {sha256}); new connections use it.")
        });
    show(state, caller, Some(outcome)).await
}
