//! The agent directory's pages: the agent list with its group, team and agent filters and
//! search (an htmx search swaps only the table), an agent with its device associations, groups
//! and teams, supervisor scope, and CSV export and import. Who may see and change what is
//! decided in [`crate::api::directory`], which these pages call; every form is a plain form.

use askama::Template;
use axum::Form;
use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tapline_directory::DeviceKind;

use crate::WebState;
use crate::api::ApiError;
use crate::api::directory::{
    self as api, ADMIN, AgentBody, AgentDetail, AgentFilter, AgentView, DeviceBody, Groupings,
    ImportDone, ImportOutcome, ImportProblem, ScopeBody, ScopeView, VIEW,
};
use crate::guard::Caller;
use crate::pages::{Layout, error_page, render_with};
use crate::routes::Route;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/directory", VIEW, list)
            .nav("Agent directory")
            .agent_param("agent"),
        Route::get("/directory/new-agent", ADMIN, new_agent),
        Route::post("/directory/agents", ADMIN, create),
        Route::get("/directory/agents/{agent}", VIEW, agent),
        Route::post("/directory/agents/{agent}", ADMIN, update),
        Route::post("/directory/agents/{agent}/delete", ADMIN, delete),
        Route::post("/directory/agents/{agent}/devices", ADMIN, add_device),
        Route::post("/directory/devices/{id}/delete", ADMIN, remove_device),
        Route::get("/directory/groups", ADMIN, groups).nav("Groups and teams"),
        Route::post("/directory/groups", ADMIN, create_group),
        Route::post("/directory/groups/{kind}/{id}/rename", ADMIN, rename_group),
        Route::post("/directory/groups/{kind}/{id}/delete", ADMIN, delete_group),
        Route::get("/directory/scopes", ADMIN, scopes).nav("Supervisor scope"),
        Route::post("/directory/scopes/{name}", ADMIN, set_scope),
        Route::get("/directory/import", ADMIN, import_form),
        Route::post("/directory/import", ADMIN, import).body_limit(api::MAX_IMPORT_FORM),
    ]
}

/// A refusal or failure as a page with its status.
fn refused(err: ApiError) -> Response {
    if err.status == StatusCode::INTERNAL_SERVER_ERROR {
        return crate::pages::failed(err.message);
    }
    (err.status, Html(error_page(err.status, &err.message))).into_response()
}

fn status_of<T>(outcome: &Option<Result<T, ApiError>>) -> StatusCode {
    match outcome {
        Some(Err(err)) => err.status,
        _ => StatusCode::OK,
    }
}

fn message<T>(outcome: Option<Result<T, ApiError>>) -> Option<Result<T, String>> {
    outcome.map(|o| o.map_err(|err| err.message))
}

// ---- The agent list -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "directory.html")]
struct ListPage {
    layout: Layout,
    filter: AgentFilter,
    groupings: Groupings,
    agents: Vec<AgentView>,
    admin: bool,
}

async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<AgentFilter>,
) -> Response {
    let agents = match api::search(&state, &caller, filter.clone()).await {
        Ok(agents) => agents,
        Err(err) => return refused(err),
    };
    let groupings = match api::visible_groupings(&state, &caller).await {
        Ok(groupings) => groupings,
        Err(err) => return refused(err),
    };
    render_with(
        StatusCode::OK,
        &ListPage {
            layout: Layout::new(&caller, "Agent directory", "/directory"),
            admin: may_change(&caller),
            filter,
            groupings,
            agents,
        },
    )
}

/// Whether the caller may change the directory: then the pages show the forms that do.
fn may_change(caller: &Caller) -> bool {
    caller.may(ADMIN) && caller.scope.sees_everything()
}

// ---- One agent ----------------------------------------------------------------------------

/// An agent's form as a browser sends it: every field text.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct AgentForm {
    #[serde(default)]
    agent_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    extension: String,
    #[serde(default)]
    daa_number: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    recording_percentage: String,
    #[serde(default)]
    account: String,
}

impl AgentForm {
    fn body(&self) -> Result<AgentBody, ApiError> {
        let text = |value: &str| Some(value.to_owned()).filter(|v| !v.trim().is_empty());
        let recording_percentage = match self.recording_percentage.trim() {
            "" => None,
            text => Some(text.parse::<u8>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("recording_percentage \"{text}\" must be between 0 and 100"),
                )
            })?),
        };
        Ok(AgentBody {
            agent_id: self.agent_id.clone(),
            name: self.name.clone(),
            email: text(&self.email),
            extension: text(&self.extension),
            daa_number: text(&self.daa_number),
            group: text(&self.group),
            team: text(&self.team),
            recording_percentage,
            account: text(&self.account),
        })
    }

    fn of(agent: &AgentView) -> AgentForm {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        AgentForm {
            agent_id: agent.agent_id.clone(),
            name: agent.name.clone(),
            email: text(&agent.email),
            extension: text(&agent.extension),
            daa_number: text(&agent.daa_number),
            group: text(&agent.group),
            team: text(&agent.team),
            recording_percentage: agent
                .recording_percentage
                .map(|p| p.to_string())
                .unwrap_or_default(),
            account: text(&agent.account),
        }
    }
}

