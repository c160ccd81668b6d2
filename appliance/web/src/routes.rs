//! The route table: every page, API endpoint and asset, with the access it needs.
//!
//! Each feature module declares its routes in a `routes()` function, next to the handlers, and
//! is listed once in [`MODULES`]. The router is built from the table and nothing else, and the
//! guard ([`crate::guard`]) looks every request up in the same table: a handler mounted any
//! other way is refused with 500, never served unguarded.
//!
//! Adding a page: write `pages/<name>.rs` (and `api/<name>.rs` for its JSON), give each a
//! `routes()` returning [`Route`]s with their [`Access`], and add them to [`MODULES`]. A route
//! with `.nav("Label")` appears in the navigation of every caller who may open it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use tapline_accounts::Permission;

use crate::{WebState, api, assets, guard, ops, pages, security};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the port: sign-in, assets, health and metrics.
    Public,
    /// Any signed-in account, whatever its role (password change, sign-out).
    SignedIn,
    /// A signed-in account whose role holds this permission.
    Permission(Permission),
}

impl Access {
    pub fn describe(self) -> String {
        match self {
            Access::Public => "public".to_owned(),
            Access::SignedIn => "signed in".to_owned(),
            Access::Permission(p) => p.as_str().to_owned(),
        }
    }
}

/// What kind of answer a refused caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTML: anonymous callers are sent to the sign-in page.
    Page,
    /// JSON under `/api/`: anonymous callers get 401.
    Api,
}

/// One row of the route table.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    /// The path as axum matches it (`/api/v1/accounts/{name}`).
    pub path: &'static str,
    pub access: Access,
    /// The path or query parameter naming an agent, checked against the caller's scope.
    pub agent_param: Option<&'static str>,
    /// The navigation label, for pages that appear in the menu.
    pub nav: Option<&'static str>,
}

impl RouteSpec {
    pub fn kind(&self) -> Kind {
        if self.path.starts_with("/api/") {
            Kind::Api
        } else {
            Kind::Page
        }
    }
}

/// A row of the table and its handler.
pub(crate) struct Route {
    pub(crate) spec: RouteSpec,
    handler: MethodRouter<WebState>,
}

impl Route {
    fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<WebState>,
    ) -> Route {
        Route {
            spec: RouteSpec {
                method,
                path,
                access,
                agent_param: None,
                nav: None,
            },
            handler,
        }
    }

    pub(crate) fn get<H, T>(path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        Route::new(Method::GET, path, access, routing::get(handler))
    }

    pub(crate) fn post<H, T>(path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        Route::new(Method::POST, path, access, routing::post(handler))
    }

    pub(crate) fn put<H, T>(path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        Route::new(Method::PUT, path, access, routing::put(handler))
    }

    pub(crate) fn delete<H, T>(path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, WebState>,
        T: 'static,
    {
        Route::new(Method::DELETE, path, access, routing::delete(handler))
    }

    /// Shows the page in the navigation, under `label`.
    pub(crate) fn nav(mut self, label: &'static str) -> Route {
        self.spec.nav = Some(label);
        self
    }

    /// Lets the handler's body extractors (form, multipart) read up to `bytes` instead of
    /// axum's default of 2 MiB: for uploads, whose handlers bound the file themselves.
    pub(crate) fn body_limit(mut self, bytes: usize) -> Route {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }

    /// The request names an agent in parameter `param` (path or query), which must be in the
    /// caller's scope.
    pub(crate) fn agent_param(mut self, param: &'static str) -> Route {
        self.spec.agent_param = Some(param);
        self
    }
}

/// Every feature module's routes. One line per module.
const MODULES: &[fn() -> Vec<Route>] = &[
    ops::routes,
    assets::routes,
    pages::signin::routes,
    pages::home::routes,
    pages::password::routes,
    pages::accounts::routes,
    pages::roles::routes,
    pages::settings::routes,
    pages::whisper_log::routes,
    pages::directory::routes,
    pages::recordings::routes,
    pages::audit_log::routes,
    api::session::routes,
    api::accounts::routes,
    api::roles::routes,
    api::settings::routes,
    api::whisper_log::routes,
    api::recordings::routes,
    api::audit_log::routes,
    api::directory::routes,
    api::openapi::routes,
];

fn all_routes() -> Vec<Route> {
    MODULES.iter().flat_map(|module| module()).collect()
}

/// The route table, in declaration order.
pub fn table() -> Vec<RouteSpec> {
    all_routes().into_iter().map(|route| route.spec).collect()
}

/// The table keyed as the guard looks it up: method and matched path.
pub(crate) type Table = HashMap<(Method, String), RouteSpec>;

/// The router: the table's handlers behind the guard, with security headers on every answer.
pub(crate) fn router(state: WebState) -> Router {
    let routes = all_routes();
    let mut table = Table::new();
    let mut router = Router::new();
    for route in routes {
        let key = (route.spec.method.clone(), route.spec.path.to_owned());
        let duplicate = table.insert(key, route.spec.clone());
        assert!(
            duplicate.is_none(),
            "route {} {} declared twice",
            route.spec.method,
            route.spec.path
        );
        router = router.route(route.spec.path, route.handler);
    }
    guard::layer(router, Arc::new(table), state.clone())
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(state)
}

/// The navigation entries, in table order.
pub(crate) fn navigation() -> &'static [RouteSpec] {
    static NAVIGATION: std::sync::OnceLock<Vec<RouteSpec>> = std::sync::OnceLock::new();
    NAVIGATION.get_or_init(|| {
        table()
            .into_iter()
            .filter(|spec| spec.nav.is_some() && spec.method == Method::GET)
            .collect()
    })
}
