//! The sign-in page and the sign-out buttons.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::WebState;
use crate::assets;
use crate::guard::{Caller, Origin};
use crate::pages::{failed, render_with};
use crate::routes::{Access, Route};
use crate::session;
use crate::signin;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/signin", Access::Public, form),
        Route::post("/signin", Access::Public, submit),
        Route::post("/signout", Access::SignedIn, sign_out),
        Route::post("/signout/everywhere", Access::SignedIn, sign_out_everywhere),
    ]
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    css: &'static str,
    next: String,
    username: String,
    error: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

async fn form(Query(next): Query<Next>) -> Response {
    render_with(
        StatusCode::OK,
        &SignInPage {
            css: assets::css_path(),
            next: safe_next(&next.next).to_owned(),
            username: String::new(),
            error: None,
        },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn submit(
    State(state): State<WebState>,
    origin: Origin,
    Form(form): Form<SignInForm>,
) -> Response {
    match signin::sign_in(&state, &form.username, &form.password, &origin).await {
        Ok(Some(signed_in)) => {
            let target = if signed_in.must_change_password {
                "/account/password"
            } else {
                safe_next(&form.next)
            };
            (
                [(header::SET_COOKIE, session::set_cookie(&signed_in.token))],
                Redirect::to(target),
            )
                .into_response()
        }
        Ok(None) => render_with(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                css: assets::css_path(),
                next: safe_next(&form.next).to_owned(),
                username: form.username.chars().take(64).collect(),
                error: Some("Wrong name or password, or the name is locked out for a while."),
            },
        ),
        Err(err) => failed(err),
    }
}

/// Only paths on this site: `next` comes from the query string, which anyone can craft.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ok { next } else { "/" }
}

async fn sign_out(State(state): State<WebState>, caller: Caller) -> Response {
    let result = tokio::task::spawn_blocking(move || {
        signin::sign_out(&state, &caller.session_hash, &caller.actor())
    })
    .await;
    match result {
        Ok(Ok(())) => signed_out(),
        Ok(Err(err)) => failed(err),
        Err(err) => failed(err),
    }
}

async fn sign_out_everywhere(State(state): State<WebState>, caller: Caller) -> Response {
    let result = tokio::task::spawn_blocking(move || {
        signin::sign_out_everywhere(&state, &caller.account, &caller.actor())
    })
    .await;
    match result {
        Ok(Ok(_)) => signed_out(),
        Ok(Err(err)) => failed(err),
        Err(err) => failed(err),
    }
}

fn signed_out() -> Response {
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/signin"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(super::safe_next("/accounts?x=1"), "/accounts?x=1");
        assert_eq!(super::safe_next("//evil.example/"), "/");
        assert_eq!(super::safe_next("https://evil.example/"), "/");
        assert_eq!(super::safe_next("/\\evil.example"), "/");
        assert_eq!(super::safe_next(""), "/");
    }
}
