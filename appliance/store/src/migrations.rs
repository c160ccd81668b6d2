//! The schema's history. `PRAGMA user_version` holds the number of the last migration applied;
//! `schema_migrations` records when each was applied, for support.
//!
//! **A migration, once released, is never edited**: a later change is a new migration. New
//! ones are appended to [`MIGRATIONS`] with the next number.

use std::path::Path;

use rusqlite::Connection;

use crate::{APPLICATION_ID, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts",
        sql: include_str!("../migrations/0001_accounts.sql"),
    },
    Migration {
        version: 2,
        name: "recordings",
        sql: include_str!("../migrations/0002_recordings.sql"),
    },
    Migration {
        version: 3,
        name: "call_decisions",
        sql: include_str!("../migrations/0003_call_decisions.sql"),
    },
    Migration {
        version: 4,
        name: "raw_media",
        sql: include_str!("../migrations/0004_raw_media.sql"),
    },
    Migration {
        version: 5,
        name: "audit_log",
        sql: include_str!("../migrations/0005_audit_log.sql"),
    },
    Migration {
        version: 6,
        name: "sftp_access",
        sql: include_str!("../migrations/0006_sftp_access.sql"),
    },
    Migration {
        version: 7,
        name: "retention",
        sql: include_str!("../migrations/0007_retention.sql"),
    },
    Migration {
        version: 8,
        name: "holds",
        sql: include_str!("../migrations/0008_holds.sql"),
    },
    Migration {
        version: 9,
        name: "encrypted_signalling",
        sql: include_str!("../migrations/0009_encrypted_signalling.sql"),
    },
    Migration {
        version: 10,
        name: "directory",
        sql: include_str!("../migrations/0010_directory.sql"),
    },
    Migration {
        version: 11,
        name: "web",
        sql: include_str!("../migrations/0011_web.sql"),
    },
    Migration {
        version: 12,
        name: "turn_allocations",
        sql: include_str!("../migrations/0012_turn_allocations.sql"),
    },
    Migration {
        version: 13,
        name: "search",
        sql: include_str!("../migrations/0013_search.sql"),
    },
    Migration {
        version: 14,
        name: "audit_text_search",
        sql: include_str!("../migrations/0014_audit_text_search.sql"),
    },
    Migration {
        version: 15,
        name: "transfers",
        sql: include_str!("../migrations/0015_transfers.sql"),
    },
];

pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Refuses a file this release must not touch, and returns the schema version it is at.
/// Reads only: nothing is written before this has passed.
pub(crate) fn check_ownership(conn: &Connection, path: &Path) -> Result<u32, StoreError> {
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let found = user_version(conn)?;
    let has_tables: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_schema)", [], |row| {
            row.get(0)
        })?;
    let fresh = application_id == 0 && found == 0 && !has_tables;
    if application_id != APPLICATION_ID && !fresh {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
            found: application_id,
        });
    }
    if found > LATEST_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: LATEST_VERSION,
        });
    }
    Ok(found)
}

/// Applies the migrations after version `found`, each in its own transaction.
pub(crate) fn apply(conn: &mut Connection, found: u32) -> Result<(), StoreError> {
    for migration in &MIGRATIONS[found as usize..] {
        let failed = |source| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        let tx = conn.transaction().map_err(failed)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TEXT NOT NULL
             ) STRICT;",
        )
        .map_err(failed)?;
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at)
             VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            (migration.version, migration.name),
        )
        .map_err(failed)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(failed)?;
        tx.pragma_update(None, "user_version", migration.version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "database migrated"
        );
    }
    Ok(())
}
