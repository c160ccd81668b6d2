//! The route table, walked: every route with every built-in role and with no one, the agent
//! scope, the OpenAPI document, and that no route can be mounted outside the table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use prometheus_client::registry::Registry;
use tapline_accounts::Role;
use tapline_audit::Actor;
use tapline_runtime::{RestartPolicy, Supervisor};
use tapline_store::Store;
use tower::ServiceExt;

use crate::routes::{Access, Kind, RouteSpec, table};
use crate::scope::{Scope, ScopeResolver};
use crate::session::{self, Token};
use crate::settings::FileSettings;
use crate::{WebOptions, WebState, router};

struct Rig {
    _dir: tempfile::TempDir,
    state: WebState,
}

fn rig(scopes: Option<Arc<dyn ScopeResolver>>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_in(dir.path()).unwrap());
    let mut registry = Registry::default();
    let supervisor = Supervisor::new(RestartPolicy::default(), &mut registry);
    let options = WebOptions {
        idle_timeout: Duration::from_secs(1800),
        session_lifetime: Duration::from_secs(12 * 3600),
        lockout: tapline_accounts::lockout::LockoutPolicy {
            failures_before_lockout: 3,
            lockout: Duration::from_secs(900),
        },
        failure_delay: Duration::from_millis(10),
        file_settings: FileSettings {
            values: BTreeMap::from([("tenant.name".to_owned(), "AcmeJets".to_owned())]),
        },
    };
    let mut state = WebState::new(
        supervisor.handle(),
        store.clone(),
        Arc::new(registry),
        options,
    );
    if let Some(scopes) = scopes {
        state.scopes = scopes;
    }
    for role in Role::ALL {
        let name = role.as_str().to_lowercase();
        tapline_accounts::upsert(
            &store,
            &name,
            role,
            "a long enough password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
    }
    Rig { _dir: dir, state }
}

impl Rig {
    /// A fresh session for `account`: some routes end the session they are called with.
    fn session(&self, account: &str) -> Token {
        let token = Token::generate().unwrap();
        self.state
            .store
            .write(|tx| {
                session::create(
                    tx,
                    &token,
                    account,
                    "test",
                    "127.0.0.1",
                    jiff::Timestamp::now(),
                )
            })
            .unwrap();
        token
    }

    async fn call(&self, request: Request<Body>) -> axum::response::Response {
        let mut request = request;
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        router(self.state.clone()).oneshot(request).await.unwrap()
    }
}

/// A request for `spec`, with sample values in its path parameters.
fn request(spec: &RouteSpec, token: Option<&Token>) -> Request<Body> {
    let path = spec
        .path
        .replace("{name}", "someone")
        .replace("{file}", "nothing.js");
    let mut builder = Request::builder()
        .method(spec.method.clone())
        .uri(&path)
        .header(header::HOST, "tapline.test");
    if let Some(token) = token {
        builder = builder
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            )
            .header(crate::guard::CSRF_HEADER, session::csrf_token(token));
    }
    let body = if spec.method == Method::GET {
        Body::empty()
    } else if spec.kind() == Kind::Api {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
        Body::from("{}")
    } else {
        builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Body::empty()
    };
    builder.body(body).unwrap()
}

