//! Sign-in sessions, kept in the database.
//!
//! - The session id is 32 random bytes, sent only in the cookie [`COOKIE`]: the `__Host-`
//!   prefix pins it to this host and path `/` over HTTPS, and it is `Secure`, `HttpOnly` and
//!   `SameSite=Strict`. A new id is made at every sign-in, so an id planted before sign-in is
//!   worth nothing (no fixation).
//! - **Only the SHA-256 of the id is stored**, with the account, when it was created and last
//!   used, the browser's user agent and the address.
//! - A session ends after [`crate::WebOptions::idle_timeout`] without use and
//!   [`crate::WebOptions::session_lifetime`] after sign-in, on sign-out, on sign-out
//!   everywhere, and when its account is disabled or its password reset.
//! - The CSRF token is derived from the id ([`csrf_token`]), so it changes with the session and
//!   needs no storage; tokens are compared in constant time.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};
use tapline_store::utc_text;

/// The session cookie's name.
pub const COOKIE: &str = "__Host-tapline_session";
/// `last_seen_at` is written at most this often per session, so reading pages does not
/// become a database write per request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Stored user agents are cut to this many characters: the client chooses them.
const MAX_USER_AGENT: usize = 256;

/// A session id as the client holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Token(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn from_cookie(value: &str) -> Token {
        Token(value.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

/// The CSRF token of the session `token`: a one-way derivation, so a token seen in a page
/// does not reveal the session id.
pub fn csrf_token(token: &Token) -> String {
    let mut digest = Sha256::new();
    digest.update(b"tapline csrf v1\0");
    digest.update(token.0.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.finalize())
}

/// Whether `offered` is the session's CSRF token, in constant time.
pub fn csrf_matches(token: &Token, offered: &str) -> bool {
    csrf_token(token)
        .as_bytes()
        .ct_eq(offered.as_bytes())
        .into()
}

/// The `Set-Cookie` value that hands the browser its session.
pub fn set_cookie(token: &Token) -> String {
    format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        token.as_str()
    )
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session token in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<Token> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| Token::from_cookie(value.trim()))
        .filter(|token| !token.0.is_empty() && token.0.len() <= 64)
}

/// A live session as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    pub account: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub lifetime: Duration,
}

impl Timeouts {
    fn expired(&self, session: &Session, now: Timestamp) -> bool {
        now >= session.last_seen_at + self.idle || now >= session.created_at + self.lifetime
    }
}

/// A new session for `account`, inside the sign-in's transaction.
pub fn create(
    tx: &Transaction<'_>,
    token: &Token,
    account: &str,
    user_agent: &str,
    ip: &str,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let user_agent: String = user_agent.chars().take(MAX_USER_AGENT).collect();
    tx.execute(
        "INSERT INTO web_sessions (id_hash, account, created_at, last_seen_at, user_agent, ip)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
        (token.hash(), account, utc_text(now), user_agent, ip),
    )?;
    Ok(())
}

/// The session `token` stands for, if it is live at `now`.
pub fn find(
    conn: &Connection,
    token: &Token,
    timeouts: Timeouts,
    now: Timestamp,
) -> rusqlite::Result<Option<Session>> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT account, created_at, last_seen_at FROM web_sessions WHERE id_hash = ?1",
            [token.hash()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let Some((account, created_at, last_seen_at)) = row else {
        return Ok(None);
    };
    let (Ok(created_at), Ok(last_seen_at)) = (created_at.parse(), last_seen_at.parse()) else {
        return Ok(None);
    };
    let session = Session {
        id_hash: token.hash(),
        account,
        created_at,
        last_seen_at,
    };
    Ok((!timeouts.expired(&session, now)).then_some(session))
}

/// Whether the session's last use should be written now.
pub fn needs_touch(session: &Session, now: Timestamp) -> bool {
    now >= session.last_seen_at + TOUCH_EVERY
}

pub fn touch(tx: &Transaction<'_>, id_hash: &str, now: Timestamp) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE web_sessions SET last_seen_at = ?2 WHERE id_hash = ?1",
        (id_hash, utc_text(now)),
    )?;
    Ok(())
}

