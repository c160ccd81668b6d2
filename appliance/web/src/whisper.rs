//! The Whisper/Barge/Listen log: which supervisor listened to, whispered to or barged into
//! which agent's call, for how long. Live monitoring writes the rows; this reads them for the
//! page and the API, filtered, newest first, limited to the agents in the caller's scope.

use serde::{Deserialize, Serialize};
use tapline_store::rusqlite::{self, Connection};

use crate::scope::Scope;

/// Rows per page.
pub const PAGE_SIZE: u32 = 100;

/// The filter form.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct WhisperFilter {
    /// UTC, `YYYY-MM-DDTHH:MM` or longer; inclusive.
    #[serde(default)]
    pub from: String,
    /// UTC; exclusive.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub supervisor: String,
    /// Agent name or extension.
    #[serde(default)]
    pub agent: String,
    /// Listen, Whisper or Barge; empty for all.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub page: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WhisperRow {
    pub started_at: String,
    pub duration_ms: i64,
    pub supervisor: String,
    pub agent_name: String,
    pub agent_extension: String,
    pub action: String,
    pub call_id: String,
}

pub const ACTIONS: [&str; 3] = ["Listen", "Whisper", "Barge"];

pub fn search(
    conn: &Connection,
    filter: &WhisperFilter,
    scope: &Scope,
) -> rusqlite::Result<Vec<WhisperRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT started_at, duration_ms, supervisor, agent_name, agent_extension, action, call_id
         FROM whisper_log
         WHERE (?1 = '' OR started_at >= ?1) AND (?2 = '' OR started_at < ?2)
           AND (?3 = '' OR supervisor = ?3 COLLATE NOCASE)
           AND (?4 = '' OR agent_name = ?4 COLLATE NOCASE OR agent_extension = ?4)
           AND (?5 = '' OR action = ?5)
         ORDER BY started_at DESC, id DESC",
    )?;
    let rows = statement.query_map(
        (
            filter.from.trim(),
            filter.to.trim(),
            filter.supervisor.trim(),
            filter.agent.trim(),
            filter.action.trim(),
        ),
        |row| {
            Ok(WhisperRow {
                started_at: row.get(0)?,
                duration_ms: row.get(1)?,
                supervisor: row.get(2)?,
                agent_name: row.get(3)?,
                agent_extension: row.get(4)?,
                action: row.get(5)?,
                call_id: row.get(6)?,
            })
        },
    )?;
    let skip = usize::try_from(filter.page.saturating_mul(PAGE_SIZE)).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        // Scope filters rows here rather than in SQL: the agents a scope names come from the
        // directory, and an agent is in scope by name or by extension.
        if scope.allows(&row.agent_name) || scope.allows(&row.agent_extension) {
            out.push(row);
        }
        if out.len() >= skip + PAGE_SIZE as usize {
            break;
        }
    }
    Ok(out.into_iter().skip(skip).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_store::Store;

    #[test]
    fn filters_and_scope_apply() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        store
            .write(|tx| {
                for (at, sup, agent, ext, action) in [
                    (
                        "2026-11-21T10:00:00.000000Z",
                        "sam",
                        "Alice",
                        "201",
                        "Listen",
                    ),
                    (
                        "2026-11-21T11:00:00.000000Z",
                        "sam",
                        "Bob",
                        "202",
                        "Whisper",
                    ),
                    (
                        "2026-11-21T12:00:00.000000Z",
                        "kim",
                        "Alice",
                        "201",
                        "Barge",
                    ),
                ] {
                    tx.execute(
                        "INSERT INTO whisper_log (started_at, duration_ms, supervisor,
                             agent_name, agent_extension, action, call_id)
                         VALUES (?1, 5000, ?2, ?3, ?4, ?5, 'c1')",
                        (at, sup, agent, ext, action),
                    )?;
                }
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
        let find = |filter: WhisperFilter, scope: &Scope| {
            store
                .read(|c| search(c, &filter, scope))
                .unwrap()
                .into_iter()
                .map(|r| format!("{} {}", r.agent_name, r.action))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            find(WhisperFilter::default(), &Scope::All),
            ["Alice Barge", "Bob Whisper", "Alice Listen"]
        );
        let sam = WhisperFilter {
            supervisor: "SAM".into(),
            ..Default::default()
        };
        assert_eq!(find(sam, &Scope::All), ["Bob Whisper", "Alice Listen"]);
        let by_ext = WhisperFilter {
            agent: "201".into(),
            from: "2026-11-21T11:00".into(),
            ..Default::default()
        };
        assert_eq!(find(by_ext, &Scope::All), ["Alice Barge"]);
        let only_bob = Scope::Agents(["202".to_owned()].into());
        assert_eq!(find(WhisperFilter::default(), &only_bob), ["Bob Whisper"]);
    }
}