#[tokio::test]
async fn every_route_with_every_role_and_with_no_one() {
    let rig = rig(None);
    let table = table();
    assert!(table.len() > 30, "the table has {} routes", table.len());
    for spec in &table {
        let what = format!("{} {} ({})", spec.method, spec.path, spec.access.describe());
        let anonymous = rig.call(request(spec, None)).await;
        match (spec.access, spec.kind()) {
            (Access::Public, _) => assert!(
                !matches!(
                    anonymous.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ),
                "{what}: {}",
                anonymous.status()
            ),
            (_, Kind::Api) => assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{what}"),
            (_, Kind::Page) => {
                assert_eq!(anonymous.status(), StatusCode::SEE_OTHER, "{what}");
                let location = anonymous.headers()[header::LOCATION].to_str().unwrap();
                assert!(location.starts_with("/signin"), "{what}: {location}");
            }
        }
        for role in Role::ALL {
            let token = rig.session(&role.as_str().to_lowercase());
            let response = rig.call(request(spec, Some(&token))).await;
            let allowed = match spec.access {
                Access::Public | Access::SignedIn => true,
                Access::Permission(p) => role.has(p),
            };
            let status = response.status();
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} as {role}: {status}"
                );
                assert!(
                    status != StatusCode::INTERNAL_SERVER_ERROR,
                    "{what} as {role}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}");
            }
        }
    }
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_our_origin() {
    let rig = rig(None);
    let spec = table()
        .into_iter()
        .find(|s| s.path == "/api/v1/roles/{name}" && s.method == Method::PUT)
        .unwrap();
    let token = rig.session("administrator");
    let body = r#"{"permissions": ["Recordings"]}"#;
    let put = |csrf: Option<String>, origin: Option<&'static str>| {
        let mut builder = Request::builder()
            .method(Method::PUT)
            .uri("/api/v1/roles/Quality")
            .header(header::HOST, "tapline.test")
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            );
        if let Some(csrf) = csrf {
            builder = builder.header(crate::guard::CSRF_HEADER, csrf);
        }
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::from(body)).unwrap()
    };
    let good = session::csrf_token(&token);
    let other = session::csrf_token(&Token::generate().unwrap());
    assert_eq!(
        rig.call(put(None, None)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(put(Some(other), None)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(put(Some(good.clone()), Some("https://evil.example")))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rig.call(put(Some(good), Some("https://tapline.test")))
            .await
            .status(),
        StatusCode::NO_CONTENT,
        "{spec:?}"
    );
    // A plain form carries the token in a field.
    let form = |csrf: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/roles/Quality/delete")
            .header(header::HOST, "tapline.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            )
            .body(Body::from(format!("csrf_token={csrf}")))
            .unwrap()
    };
    assert_eq!(
        rig.call(form("wrong")).await.status(),
        StatusCode::FORBIDDEN
    );
    let response = rig.call(form(&session::csrf_token(&token))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let roles = rig.state.store.read(crate::roles::list).unwrap();
    assert_eq!(roles.len(), 4, "the custom role is gone");
}

struct OnlyAgent201;

impl ScopeResolver for OnlyAgent201 {
    fn scope_of(&self, _account: &str) -> Scope {
        Scope::Agents(["201".to_owned()].into())
    }
}

#[tokio::test]
async fn an_agent_out_of_scope_is_refused_in_one_place() {
    let rig = rig(Some(Arc::new(OnlyAgent201)));
    let scoped: Vec<RouteSpec> = table()
        .into_iter()
        .filter(|s| s.agent_param.is_some())
        .collect();
    assert!(!scoped.is_empty());
    for spec in scoped {
        for (agent, expected) in [("201", StatusCode::OK), ("202", StatusCode::FORBIDDEN)] {
            let token = rig.session("supervisor");
            let uri = format!("{}?{}={agent}", spec.path, spec.agent_param.unwrap());
            let request = Request::builder()
                .uri(uri)
                .header(
                    header::COOKIE,
                    format!("{}={}", session::COOKIE, token.as_str()),
                )
                .body(Body::empty())
                .unwrap();
            let status = rig.call(request).await.status();
            assert_eq!(status, expected, "{} agent {agent}", spec.path);
        }
    }
}

#[tokio::test]
async fn navigation_shows_only_what_the_role_opens() {
    let rig = &rig(None);
    let page = |account: &'static str| {
        let token = rig.session(account);
        let request = Request::builder()
            .uri("/")
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            )
            .body(Body::empty())
            .unwrap();
        async move {
            let response = rig.call(request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    let admin = page("administrator").await;
    assert!(admin.contains(r#"href="/accounts""#) && admin.contains(r#"href="/settings""#));
    let supervisor = page("supervisor").await;
    assert!(!supervisor.contains(r#"href="/accounts""#), "{supervisor}");
    assert!(supervisor.contains(r#"href="/whisper-log""#));
    let agent = page("agent").await;
    assert!(!agent.contains(r#"href="/whisper-log""#));
    assert!(!agent.contains("<script>"), "no inline script");
}

/// htmx swaps pages in without running the scripts they name, so the scripts pages need are
/// loaded by the frame of every page, and a boosted visit gets the page itself.
#[tokio::test]
async fn every_signed_in_page_loads_the_live_and_copy_scripts() {
    let rig = rig(None);
    let token = rig.session("administrator");
    let get = |path: &str, boosted: bool| {
        let mut builder = Request::builder().uri(path).header(
            header::COOKIE,
            format!("{}={}", session::COOKIE, token.as_str()),
        );
        if boosted {
            builder = builder
                .header("hx-request", "true")
                .header("hx-boosted", "true");
        }
        builder.body(Body::empty()).unwrap()
    };
    for path in ["/", "/audit-log", "/directory/import"] {
        let response = rig.call(get(path, true)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(!response.headers().contains_key("hx-redirect"), "{path}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        for script in [crate::assets::live_js_path(), crate::assets::copy_js_path()] {
            assert!(
                page.contains(&format!(r#"<script src="{script}" defer></script>"#)),
                "{path} loads {script}"
            );
        }
    }
    for script in [crate::assets::live_js_path(), crate::assets::copy_js_path()] {
        let response = rig.call(get(script, false)).await;
        assert_eq!(response.status(), StatusCode::OK, "{script}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(
            response.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
}

#[test]
fn the_openapi_document_lists_every_api_route() {
    use utoipa::OpenApi;
    let document = serde_json::to_value(crate::api::openapi::ApiDoc::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    for spec in table().iter().filter(|s| s.kind() == Kind::Api) {
        let method = spec.method.as_str().to_lowercase();
        assert!(
            paths.get(spec.path).and_then(|p| p.get(&method)).is_some(),
            "{} {} is not in the OpenAPI document",
            spec.method,
            spec.path
        );
    }
    for (path, _) in paths {
        assert!(
            table().iter().any(|s| s.path == path),
            "{path} is documented but not routed"
        );
    }
}

/// The router is built from the table alone: no source file but `routes.rs` mounts a handler.
#[test]
fn no_route_is_mounted_outside_the_table() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap();
            if name == "routes.rs" || name == "tests.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for needle in [
                ".route(",
                ".nest(",
                ".merge(",
                "route_service(",
                ".fallback(",
            ] {
                if text.contains(needle) {
                    offenders.push(format!("{}: {needle}", path.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// Every audit row's event and sub event come from `tapline_audit::events`, the catalogue the
/// activity log's filters list: no source file spells one as a string of its own.
#[test]
fn audit_event_names_come_from_the_catalogue() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices(".entry(") {
                let args: Vec<&str> = text[at + ".entry(".len()..]
                    .splitn(3, ',')
                    .take(2)
                    .map(str::trim)
                    .collect();
                if args.iter().any(|arg| arg.starts_with('"')) {
                    offenders.push(format!("{}: .entry({})", path.display(), args.join(", ")));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[tokio::test]
async fn a_route_missing_from_the_table_is_refused() {
    let rig = rig(None);
    // Build a table that lacks the accounts page, as if a module forgot to declare it.
    let mut table = crate::routes::Table::new();
    for spec in crate::routes::table() {
        if spec.path != "/accounts" {
            table.insert((spec.method.clone(), spec.path.to_owned()), spec);
        }
    }
    let app = crate::guard::layer(
        axum::Router::new().route("/accounts", axum::routing::get(|| async { "served" })),
        Arc::new(table),
        rig.state.clone(),
    )
    .with_state(rig.state.clone());
    let token = rig.session("administrator");
    let request = Request::builder()
        .uri("/accounts")
        .header(
            header::COOKIE,
            format!("{}={}", session::COOKIE, token.as_str()),
        )
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn sign_in_renews_the_session_and_counts_failures() {
    let rig = rig(None);
    let sign_in = |password: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/session")
            .header(header::HOST, "tapline.test")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(
                r#"{{"username": "auditor", "password": "{password}"}}"#
            )))
            .unwrap()
    };
    let first = rig.call(sign_in("a long enough password")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = rig.call(sign_in("a long enough password")).await;
    let cookie =
        |r: &axum::response::Response| r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert_ne!(cookie(&first), cookie(&second), "a new id at every sign-in");
    assert!(cookie(&first).contains("Secure; HttpOnly; SameSite=Strict"));
    for _ in 0..3 {
        let wrong = rig.call(sign_in("not the password!")).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = rig.call(sign_in("a long enough password")).await;
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED, "locked out");
    let events: Vec<String> = rig
        .state
        .store
        .read(|c| {
            let mut s =
                c.prepare("SELECT sub_event FROM audit_log WHERE event = 'Web' ORDER BY id")?;
            s.query_map([], |r| r.get(0))?.collect()
        })
        .unwrap();
    assert_eq!(
        events,
        [
            "Login",
            "Login",
            "Login failed",
            "Login failed",
            "Login failed",
            "Lockout",
            "Login failed"
        ]
    );
}

// ---- The agent directory's CSV import, uploaded ---------------------------------------------

const IMPORT_HEADER: &str = "agent_id,name,email,extension,daa_number,group,team,\
     recording_percentage,account,device_kind,device_value,recording_group,recording_type";

/// A good file: two agents, one with a name that is not ASCII.
fn import_csv() -> String {
    format!(
        "{IMPORT_HEADER}\r\n701,Ana Díaz,,701,,North,,,,extension,701,,\r\n\
         702,Bo Li,,702,,North,,,,extension,702,,\r\n"
    )
}

const BOUNDARY: &str = "tapline-test-3f9c2a";

/// A `multipart/form-data` body of `parts`: name, file name for a file, content.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file_name {
            Some(file_name) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; \
                     filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// A body that arrives `size` bytes at a time, as a slow upload does.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    size: usize,
}

impl hyper::body::Body for Trickle {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let start = self.at;
        let end = (start + self.size).min(self.data.len());
        self.at = end;
        std::task::Poll::Ready((start < end).then(|| {
            Ok(hyper::body::Frame::data(
                axum::body::Bytes::copy_from_slice(&self.data[start..end]),
            ))
        }))
    }
}

impl Rig {
    /// Posts the import form as a browser without JavaScript does: the token is a field.
    async fn post_import(
        &self,
        token: &Token,
        header_csrf: Option<String>,
        body: Body,
    ) -> (StatusCode, String) {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/directory/import")
            .header(header::HOST, "tapline.test")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            );
        if let Some(csrf) = header_csrf {
            builder = builder.header(crate::guard::CSRF_HEADER, csrf);
        }
        let response = self.call(builder.body(body).unwrap()).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn post_api_import(
        &self,
        token: &Token,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/directory/import")
            .header(header::HOST, "tapline.test")
            .header(header::CONTENT_TYPE, "text/csv")
            .header(
                header::COOKIE,
                format!("{}={}", session::COOKIE, token.as_str()),
            )
            .header(crate::guard::CSRF_HEADER, session::csrf_token(token))
            .body(Body::from(body))
            .unwrap();
        let response = self.call(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn agent_names(&self) -> Vec<String> {
        self.state
            .store
            .read(|c| {
                c.prepare("SELECT name FROM agents ORDER BY agent_id")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .unwrap()
    }

    /// The Event Object of each import's audit row.
    fn imports_audited(&self) -> Vec<String> {
        self.state
            .store
            .read(|c| {
                c.prepare(
                    "SELECT event_object FROM audit_log
                     WHERE event = 'Agent directory' AND sub_event = 'Imported' ORDER BY id",
                )?
                .query_map([], |r| r.get(0))?
                .collect()
            })
            .unwrap()
    }
}

#[tokio::test]
async fn a_csv_file_uploaded_through_the_form_is_imported_bom_and_all() {
    let rig = rig(None);
    let token = rig.session("administrator");
    let csrf = session::csrf_token(&token);
    let mut file = b"\xEF\xBB\xBF".to_vec();
    file.extend_from_slice(import_csv().as_bytes());
    let body = multipart(&[
        ("csrf_token", None, csrf.as_bytes()),
        ("file", Some("agents from HR.csv"), &file),
        ("csv", None, b""),
    ]);
    // Seven bytes at a time: the guard reads the token field across many pieces, and the
    // handler still gets the whole body.
    let trickle = Body::new(Trickle {
        data: body,
        at: 0,
        size: 7,
    });
    let (status, page) = rig.post_import(&token, None, trickle).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Imported 2 line(s): 2 agent(s) created"),
        "{page}"
    );
    assert_eq!(rig.agent_names(), ["Ana Díaz", "Bo Li"]);
    assert_eq!(rig.imports_audited(), ["agents from HR.csv"]);

    // As htmx sends it: the token in the header, pasted text instead of a file.
    let pasted = import_csv().replace("Bo Li", "Bo Lee");
    let body = multipart(&[
        ("csrf_token", None, csrf.as_bytes()),
        ("file", Some(""), b""),
        ("csv", None, pasted.as_bytes()),
    ]);
    let (status, page) = rig
        .post_import(&token, Some(csrf.clone()), Body::from(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("0 agent(s) created, 1 updated"), "{page}");
    assert_eq!(rig.imports_audited(), ["agents from HR.csv", "pasted CSV"]);

    // A file and pasted text, or neither: the page says what to do.
    for (parts, reason) in [
        (
            vec![
                ("csrf_token", None, csrf.as_bytes()),
                ("file", Some("a.csv"), file.as_slice()),
                ("csv", None, pasted.as_bytes()),
            ],
            "Choose a file or paste its text, not both.",
        ),
        (
            vec![
                ("csrf_token", None, csrf.as_bytes()),
                ("file", Some(""), b"".as_slice()),
                ("csv", None, b"".as_slice()),
            ],
            "Choose a CSV file or paste its text.",
        ),
    ] {
        let (status, page) = rig
            .post_import(&token, None, Body::from(multipart(&parts)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains(reason), "{page}");
    }
    assert_eq!(rig.imports_audited().len(), 2, "nothing more was imported");
}

#[tokio::test]
async fn a_multipart_form_without_its_token_first_is_refused() {
    let rig = rig(None);
    let token = rig.session("administrator");
    let csrf = session::csrf_token(&token);
    let wrong = session::csrf_token(&Token::generate().unwrap());
    let file = import_csv();
    let cases: [(&str, Option<String>, Vec<u8>); 5] = [
        (
            "no token",
            None,
            multipart(&[("file", Some("a.csv"), file.as_bytes())]),
        ),
        (
            "a wrong token",
            None,
            multipart(&[
                ("csrf_token", None, wrong.as_bytes()),
                ("file", Some("a.csv"), file.as_bytes()),
            ]),
        ),
        (
            "the token after the file",
            None,
            multipart(&[
                ("file", Some("a.csv"), file.as_bytes()),
                ("csrf_token", None, csrf.as_bytes()),
            ]),
        ),
        (
            "a wrong header beside a right field",
            Some(wrong.clone()),
            multipart(&[
                ("csrf_token", None, csrf.as_bytes()),
                ("file", Some("a.csv"), file.as_bytes()),
            ]),
        ),
        (
            "a token field that never ends",
            None,
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{}",
                "x".repeat(200 << 10)
            )
            .into_bytes(),
        ),
    ];
    for (what, header_csrf, body) in cases {
        let (status, page) = rig.post_import(&token, header_csrf, Body::from(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {page}");
        assert!(
            page.contains("missing or wrong CSRF token"),
            "{what}: {page}"
        );
    }
    // The API takes the file itself as the body, and says so to a form.
    let form = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/directory/import")
        .header(header::HOST, "tapline.test")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(
            header::COOKIE,
            format!("{}={}", session::COOKIE, token.as_str()),
        )
        .header(crate::guard::CSRF_HEADER, csrf)
        .body(Body::from(multipart(&[(
            "file",
            Some("a.csv"),
            file.as_bytes(),
        )])))
        .unwrap();
    assert_eq!(
        rig.call(form).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert!(rig.agent_names().is_empty(), "nothing was imported");
    assert!(rig.imports_audited().is_empty());
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_with_413() {
    use crate::api::directory::MAX_IMPORT;
    let rig = rig(None);
    let token = rig.session("administrator");
    let csrf = session::csrf_token(&token);
    // A file one byte over the limit: a valid file padded with a long last line.
    let mut file = import_csv().into_bytes();
    file.resize(MAX_IMPORT + 1, b' ');
    for header_csrf in [None, Some(csrf.clone())] {
        let body = multipart(&[
            ("csrf_token", None, csrf.as_bytes()),
            ("file", Some("big.csv"), &file),
        ]);
        let (status, page) = rig
            .post_import(&token, header_csrf.clone(), Body::from(body))
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{header_csrf:?}");
        assert!(
            page.contains("the file is larger than 8 MiB: nothing was imported"),
            "{page}"
        );
        assert!(
            page.contains("at most 8 MiB"),
            "the form says the limit: {page}"
        );
    }
    let (status, answer) = rig.post_api_import(&token, file).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("the file is larger than 8 MiB"),
        "{answer}"
    );
    // At the limit exactly, the file is read and checked.
    let mut file = import_csv().into_bytes();
    file.resize(MAX_IMPORT, b' ');
    let (status, answer) = rig.post_api_import(&token, file).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // The last line, megabytes of spaces, is named but not echoed whole.
    let problem = &answer["problems"][0];
    assert_eq!(problem["line"], 4, "{answer}");
    assert_eq!(problem["value"].as_str().unwrap().chars().count(), 201);
    assert!(rig.agent_names().is_empty(), "nothing was imported");
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_refused_at_its_first_bad_byte() {
    let rig = rig(None);
    let token = rig.session("administrator");
    // Windows-1252, as a spreadsheet's plain "CSV" export writes "Díaz": 0xED.
    let file = import_csv().replace("Díaz", "D\u{0}az");
    let mut bytes = file.into_bytes();
    let at = bytes.iter().position(|&b| b == 0).unwrap();
    bytes[at] = 0xED;
    let (status, answer) = rig.post_api_import(&token, bytes.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let problems = answer["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{answer}");
    assert_eq!(problems[0]["line"], 2, "{answer}");
    assert_eq!(problems[0]["value"], "0xED", "{answer}");
    let reason = problems[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("byte offset {at}")) && reason.contains("CSV UTF-8"),
        "{reason}"
    );
    // The page shows the same problem in its table.
    let csrf = session::csrf_token(&token);
    let body = multipart(&[
        ("csrf_token", None, csrf.as_bytes()),
        ("file", Some("export.csv"), &bytes),
    ]);
    let (status, page) = rig.post_import(&token, None, Body::from(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("<tr><td>2</td><td></td><td>0xED</td>"),
        "{page}"
    );
    assert!(rig.agent_names().is_empty(), "nothing was imported");
    // A byte order mark is not a problem, through the API either.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(import_csv().as_bytes());
    let (status, answer) = rig.post_api_import(&token, bom).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(rig.agent_names(), ["Ana Díaz", "Bo Li"]);
}
