//! SQL assembled from a filter's parts, for the searches that choose their own index (the
//! Recordings search and the activity audit log's filters), and the [`Cursor`] both page with.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use rusqlite::Connection;
use rusqlite::types::Value;

/// SQL text and what to bind to it, built together so they cannot drift apart: a value only
/// ever enters through [`Sql::bind`], never into the text.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Value>,
}

impl Sql {
    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Appends `text`, which holds one `?`, and the value it stands for.
    pub fn bind(&mut self, text: &str, value: impl Into<Value>) {
        self.text.push_str(text);
        self.params.push(value.into());
    }
}

/// Rows of `table` matching `condition`, read through `index`, counted up to `cap`: what a
/// match costs at most, so a search can pick its narrowest index cheaply. `table` and `index`
/// are the caller's constants, never input.
pub fn capped_count(
    conn: &Connection,
    table: &str,
    index: &str,
    condition: Sql,
    cap: u64,
) -> rusqlite::Result<u64> {
    capped_count_from(conn, &format!("{table} INDEXED BY {index}"), condition, cap)
}

/// Rows of `source` (a table, with how to read it: `t INDEXED BY i`, `t NOT INDEXED`, a
/// full-text table) matching `condition`, counted up to `cap`. `source` is the caller's
/// constant, never input.
pub fn capped_count_from(
    conn: &Connection,
    source: &str,
    condition: Sql,
    cap: u64,
) -> rusqlite::Result<u64> {
    let text = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {} LIMIT {cap})",
        condition.text
    );
    conn.prepare_cached(&text)?
        .query_row(rusqlite::params_from_iter(condition.params.iter()), |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n.unsigned_abs())
}

/// How many rows a search matches, when that was cheap to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(u64),
    /// At least this many (counting stopped there).
    MoreThan(u64),
}

/// A position in a list read newest first, by a time column and then the id: the last row of
/// a page, where the next one starts (keyset pagination: every page costs the same, however
/// deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    at: Timestamp,
    id: i64,
}

/// A page token that is not a [`Cursor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a page cursor")]
pub struct BadCursor;

impl Cursor {
    pub fn new(at: Timestamp, id: i64) -> Cursor {
        Cursor { at, id }
    }

    pub fn at(&self) -> Timestamp {
        self.at
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// Appends the condition for the rows after this one, newest first by `column` (stored as
    /// [`crate::utc_text`]) and then by id. `column` is the caller's constant, never input.
    pub fn push_after(&self, sql: &mut Sql, column: &str) {
        let at = crate::utc_text(self.at);
        // The first condition narrows the index range; the second breaks ties.
        sql.bind(&format!(" AND {column} <= ?"), at.clone());
        sql.bind(&format!(" AND ({column} < ?"), at);
        sql.bind(" OR id < ?)", self.id);
    }
}

/// The token form is `<time in Unix microseconds>.<row id>`: two integers, parsed as such, so
/// a token can only ever become two bound numbers.
impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.at.as_microsecond(), self.id)
    }
}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(token: &str) -> Result<Cursor, BadCursor> {
        let (micros, id) = token.split_once('.').ok_or(BadCursor)?;
        let micros: i64 = micros.parse().map_err(|_| BadCursor)?;
        let id: i64 = id.parse().map_err(|_| BadCursor)?;
        let at = Timestamp::from_microsecond(micros).map_err(|_| BadCursor)?;
        if id <= 0 {
            return Err(BadCursor);
        }
        Ok(Cursor { at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_tokens_are_two_numbers_or_refused() {
        let cursor: Cursor = "1763737200000000.42".parse().expect("token");
        assert_eq!(cursor.id(), 42);
        assert_eq!(cursor.at().as_second(), 1_763_737_200);
        assert_eq!(cursor.to_string(), "1763737200000000.42");
        for bad in [
            "",
            "7",
            "42",
            "1.2.3",
            "a.b",
            "x.1",
            "1.-5",
            "1.0",
            "1.2' OR '1'='1",
            "1' OR 1=1 --.1",
            "1.2;--",
            "1.1; DROP TABLE recordings",
            "999999999999999999.1",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(BadCursor), "{bad:?}");
        }
    }

    #[test]
    fn after_a_cursor_binds_its_time_and_id() {
        let cursor: Cursor = "1763737200250000.42".parse().expect("token");
        let mut sql = Sql::default();
        sql.push("1");
        cursor.push_after(&mut sql, "created_at");
        assert_eq!(
            sql.text,
            "1 AND created_at <= ? AND (created_at < ? OR id < ?)"
        );
        let at = Value::Text("2025-11-21T15:00:00.250000Z".to_owned());
        assert_eq!(sql.params, vec![at.clone(), at, Value::Integer(42)]);
    }
}
