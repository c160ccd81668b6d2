//! Recordings (Recordings permission): search over every call, newest first, within the
//! caller's scope; a call's metadata and stream quality; its legal hold (Administration).
//! The page calls the same functions.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tapline_accounts::Permission;
use tapline_index::search::{self, Detail, Filter, Match, Request, SearchError, TimeRange, Total};
use tapline_index::{HoldChange, HoldError};
use tapline_store::rusqlite::{self, Connection};

use crate::WebState;
use crate::api::{ApiError, ErrorBody};
use crate::guard::Caller;
use crate::routes::{Access, Route};
use crate::scope::Scope;

pub(crate) const RECORDINGS: Access = Access::Permission(Permission::Recordings);
pub(crate) const HOLDS: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/recordings", RECORDINGS, list).agent_param("agent"),
        Route::get("/api/v1/recordings/{id}", RECORDINGS, show),
        Route::put("/api/v1/recordings/{id}/hold", HOLDS, hold),
    ]
}

/// The search form. Every field is optional; times are the tenant's local time.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
pub struct RecordingFilter {
    /// Answered at or after, tenant local time, `YYYY-MM-DDTHH:MM`.
    #[serde(default)]
    pub from: String,
    /// Answered before, tenant local time.
    #[serde(default)]
    pub to: String,
    /// A directory agent, by agent id or extension.
    #[serde(default)]
    pub agent: String,
    /// The agent's name as the call named it; a trailing `*` matches a prefix.
    #[serde(default)]
    pub agent_name: String,
    /// The first digits, or the whole number followed by `=` for an exact match.
    #[serde(default)]
    pub customer: String,
    /// As `customer`.
    #[serde(default)]
    pub called: String,
    /// The queue's name; a trailing `*` matches a prefix.
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub case_id: String,
    #[serde(default)]
    pub transaction_id: String,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: String,
    /// Rows a page, at most 200 (default 50).
    #[serde(default)]
    pub size: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordingRow {
    pub id: i64,
    /// Tenant local time, `YYYY-MM-DD HH:MM:SS`.
    pub answered: String,
    pub duration_seconds: Option<i64>,
    pub call_type: String,
    pub agent: String,
    pub customer_number: String,
    pub called_number: String,
    pub queue: String,
    pub case_id: String,
    pub transaction_id: String,
    pub status: String,
    pub legal_hold: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordingPage {
    pub rows: Vec<RecordingRow>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
    /// Matches, when cheap to count (see `more_than`).
    pub total: Option<u64>,
    /// `total` is a lower bound.
    pub more_than: bool,
    /// The tenant's time zone, in which times are given and shown.
    pub time_zone: String,
}

/// One labelled value of the detail view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordingDetail {
    pub id: i64,
    pub file_name: String,
    pub legal_hold: bool,
    pub metadata: Vec<Field>,
    pub file: Vec<Field>,
    /// Packets, loss and jitter of each direction, and time on hold.
    pub quality: Vec<Field>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct HoldRequest {
    pub held: bool,
    /// Why, for the audit log.
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HoldAnswer {
    pub held: bool,
    /// False when the call was already so.
    pub changed: bool,
}

/// Recordings matching the filter, newest first, within the caller's scope.
#[utoipa::path(get, path = "/api/v1/recordings", params(RecordingFilter),
    responses((status = 200, body = RecordingPage),
              (status = 400, body = ErrorBody, description = "A time or page token that does not read"),
              (status = 403, body = ErrorBody, description = "The agent is not in your scope")))]
pub(crate) async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<RecordingFilter>,
) -> Result<Json<RecordingPage>, ApiError> {
    Ok(Json(search(&state, &caller, filter).await?))
}

/// A call's metadata, file and stream quality.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = RecordingDetail),
              (status = 404, body = ErrorBody, description = "No such call in your scope")))]
pub(crate) async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<RecordingDetail>, ApiError> {
    let (detail, tz) = find(&state, &caller, id).await?;
    Ok(Json(detail_view(&detail, &tz)))
}

/// Places or lifts a call's legal hold (audited).
#[utoipa::path(put, path = "/api/v1/recordings/{id}/hold", params(("id" = i64, Path)),
    request_body = HoldRequest,
    responses((status = 200, body = HoldAnswer),
              (status = 404, body = ErrorBody, description = "No such call in your scope")))]
pub(crate) async fn hold(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(request): Json<HoldRequest>,
) -> Result<Json<HoldAnswer>, ApiError> {
    let change = set_hold(&state, &caller, id, request.held, &request.reason).await?;
    Ok(Json(HoldAnswer {
        held: request.held,
        changed: change == HoldChange::Changed,
    }))
}

