//! The one place where requests are authorized.
//!
//! For every request the guard, in order:
//! 1. looks the route up in the route table (a route mounted outside it is refused with 500);
//! 2. refuses a state-changing request that a browser says comes from another site;
//! 3. lets public routes through;
//! 4. signs the caller in from the session cookie: none, or a session that has timed out or
//!    whose account is disabled, is 401 for the API and a redirect to the sign-in page for
//!    pages;
//! 5. checks the route's permission (403), and sends an account that must change its password
//!    to the password page;
//! 6. checks the session's CSRF token on every state-changing request (header `X-CSRF-Token`
//!    for htmx and the API, form field `csrf_token` for plain forms: anywhere in a urlencoded
//!    form, the first field of a `multipart/form-data` one, so that an upload is checked
//!    before its file is read);
//! 7. checks that the agent the request names, if any, is in the caller's scope (403);
//! 8. hands the handler a [`Caller`], which handlers take as an argument: a handler cannot
//!    run without the proof that all of the above passed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::Timestamp;
use tapline_audit::Actor;
use tapline_store::rusqlite::{self, OptionalExtension};

use crate::WebState;
use crate::body::{next_data, prefixed};
use crate::roles::{self, Permissions};
use crate::routes::{Access, Kind, RouteSpec, Table};
use crate::scope::Scope;
use crate::security::same_origin;
use crate::session::{self, Timeouts};

/// The header htmx and API clients send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field plain forms send it in.
pub const CSRF_FIELD: &str = "csrf_token";
/// Form bodies are read whole to find the token; none of ours is near this.
const MAX_FORM_BODY: usize = 1 << 20;
/// A multipart form's token is its first field, which must end within this many bytes. Only
/// this much is read before the token is checked; the rest of the body (a file of megabytes)
/// streams on to the handler, which bounds it.
const MAX_MULTIPART_PREFIX: usize = 64 << 10;

/// A signed-in account that may use the route it is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    pub role: String,
    pub permissions: Permissions,
    pub scope: Scope,
    pub must_change_password: bool,
    pub ip: String,
    pub request_uri: String,
    pub(crate) session_hash: String,
    pub(crate) csrf: String,
}

impl Caller {
    /// Who acts, for the audit log.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            username: &self.account,
            user_ip: &self.ip,
            request_uri: &self.request_uri,
        }
    }

    pub fn may(&self, access: Access) -> bool {
        match access {
            Access::Public | Access::SignedIn => true,
            Access::Permission(p) => self.permissions.has(p),
        }
    }

    /// The token pages put in forms and in htmx's headers.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, StatusCode> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(uri = %parts.uri, "a handler needing a caller ran without the guard");
            StatusCode::INTERNAL_SERVER_ERROR
        })
    }
}

/// Where the request came from and what it asked for, for public handlers that audit (sign-in).
#[derive(Debug, Clone)]
pub struct Origin {
    pub ip: String,
    pub request_uri: String,
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Origin, Self::Rejection> {
        Ok(Origin {
            ip: client_ip(parts),
            request_uri: request_uri(parts),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        })
    }
}

#[derive(Clone)]
struct Guard {
    table: Arc<Table>,
    state: WebState,
}

pub(crate) fn layer(
    router: Router<WebState>,
    table: Arc<Table>,
    state: WebState,
) -> Router<WebState> {
    router.layer(axum::middleware::from_fn_with_state(
        Guard { table, state },
        guard,
    ))
}

