//! Agents: create, update, delete and list, each change audited in its transaction.

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::types::Value;
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};

use crate::device::normalise_extension;
use crate::groupings::{self, Grouping};
use crate::scope::Scope;
use crate::{DirectoryError, account_row, check_text, now_text, optional_text};

/// What an administrator says about an agent. [`AgentFields::validate`] gives the stored
/// spelling of each field; an [`Agent`] read back holds that spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFields {
    /// The agent's login, "Agent Id" in reports: unique, matched without regard to case.
    pub agent_id: String,
    /// First and last name.
    pub name: String,
    pub email: Option<String>,
    pub extension: Option<String>,
    /// The number a caller dials to reach this agent directly (Direct Agent Access).
    pub daa_number: Option<String>,
    /// The group's name.
    pub group: Option<String>,
    /// The team's name.
    pub team: Option<String>,
    /// Percentage of this agent's calls recorded automatically; `None`: the default.
    pub recording_percentage: Option<u8>,
    /// The account the agent signs in with, which then sees only this agent.
    pub account: Option<String>,
}

impl AgentFields {
    /// The fields as they are stored, or the first one that is not valid.
    pub fn validate(&self) -> Result<AgentFields, DirectoryError> {
        Ok(AgentFields {
            agent_id: check_agent_id(&self.agent_id)?,
            name: check_text("name", &self.name, 128)?,
            email: self
                .email
                .as_deref()
                .map(check_email)
                .transpose()?
                .flatten(),
            extension: optional(self.extension.as_deref(), |v| {
                normalise_extension(v).map_err(|r| DirectoryError::invalid("extension", v, r))
            })?,
            daa_number: optional(self.daa_number.as_deref(), check_daa_number)?,
            group: optional_text("group", self.group.as_deref(), 64)?,
            team: optional_text("team", self.team.as_deref(), 64)?,
            recording_percentage: match self.recording_percentage {
                Some(p) if p > 100 => {
                    return Err(DirectoryError::invalid(
                        "recording_percentage",
                        &p.to_string(),
                        "must be between 0 and 100",
                    ));
                }
                p => p,
            },
            account: optional_text("account", self.account.as_deref(), 64)?,
        })
    }
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The row: stable for the agent's life, what scope and recordings refer to.
    pub id: i64,
    pub fields: AgentFields,
}

fn optional(
    value: Option<&str>,
    check: impl Fn(&str) -> Result<String, DirectoryError>,
) -> Result<Option<String>, DirectoryError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => check(v).map(Some),
    }
}

