//! Who may log in to what. The tenant login (user name = the tenant's name, as the product
//! documentation describes for SFTP) and local accounts are checked here, in one place, for
//! every service.
//!
//! - The tenant's name is the one in force: the configuration file's, unless the settings
//!   page overrides it (`tapline_store::settings`), read at each login.
//! - An account's role is resolved by [`crate::roles::resolve`], built-in or custom, as the
//!   web UI resolves it.
//! - A disabled account (`accounts.disabled_at` set) is refused like a wrong password.
//!
//! **Unknown names cost the same work as known ones**: a password is always checked against an
//! Argon2id hash, a placeholder one when the name does not exist or lacks the permission, so
//! the time taken does not tell which names exist.

use std::fmt;

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{self, OptionalExtension};

use crate::roles::{self, AccountRole};
use crate::{AccountError, MIN_PASSWORD_LEN, Permission, hash_password, verify_password};

/// Someone who has proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The tenant login, which may use SFTP and nothing else.
    Tenant {
        name: String,
    },
    Account {
        name: String,
        role: AccountRole,
    },
}

impl Principal {
    /// The name as stored (the tenant's name as configured), whatever case was typed.
    pub fn name(&self) -> &str {
        match self {
            Principal::Tenant { name } | Principal::Account { name, .. } => name,
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        match self {
            Principal::Tenant { .. } => permission == Permission::Sftp,
            Principal::Account { role, .. } => role.has(permission),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sets the tenant login's password (the product's "SFTP Password"), audited.
pub fn set_tenant_password(
    store: &Store,
    tenant_name: &str,
    password: &str,
    actor: &Actor<'_>,
) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccountError::PasswordTooShort);
    }
    let hash = hash_password(password)?;
    store.write(|tx| {
        tx.execute(
            "INSERT INTO tenant_login (id, password_hash, updated_at)
             VALUES (1, ?1, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT (id) DO UPDATE SET
                 password_hash = excluded.password_hash,
                 updated_at = excluded.updated_at",
            [&hash],
        )?;
        let entry = actor.entry(
            events::ACCOUNT,
            events::PASSWORD_SET,
            tenant_name,
            "SFTP password of the tenant login",
            serde_json::json!({}),
        );
        tapline_audit::append(tx, &entry)?;
        Ok(())
    })
}

/// Whether the tenant login has a password (until it does, nobody can log in as the tenant).
pub fn tenant_password_set(store: &Store) -> Result<bool, AccountError> {
    Ok(store.read(|conn| {
        conn.query_row("SELECT EXISTS (SELECT 1 FROM tenant_login)", [], |row| {
            row.get(0)
        })
    })?)
}

/// The principal `name` stands for, if it exists, is not disabled and holds `needs`; for
/// public-key logins, whose proof is checked elsewhere. `tenant_name` is the configuration
/// file's; an override saved in the web UI wins.
pub fn principal(
    store: &Store,
    tenant_name: &str,
    name: &str,
    needs: Permission,
) -> Result<Option<Principal>, AccountError> {
    Ok(lookup(store, tenant_name, name)?
        .map(|(principal, _)| principal)
        .filter(|principal| principal.has(needs)))
}

/// Checks `password` for `name`, and that the principal holds `needs`. `None` for a wrong
/// password, an unknown name, a disabled account or a principal without the permission, after
/// the same work. `tenant_name` is the configuration file's; an override saved in the web UI
/// wins.
pub fn check_password(
    store: &Store,
    tenant_name: &str,
    name: &str,
    password: &str,
    needs: Permission,
) -> Result<Option<Principal>, AccountError> {
    let found = lookup(store, tenant_name, name)?;
    let (principal, hash) = match found {
        Some((principal, Some(hash))) if principal.has(needs) => (Some(principal), hash),
        _ => (None, crate::dummy_hash().to_owned()),
    };
    let matches = verify_password(&hash, password);
    Ok(principal.filter(|_| matches))
}

/// The principal and its password hash, in one read. The tenant's name wins over an account
/// of the same name, which `tapline account add` and the web UI refuse to create anyway.
/// Disabled accounts and accounts whose role resolves to nothing are `None`.
fn lookup(
    store: &Store,
    file_tenant_name: &str,
    name: &str,
) -> Result<Option<(Principal, Option<String>)>, AccountError> {
    let found = store.read(|conn| -> rusqlite::Result<_> {
        let tenant_name = tapline_store::settings::tenant_name(conn, file_tenant_name)?;
        if name.eq_ignore_ascii_case(&tenant_name) {
            let hash: Option<String> = conn
                .query_row(
                    "SELECT password_hash FROM tenant_login WHERE id = 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            let principal = Principal::Tenant { name: tenant_name };
            return Ok(Some((principal, hash)));
        }
        let row: Option<(String, String, Option<String>)> = conn
            .query_row(
                "SELECT name, role, password_hash FROM accounts
                 WHERE name = ?1 AND disabled_at IS NULL",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((name, role, hash)) = row else {
            return Ok(None);
        };
        // A role this release does not know (written by a newer one) grants nothing.
        Ok(roles::resolve(conn, &role)?.map(|role| (Principal::Account { name, role }, hash)))
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    const TENANT: &str = "AcmeJets";

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn the_tenant_login_needs_its_password_set() {
        let (_dir, store) = store();
        assert!(!tenant_password_set(&store).unwrap());
        let check = |name: &str, password: &str| {
            check_password(&store, TENANT, name, password, Permission::Sftp).unwrap()
        };
        assert_eq!(check(TENANT, "anything at all"), None);
        set_tenant_password(&store, TENANT, "tenant sftp password", &Actor::SYSTEM).unwrap();
        assert!(tenant_password_set(&store).unwrap());
        let tenant = Principal::Tenant {
            name: TENANT.into(),
        };
        assert_eq!(
            check("acmejets", "tenant sftp password"),
            Some(tenant.clone())
        );
        assert_eq!(check(TENANT, "tenant sftp passworD"), None);
        assert_eq!(
            check_password(
                &store,
                TENANT,
                TENANT,
                "tenant sftp password",
                Permission::Recordings
            )
            .unwrap(),
            None,
            "the tenant login is for SFTP only"
        );
        assert!(matches!(
            set_tenant_password(&store, TENANT, "short", &Actor::SYSTEM),
            Err(AccountError::PasswordTooShort)
        ));
    }

    #[test]
    fn accounts_need_the_permission() {
        let (_dir, store) = store();
        crate::upsert(
            &store,
            "audrey",
            Role::Auditor,
            "auditor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        crate::upsert(
            &store,
            "sam",
            Role::Supervisor,
            "supervisor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        let audrey = check_password(
            &store,
            TENANT,
            "Audrey",
            "auditor password",
            Permission::Sftp,
        )
        .unwrap();
        assert_eq!(
            audrey,
            Some(Principal::Account {
                name: "audrey".into(),
                role: AccountRole::BuiltIn(Role::Auditor)
            })
        );
        let sam = check_password(
            &store,
            TENANT,
            "sam",
            "supervisor password",
            Permission::Sftp,
        )
        .unwrap();
        assert_eq!(sam, None, "supervisors do not hold SFTP");
        assert!(
            principal(&store, TENANT, "audrey", Permission::Sftp)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            principal(&store, TENANT, "nobody", Permission::Sftp).unwrap(),
            None
        );
    }

    #[test]
    fn disabled_accounts_are_refused_like_a_wrong_password() {
        let (_dir, store) = store();
        crate::upsert(
            &store,
            "audrey",
            Role::Auditor,
            "auditor password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        let check = || {
            check_password(
                &store,
                TENANT,
                "audrey",
                "auditor password",
                Permission::Sftp,
            )
            .unwrap()
        };
        assert!(check().is_some());
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE accounts SET disabled_at = '2026-01-01T00:00:00.000Z'
                     WHERE name = 'audrey'",
                    [],
                )
            })
            .unwrap();
        assert_eq!(check(), None);
        assert_eq!(
            principal(&store, TENANT, "audrey", Permission::Sftp).unwrap(),
            None,
            "nor by key"
        );
    }

    #[test]
    fn custom_roles_grant_what_they_list() {
        let (_dir, store) = store();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO custom_roles (name, permissions, created_at, updated_at)
                     VALUES ('Exporters', '[\"SFTP\"]', '2026-01-01T00:00:00.000Z',
                             '2026-01-01T00:00:00.000Z'),
                            ('Viewers', '[\"Recordings\"]', '2026-01-01T00:00:00.000Z',
                             '2026-01-01T00:00:00.000Z')",
                    [],
                )
            })
            .unwrap();
        for (name, role) in [("erin", "exporters"), ("vic", "Viewers")] {
            let hash = hash_password("a long password here").unwrap();
            store
                .write(|tx| {
                    tx.execute(
                        "INSERT INTO accounts (name, role, password_hash, must_change_password,
                                               created_at, updated_at)
                         VALUES (?1, ?2, ?3, 0, '2026-01-01T00:00:00.000Z',
                                 '2026-01-01T00:00:00.000Z')",
                        (name, role, &hash),
                    )
                })
                .unwrap();
        }
        let sftp = |name: &str| {
            check_password(
                &store,
                TENANT,
                name,
                "a long password here",
                Permission::Sftp,
            )
            .unwrap()
        };
        let erin = sftp("erin").unwrap();
        assert!(
            matches!(&erin, Principal::Account { role: AccountRole::Custom { name, .. }, .. }
                if name == "Exporters")
        );
        assert!(!erin.has(Permission::Recordings));
        assert_eq!(sftp("vic"), None, "Viewers do not hold SFTP");
    }

    #[test]
    fn the_tenant_login_follows_the_tenant_name_in_force() {
        let (_dir, store) = store();
        set_tenant_password(&store, TENANT, "tenant sftp password", &Actor::SYSTEM).unwrap();
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by)
                     VALUES ('tenant.name', 'AcmeAir', '2026-01-01T00:00:00.000Z', 'root')",
                    [],
                )
            })
            .unwrap();
        let check = |name: &str| {
            check_password(
                &store,
                TENANT,
                name,
                "tenant sftp password",
                Permission::Sftp,
            )
            .unwrap()
        };
        assert_eq!(
            check("acmeair"),
            Some(Principal::Tenant {
                name: "AcmeAir".into()
            })
        );
        assert_eq!(check(TENANT), None, "the file's name no longer logs in");
    }
}
