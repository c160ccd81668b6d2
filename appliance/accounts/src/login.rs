//! Who may log in to what. The tenant login (user name = the tenant's name, as the product
//! documentation describes for SFTP) and local accounts are checked here, in one place, for
//! every service.
//!
//! **Unknown names cost the same work as known ones**: a password is always checked against an
//! Argon2id hash, a placeholder one when the name does not exist or lacks the permission, so
//! the time taken does not tell which names exist.

use std::fmt;

use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::OptionalExtension;

use crate::{AccountError, MIN_PASSWORD_LEN, Permission, Role, hash_password, verify_password};

/// Someone who has proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The tenant login, which may use SFTP and nothing else.
    Tenant {
        name: String,
    },
    Account {
        name: String,
        role: Role,
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

/// The principal `name` stands for, if it exists and holds `needs`; for public-key logins,
/// whose proof is checked elsewhere.
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
/// password, an unknown name, or a principal without the permission, after the same work.
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

/// The principal and its password hash. The tenant's name wins over an account of the same
/// name, which `tapline account add` refuses to create anyway.
fn lookup(
    store: &Store,
    tenant_name: &str,
    name: &str,
) -> Result<Option<(Principal, Option<String>)>, AccountError> {
    if name.eq_ignore_ascii_case(tenant_name) {
        let hash: Option<String> = store.read(|conn| {
            conn.query_row(
                "SELECT password_hash FROM tenant_login WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()
        })?;
        let principal = Principal::Tenant {
            name: tenant_name.to_owned(),
        };
        return Ok(Some((principal, hash)));
    }
    let row: Option<(String, String, Option<String>)> = store.read(|conn| {
        conn.query_row(
            "SELECT name, role, password_hash FROM accounts WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
    })?;
    Ok(row.and_then(|(name, role, hash)| {
        // A role the catalogue does not know (written by a newer release) grants nothing.
        let role = role.parse::<Role>().ok()?;
        Some((Principal::Account { name, role }, hash))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                role: Role::Auditor
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
}