#[derive(Template)]
#[template(path = "directory_agent.html")]
struct AgentPage {
    layout: Layout,
    /// `None` on the new-agent form.
    detail: Option<AgentDetail>,
    form: AgentForm,
    groupings: Groupings,
    admin: bool,
    kinds: Vec<&'static str>,
}

async fn agent_page(
    state: WebState,
    caller: Caller,
    agent_id: Option<String>,
    form: Option<AgentForm>,
    outcome: Option<Result<String, ApiError>>,
) -> Response {
    let status = status_of(&outcome);
    let detail = match agent_id {
        Some(agent_id) => match api::detail(&state, &caller, agent_id).await {
            Ok(detail) => Some(detail),
            Err(err) => return refused(err),
        },
        None => None,
    };
    let groupings = match api::visible_groupings(&state, &caller).await {
        Ok(groupings) => groupings,
        Err(err) => return refused(err),
    };
    let form = form
        .or_else(|| detail.as_ref().map(|d| AgentForm::of(&d.agent)))
        .unwrap_or_default();
    let title = if detail.is_some() {
        "Agent"
    } else {
        "New agent"
    };
    render_with(
        status,
        &AgentPage {
            layout: Layout::new(&caller, title, "/directory").with_outcome(message(outcome)),
            admin: may_change(&caller),
            detail,
            form,
            groupings,
            kinds: DeviceKind::ALL.iter().map(|k| k.as_str()).collect(),
        },
    )
}

