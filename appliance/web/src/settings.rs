//! Settings an administrator changes in the web UI, and how they sit beside the configuration
//! file.
//!
//! The file stays the base: it is read at start and every key keeps its meaning. A value saved
//! in the UI is stored in the `settings` table as an **override** of the file's key, shown as
//! such on the settings page beside the file's value, and removed again by saving the file's
//! value (or an empty one). [`effective`] lists the values in force for the page; services
//! read each value in force through `tapline_store::settings`, the one reader of overrides.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use tapline_audit::{Actor, events};
use tapline_store::rusqlite::{self, Connection, OptionalExtension, Transaction};
use tapline_store::settings::{self as in_force, RETENTION_DAYS, SIP_HEADER_PREFIX};
use tapline_store::settings::{TENANT_NAME, TENANT_TIMEZONE};

/// The values of the configuration file the settings page can override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub values: BTreeMap<String, String>,
}

impl FileSettings {
    pub fn from_config(config: &tapline_config::Config) -> FileSettings {
        let mut values = BTreeMap::new();
        values.insert(TENANT_NAME.to_owned(), config.tenant.name.clone());
        values.insert(
            TENANT_TIMEZONE.to_owned(),
            config.tenant.timezone_name.clone(),
        );
        values.insert(
            RETENTION_DAYS.to_owned(),
            config.storage.retention_days.to_string(),
        );
        for (field, header) in config.recording.headers.iter() {
            values.insert(format!("{SIP_HEADER_PREFIX}{field}"), header.to_owned());
        }
        FileSettings { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("\"{0}\" is not a setting")]
    UnknownKey(String),
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("settings database error")]
    Store(#[from] rusqlite::Error),
}

/// One setting as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SettingView {
    pub key: String,
    /// The value in force.
    pub value: String,
    /// The configuration file's value.
    pub file_value: String,
    /// Set in the web UI, overriding the file.
    pub overridden: bool,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

/// Every setting, the file's value and the override if any.
pub fn effective(conn: &Connection, file: &FileSettings) -> rusqlite::Result<Vec<SettingView>> {
    let overrides = in_force::overrides(conn)?;
    Ok(file
        .values
        .iter()
        .map(|(key, file_value)| match overrides.get(key) {
            Some(saved) => SettingView {
                key: key.clone(),
                value: saved.value.clone(),
                file_value: file_value.clone(),
                overridden: true,
                updated_at: Some(saved.updated_at.clone()),
                updated_by: Some(saved.updated_by.clone()),
            },
            None => SettingView {
                key: key.clone(),
                value: file_value.clone(),
                file_value: file_value.clone(),
                overridden: false,
                updated_at: None,
                updated_by: None,
            },
        })
        .collect())
}

/// Saves `changes` (key → value) as overrides, audited in the same transaction. A value equal
/// to the file's, or empty, removes the override. Every value is checked before any is saved.
pub fn save(
    tx: &Transaction<'_>,
    file: &FileSettings,
    changes: &BTreeMap<String, String>,
    actor: &Actor<'_>,
) -> Result<usize, SettingsError> {
    let mut checked = Vec::new();
    for (key, value) in changes {
        let Some(file_value) = file.get(key) else {
            return Err(SettingsError::UnknownKey(key.clone()));
        };
        let value = value.trim();
        if !value.is_empty() {
            check(key, value).map_err(|reason| SettingsError::Invalid {
                key: key.clone(),
                reason,
            })?;
        }
        if key == TENANT_NAME && value != file_value && is_account_name(tx, value)? {
            return Err(SettingsError::Invalid {
                key: key.clone(),
                reason: format!("\"{value}\" is an account's name; the tenant login needs its own"),
            });
        }
        checked.push((key, value, value.is_empty() || value == file_value));
    }
    let mut params = serde_json::Map::new();
    for (key, value, back_to_file) in checked {
        let before = in_force::override_of(tx, key)?;
        let after = (!back_to_file).then(|| value.to_owned());
        if before == after {
            continue;
        }
        match &after {
            None => {
                tx.execute("DELETE FROM settings WHERE key = ?1", [key])?;
            }
            Some(value) => {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by)
                     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    (key, value, actor.username),
                )?;
            }
        }
        params.insert(
            key.clone(),
            json!({ "from": before, "to": after, "file": file.get(key) }),
        );
    }
    let changed = params.len();
    if changed > 0 {
        tapline_audit::append(
            tx,
            &actor.entry(
                events::SETTINGS,
                events::UPDATED,
                "settings",
                "",
                serde_json::Value::Object(params),
            ),
        )?;
    }
    Ok(changed)
}

