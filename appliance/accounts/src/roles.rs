//! An account's role as every service resolves it: one of the four built-in [`Role`]s, whose
//! permissions are fixed in the code, or a custom role, a named set of permissions an
//! administrator keeps in the `custom_roles` table.
//!
//! The web UI's guard and the SFTP login both call [`resolve`], so an account is granted the
//! same permissions whichever way it comes in. A role name that is neither built in nor stored
//! (a newer release may write one) resolves to nothing and grants nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use tapline_store::rusqlite::{self, Connection, OptionalExtension};

use crate::{Permission, Role};

/// The permissions a role grants, before implication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(BTreeSet<Permission>);

impl Permissions {
    pub fn of(granted: impl IntoIterator<Item = Permission>) -> Permissions {
        Permissions(granted.into_iter().collect())
    }

    /// Held directly, or through one that implies it (Access metrics implies the three
    /// metrics permissions before it).
    pub fn has(&self, permission: Permission) -> bool {
        self.0.iter().any(|granted| granted.implies(permission))
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    /// The catalogue's names, in catalogue order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// As `custom_roles.permissions` stores them: a JSON array of catalogue names.
    pub fn encode(&self) -> String {
        serde_json::Value::from(self.names()).to_string()
    }

    /// Reads `custom_roles.permissions`. Names this release does not know (written by a newer
    /// one) are dropped, and text that is not a JSON array of names grants nothing.
    pub fn decode(text: &str) -> Permissions {
        let names: Vec<String> = serde_json::from_str(text).unwrap_or_default();
        Permissions::of(names.iter().filter_map(|name| name.parse().ok()))
    }
}

/// The role an account holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRole {
    BuiltIn(Role),
    Custom {
        /// As stored in `custom_roles`, whatever case the account's row spells it in.
        name: String,
        permissions: Permissions,
    },
}

impl AccountRole {
    pub fn name(&self) -> &str {
        match self {
            AccountRole::BuiltIn(role) => role.as_str(),
            AccountRole::Custom { name, .. } => name,
        }
    }

    /// Whether the role holds `permission`, directly or through one that implies it.
    pub fn has(&self, permission: Permission) -> bool {
        match self {
            AccountRole::BuiltIn(role) => role.has(permission),
            AccountRole::Custom { permissions, .. } => permissions.has(permission),
        }
    }

    /// What the role grants, before implication.
    pub fn permissions(&self) -> Permissions {
        match self {
            AccountRole::BuiltIn(role) => Permissions::of(role.granted().iter().copied()),
            AccountRole::Custom { permissions, .. } => permissions.clone(),
        }
    }
}

impl fmt::Display for AccountRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role called `name` (any case): a built-in one, else a custom one, else `None`.
pub fn resolve(conn: &Connection, name: &str) -> rusqlite::Result<Option<AccountRole>> {
    if let Ok(role) = Role::from_str(name) {
        return Ok(Some(AccountRole::BuiltIn(role)));
    }
    let stored: Option<(String, String)> = conn
        .query_row(
            "SELECT name, permissions FROM custom_roles WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(stored.map(|(name, permissions)| AccountRole::Custom {
        name,
        permissions: Permissions::decode(&permissions),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    fn store_with_custom_role(name: &str, permissions: &str) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO custom_roles (name, permissions, created_at, updated_at)
                     VALUES (?1, ?2, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
                    (name, permissions),
                )
            })
            .unwrap();
        (dir, store)
    }

    #[test]
    fn built_in_names_win_and_custom_ones_come_from_the_table() {
        let (_dir, store) = store_with_custom_role(
            "Quality team",
            r#"["Recordings", "Access metrics", "Teleport"]"#,
        );
        let resolve = |name: &str| store.read(|c| resolve(c, name)).unwrap();
        assert_eq!(
            resolve("auditor"),
            Some(AccountRole::BuiltIn(Role::Auditor))
        );
        let quality = resolve("QUALITY TEAM").unwrap();
        assert_eq!(quality.name(), "Quality team", "the stored spelling");
        assert!(quality.has(Permission::Recordings));
        assert!(quality.has(Permission::HistoricalMetrics), "implied");
        assert!(quality.has(Permission::RealTimeMetrics), "implied");
        assert!(!quality.has(Permission::Sftp));
        assert_eq!(
            quality.permissions().names(),
            ["Access metrics", "Recordings"],
            "the unknown name is dropped"
        );
        assert_eq!(resolve("nobody"), None);
    }

    #[test]
    fn permissions_round_trip_and_bad_text_grants_nothing() {
        let set = Permissions::of([Permission::Sftp, Permission::ShowActivityLog]);
        assert_eq!(set.encode(), r#"["show_activity_log","SFTP"]"#);
        assert_eq!(Permissions::decode(&set.encode()), set);
        assert_eq!(Permissions::decode("not json"), Permissions::default());
        assert!(!Permissions::decode("{}").has(Permission::Sftp));
    }
}
