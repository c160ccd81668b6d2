//! Local accounts. One store serves the web UI and SFTP, so an administrator manages a person
//! once.
//!
//! **Passwords are kept only as Argon2id hashes**, with the parameters in [`argon2_params`];
//! verification compares in constant time (inside `argon2`). A password Tapline generated (the
//! first administrator's, the demo's, an administrator's reset) is one-time: the account must
//! change it at its next sign-in.

pub mod keys;
pub mod lockout;
pub mod login;
mod permission;
pub mod roles;
pub mod throttle;

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tapline_audit::{Actor, events};
use tapline_store::Store;
use tapline_store::rusqlite::{self, OptionalExtension};

pub use permission::{Permission, UnknownPermission};
pub use roles::{AccountRole, Permissions};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unknown role \"{0}\" (roles: Administrator, Supervisor, Auditor, Agent)")]
    UnknownRole(String),
    #[error(
        "account name \"{0}\" is not allowed: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
    )]
    BadName(String),
    #[error("passwords must be at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    #[error("the system's random number generator failed")]
    Random(#[source] getrandom::Error),
    #[error("could not hash the password")]
    Hash(#[source] argon2::password_hash::Error),
    #[error("account database error")]
    Store(#[from] rusqlite::Error),
}

pub const MIN_PASSWORD_LEN: usize = 12;

/// The built-in roles, each a fixed set of [`Permission`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Administrator,
    Supervisor,
    Auditor,
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Administrator,
        Role::Supervisor,
        Role::Auditor,
        Role::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::Supervisor => "Supervisor",
            Role::Auditor => "Auditor",
            Role::Agent => "Agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Role names are matched without regard to case: `admin`istrators type them by hand.
impl FromStr for Role {
    type Err = AccountError;

    fn from_str(s: &str) -> Result<Role, AccountError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| AccountError::UnknownRole(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub role: String,
    pub must_change_password: bool,
}

/// Argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): about 25 ms per
/// sign-in on one core of the appliance, which keeps sign-in fast and guessing expensive.
pub fn argon2_params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("constant parameters are within argon2's limits")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params())
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(AccountError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(AccountError::Hash)?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(AccountError::Hash)?
        .to_string())
}

/// Whether `password` matches the stored `hash`. A malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password of 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I):
/// about 110 bits, easy to read off a console and type once.
pub fn generate_password() -> Result<String, AccountError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    let mut bytes = [0u8; 64];
    while out.len() < 20 {
        getrandom::fill(&mut bytes).map_err(AccountError::Random)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for &b in bytes.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == 20 {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_owned()))
    }
}

/// Creates the account, or replaces the role and password of an existing one with that name,
/// and records who did it in the audit log, in the same transaction.
pub fn upsert(
    store: &Store,
    name: &str,
    role: Role,
    password: &str,
    must_change_password: bool,
    actor: &Actor<'_>,
) -> Result<(), AccountError> {
    check_name(name)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccountError::PasswordTooShort);
    }
    let hash = hash_password(password)?;
    store.write(|tx| {
        let existed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE name = ?1)",
            [name],
            |row| row.get(0),
        )?;
        tx.execute(
            "INSERT INTO accounts (name, role, password_hash, must_change_password,
                                   created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                     strftime('%Y-%m-%dT%H:%M:%fZ','now'))
             ON CONFLICT (name) DO UPDATE SET
                 role = excluded.role,
                 password_hash = excluded.password_hash,
                 must_change_password = excluded.must_change_password,
                 updated_at = excluded.updated_at",
            (name, role.as_str(), &hash, must_change_password),
        )?;
        let sub_event = if existed {
            events::UPDATED
        } else {
            events::CREATED
        };
        let params = serde_json::json!({
            "role": role.as_str(),
            "password_changed": true,
            "must_change_password": must_change_password,
        });
        tapline_audit::append(
            tx,
            &actor.entry(events::ACCOUNT, sub_event, name, "", params),
        )?;
        Ok(())
    })
}

pub fn find(store: &Store, name: &str) -> Result<Option<Account>, AccountError> {
    Ok(store.read(|conn| {
        conn.query_row(
            "SELECT name, role, must_change_password FROM accounts WHERE name = ?1",
            [name],
            |row| {
                Ok(Account {
                    name: row.get(0)?,
                    role: row.get(1)?,
                    must_change_password: row.get(2)?,
                })
            },
        )
        .optional()
    })?)
}

