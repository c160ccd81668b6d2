//! Device associations: an extension, SIP URI, phone IP or MAC address, or USB telephony port
//! mapped to one agent, with its recording group and recording type.

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};

use crate::device::{DeviceKind, RecordingType};
use crate::scope::Scope;
use crate::{DirectoryError, agents, now_text, optional_text};

/// What an administrator says about a device. [`DeviceFields::validate`] gives the stored
/// spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFields {
    pub kind: DeviceKind,
    pub value: String,
    /// The Agent Id of the agent the device belongs to.
    pub agent_id: String,
    pub recording_group: Option<String>,
    /// `None`: the kind's default ([`DeviceKind::default_recording_type`]).
    pub recording_type: Option<RecordingType>,
}

impl DeviceFields {
    pub fn validate(&self) -> Result<DeviceFields, DirectoryError> {
        let value = self
            .kind
            .normalise(&self.value)
            .map_err(|reason| DirectoryError::invalid(field_of(self.kind), &self.value, reason))?;
        let recording_type = self
            .recording_type
            .unwrap_or(self.kind.default_recording_type());
        if !self.kind.can_be_recorded_by(recording_type) {
            return Err(DirectoryError::invalid(
                "recording_type",
                recording_type.as_str(),
                format!("cannot record a device by {}", self.kind),
            ));
        }
        Ok(DeviceFields {
            kind: self.kind,
            value,
            agent_id: self.agent_id.trim().to_owned(),
            recording_group: optional_text("recording_group", self.recording_group.as_deref(), 64)?,
            recording_type: Some(recording_type),
        })
    }
}

/// The field a value error names: the kind itself, as the web form and the CSV column
/// `device_value` are labelled with it.
fn field_of(kind: DeviceKind) -> &'static str {
    kind.as_str()
}

/// A device association as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    /// The agent's row.
    pub agent: i64,
    pub fields: DeviceFields,
}

/// Maps a device to an agent. A device is one agent's: a value already mapped is refused,
/// naming its agent. Returns the association's row.
pub fn add(store: &Store, fields: &DeviceFields, actor: &Actor<'_>) -> Result<i64, DirectoryError> {
    let fields = fields.validate()?;
    store.write(|tx| {
        let agent = agent_row(tx, &fields.agent_id)?;
        check_free(tx, None, &fields)?;
        let id = insert(tx, agent, &fields)?;
        audit(tx, actor, events::CREATED, &fields)?;
        Ok(id)
    })
}

/// Replaces an association's value, agent, recording group and type. Nothing is written
/// when nothing changes.
pub fn update(
    store: &Store,
    id: i64,
    fields: &DeviceFields,
    actor: &Actor<'_>,
) -> Result<(), DirectoryError> {
    let fields = fields.validate()?;
    store.write(|tx| {
        let current = read(tx, id)?.ok_or_else(|| not_found(id))?;
        let agent = agent_row(tx, &fields.agent_id)?;
        if current.agent == agent && same(&current.fields, &fields) {
            return Ok(());
        }
        check_free(tx, Some(id), &fields)?;
        tx.execute(
            "UPDATE agent_devices SET kind = ?2, value = ?3, agent = ?4, recording_group = ?5,
                    recording_type = ?6, updated_at = ?7
             WHERE id = ?1",
            rusqlite::params![
                id,
                fields.kind.as_str(),
                fields.value,
                agent,
                fields.recording_group,
                recording_type(&fields),
                now_text(),
            ],
        )?;
        audit(tx, actor, events::UPDATED, &fields)?;
        Ok(())
    })
}

/// Removes an association.
pub fn remove(store: &Store, id: i64, actor: &Actor<'_>) -> Result<(), DirectoryError> {
    store.write(|tx| {
        let current = read(tx, id)?.ok_or_else(|| not_found(id))?;
        tx.execute("DELETE FROM agent_devices WHERE id = ?1", [id])?;
        audit(tx, actor, events::DELETED, &current.fields)?;
        Ok(())
    })
}

/// The associations of the agents `scope` sees, by agent, kind and value.
pub fn list(store: &Store, scope: &Scope) -> Result<Vec<Device>, DirectoryError> {
    store.read(|conn| list_in(conn, scope))
}

