//! Accounts (Administration): list, create with a role, change the role, reset a password,
//! disable and enable, sign out everywhere. Each action answers with the page and what happened.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tapline_accounts::Permission;

use crate::WebState;
use crate::accounts::{self, AccountView};
use crate::api::ApiError;
use crate::api::accounts::tenant_name;
use crate::guard::{Caller, timeouts};
use crate::pages::{Layout, failed, render_with};
use crate::roles::{self, RoleView};
use crate::routes::{Access, Route};
use crate::signin;

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/accounts", ADMIN, page).nav("Accounts"),
        Route::post("/accounts", ADMIN, create),
        Route::post("/accounts/{name}/role", ADMIN, set_role),
        Route::post("/accounts/{name}/password", ADMIN, reset_password),
        Route::post("/accounts/{name}/disable", ADMIN, disable),
        Route::post("/accounts/{name}/enable", ADMIN, enable),
        Route::post("/accounts/{name}/signout", ADMIN, sign_out_everywhere),
    ]
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    layout: Layout,
    accounts: Vec<AccountView>,
    roles: Vec<RoleView>,
}

/// The page, with the outcome of the action that led here.
async fn show(
    state: WebState,
    caller: Caller,
    outcome: Option<Result<String, ApiError>>,
) -> Response {
    let status = match &outcome {
        Some(Err(err)) => err.status,
        _ => StatusCode::OK,
    };
    let outcome = outcome.map(|o| o.map_err(|err| err.message));
    let timeouts = timeouts(&state);
    let loaded = tokio::task::spawn_blocking(move || {
        let now = jiff::Timestamp::now();
        let accounts = state.store.read(|c| accounts::list(c, timeouts, now))?;
        let roles = state.store.read(roles::list)?;
        Ok::<_, tapline_store::rusqlite::Error>((accounts, roles))
    })
    .await;
    match loaded {
        Ok(Ok((accounts, roles))) => render_with(
            status,
            &AccountsPage {
                layout: Layout::new(&caller, "Accounts", "/accounts").with_outcome(outcome),
                accounts,
                roles,
            },
        ),
        Ok(Err(err)) => failed(err),
        Err(err) => failed(err),
    }
}

async fn page(State(state): State<WebState>, caller: Caller) -> Response {
    show(state, caller, None).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewAccount {
    name: String,
    role: String,
    #[serde(default)]
    password: String,
}

async fn create(
    State(state): State<WebState>,
    caller: Caller,
    Form(new): Form<NewAccount>,
) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            let password = (!new.password.is_empty()).then_some(new.password.as_str());
            let generated = accounts::create(
                &state.store,
                &tenant_name(&state)?,
                &new.name,
                &new.role,
                password,
                &caller.actor(),
            )?;
            Ok(match generated {
                Some(password) => format!(
                    "Account {} created. Its one-time password is {password}: hand it over \
                     safely; it must be changed at first sign-in.",
                    new.name.trim()
                ),
                None => format!("Account {} created.", new.name.trim()),
            })
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

async fn set_role(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            let role = accounts::set_role(&state.store, &name, &form.role, &caller.actor())?;
            Ok(format!(
                "{name} now has the role {role}, from its sessions' next request."
            ))
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}

async fn reset_password(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            let password = accounts::reset_password(&state.store, &name, &caller.actor())?;
            Ok(format!(
                "The password of {name} is reset to {password}, to be changed at its next \
                 sign-in; its sessions are signed out."
            ))
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}

async fn disable(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    set_disabled(state, caller, name, true).await
}

async fn enable(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    set_disabled(state, caller, name, false).await
}

async fn set_disabled(state: WebState, caller: Caller, name: String, disabled: bool) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            accounts::set_disabled(&state.store, &name, disabled, &caller.actor())?;
            Ok(if disabled {
                format!("{name} is disabled and signed out.")
            } else {
                format!("{name} is enabled.")
            })
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}

async fn sign_out_everywhere(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let own = name.eq_ignore_ascii_case(&caller.account);
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            let ended = signin::sign_out_everywhere(&state, &name, &caller.actor())?;
            Ok(format!("{ended} session(s) of {name} signed out."))
        })
        .await
    };
    if own && outcome.is_ok() {
        return crate::pages::signin_again();
    }
    show(state, caller, Some(outcome)).await
}

/// Runs a blocking action and turns its error into what the page shows.
pub(crate) async fn run(
    action: impl FnOnce() -> Result<String, ApiError> + Send + 'static,
) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(action)
        .await
        .map_err(ApiError::from)
        .and_then(|outcome| outcome)
}
