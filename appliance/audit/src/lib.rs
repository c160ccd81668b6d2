//! The activity audit log: who did what, from where, and when, for every user action in the
//! web UI, the API and SFTP.
//!
//! - **Append-only.** Rows are only ever inserted; triggers in the schema refuse UPDATE and
//!   DELETE.
//! - **Hash-chained.** Each row stores the hash of the row before it and its own hash over
//!   that and its canonical content ([`row_hash`]), so editing, removing or reordering a row
//!   breaks the chain at that row, and [`verify`] names it. Truncating the newest rows is
//!   caught by comparing with a chain head recorded outside the database ([`head`], which the
//!   daemon writes to the system journal every hour).
//! - **In the same transaction as the change it records.** [`append`] takes the caller's
//!   transaction: there is no change without its audit row, and no audit row for a change
//!   that rolled back. Actions that change nothing else (a download, a failed login) use
//!   [`record`].

mod chain;
pub mod events;
pub mod query;

use std::fmt;

use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};

pub use chain::{GENESIS_HASH, row_hash};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log database error")]
    Store(#[from] rusqlite::Error),
}

/// One action to record. Every field is text an auditor filters or reads; `params` holds the
/// details behind "Show Params" and must be a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub username: &'a str,
    pub user_ip: &'a str,
    pub event: &'a str,
    pub sub_event: &'a str,
    pub event_object: &'a str,
    pub comments: &'a str,
    pub request_uri: &'a str,
    pub params: serde_json::Value,
}

/// Who is acting, from where, through which request: the part of an [`Entry`] that stays the
/// same for everything one user does in one request or session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    pub username: &'a str,
    pub user_ip: &'a str,
    pub request_uri: &'a str,
}

impl<'a> Actor<'a> {
    /// Tapline itself (scheduled jobs such as retention).
    pub const SYSTEM: Actor<'static> = Actor {
        username: "system",
        user_ip: "",
        request_uri: "",
    };

    pub fn entry(
        self,
        event: &'a str,
        sub_event: &'a str,
        event_object: &'a str,
        comments: &'a str,
        params: serde_json::Value,
    ) -> Entry<'a> {
        Entry {
            username: self.username,
            user_ip: self.user_ip,
            event,
            sub_event,
            event_object,
            comments,
            request_uri: self.request_uri,
            params,
        }
    }
}

/// A stored row, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    /// UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub created_at: String,
    pub username: String,
    pub user_ip: String,
    pub event: String,
    pub sub_event: String,
    pub event_object: String,
    pub comments: String,
    pub request_uri: String,
    /// The JSON object, as stored (keys sorted).
    pub params: String,
    pub prev_hash: String,
    pub row_hash: String,
}

/// The newest row's id and hash: enough to prove later that no row was removed from the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: i64,
    pub row_hash: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.row_hash)
    }
}

/// Appends `entry` inside the caller's write transaction, stamped with the current time.
pub fn append(tx: &Transaction<'_>, entry: &Entry<'_>) -> rusqlite::Result<Head> {
    append_at(tx, entry, jiff::Timestamp::now())
}

