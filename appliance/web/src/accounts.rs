//! Account administration from the web UI: create with a role (built-in or custom), change an
//! account's role, reset a password, disable and enable, change one's own password. Each
//! change and its audit row are written in one transaction; passwords are hashed and roles
//! resolved by `tapline-accounts`.
//!
//! A password reset, disabling an account and a password change end the account's other
//! sessions: whoever held them must sign in again with the new state. A role change keeps the
//! sessions: the guard resolves the account's role at every request, so the next request of
//! each session is answered with the new role's permissions.

use serde::Serialize;
use serde_json::json;
use tapline_accounts::{AccountError, MIN_PASSWORD_LEN};
use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection, OptionalExtension};

use crate::roles;
use crate::session::{self, Timeouts};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "account name \"{0}\" is not allowed: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
    )]
    BadName(String),
    #[error("\"{0}\" is the tenant's SFTP login name; choose another")]
    TenantName(String),
    #[error("an account called \"{0}\" exists already")]
    Exists(String),
    #[error("no account is called \"{0}\"")]
    NotFound(String),
    #[error("no role is called \"{0}\"")]
    UnknownRole(String),
    #[error("passwords must be at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("you cannot disable your own account or change its role")]
    OwnAccount,
    #[error(transparent)]
    Accounts(#[from] AccountError),
    #[error("account database error")]
    Store(#[from] rusqlite::Error),
}

/// An account as the administration page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub must_change_password: bool,
    /// Sessions open now.
    pub sessions: u32,
}

pub fn list(
    conn: &Connection,
    timeouts: Timeouts,
    now: jiff::Timestamp,
) -> rusqlite::Result<Vec<AccountView>> {
    let mut statement = conn.prepare(
        "SELECT name, role, disabled_at IS NOT NULL, must_change_password
         FROM accounts ORDER BY name COLLATE NOCASE",
    )?;
    let rows: Vec<(String, String, bool, bool)> = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(name, role, disabled, must_change_password)| {
            let sessions = session::count(conn, &name, timeouts, now)?;
            Ok(AccountView {
                name,
                role,
                disabled,
                must_change_password,
                sessions,
            })
        })
        .collect()
}

/// Creates an account. With no password given, one is generated, returned, and must be
/// changed at first sign-in.
pub fn create(
    store: &Store,
    tenant_name: &str,
    name: &str,
    role: &str,
    password: Option<&str>,
    actor: &Actor<'_>,
) -> Result<Option<String>, AdminError> {
    let name = name.trim();
    check_name(name)?;
    if name.eq_ignore_ascii_case(tenant_name) {
        return Err(AdminError::TenantName(name.to_owned()));
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(given) => (given.to_owned(), false),
        None => (tapline_accounts::generate_password()?, true),
    };
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::PasswordTooShort);
    }
    let hash = tapline_accounts::hash_password(&password)?;
    store.write(|tx| {
        let role = roles::canonical_name(tx, role)?
            .ok_or_else(|| AdminError::UnknownRole(role.to_owned()))?;
        let inserted = tx.execute(
            "INSERT INTO accounts (name, role, password_hash, must_change_password,
                                   created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                     strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT (name) DO NOTHING",
            (name, &role, &hash, generated),
        )?;
        if inserted == 0 {
            return Err(AdminError::Exists(name.to_owned()));
        }
        let params = json!({ "role": role, "must_change_password": generated });
        tapline_audit::append(
            tx,
            &actor.entry(events::ACCOUNT, events::CREATED, name, "", params),
        )?;
        Ok(())
    })?;
    Ok(generated.then_some(password))
}

