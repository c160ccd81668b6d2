//! Changing one's own password (any signed-in account; required first after a reset).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tapline_accounts::MIN_PASSWORD_LEN;

use crate::WebState;
use crate::accounts::{self, AdminError};
use crate::guard::Caller;
use crate::pages::{Layout, render, render_with};
use crate::routes::{Access, Route};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/account/password", Access::SignedIn, form),
        Route::post("/account/password", Access::SignedIn, submit),
    ]
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
    min_len: usize,
}

async fn form(caller: Caller) -> Response {
    let mut layout = Layout::new(&caller, "Password", "/account/password");
    if caller.must_change_password {
        layout.error = Some("Choose your own password before going on.".to_owned());
    }
    render(&PasswordPage {
        layout,
        min_len: MIN_PASSWORD_LEN,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct Change {
    current: String,
    new: String,
    confirm: String,
}

async fn submit(
    State(state): State<WebState>,
    caller: Caller,
    Form(change): Form<Change>,
) -> Response {
    let layout = Layout::new(&caller, "Password", "/account/password");
    let outcome = if change.new != change.confirm {
        Err("the two new passwords differ".to_owned())
    } else {
        let (state, caller) = (state.clone(), caller.clone());
        tokio::task::spawn_blocking(move || {
            accounts::change_own_password(
                &state.store,
                &caller.account,
                &change.current,
                &change.new,
                &caller.session_hash,
                &caller.actor(),
            )
        })
        .await
        .map_err(|err| err.to_string())
        .and_then(|r| r.map_err(|err: AdminError| err.to_string()))
        .map(|()| "Your password is changed; your other sessions are signed out.".to_owned())
    };
    let status = if outcome.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render_with(
        status,
        &PasswordPage {
            layout: layout.with_outcome(Some(outcome)),
            min_len: MIN_PASSWORD_LEN,
        },
    )
}
