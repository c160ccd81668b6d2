//! Agents and their devices as CSV (RFC 4180, UTF-8), for export and import.
//!
//! The header is [`HEADER`]. Each line is an agent with one of its device associations; an
//! agent with several devices has a line for each, its agent columns repeated alike, and an
//! agent with none has one line with the device columns empty. Empty means none: no email, no
//! group, the default recording percentage. `device_kind` is one of `extension`, `sip_uri`,
//! `phone_ip`, `mac`, `usb_port`; `recording_type` is `SPAN` or `USB` (empty: the kind's
//! usual one).
//!
//! [`export`] writes agents by Agent Id and each agent's devices by kind and value, every
//! value in its stored spelling, so importing an export changes nothing and exporting again
//! gives the same bytes.
//!
//! [`import`] is all or nothing, in one transaction: every problem is reported with its line,
//! column and value ([`LineError`]), and then nothing is changed. Each agent in the file is
//! created or updated (matched by Agent Id) and ends up with exactly the devices the file
//! lists for it; groups and teams it names are created; agents not in the file are left as
//! they are. A device or unique value held by an agent not in the file is a problem, not a
//! silent move. One audit row summarises the import, and an import that changes nothing
//! writes nothing at all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{Connection, OptionalExtension, Transaction};

use crate::device::DeviceKind;
use crate::groupings::{self, Grouping};
use crate::scope::Scope;
use crate::{Agent, AgentFields, DeviceFields, DirectoryError, agents, devices};

/// The columns, in order.
pub const HEADER: [&str; 13] = [
    "agent_id",
    "name",
    "email",
    "extension",
    "daa_number",
    "group",
    "team",
    "recording_percentage",
    "account",
    "device_kind",
    "device_value",
    "recording_group",
    "recording_type",
];

/// One problem in an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1 is the header.
    pub line: u64,
    /// A name from [`HEADER`], or empty when the problem is the whole line.
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if !self.column.is_empty() {
            write!(f, ", column {}", self.column)?;
        }
        write!(f, ", value \"{}\": {}", self.value, self.reason)
    }
}

pub(crate) fn join(errors: &[LineError]) -> String {
    let lines: Vec<String> = errors.iter().map(LineError::to_string).collect();
    lines.join("; ")
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub agents_created: u64,
    pub agents_updated: u64,
    pub devices_added: u64,
    pub devices_updated: u64,
    pub devices_removed: u64,
    pub groups_created: u64,
    pub teams_created: u64,
}

impl ImportSummary {
    pub fn changed_anything(&self) -> bool {
        *self
            != ImportSummary {
                lines: self.lines,
                ..ImportSummary::default()
            }
    }
}

