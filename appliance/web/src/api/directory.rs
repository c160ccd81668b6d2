//! The agent directory: agents, their device associations, groups and teams, supervisor scope,
//! and CSV export and import. The pages call the same functions.
//!
//! Viewing needs Agent Monitoring, as the agent list of the monitoring page does: an
//! administrator (who holds every permission) sees every agent, a supervisor only the agents
//! in their scope, in lists, on an agent's URL (403) and in the export alike. Changing anything
//! needs Administration and a scope that sees every agent, as the directory's import does: a
//! change can move an agent anywhere, so only someone who sees everywhere may make it.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tapline_accounts::Permission;
use tapline_audit::events;
use tapline_directory::csv_file::{self, ImportSummary, LineError};
use tapline_directory::groupings::{self, Named};
use tapline_directory::{
    Agent, AgentFields, Device, DeviceFields, DeviceKind, DirectoryError, Grouping, RecordingType,
    agents, devices,
};
use tapline_store::rusqlite;

use crate::WebState;
use crate::api::{ApiError, ErrorBody};
use crate::body::{ReadError, read_limited};
use crate::guard::Caller;
use crate::routes::{Access, Route};

/// Seeing agents: the monitoring page's permission, limited by scope.
pub(crate) const VIEW: Access = Access::Permission(Permission::AgentMonitoring);
/// Changing the directory.
pub(crate) const ADMIN: Access = Access::Permission(Permission::Administration);

/// The name of the exported file, as the agent list's export has always been called.
pub const EXPORT_FILE: &str = "agents.csv";
/// Imported files larger than this are refused (413): room for some 80,000 devices, and
/// little enough to read and check whole in one transaction.
pub const MAX_IMPORT: usize = 8 << 20;
/// The import form's whole body: the file, or the pasted text, and the form around it.
pub(crate) const MAX_IMPORT_FORM: usize = MAX_IMPORT + (64 << 10);
/// How much more of a refused upload is read, and for how long, so that the 413 arrives as an
/// answer rather than a reset connection.
const UPLOAD_DRAIN: usize = MAX_IMPORT;
const UPLOAD_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// What a UTF-8 file may start with; the directory's import skips it.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/directory/agents", VIEW, list).agent_param("agent"),
        Route::post("/api/v1/directory/agents", ADMIN, create),
        Route::get("/api/v1/directory/agents/{agent}", VIEW, show),
        Route::put("/api/v1/directory/agents/{agent}", ADMIN, update),
        Route::delete("/api/v1/directory/agents/{agent}", ADMIN, delete),
        Route::get("/api/v1/directory/devices", VIEW, list_devices).agent_param("agent"),
        Route::post(
            "/api/v1/directory/agents/{agent}/devices",
            ADMIN,
            add_device,
        ),
        Route::put("/api/v1/directory/devices/{id}", ADMIN, update_device),
        Route::delete("/api/v1/directory/devices/{id}", ADMIN, remove_device),
        Route::get("/api/v1/directory/groupings", VIEW, list_groupings),
        Route::post("/api/v1/directory/groupings", ADMIN, create_grouping),
        Route::put(
            "/api/v1/directory/groupings/{kind}/{id}",
            ADMIN,
            rename_grouping,
        ),
        Route::delete(
            "/api/v1/directory/groupings/{kind}/{id}",
            ADMIN,
            delete_grouping,
        ),
        Route::get("/api/v1/directory/scopes", ADMIN, list_scopes),
        Route::put("/api/v1/directory/scopes/{name}", ADMIN, set_scope),
        Route::get("/api/v1/directory/export.csv", VIEW, export),
        Route::post("/api/v1/directory/import", ADMIN, import),
    ]
}

// ---- Shapes -------------------------------------------------------------------------------

/// An agent as the directory stores it. Empty optional fields are absent (`null`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    /// The agent's login, "Agent Id" in reports; what URLs name the agent by.
    pub agent_id: String,
    pub name: String,
    pub email: Option<String>,
    pub extension: Option<String>,
    /// Direct Agent Access number.
    pub daa_number: Option<String>,
    pub group: Option<String>,
    pub team: Option<String>,
    /// Share of the agent's calls recorded automatically; `null`: the `[recording]` default.
    pub recording_percentage: Option<u8>,
    /// The account the agent signs in with.
    pub account: Option<String>,
}

