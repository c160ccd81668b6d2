//! Who may log in, and what a failed attempt costs.
//!
//! - The tenant login (user name = the tenant's name in force, any case: `[tenant] name`, or
//!   the settings page's override of it, read at each login) and local accounts whose role,
//!   built-in or custom, holds the SFTP permission, by password ([`login::check_password`]),
//!   and local accounts by a public key they hold ([`keys::keys_for`]). Disabled accounts are
//!   refused like a wrong password.
//! - **Every failed login costs the same time**: the password is always put through Argon2
//!   (the accounts crate uses a placeholder hash for unknown names), and the refusal is sent
//!   [`FAILURE_DELAY`] after the attempt began, whether the name is unknown, the password wrong,
//!   the name locked out or the address throttled.
//! - Failures count per source address, in memory ([`SourceThrottle`]: an address that fails
//!   [`SOURCE_MAX_FAILURES`] times in [`SOURCE_WINDOW`] is refused until the window ends), and
//!   per login name, in the database ([`lockout`]: `failures_before_lockout` in a row lock the
//!   name for `lockout_minutes`, for every method, until then or until an administrator lifts
//!   it).
//! - Each login, failed login and lockout is audited in the transaction that counts it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use russh::keys::{Algorithm, PublicKey};
use serde_json::json;
use tapline_accounts::lockout::{self, LockoutPolicy};
use tapline_accounts::login::{self, Principal};
use tapline_accounts::throttle::SourceThrottle;
use tapline_accounts::{AccountError, Permission, keys};
use tapline_audit::events;
use tapline_store::Store;
use tapline_store::rusqlite;
use tokio::time::Instant;

use crate::audit::Who;

/// How long every refused login takes, from the attempt to the refusal.
pub const FAILURE_DELAY: Duration = Duration::from_secs(2);
/// Failed logins from one address within [`SOURCE_WINDOW`] before it must wait.
pub(crate) const SOURCE_MAX_FAILURES: u32 = 10;
pub(crate) const SOURCE_WINDOW: Duration = Duration::from_secs(300);
/// Addresses remembered by the throttle.
const SOURCE_CAPACITY: usize = 4096;
/// Login names are cut to this many characters in the audit log: an attacker chooses them.
const MAX_NAME_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("cannot check the login")]
    Accounts(#[from] AccountError),
    #[error("cannot check the login's keys")]
    Keys(#[from] keys::KeyError),
    #[error("cannot record the login")]
    Store(#[from] rusqlite::Error),
    #[error("the login check was cancelled")]
    Cancelled(#[from] tokio::task::JoinError),
}

/// The per-address throttle, kept across restarts of the service.
pub(crate) type SharedThrottle = Arc<Mutex<SourceThrottle>>;

pub(crate) fn new_throttle() -> SharedThrottle {
    Arc::new(Mutex::new(SourceThrottle::new(
        SOURCE_MAX_FAILURES,
        SOURCE_WINDOW,
        SOURCE_CAPACITY,
    )))
}

/// Checks logins for every connection.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) store: Arc<Store>,
    /// The configuration file's tenant name; `tapline-accounts` applies the override.
    pub(crate) tenant: String,
    pub(crate) policy: LockoutPolicy,
    pub(crate) throttle: SharedThrottle,
    /// [`FAILURE_DELAY`], but for tests.
    pub(crate) failure_delay: Duration,
}

/// One login attempt: the name typed and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) user: String,
    pub(crate) ip: IpAddr,
    pub(crate) session: String,
    pub(crate) client: String,
}

impl Attempt {
    /// The audit fields for this attempt, under the name as typed (shortened).
    fn who(&self) -> Who {
        Who {
            username: self.user.chars().take(MAX_NAME_CHARS).collect(),
            ip: self.ip.to_string(),
            session: self.session.clone(),
            client: self.client.clone(),
        }
    }
}

/// How a login is being proved.
#[derive(Debug, Clone)]
pub(crate) enum Proof {
    Password(String),
    /// A key whose signature russh has verified.
    Key(PublicKey),
}

impl Proof {
    fn method(&self) -> &'static str {
        match self {
            Proof::Password(_) => "password",
            Proof::Key(_) => "publickey",
        }
    }
}

impl Gate {
    /// Decides a login. `Some(principal)` lets it in (and is audited as a login); `None` is a
    /// refusal, returned no sooner than [`FAILURE_DELAY`] after the call.
    pub(crate) async fn login(
        self: &Arc<Self>,
        attempt: &Attempt,
        proof: Proof,
    ) -> Result<Option<Principal>, AuthError> {
        let started = Instant::now();
        let throttled = self
            .lock_throttle()
            .retry_after(attempt.ip, std::time::Instant::now());
        let gate = self.clone();
        let blocking_attempt = attempt.clone();
        let decided =
            tokio::task::spawn_blocking(move || gate.decide(&blocking_attempt, &proof, throttled))
                .await
                .map_err(AuthError::from)
                .and_then(|decided| decided);
        match decided {
            Ok(Some(principal)) => {
                self.lock_throttle().succeeded(attempt.ip);
                Ok(Some(principal))
            }
            refused => {
                if throttled.is_none() {
                    self.lock_throttle()
                        .failed(attempt.ip, std::time::Instant::now());
                }
                tokio::time::sleep_until(started + self.failure_delay).await;
                refused.map(|_| None)
            }
        }
    }