fn check_agent_id(value: &str) -> Result<String, DirectoryError> {
    let trimmed = value.trim();
    let ok = (1..=64).contains(&trimmed.len())
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(DirectoryError::invalid(
            "agent_id",
            value,
            "is not allowed: use 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

fn check_email(value: &str) -> Result<Option<String>, DirectoryError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let ok = trimmed.len() <= 254
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
        && trimmed.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if ok {
        Ok(Some(trimmed.to_owned()))
    } else {
        Err(DirectoryError::invalid(
            "email",
            value,
            "is not an email address (name@domain)",
        ))
    }
}

fn check_daa_number(value: &str) -> Result<String, DirectoryError> {
    let ok = (1..=32).contains(&value.len())
        && value
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+'))
        && value.chars().any(|c| c.is_ascii_digit());
    if ok {
        Ok(value.to_owned())
    } else {
        Err(DirectoryError::invalid(
            "daa_number",
            value,
            "use 1 to 32 digits, optionally after a leading +",
        ))
    }
}

/// Creates an agent; its group, team and account must exist. Returns its row.
pub fn create(
    store: &Store,
    fields: &AgentFields,
    actor: &Actor<'_>,
) -> Result<i64, DirectoryError> {
    let fields = fields.validate()?;
    store.write(|tx| {
        let id = insert(tx, &fields)?;
        audit(tx, actor, events::CREATED, &fields)?;
        Ok(id)
    })
}

/// Replaces every field of the agent in row `id`. Nothing is written when nothing changes.
pub fn update(
    store: &Store,
    id: i64,
    fields: &AgentFields,
    actor: &Actor<'_>,
) -> Result<(), DirectoryError> {
    let fields = fields.validate()?;
    store.write(|tx| {
        let current = read(tx, id)?.ok_or_else(|| not_found(id))?;
        if current.fields == fields {
            return Ok(());
        }
        write(tx, id, &fields)?;
        audit(tx, actor, events::UPDATED, &fields)?;
        Ok(())
    })
}

/// Deletes the agent and, with it, its device associations. Its recordings keep the name,
/// Agent Id and extension they were made with.
pub fn delete(store: &Store, id: i64, actor: &Actor<'_>) -> Result<(), DirectoryError> {
    store.write(|tx| {
        let current = read(tx, id)?.ok_or_else(|| not_found(id))?;
        tx.execute("DELETE FROM agents WHERE id = ?1", [id])?;
        audit(tx, actor, events::DELETED, &current.fields)?;
        Ok(())
    })
}

/// The agents `scope` sees, ordered by Agent Id.
pub fn list(store: &Store, scope: &Scope) -> Result<Vec<Agent>, DirectoryError> {
    store.read(|conn| list_in(conn, scope))
}

pub(crate) fn list_in(conn: &Connection, scope: &Scope) -> Result<Vec<Agent>, DirectoryError> {
    let sql = format!(
        "{SELECT} WHERE {} ORDER BY a.agent_id COLLATE NOCASE, a.id",
        Scope::sql_condition("a.id", 1)
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([scope.sql_param()], read_agent)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The agent with this Agent Id (any case).
pub fn find(store: &Store, agent_id: &str) -> Result<Option<Agent>, DirectoryError> {
    store.read(|conn| find_in(conn, agent_id))
}

pub(crate) fn find_in(conn: &Connection, agent_id: &str) -> Result<Option<Agent>, DirectoryError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE a.agent_id = ?1"),
            [agent_id.trim()],
            read_agent,
        )
        .optional()?)
}

pub(crate) fn read(conn: &Connection, id: i64) -> Result<Option<Agent>, DirectoryError> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE a.id = ?1"), [id], read_agent)
        .optional()?)
}

const SELECT: &str = "SELECT a.id, a.agent_id, a.name, a.email, a.extension, a.daa_number,
        g.name, t.name, a.recording_percentage, acc.name
    FROM agents a
    LEFT JOIN agent_groups g ON g.id = a.group_id
    LEFT JOIN agent_teams t ON t.id = a.team_id
    LEFT JOIN accounts acc ON acc.id = a.account_id";

fn read_agent(row: &rusqlite::Row<'_>) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: row.get(0)?,
        fields: AgentFields {
            agent_id: row.get(1)?,
            name: row.get(2)?,
            email: row.get(3)?,
            extension: row.get(4)?,
            daa_number: row.get(5)?,
            group: row.get(6)?,
            team: row.get(7)?,
            recording_percentage: row.get(8)?,
            account: row.get(9)?,
        },
    })
}

fn not_found(id: i64) -> DirectoryError {
    DirectoryError::NotFound {
        what: "agent",
        key: format!("#{id}"),
    }
}

/// The rows `fields` names: group, team and account, each of which must exist.
struct Resolved {
    group: Option<i64>,
    team: Option<i64>,
    account: Option<i64>,
}

fn resolve(tx: &Transaction<'_>, fields: &AgentFields) -> Result<Resolved, DirectoryError> {
    let grouping = |kind: Grouping, name: &Option<String>| {
        name.as_deref()
            .map(|name| {
                groupings::find_in(tx, kind, name)?.ok_or_else(|| DirectoryError::NotFound {
                    what: kind.as_str(),
                    key: name.to_owned(),
                })
            })
            .transpose()
    };
    Ok(Resolved {
        group: grouping(Grouping::Group, &fields.group)?,
        team: grouping(Grouping::Team, &fields.team)?,
        account: fields
            .account
            .as_deref()
            .map(|name| account_row(tx, name))
            .transpose()?,
    })
}