impl From<&AgentFields> for AgentView {
    fn from(a: &AgentFields) -> AgentView {
        AgentView {
            agent_id: a.agent_id.clone(),
            name: a.name.clone(),
            email: a.email.clone(),
            extension: a.extension.clone(),
            daa_number: a.daa_number.clone(),
            group: a.group.clone(),
            team: a.team.clone(),
            recording_percentage: a.recording_percentage,
            account: a.account.clone(),
        }
    }
}

/// An agent with its device associations.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentDetail {
    pub agent: AgentView,
    pub devices: Vec<DeviceView>,
}

/// What an administrator says about an agent; every field but `agent_id` and `name` may be
/// absent or empty (none; for `recording_percentage`, the default).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct AgentBody {
    pub agent_id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub daa_number: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub recording_percentage: Option<u8>,
    #[serde(default)]
    pub account: Option<String>,
}

impl AgentBody {
    pub(crate) fn fields(&self) -> AgentFields {
        AgentFields {
            agent_id: self.agent_id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            extension: self.extension.clone(),
            daa_number: self.daa_number.clone(),
            group: self.group.clone(),
            team: self.team.clone(),
            recording_percentage: self.recording_percentage,
            account: self.account.clone(),
        }
    }
}

/// A device association.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: i64,
    /// The Agent Id of the device's agent.
    pub agent_id: String,
    /// `extension`, `sip_uri`, `phone_ip`, `mac` or `usb_port`.
    pub kind: String,
    /// In its stored spelling (`user@host` in lower case, canonical IP, `aa:bb:..` MAC).
    pub value: String,
    pub recording_group: Option<String>,
    /// `SPAN` or `USB`.
    pub recording_type: String,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> DeviceView {
        DeviceView {
            id: d.id,
            agent_id: d.fields.agent_id.clone(),
            kind: d.fields.kind.as_str().to_owned(),
            value: d.fields.value.clone(),
            recording_group: d.fields.recording_group.clone(),
            recording_type: d
                .fields
                .recording_type
                .unwrap_or(d.fields.kind.default_recording_type())
                .as_str()
                .to_owned(),
        }
    }
}

/// A device to map to an agent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct DeviceBody {
    /// `extension`, `sip_uri`, `phone_ip`, `mac` or `usb_port`.
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub recording_group: Option<String>,
    /// `SPAN` or `USB`; absent or empty: the kind's usual one.
    #[serde(default)]
    pub recording_type: Option<String>,
    /// Only when updating: moves the device to this agent.
    #[serde(default)]
    pub agent_id: Option<String>,
}

impl DeviceBody {
    /// The fields for the agent `agent_id`, or why a kind or type is not one we know.
    pub(crate) fn fields(&self, agent_id: &str) -> Result<DeviceFields, ApiError> {
        let kind: DeviceKind = self
            .kind
            .parse()
            .map_err(|reason| invalid("device_kind", &self.kind, reason))?;
        let recording_type = match self.recording_type.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<RecordingType>()
                    .map_err(|reason| invalid("recording_type", text, reason))?,
            ),
        };
        Ok(DeviceFields {
            kind,
            value: self.value.clone(),
            agent_id: agent_id.to_owned(),
            recording_group: self.recording_group.clone(),
            recording_type,
        })
    }
}

/// A group or team.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupingView {
    pub id: i64,
    pub name: String,
}

impl From<&Named> for GroupingView {
    fn from(n: &Named) -> GroupingView {
        GroupingView {
            id: n.id,
            name: n.name.clone(),
        }
    }
}

/// The groups and teams the caller sees.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Groupings {
    pub groups: Vec<GroupingView>,
    pub teams: Vec<GroupingView>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewGrouping {
    /// `group` or `team`.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct GroupingName {
    pub name: String,
}

/// The groups and teams assigned to an account: the agents in any of them are its scope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScopeView {
    pub account: String,
    pub role: String,
    /// Administrators and Auditors see every agent whatever is assigned.
    pub sees_everything: bool,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ScopeBody {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
}

/// The filters of the agent list. Every one is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
pub struct AgentFilter {
    /// A group's name.
    #[serde(default)]
    pub group: String,
    /// A team's name.
    #[serde(default)]
    pub team: String,
    /// One agent, by Agent Id or extension.
    #[serde(default)]
    pub agent: String,
    /// Words found in the Agent Id, name, email, extension or DAA number, any case.
    #[serde(default)]
    pub q: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct DeviceFilter {
    /// The devices of this agent, by Agent Id or extension.
    #[serde(default)]
    pub agent: String,
}

/// One problem of a refused import.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportProblem {
    /// 1 is the header.
    pub line: u64,
    /// The column's header name; empty when the problem is the whole line.
    pub column: String,
    /// The value as the file has it, cut at [`MAX_PROBLEM_VALUE`] characters (a whole line of
    /// a broken file can be megabytes).
    pub value: String,
    pub reason: String,
}