/// Writes the agents `scope` sees, with their devices, as CSV.
pub fn export(store: &Store, scope: &Scope, out: impl Write) -> Result<(), DirectoryError> {
    let (agents, devices) = store.read(|conn| {
        Ok::<_, DirectoryError>((
            agents::list_in(conn, scope)?,
            devices::list_in(conn, scope)?,
        ))
    })?;
    let mut by_agent: HashMap<i64, Vec<&DeviceFields>> = HashMap::new();
    for device in &devices {
        by_agent
            .entry(device.agent)
            .or_default()
            .push(&device.fields);
    }
    // CRLF, as RFC 4180 and the spreadsheets administrators open these files in expect.
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(HEADER).map_err(DirectoryError::Csv)?;
    for agent in &agents {
        let a = &agent.fields;
        let percentage = a.recording_percentage.map(|p| p.to_string());
        let agent_columns = [
            a.agent_id.as_str(),
            &a.name,
            opt(&a.email),
            opt(&a.extension),
            opt(&a.daa_number),
            opt(&a.group),
            opt(&a.team),
            opt(&percentage),
            opt(&a.account),
        ];
        let devices = by_agent
            .get(&agent.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if devices.is_empty() {
            let record = agent_columns.iter().copied().chain(["", "", "", ""]);
            writer.write_record(record).map_err(DirectoryError::Csv)?;
        }
        for d in devices {
            let recording_type = d.recording_type.map(|t| t.as_str()).unwrap_or_default();
            let device_columns = [
                d.kind.as_str(),
                &d.value,
                opt(&d.recording_group),
                recording_type,
            ];
            let record = agent_columns.iter().copied().chain(device_columns);
            writer.write_record(record).map_err(DirectoryError::Csv)?;
        }
    }
    writer
        .flush()
        .map_err(|err| DirectoryError::Csv(csv::Error::from(err)))?;
    Ok(())
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

/// An agent as the file describes it.
struct FileAgent {
    line: u64,
    fields: AgentFields,
    devices: Vec<(u64, DeviceFields)>,
}

/// Applies a CSV file to the directory; see the module documentation. `source` names the
/// file in the audit row. Only an account that sees every agent may import.
pub fn import(
    store: &Store,
    bytes: &[u8],
    source: &str,
    scope: &Scope,
    actor: &Actor<'_>,
) -> Result<ImportSummary, DirectoryError> {
    if !scope.sees_everything() {
        return Err(DirectoryError::OutOfScope("import agents"));
    }
    let (file_agents, lines) = parse(bytes)?;
    store.write(|tx| {
        let summary = apply(tx, &file_agents, lines)?;
        if summary.changed_anything() {
            let comments = format!(
                "{} agents created, {} updated; {} devices added, {} updated, {} removed",
                summary.agents_created,
                summary.agents_updated,
                summary.devices_added,
                summary.devices_updated,
                summary.devices_removed
            );
            let params = serde_json::json!({
                "lines": summary.lines,
                "agents_created": summary.agents_created,
                "agents_updated": summary.agents_updated,
                "devices_added": summary.devices_added,
                "devices_updated": summary.devices_updated,
                "devices_removed": summary.devices_removed,
                "groups_created": summary.groups_created,
                "teams_created": summary.teams_created,
            });
            tapline_audit::append(
                tx,
                &actor.entry(
                    events::DIRECTORY,
                    events::IMPORTED,
                    source,
                    &comments,
                    params,
                ),
            )?;
        }
        Ok(summary)
    })
}

/// The 1-based line a record starts on, counted from its byte offset. The reader's own line
/// count lags by one per CRLF line end (its offset lands between the `\r` and the `\n`),
/// and CRLF is what the export writes and what browsers send from a text box.
fn line_at(bytes: &[u8], position: &csv::Position) -> u64 {
    let mut start = usize::try_from(position.byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
    while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        start += 1;
    }
    bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// Reads and checks the file on its own: every line's values, and that the lines agree.
fn parse(bytes: &[u8]) -> Result<(Vec<FileAgent>, u64), DirectoryError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut errors = Vec::new();
    let mut file_agents: Vec<FileAgent> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut device_lines: HashMap<(DeviceKind, String), u64> = HashMap::new();
    let mut unique_lines: HashMap<(&'static str, String), (u64, String)> = HashMap::new();
    let mut lines = 0;
    let mut header_seen = false;
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map_or(0, |p| line_at(bytes, p));
                errors.push(whole_line(line, "", &err.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| line_at(bytes, p));
        if !header_seen {
            header_seen = true;
            if !record.iter().map(str::trim).eq(HEADER) {
                let found: Vec<&str> = record.iter().collect();
                errors.push(whole_line(
                    line,
                    &found.join(","),
                    &format!("the header must be {}", HEADER.join(",")),
                ));
                break;
            }
            continue;
        }
        lines += 1;
        if record.len() != HEADER.len() {
            let found: Vec<&str> = record.iter().collect();
            errors.push(whole_line(
                line,
                &found.join(","),
                &format!("has {} columns, not {}", record.len(), HEADER.len()),
            ));
            continue;
        }
        let column = |i: usize| record.get(i).unwrap_or_default();
        let fields = match agent_fields(&record) {
            Ok(fields) => fields,
            Err(err) => {
                errors.push(line_error(line, &err));
                continue;
            }
        };
        let device = match device_fields(&record, &fields.agent_id) {
            Ok(device) => device,
            Err(err) => {
                errors.push(line_error(line, &err));
                continue;
            }
        };
        if let Some(device) = &device {
            let key = (device.kind, device.value.clone());
            if let Some(first) = device_lines.insert(key, line) {
                errors.push(LineError {
                    line,
                    column: "device_value".into(),
                    value: column(10).to_owned(),
                    reason: format!("the same device is on line {first}"),
                });
                continue;
            }
        }
        let key = fields.agent_id.to_ascii_lowercase();
        match by_id.get(&key) {
            Some(&slot) => {
                let first = &file_agents[slot];
                if let Some(column) = first_difference(&first.fields, &fields) {
                    errors.push(LineError {
                        line,
                        column: column.into(),
                        value: record.get(index_of(column)).unwrap_or_default().to_owned(),
                        reason: format!(
                            "agent {} is described differently on line {}",
                            fields.agent_id, first.line
                        ),
                    });
                    continue;
                }
                if let Some(device) = device {
                    file_agents[slot].devices.push((line, device));
                }
            }
            None => {
                let uniques = [
                    ("extension", &fields.extension),
                    ("daa_number", &fields.daa_number),
                    ("account", &fields.account),
                ];
                let mut clash = None;
                for (name, value) in uniques {
                    let Some(value) = value else { continue };
                    let entry = (line, fields.agent_id.clone());
                    if let Some((first, owner)) =
                        unique_lines.insert((name, value.to_ascii_lowercase()), entry)
                    {
                        clash = Some(LineError {
                            line,
                            column: name.into(),
                            value: value.clone(),
                            reason: format!("agent {owner} has it too, on line {first}"),
                        });
                        break;
                    }
                }
                if let Some(clash) = clash {
                    errors.push(clash);
                    continue;
                }
                by_id.insert(key, file_agents.len());
                file_agents.push(FileAgent {
                    line,
                    fields,
                    devices: device.map(|d| vec![(line, d)]).unwrap_or_default(),
                });
            }
        }
    }
    if !header_seen {
        errors.push(whole_line(
            1,
            "",
            &format!("the file is empty: the header must be {}", HEADER.join(",")),
        ));
    }
    if errors.is_empty() {
        Ok((file_agents, lines))
    } else {
        Err(DirectoryError::Import(errors))
    }
}

fn agent_fields(record: &csv::StringRecord) -> Result<AgentFields, DirectoryError> {
    let column = |i: usize| record.get(i).unwrap_or_default();
    let some = |i: usize| Some(column(i).to_owned()).filter(|v| !v.trim().is_empty());
    let percentage = match column(7).trim() {
        "" => None,
        text => Some(
            text.parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| {
                    DirectoryError::invalid(
                        "recording_percentage",
                        column(7),
                        "must be a whole number between 0 and 100",
                    )
                })?,
        ),
    };
    AgentFields {
        agent_id: column(0).to_owned(),
        name: column(1).to_owned(),
        email: some(2),
        extension: some(3),
        daa_number: some(4),
        group: some(5),
        team: some(6),
        recording_percentage: percentage,
        account: some(8),
    }
    .validate()
}

fn device_fields(
    record: &csv::StringRecord,
    agent_id: &str,
) -> Result<Option<DeviceFields>, DirectoryError> {
    let column = |i: usize| record.get(i).unwrap_or_default();
    let (kind, value) = (column(9).trim(), column(10).trim());
    if kind.is_empty()
        && value.is_empty()
        && column(11).trim().is_empty()
        && column(12).trim().is_empty()
    {
        return Ok(None);
    }
    let kind: DeviceKind = kind
        .parse()
        .map_err(|reason| DirectoryError::invalid("device_kind", column(9), reason))?;
    let recording_type = match column(12).trim() {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|reason| DirectoryError::invalid("recording_type", column(12), reason))?,
        ),
    };
    let fields = DeviceFields {
        kind,
        value: value.to_owned(),
        agent_id: agent_id.to_owned(),
        recording_group: Some(column(11).to_owned()),
        recording_type,
    };
    fields.validate().map(Some).map_err(|err| match err {
        // A bad value is reported under its column, whatever the kind.
        DirectoryError::Invalid {
            field,
            value,
            reason,
        } if field == kind.as_str() => DirectoryError::Invalid {
            field: "device_value",
            value,
            reason,
        },
        other => other,
    })
}

