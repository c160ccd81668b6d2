//! Settings in force: the configuration file's value of a key, unless an administrator saved
//! an override of it in the web UI (table `settings`).
//!
//! The file is read once at start; overrides change while the daemon runs. So every service
//! asks here, with the file's value in hand, at the moment it uses a setting (the index service
//! on each pass, SFTP at each login, the recorder at each call's answer), and a change takes
//! effect without a restart and without a notification to miss.
//!
//! An override that cannot be used (written by hand or by a newer release; the web UI checks
//! every value before saving it) is ignored with a warning, and the file's value stays in
//! force.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};

/// The tenant's name, which is also the SFTP login name of the tenant.
pub const TENANT_NAME: &str = "tenant.name";
/// The tenant's IANA time zone: what a local day is.
pub const TENANT_TIMEZONE: &str = "tenant.timezone";
/// Days a recording is kept; 0 keeps recordings for ever.
pub const RETENTION_DAYS: &str = "storage.retention_days";
/// Followed by a metadata field's name: the SIP header that fills the field.
pub const SIP_HEADER_PREFIX: &str = "recording.headers.";

/// A value saved in the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub value: String,
    /// UTC.
    pub updated_at: String,
    /// The account that saved it.
    pub updated_by: String,
}

/// Every override, by key.
pub fn overrides(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Override>> {
    let mut statement = conn.prepare("SELECT key, value, updated_at, updated_by FROM settings")?;
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                Override {
                    value: row.get(1)?,
                    updated_at: row.get(2)?,
                    updated_by: row.get(3)?,
                },
            ))
        })?
        .collect()
}

/// The override of `key`, if one is saved.
pub fn override_of(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
}

/// The value of `key` in force: the override, else `file`.
pub fn effective(conn: &Connection, key: &str, file: &str) -> rusqlite::Result<String> {
    Ok(override_of(conn, key)?.unwrap_or_else(|| file.to_owned()))
}

/// The tenant's name in force; `file` is the configuration file's.
pub fn tenant_name(conn: &Connection, file: &str) -> rusqlite::Result<String> {
    effective(conn, TENANT_NAME, file)
}

/// The tenant's time zone in force; `file` is the configuration file's.
pub fn time_zone(
    conn: &Connection,
    file: &jiff::tz::TimeZone,
) -> rusqlite::Result<jiff::tz::TimeZone> {
    let Some(name) = override_of(conn, TENANT_TIMEZONE)? else {
        return Ok(file.clone());
    };
    Ok(jiff::tz::TimeZone::get(&name).unwrap_or_else(|_| {
        unusable(TENANT_TIMEZONE, &name);
        file.clone()
    }))
}

/// The retention in days in force; `file` is the configuration file's.
pub fn retention_days(conn: &Connection, file: u32) -> rusqlite::Result<u32> {
    let Some(text) = override_of(conn, RETENTION_DAYS)? else {
        return Ok(file);
    };
    Ok(text.trim().parse().unwrap_or_else(|_| {
        unusable(RETENTION_DAYS, &text);
        file
    }))
}

/// The SIP header of each metadata field in force: `file` is the configuration file's
/// `(field, header)` pairs, and the fields come back as given, in the same order, so a field
/// name never comes from the database.
pub fn sip_headers<F, H>(
    conn: &Connection,
    file: impl IntoIterator<Item = (F, H)>,
) -> rusqlite::Result<Vec<(F, String)>>
where
    F: AsRef<str>,
    H: AsRef<str>,
{
    let overrides = overrides(conn)?;
    Ok(file
        .into_iter()
        .map(|(field, header)| {
            let key = format!("{SIP_HEADER_PREFIX}{}", field.as_ref());
            let header = match overrides.get(&key) {
                Some(saved) if is_header_name(&saved.value) => saved.value.clone(),
                Some(saved) => {
                    unusable(&key, &saved.value);
                    header.as_ref().to_owned()
                }
                None => header.as_ref().to_owned(),
            };
            (field, header)
        })
        .collect())
}

/// Whether `name` can name a SIP header: an RFC 3261 token.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn unusable(key: &str, value: &str) {
    tracing::warn!(
        key,
        value,
        "ignoring a saved setting that cannot be used; the configuration file's value applies"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn save(store: &Store, key: &str, value: &str) {
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by)
                     VALUES (?1, ?2, '2026-01-01T00:00:00.000Z', 'root')
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            })
            .unwrap();
    }

    #[test]
    fn overrides_win_over_the_file_and_unusable_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        let read = |f: &dyn Fn(&Connection) -> rusqlite::Result<String>| store.read(f).unwrap();
        assert_eq!(read(&|c| tenant_name(c, "AcmeJets")), "AcmeJets");
        assert_eq!(store.read(|c| retention_days(c, 30)).unwrap(), 30);

        save(&store, TENANT_NAME, "AcmeAir");
        save(&store, RETENTION_DAYS, "7");
        save(&store, TENANT_TIMEZONE, "Europe/Paris");
        save(&store, "recording.headers.queue", "X-Skill");
        assert_eq!(read(&|c| tenant_name(c, "AcmeJets")), "AcmeAir");
        assert_eq!(store.read(|c| retention_days(c, 30)).unwrap(), 7);
        let zone = store.read(|c| time_zone(c, &utc)).unwrap();
        assert_eq!(zone.iana_name(), Some("Europe/Paris"));
        let headers = store
            .read(|c| sip_headers(c, [("queue", "X-Queue"), ("case_id", "X-Case-Id")]))
            .unwrap();
        assert_eq!(
            headers,
            [
                ("queue", "X-Skill".to_owned()),
                ("case_id", "X-Case-Id".to_owned())
            ]
        );

        save(&store, RETENTION_DAYS, "a week");
        save(&store, TENANT_TIMEZONE, "Mars/Olympus");
        save(&store, "recording.headers.queue", "X Skill");
        assert_eq!(store.read(|c| retention_days(c, 30)).unwrap(), 30);
        assert_eq!(store.read(|c| time_zone(c, &utc)).unwrap(), utc);
        let headers = store
            .read(|c| sip_headers(c, [("queue", "X-Queue")]))
            .unwrap();
        assert_eq!(headers, [("queue", "X-Queue".to_owned())]);
    }
}
