//! Activity audit log (show_activity_log): the filters of seed 004 (time range, users,
//! event, sub event, object, and text in the comments), a page of rows newest first (an htmx
//! search swaps only the results), "Show Params" with a copy button, and the CSV export of
//! everything the filter selects, with each row's hashes.
//!
//! The export is streamed: rows are read a chunk at a time on a blocking thread and sent on
//! as they are written, so a million rows never sit in memory. The export is itself audited.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tapline_audit::events;
use tapline_audit::query::CsvExport;
use tokio::sync::mpsc;

use crate::WebState;
use crate::api::audit_log::{self, ACTIVITY_LOG, AuditFilter, AuditPage};
use crate::guard::Caller;
use crate::pages::{Layout, failed, render};
use crate::routes::Route;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/audit-log", ACTIVITY_LOG, page).nav("Activity audit log"),
        Route::get("/audit-log/export.csv", ACTIVITY_LOG, export),
    ]
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditLogPage {
    layout: Layout,
    filter: AuditFilter,
    /// Distinct events, and each (event, sub event) pair, for the lists.
    events: Vec<String>,
    sub_events: Vec<String>,
    results: AuditPage,
    next_url: Option<String>,
    export_url: String,
}

async fn page(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let layout = Layout::new(&caller, "Activity audit log", "/audit-log");
    let pairs = match audit_log::event_pairs(&state).await {
        Ok(pairs) => pairs,
        Err(err) => return failed(err.message),
    };
    let (results, layout) = match audit_log::search(&state, filter.clone()).await {
        Ok(results) => (results, layout),
        Err(err) if err.status.is_client_error() => (
            AuditPage {
                rows: Vec::new(),
                next: None,
                total: None,
                more_than: false,
            },
            layout.with_outcome(Some(Err::<String, _>(err.message))),
        ),
        Err(err) => return failed(err.message),
    };
    let mut events: Vec<String> = pairs.iter().map(|pair| pair.event.clone()).collect();
    events.dedup();
    let mut sub_events: Vec<String> = pairs
        .iter()
        .filter(|pair| filter.event.is_empty() || pair.event == filter.event)
        .map(|pair| pair.sub_event.clone())
        .collect();
    sub_events.sort();
    sub_events.dedup();
    let query = |after: String| {
        serde_urlencoded::to_string(AuditFilter {
            after,
            ..filter.clone()
        })
        .unwrap_or_default()
    };
    let next_url = results
        .next
        .as_ref()
        .map(|next| format!("/audit-log?{}", query(next.clone())));
    let export_url = format!("/audit-log/export.csv?{}", query(String::new()));
    render(&AuditLogPage {
        layout,
        filter,
        events,
        sub_events,
        results,
        next_url,
        export_url,
    })
}

async fn export(
    State(state): State<WebState>,
    caller: Caller,
    Query(form): Query<AuditFilter>,
) -> Response {
    let filter = match audit_log::filter(&state, &form) {
        Ok(filter) => filter,
        Err(err) => return failed(err.message),
    };
    let params = serde_json::to_value(&form).unwrap_or_default();
    let (store, auditor) = (state.store.clone(), caller.clone());
    let audited = tokio::task::spawn_blocking(move || {
        let entry =
            auditor
                .actor()
                .entry(events::ACTIVITY_AUDIT_LOG, events::EXPORTED, "", "", params);
        tapline_audit::record(&store, &entry)
    })
    .await;
    match audited {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return failed(err),
        Err(err) => return failed(err),
    }
    // A few chunks in flight at most: the reader waits for a slow client.
    let (sender, receiver) = mpsc::channel(4);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut export = CsvExport::new(filter);
        loop {
            let chunk = match export.next_chunk(&store) {
                Ok(Some(chunk)) => Ok(Bytes::from(chunk)),
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(error = %err, "the audit log export failed");
                    Err(io::Error::other("the export failed; the log says why"))
                }
            };
            let failed = chunk.is_err();
            // The client went away: stop reading.
            if sender.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let mut response = Body::new(ChannelBody { receiver }).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"activity-audit-log.csv\""),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// A body fed chunk by chunk from a channel.
struct ChannelBody {
    receiver: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        self.get_mut()
            .receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(hyper::body::Frame::data)))
    }
}