/// Appends `entry` with an explicit time (imports and tests).
pub fn append_at(
    tx: &Transaction<'_>,
    entry: &Entry<'_>,
    created_at: jiff::Timestamp,
) -> rusqlite::Result<Head> {
    // The store has one writer and this runs inside its immediate transaction, so no other
    // row can be appended between reading the head and inserting after it.
    let previous = head(tx)?;
    let (id, prev_hash) = match previous {
        Some(head) => (head.id + 1, head.row_hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let params = canonical_params(&entry.params);
    let mut row = Row {
        id,
        created_at: tapline_store::utc_text(created_at),
        username: entry.username.to_owned(),
        user_ip: entry.user_ip.to_owned(),
        event: entry.event.to_owned(),
        sub_event: entry.sub_event.to_owned(),
        event_object: entry.event_object.to_owned(),
        comments: entry.comments.to_owned(),
        request_uri: entry.request_uri.to_owned(),
        params,
        prev_hash,
        row_hash: String::new(),
    };
    row.row_hash = row_hash(&row);
    tx.execute(
        "INSERT INTO audit_log (id, created_at, username, user_ip, event, sub_event,
                                event_object, comments, request_uri, params, prev_hash, row_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        rusqlite::params![
            row.id,
            row.created_at,
            row.username,
            row.user_ip,
            row.event,
            row.sub_event,
            row.event_object,
            row.comments,
            row.request_uri,
            row.params,
            row.prev_hash,
            row.row_hash,
        ],
    )?;
    Ok(Head {
        id: row.id,
        row_hash: row.row_hash,
    })
}

/// Records an action that changes nothing else in the database, in a transaction of its own.
pub fn record(store: &Store, entry: &Entry<'_>) -> Result<Head, AuditError> {
    store.write(|tx| Ok(append(tx, entry)?))
}

/// The newest row, if any.
pub fn head(conn: &Connection) -> rusqlite::Result<Option<Head>> {
    conn.query_row(
        "SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1",
        [],
        |row| {
            Ok(Head {
                id: row.get(0)?,
                row_hash: row.get(1)?,
            })
        },
    )
    .optional()
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Rows checked.
    pub rows: u64,
    /// The newest row.
    pub head: Option<Head>,
    /// The first row where the chain does not hold, if any.
    pub broken: Option<Broken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The row's id; for rows missing at the end, the id of the recorded head.
    pub id: i64,
    pub reason: String,
}

/// Walks the whole chain from the first row. With `expected_head` (a head recorded earlier,
/// from the journal), also checks that that row is still present and unchanged, which catches
/// rows removed from the end.
pub fn verify(conn: &Connection, expected_head: Option<&Head>) -> Result<Verification, AuditError> {
    let mut statement = conn.prepare(
        "SELECT id, created_at, username, user_ip, event, sub_event, event_object, comments,
                request_uri, params, prev_hash, row_hash
         FROM audit_log ORDER BY id",
    )?;
    let mut rows = statement.query([])?;
    let mut checked = 0u64;
    let mut previous: Option<Head> = None;
    let mut broken = None;
    let mut expected_seen = false;
    while let Some(sql_row) = rows.next()? {
        let row = read_row(sql_row)?;
        checked += 1;
        if let Some(reason) = check_link(previous.as_ref(), &row) {
            broken = Some(Broken { id: row.id, reason });
            break;
        }
        if let Some(expected) = expected_head
            && expected.id == row.id
        {
            expected_seen = true;
            if expected.row_hash != row.row_hash {
                broken = Some(Broken {
                    id: row.id,
                    reason: format!(
                        "row hash {} differs from the recorded head {}",
                        row.row_hash, expected.row_hash
                    ),
                });
                break;
            }
        }
        previous = Some(Head {
            id: row.id,
            row_hash: row.row_hash,
        });
    }
    if broken.is_none()
        && let Some(expected) = expected_head
        && !expected_seen
    {
        broken = Some(Broken {
            id: expected.id,
            reason: format!(
                "the recorded head row {} is missing: the log ends at {}",
                expected.id,
                previous.as_ref().map_or(0, |head| head.id)
            ),
        });
    }
    Ok(Verification {
        rows: checked,
        head: previous,
        broken,
    })
}

/// Why `row` does not follow `previous` in the chain, if it does not.
fn check_link(previous: Option<&Head>, row: &Row) -> Option<String> {
    let (expected_id, expected_prev) = match previous {
        Some(head) => (head.id + 1, head.row_hash.as_str()),
        None => (1, GENESIS_HASH),
    };
    if row.id != expected_id {
        return Some(format!(
            "expected row {expected_id} here, found row {}: rows are missing",
            row.id
        ));
    }
    if row.prev_hash != expected_prev {
        return Some(format!(
            "its previous-row hash {} does not match row {}'s hash {expected_prev}",
            row.prev_hash,
            expected_id - 1
        ));
    }
    let recomputed = row_hash(row);
    if row.row_hash != recomputed {
        return Some(format!(
            "its content does not match its hash (stored {}, content hashes to {recomputed})",
            row.row_hash
        ));
    }
    None
}

/// Reads the columns of an `audit_log` row selected in table order.
pub fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(0)?,
        created_at: row.get(1)?,
        username: row.get(2)?,
        user_ip: row.get(3)?,
        event: row.get(4)?,
        sub_event: row.get(5)?,
        event_object: row.get(6)?,
        comments: row.get(7)?,
        request_uri: row.get(8)?,
        params: row.get(9)?,
        prev_hash: row.get(10)?,
        row_hash: row.get(11)?,
    })
}

/// The columns [`read_row`] expects, in order, for callers building their own queries.
pub const COLUMNS: &str = "id, created_at, username, user_ip, event, sub_event, event_object, \
                           comments, request_uri, params, prev_hash, row_hash";

/// Params are stored as compact JSON with sorted keys (serde_json's default map), so the
/// same details always give the same text and the same hash. Anything but an object is
/// wrapped as `{"value": …}` so "Show Params" always shows named fields.
fn canonical_params(params: &serde_json::Value) -> String {
    match params {
        serde_json::Value::Object(_) => params.to_string(),
        serde_json::Value::Null => "{}".to_owned(),
        other => serde_json::json!({ "value": other }).to_string(),
    }
}

#[cfg(test)]
mod tests;
