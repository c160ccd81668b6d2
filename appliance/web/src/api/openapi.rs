//! The OpenAPI document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! annotations. Every API route of the route table must be in it (a test checks).

use axum::Json;
use utoipa::OpenApi;

use crate::api::{
    accounts, audit_log, directory, recordings, roles, session, settings, whisper_log,
};
use crate::guard::Caller;
use crate::routes::{Access, Route};

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get(
        "/api/v1/openapi.json",
        Access::SignedIn,
        document,
    )]
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tapline",
        description = "The appliance's JSON API. Sign in with POST /api/v1/session, then send the session cookie, and the X-CSRF-Token header on every request that changes something."
    ),
    paths(
        document,
        session::create,
        session::show,
        session::delete,
        session::delete_all,
        session::change_password,
        accounts::list,
        accounts::create,
        accounts::reset_password,
        accounts::set_disabled,
        accounts::set_role,
        accounts::sign_out_everywhere,
        roles::list,
        roles::save,
        roles::delete,
        settings::list,
        settings::save,
        settings::sftp_password,
        settings::certificate,
        whisper_log::list,
        directory::list,
        directory::create,
        directory::show,
        directory::update,
        directory::delete,
        directory::list_devices,
        directory::add_device,
        directory::update_device,
        directory::remove_device,
        directory::list_groupings,
        directory::create_grouping,
        directory::rename_grouping,
        directory::delete_grouping,
        directory::list_scopes,
        directory::set_scope,
        directory::export,
        directory::import,
        recordings::list,
        recordings::show,
        recordings::hold,
        audit_log::list,
        audit_log::events,
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub(crate) async fn document(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