pub(crate) async fn search(
    state: &WebState,
    caller: &Caller,
    form: RecordingFilter,
) -> Result<RecordingPage, ApiError> {
    let (state, scope) = (state.clone(), caller.scope.clone());
    tokio::task::spawn_blocking(move || {
        let tz = tenant_zone(&state)?;
        let after = match form.after.trim() {
            "" => None,
            token => Some(token.parse::<search::Cursor>().map_err(SearchError::from)?),
        };
        let (filter, allowed) = state.store.read(|conn| {
            let allowed = allowed_agents(conn, &scope)?;
            let agents = match form.agent.trim() {
                "" => Vec::new(),
                // An agent the directory does not know matches no call (never every call).
                key => Some(agent_refs(conn, key)?)
                    .filter(|refs| !refs.is_empty())
                    .unwrap_or(vec![0]),
            };
            Ok::<_, rusqlite::Error>((
                Filter {
                    agents,
                    ..Filter::default()
                },
                allowed,
            ))
        })?;
        let filter = Filter {
            answered: TimeRange::local(local_time(&form.from)?, local_time(&form.to)?, &tz)?,
            agent_name: Match::text(&form.agent_name),
            customer_number: Match::number(&form.customer),
            called_number: Match::number(&form.called),
            queue: Match::text(&form.queue),
            case_id: Match::text(&form.case_id),
            transaction_id: Match::text(&form.transaction_id),
            ..filter
        };
        let request = Request {
            filter: &filter,
            allowed_agents: allowed.as_deref(),
            after,
            page_size: form.size,
        };
        let page = search::search(&state.store, &request)?;
        let (total, more_than) = match page.total {
            Some(Total::Exact(n)) => (Some(n), false),
            Some(Total::MoreThan(n)) => (Some(n), true),
            None => (None, false),
        };
        Ok(RecordingPage {
            rows: page.rows.iter().map(|row| row_view(row, &tz)).collect(),
            next: page.next.map(|cursor| cursor.to_string()),
            total,
            more_than,
            time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        })
    })
    .await?
}

/// The call `id` if it is in the caller's scope, and the tenant's zone to show it in.
pub(crate) async fn find(
    state: &WebState,
    caller: &Caller,
    id: i64,
) -> Result<(Detail, TimeZone), ApiError> {
    let (state, scope) = (state.clone(), caller.scope.clone());
    tokio::task::spawn_blocking(move || {
        let allowed = state.store.read(|conn| allowed_agents(conn, &scope))?;
        let detail = search::by_id(&state.store, id, allowed.as_deref())?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such recording"))?;
        Ok((detail, tenant_zone(&state)?))
    })
    .await?
}

pub(crate) async fn set_hold(
    state: &WebState,
    caller: &Caller,
    id: i64,
    held: bool,
    reason: &str,
) -> Result<HoldChange, ApiError> {
    let (detail, _) = find(state, caller, id).await?;
    let (state, caller, reason) = (state.clone(), caller.clone(), reason.trim().to_owned());
    tokio::task::spawn_blocking(move || {
        let actor = caller.actor();
        let change = if held {
            tapline_index::hold_call(&state.store, &detail.file_name, &reason, &actor)
        } else {
            tapline_index::release_call(&state.store, &detail.file_name, &reason, &actor)
        };
        change.map_err(|err| match err {
            HoldError::NoSuchRecording(_) => ApiError::new(StatusCode::NOT_FOUND, err),
            HoldError::Store(_) => ApiError::internal(err),
        })
    })
    .await?
}

