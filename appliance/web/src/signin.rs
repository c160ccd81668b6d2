//! Signing in and out.
//!
//! - **Every refused sign-in costs the same time**: the password always goes through Argon2
//!   (`tapline_accounts::authenticate` uses a placeholder hash for unknown names), and the
//!   refusal is sent [`crate::WebOptions::failure_delay`] after the attempt began, whether the
//!   name is unknown, the password wrong, the account disabled, the name locked out or the
//!   address throttled. The answer is the same too.
//! - Failures count per source address in memory (`SourceThrottle`) and per name in the
//!   database (`tapline_accounts::lockout`, the table and policy SFTP uses).
//! - Each sign-in, failure and lockout is audited in the transaction that counts it, with the
//!   user's address and the request URI.

use jiff::Timestamp;
use serde_json::json;
use tapline_accounts::lockout;
use tapline_audit::{Actor, events};
use tapline_store::rusqlite::{self, OptionalExtension};
use tokio::time::Instant;

use crate::WebState;
use crate::guard::Origin;
use crate::session::{self, Token};

/// Sign-in names are cut to this many characters in the audit log: an attacker chooses them.
const MAX_NAME_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("cannot check the sign-in")]
    Accounts(#[from] tapline_accounts::AccountError),
    #[error("cannot record the sign-in")]
    Store(#[from] rusqlite::Error),
    #[error("the system's random number generator failed")]
    Random(#[source] getrandom::Error),
    #[error("the sign-in check was cancelled")]
    Cancelled(#[from] tokio::task::JoinError),
}

/// A new session.
#[derive(Debug)]
pub struct SignedIn {
    pub account: String,
    pub token: Token,
    pub must_change_password: bool,
}

/// Checks `name` and `password` and opens a session. `None` is a refusal, returned no sooner
/// than the failure delay after the call.
pub async fn sign_in(
    state: &WebState,
    name: &str,
    password: &str,
    origin: &Origin,
) -> Result<Option<SignedIn>, SignInError> {
    let started = Instant::now();
    let ip: std::net::IpAddr = origin
        .ip
        .parse()
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let throttled = state
        .throttle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retry_after(ip, std::time::Instant::now());
    let decided = {
        let (state, name, password, origin) = (
            state.clone(),
            name.to_owned(),
            password.to_owned(),
            origin.clone(),
        );
        tokio::task::spawn_blocking(move || decide(&state, &name, &password, &origin, throttled))
            .await
            .map_err(SignInError::from)
            .and_then(|decided| decided)
    };
    let signed_in = {
        let mut throttle = state
            .throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match decided {
            Ok(Some(signed_in)) => {
                throttle.succeeded(ip);
                return Ok(Some(signed_in));
            }
            refused => {
                if throttled.is_none() {
                    throttle.failed(ip, std::time::Instant::now());
                }
                refused
            }
        }
    };
    tokio::time::sleep_until(started + state.options.failure_delay).await;
    signed_in.map(|_| None)
}

/// The blocking part: the database and Argon2.
fn decide(
    state: &WebState,
    typed: &str,
    password: &str,
    origin: &Origin,
    throttled: Option<std::time::Duration>,
) -> Result<Option<SignedIn>, SignInError> {
    let now = Timestamp::now();
    let typed_name: String = typed.chars().take(MAX_NAME_CHARS).collect();
    let actor = Actor {
        username: &typed_name,
        user_ip: &origin.ip,
        request_uri: &origin.request_uri,
    };
    if let Some(wait) = throttled {
        let comment = format!(
            "too many failed sign-ins from this address; refused for another {} s",
            wait.as_secs()
        );
        record_failure(state, &actor, typed, &comment, now, false)?;
        return Ok(None);
    }
    let locked = state
        .store
        .read(|conn| lockout::locked_until(conn, typed, now))?;
    // The password is checked even for a locked or disabled name, so the time tells nothing.
    let matches = tapline_accounts::authenticate(&state.store, typed, password)?;
    let account: Option<(String, bool, bool)> = state.store.read(|conn| {
        conn.query_row(
            "SELECT name, must_change_password, disabled_at IS NOT NULL
             FROM accounts WHERE name = ?1",
            [typed],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
    })?;
    match (locked, matches, account) {
        (None, true, Some((name, must_change_password, false))) => {
            let token = Token::generate().map_err(SignInError::Random)?;
            state.store.write(|tx| {
                lockout::record_success(tx, typed)?;
                session::create(tx, &token, &name, &origin.user_agent, &origin.ip, now)?;
                let actor = Actor {
                    username: &name,
                    ..actor
                };
                let params = json!({ "user_agent": origin.user_agent });
                let entry = actor.entry(events::WEB, events::LOGIN, &name, "", params);
                tapline_audit::append(tx, &entry)?;
                Ok::<_, rusqlite::Error>(())
            })?;
            Ok(Some(SignedIn {
                account: name,
                token,
                must_change_password,
            }))
        }
        (Some(until), _, _) => {
            let comment = format!("the name is locked out until {until}");
            record_failure(state, &actor, typed, &comment, now, false)?;
            Ok(None)
        }
        (None, true, Some((_, _, true))) => {
            record_failure(state, &actor, typed, "the account is disabled", now, true)?;
            Ok(None)
        }
        (None, _, _) => {
            record_failure(
                state,
                &actor,
                typed,
                "wrong password or unknown name",
                now,
                true,
            )?;
            Ok(None)
        }
    }
}

/// Audits a refused sign-in and, when it counts, counts it against the name, auditing the
/// lockout it starts, all in one transaction.
fn record_failure(
    state: &WebState,
    actor: &Actor<'_>,
    typed: &str,
    comment: &str,
    now: Timestamp,
    counts: bool,
) -> rusqlite::Result<()> {
    state.store.write(|tx| {
        let entry = actor.entry(
            events::WEB,
            events::LOGIN_FAILED,
            actor.username,
            comment,
            json!({}),
        );
        tapline_audit::append(tx, &entry)?;
        if counts
            && let Some(until) = lockout::record_failure(tx, typed, now, &state.options.lockout)?
        {
            let comment = format!("locked out until {until}");
            let entry = actor.entry(
                events::WEB,
                events::LOCKOUT,
                actor.username,
                &comment,
                json!({ "failures": state.options.lockout.failures_before_lockout }),
            );
            tapline_audit::append(tx, &entry)?;
        }
        Ok(())
    })
}

/// Ends the caller's session, audited.
pub fn sign_out(state: &WebState, session_hash: &str, actor: &Actor<'_>) -> rusqlite::Result<()> {
    state.store.write(|tx| {
        session::end(tx, session_hash)?;
        let entry = actor.entry(events::WEB, events::LOGOUT, actor.username, "", json!({}));
        tapline_audit::append(tx, &entry)?;
        Ok(())
    })
}

/// Ends every session of `account` (the caller's own included), audited. Returns how many.
pub fn sign_out_everywhere(
    state: &WebState,
    account: &str,
    actor: &Actor<'_>,
) -> rusqlite::Result<usize> {
    state.store.write(|tx| {
        let ended = session::end_all(tx, account, None)?;
        let entry = actor.entry(
            events::WEB,
            events::LOGOUT_EVERYWHERE,
            account,
            "",
            json!({ "sessions": ended }),
        );
        tapline_audit::append(tx, &entry)?;
        Ok(ended)
    })
}