/// Checks a name and password. Unknown names cost the same Argon2 work as known ones, so the
/// time taken does not tell which names exist.
pub fn authenticate(store: &Store, name: &str, password: &str) -> Result<bool, AccountError> {
    let hash: Option<Option<String>> = store.read(|conn| {
        conn.query_row(
            "SELECT password_hash FROM accounts WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()
    })?;
    match hash.flatten() {
        Some(hash) => Ok(verify_password(&hash, password)),
        None => {
            let _ = verify_password(dummy_hash(), password);
            Ok(false)
        }
    }
}

/// A valid hash of a password nobody knows, with the same parameters as real ones.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("an unguessable placeholder for timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn roles_parse_without_regard_to_case() {
        assert_eq!(
            "administrator".parse::<Role>().unwrap(),
            Role::Administrator
        );
        assert_eq!(" SUPERVISOR ".parse::<Role>().unwrap(), Role::Supervisor);
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown role \"root\" (roles: Administrator, Supervisor, Auditor, Agent)"
        );
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse batterY"));
        assert!(!verify_password("not a hash", "anything"));
    }

    #[test]
    fn generated_passwords_are_long_varied_and_unambiguous() {
        let passwords: Vec<String> = (0..50).map(|_| generate_password().unwrap()).collect();
        for p in &passwords {
            assert_eq!(p.len(), 20);
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']), "{p}");
        }
        let mut unique = passwords.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), passwords.len());
    }

    #[test]
    fn upsert_creates_then_replaces_and_authenticate_checks() {
        let (_dir, store) = store();
        upsert(
            &store,
            "admin",
            Role::Administrator,
            "first password!",
            true,
            &Actor::SYSTEM,
        )
        .unwrap();
        assert!(authenticate(&store, "admin", "first password!").unwrap());
        assert!(
            authenticate(&store, "ADMIN", "first password!").unwrap(),
            "names ignore case"
        );
        upsert(
            &store,
            "admin",
            Role::Auditor,
            "second password",
            false,
            &Actor::SYSTEM,
        )
        .unwrap();
        assert!(!authenticate(&store, "admin", "first password!").unwrap());
        assert!(authenticate(&store, "admin", "second password").unwrap());
        assert!(!authenticate(&store, "nobody", "second password").unwrap());
        let account = find(&store, "admin").unwrap().unwrap();
        assert_eq!(
            account,
            Account {
                name: "admin".into(),
                role: "Auditor".into(),
                must_change_password: false
            }
        );
    }

    #[test]
    fn account_changes_are_audited_with_them() {
        let (_dir, store) = store();
        let actor = Actor {
            username: "root",
            user_ip: "",
            request_uri: "tapline account add",
        };
        upsert(
            &store,
            "audrey",
            Role::Auditor,
            "auditor password",
            false,
            &actor,
        )
        .unwrap();
        upsert(
            &store,
            "audrey",
            Role::Agent,
            "another password",
            false,
            &actor,
        )
        .unwrap();
        let _ = upsert(
            &store,
            "a b",
            Role::Agent,
            "long enough pass",
            false,
            &actor,
        );
        let rows: Vec<(String, String, String, String)> = store
            .read(|conn| {
                let mut statement = conn.prepare(
                    "SELECT username, sub_event, event_object, params FROM audit_log ORDER BY id",
                )?;
                statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .unwrap();
        assert_eq!(rows.len(), 2, "the refused change has no row: {rows:?}");
        assert_eq!(rows[0].1, "Created");
        assert_eq!(rows[1].1, "Updated");
        assert_eq!(rows[1].2, "audrey");
        assert!(rows[1].3.contains(r#""role":"Agent""#), "{}", rows[1].3);
        assert!(
            !rows[1].3.contains("another password"),
            "no secret in the log"
        );
    }

    #[test]
    fn bad_names_and_short_passwords_are_refused() {
        let (_dir, store) = store();
        let err = upsert(
            &store,
            "a b",
            Role::Agent,
            "long enough pass",
            false,
            &Actor::SYSTEM,
        )
        .unwrap_err();
        assert!(matches!(err, AccountError::BadName(_)));
        let err = upsert(&store, "ab", Role::Agent, "short", false, &Actor::SYSTEM).unwrap_err();
        assert_eq!(err.to_string(), "passwords must be at least 12 characters");
        assert_eq!(find(&store, "ab").unwrap(), None);
    }
}