/// The tenant's time zone: the settings page's, else the configuration file's.
pub(crate) fn tenant_zone(state: &WebState) -> Result<TimeZone, ApiError> {
    let settings = state
        .store
        .read(|conn| crate::settings::effective(conn, &state.options.file_settings))?;
    let name = settings
        .iter()
        .find(|setting| setting.key == "tenant.timezone")
        .map_or("UTC", |setting| setting.value.as_str());
    Ok(TimeZone::get(name).unwrap_or(TimeZone::UTC))
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM`, seconds optional); blank is no bound.
pub(crate) fn local_time(text: &str) -> Result<Option<DateTime>, ApiError> {
    match text.trim() {
        "" => Ok(None),
        text => text.parse().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("\"{text}\" is not a date and time (YYYY-MM-DDTHH:MM)"),
            )
        }),
    }
}

/// The directory agents (`agents.id`) the caller may see, `None` for every agent. A scope
/// names agents by agent id or extension.
fn allowed_agents(conn: &Connection, scope: &Scope) -> rusqlite::Result<Option<Vec<i64>>> {
    match scope {
        Scope::All => Ok(None),
        Scope::Agents(keys) => {
            let mut refs = Vec::new();
            for key in keys {
                refs.extend(agent_refs(conn, key)?);
            }
            Ok(Some(refs))
        }
    }
}

fn agent_refs(conn: &Connection, key: &str) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached("SELECT id FROM agents WHERE agent_id = ?1 OR extension = ?1")?
        .query_map([key], |row| row.get(0))?
        .collect()
}

fn local_text(at: jiff::Timestamp, tz: &TimeZone) -> String {
    tz.to_datetime(at).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn row_view(row: &search::Summary, tz: &TimeZone) -> RecordingRow {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    RecordingRow {
        id: row.id,
        answered: local_text(row.answered_at, tz),
        duration_seconds: row.duration_ms.map(|ms| (ms + 500) / 1000),
        call_type: text(&row.call_type),
        agent: row
            .agent_name
            .clone()
            .or_else(|| row.agent_id.clone())
            .unwrap_or_default(),
        customer_number: text(&row.customer_number),
        called_number: text(&row.called_number),
        queue: text(&row.queue_name),
        case_id: text(&row.case_id),
        transaction_id: row.transaction_id.clone(),
        status: row.status.clone(),
        legal_hold: row.legal_hold,
    }
}

pub(crate) fn detail_view(detail: &Detail, tz: &TimeZone) -> RecordingDetail {
    let local = |text: &str| {
        text.parse()
            .map(|at| local_text(at, tz))
            .unwrap_or_else(|_| text.to_owned())
    };
    let some = |value: &Option<String>| value.clone().unwrap_or_default();
    let number = |value: Option<i64>| value.map(|n| n.to_string()).unwrap_or_default();
    let jitter = |value: Option<f64>| value.map(|ms| format!("{ms:.1} ms")).unwrap_or_default();
    let field = |label, value| Field { label, value };
    RecordingDetail {
        id: detail.id,
        file_name: detail.file_name.clone(),
        legal_hold: detail.legal_hold,
        metadata: vec![
            field("Call type", some(&detail.call_type)),
            field("Start time", local(&detail.answered_at)),
            field(
                "Stop time",
                detail.ended_at.as_deref().map(local).unwrap_or_default(),
            ),
            field("Start time UTC", detail.answered_at.clone()),
            field("Stop time UTC", some(&detail.ended_at)),
            field(
                "Duration",
                detail
                    .duration_ms
                    .map(|ms| format!("{} s", (ms + 500) / 1000))
                    .unwrap_or_default(),
            ),
            field("Agent name", some(&detail.agent_name)),
            field("Agent id", some(&detail.agent_id)),
            field("Agent extension", some(&detail.agent_extension)),
            field("Customer number", some(&detail.customer_number)),
            field("Called number", some(&detail.called_number)),
            field("Caller", some(&detail.caller_uri)),
            field("Caller name", some(&detail.caller_name)),
            field("Callee", some(&detail.callee_uri)),
            field("Phone channel", some(&detail.phone_channel)),
            field("Queue", some(&detail.queue)),
            field("Queue name", some(&detail.queue_name)),
            field("Case id", some(&detail.case_id)),
            field("Account", some(&detail.account)),
            field("Transaction id", detail.transaction_id.clone()),
            // The leg this one continues: the call an attended transfer replaced, or the
            // one whose REFER began a blind transfer.
            field("Parent transaction", some(&detail.parent_transaction_id)),
            field("Transferred to", some(&detail.referred_to)),
            field("SIP Call-ID", detail.sip_call_id.clone()),
            field("External variable 1", some(&detail.external_variable_1)),
            field("External variable 2", some(&detail.external_variable_2)),
            field("Outdial code", some(&detail.outdial_code)),
            field("Wrap up code", some(&detail.wrap_up_code)),
            field("End reason", some(&detail.end_reason)),
            field("Recorded because", some(&detail.record_reason)),
        ],
        file: vec![
            field("File", detail.file_name.clone()),
            field("Directory", detail.directory.clone()),
            field("Status", detail.status.clone()),
            field("Source", detail.source.clone()),
            field("Codec", some(&detail.codec)),
            field(
                "Format",
                format!(
                    "{}, {} Hz, {} channels",
                    detail.format, detail.sample_rate, detail.channels
                ),
            ),
            field("Size", number(detail.size_bytes)),
            field("SHA-256", some(&detail.sha256)),
            field("Kept media", some(&detail.raw_media_file)),
        ],
        quality: vec![
            field("Caller packets", number(detail.caller_packets)),
            field("Caller packets lost", number(detail.caller_lost)),
            field("Caller jitter", jitter(detail.caller_jitter_ms)),
            field("Callee packets", number(detail.callee_packets)),
            field("Callee packets lost", number(detail.callee_lost)),
            field("Callee jitter", jitter(detail.callee_jitter_ms)),
            field("Times on hold", number(detail.hold_count)),
            field(
                "Time on hold",
                detail
                    .hold_ms
                    .map(|ms| format!("{} s", (ms + 500) / 1000))
                    .unwrap_or_default(),
            ),
        ],
    }
}

impl From<SearchError> for ApiError {
    fn from(err: SearchError) -> ApiError {
        match err {
            SearchError::BadCursor | SearchError::LocalTime(..) | SearchError::Day(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, err)
            }
            SearchError::Store(_) => ApiError::internal(err),
        }
    }
}