fn is_account_name(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM accounts WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Why `value` cannot be used for `key`, if it cannot.
fn check(key: &str, value: &str) -> Result<(), String> {
    match key {
        TENANT_NAME => {
            let ok = (1..=64).contains(&value.len())
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            ok.then_some(())
                .ok_or_else(|| "use 1 to 64 letters, digits, '.', '_' or '-'".to_owned())
        }
        TENANT_TIMEZONE => jiff::tz::db()
            .get(value)
            .map(|_| ())
            .map_err(|_| format!("\"{value}\" is not a time zone this appliance knows")),
        RETENTION_DAYS => value
            .parse::<u32>()
            .ok()
            .filter(|days| *days <= 36_500)
            .map(|_| ())
            .ok_or_else(|| "a whole number of days from 0 (keep for ever) to 36500".to_owned()),
        _ if key.starts_with(SIP_HEADER_PREFIX) => in_force::is_header_name(value)
            .then_some(())
            .ok_or_else(|| "not a SIP header name".to_owned()),
        _ => Err("not a setting".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    fn file() -> FileSettings {
        let mut values = BTreeMap::new();
        values.insert("tenant.timezone".to_owned(), "UTC".to_owned());
        values.insert("storage.retention_days".to_owned(), "0".to_owned());
        values.insert("recording.headers.queue".to_owned(), "X-Queue".to_owned());
        FileSettings { values }
    }

    #[test]
    fn overrides_are_shown_as_such_and_removed_by_the_files_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let file = file();
        let changes = BTreeMap::from([
            ("tenant.timezone".to_owned(), "Europe/Paris".to_owned()),
            ("storage.retention_days".to_owned(), "0".to_owned()),
        ]);
        let changed = store
            .write(|tx| save(tx, &file, &changes, &Actor::SYSTEM))
            .unwrap();
        assert_eq!(changed, 1, "the unchanged retention is no change");
        let views = store.read(|c| effective(c, &file)).unwrap();
        let tz = views.iter().find(|v| v.key == "tenant.timezone").unwrap();
        assert!(tz.overridden);
        assert_eq!(
            (tz.value.as_str(), tz.file_value.as_str()),
            ("Europe/Paris", "UTC")
        );
        let bad = BTreeMap::from([
            ("recording.headers.queue".to_owned(), "X-Queue2".to_owned()),
            ("tenant.timezone".to_owned(), "Mars/Olympus".to_owned()),
        ]);
        let err = store
            .write(|tx| save(tx, &file, &bad, &Actor::SYSTEM))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenant.timezone: \"Mars/Olympus\" is not a time zone this appliance knows"
        );
        let views = store.read(|c| effective(c, &file)).unwrap();
        assert!(
            views
                .iter()
                .all(|v| v.key != "recording.headers.queue" || !v.overridden)
        );
        let back = BTreeMap::from([("tenant.timezone".to_owned(), String::new())]);
        store
            .write(|tx| save(tx, &file, &back, &Actor::SYSTEM))
            .unwrap();
        let views = store.read(|c| effective(c, &file)).unwrap();
        assert!(views.iter().all(|v| !v.overridden));
        let audited: u32 = store
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM audit_log WHERE event = 'Settings'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(audited, 2);
    }
}
