//! The Whisper/Barge/Listen tab (show_whisper_log): supervisors' Listen, Whisper and Barge
//! actions on agents' calls, with a filter form. An htmx search swaps only the results.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use tapline_accounts::Permission;

use crate::WebState;
use crate::api::whisper_log::search;
use crate::guard::Caller;
use crate::pages::{Layout, failed, render};
use crate::routes::{Access, Route};
use crate::whisper::{ACTIONS, WhisperFilter, WhisperRow};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/whisper-log",
            Access::Permission(Permission::ShowWhisperLog),
            page,
        )
        .nav("Whisper/Barge/Listen")
        .agent_param("agent"),
    ]
}

#[derive(Template)]
#[template(path = "whisper_log.html")]
struct WhisperLogPage {
    layout: Layout,
    filter: WhisperFilter,
    /// Each action and whether the filter selects it.
    actions: Vec<(&'static str, bool)>,
    rows: Vec<WhisperRow>,
}

async fn page(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<WhisperFilter>,
) -> Response {
    match search(&state, &caller, filter.clone()).await {
        Ok(rows) => render(&WhisperLogPage {
            layout: Layout::new(&caller, "Whisper/Barge/Listen", "/whisper-log"),
            actions: ACTIONS.iter().map(|a| (*a, filter.action == *a)).collect(),
            filter,
            rows,
        }),
        Err(err) => failed(err.message),
    }
}
