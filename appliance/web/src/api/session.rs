//! Signing in and out through the API, the caller's own session and password.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::WebState;
use crate::accounts;
use crate::api::{ApiError, ErrorBody};
use crate::guard::{Caller, Origin};
use crate::routes::{Access, Route};
use crate::session;
use crate::signin;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/api/v1/session", Access::Public, create),
        Route::get("/api/v1/session", Access::SignedIn, show),
        Route::delete("/api/v1/session", Access::SignedIn, delete),
        Route::delete("/api/v1/sessions", Access::SignedIn, delete_all),
        Route::put(
            "/api/v1/session/password",
            Access::SignedIn,
            change_password,
        ),
    ]
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignInRequest {
    pub username: String,
    pub password: String,
}

/// The signed-in caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub account: String,
    pub role: String,
    pub permissions: Vec<String>,
    /// Send this in `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    /// A password set by an administrator must be changed before anything else.
    pub must_change_password: bool,
}

/// Signs in: a new session (and cookie) at every sign-in.
#[utoipa::path(post, path = "/api/v1/session", request_body = SignInRequest,
    responses((status = 201, body = SessionInfo, description = "Signed in; the session cookie is set"),
              (status = 401, body = ErrorBody, description = "Wrong name or password, or locked out")))]
pub(crate) async fn create(
    State(state): State<WebState>,
    origin: Origin,
    Json(request): Json<SignInRequest>,
) -> Result<Response, ApiError> {
    let signed_in = signin::sign_in(&state, &request.username, &request.password, &origin)
        .await
        .map_err(ApiError::internal)?;
    let Some(signed_in) = signed_in else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password, or the name is locked out",
        ));
    };
    let account = signed_in.account.clone();
    let info = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let role: String = state.store.read(|c| {
                c.query_row(
                    "SELECT role FROM accounts WHERE name = ?1",
                    [&account],
                    |r| r.get(0),
                )
            })?;
            let permissions = state
                .store
                .read(|c| crate::roles::permissions_of(c, &role))?
                .unwrap_or_default();
            Ok::<_, tapline_store::rusqlite::Error>((role, permissions))
        })
        .await??
    };
    let body = SessionInfo {
        account: signed_in.account,
        role: info.0,
        permissions: info.1.names().into_iter().map(str::to_owned).collect(),
        csrf_token: session::csrf_token(&signed_in.token),
        must_change_password: signed_in.must_change_password,
    };
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, session::set_cookie(&signed_in.token))],
        Json(body),
    )
        .into_response())
}

/// Who is signed in, and the CSRF token to send.
#[utoipa::path(get, path = "/api/v1/session",
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub(crate) async fn show(caller: Caller) -> Json<SessionInfo> {
    Json(SessionInfo {
        permissions: caller
            .permissions
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        csrf_token: caller.csrf().to_owned(),
        account: caller.account,
        role: caller.role,
        must_change_password: caller.must_change_password,
    })
}

/// Signs out this session.
#[utoipa::path(delete, path = "/api/v1/session",
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub(crate) async fn delete(
    State(state): State<WebState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    tokio::task::spawn_blocking(move || {
        signin::sign_out(&state, &caller.session_hash, &caller.actor())
    })
    .await??;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie())],
    )
        .into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ended {
    /// Sessions that ended.
    pub ended: usize,
}

/// Signs out every session of the caller's account, this one included.
#[utoipa::path(delete, path = "/api/v1/sessions", responses((status = 200, body = Ended)))]
pub(crate) async fn delete_all(
    State(state): State<WebState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let ended = tokio::task::spawn_blocking(move || {
        signin::sign_out_everywhere(&state, &caller.account, &caller.actor())
    })
    .await??;
    Ok((
        [(header::SET_COOKIE, session::clear_cookie())],
        Json(Ended { ended }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// Changes the caller's password (the current one is required); other sessions end.
#[utoipa::path(put, path = "/api/v1/session/password", request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn change_password(
    State(state): State<WebState>,
    caller: Caller,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || {
        accounts::change_own_password(
            &state.store,
            &caller.account,
            &change.current,
            &change.new,
            &caller.session_hash,
            &caller.actor(),
        )
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}
