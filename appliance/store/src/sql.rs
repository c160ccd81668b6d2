//! SQL assembled from a filter's parts, for the searches that choose their own index (the
//! Recordings search and the activity audit log's filters).

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
    let text = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {table} INDEXED BY {index} WHERE {} LIMIT {cap})",
        condition.text
    );
    conn.prepare_cached(&text)?
        .query_row(rusqlite::params_from_iter(condition.params.iter()), |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n.unsigned_abs())
}
