//! Groups and teams: named sets of agents, and what a supervisor's scope is made of. Both
//! behave alike, so one set of functions serves both, told which by [`Grouping`].

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{Connection, OptionalExtension, Transaction};

use crate::{DirectoryError, check_text, now_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    Group,
    Team,
}

impl Grouping {
    /// As the directory's fields and messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Group => "group",
            Grouping::Team => "team",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Grouping::Group => "agent_groups",
            Grouping::Team => "agent_teams",
        }
    }

    fn object(self, name: &str) -> String {
        match self {
            Grouping::Group => format!("Group {name}"),
            Grouping::Team => format!("Team {name}"),
        }
    }
}

/// A group or team as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

/// Creates a group or team; names are unique without regard to case. Returns its row.
pub fn create(
    store: &Store,
    kind: Grouping,
    name: &str,
    actor: &Actor<'_>,
) -> Result<i64, DirectoryError> {
    let name = check_text(kind.as_str(), name, 64)?;
    store.write(|tx| {
        let id = insert(tx, kind, &name)?;
        audit(
            tx,
            actor,
            kind,
            events::CREATED,
            &name,
            serde_json::json!({}),
        )?;
        Ok(id)
    })
}

/// Renames a group or team. Nothing is written when the name is the same.
pub fn rename(
    store: &Store,
    kind: Grouping,
    id: i64,
    name: &str,
    actor: &Actor<'_>,
) -> Result<(), DirectoryError> {
    let name = check_text(kind.as_str(), name, 64)?;
    store.write(|tx| {
        let current = read(tx, kind, id)?;
        if current.name == name {
            return Ok(());
        }
        if let Some(other) = find_in(tx, kind, &name)?
            && other != id
        {
            return Err(taken(kind, &name));
        }
        tx.execute(
            &format!(
                "UPDATE {} SET name = ?2, updated_at = ?3 WHERE id = ?1",
                kind.table()
            ),
            (id, &name, now_text()),
        )?;
        let params = serde_json::json!({ "previous_name": current.name });
        audit(tx, actor, kind, events::UPDATED, &name, params)?;
        Ok(())
    })
}

/// Deletes a group or team. Its agents stay, in no group (or team), and it leaves every
/// supervisor's scope.
pub fn delete(
    store: &Store,
    kind: Grouping,
    id: i64,
    actor: &Actor<'_>,
) -> Result<(), DirectoryError> {
    store.write(|tx| {
        let current = read(tx, kind, id)?;
        tx.execute(&format!("DELETE FROM {} WHERE id = ?1", kind.table()), [id])?;
        audit(
            tx,
            actor,
            kind,
            events::DELETED,
            &current.name,
            serde_json::json!({}),
        )?;
        Ok(())
    })
}

/// Every group or team, by name.
pub fn list(store: &Store, kind: Grouping) -> Result<Vec<Named>, DirectoryError> {
    store.read(|conn| list_in(conn, kind))
}

pub(crate) fn list_in(conn: &Connection, kind: Grouping) -> Result<Vec<Named>, DirectoryError> {
    let mut statement = conn.prepare(&format!(
        "SELECT id, name FROM {} ORDER BY name COLLATE NOCASE, id",
        kind.table()
    ))?;
    let rows = statement.query_map([], |row| {
        Ok(Named {
            id: row.get(0)?,
            name: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The row of the group or team with this name (any case).
pub(crate) fn find_in(
    conn: &Connection,
    kind: Grouping,
    name: &str,
) -> Result<Option<i64>, DirectoryError> {
    Ok(conn
        .query_row(
            &format!("SELECT id FROM {} WHERE name = ?1", kind.table()),
            [name.trim()],
            |row| row.get(0),
        )
        .optional()?)
}

pub(crate) fn insert(
    tx: &Transaction<'_>,
    kind: Grouping,
    name: &str,
) -> Result<i64, DirectoryError> {
    if find_in(tx, kind, name)?.is_some() {
        return Err(taken(kind, name));
    }
    tx.execute(
        &format!(
            "INSERT INTO {} (name, created_at, updated_at) VALUES (?1, ?2, ?2)",
            kind.table()
        ),
        (name, now_text()),
    )?;
    Ok(tx.last_insert_rowid())
}

fn read(conn: &Connection, kind: Grouping, id: i64) -> Result<Named, DirectoryError> {
    conn.query_row(
        &format!("SELECT id, name FROM {} WHERE id = ?1", kind.table()),
        [id],
        |row| {
            Ok(Named {
                id: row.get(0)?,
                name: row.get(1)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| DirectoryError::NotFound {
        what: kind.as_str(),
        key: format!("#{id}"),
    })
}

fn taken(kind: Grouping, name: &str) -> DirectoryError {
    DirectoryError::Taken {
        field: kind.as_str(),
        value: name.to_owned(),
        owner: format!("another {}", kind.as_str()),
    }
}

fn audit(
    tx: &Transaction<'_>,
    actor: &Actor<'_>,
    kind: Grouping,
    sub_event: &'static str,
    name: &str,
    params: serde_json::Value,
) -> Result<(), DirectoryError> {
    let object = kind.object(name);
    tapline_audit::append(
        tx,
        &actor.entry(events::DIRECTORY, sub_event, &object, "", params),
    )?;
    Ok(())
}