impl From<&LineError> for ImportProblem {
    fn from(e: &LineError) -> ImportProblem {
        ImportProblem {
            line: e.line,
            column: e.column.clone(),
            value: shortened(&e.value),
            reason: e.reason.clone(),
        }
    }
}

/// The most of a problem's value shown.
pub const MAX_PROBLEM_VALUE: usize = 200;

fn shortened(value: &str) -> String {
    match value.char_indices().nth(MAX_PROBLEM_VALUE) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// A refused import: nothing was changed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportRefused {
    pub error: String,
    pub problems: Vec<ImportProblem>,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct ImportDone {
    pub lines: u64,
    pub agents_created: u64,
    pub agents_updated: u64,
    pub devices_added: u64,
    pub devices_updated: u64,
    pub devices_removed: u64,
    pub groups_created: u64,
    pub teams_created: u64,
}

impl From<ImportSummary> for ImportDone {
    fn from(s: ImportSummary) -> ImportDone {
        ImportDone {
            lines: s.lines,
            agents_created: s.agents_created,
            agents_updated: s.agents_updated,
            devices_added: s.devices_added,
            devices_updated: s.devices_updated,
            devices_removed: s.devices_removed,
            groups_created: s.groups_created,
            teams_created: s.teams_created,
        }
    }
}

/// How an import ended: applied whole, or refused whole with every problem.
#[derive(Debug, Clone)]
pub enum ImportOutcome {
    Done(ImportDone),
    Refused(Vec<ImportProblem>),
}

// ---- Errors -------------------------------------------------------------------------------

impl From<DirectoryError> for ApiError {
    fn from(err: DirectoryError) -> ApiError {
        let status = match &err {
            DirectoryError::Invalid { .. } | DirectoryError::Import(_) => StatusCode::BAD_REQUEST,
            DirectoryError::NotFound { .. } => StatusCode::NOT_FOUND,
            DirectoryError::Taken { .. } => StatusCode::CONFLICT,
            DirectoryError::OutOfScope(_) => StatusCode::FORBIDDEN,
            DirectoryError::Csv(_) | DirectoryError::Store(_) => return ApiError::internal(err),
        };
        ApiError::new(status, err)
    }
}

fn invalid(field: &str, value: &str, reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("{field} \"{value}\" {reason}"),
    )
}

fn out_of_scope() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "that agent is not in your scope")
}

/// Changes need a caller who sees every agent: see the module documentation.
fn require_everything(caller: &Caller) -> Result<(), ApiError> {
    if caller.scope.sees_everything() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an account that sees every agent may change the directory",
        ))
    }
}

fn grouping_kind(text: &str) -> Result<Grouping, ApiError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "group" | "groups" => Ok(Grouping::Group),
        "team" | "teams" => Ok(Grouping::Team),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("\"{text}\" is neither group nor team"),
        )),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

// ---- What pages and API share -------------------------------------------------------------

/// The agents the caller sees that match `filter`, by Agent Id.
pub(crate) async fn search(
    state: &WebState,
    caller: &Caller,
    filter: AgentFilter,
) -> Result<Vec<AgentView>, ApiError> {
    let (state, scope) = (state.clone(), caller.scope.clone());
    blocking(move || {
        let listed = agents::list(&state.store, scope.directory())?;
        let words: Vec<String> = filter.q.split_whitespace().map(str::to_lowercase).collect();
        let same = |wanted: &str, value: &Option<String>| {
            wanted.trim().is_empty()
                || value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case(wanted.trim()))
        };
        Ok(listed
            .iter()
            .map(|agent| &agent.fields)
            .filter(|a| same(&filter.group, &a.group) && same(&filter.team, &a.team))
            .filter(|a| {
                let agent = filter.agent.trim();
                agent.is_empty()
                    || a.agent_id.eq_ignore_ascii_case(agent)
                    || a.extension.as_deref() == Some(agent)
            })
            .filter(|a| {
                let text = [
                    Some(&a.agent_id),
                    Some(&a.name),
                    a.email.as_ref(),
                    a.extension.as_ref(),
                    a.daa_number.as_ref(),
                ]
                .into_iter()
                .flatten()
                .map(|v| v.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
                words.iter().all(|word| text.contains(word.as_str()))
            })
            .map(AgentView::from)
            .collect())
    })
    .await
}

