//! Roles (Administration): the built-in roles, read-only, and custom roles to create, change
//! and delete.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tapline_accounts::Permission;

use crate::WebState;
use crate::api::ApiError;
use crate::guard::Caller;
use crate::pages::accounts::run;
use crate::pages::{Layout, failed, render_with};
use crate::roles::{self, Permissions, RoleView};
use crate::routes::{Access, Route};

const ADMIN: Access = Access::Permission(Permission::Administration);

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/roles", ADMIN, page).nav("Roles"),
        Route::post("/roles", ADMIN, save),
        Route::post("/roles/{name}/delete", ADMIN, delete),
    ]
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    layout: Layout,
    roles: Vec<RoleView>,
    permissions: Vec<&'static str>,
}

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
    match tokio::task::spawn_blocking(move || state.store.read(roles::list)).await {
        Ok(Ok(roles)) => render_with(
            status,
            &RolesPage {
                layout: Layout::new(&caller, "Roles", "/roles").with_outcome(outcome),
                roles,
                permissions: Permission::ALL.iter().map(|p| p.as_str()).collect(),
            },
        ),
        Ok(Err(err)) => failed(err),
        Err(err) => failed(err),
    }
}

async fn page(State(state): State<WebState>, caller: Caller) -> Response {
    show(state, caller, None).await
}

/// The form: `name`, and one `permission` field per box ticked.
async fn save(
    State(state): State<WebState>,
    caller: Caller,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            let name = fields
                .iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default();
            let permissions = fields
                .iter()
                .filter(|(k, _)| k == "permission")
                .map(|(_, v)| roles::parse_permission(v))
                .collect::<Result<Vec<_>, _>>()?;
            state.store.write(|tx| {
                roles::save(tx, &name, &Permissions::of(permissions), &caller.actor())
            })?;
            Ok(format!("Role {name} saved."))
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}

async fn delete(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let outcome = {
        let (state, caller) = (state.clone(), caller.clone());
        run(move || {
            state
                .store
                .write(|tx| roles::delete(tx, &name, &caller.actor()))?;
            Ok(format!("Role {name} deleted."))
        })
        .await
    };
    show(state, caller, Some(outcome)).await
}
