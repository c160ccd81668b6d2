//! The JSON API under `/api/v1`, for everything the pages do. Each module mirrors a page and
//! calls the same functions; [`openapi`] serves the OpenAPI document generated from the
//! handlers' annotations.
//!
//! Callers sign in with `POST /api/v1/session` and then send the session cookie it sets, and
//! the `X-CSRF-Token` header it returns on every request that changes something. Errors are
//! `{"error": "..."}` with a 4xx or 5xx status.

pub mod accounts;
pub mod audit_log;
pub mod directory;
pub mod openapi;
pub mod recordings;
pub mod roles;
pub mod session;
pub mod settings;
pub mod whisper_log;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

pub fn error(status: StatusCode, reason: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: reason.to_owned(),
        }),
    )
        .into_response()
}

/// An error an API handler answers with.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status,
            message: message.to_string(),
        }
    }

    /// A failure of ours, logged here with its chain; the caller learns only that it failed.
    pub fn internal(err: impl std::error::Error) -> ApiError {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "an API request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, &self.message)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> ApiError {
        ApiError::internal(err)
    }
}

impl From<tapline_store::rusqlite::Error> for ApiError {
    fn from(err: tapline_store::rusqlite::Error) -> ApiError {
        ApiError::internal(err)
    }
}

impl From<crate::accounts::AdminError> for ApiError {
    fn from(err: crate::accounts::AdminError) -> ApiError {
        use crate::accounts::AdminError::*;
        let status = match &err {
            BadName(_) | TenantName(_) | UnknownRole(_) | PasswordTooShort | OwnAccount => {
                StatusCode::BAD_REQUEST
            }
            WrongPassword => StatusCode::FORBIDDEN,
            Exists(_) => StatusCode::CONFLICT,
            NotFound(_) => StatusCode::NOT_FOUND,
            Accounts(_) | Store(_) => return ApiError::internal(err),
        };
        ApiError::new(status, err)
    }
}

impl From<crate::roles::RoleError> for ApiError {
    fn from(err: crate::roles::RoleError) -> ApiError {
        use crate::roles::RoleError::*;
        let status = match &err {
            UnknownPermission(_) | BadName(_) => StatusCode::BAD_REQUEST,
            BuiltIn(_) | InUse { .. } => StatusCode::CONFLICT,
            NotFound(_) => StatusCode::NOT_FOUND,
            Store(_) => return ApiError::internal(err),
        };
        ApiError::new(status, err)
    }
}

impl From<crate::settings::SettingsError> for ApiError {
    fn from(err: crate::settings::SettingsError) -> ApiError {
        use crate::settings::SettingsError::*;
        match &err {
            UnknownKey(_) | Invalid { .. } => ApiError::new(StatusCode::BAD_REQUEST, err),
            Store(_) => ApiError::internal(err),
        }
    }
}

impl From<tapline_accounts::AccountError> for ApiError {
    fn from(err: tapline_accounts::AccountError) -> ApiError {
        match &err {
            tapline_accounts::AccountError::PasswordTooShort => {
                ApiError::new(StatusCode::BAD_REQUEST, err)
            }
            _ => ApiError::internal(err),
        }
    }
}