async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Some(matched) = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return after_draining(body, StatusCode::NOT_FOUND.into_response()).await;
    };
    let method = match parts.method {
        Method::HEAD => Method::GET,
        ref other => other.clone(),
    };
    let Some(spec) = guard.table.get(&(method, matched.clone())).cloned() else {
        if guard.table.keys().any(|(_, path)| *path == matched) {
            return after_draining(body, StatusCode::METHOD_NOT_ALLOWED.into_response()).await;
        }
        tracing::error!(path = %matched, "refused a route that is not in the route table");
        return after_draining(body, StatusCode::INTERNAL_SERVER_ERROR.into_response()).await;
    };
    let changes_state = !matches!(parts.method, Method::GET | Method::HEAD);
    if changes_state && !same_origin(&parts.headers, host(&parts)) {
        return after_draining(
            body,
            refuse(&spec, StatusCode::FORBIDDEN, "cross-site request refused"),
        )
        .await;
    }
    if spec.access == Access::Public {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let caller = match sign_in_from_cookie(&guard.state, &parts).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return after_draining(body, anonymous(&spec, &parts)).await,
        Err(err) => {
            tracing::error!(error = %err, "cannot check the session");
            return after_draining(body, StatusCode::INTERNAL_SERVER_ERROR.into_response()).await;
        }
    };
    if !caller.may(spec.access) {
        let refused = refuse(
            &spec,
            StatusCode::FORBIDDEN,
            "your role does not allow this",
        );
        return after_draining(body, refused).await;
    }
    if caller.must_change_password && spec.access != Access::SignedIn {
        let refused = match spec.kind() {
            Kind::Page => Redirect::to("/account/password").into_response(),
            Kind::Api => refuse(&spec, StatusCode::FORBIDDEN, "change your password first"),
        };
        return after_draining(body, refused).await;
    }
    let body = if changes_state {
        match check_csrf(&parts.headers, body, &caller).await {
            Ok(body) => body,
            Err((refusal, rest)) => return after_draining(rest, refusal(&spec)).await,
        }
    } else {
        body
    };
    if let Some(param) = spec.agent_param
        && let Some(agent) = agent_named(&mut parts, param).await
        && !caller.scope.allows(&agent)
    {
        let refused = refuse(
            &spec,
            StatusCode::FORBIDDEN,
            "that agent is not in your scope",
        );
        return after_draining(body, refused).await;
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

/// The most of a refused request's body read before answering, and for how long.
const DRAIN_LIMIT: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Drains what the client is still sending (bounded in size and time; see
/// [`crate::body::drain`]), then answers.
async fn after_draining(body: Body, response: Response) -> Response {
    crate::body::drain(body, DRAIN_LIMIT, DRAIN_TIME).await;
    response
}

/// The caller the session cookie stands for, if it is live and its account enabled.
async fn sign_in_from_cookie(state: &WebState, parts: &Parts) -> rusqlite::Result<Option<Caller>> {
    let Some(token) = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
    else {
        return Ok(None);
    };
    let state = state.clone();
    let ip = client_ip(parts);
    let request_uri = request_uri(parts);
    tokio::task::spawn_blocking(move || {
        let now = Timestamp::now();
        let timeouts = timeouts(&state);
        let Some(found) = state
            .store
            .read(|conn| session::find(conn, &token, timeouts, now))?
        else {
            return Ok(None);
        };
        let account = state.store.read(|conn| {
            conn.query_row(
                "SELECT name, role, must_change_password, disabled_at IS NOT NULL
                 FROM accounts WHERE name = ?1",
                [&found.account],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        // A disabled account's sessions end at its next request, if disabling did not end them.
        let Some((name, role, must_change_password, _)) = account.filter(|a| !a.3) else {
            state.store.write(|tx| session::end(tx, &found.id_hash))?;
            return Ok(None);
        };
        let permissions = state
            .store
            .read(|conn| roles::permissions_of(conn, &role))?
            .unwrap_or_default();
        if session::needs_touch(&found, now) {
            state.store.write(|tx| {
                session::touch(tx, &found.id_hash, now)?;
                session::prune(tx, timeouts, now)
            })?;
        }
        let scope = state.scopes.scope_of(&name);
        Ok(Some(Caller {
            account: name,
            role,
            permissions,
            scope,
            must_change_password,
            ip,
            request_uri,
            session_hash: found.id_hash,
            csrf: session::csrf_token(&token),
        }))
    })
    .await
    .unwrap_or_else(|err| {
        tracing::error!(error = %err, "the session check was cancelled");
        Ok(None)
    })
}

pub(crate) fn timeouts(state: &WebState) -> Timeouts {
    Timeouts {
        idle: state.options.idle_timeout,
        lifetime: state.options.session_lifetime,
    }
}

type Refusal = Box<dyn FnOnce(&RouteSpec) -> Response + Send>;

/// The body back if the request carries the session's CSRF token: in the header or, for a
/// form, in its `csrf_token` field. A refusal comes with what is left of the body, to drain.
async fn check_csrf(
    headers: &HeaderMap,
    body: Body,
    caller: &Caller,
) -> Result<Body, (Refusal, Body)> {
    let matches = |offered: &str| {
        use subtle::ConstantTimeEq;
        bool::from(caller.csrf.as_bytes().ct_eq(offered.as_bytes()))
    };
    if let Some(offered) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if matches(offered) {
            Ok(body)
        } else {
            Err((Box::new(csrf_refused), body))
        };
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if starts_with_ignore_case(content_type, "multipart/form-data") {
        let (offered, body) = first_multipart_field(content_type, body).await;
        return match offered {
            Some(offered) if matches(&offered) => Ok(body),
            _ => Err((Box::new(csrf_refused), body)),
        };
    }
    if !starts_with_ignore_case(content_type, "application/x-www-form-urlencoded") {
        return Err((Box::new(csrf_refused), body));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BODY).await else {
        let too_large: Refusal = Box::new(|spec: &RouteSpec| {
            refuse(spec, StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
        });
        return Err((too_large, Body::empty()));
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let offered = fields
        .iter()
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.as_str());
    match offered {
        Some(offered) if matches(offered) => Ok(Body::from(bytes)),
        _ => Err((Box::new(csrf_refused), Body::empty())),
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The value of a multipart body's first field if that field is `csrf_token`, and the body
/// whole again. Reads only until that field ends, at most [`MAX_MULTIPART_PREFIX`] bytes:
/// browsers send a form's fields in document order, and our forms put the token first.
async fn first_multipart_field(content_type: &str, mut body: Body) -> (Option<String>, Body) {
    let mut prefix = Vec::new();
    let mut ended = false;
    loop {
        // A chunk may hold far more than the field: the parser is given only the bytes the
        // field may end within.
        let head = &prefix[..prefix.len().min(MAX_MULTIPART_PREFIX)];
        match first_field_of(content_type, head).await {
            FirstField::Token(token) => return (Some(token), prefixed(prefix, body, ended)),
            FirstField::Other => return (None, prefixed(prefix, body, ended)),
            FirstField::Incomplete if ended || prefix.len() >= MAX_MULTIPART_PREFIX => {
                return (None, prefixed(prefix, body, ended));
            }
            FirstField::Incomplete => {}
        }
        match next_data(&mut body).await {
            Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
            // The client went away or sent too much: nothing more to read, or to hand on.
            Some(Err(_)) | None => ended = true,
        }
    }
}

enum FirstField {
    Token(String),
    /// The first field is something else, or the body is not a multipart form.
    Other,
    /// The first field has not ended within these bytes.
    Incomplete,
}

/// Parses the first field out of the bytes of a multipart body read so far.
async fn first_field_of(content_type: &str, prefix: &[u8]) -> FirstField {
    use axum::extract::{FromRequest, Multipart};
    let Ok(request) = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(prefix.to_vec()))
    else {
        return FirstField::Other;
    };
    let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
        // No boundary in the content type: no read will give one.
        return FirstField::Other;
    };
    match multipart.next_field().await {
        Ok(Some(field)) if field.name() == Some(CSRF_FIELD) => match field.bytes().await {
            Ok(value) => {
                String::from_utf8(value.to_vec()).map_or(FirstField::Other, FirstField::Token)
            }
            Err(_) => FirstField::Incomplete,
        },
        Ok(Some(_)) => FirstField::Other,
        // Cut short before the first field ends, or not a well-formed form at all: the caller
        // reads on, up to its bound, and refuses if no token field ever ends.
        Ok(None) | Err(_) => FirstField::Incomplete,
    }
}

fn csrf_refused(spec: &RouteSpec) -> Response {
    refuse(
        spec,
        StatusCode::FORBIDDEN,
        "missing or wrong CSRF token; reload the page",
    )
}

/// The agent a request names in `param`, in its path or its query.
async fn agent_named(parts: &mut Parts, param: &str) -> Option<String> {
    if let Ok(params) = RawPathParams::from_request_parts(parts, &()).await
        && let Some((_, value)) = params.iter().find(|(name, _)| *name == param)
    {
        return Some(value.to_owned());
    }
    let query = parts.uri.query()?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs
        .into_iter()
        .find(|(name, value)| name == param && !value.is_empty())
        .map(|(_, value)| value)
}

fn anonymous(spec: &RouteSpec, parts: &Parts) -> Response {
    match spec.kind() {
        Kind::Api => refuse(spec, StatusCode::UNAUTHORIZED, "sign in first"),
        Kind::Page if parts.method == Method::GET => {
            let next = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Redirect::to(&format!("/signin?{query}")).into_response()
        }
        Kind::Page => Redirect::to("/signin").into_response(),
    }
}

/// A refusal in the route's language: JSON for the API, a short page otherwise.
pub(crate) fn refuse(spec: &RouteSpec, status: StatusCode, reason: &str) -> Response {
    match spec.kind() {
        Kind::Api => crate::api::error(status, reason),
        Kind::Page => (status, Html(crate::pages::error_page(status, reason))).into_response(),
    }
}

fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical().to_string())
        .unwrap_or_default()
}

/// The path and query, as the audit log's Request URI.
fn request_uri(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

/// The host the client asked for: HTTP/2's authority or HTTP/1.1's Host header.
fn host(parts: &Parts) -> Option<&str> {
    parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}