/// The groups and teams the caller may filter by: every one for a caller who sees every
/// agent, otherwise those of the agents in scope.
pub(crate) async fn visible_groupings(
    state: &WebState,
    caller: &Caller,
) -> Result<Groupings, ApiError> {
    let (state, scope) = (state.clone(), caller.scope.clone());
    blocking(move || {
        let groups = groupings::list(&state.store, Grouping::Group)?;
        let teams = groupings::list(&state.store, Grouping::Team)?;
        if scope.sees_everything() {
            return Ok(Groupings {
                groups: groups.iter().map(GroupingView::from).collect(),
                teams: teams.iter().map(GroupingView::from).collect(),
            });
        }
        let seen = agents::list(&state.store, scope.directory())?;
        let used = |pick: fn(&AgentFields) -> Option<&String>| -> BTreeSet<String> {
            seen.iter()
                .filter_map(|a| pick(&a.fields))
                .map(|name| name.to_lowercase())
                .collect()
        };
        let (in_groups, in_teams) = (used(|a| a.group.as_ref()), used(|a| a.team.as_ref()));
        let keep = |list: Vec<Named>, used: &BTreeSet<String>| -> Vec<GroupingView> {
            list.iter()
                .filter(|n| used.contains(&n.name.to_lowercase()))
                .map(GroupingView::from)
                .collect()
        };
        Ok(Groupings {
            groups: keep(groups, &in_groups),
            teams: keep(teams, &in_teams),
        })
    })
    .await
}

/// The agent with this Agent Id, if the caller may see it; 404 if there is none, 403 if it
/// is out of scope.
fn agent_in_scope(state: &WebState, caller: &Caller, agent_id: &str) -> Result<Agent, ApiError> {
    let agent = agents::find(&state.store, agent_id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("agent \"{agent_id}\" does not exist"),
        )
    })?;
    // The guard checks agents named in a query; an agent named in the path is checked here,
    // against the same scope the guard resolved.
    if !caller.scope.allows_agent(agent.id) {
        return Err(out_of_scope());
    }
    Ok(agent)
}

/// An agent and its devices, if the caller may see it.
pub(crate) async fn detail(
    state: &WebState,
    caller: &Caller,
    agent_id: String,
) -> Result<AgentDetail, ApiError> {
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let agent = agent_in_scope(&state, &caller, &agent_id)?;
        let devices = agent_devices(&state, &caller, agent.id)?;
        Ok(AgentDetail {
            agent: AgentView::from(&agent.fields),
            devices,
        })
    })
    .await
}

fn agent_devices(
    state: &WebState,
    caller: &Caller,
    agent: i64,
) -> Result<Vec<DeviceView>, ApiError> {
    Ok(devices::list(&state.store, caller.scope.directory())?
        .iter()
        .filter(|d| d.agent == agent)
        .map(DeviceView::from)
        .collect())
}

pub(crate) async fn create_agent(
    state: &WebState,
    caller: &Caller,
    body: AgentBody,
) -> Result<AgentView, ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        agents::create(&state.store, &body.fields(), &caller.actor())?;
        stored_agent(&state, &body.agent_id)
    })
    .await
}

/// The agent as stored, read back by the Agent Id it was just given.
fn stored_agent(state: &WebState, agent_id: &str) -> Result<AgentView, ApiError> {
    agents::find(&state.store, agent_id)?
        .map(|a| AgentView::from(&a.fields))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the agent was deleted meanwhile"))
}

pub(crate) async fn update_agent(
    state: &WebState,
    caller: &Caller,
    agent_id: String,
    body: AgentBody,
) -> Result<AgentView, ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let agent = agent_in_scope(&state, &caller, &agent_id)?;
        agents::update(&state.store, agent.id, &body.fields(), &caller.actor())?;
        stored_agent(&state, &body.agent_id)
    })
    .await
}

pub(crate) async fn delete_agent(
    state: &WebState,
    caller: &Caller,
    agent_id: String,
) -> Result<(), ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let agent = agent_in_scope(&state, &caller, &agent_id)?;
        Ok(agents::delete(&state.store, agent.id, &caller.actor())?)
    })
    .await
}

