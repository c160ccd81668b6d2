//! Legal holds: a held call, or every call of a held local day, is never removed by
//! retention. Each change is written with its audit row in one transaction.
//!
//! **Holds and retention exclude each other.** Retention deletes a day's files before their
//! rows (so that a crash leaves rows to finish, never files nobody knows of), which leaves a
//! moment where a file is gone but its row is not. A hold placed in that moment would protect
//! a file already deleted, so holds wait on `REMOVAL`, which retention holds while it
//! removes a day. Holds are placed by the daemon (the web UI, the API), the one process that
//! runs retention.

use std::sync::{Mutex, MutexGuard, PoisonError};

use jiff::civil::Date;
pub use tapline_audit::Actor;
use tapline_audit::events;
use tapline_store::Store;
use tapline_store::rusqlite::{self, OptionalExtension, Transaction};

/// Held by retention while it removes a day, and by every hold change.
static REMOVAL: Mutex<()> = Mutex::new(());

/// Waits until no retention removal is under way and keeps others out until dropped.
pub(crate) fn exclude_removal() -> MutexGuard<'static, ()> {
    // The guard protects no data, only the interleaving: a panic while it was held leaves
    // nothing inconsistent behind.
    REMOVAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a hold request changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    Changed,
    /// The call or day was already as asked. The request is still audited.
    AlreadySo,
}

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("there is no recording named {0}")]
    NoSuchRecording(String),
    #[error("cannot change a legal hold in the database")]
    Store(#[from] rusqlite::Error),
}

/// Puts the recording `file_name` (`Ryyyymmddhhmmssssss.wav`) under a legal hold.
pub fn hold_call(
    store: &Store,
    file_name: &str,
    reason: &str,
    actor: &Actor<'_>,
) -> Result<HoldChange, HoldError> {
    set_call_hold(store, file_name, true, reason, actor)
}

/// Releases the recording `file_name` from its legal hold. A call of a held day stays held
/// by the day.
pub fn release_call(
    store: &Store,
    file_name: &str,
    reason: &str,
    actor: &Actor<'_>,
) -> Result<HoldChange, HoldError> {
    set_call_hold(store, file_name, false, reason, actor)
}

fn set_call_hold(
    store: &Store,
    file_name: &str,
    held: bool,
    reason: &str,
    actor: &Actor<'_>,
) -> Result<HoldChange, HoldError> {
    let _removal = exclude_removal();
    store.write(|tx| {
        let was: Option<i64> = tx
            .query_row(
                "SELECT legal_hold FROM recordings WHERE file_name = ?1",
                [file_name],
                |row| row.get(0),
            )
            .optional()?;
        let Some(was) = was else {
            return Err(HoldError::NoSuchRecording(file_name.to_owned()));
        };
        let change = if (was != 0) == held {
            HoldChange::AlreadySo
        } else {
            tx.execute(
                "UPDATE recordings SET legal_hold = ?2 WHERE file_name = ?1",
                (file_name, i64::from(held)),
            )?;
            HoldChange::Changed
        };
        audit(
            tx,
            actor,
            file_name,
            reason,
            serde_json::json!({
                "scope": "call",
                "file": file_name,
                "held": held,
                "changed": change == HoldChange::Changed,
            }),
        )?;
        Ok(change)
    })
}

/// Puts every call answered on local tenant `day` under a legal hold, including calls
/// recorded on it later (a day is held before its calls are all in).
pub fn hold_day(
    store: &Store,
    day: Date,
    reason: &str,
    actor: &Actor<'_>,
) -> Result<HoldChange, HoldError> {
    let _removal = exclude_removal();
    let set_at = now_utc();
    store.write(|tx| {
        let inserted = tx.execute(
            "INSERT INTO legal_hold_days (day, reason, set_by, set_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (day) DO NOTHING",
            (day.to_string(), reason, actor.username, &set_at),
        )?;
        let change = if inserted == 1 {
            HoldChange::Changed
        } else {
            HoldChange::AlreadySo
        };
        audit_day(tx, actor, day, true, change, reason)?;
        Ok(change)
    })
}

/// Releases local tenant `day` from its legal hold. Calls held one by one stay held.
pub fn release_day(
    store: &Store,
    day: Date,
    reason: &str,
    actor: &Actor<'_>,
) -> Result<HoldChange, HoldError> {
    let _removal = exclude_removal();
    store.write(|tx| {
        let deleted = tx.execute(
            "DELETE FROM legal_hold_days WHERE day = ?1",
            [day.to_string()],
        )?;
        let change = if deleted == 1 {
            HoldChange::Changed
        } else {
            HoldChange::AlreadySo
        };
        audit_day(tx, actor, day, false, change, reason)?;
        Ok(change)
    })
}

/// A held local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayHold {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub reason: String,
    pub set_by: String,
    /// UTC, ISO 8601.
    pub set_at: String,
}

/// Every held local day, oldest first.
pub fn held_days(store: &Store) -> Result<Vec<DayHold>, HoldError> {
    store.read(|conn| {
        let mut statement =
            conn.prepare("SELECT day, reason, set_by, set_at FROM legal_hold_days ORDER BY day")?;
        let rows = statement.query_map([], |row| {
            Ok(DayHold {
                day: row.get(0)?,
                reason: row.get(1)?,
                set_by: row.get(2)?,
                set_at: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
}

fn audit_day(
    tx: &Transaction<'_>,
    actor: &Actor<'_>,
    day: Date,
    held: bool,
    change: HoldChange,
    reason: &str,
) -> rusqlite::Result<()> {
    audit(
        tx,
        actor,
        &day.to_string(),
        reason,
        serde_json::json!({
            "scope": "day",
            "day": day.to_string(),
            "held": held,
            "changed": change == HoldChange::Changed,
        }),
    )
}

fn audit(
    tx: &Transaction<'_>,
    actor: &Actor<'_>,
    object: &str,
    reason: &str,
    params: serde_json::Value,
) -> rusqlite::Result<()> {
    let entry = actor.entry(
        events::RECORDINGS,
        events::LEGAL_HOLD,
        object,
        reason,
        params,
    );
    tapline_audit::append(tx, &entry)?;
    Ok(())
}

/// Now, in the form every stored time takes.
fn now_utc() -> String {
    crate::day::iso_utc(jiff::Timestamp::now())
}