/// Ends one session. Returns whether it existed.
pub fn end(tx: &Transaction<'_>, id_hash: &str) -> rusqlite::Result<bool> {
    Ok(tx.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])? > 0)
}

/// Ends every session of `account`, except `keep` (the caller's own, after a password
/// change). Returns how many ended.
pub fn end_all(tx: &Transaction<'_>, account: &str, keep: Option<&str>) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM web_sessions WHERE account = ?1 AND id_hash IS NOT ?2",
        (account, keep),
    )
}

/// Removes sessions that have timed out; run now and then so the table does not grow.
pub fn prune(tx: &Transaction<'_>, timeouts: Timeouts, now: Timestamp) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM web_sessions WHERE last_seen_at <= ?1 OR created_at <= ?2",
        (
            utc_text(now - timeouts.idle),
            utc_text(now - timeouts.lifetime),
        ),
    )
}

/// Sessions open for `account` now.
pub fn count(
    conn: &Connection,
    account: &str,
    timeouts: Timeouts,
    now: Timestamp,
) -> rusqlite::Result<u32> {
    conn.query_row(
        "SELECT count(*) FROM web_sessions
         WHERE account = ?1 AND last_seen_at > ?2 AND created_at > ?3",
        (
            account,
            utc_text(now - timeouts.idle),
            utc_text(now - timeouts.lifetime),
        ),
        |row| row.get(0),
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    const TIMEOUTS: Timeouts = Timeouts {
        idle: Duration::from_secs(1800),
        lifetime: Duration::from_secs(12 * 3600),
    };

    #[test]
    fn tokens_are_random_and_only_their_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        let t0: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        store
            .write(|tx| create(tx, &a, "audrey", "curl/8", "127.0.0.1", t0))
            .unwrap();
        let stored: String = store
            .read(|c| c.query_row("SELECT id_hash FROM web_sessions", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(stored, a.hash());
        assert!(!stored.contains(a.as_str()));
        let found = store.read(|c| find(c, &a, TIMEOUTS, t0)).unwrap().unwrap();
        assert_eq!(found.account, "audrey");
        assert_eq!(store.read(|c| find(c, &b, TIMEOUTS, t0)).unwrap(), None);
    }

    #[test]
    fn idle_and_absolute_timeouts_end_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let token = Token::generate().unwrap();
        let t0: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        store
            .write(|tx| create(tx, &token, "sam", "", "::1", t0))
            .unwrap();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let live = |now| store.read(|c| find(c, &token, TIMEOUTS, now)).unwrap();
        assert!(live(at(1799)).is_some());
        assert!(live(at(1800)).is_none(), "idle for 30 minutes");
        // Used every 20 minutes, it still ends 12 hours after sign-in.
        let mut now = t0;
        while now < at(12 * 3600 - 1200) {
            now += Duration::from_secs(1200);
            let session = live(now).unwrap();
            assert!(needs_touch(&session, now));
            store.write(|tx| touch(tx, &session.id_hash, now)).unwrap();
        }
        assert!(live(at(12 * 3600 - 1)).is_some());
        assert!(live(at(12 * 3600)).is_none(), "absolute lifetime");
        let pruned = store
            .write(|tx| prune(tx, TIMEOUTS, at(12 * 3600)))
            .unwrap();
        assert_eq!(pruned, 1);
    }

    #[test]
    fn csrf_tokens_follow_the_session_and_compare_whole() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        let token = csrf_token(&a);
        assert!(csrf_matches(&a, &token));
        assert!(!csrf_matches(&b, &token));
        assert!(!csrf_matches(&a, &token[..20]));
        assert!(!csrf_matches(&a, ""));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_flagged() {
        let header = format!("theme=dark; {COOKIE}=abc; other=1");
        assert_eq!(
            from_cookie_header(&header).unwrap().as_str(),
            "abc",
            "{header}"
        );
        assert_eq!(from_cookie_header("theme=dark"), None);
        let token = Token::from_cookie("abc");
        assert_eq!(
            set_cookie(&token),
            "__Host-tapline_session=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
    }
}