    /// Whether `user` may try `key` (russh asks before the client signs). A probe is no
    /// failure: clients offer every key they have, and most are not for this server.
    pub(crate) async fn accepts_key(
        self: &Arc<Self>,
        user: &str,
        key: &PublicKey,
        algorithm: &Algorithm,
    ) -> Result<bool, AuthError> {
        // SHA-1 RSA signatures (`ssh-rsa`) are refused; `rsa-sha2-256` and `-512` are fine.
        if matches!(algorithm, Algorithm::Rsa { hash: None }) {
            return Ok(false);
        }
        let gate = self.clone();
        let (user, key) = (user.to_owned(), key.clone());
        tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            if gate
                .store
                .read(|conn| lockout::locked_until(conn, &user, now))?
                .is_some()
            {
                return Ok(false);
            }
            Ok(gate.key_owner(&user, &key)?.is_some())
        })
        .await?
    }

    /// The account `user` stands for, if it holds the SFTP permission and `key`.
    fn key_owner(&self, user: &str, key: &PublicKey) -> Result<Option<Principal>, AuthError> {
        let Some(principal) = login::principal(&self.store, &self.tenant, user, Permission::Sftp)?
        else {
            return Ok(None);
        };
        // The tenant login has a password only.
        if matches!(principal, Principal::Tenant { .. }) {
            return Ok(None);
        }
        let held = keys::keys_for(&self.store, principal.name())?
            .iter()
            .any(|held| held.public_key.key_data() == key.key_data());
        Ok(held.then_some(principal))
    }

    /// The blocking part of a login: the database and Argon2.
    fn decide(
        &self,
        attempt: &Attempt,
        proof: &Proof,
        throttled: Option<Duration>,
    ) -> Result<Option<Principal>, AuthError> {
        let now = Timestamp::now();
        let who = attempt.who();
        if let Some(wait) = throttled {
            let comment = format!(
                "too many failed logins from this address; refused for another {} s",
                wait.as_secs()
            );
            self.refused(&who, attempt, proof, &comment, now, false)?;
            return Ok(None);
        }
        let locked = self
            .store
            .read(|conn| lockout::locked_until(conn, &attempt.user, now))?;
        // The password is checked even for a locked name, so the time taken tells nothing.
        let principal = match proof {
            Proof::Password(password) => login::check_password(
                &self.store,
                &self.tenant,
                &attempt.user,
                password,
                Permission::Sftp,
            )?,
            Proof::Key(key) => self.key_owner(&attempt.user, key)?,
        };
        match (locked, principal) {
            (None, Some(principal)) => {
                let who = Who {
                    username: principal.name().to_owned(),
                    ..who
                };
                let params = login_params(proof);
                self.store.write(|tx| {
                    lockout::record_success(tx, &attempt.user)?;
                    let entry = who.entry(events::LOGIN, &who.username, "", params);
                    tapline_audit::append(tx, &entry)?;
                    Ok::<_, rusqlite::Error>(())
                })?;
                Ok(Some(principal))
            }
            (Some(until), _) => {
                let comment = format!("the login name is locked out until {until}");
                self.refused(&who, attempt, proof, &comment, now, true)?;
                Ok(None)
            }
            (None, None) => {
                let comment = match proof {
                    Proof::Password(_) => {
                        "wrong password, unknown name, disabled account or no SFTP permission"
                    }
                    Proof::Key(_) => "key not held by the account",
                };
                self.refused(&who, attempt, proof, comment, now, true)?;
                Ok(None)
            }
        }
    }

    /// Audits a refusal and, when `counts`, counts it against the name, auditing the lockout
    /// it starts.
    fn refused(
        &self,
        who: &Who,
        attempt: &Attempt,
        proof: &Proof,
        comment: &str,
        now: Timestamp,
        counts: bool,
    ) -> Result<(), AuthError> {
        let params = json!({ "method": proof.method() });
        self.store.write(|tx| {
            let entry = who.entry(events::LOGIN_FAILED, &who.username, comment, params);
            tapline_audit::append(tx, &entry)?;
            if counts
                && let Some(until) = lockout::record_failure(tx, &attempt.user, now, &self.policy)?
            {
                let comment = format!(
                    "locked out until {until} after {} failed logins in a row",
                    self.policy.failures_before_lockout
                );
                let params = json!({
                    "until": until.to_string(),
                    "failures": self.policy.failures_before_lockout,
                });
                let entry = who.entry(events::LOCKOUT, &who.username, &comment, params);
                tapline_audit::append(tx, &entry)?;
                tracing::warn!(
                    session = %who.session,
                    %until,
                    "a login name was locked out after repeated failures (see the audit log)"
                );
            }
            Ok::<_, rusqlite::Error>(())
        })?;
        Ok(())
    }

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, SourceThrottle> {
        // The throttle holds plain counters, consistent after any panic.
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn login_params(proof: &Proof) -> serde_json::Value {
    match proof {
        Proof::Password(_) => json!({ "method": "password" }),
        Proof::Key(key) => json!({
            "method": "publickey",
            "key": keys::fingerprint(key),
            "algorithm": key.algorithm().as_str(),
        }),
    }
}

#[cfg(test)]
mod tests;
