//! Roles as the web UI sees them: the four built-in roles of `tapline-accounts` (read-only,
//! their permissions fixed in the code) and custom roles, named sets of permissions an
//! administrator keeps in the `custom_roles` table.
//!
//! An account's `role` column names either. A name that is neither (a custom role deleted
//! while still assigned is refused, but a newer release may write one) grants nothing.

use std::str::FromStr;

use serde::Serialize;
use tapline_accounts::{Permission, Role};
use tapline_audit::{Actor, events};
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};

pub use tapline_accounts::Permissions;

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("unknown permission \"{0}\"")]
    UnknownPermission(String),
    #[error("\"{0}\" is a built-in role and cannot be changed")]
    BuiltIn(String),
    #[error(
        "role name \"{0}\" is not allowed: use 1 to 64 letters, digits, spaces, '.', '_' or '-'"
    )]
    BadName(String),
    #[error("no role is called \"{0}\"")]
    NotFound(String),
    #[error("role \"{role}\" is still held by {accounts} account(s)")]
    InUse { role: String, accounts: u32 },
    #[error("role database error")]
    Store(#[from] rusqlite::Error),
}

/// A permission by the name the catalogue gives it.
pub fn parse_permission(name: &str) -> Result<Permission, RoleError> {
    Permission::ALL
        .into_iter()
        .find(|p| p.as_str() == name.trim())
        .ok_or_else(|| RoleError::UnknownPermission(name.to_owned()))
}

/// A role and what it grants, for lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub name: String,
    pub built_in: bool,
    pub permissions: Vec<String>,
}

/// What the role called `name` grants, if there is one: the same lookup the SFTP login makes.
pub fn permissions_of(conn: &Connection, name: &str) -> rusqlite::Result<Option<Permissions>> {
    Ok(tapline_accounts::roles::resolve(conn, name)?.map(|role| role.permissions()))
}

/// The stored name of a role, as it should be written in `accounts.role`.
pub fn canonical_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    if let Ok(role) = Role::from_str(name) {
        return Ok(Some(role.as_str().to_owned()));
    }
    conn.query_row(
        "SELECT name FROM custom_roles WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .optional()
}

/// Every role: the built-in ones first, then custom ones by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<RoleView>> {
    let mut out: Vec<RoleView> = Role::ALL
        .into_iter()
        .map(|role| RoleView {
            name: role.as_str().to_owned(),
            built_in: true,
            permissions: role
                .granted()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        })
        .collect();
    let mut statement = conn.prepare("SELECT name, permissions FROM custom_roles ORDER BY name")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (name, permissions) = row?;
        out.push(RoleView {
            name,
            built_in: false,
            permissions: Permissions::decode(&permissions)
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        });
    }
    Ok(out)
}

/// Creates or replaces the custom role `name`, audited in the same transaction.
pub fn save(
    tx: &Transaction<'_>,
    name: &str,
    permissions: &Permissions,
    actor: &Actor<'_>,
) -> Result<(), RoleError> {
    let name = name.trim();
    check_name(name)?;
    if Role::from_str(name).is_ok() {
        return Err(RoleError::BuiltIn(name.to_owned()));
    }
    let existed: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM custom_roles WHERE name = ?1)",
        [name],
        |row| row.get(0),
    )?;
    let encoded = permissions.encode();
    tx.execute(
        "INSERT INTO custom_roles (name, permissions, created_at, updated_at)
         VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ','now'), strftime('%Y-%m-%dT%H:%M:%fZ','now'))
         ON CONFLICT (name) DO UPDATE SET
             permissions = excluded.permissions, updated_at = excluded.updated_at",
        (name, &encoded),
    )?;
    let sub_event = if existed {
        tapline_audit::events::UPDATED
    } else {
        tapline_audit::events::CREATED
    };
    let params = serde_json::json!({ "permissions": permissions.names() });
    tapline_audit::append(tx, &actor.entry(events::ROLE, sub_event, name, "", params))?;
    Ok(())
}

/// Deletes a custom role no account holds, audited.
pub fn delete(tx: &Transaction<'_>, name: &str, actor: &Actor<'_>) -> Result<(), RoleError> {
    if Role::from_str(name).is_ok() {
        return Err(RoleError::BuiltIn(name.to_owned()));
    }
    let accounts: u32 = tx.query_row(
        "SELECT count(*) FROM accounts WHERE role = ?1 COLLATE NOCASE",
        [name],
        |row| row.get(0),
    )?;
    if accounts > 0 {
        return Err(RoleError::InUse {
            role: name.to_owned(),
            accounts,
        });
    }
    if tx.execute("DELETE FROM custom_roles WHERE name = ?1", [name])? == 0 {
        return Err(RoleError::NotFound(name.to_owned()));
    }
    tapline_audit::append(
        tx,
        &actor.entry(
            events::ROLE,
            events::DELETED,
            name,
            "",
            serde_json::json!({}),
        ),
    )?;
    Ok(())
}

fn check_name(name: &str) -> Result<(), RoleError> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RoleError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    #[test]
    fn built_in_roles_are_read_only_and_custom_ones_grant_what_they_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let quality = Permissions::of([Permission::Recordings, Permission::AccessMetrics]);
        store
            .write(|tx| save(tx, "Quality team", &quality, &Actor::SYSTEM))
            .unwrap();
        let found = store
            .read(|c| permissions_of(c, "quality TEAM"))
            .unwrap()
            .unwrap();
        assert!(found.has(Permission::Recordings));
        assert!(found.has(Permission::HistoricalMetrics), "implied");
        assert!(!found.has(Permission::Administration));
        let err = store
            .write(|tx| save(tx, "supervisor", &quality, &Actor::SYSTEM))
            .unwrap_err();
        assert!(matches!(err, RoleError::BuiltIn(_)), "{err}");
        let admin = store
            .read(|c| permissions_of(c, "Administrator"))
            .unwrap()
            .unwrap();
        assert!(admin.has(Permission::Administration));
        assert_eq!(store.read(|c| permissions_of(c, "nobody")).unwrap(), None);
        let all = store.read(list).unwrap();
        assert_eq!(all.len(), 5);
        assert!(all[4].permissions.contains(&"Access metrics".to_owned()));
        store
            .write(|tx| delete(tx, "Quality team", &Actor::SYSTEM))
            .unwrap();
        let audited: Vec<String> = store
            .read(|c| {
                let mut s = c.prepare("SELECT sub_event FROM audit_log ORDER BY id")?;
                s.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap();
        assert_eq!(audited, ["Created", "Deleted"]);
    }
}
