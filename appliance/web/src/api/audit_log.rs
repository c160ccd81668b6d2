//! The activity audit log (show_activity_log): rows newest first with the filters of the
//! Activity audit log page, and the events and sub events its lists offer. The page and the
//! CSV export call the same functions.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tapline_accounts::Permission;
use tapline_audit::query::{self, Filter, Match, QueryError, Total};

use crate::WebState;
use crate::api::recordings::{local_time, tenant_zone};
use crate::api::{ApiError, ErrorBody};
use crate::guard::Caller;
use crate::routes::{Access, Route};

pub(crate) const ACTIVITY_LOG: Access = Access::Permission(Permission::ShowActivityLog);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/audit-log", ACTIVITY_LOG, list),
        Route::get("/api/v1/audit-log/events", ACTIVITY_LOG, events),
    ]
}

/// The filter form. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
pub struct AuditFilter {
    /// Created at or after, `YYYY-MM-DDTHH:MM`, in `zone`.
    #[serde(default)]
    pub from: String,
    /// Created before, in `zone`.
    #[serde(default)]
    pub to: String,
    /// `utc` (the default) or `local`, the tenant's time zone.
    #[serde(default)]
    pub zone: String,
    /// User names, separated by commas.
    #[serde(default)]
    pub users: String,
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub sub_event: String,
    /// Exact, or a prefix when it ends with `*`.
    #[serde(default)]
    pub object: String,
    /// Text the comments contain.
    #[serde(default)]
    pub comments: String,
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: String,
    /// Rows a page, at most 200 (default 50).
    #[serde(default)]
    pub size: usize,
}

/// A row as seed 004 names its fields, with the chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    /// UTC.
    pub created: String,
    pub username: String,
    pub user_ip: String,
    pub event: String,
    pub sub_event: String,
    pub event_object: String,
    pub comments: String,
    pub request_uri: String,
    /// A JSON object, as stored.
    pub params: String,
    pub prev_hash: String,
    pub row_hash: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
    /// Matches, when cheap to count (see `more_than`).
    pub total: Option<u64>,
    /// `total` is a lower bound.
    pub more_than: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventPair {
    pub event: String,
    pub sub_event: String,
}

/// Audit rows matching the filter, newest first.
#[utoipa::path(get, path = "/api/v1/audit-log", params(AuditFilter),
    responses((status = 200, body = AuditPage),
              (status = 400, body = ErrorBody, description = "A time or page token that does not read")))]
pub(crate) async fn list(
    State(state): State<WebState>,
    _caller: Caller,
    Query(form): Query<AuditFilter>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(search(&state, form).await?))
}

/// Every event and sub event in the log, for the filter lists.
#[utoipa::path(get, path = "/api/v1/audit-log/events",
    responses((status = 200, body = Vec<EventPair>)))]
pub(crate) async fn events(
    State(state): State<WebState>,
    _caller: Caller,
) -> Result<Json<Vec<EventPair>>, ApiError> {
    Ok(Json(event_pairs(&state).await?))
}

pub(crate) async fn search(state: &WebState, form: AuditFilter) -> Result<AuditPage, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let filter = filter(&state, &form)?;
        let after = match form.after.trim() {
            "" => None,
            token => Some(token.parse().map_err(QueryError::from)?),
        };
        let page = query::search(&state.store, &filter, after, form.size)?;
        let (total, more_than) = match page.total {
            Some(Total::Exact(n)) => (Some(n), false),
            Some(Total::MoreThan(n)) => (Some(n), true),
            None => (None, false),
        };
        Ok(AuditPage {
            rows: page.rows.into_iter().map(row_view).collect(),
            next: page.next.map(|cursor| cursor.to_string()),
            total,
            more_than,
        })
    })
    .await?
}

pub(crate) async fn event_pairs(state: &WebState) -> Result<Vec<EventPair>, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        Ok(query::event_pairs(&state.store)?
            .into_iter()
            .map(|(event, sub_event)| EventPair { event, sub_event })
            .collect())
    })
    .await?
}

/// The form as a query filter; times in UTC unless the form says local.
pub(crate) fn filter(state: &WebState, form: &AuditFilter) -> Result<Filter, ApiError> {
    let tz = if form.zone == "local" {
        tenant_zone(state)?
    } else {
        TimeZone::UTC
    };
    let instant = |text: &str| -> Result<Option<jiff::Timestamp>, ApiError> {
        local_time(text)?
            .map(|at| {
                tz.to_ambiguous_timestamp(at)
                    .compatible()
                    .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, err))
            })
            .transpose()
    };
    let text = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
    Ok(Filter {
        from: instant(&form.from)?,
        to: instant(&form.to)?,
        usernames: form.users.split(',').filter_map(text).collect(),
        event: text(&form.event),
        sub_event: text(&form.sub_event),
        event_object: Match::parse(&form.object),
        comments: text(&form.comments),
    })
}

fn row_view(row: tapline_audit::Row) -> AuditRow {
    AuditRow {
        id: row.id,
        created: row.created_at,
        username: row.username,
        user_ip: row.user_ip,
        event: row.event,
        sub_event: row.sub_event,
        event_object: row.event_object,
        comments: row.comments,
        request_uri: row.request_uri,
        params: row.params,
        prev_hash: row.prev_hash,
        row_hash: row.row_hash,
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> ApiError {
        match err {
            QueryError::BadCursor => ApiError::new(StatusCode::BAD_REQUEST, err),
            QueryError::Store(_) | QueryError::Csv(_) | QueryError::Io(_) => {
                ApiError::internal(err)
            }
        }
    }
}
