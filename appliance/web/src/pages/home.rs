//! The start page: who is signed in, the pages their role opens, and the appliance's live
//! state (each service's state from the supervisor, and how many calls are being recorded).
//!
//! The live state is rendered into the page, then kept current by server-sent events from
//! `GET /live` (`text/event-stream`, one `live` event at once and every [`LIVE_INTERVAL`],
//! its data a JSON [`LiveState`]), which `live.js` (an asset every signed-in page loads, so
//! that it also runs when htmx swaps this page in; no inline script) applies to the page. A
//! stream ends after [`MAX_STREAM`]; the browser's `EventSource` reconnects on its own,
//! through the guard, so a session that has ended stops getting events.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Bytes, Frame};
use serde::Serialize;

use crate::WebState;
use crate::guard::Caller;
use crate::ops::state_name;
use crate::pages::{Layout, render};
use crate::routes::{Access, Route};

/// How often the stream sends the live state.
pub const LIVE_INTERVAL: Duration = Duration::from_secs(3);
/// How long one stream lasts before the browser is asked to reconnect.
pub const MAX_STREAM: Duration = Duration::from_secs(600);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/", Access::SignedIn, home).nav("Home"),
        Route::get("/live", Access::SignedIn, live),
    ]
}

/// What the home page shows live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveState {
    pub services: Vec<ServiceLine>,
    /// Calls being recorded now.
    pub recording: u64,
    /// When this was read, UTC.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceLine {
    pub name: &'static str,
    /// As `/health` names it: running, starting, restarting, stopping, stopped.
    pub state: &'static str,
    pub restarts: u64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    role: String,
    must_change_password: bool,
    live: Option<LiveState>,
}

async fn home(State(state): State<WebState>, caller: Caller) -> Response {
    let live = match live_state(&state).await {
        Ok(live) => Some(live),
        Err(err) => {
            tracing::error!(error = %err, "cannot read the live state");
            None
        }
    };
    render(&HomePage {
        layout: Layout::new(&caller, "Home", "/"),
        role: caller.role.clone(),
        must_change_password: caller.must_change_password,
        live,
    })
}

/// The live state now.
async fn live_state(state: &WebState) -> Result<LiveState, LiveError> {
    let services = state
        .supervisor
        .statuses()
        .iter()
        .map(|status| ServiceLine {
            name: status.name,
            state: state_name(status),
            restarts: status.restarts,
        })
        .collect();
    let store = state.store.clone();
    let recording = tokio::task::spawn_blocking(move || {
        store.read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM recordings WHERE status = 'recording'",
                [],
                |row| row.get::<_, u64>(0),
            )
        })
    })
    .await??;
    Ok(LiveState {
        services,
        recording,
        at: tapline_store::utc_text(jiff::Timestamp::now()),
    })
}

#[derive(Debug, thiserror::Error)]
enum LiveError {
    #[error("database error")]
    Store(#[from] tapline_store::rusqlite::Error),
    #[error("the read was cancelled")]
    Cancelled(#[from] tokio::task::JoinError),
}

/// The event stream: a task reads the live state and hands each event to the response body
/// through a one-place channel, so a slow client holds at most one event, and the task ends
/// when the client goes, the stream has lasted [`MAX_STREAM`], or the appliance shuts down.
async fn live(State(state): State<WebState>, _caller: Caller) -> Response {
    let (events, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        // EventSource waits this long before reconnecting.
        let retry = format!("retry: {}\n\n", LIVE_INTERVAL.as_millis());
        if events.send(Bytes::from(retry)).await.is_err() {
            return;
        }
        let end = tokio::time::Instant::now() + MAX_STREAM;
        let mut ticks = tokio::time::interval(LIVE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while tokio::time::Instant::now() < end {
            ticks.tick().await;
            let event = match live_state(&state).await {
                Ok(live) => sse_event("live", &live),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the live state");
                    continue;
                }
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut response = Body::new(EventBody { receiver }).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One server-sent event. JSON has no raw newline, so the data is one `data:` line.
fn sse_event(name: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// A response body fed by a channel: it ends when the sender does.
struct EventBody {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_data_line_each() {
        let live = LiveState {
            services: vec![ServiceLine {
                name: "web",
                state: "running",
                restarts: 0,
            }],
            recording: 2,
            at: "2026-11-21T14:03:12.250000Z".to_owned(),
        };
        let event = sse_event("live", &live);
        assert_eq!(
            std::str::from_utf8(&event).unwrap(),
            "event: live\ndata: {\"services\":[{\"name\":\"web\",\"state\":\"running\",\
             \"restarts\":0}],\"recording\":2,\"at\":\"2026-11-21T14:03:12.250000Z\"}\n\n"
        );
    }
}