/// The first column in which two descriptions of the same agent differ.
fn first_difference(a: &AgentFields, b: &AgentFields) -> Option<&'static str> {
    let pairs: [(&'static str, bool); 9] = [
        ("agent_id", a.agent_id == b.agent_id),
        ("name", a.name == b.name),
        ("email", a.email == b.email),
        ("extension", a.extension == b.extension),
        ("daa_number", a.daa_number == b.daa_number),
        ("group", a.group == b.group),
        ("team", a.team == b.team),
        (
            "recording_percentage",
            a.recording_percentage == b.recording_percentage,
        ),
        ("account", a.account == b.account),
    ];
    pairs
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(name, _)| name)
}

fn index_of(column: &str) -> usize {
    HEADER.iter().position(|c| *c == column).unwrap_or(0)
}

fn whole_line(line: u64, value: &str, reason: &str) -> LineError {
    LineError {
        line,
        column: String::new(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A library error, placed on a line of the file.
fn line_error(line: u64, err: &DirectoryError) -> LineError {
    match err {
        DirectoryError::Invalid {
            field,
            value,
            reason,
        } => LineError {
            line,
            column: (*field).into(),
            value: value.clone(),
            reason: reason.clone(),
        },
        DirectoryError::Taken {
            field,
            value,
            owner,
        } => LineError {
            line,
            column: (*field).into(),
            value: value.clone(),
            reason: format!("is already used by {owner}, who is not in the file"),
        },
        DirectoryError::NotFound { what, key } => LineError {
            line,
            column: (*what).into(),
            value: key.clone(),
            reason: format!("no such {what}"),
        },
        other => whole_line(line, "", &other.to_string()),
    }
}

/// Brings the directory to what the file says, counting the changes; the whole file's
/// problems are returned together, and the caller's transaction then rolls back.
fn apply(
    tx: &Transaction<'_>,
    file_agents: &[FileAgent],
    lines: u64,
) -> Result<ImportSummary, DirectoryError> {
    let mut summary = ImportSummary {
        lines,
        ..ImportSummary::default()
    };
    let mut errors = Vec::new();
    let in_file = |agent_id: &str| {
        file_agents
            .iter()
            .any(|a| a.fields.agent_id.eq_ignore_ascii_case(agent_id))
    };

    // Values that must stay unique, held by agents the file leaves alone.
    for agent in file_agents {
        let f = &agent.fields;
        let uniques = [
            ("extension", "extension", f.extension.as_deref()),
            ("daa_number", "daa_number", f.daa_number.as_deref()),
        ];
        for (field, column, value) in uniques {
            let Some(value) = value else { continue };
            let owner: Option<String> = tx
                .query_row(
                    &format!("SELECT agent_id FROM agents WHERE {column} = ?1"),
                    [value],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(owner) = owner.filter(|o| !in_file(o)) {
                errors.push(line_error(
                    agent.line,
                    &DirectoryError::Taken {
                        field,
                        value: value.to_owned(),
                        owner: format!("agent {owner}"),
                    },
                ));
            }
        }
        if let Some(account) = &f.account {
            let owner: Option<Option<String>> = tx
                .query_row(
                    "SELECT (SELECT agent_id FROM agents WHERE account_id = acc.id)
                     FROM accounts acc WHERE acc.name = ?1",
                    [account],
                    |row| row.get(0),
                )
                .optional()?;
            match owner {
                None => errors.push(line_error(
                    agent.line,
                    &DirectoryError::NotFound {
                        what: "account",
                        key: account.clone(),
                    },
                )),
                Some(Some(owner)) if !in_file(&owner) => errors.push(line_error(
                    agent.line,
                    &DirectoryError::Taken {
                        field: "account",
                        value: account.clone(),
                        owner: format!("agent {owner}"),
                    },
                )),
                Some(_) => {}
            }
        }
        for (line, device) in &agent.devices {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT a.agent_id FROM agent_devices d JOIN agents a ON a.id = d.agent
                     WHERE d.kind = ?1 AND d.value = ?2",
                    (device.kind.as_str(), &device.value),
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(owner) = owner.filter(|o| !in_file(o)) {
                let mut error = line_error(
                    *line,
                    &DirectoryError::Taken {
                        field: "device_value",
                        value: device.value.clone(),
                        owner: format!("agent {owner}"),
                    },
                );
                error.column = "device_value".into();
                errors.push(error);
            }
        }
    }
    if !errors.is_empty() {
        return Err(DirectoryError::Import(errors));
    }

    // Groups and teams the file names.
    for agent in file_agents {
        for (kind, name) in [
            (Grouping::Group, &agent.fields.group),
            (Grouping::Team, &agent.fields.team),
        ] {
            let Some(name) = name else { continue };
            if groupings::find_in(tx, kind, name)?.is_none() {
                groupings::insert(tx, kind, name)?;
                match kind {
                    Grouping::Group => summary.groups_created += 1,
                    Grouping::Team => summary.teams_created += 1,
                }
            }
        }
    }

    // Agents: those that change first let go of their unique values, so that two agents in
    // the file may swap extensions.
    let existing: Vec<Option<Agent>> = file_agents
        .iter()
        .map(|a| agents::find_in(tx, &a.fields.agent_id))
        .collect::<Result<_, _>>()?;
    for current in existing.iter().flatten() {
        if file_agents.iter().any(|a| {
            a.fields
                .agent_id
                .eq_ignore_ascii_case(&current.fields.agent_id)
                && a.fields != current.fields
        }) {
            tx.execute(
                "UPDATE agents SET extension = NULL, daa_number = NULL, account_id = NULL
                 WHERE id = ?1",
                [current.id],
            )?;
        }
    }
    let mut rows = Vec::with_capacity(file_agents.len());
    for (agent, current) in file_agents.iter().zip(&existing) {
        let row = match current {
            Some(current) if current.fields == agent.fields => Ok(current.id),
            Some(current) => agents::write(tx, current.id, &agent.fields).map(|()| {
                summary.agents_updated += 1;
                current.id
            }),
            None => agents::insert(tx, &agent.fields).inspect(|_| summary.agents_created += 1),
        };
        match row {
            Ok(row) => rows.push(row),
            Err(err) => {
                errors.push(line_error(agent.line, &err));
                rows.push(0);
            }
        }
    }
    if !errors.is_empty() {
        return Err(DirectoryError::Import(errors));
    }

    // Devices: removals first, so a device may move between agents of the file.
    let mut inserts = Vec::new();
    for (agent, &row) in file_agents.iter().zip(&rows) {
        let mut wanted: BTreeMap<(DeviceKind, String), &DeviceFields> = agent
            .devices
            .iter()
            .map(|(_, d)| ((d.kind, d.value.clone()), d))
            .collect();
        for device in devices_of(tx, row)? {
            match wanted.remove(&(device.fields.kind, device.fields.value.clone())) {
                Some(d) if devices::same(d, &device.fields) => {}
                Some(d) => {
                    tx.execute(
                        "UPDATE agent_devices SET recording_group = ?2, recording_type = ?3,
                                updated_at = ?4 WHERE id = ?1",
                        (
                            device.id,
                            &d.recording_group,
                            d.recording_type
                                .unwrap_or(d.kind.default_recording_type())
                                .as_str(),
                            crate::now_text(),
                        ),
                    )?;
                    summary.devices_updated += 1;
                }
                None => {
                    tx.execute("DELETE FROM agent_devices WHERE id = ?1", [device.id])?;
                    summary.devices_removed += 1;
                }
            }
        }
        inserts.extend(wanted.into_values().map(|d| (row, d)));
    }
    for (row, device) in inserts {
        tx.execute(
            "DELETE FROM agent_devices WHERE kind = ?1 AND value = ?2",
            (device.kind.as_str(), &device.value),
        )?;
        devices::insert(tx, row, device)?;
        summary.devices_added += 1;
    }
    Ok(summary)
}

fn devices_of(conn: &Connection, agent: i64) -> Result<Vec<crate::Device>, DirectoryError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, kind, value, recording_group, recording_type FROM agent_devices
         WHERE agent = ?1",
    )?;
    let rows = statement.query_map([agent], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, kind, value, recording_group, recording_type) = row?;
        // The table's CHECK constraints hold kind and type to the spellings that parse.
        let (Ok(kind), Ok(recording_type)) = (kind.parse(), recording_type.parse()) else {
            continue;
        };
        out.push(crate::Device {
            id,
            agent,
            fields: DeviceFields {
                kind,
                value,
                agent_id: String::new(),
                recording_group,
                recording_type: Some(recording_type),
            },
        });
    }
    Ok(out)
}
