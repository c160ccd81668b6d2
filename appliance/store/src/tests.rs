use std::path::Path;
use std::time::Duration;

use super::*;

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn an_empty_file_is_migrated_to_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    let applied: Vec<(u32, String)> = store
        .read(|conn| {
            let mut stmt =
                conn.prepare("SELECT version, name FROM schema_migrations ORDER BY 1")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    let expected: Vec<(u32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(applied, expected);
}

#[test]
fn versions_are_numbered_one_after_another() {
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
    }
}

#[test]
fn reopening_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open_in(dir.path()).unwrap());
    let store = Store::open_in(dir.path()).unwrap();
    let count: u32 = store
        .read(|c| c.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(count, LATEST_VERSION);
}

#[test]
fn the_writer_uses_wal_and_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let (mode, sync): (String, i64) = store
        .write(|tx| {
            let mode = tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync = tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            Ok::<_, rusqlite::Error>((mode, sync))
        })
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[test]
fn a_newer_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    drop(Store::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = file_bytes(&path);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == LATEST_VERSION + 1));
    assert_eq!(
        err.to_string(),
        format!(
            "database {} has schema version {}, newer than this Tapline understands ({}); it \
             was written by a newer release and is left untouched",
            path.display(),
            LATEST_VERSION + 1,
            LATEST_VERSION
        )
    );
    assert!(file_bytes(&path) == before, "the file was altered");
}

#[test]
fn a_foreign_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x);")
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::ForeignDatabase { found: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(
        &path,
        b"this is not a database, just some text long enough to look",
    )
    .unwrap();
    assert!(Store::open(&path).is_err());
    assert!(file_bytes(&path).starts_with(b"this is not a database"));
}

#[test]
fn readers_see_committed_writes_and_run_beside_an_open_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let insert = "INSERT INTO accounts (name, role, created_at, updated_at)
                  VALUES (?1, 'Administrator', 'now', 'now')";
    store.write(|tx| tx.execute(insert, ["first"])).unwrap();
    store
        .write(|tx| {
            tx.execute(insert, ["second"])?;
            // Uncommitted: a reader sees only the first row, and is not blocked.
            let seen: u32 =
                store.read(|c| c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)))?;
            assert_eq!(seen, 1);
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
    let seen: u32 = store
        .read(|c| c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(seen, 2);
}

#[test]
fn a_failed_write_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let result: Result<(), rusqlite::Error> = store.write(|tx| {
        tx.execute(
            "INSERT INTO accounts (name, role, created_at, updated_at) VALUES ('a', 'r', '', '')",
            [],
        )?;
        tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(())
    });
    assert!(result.is_err());
    let rows: u32 = store
        .read(|c| c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn readers_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    let result = store.read(|c| c.execute("DELETE FROM accounts", []));
    assert!(result.is_err());
}

#[test]
fn many_threads_read_at_once_through_the_capped_pool() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..(MAX_READERS * 3) {
            scope.spawn(|| {
                for _ in 0..20 {
                    let one: u32 = store
                        .read(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
                        .unwrap();
                    assert_eq!(one, 1);
                }
            });
        }
    });
}

#[test]
fn checkpoint_empties_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    store
        .write(|tx| {
            tx.execute(
                "INSERT INTO accounts (name, role, created_at, updated_at) VALUES ('a','r','','')",
                [],
            )
        })
        .unwrap();
    let wal = dir.path().join(format!("{FILE_NAME}-wal"));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    store.checkpoint().unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
}

#[test]
fn check_writable_fails_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).unwrap();
    store.check_writable().unwrap();
    let other = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    other.busy_timeout(Duration::ZERO).unwrap();
    other.execute_batch("BEGIN IMMEDIATE;").unwrap();
    // The store waits BUSY_TIMEOUT for the lock; release it before that to see both sides.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let started = std::time::Instant::now();
            store.check_writable().unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT;").unwrap();
        let waited = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(250),
            "it waited for the lock: {waited:?}"
        );
    });
}
