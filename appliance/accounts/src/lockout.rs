//! Lockout after repeated failed logins, per login name, kept in the database so that a
//! restart does not reset it and an administrator can lift it.
//!
//! Names that do not exist are counted and locked exactly like real ones, so a lockout
//! does not reveal which names exist. Rows for names with no recent failure are pruned as new
//! failures arrive, so guessing many names cannot grow the table without bound.

use std::time::Duration;

use jiff::Timestamp;
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};
use tapline_store::utc_text;

/// Failures older than this no longer count towards a lockout.
const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Stored names are cut to this many characters: an attacker chooses them.
const MAX_NAME_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures in a row before the name is locked.
    pub failures_before_lockout: u32,
    /// How long a lockout lasts unless lifted sooner.
    pub lockout: Duration,
}

/// A name that is locked out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub name: String,
    pub failures: u32,
    pub locked_until: Timestamp,
}

/// When the lockout on `name` ends, if it is locked at `now`.
pub fn locked_until(
    conn: &Connection,
    name: &str,
    now: Timestamp,
) -> rusqlite::Result<Option<Timestamp>> {
    let until: Option<Option<String>> = conn
        .query_row(
            "SELECT locked_until FROM login_lockouts WHERE name = ?1",
            [stored_name(name)],
            |row| row.get(0),
        )
        .optional()?;
    Ok(until
        .flatten()
        .and_then(|text| text.parse::<Timestamp>().ok())
        .filter(|until| *until > now))
}

/// Counts a failed login for `name`. Returns when the lockout ends if this failure started
/// one (so the caller can audit it once).
pub fn record_failure(
    tx: &Transaction<'_>,
    name: &str,
    now: Timestamp,
    policy: &LockoutPolicy,
) -> rusqlite::Result<Option<Timestamp>> {
    let forget_before = now - FAILURE_MEMORY;
    tx.execute(
        "DELETE FROM login_lockouts
         WHERE last_failure < ?1 AND (locked_until IS NULL OR locked_until < ?2)",
        (utc_text(forget_before), utc_text(now)),
    )?;
    let name = stored_name(name);
    let previous: Option<(u32, Option<String>)> = tx
        .query_row(
            "SELECT failures, locked_until FROM login_lockouts WHERE name = ?1",
            [name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (failures, still_locked) = match previous {
        None => (1, false),
        Some((failures, until)) => {
            let until = until.and_then(|text| text.parse::<Timestamp>().ok());
            match until {
                // A lockout that has run out starts the count afresh.
                Some(until) if until <= now => (1, false),
                Some(_) => (failures.saturating_add(1), true),
                None => (failures.saturating_add(1), false),
            }
        }
    };
    let newly_locked =
        (!still_locked && failures >= policy.failures_before_lockout).then(|| now + policy.lockout);
    tx.execute(
        "INSERT INTO login_lockouts (name, failures, last_failure, locked_until)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET
             failures = excluded.failures,
             last_failure = excluded.last_failure,
             locked_until = CASE WHEN ?5 THEN locked_until ELSE excluded.locked_until END",
        (
            name,
            failures,
            utc_text(now),
            newly_locked.map(utc_text),
            still_locked,
        ),
    )?;
    Ok(newly_locked)
}

/// A successful login clears the name's failures.
pub fn record_success(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM login_lockouts WHERE name = ?1",
        [stored_name(name)],
    )?;
    Ok(())
}

/// Lifts a lockout (an administrator's action). Returns whether there was anything to lift.
pub fn lift(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<bool> {
    let removed = tx.execute(
        "DELETE FROM login_lockouts WHERE name = ?1 AND locked_until IS NOT NULL",
        [stored_name(name)],
    )?;
    Ok(removed > 0)
}

/// Every name locked out at `now`.
pub fn locked(conn: &Connection, now: Timestamp) -> rusqlite::Result<Vec<Lockout>> {
    let mut statement = conn.prepare(
        "SELECT name, failures, locked_until FROM login_lockouts
         WHERE locked_until > ?1 ORDER BY name",
    )?;
    let rows = statement.query_map([utc_text(now)], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u32>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, failures, until) = row?;
        if let Ok(locked_until) = until.parse::<Timestamp>() {
            out.push(Lockout {
                name,
                failures,
                locked_until,
            });
        }
    }
    Ok(out)
}

fn stored_name(name: &str) -> &str {
    match name.char_indices().nth(MAX_NAME_LEN) {
        Some((cut, _)) => &name[..cut],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    const POLICY: LockoutPolicy = LockoutPolicy {
        failures_before_lockout: 3,
        lockout: Duration::from_secs(900),
    };

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        (dir, store)
    }

    fn fail(store: &Store, name: &str, now: Timestamp) -> Option<Timestamp> {
        store
            .write(|tx| record_failure(tx, name, now, &POLICY))
            .unwrap()
    }

    fn until(store: &Store, name: &str, now: Timestamp) -> Option<Timestamp> {
        store.read(|conn| locked_until(conn, name, now)).unwrap()
    }

    #[test]
    fn the_third_failure_locks_for_the_policy_time() {
        let (_dir, store) = store();
        let t0: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(fail(&store, "ghost", t0), None);
        assert_eq!(fail(&store, "GHOST", t0 + Duration::from_secs(1)), None);
        let locked_at = t0 + Duration::from_secs(2);
        let end = fail(&store, "ghost", locked_at).unwrap();
        assert_eq!(end, locked_at + Duration::from_secs(900));
        assert_eq!(until(&store, "Ghost", locked_at), Some(end));
        // More failures while locked neither extend nor re-announce the lockout.
        assert_eq!(
            fail(&store, "ghost", locked_at + Duration::from_secs(5)),
            None
        );
        assert_eq!(until(&store, "ghost", locked_at), Some(end));
        let listed = store.read(|conn| locked(conn, locked_at)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].failures, 4);
        // Once it runs out, the count starts again.
        assert_eq!(until(&store, "ghost", end), None);
        assert_eq!(fail(&store, "ghost", end + Duration::from_secs(1)), None);
    }

    #[test]
    fn success_clears_and_an_administrator_lifts() {
        let (_dir, store) = store();
        let t0: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        fail(&store, "audrey", t0);
        fail(&store, "audrey", t0);
        store.write(|tx| record_success(tx, "audrey")).unwrap();
        assert_eq!(fail(&store, "audrey", t0), None, "count restarted");

        for _ in 0..3 {
            fail(&store, "sam", t0);
        }
        assert!(until(&store, "sam", t0).is_some());
        assert!(store.write(|tx| lift(tx, "SAM")).unwrap());
        assert_eq!(until(&store, "sam", t0), None);
        assert!(!store.write(|tx| lift(tx, "sam")).unwrap(), "nothing left");
    }

    #[test]
    fn old_failures_are_forgotten_and_pruned() {
        let (_dir, store) = store();
        let t0: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        fail(&store, "a", t0);
        fail(&store, "a", t0);
        let later = t0 + Duration::from_secs(2 * 24 * 3600);
        assert_eq!(
            fail(&store, "a", later),
            None,
            "the old two no longer count"
        );
        let rows: u32 = store
            .read(|conn| conn.query_row("SELECT count(*) FROM login_lockouts", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(rows, 1);
        let long = "x".repeat(10_000);
        fail(&store, &long, later);
        let stored: usize = store
            .read(|conn| {
                conn.query_row("SELECT max(length(name)) FROM login_lockouts", [], |r| {
                    r.get(0)
                })
            })
            .unwrap();
        assert_eq!(stored, MAX_NAME_LEN);
    }
}
