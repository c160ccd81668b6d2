//! Server-rendered pages. Each module is one page (or a group that shares a template): its
//! `routes()` for the route table, its handlers, and an askama template under `templates/`.
//! Pages extend `base.html` through a [`Layout`], which carries the navigation (only the pages
//! the caller may open), the CSRF token for forms and htmx, and a notice or error to show.
//!
//! Every page works with plain forms and full page loads; htmx (`hx-boost` on the body, and
//! `hx-get` on filter forms) only makes them faster.

pub mod accounts;
pub mod audit_log;
pub mod directory;
pub mod home;
pub mod password;
pub mod recordings;
pub mod roles;
pub mod settings;
pub mod signin;
pub mod whisper_log;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::assets;
use crate::guard::Caller;
use crate::routes;

/// What every page's frame needs.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: &'static str,
    pub css: &'static str,
    pub htmx: &'static str,
    /// The scripts every signed-in page loads (htmx swaps pages in without running the
    /// scripts they name): the live state, which opens `/live` on the pages that show it,
    /// and the copy buttons.
    pub live: &'static str,
    pub copy: &'static str,
    pub csrf: String,
    pub account: String,
    pub nav: Vec<NavLink>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

impl Layout {
    /// The frame for `caller` on the page at `current`: the menu lists the pages of the route
    /// table that have a navigation label and that the caller's permissions open.
    pub fn new(caller: &Caller, title: &'static str, current: &str) -> Layout {
        let nav = routes::navigation()
            .iter()
            .filter(|spec| caller.may(spec.access))
            .filter_map(|spec| {
                Some(NavLink {
                    href: spec.path,
                    label: spec.nav?,
                    current: spec.path == current,
                })
            })
            .collect();
        Layout {
            title,
            css: assets::css_path(),
            htmx: assets::HTMX_PATH,
            live: assets::live_js_path(),
            copy: assets::copy_js_path(),
            csrf: caller.csrf().to_owned(),
            account: caller.account.clone(),
            nav,
            notice: None,
            error: None,
        }
    }

    pub fn with_outcome<E: std::fmt::Display>(
        mut self,
        outcome: Option<Result<String, E>>,
    ) -> Layout {
        match outcome {
            Some(Ok(notice)) => self.notice = Some(notice),
            Some(Err(error)) => self.error = Some(error.to_string()),
            None => {}
        }
        self
    }
}

/// Renders a page, or a plain 500 if the template fails (it is checked at compile time, so
/// only a formatting error could make it fail).
pub fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot render a page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: String,
    reason: &'a str,
    css: &'static str,
}

/// A short page for refusals (403, 404, ...).
pub fn error_page(status: StatusCode, reason: &str) -> String {
    ErrorPage {
        status: status.to_string(),
        reason,
        css: assets::css_path(),
    }
    .render()
    .unwrap_or_else(|_| status.to_string())
}

/// A page's answer when a database call or a blocking task failed.
pub fn failed(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "a page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong; the log says what",
        )),
    )
        .into_response()
}

/// After the caller's own session ended: back to the sign-in page.
pub fn signin_again() -> Response {
    (
        [(
            axum::http::header::SET_COOKIE,
            crate::session::clear_cookie(),
        )],
        axum::response::Redirect::to("/signin"),
    )
        .into_response()
}