/// Refuses a unique value another agent already holds, naming that agent.
fn check_unique(
    tx: &Transaction<'_>,
    id: Option<i64>,
    fields: &AgentFields,
    resolved: &Resolved,
) -> Result<(), DirectoryError> {
    let text = |value: &Option<String>| value.clone().map(Value::Text);
    let checks: [(&'static str, &str, Option<Value>); 4] = [
        (
            "agent_id",
            "agent_id",
            Some(Value::Text(fields.agent_id.clone())),
        ),
        ("extension", "extension", text(&fields.extension)),
        ("daa_number", "daa_number", text(&fields.daa_number)),
        (
            "account",
            "account_id",
            resolved.account.map(Value::Integer),
        ),
    ];
    for (field, column, value) in checks {
        let Some(value) = value else { continue };
        // The column names are the constants above, never input.
        let owner: Option<String> = tx
            .query_row(
                &format!(
                    "SELECT agent_id FROM agents WHERE {column} = ?1 AND id IS NOT ?2 LIMIT 1"
                ),
                (&value, id),
                |row| row.get(0),
            )
            .optional()?;
        if let Some(owner) = owner {
            let value = match field {
                "agent_id" => fields.agent_id.clone(),
                "extension" => fields.extension.clone().unwrap_or_default(),
                "daa_number" => fields.daa_number.clone().unwrap_or_default(),
                _ => fields.account.clone().unwrap_or_default(),
            };
            return Err(DirectoryError::Taken {
                field,
                value,
                owner: format!("agent {owner}"),
            });
        }
    }
    Ok(())
}

/// Inserts validated fields.
pub(crate) fn insert(tx: &Transaction<'_>, fields: &AgentFields) -> Result<i64, DirectoryError> {
    let resolved = resolve(tx, fields)?;
    check_unique(tx, None, fields, &resolved)?;
    let now = now_text();
    tx.execute(
        "INSERT INTO agents (agent_id, name, email, extension, daa_number, group_id, team_id,
                             recording_percentage, account_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        rusqlite::params![
            fields.agent_id,
            fields.name,
            fields.email,
            fields.extension,
            fields.daa_number,
            resolved.group,
            resolved.team,
            fields.recording_percentage,
            resolved.account,
            now,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Overwrites row `id` with validated fields.
pub(crate) fn write(
    tx: &Transaction<'_>,
    id: i64,
    fields: &AgentFields,
) -> Result<(), DirectoryError> {
    let resolved = resolve(tx, fields)?;
    check_unique(tx, Some(id), fields, &resolved)?;
    tx.execute(
        "UPDATE agents SET agent_id = ?2, name = ?3, email = ?4, extension = ?5,
                daa_number = ?6, group_id = ?7, team_id = ?8, recording_percentage = ?9,
                account_id = ?10, updated_at = ?11
         WHERE id = ?1",
        rusqlite::params![
            id,
            fields.agent_id,
            fields.name,
            fields.email,
            fields.extension,
            fields.daa_number,
            resolved.group,
            resolved.team,
            fields.recording_percentage,
            resolved.account,
            now_text(),
        ],
    )?;
    Ok(())
}

fn audit(
    tx: &Transaction<'_>,
    actor: &Actor<'_>,
    sub_event: &'static str,
    fields: &AgentFields,
) -> Result<(), DirectoryError> {
    let object = format!("Agent {}", fields.agent_id);
    tapline_audit::append(
        tx,
        &actor.entry(events::DIRECTORY, sub_event, &object, "", params(fields)),
    )?;
    Ok(())
}

pub(crate) fn params(fields: &AgentFields) -> serde_json::Value {
    serde_json::json!({
        "agent_id": fields.agent_id,
        "name": fields.name,
        "email": fields.email,
        "extension": fields.extension,
        "daa_number": fields.daa_number,
        "group": fields.group,
        "team": fields.team,
        "recording_percentage": fields.recording_percentage,
        "account": fields.account,
    })
}
