//! Tapline's database: one SQLite file in the data directory.
//!
//! - **One writer, pooled readers.** All writes go through [`Store::write`], which holds the one
//!   write connection for the length of a transaction; reads take a connection from a small
//!   pool and run concurrently with the writer thanks to WAL mode.
//! - **Durable.** `synchronous=FULL`: a transaction that returned `Ok` survives a power cut.
//!   Audit data needs that, and recordings' metadata is no less precious.
//! - **Versioned.** Migrations in [`migrations`] run at open, each in its own transaction.
//!   A database written by a newer Tapline is refused, never altered.
//!
//! Every call blocks; async callers use `tokio::task::spawn_blocking`.

mod migrations;
mod pool;
pub mod settings;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use migrations::{LATEST_VERSION, MIGRATIONS, Migration};
pub use rusqlite;

/// `PRAGMA application_id` of a Tapline database ("TAPL"), so that a stray SQLite file at the
/// database path is refused instead of migrated.
pub const APPLICATION_ID: i32 = 0x5441_504C;

/// File name of the database inside the data directory.
pub const FILE_NAME: &str = "tapline.db";

/// How long a connection waits on a lock held by another process (an operator's `sqlite3`
/// shell, say) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Concurrent readers; more wait for a free connection.
const MAX_READERS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {} has schema version {found}, newer than this Tapline understands \
         ({supported}); it was written by a newer release and is left untouched",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{} is not a Tapline database (application_id {found:#x}); it is left untouched",
        path.display()
    )]
    ForeignDatabase { path: PathBuf, found: i32 },
    #[error("migration {version} ({name}) failed")]
    Migration {
        version: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// A time as rows store it: UTC, ISO 8601 with microseconds (`2026-11-21T14:03:12.250000Z`).
/// The width is fixed, so comparing the text in SQL compares the instants.
pub fn utc_text(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: pool::Pool,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/tapline.db` and brings its schema up to date.
    pub fn open_in(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open(&data_dir.join(FILE_NAME))
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        let found = migrations::check_ownership(&writer, path)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        migrations::apply(&mut writer, found)?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: pool::Pool::new(path.to_path_buf(), MAX_READERS),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an immediate write transaction, committed when `f` returns `Ok`.
    pub fn write<T, E>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        // A panic inside an earlier `f` rolled its transaction back when the Transaction was
        // dropped, so the connection behind a poisoned lock is still consistent.
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` on a read-only connection from the pool.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let conn = self.readers.get()?;
        f(&conn)
    }

    /// Proves the database would take a write now: takes the write lock and lets it go,
    /// writing nothing. The health check uses it, because an appliance whose database still
    /// reads but cannot be written would be losing recordings.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
        Ok(())
    }

    /// Folds the write-ahead log back into the main file and truncates it, so the database is
    /// one self-contained file (done on shutdown, and before backups).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let (busy, _log, _checkpointed): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        if busy != 0 {
            tracing::warn!("database checkpoint was incomplete: a reader held the log");
        }
        Ok(())
    }

    /// The schema version the file is at (always [`LATEST_VERSION`] once open).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.read(migrations::user_version)?)
    }
}

/// Settings every connection needs, writer or reader.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
