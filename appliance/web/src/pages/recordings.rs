//! Recordings (Recordings permission): the search form and its pages of results (an htmx
//! search swaps only the results), a call's details with its audio played in the browser,
//! download, and the legal hold (Administration). Playing and downloading are audited before
//! the first byte leaves.
//!
//! Audio is served with HTTP range requests (RFC 9110), which browsers use to seek: one range
//! per answer; a request for several ranges, or a range that does not read, gets the whole
//! file. Files are streamed from disk, never read whole into memory.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use askama::Template;
use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tapline_accounts::Permission;
use tapline_audit::events;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::WebState;
use crate::api::ApiError;
use crate::api::recordings::{
    self, HOLDS, RECORDINGS, RecordingDetail, RecordingFilter, RecordingPage,
};
use crate::guard::Caller;
use crate::pages::{Layout, error_page, failed, render};
use crate::routes::{Access, Route};

/// Bytes read from disk per chunk of a streamed file.
const CHUNK: usize = 64 * 1024;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/recordings", RECORDINGS, page)
            .nav("Recordings")
            .agent_param("agent"),
        Route::get("/recordings/{id}", RECORDINGS, detail),
        Route::get("/recordings/{id}/audio", RECORDINGS, audio),
        Route::get("/recordings/{id}/download", RECORDINGS, download),
        Route::post("/recordings/{id}/hold", HOLDS, hold),
    ]
}

#[derive(Template)]
#[template(path = "recordings.html")]
struct RecordingsPage {
    layout: Layout,
    filter: RecordingFilter,
    results: RecordingPage,
    /// The next page's URL, with the same filter.
    next_url: Option<String>,
}

async fn page(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<RecordingFilter>,
) -> Response {
    let layout = Layout::new(&caller, "Recordings", "/recordings");
    let (results, layout) = match recordings::search(&state, &caller, filter.clone()).await {
        Ok(results) => (results, layout),
        Err(err) if err.status == StatusCode::BAD_REQUEST => (
            RecordingPage {
                rows: Vec::new(),
                next: None,
                total: None,
                more_than: false,
                time_zone: String::new(),
            },
            layout.with_outcome(Some(Err::<String, _>(err.message))),
        ),
        Err(err) => return failed(err.message),
    };
    let next_url = results.next.as_ref().map(|next| {
        let next_filter = RecordingFilter {
            after: next.clone(),
            ..filter.clone()
        };
        format!(
            "/recordings?{}",
            serde_urlencoded::to_string(&next_filter).unwrap_or_default()
        )
    });
    render(&RecordingsPage {
        layout,
        filter,
        results,
        next_url,
    })
}

#[derive(Template)]
#[template(path = "recording.html")]
struct RecordingPageView {
    layout: Layout,
    call: RecordingDetail,
    may_hold: bool,
}