pub(crate) async fn add_agent_device(
    state: &WebState,
    caller: &Caller,
    agent_id: String,
    body: DeviceBody,
) -> Result<DeviceView, ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let agent = agent_in_scope(&state, &caller, &agent_id)?;
        let fields = body.fields(&agent.fields.agent_id)?;
        let id = devices::add(&state.store, &fields, &caller.actor())?;
        stored_device(&state, &caller, id)
    })
    .await
}

fn stored_device(state: &WebState, caller: &Caller, id: i64) -> Result<DeviceView, ApiError> {
    let found = devices::list(&state.store, caller.scope.directory())?
        .into_iter()
        .find(|d| d.id == id);
    match found {
        Some(device) => Ok(DeviceView::from(&device)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("device association {id} does not exist"),
        )),
    }
}

/// The device association `id` if its agent is in the caller's scope.
fn device_in_scope(state: &WebState, caller: &Caller, id: i64) -> Result<Device, ApiError> {
    let everything = tapline_directory::Scope::everything();
    let device = devices::list(&state.store, &everything)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("device association {id} does not exist"),
            )
        })?;
    if !caller.scope.allows_agent(device.agent) {
        return Err(out_of_scope());
    }
    Ok(device)
}

pub(crate) async fn remove_agent_device(
    state: &WebState,
    caller: &Caller,
    id: i64,
) -> Result<DeviceView, ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let device = device_in_scope(&state, &caller, id)?;
        devices::remove(&state.store, id, &caller.actor())?;
        Ok(DeviceView::from(&device))
    })
    .await
}

pub(crate) async fn create_named(
    state: &WebState,
    caller: &Caller,
    kind: &str,
    name: String,
) -> Result<GroupingView, ApiError> {
    require_everything(caller)?;
    let kind = grouping_kind(kind)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let id = groupings::create(&state.store, kind, &name, &caller.actor())?;
        named(&state, kind, id)
    })
    .await
}

fn named(state: &WebState, kind: Grouping, id: i64) -> Result<GroupingView, ApiError> {
    groupings::list(&state.store, kind)?
        .iter()
        .find(|n| n.id == id)
        .map(GroupingView::from)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("{} {id} does not exist", kind.as_str()),
            )
        })
}

pub(crate) async fn rename_named(
    state: &WebState,
    caller: &Caller,
    kind: &str,
    id: i64,
    name: String,
) -> Result<GroupingView, ApiError> {
    require_everything(caller)?;
    let kind = grouping_kind(kind)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        named(&state, kind, id)?;
        groupings::rename(&state.store, kind, id, &name, &caller.actor())?;
        named(&state, kind, id)
    })
    .await
}

pub(crate) async fn delete_named(
    state: &WebState,
    caller: &Caller,
    kind: &str,
    id: i64,
) -> Result<GroupingView, ApiError> {
    require_everything(caller)?;
    let kind = grouping_kind(kind)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let gone = named(&state, kind, id)?;
        groupings::delete(&state.store, kind, id, &caller.actor())?;
        Ok(gone)
    })
    .await
}

/// Every account's assignment, by name.
pub(crate) async fn scopes(state: &WebState) -> Result<Vec<ScopeView>, ApiError> {
    let state = state.clone();
    blocking(move || {
        let names = |kind| -> Result<BTreeMap<i64, String>, ApiError> {
            Ok(groupings::list(&state.store, kind)?
                .into_iter()
                .map(|n| (n.id, n.name))
                .collect())
        };
        let (groups, teams) = (names(Grouping::Group)?, names(Grouping::Team)?);
        let views = state.store.read(|conn| {
            let mut statement =
                conn.prepare("SELECT id, name, role FROM accounts ORDER BY name COLLATE NOCASE")?;
            let accounts = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut views = Vec::new();
            for (id, account, role) in accounts {
                let assigned = tapline_directory::scope::assignment(conn, id)?;
                let pick = |ids: &BTreeSet<i64>, names: &BTreeMap<i64, String>| {
                    ids.iter().filter_map(|id| names.get(id).cloned()).collect()
                };
                views.push(ScopeView {
                    sees_everything: matches!(
                        role.parse::<tapline_accounts::Role>(),
                        Ok(tapline_accounts::Role::Administrator | tapline_accounts::Role::Auditor)
                    ),
                    account,
                    role,
                    groups: pick(&assigned.groups, &groups),
                    teams: pick(&assigned.teams, &teams),
                });
            }
            Ok::<_, DirectoryError>(views)
        })?;
        Ok(views)
    })
    .await
}