pub(crate) fn list_in(conn: &Connection, scope: &Scope) -> Result<Vec<Device>, DirectoryError> {
    let sql = format!(
        "{SELECT} WHERE {} ORDER BY a.agent_id COLLATE NOCASE, a.id, {KIND_ORDER}, d.value",
        Scope::sql_condition("d.agent", 1)
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([scope.sql_param()], read_device)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Kinds in the order of [`DeviceKind::ALL`], so listings and exports are stable.
const KIND_ORDER: &str = "CASE d.kind WHEN 'extension' THEN 0 WHEN 'sip_uri' THEN 1
    WHEN 'phone_ip' THEN 2 WHEN 'mac' THEN 3 ELSE 4 END";

const SELECT: &str = "SELECT d.id, d.agent, a.agent_id, d.kind, d.value, d.recording_group,
        d.recording_type
    FROM agent_devices d JOIN agents a ON a.id = d.agent";

fn read_device(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let kind: String = row.get(3)?;
    let recording_type: String = row.get(6)?;
    let bad = |column: usize, text: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("unexpected value {text:?}").into(),
        )
    };
    Ok(Device {
        id: row.get(0)?,
        agent: row.get(1)?,
        fields: DeviceFields {
            // The table's CHECK constraints hold both columns to these spellings.
            kind: kind.parse().map_err(|_| bad(3, &kind))?,
            value: row.get(4)?,
            agent_id: row.get(2)?,
            recording_group: row.get(5)?,
            recording_type: Some(
                recording_type
                    .parse()
                    .map_err(|_| bad(6, &recording_type))?,
            ),
        },
    })
}

pub(crate) fn read(conn: &Connection, id: i64) -> Result<Option<Device>, DirectoryError> {
    Ok(conn
        .query_row(&format!("{SELECT} WHERE d.id = ?1"), [id], read_device)
        .optional()?)
}

/// Whether two validated associations say the same (the agent aside).
pub(crate) fn same(a: &DeviceFields, b: &DeviceFields) -> bool {
    a.kind == b.kind
        && a.value == b.value
        && a.recording_group == b.recording_group
        && a.recording_type == b.recording_type
}

fn agent_row(conn: &Connection, agent_id: &str) -> Result<i64, DirectoryError> {
    agents::find_in(conn, agent_id)?
        .map(|agent| agent.id)
        .ok_or_else(|| DirectoryError::NotFound {
            what: "agent",
            key: agent_id.to_owned(),
        })
}

/// Refuses a value another association holds, naming its agent.
fn check_free(
    tx: &Transaction<'_>,
    id: Option<i64>,
    fields: &DeviceFields,
) -> Result<(), DirectoryError> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT a.agent_id FROM agent_devices d JOIN agents a ON a.id = d.agent
             WHERE d.kind = ?1 AND d.value = ?2 AND d.id IS NOT ?3",
            (fields.kind.as_str(), &fields.value, id),
            |row| row.get(0),
        )
        .optional()?;
    match owner {
        Some(owner) => Err(DirectoryError::Taken {
            field: field_of(fields.kind),
            value: fields.value.clone(),
            owner: format!("agent {owner}"),
        }),
        None => Ok(()),
    }
}

pub(crate) fn insert(
    tx: &Transaction<'_>,
    agent: i64,
    fields: &DeviceFields,
) -> Result<i64, DirectoryError> {
    tx.execute(
        "INSERT INTO agent_devices (kind, value, agent, recording_group, recording_type,
                                    created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        rusqlite::params![
            fields.kind.as_str(),
            fields.value,
            agent,
            fields.recording_group,
            recording_type(fields),
            now_text(),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn recording_type(fields: &DeviceFields) -> &'static str {
    fields
        .recording_type
        .unwrap_or(fields.kind.default_recording_type())
        .as_str()
}

fn not_found(id: i64) -> DirectoryError {
    DirectoryError::NotFound {
        what: "device association",
        key: format!("#{id}"),
    }
}

fn audit(
    tx: &Transaction<'_>,
    actor: &Actor<'_>,
    sub_event: &'static str,
    fields: &DeviceFields,
) -> Result<(), DirectoryError> {
    let object = format!("Device {} {}", fields.kind, fields.value);
    let params = serde_json::json!({
        "kind": fields.kind.as_str(),
        "value": fields.value,
        "agent_id": fields.agent_id,
        "recording_group": fields.recording_group,
        "recording_type": recording_type(fields),
    });
    tapline_audit::append(
        tx,
        &actor.entry(events::DIRECTORY, sub_event, &object, "", params),
    )?;
    Ok(())
}