async fn agent(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Response {
    agent_page(state, caller, Some(agent_id), None, None).await
}

async fn new_agent(State(state): State<WebState>, caller: Caller) -> Response {
    agent_page(state, caller, None, None, None).await
}

async fn create(
    State(state): State<WebState>,
    caller: Caller,
    Form(form): Form<AgentForm>,
) -> Response {
    let created = match form.body() {
        Ok(body) => api::create_agent(&state, &caller, body).await,
        Err(err) => Err(err),
    };
    match created {
        Ok(agent) => {
            let notice = format!("Agent {} created.", agent.agent_id);
            agent_page(state, caller, Some(agent.agent_id), None, Some(Ok(notice))).await
        }
        Err(err) => agent_page(state, caller, None, Some(form), Some(Err(err))).await,
    }
}

async fn update(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    Form(form): Form<AgentForm>,
) -> Response {
    let updated = match form.body() {
        Ok(body) => api::update_agent(&state, &caller, agent_id.clone(), body).await,
        Err(err) => Err(err),
    };
    match updated {
        Ok(agent) => {
            let notice = format!("Agent {} saved.", agent.agent_id);
            agent_page(state, caller, Some(agent.agent_id), None, Some(Ok(notice))).await
        }
        Err(err) => agent_page(state, caller, Some(agent_id), Some(form), Some(Err(err))).await,
    }
}

async fn delete(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Response {
    match api::delete_agent(&state, &caller, agent_id.clone()).await {
        Ok(()) => list_with_notice(state, caller, format!("Agent {agent_id} deleted.")).await,
        Err(err) => agent_page(state, caller, Some(agent_id), None, Some(Err(err))).await,
    }
}

async fn list_with_notice(state: WebState, caller: Caller, notice: String) -> Response {
    let agents = api::search(&state, &caller, AgentFilter::default()).await;
    let groupings = api::visible_groupings(&state, &caller).await;
    match (agents, groupings) {
        (Ok(agents), Ok(groupings)) => render_with(
            StatusCode::OK,
            &ListPage {
                layout: Layout::new(&caller, "Agent directory", "/directory")
                    .with_outcome(Some(Ok::<_, String>(notice))),
                admin: may_change(&caller),
                filter: AgentFilter::default(),
                groupings,
                agents,
            },
        ),
        (Err(err), _) | (_, Err(err)) => refused(err),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DeviceForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    recording_group: String,
    #[serde(default)]
    recording_type: String,
}

async fn add_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    Form(form): Form<DeviceForm>,
) -> Response {
    let body = DeviceBody {
        kind: form.kind,
        value: form.value,
        recording_group: Some(form.recording_group).filter(|g| !g.trim().is_empty()),
        recording_type: Some(form.recording_type),
        agent_id: None,
    };
    let outcome = api::add_agent_device(&state, &caller, agent_id.clone(), body)
        .await
        .map(|d| format!("{} {} mapped to {}.", d.kind, d.value, d.agent_id));
    agent_page(state, caller, Some(agent_id), None, Some(outcome)).await
}

async fn remove_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Response {
    match api::remove_agent_device(&state, &caller, id).await {
        Ok(device) => {
            let notice = format!("{} {} removed.", device.kind, device.value);
            agent_page(state, caller, Some(device.agent_id), None, Some(Ok(notice))).await
        }
        Err(err) => refused(err),
    }
}

// ---- Groups and teams ---------------------------------------------------------------------

#[derive(Template)]
#[template(path = "directory_groups.html")]
struct GroupsPage {
    layout: Layout,
    groupings: Groupings,
}

async fn groups_page(
    state: WebState,
    caller: Caller,
    outcome: Option<Result<String, ApiError>>,
) -> Response {
    let status = status_of(&outcome);
    match api::visible_groupings(&state, &caller).await {
        Ok(groupings) => render_with(
            status,
            &GroupsPage {
                layout: Layout::new(&caller, "Groups and teams", "/directory/groups")
                    .with_outcome(message(outcome)),
                groupings,
            },
        ),
        Err(err) => refused(err),
    }
}

async fn groups(State(state): State<WebState>, caller: Caller) -> Response {
    groups_page(state, caller, None).await
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GroupForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

async fn create_group(
    State(state): State<WebState>,
    caller: Caller,
    Form(form): Form<GroupForm>,
) -> Response {
    let outcome = api::create_named(&state, &caller, &form.kind, form.name)
        .await
        .map(|created| format!("{} {} created.", capitalised(&form.kind), created.name));
    groups_page(state, caller, Some(outcome)).await
}

async fn rename_group(
    State(state): State<WebState>,
    caller: Caller,
    Path((kind, id)): Path<(String, i64)>,
    Form(form): Form<GroupForm>,
) -> Response {
    let outcome = api::rename_named(&state, &caller, &kind, id, form.name)
        .await
        .map(|renamed| format!("Renamed to {}.", renamed.name));
    groups_page(state, caller, Some(outcome)).await
}

async fn delete_group(
    State(state): State<WebState>,
    caller: Caller,
    Path((kind, id)): Path<(String, i64)>,
) -> Response {
    let outcome = api::delete_named(&state, &caller, &kind, id)
        .await
        .map(|gone| format!("{} {} deleted.", capitalised(&kind), gone.name));
    groups_page(state, caller, Some(outcome)).await
}

fn capitalised(kind: &str) -> &'static str {
    if kind.trim().eq_ignore_ascii_case("team") {
        "Team"
    } else {
        "Group"
    }
}

// ---- Supervisor scope ---------------------------------------------------------------------

#[derive(Template)]
#[template(path = "directory_scopes.html")]
struct ScopesPage {
    layout: Layout,
    scopes: Vec<ScopeView>,
    groupings: Groupings,
}

async fn scopes_page(
    state: WebState,
    caller: Caller,
    outcome: Option<Result<String, ApiError>>,
) -> Response {
    let status = status_of(&outcome);
    let scopes = match api::scopes(&state).await {
        Ok(scopes) => scopes,
        Err(err) => return refused(err),
    };
    match api::visible_groupings(&state, &caller).await {
        Ok(groupings) => render_with(
            status,
            &ScopesPage {
                layout: Layout::new(&caller, "Supervisor scope", "/directory/scopes")
                    .with_outcome(message(outcome)),
                scopes,
                groupings,
            },
        ),
        Err(err) => refused(err),
    }
}

async fn scopes(State(state): State<WebState>, caller: Caller) -> Response {
    scopes_page(state, caller, None).await
}

/// The checkboxes of one account's row: repeated `groups` and `teams` fields.
async fn set_scope(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let pick = |field: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(key, _)| key == field)
            .map(|(_, value)| value.clone())
            .collect()
    };
    let body = ScopeBody {
        groups: pick("groups"),
        teams: pick("teams"),
    };
    let outcome = api::assign(&state, &caller, name.clone(), body)
        .await
        .map(|()| format!("Scope of {name} saved."));
    scopes_page(state, caller, Some(outcome)).await
}

// ---- CSV import ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "directory_import.html")]
struct ImportPage {
    layout: Layout,
    header: String,
    max_mib: usize,
    done: Option<ImportDone>,
    problems: Vec<ImportProblem>,
}

async fn import_form(caller: Caller) -> Response {
    render_with(StatusCode::OK, &import_page(&caller, None, Vec::new()))
}

