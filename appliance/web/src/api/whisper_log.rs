//! The Whisper/Barge/Listen log (show_whisper_log permission), limited to the caller's scope.

use axum::Json;
use axum::extract::{Query, State};
use tapline_accounts::Permission;

use crate::WebState;
use crate::api::{ApiError, ErrorBody};
use crate::guard::Caller;
use crate::routes::{Access, Route};
use crate::whisper::{self, WhisperFilter, WhisperRow};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/api/v1/whisper-log",
            Access::Permission(Permission::ShowWhisperLog),
            list,
        )
        .agent_param("agent"),
    ]
}

/// Listen, Whisper and Barge actions, newest first, 100 a page.
#[utoipa::path(get, path = "/api/v1/whisper-log", params(WhisperFilter),
    responses((status = 200, body = Vec<WhisperRow>),
              (status = 403, body = ErrorBody, description = "The agent is not in your scope")))]
pub(crate) async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<WhisperFilter>,
) -> Result<Json<Vec<WhisperRow>>, ApiError> {
    Ok(Json(search(&state, &caller, filter).await?))
}

pub(crate) async fn search(
    state: &WebState,
    caller: &Caller,
    filter: WhisperFilter,
) -> Result<Vec<WhisperRow>, ApiError> {
    let (state, scope) = (state.clone(), caller.scope.clone());
    Ok(tokio::task::spawn_blocking(move || {
        state.store.read(|c| whisper::search(c, &filter, &scope))
    })
    .await??)
}