pub(crate) async fn assign(
    state: &WebState,
    caller: &Caller,
    account: String,
    body: ScopeBody,
) -> Result<(), ApiError> {
    require_everything(caller)?;
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let groups: Vec<&str> = body.groups.iter().map(String::as_str).collect();
        let teams: Vec<&str> = body.teams.iter().map(String::as_str).collect();
        tapline_directory::scope::set(&state.store, &account, &groups, &teams, &caller.actor())?;
        Ok(())
    })
    .await
}

/// The agents the caller sees, with their devices, as CSV; the download is audited.
pub(crate) async fn export_csv(state: &WebState, caller: &Caller) -> Result<Vec<u8>, ApiError> {
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let mut out = Vec::new();
        csv_file::export(&state.store, caller.scope.directory(), &mut out)?;
        let agents = agents::list(&state.store, caller.scope.directory())?.len();
        let comments = format!("{agents} agents");
        let entry = caller.actor().entry(
            events::DIRECTORY,
            events::DOWNLOAD,
            EXPORT_FILE,
            &comments,
            serde_json::json!({ "agents": agents }),
        );
        tapline_audit::record(&state.store, &entry).map_err(ApiError::internal)?;
        Ok(out)
    })
    .await
}

/// Applies a CSV file whole, or refuses it whole with every problem. `source` names the file
/// in the audit row.
pub(crate) async fn import_csv(
    state: &WebState,
    caller: &Caller,
    source: String,
    bytes: Vec<u8>,
) -> Result<ImportOutcome, ApiError> {
    require_everything(caller)?;
    if bytes.len() > MAX_IMPORT {
        return Err(import_too_large());
    }
    if let Some(problem) = not_utf8(&bytes) {
        return Ok(ImportOutcome::Refused(vec![problem]));
    }
    let (state, caller) = (state.clone(), caller.clone());
    blocking(move || {
        let scope = caller.scope.directory().clone();
        let source = if source.trim().is_empty() {
            EXPORT_FILE.to_owned()
        } else {
            source
        };
        match csv_file::import(&state.store, &bytes, &source, &scope, &caller.actor()) {
            Ok(summary) => Ok(ImportOutcome::Done(summary.into())),
            Err(DirectoryError::Import(errors)) => Ok(ImportOutcome::Refused(
                errors.iter().map(ImportProblem::from).collect(),
            )),
            Err(err) => Err(err.into()),
        }
    })
    .await
}

/// An uploaded body of at most `limit` bytes; beyond, 413 (after draining some more).
pub(crate) async fn read_upload(body: &mut Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    match read_limited(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge { .. }) => {
            drain_upload(std::mem::take(body)).await;
            Err(import_too_large())
        }
        Err(err @ ReadError::Failed(_)) => Err(ApiError::new(StatusCode::BAD_REQUEST, err)),
    }
}

async fn drain_upload(body: Body) {
    crate::body::drain(body, UPLOAD_DRAIN, UPLOAD_DRAIN_TIME).await;
}

/// The refusal of a file over [`MAX_IMPORT`].
pub(crate) fn import_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the file is larger than {} MiB: nothing was imported; split it into smaller files",
            MAX_IMPORT >> 20
        ),
    )
}

/// The one problem of a file that is not UTF-8 (a Windows-1252 or Latin-1 export, say),
/// placed at its first byte that is not: read as UTF-8 it would be garbage, and guessing
/// another encoding could silently change names.
fn not_utf8(bytes: &[u8]) -> Option<ImportProblem> {
    let text = bytes.strip_prefix(BYTE_ORDER_MARK).unwrap_or(bytes);
    let err = std::str::from_utf8(text).err()?;
    let offset = bytes.len() - text.len() + err.valid_up_to();
    let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let bad = &bytes[offset..offset + err.error_len().unwrap_or(bytes.len() - offset)];
    let value: Vec<String> = bad.iter().map(|b| format!("0x{b:02X}")).collect();
    Some(ImportProblem {
        line,
        column: String::new(),
        value: value.join(" "),
        reason: format!(
            "the file is not UTF-8 text (byte offset {offset}); save it as \"CSV UTF-8\" and \
             import it again"
        ),
    })
}

// ---- API handlers -------------------------------------------------------------------------