fn import_page(
    caller: &Caller,
    done: Option<ImportDone>,
    problems: Vec<ImportProblem>,
) -> ImportPage {
    ImportPage {
        layout: Layout::new(caller, "Import agents", "/directory/import"),
        header: tapline_directory::csv_file::HEADER.join(","),
        max_mib: api::MAX_IMPORT >> 20,
        done,
        problems,
    }
}

/// The form's fields when it comes urlencoded (pasted text only).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ImportForm {
    /// The file's text, pasted.
    #[serde(default)]
    csv: String,
}

/// What the form sent: a chosen file, with its name, or pasted text.
#[derive(Debug)]
struct Upload {
    /// The name the audit row gives the file.
    source: String,
    bytes: Vec<u8>,
}

/// The name the audit log gives pasted text.
const PASTED: &str = "pasted CSV";

/// The file chosen (field `file`) or the text pasted (field `csv`) in the import form, sent
/// as `multipart/form-data` by browsers or urlencoded (text only) by scripts. The body is
/// read whole, up to [`api::MAX_IMPORT_FORM`]: beyond, 413.
async fn upload(request: Request) -> Result<Upload, ApiError> {
    let (parts, mut body) = request.into_parts();
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    let bytes = api::read_upload(&mut body, api::MAX_IMPORT_FORM).await?;
    if !multipart {
        let form: ImportForm = serde_urlencoded::from_bytes(&bytes).map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the form could not be read: {err}"),
            )
        })?;
        return chosen(None, form.csv.into_bytes());
    }
    // The route's body limit (`MAX_IMPORT_FORM`) travels in the request's extensions, so
    // the bytes just read all reach the parser.
    let request = Request::from_parts(parts, Body::from(bytes));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let (mut file, mut pasted) = (None, Vec::new());
    while let Some(field) = multipart.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(form_error)?;
        if bytes.len() > api::MAX_IMPORT {
            return Err(api::import_too_large());
        }
        match name.as_str() {
            "file" => file = Some((file_name.unwrap_or_default(), Vec::from(bytes))),
            "csv" => pasted = Vec::from(bytes),
            _ => {}
        }
    }
    let file = file.filter(|(name, bytes)| !name.is_empty() || !bytes.is_empty());
    if file.is_some() && !pasted.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Choose a file or paste its text, not both.",
        ));
    }
    match file {
        Some((name, bytes)) => chosen(Some(name), bytes),
        None => chosen(None, pasted),
    }
}

/// The upload, if it holds anything.
fn chosen(file_name: Option<String>, bytes: Vec<u8>) -> Result<Upload, ApiError> {
    let source = file_name
        .as_deref()
        .map_or_else(|| PASTED.to_owned(), audit_name);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let reason = match file_name {
            Some(_) => format!("The file {source} is empty."),
            None => "Choose a CSV file or paste its text.".to_owned(),
        };
        return Err(ApiError::new(StatusCode::BAD_REQUEST, reason));
    }
    Ok(Upload { source, bytes })
}

/// An uploaded file's name as the audit log shows it: its last component (some browsers
/// send a whole path), without control characters, at most 200 characters.
fn audit_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if name.trim().is_empty() {
        "uploaded CSV".to_owned()
    } else {
        name
    }
}

/// A form that could not be read.
fn form_error(err: MultipartError) -> ApiError {
    match err.status() {
        StatusCode::PAYLOAD_TOO_LARGE => api::import_too_large(),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the form could not be read: {}", err.body_text()),
        ),
    }
}

async fn import(State(state): State<WebState>, caller: Caller, request: Request) -> Response {
    let outcome = match upload(request).await {
        Ok(Upload { source, bytes }) => api::import_csv(&state, &caller, source, bytes).await,
        Err(err) => Err(err),
    };
    match outcome {
        Ok(ImportOutcome::Done(done)) => {
            let mut page = import_page(&caller, Some(done), Vec::new());
            page.layout.notice = Some(format!(
                "Imported {} line(s): {} agent(s) created, {} updated; {} device(s) added, {} \
                 updated, {} removed.",
                done.lines,
                done.agents_created,
                done.agents_updated,
                done.devices_added,
                done.devices_updated,
                done.devices_removed
            ));
            render_with(StatusCode::OK, &page)
        }
        Ok(ImportOutcome::Refused(problems)) => {
            let mut page = import_page(&caller, None, problems);
            page.layout.error = Some(format!(
                "{} problem(s) in the file: nothing was imported.",
                page.problems.len()
            ));
            render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(err) if err.status == StatusCode::INTERNAL_SERVER_ERROR => {
            crate::pages::failed(err.message)
        }
        Err(err) => {
            let status = err.status;
            let mut page = import_page(&caller, None, Vec::new());
            page.layout.error = Some(err.message);
            render_with(status, &page)
        }
    }
}
