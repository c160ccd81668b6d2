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