/// The agents in the caller's scope, filtered.
#[utoipa::path(get, path = "/api/v1/directory/agents", params(AgentFilter),
    responses((status = 200, body = Vec<AgentView>),
              (status = 403, body = ErrorBody, description = "The agent is not in your scope")))]
pub(crate) async fn list(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<AgentFilter>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    Ok(Json(search(&state, &caller, filter).await?))
}

/// Creates an agent. Its group and team must exist; its account too, if named.
#[utoipa::path(post, path = "/api/v1/directory/agents", request_body = AgentBody,
    responses((status = 201, body = AgentView), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<WebState>,
    caller: Caller,
    Json(body): Json<AgentBody>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let created = create_agent(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// An agent and its devices.
#[utoipa::path(get, path = "/api/v1/directory/agents/{agent}",
    params(("agent" = String, Path, description = "Agent Id")),
    responses((status = 200, body = AgentDetail), (status = 404, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "The agent is not in your scope")))]
pub(crate) async fn show(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<AgentDetail>, ApiError> {
    Ok(Json(detail(&state, &caller, agent).await?))
}

/// Replaces every field of an agent (absent optional fields become none).
#[utoipa::path(put, path = "/api/v1/directory/agents/{agent}", request_body = AgentBody,
    params(("agent" = String, Path, description = "Agent Id")),
    responses((status = 200, body = AgentView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent): Path<String>,
    Json(body): Json<AgentBody>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(update_agent(&state, &caller, agent, body).await?))
}

/// Deletes an agent and its device associations; its recordings keep its name and id.
#[utoipa::path(delete, path = "/api/v1/directory/agents/{agent}",
    params(("agent" = String, Path, description = "Agent Id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_agent(&state, &caller, agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The device associations of the agents in the caller's scope, or of one agent.
#[utoipa::path(get, path = "/api/v1/directory/devices", params(DeviceFilter),
    responses((status = 200, body = Vec<DeviceView>),
              (status = 403, body = ErrorBody, description = "The agent is not in your scope")))]
pub(crate) async fn list_devices(
    State(state): State<WebState>,
    caller: Caller,
    Query(filter): Query<DeviceFilter>,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let found = blocking(move || {
        let agent = filter.agent.trim().to_owned();
        Ok(devices::list(&state.store, caller.scope.directory())?
            .iter()
            .filter(|d| {
                agent.is_empty()
                    || d.fields.agent_id.eq_ignore_ascii_case(&agent)
                    || (d.fields.kind == DeviceKind::Extension && d.fields.value == agent)
            })
            .map(DeviceView::from)
            .collect())
    })
    .await?;
    Ok(Json(found))
}