async fn detail(State(state): State<WebState>, caller: Caller, Path(id): Path<i64>) -> Response {
    match recordings::find(&state, &caller, id).await {
        Ok((detail, tz)) => render(&RecordingPageView {
            layout: Layout::new(&caller, "Recording", "/recordings"),
            call: recordings::detail_view(&detail, &tz),
            may_hold: caller.may(Access::Permission(Permission::Administration)),
        }),
        Err(err) => refused(err),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct HoldForm {
    /// `1` to hold, `0` to release.
    held: String,
    #[serde(default)]
    reason: String,
}

async fn hold(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(form): Form<HoldForm>,
) -> Response {
    match recordings::set_hold(&state, &caller, id, form.held == "1", &form.reason).await {
        Ok(_) => Redirect::to(&format!("/recordings/{id}")).into_response(),
        Err(err) => refused(err),
    }
}

async fn audio(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    serve(state, caller, id, &headers, Delivery::Play).await
}

async fn download(State(state): State<WebState>, caller: Caller, Path(id): Path<i64>) -> Response {
    serve(state, caller, id, &HeaderMap::new(), Delivery::Download).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// In the page's `<audio>` element, by ranges.
    Play,
    /// Saved as a file.
    Download,
}

/// Streams a recording's file (or the range asked for), after writing its audit row.
async fn serve(
    state: WebState,
    caller: Caller,
    id: i64,
    headers: &HeaderMap,
    delivery: Delivery,
) -> Response {
    let (detail, _) = match recordings::find(&state, &caller, id).await {
        Ok(found) => found,
        Err(err) => return refused(err),
    };
    let Some(path) = file_path(&state, &detail.directory, &detail.file_name) else {
        return not_found("the recording's file is not where its row says");
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return not_found("the recording's file is gone (removed by retention?)");
        }
        Err(err) => return failed(err),
    };
    let length = match file.metadata().await {
        Ok(metadata) => metadata.len(),
        Err(err) => return failed(err),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    let wanted = wanted(range, length);
    if let Wanted::Unsatisfiable = wanted {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{length}"))],
        )
            .into_response();
    }
    // A browser fetches the audio in many ranges as it plays and seeks; the play is audited
    // once, at the request that starts from the beginning.
    let first_request = matches!(wanted, Wanted::Whole | Wanted::Part(0, _));
    if delivery == Delivery::Download || first_request {
        let object = format!("{}/{}", detail.directory, detail.file_name);
        let sub_event = match delivery {
            Delivery::Play => events::PLAY,
            Delivery::Download => events::DOWNLOAD,
        };
        let params = serde_json::json!({ "id": id, "bytes": length, "range": range });
        let (store, caller) = (state.store.clone(), caller.clone());
        let audited = tokio::task::spawn_blocking(move || {
            let entry = caller
                .actor()
                .entry(events::RECORDINGS, sub_event, &object, "", params);
            tapline_audit::record(&store, &entry)
        })
        .await;
        match audited {
            Ok(Ok(_)) => {}
            // No audit row, no audio.
            Ok(Err(err)) => return failed(err),
            Err(err) => return failed(err),
        }
    }
    let (status, start, count) = match wanted {
        Wanted::Part(first, last) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        _ => (StatusCode::OK, 0, length),
    };
    if start > 0
        && let Err(err) = file.seek(io::SeekFrom::Start(start)).await
    {
        return failed(err);
    }
    let mut response = Body::new(FileBody {
        file,
        remaining: count,
        buffer: vec![0; CHUNK].into_boxed_slice(),
    })
    .into_response();
    *response.status_mut() = status;
    let answer = response.headers_mut();
    answer.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    answer.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    answer.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {start}-{}/{length}", start + count - 1))
    {
        answer.insert(header::CONTENT_RANGE, value);
    }
    let disposition = match delivery {
        Delivery::Play => "inline",
        Delivery::Download => "attachment",
    };
    // File names are the recorder's (`R` and digits, `.wav`), checked in `file_path`.
    if let Ok(value) =
        HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", detail.file_name))
    {
        answer.insert(header::CONTENT_DISPOSITION, value);
    }
    answer.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// `<data_dir>/recordings/<directory>/<file>`, if both names are plain names as the
/// recorder writes them: nothing read from the database reaches the file system as a path.
fn file_path(state: &WebState, directory: &str, file_name: &str) -> Option<PathBuf> {
    let plain = |name: &str| {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    };
    if !plain(directory) || !plain(file_name) {
        return None;
    }
    // The store's file is `<data_dir>/tapline.db`.
    let data_dir = state.store.path().parent()?;
    Some(
        tapline_index::recordings_root(data_dir)
            .join(directory)
            .join(file_name),
    )
}

/// What part of a `length`-byte file a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// First and last byte, both included.
    Part(u64, u64),
    Unsatisfiable,
}

fn wanted(range: Option<&str>, length: u64) -> Wanted {
    let Some(spec) = range.and_then(|range| range.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    // Several ranges: the whole file is a valid answer, and simpler for every client.
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) if suffix > 0 && length > 0 => {
            Wanted::Part(length - suffix.min(length), length - 1)
        }
        (true, _, _) => Wanted::Unsatisfiable,
        (false, Some(first), _) if first >= length => Wanted::Unsatisfiable,
        (false, Some(first), None) if last.trim().is_empty() => Wanted::Part(first, length - 1),
        (false, Some(first), Some(last)) if first <= last => {
            Wanted::Part(first, last.min(length - 1))
        }
        _ => Wanted::Whole,
    }
}

/// A file's bytes, `remaining` of them from where it stands, a chunk at a time.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buffer: Box<[u8]>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buffer.len());
        let mut read = ReadBuf::new(&mut this.buffer[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the recording shrank while sent",
                ))))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

fn refused(err: ApiError) -> Response {
    if err.status.is_server_error() {
        return failed(err.message);
    }
    render_html(err.status, &err.message)
}

fn not_found(reason: &str) -> Response {
    render_html(StatusCode::NOT_FOUND, reason)
}

fn render_html(status: StatusCode, reason: &str) -> Response {
    (status, axum::response::Html(error_page(status, reason))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_browsers_send_them() {
        let check = |range: Option<&str>, expected: Wanted| {
            assert_eq!(wanted(range, 1000), expected, "{range:?}");
        };
        check(None, Wanted::Whole);
        check(Some("bytes=0-"), Wanted::Part(0, 999));
        check(Some("bytes=0-1"), Wanted::Part(0, 1));
        check(Some("bytes=500-2000"), Wanted::Part(500, 999));
        check(Some("bytes=-100"), Wanted::Part(900, 999));
        check(Some("bytes=-5000"), Wanted::Part(0, 999));
        check(Some("bytes=1000-"), Wanted::Unsatisfiable);
        check(Some("bytes=-0"), Wanted::Unsatisfiable);
        check(Some("bytes=0-1,5-6"), Wanted::Whole);
        check(Some("bytes=9-3"), Wanted::Whole);
        check(Some("items=0-1"), Wanted::Whole);
        check(Some("bytes=x-y"), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
    }
}