/// Gives `name` a new generated password it must change at its next sign-in, and ends its
/// sessions. Returns the password, to be shown once.
pub fn reset_password(store: &Store, name: &str, actor: &Actor<'_>) -> Result<String, AdminError> {
    let password = tapline_accounts::generate_password()?;
    let hash = tapline_accounts::hash_password(&password)?;
    store.write(|tx| {
        let changed = tx.execute(
            "UPDATE accounts SET password_hash = ?2, must_change_password = 1,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
             WHERE name = ?1",
            (name, &hash),
        )?;
        if changed == 0 {
            return Err(AdminError::NotFound(name.to_owned()));
        }
        let ended = session::end_all(tx, name, None)?;
        let params =
            json!({ "reset": true, "must_change_password": true, "sessions_ended": ended });
        tapline_audit::append(
            tx,
            &actor.entry(events::ACCOUNT, events::PASSWORD_SET, name, "", params),
        )?;
        Ok(())
    })?;
    Ok(password)
}

/// Gives `name` the role called `role` (built-in or custom, any case), audited with the role
/// it had. Returns the role's name as stored. Administrators cannot change their own role, so
/// the last administrator cannot demote itself by mistake.
pub fn set_role(
    store: &Store,
    name: &str,
    role: &str,
    actor: &Actor<'_>,
) -> Result<String, AdminError> {
    if name.eq_ignore_ascii_case(actor.username) {
        return Err(AdminError::OwnAccount);
    }
    store.write(|tx| {
        let role = tapline_accounts::roles::resolve(tx, role.trim())?
            .ok_or_else(|| AdminError::UnknownRole(role.to_owned()))?;
        let before: Option<String> = tx
            .query_row("SELECT role FROM accounts WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(before) = before else {
            return Err(AdminError::NotFound(name.to_owned()));
        };
        if before == role.name() {
            return Ok(before);
        }
        tx.execute(
            "UPDATE accounts SET role = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
             WHERE name = ?1",
            (name, role.name()),
        )?;
        let params = json!({ "from": before, "to": role.name() });
        tapline_audit::append(
            tx,
            &actor.entry(events::ACCOUNT, events::ROLE_CHANGED, name, "", params),
        )?;
        Ok(role.name().to_owned())
    })
}

/// Disables or enables `name`. Disabling ends its sessions.
pub fn set_disabled(
    store: &Store,
    name: &str,
    disabled: bool,
    actor: &Actor<'_>,
) -> Result<(), AdminError> {
    if disabled && name.eq_ignore_ascii_case(actor.username) {
        return Err(AdminError::OwnAccount);
    }
    store.write(|tx| {
        let changed = tx.execute(
            "UPDATE accounts SET
                 disabled_at = CASE WHEN ?2 THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') END,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
             WHERE name = ?1",
            (name, disabled),
        )?;
        if changed == 0 {
            return Err(AdminError::NotFound(name.to_owned()));
        }
        let ended = if disabled {
            session::end_all(tx, name, None)?
        } else {
            0
        };
        let sub_event = if disabled {
            events::DISABLED
        } else {
            events::ENABLED
        };
        tapline_audit::append(
            tx,
            &actor.entry(
                events::ACCOUNT,
                sub_event,
                name,
                "",
                json!({ "sessions_ended": ended }),
            ),
        )?;
        Ok(())
    })
}

/// Changes the caller's own password after checking the current one, and ends the account's
/// other sessions (`keep` is the caller's).
pub fn change_own_password(
    store: &Store,
    name: &str,
    current: &str,
    new: &str,
    keep: &str,
    actor: &Actor<'_>,
) -> Result<(), AdminError> {
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::PasswordTooShort);
    }
    if !tapline_accounts::authenticate(store, name, current)? {
        return Err(AdminError::WrongPassword);
    }
    let hash = tapline_accounts::hash_password(new)?;
    store.write(|tx| {
        tx.execute(
            "UPDATE accounts SET password_hash = ?2, must_change_password = 0,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
             WHERE name = ?1",
            (name, &hash),
        )?;
        let ended = session::end_all(tx, name, Some(keep))?;
        let params = json!({ "own": true, "other_sessions_ended": ended });
        tapline_audit::append(
            tx,
            &actor.entry(events::ACCOUNT, events::PASSWORD_SET, name, "", params),
        )?;
        Ok(())
    })
}

fn check_name(name: &str) -> Result<(), AdminError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::BadName(name.to_owned()))
    }
}