/// Maps a device to the agent. A device belongs to one agent: one already mapped is 409.
#[utoipa::path(post, path = "/api/v1/directory/agents/{agent}/devices", request_body = DeviceBody,
    params(("agent" = String, Path, description = "Agent Id")),
    responses((status = 201, body = DeviceView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn add_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(agent): Path<String>,
    Json(body): Json<DeviceBody>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let added = add_agent_device(&state, &caller, agent, body).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// Replaces a device association's value, recording group and type, or moves it to the agent
/// `agent_id`.
#[utoipa::path(put, path = "/api/v1/directory/devices/{id}", request_body = DeviceBody,
    params(("id" = i64, Path, description = "The association's id")),
    responses((status = 200, body = DeviceView), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn update_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<DeviceBody>,
) -> Result<Json<DeviceView>, ApiError> {
    require_everything(&caller)?;
    let updated = blocking(move || {
        let current = device_in_scope(&state, &caller, id)?;
        let agent_id = match body.agent_id.as_deref().map(str::trim) {
            None | Some("") => current.fields.agent_id.clone(),
            Some(other) => agent_in_scope(&state, &caller, other)?.fields.agent_id,
        };
        let fields = body.fields(&agent_id)?;
        devices::update(&state.store, id, &fields, &caller.actor())?;
        stored_device(&state, &caller, id)
    })
    .await?;
    Ok(Json(updated))
}

/// Removes a device association.
#[utoipa::path(delete, path = "/api/v1/directory/devices/{id}",
    params(("id" = i64, Path, description = "The association's id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove_device(
    State(state): State<WebState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    remove_agent_device(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The groups and teams: all of them for a caller who sees every agent, otherwise those of
/// the agents in scope.
#[utoipa::path(get, path = "/api/v1/directory/groupings",
    responses((status = 200, body = Groupings)))]
pub(crate) async fn list_groupings(
    State(state): State<WebState>,
    caller: Caller,
) -> Result<Json<Groupings>, ApiError> {
    Ok(Json(visible_groupings(&state, &caller).await?))
}

/// Creates a group or a team; names are unique without regard to case.
#[utoipa::path(post, path = "/api/v1/directory/groupings", request_body = NewGrouping,
    responses((status = 201, body = GroupingView), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn create_grouping(
    State(state): State<WebState>,
    caller: Caller,
    Json(body): Json<NewGrouping>,
) -> Result<(StatusCode, Json<GroupingView>), ApiError> {
    let created = create_named(&state, &caller, &body.kind, body.name).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Renames a group (`kind` = `group`) or a team (`team`).
#[utoipa::path(put, path = "/api/v1/directory/groupings/{kind}/{id}", request_body = GroupingName,
    params(("kind" = String, Path, description = "group or team"),
           ("id" = i64, Path, description = "Its id")),
    responses((status = 200, body = GroupingView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(crate) async fn rename_grouping(
    State(state): State<WebState>,
    caller: Caller,
    Path((kind, id)): Path<(String, i64)>,
    Json(body): Json<GroupingName>,
) -> Result<Json<GroupingView>, ApiError> {
    Ok(Json(
        rename_named(&state, &caller, &kind, id, body.name).await?,
    ))
}

/// Deletes a group or team: its agents stay, in none, and it leaves every scope.
#[utoipa::path(delete, path = "/api/v1/directory/groupings/{kind}/{id}",
    params(("kind" = String, Path, description = "group or team"),
           ("id" = i64, Path, description = "Its id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_grouping(
    State(state): State<WebState>,
    caller: Caller,
    Path((kind, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    delete_named(&state, &caller, &kind, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every account's assigned groups and teams.
#[utoipa::path(get, path = "/api/v1/directory/scopes",
    responses((status = 200, body = Vec<ScopeView>)))]
pub(crate) async fn list_scopes(
    State(state): State<WebState>,
    _caller: Caller,
) -> Result<Json<Vec<ScopeView>>, ApiError> {
    Ok(Json(scopes(&state).await?))
}

/// Assigns exactly these groups and teams (by name) to an account: a supervisor's scope.
#[utoipa::path(put, path = "/api/v1/directory/scopes/{name}", request_body = ScopeBody,
    params(("name" = String, Path, description = "The account")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_scope(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<ScopeBody>,
) -> Result<StatusCode, ApiError> {
    assign(&state, &caller, name, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agents in the caller's scope with their devices, as CSV (`agents.csv`), one line per
/// device; what the import reads.
#[utoipa::path(get, path = "/api/v1/directory/export.csv",
    responses((status = 200, content_type = "text/csv", body = String)))]
pub(crate) async fn export(
    State(state): State<WebState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let bytes = export_csv(&state, &caller).await?;
    Ok(csv_download(bytes))
}

pub(crate) fn csv_download(bytes: Vec<u8>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"agents.csv\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Applies a CSV file (the body, `text/csv`, at most 8 MiB; a UTF-8 byte order mark is
/// skipped) whole, or refuses it whole: 422 with every problem's line, column, value and
/// reason, and nothing changed. A file that is not UTF-8 is refused with the line and byte
/// offset of its first byte that is not.
#[utoipa::path(post, path = "/api/v1/directory/import",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportDone),
              (status = 413, body = ErrorBody, description = "The file is larger than 8 MiB"),
              (status = 415, body = ErrorBody, description = "The body is a form, not the file"),
              (status = 422, body = ImportRefused, description = "Nothing was imported")))]
pub(crate) async fn import(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
    mut body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        drain_upload(body).await;
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file itself as the body, with Content-Type: text/csv",
        ));
    }
    let bytes = read_upload(&mut body, MAX_IMPORT).await?;
    match import_csv(&state, &caller, String::new(), bytes).await? {
        ImportOutcome::Done(done) => Ok(Json(done).into_response()),
        ImportOutcome::Refused(problems) => Ok(refused_import(problems)),
    }
}

/// 422 with every problem.
fn refused_import(problems: Vec<ImportProblem>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(ImportRefused {
            error: format!(
                "{} problem(s) in the CSV file, nothing was imported",
                problems.len()
            ),
            problems,
        }),
    )
        .into_response()
}
