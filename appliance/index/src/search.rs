//! The Recordings page's search: filters, scope, newest-first pages and one call's details.
//!
//! A search is a set of filters (a time range, given in tenant local time and turned into UTC
//! here; the directory's agents; the agent's name, the customer and called numbers, the queue,
//! the case id and the transaction id, each matched exactly or by prefix) and the agents the
//! user may see ([`Request::allowed_agents`], from the user's scope). Results come newest
//! first, by answer time then id, one page at a time; a [`Cursor`] names where the next page
//! starts (keyset pagination: every page costs the same, however deep, and a call answered
//! meanwhile never shifts a page).
//!
//! **Every search reads a bounded number of rows.** Over a million calls, the filter that
//! narrows most differs from one search to the next, so the index to read is chosen per
//! search, not left to SQLite's guess: each indexed filter's matches are counted up to
//! [`ESTIMATE_CAP`] in its index alone (no table reads), and the narrowest is read (forced with
//! `INDEXED BY`). A filter with few matches is read whole and sorted; when every filter
//! matches many calls, an index already in newest-first order is walked until the page is
//! full, which is quick precisely because matches are dense. The directory's agents (a
//! supervisor's scope) are read agent by agent, each already in order, and merged.
//!
//! Nothing the user sends is spliced into SQL: filters and the cursor are parsed, then bound.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection, OptionalExtension};
use tapline_store::sql::{BadCursor, Sql};
/// Pages go newest first by answer time, then id.
pub use tapline_store::sql::{Cursor, Total};

use crate::day::{DaySpan, iso_utc};

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page served, whatever the caller asks.
pub const MAX_PAGE_SIZE: usize = 200;
/// Matches counted per filter when choosing the index, and the most a total counts.
pub const ESTIMATE_CAP: u64 = 5_000;
/// Directory agents read one by one and merged; a longer list is checked row by row instead.
const MAX_MERGED_AGENTS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("database error")]
    Store(#[from] rusqlite::Error),
    #[error("{0} cannot be placed in the tenant's time zone")]
    LocalTime(String, #[source] jiff::Error),
    #[error("not a page cursor")]
    BadCursor,
    #[error(transparent)]
    Day(#[from] crate::IndexError),
}

impl From<BadCursor> for SearchError {
    fn from(_: BadCursor) -> SearchError {
        SearchError::BadCursor
    }
}

/// An instant range, start included, end excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl TimeRange {
    /// From local `from` to local `to` (excluded), in the tenant's zone. A wall time that a
    /// daylight-saving change skips or repeats is taken as jiff's "compatible" choice: after a
    /// gap, the earlier of a repeat.
    pub fn local(
        from: Option<DateTime>,
        to: Option<DateTime>,
        tz: &TimeZone,
    ) -> Result<TimeRange, SearchError> {
        let instant = |at: Option<DateTime>| {
            at.map(|at| {
                tz.to_ambiguous_timestamp(at)
                    .compatible()
                    .map_err(|source| SearchError::LocalTime(at.to_string(), source))
            })
            .transpose()
        };
        Ok(TimeRange {
            from: instant(from)?,
            to: instant(to)?,
        })
    }

    /// Whole local days, `first` to `last` included (23 or 25 hours on a daylight-saving
    /// change, as the daily index counts them).
    pub fn local_days(first: Date, last: Date, tz: &TimeZone) -> Result<TimeRange, SearchError> {
        Ok(TimeRange {
            from: Some(DaySpan::of(first, tz)?.start),
            to: Some(DaySpan::of(last, tz)?.end),
        })
    }
}

/// How a text filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Prefix(String),
}

impl Match {
    /// A phone number as users type one: spaces, dashes, dots and brackets dropped, and
    /// matched as a prefix (the first digits are what people remember), or exactly when it
    /// ends with `=`. `None` when nothing is left to match.
    pub fn number(input: &str) -> Option<Match> {
        let (input, exact) = match input.trim().strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (input, false),
        };
        let digits: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\t'))
            .collect();
        match (digits.is_empty(), exact) {
            (true, _) => None,
            (false, true) => Some(Match::Exact(digits)),
            (false, false) => Some(Match::Prefix(digits)),
        }
    }

    /// An identifier or a name: exact, or a prefix when it ends with `*`. `None` when blank.
    pub fn text(input: &str) -> Option<Match> {
        let input = input.trim();
        match input.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => Some(Match::Prefix(prefix.to_owned())),
            Some(_) => None,
            None if input.is_empty() => None,
            None => Some(Match::Exact(input.to_owned())),
        }
    }
}

/// What the user searches for. Every field narrows the result; an empty filter lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// When the call was answered.
    pub answered: TimeRange,
    /// Directory agents (`recordings.agent_ref`): calls of any of them. Empty: any agent.
    pub agents: Vec<i64>,
    pub agent_name: Option<Match>,
    pub customer_number: Option<Match>,
    pub called_number: Option<Match>,
    /// The queue's name.
    pub queue: Option<Match>,
    pub case_id: Option<Match>,
    pub transaction_id: Option<Match>,
}

/// One page's worth of search.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub filter: &'a Filter,
    /// The directory agents the user may see (their scope); `None` for a user who sees all.
    /// A call without a directory agent is outside every restricted scope.
    pub allowed_agents: Option<&'a [i64]>,
    /// Where the page starts: the previous page's [`Page::next`]. `None` for the first.
    pub after: Option<Cursor>,
    /// Capped at [`MAX_PAGE_SIZE`]; 0 means [`DEFAULT_PAGE_SIZE`].
    pub page_size: usize,
}

/// A call in the result list: what the table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub id: i64,
    pub file_name: String,
    /// `Syyyymmdd`, the UTC day directory holding the file.
    pub directory: String,
    pub status: String,
    pub call_type: Option<String>,
    pub answered_at: Timestamp,
    pub duration_ms: Option<i64>,
    pub agent_ref: Option<i64>,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub customer_number: Option<String>,
    pub called_number: Option<String>,
    pub queue_name: Option<String>,
    pub case_id: Option<String>,
    pub transaction_id: String,
    pub legal_hold: bool,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Summary>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<Cursor>,
    /// `None` when counting would have meant reading too many rows.
    pub total: Option<Total>,
}

/// One page of the calls matching `request`, newest first.
pub fn search(store: &Store, request: &Request<'_>) -> Result<Page, SearchError> {
    store.read(|conn| search_in(conn, request))
}

/// [`search`] on a connection the caller holds.
pub fn search_in(conn: &Connection, request: &Request<'_>) -> Result<Page, SearchError> {
    let Some(plan) = Plan::new(conn, request)? else {
        return Ok(Page {
            rows: Vec::new(),
            next: None,
            total: Some(Total::Exact(0)),
        });
    };
    let size = match request.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let sql = plan.page_sql(request.after.as_ref(), size + 1);
    let mut statement = conn.prepare_cached(&sql.text)?;
    let mut rows = statement.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut found = Vec::with_capacity(size + 1);
    while let Some(row) = rows.next()? {
        if let Some(summary) = read_summary(row)? {
            found.push(summary);
        }
    }
    let more = found.len() > size;
    found.truncate(size);
    let next = more
        .then(|| found.last())
        .flatten()
        .map(|last| Cursor::new(last.answered_at, last.id));
    let total = plan.total(conn)?;
    Ok(Page {
        rows: found,
        next,
        total,
    })
}

/// A call's row, with everything the detail view shows: metadata, file, stream quality.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    pub id: i64,
    pub file_name: String,
    pub directory: String,
    pub status: String,
    pub source: String,
    pub call_type: Option<String>,
    pub answered_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub transaction_id: String,
    pub sip_call_id: String,
    pub parent_transaction_id: Option<String>,
    pub caller_uri: Option<String>,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub callee_uri: Option<String>,
    pub called_number: Option<String>,
    pub agent_ref: Option<i64>,
    pub agent_id: Option<String>,
    pub agent_extension: Option<String>,
    pub agent_name: Option<String>,
    pub customer_number: Option<String>,
    pub phone_channel: Option<String>,
    pub queue: Option<String>,
    pub queue_name: Option<String>,
    pub case_id: Option<String>,
    pub account: Option<String>,
    pub external_variable_1: Option<String>,
    pub external_variable_2: Option<String>,
    pub outdial_code: Option<String>,
    pub wrap_up_code: Option<String>,
    pub codec: Option<String>,
    pub sample_rate: i64,
    pub channels: i64,
    pub format: String,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub caller_packets: Option<i64>,
    pub caller_lost: Option<i64>,
    pub caller_jitter_ms: Option<f64>,
    pub callee_packets: Option<i64>,
    pub callee_lost: Option<i64>,
    pub callee_jitter_ms: Option<f64>,
    pub hold_count: Option<i64>,
    pub hold_ms: Option<i64>,
    pub raw_media_file: Option<String>,
    pub raw_media_packets: Option<i64>,
    pub record_reason: Option<String>,
    pub legal_hold: bool,
    /// Where a REFER sent the call.
    pub referred_to: Option<String>,
}

const DETAIL_COLUMNS: &str = "id, file_name, directory, status, source, call_type, answered_at, \
     ended_at, duration_ms, end_reason, transaction_id, sip_call_id, parent_transaction_id, \
     caller_uri, caller_number, caller_name, callee_uri, called_number, agent_ref, agent_id, \
     agent_extension, agent_name, customer_number, phone_channel, queue, queue_name, case_id, \
     account, external_variable_1, external_variable_2, outdial_code, wrap_up_code, codec, \
     sample_rate, channels, format, size_bytes, sha256, caller_packets, caller_lost, \
     caller_jitter_ms, callee_packets, callee_lost, callee_jitter_ms, hold_count, hold_ms, \
     raw_media_file, raw_media_packets, record_reason, legal_hold, referred_to";

/// The call with row id `id`, if it exists and is in `allowed_agents` (`None`: all).
pub fn by_id(
    store: &Store,
    id: i64,
    allowed_agents: Option<&[i64]>,
) -> Result<Option<Detail>, SearchError> {
    store.read(|conn| {
        let detail = conn
            .prepare_cached(&format!(
                "SELECT {DETAIL_COLUMNS} FROM recordings WHERE id = ?1"
            ))?
            .query_row([id], read_detail)
            .optional()?;
        Ok(detail.filter(|detail| in_scope(detail.agent_ref, allowed_agents)))
    })
}

/// Whether a call of directory agent `agent_ref` is visible to a user allowed `allowed`.
pub fn in_scope(agent_ref: Option<i64>, allowed: Option<&[i64]>) -> bool {
    match (allowed, agent_ref) {
        (None, _) => true,
        (Some(allowed), Some(agent)) => allowed.contains(&agent),
        (Some(_), None) => false,
    }
}

fn read_detail(row: &rusqlite::Row<'_>) -> rusqlite::Result<Detail> {
    Ok(Detail {
        id: row.get(0)?,
        file_name: row.get(1)?,
        directory: row.get(2)?,
        status: row.get(3)?,
        source: row.get(4)?,
        call_type: row.get(5)?,
        answered_at: row.get(6)?,
        ended_at: row.get(7)?,
        duration_ms: row.get(8)?,
        end_reason: row.get(9)?,
        transaction_id: row.get(10)?,
        sip_call_id: row.get(11)?,
        parent_transaction_id: row.get(12)?,
        caller_uri: row.get(13)?,
        caller_number: row.get(14)?,
        caller_name: row.get(15)?,
        callee_uri: row.get(16)?,
        called_number: row.get(17)?,
        agent_ref: row.get(18)?,
        agent_id: row.get(19)?,
        agent_extension: row.get(20)?,
        agent_name: row.get(21)?,
        customer_number: row.get(22)?,
        phone_channel: row.get(23)?,
        queue: row.get(24)?,
        queue_name: row.get(25)?,
        case_id: row.get(26)?,
        account: row.get(27)?,
        external_variable_1: row.get(28)?,
        external_variable_2: row.get(29)?,
        outdial_code: row.get(30)?,
        wrap_up_code: row.get(31)?,
        codec: row.get(32)?,
        sample_rate: row.get(33)?,
        channels: row.get(34)?,
        format: row.get(35)?,
        size_bytes: row.get(36)?,
        sha256: row.get(37)?,
        caller_packets: row.get(38)?,
        caller_lost: row.get(39)?,
        caller_jitter_ms: row.get(40)?,
        callee_packets: row.get(41)?,
        callee_lost: row.get(42)?,
        callee_jitter_ms: row.get(43)?,
        hold_count: row.get(44)?,
        hold_ms: row.get(45)?,
        raw_media_file: row.get(46)?,
        raw_media_packets: row.get(47)?,
        record_reason: row.get(48)?,
        legal_hold: row.get::<_, i64>(49)? != 0,
        referred_to: row.get(50)?,
    })
}

const SUMMARY_COLUMNS: &str = "id, file_name, directory, status, call_type, answered_at, \
     duration_ms, agent_ref, agent_id, agent_name, customer_number, called_number, queue_name, \
     case_id, transaction_id, legal_hold";

/// A result row, or `None` for a row whose answer time is not a time (never written so by
/// Tapline; left out rather than failing the whole page).
fn read_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Summary>> {
    let id: i64 = row.get(0)?;
    let Ok(answered_at) = row.get_ref(5)?.as_str()?.parse::<Timestamp>() else {
        tracing::warn!(id, "recording row with an unreadable answer time left out");
        return Ok(None);
    };
    Ok(Some(Summary {
        id,
        file_name: row.get(1)?,
        directory: row.get(2)?,
        status: row.get(3)?,
        call_type: row.get(4)?,
        answered_at,
        duration_ms: row.get(6)?,
        agent_ref: row.get(7)?,
        agent_id: row.get(8)?,
        agent_name: row.get(9)?,
        customer_number: row.get(10)?,
        called_number: row.get(11)?,
        queue_name: row.get(12)?,
        case_id: row.get(13)?,
        transaction_id: row.get(14)?,
        legal_hold: row.get::<_, i64>(15)? != 0,
    }))
}

/// A filterable column and the index that leads with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    name: &'static str,
    index: &'static str,
    /// Whether the index continues with `answered_at`, so an exact match is read in order.
    ordered: bool,
}

const AGENT_NAME: Column = Column {
    name: "agent_name",
    index: "recordings_by_agent_name",
    ordered: true,
};
const CUSTOMER_NUMBER: Column = Column {
    name: "customer_number",
    index: "recordings_by_customer",
    ordered: true,
};
const CALLED_NUMBER: Column = Column {
    name: "called_number",
    index: "recordings_by_called",
    ordered: true,
};
const QUEUE_NAME: Column = Column {
    name: "queue_name",
    index: "recordings_by_queue",
    ordered: true,
};
const CASE_ID: Column = Column {
    name: "case_id",
    index: "recordings_by_case",
    ordered: true,
};
const TRANSACTION_ID: Column = Column {
    name: "transaction_id",
    index: "recordings_by_transaction",
    ordered: false,
};
const TIME_INDEX: &str = "recordings_by_answer_agent";
const AGENT_INDEX: &str = "recordings_by_agent";

/// The rows read to build a page: where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Driver {
    /// The answer-time index, newest first.
    Time,
    /// One column's index; `match_index` is the position in `Plan::matches`.
    Column { column: Column, match_index: usize },
    /// The directory agents' index, one agent at a time, merged.
    Agents,
}

/// A search, resolved: conditions ready to bind, and the index to read.
#[derive(Debug)]
struct Plan {
    from: Option<String>,
    to: Option<String>,
    /// The directory agents that may appear, after the filter and the scope; `None`: any.
    agents: Option<Vec<i64>>,
    matches: Vec<(Column, Match)>,
    driver: Driver,
    /// Matches of the driver's own condition (and the time range), capped.
    driver_estimate: u64,
}

impl Plan {
    /// `None` when the filter and the scope leave no agent at all.
    fn new(conn: &Connection, request: &Request<'_>) -> Result<Option<Plan>, SearchError> {
        let filter = request.filter;
        let agents = match (filter.agents.is_empty(), request.allowed_agents) {
            (true, None) => None,
            (true, Some(allowed)) => Some(allowed.to_vec()),
            (false, None) => Some(filter.agents.clone()),
            (false, Some(allowed)) => Some(
                filter
                    .agents
                    .iter()
                    .copied()
                    .filter(|agent| allowed.contains(agent))
                    .collect(),
            ),
        };
        let agents = agents.map(|mut agents| {
            agents.sort_unstable();
            agents.dedup();
            agents
        });
        if agents.as_ref().is_some_and(Vec::is_empty) {
            return Ok(None);
        }
        let matches: Vec<(Column, Match)> = [
            (AGENT_NAME, &filter.agent_name),
            (CUSTOMER_NUMBER, &filter.customer_number),
            (CALLED_NUMBER, &filter.called_number),
            (QUEUE_NAME, &filter.queue),
            (CASE_ID, &filter.case_id),
            (TRANSACTION_ID, &filter.transaction_id),
        ]
        .into_iter()
        .filter_map(|(column, m)| m.clone().map(|m| (column, m)))
        .collect();
        let mut plan = Plan {
            from: filter.answered.from.map(iso_utc),
            to: filter.answered.to.map(iso_utc),
            agents,
            matches,
            driver: Driver::Time,
            driver_estimate: 0,
        };
        plan.choose_driver(conn)?;
        Ok(Some(plan))
    }

    /// Counts, up to [`ESTIMATE_CAP`] and in each index alone, the rows each indexed filter
    /// and the time range let through, and reads the narrowest. When all are wide, an index
    /// already in page order is read, and stops as soon as the page is full.
    fn choose_driver(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut candidates = vec![(Driver::Time, self.estimate(conn, &Driver::Time)?)];
        if self
            .agents
            .as_ref()
            .is_some_and(|agents| agents.len() <= MAX_MERGED_AGENTS)
        {
            candidates.push((Driver::Agents, self.estimate(conn, &Driver::Agents)?));
        }
        for (match_index, (column, _)) in self.matches.iter().enumerate() {
            let driver = Driver::Column {
                column: *column,
                match_index,
            };
            let estimate = self.estimate(conn, &driver)?;
            candidates.push((driver, estimate));
        }
        let narrowest = candidates
            .iter()
            .filter(|(_, estimate)| *estimate < ESTIMATE_CAP)
            .min_by_key(|(_, estimate)| *estimate);
        let (driver, estimate) = match narrowest {
            Some(found) => found.clone(),
            None => self.widest_fallback(&candidates),
        };
        self.driver = driver;
        self.driver_estimate = estimate;
        Ok(())
    }

    /// The driver when every filter matches many calls: one read in page order, which stops
    /// at a full page. An exact match's index comes first (it holds the agent too, so a scope
    /// costs no table read); then, when the agents are not the only filter, the time index
    /// (which also holds the agent, so only calls in scope are read from the table for the
    /// other filters); then the agents one by one (read from their index alone).
    fn widest_fallback(&self, candidates: &[(Driver, u64)]) -> (Driver, u64) {
        let find = |wanted: &dyn Fn(&Driver) -> bool| {
            candidates
                .iter()
                .find(|(driver, _)| wanted(driver))
                .cloned()
        };
        let exact =
            |driver: &Driver| matches!(driver, Driver::Column { .. }) && self.is_ordered(driver);
        let time_first = self.agents.is_some() && !self.matches.is_empty();
        find(&exact)
            .or_else(|| find(&|driver| *driver == Driver::Time).filter(|_| time_first))
            .or_else(|| find(&|driver| *driver == Driver::Agents))
            .unwrap_or_else(|| candidates[0].clone())
    }

    /// Whether `driver` yields rows already newest first, so that it can stop at a page.
    fn is_ordered(&self, driver: &Driver) -> bool {
        match driver {
            Driver::Time | Driver::Agents => true,
            Driver::Column {
                column,
                match_index,
            } => column.ordered && matches!(self.matches[*match_index].1, Match::Exact(_)),
        }
    }

    /// Rows `driver`'s condition and the time range let through, counted in its index up to
    /// [`ESTIMATE_CAP`]. Only the conditions that bound the index range are counted: one that
    /// is checked entry by entry (the agents, on an index that holds them) could make the
    /// count read the whole index to find few matches.
    fn estimate(&self, conn: &Connection, driver: &Driver) -> rusqlite::Result<u64> {
        match driver {
            Driver::Agents => {
                let mut total = 0;
                for agent in self.agents.iter().flatten() {
                    let mut sql = Sql::default();
                    sql.bind("agent_ref = ?", *agent);
                    self.push_range(&mut sql);
                    total += capped_count_in(conn, AGENT_INDEX, sql, ESTIMATE_CAP - total)?;
                    if total >= ESTIMATE_CAP {
                        break;
                    }
                }
                Ok(total)
            }
            Driver::Time => {
                let mut sql = Sql::default();
                sql.push("1");
                self.push_range(&mut sql);
                capped_count_in(conn, TIME_INDEX, sql, ESTIMATE_CAP)
            }
            Driver::Column {
                column,
                match_index,
            } => {
                let mut sql = Sql::default();
                push_match(&mut sql, column, &self.matches[*match_index].1);
                self.push_range(&mut sql);
                capped_count_in(conn, column.index, sql, ESTIMATE_CAP)
            }
        }
    }

    fn push_range(&self, sql: &mut Sql) {
        if let Some(from) = &self.from {
            sql.bind(" AND answered_at >= ?", from.clone());
        }
        if let Some(to) = &self.to {
            sql.bind(" AND answered_at < ?", to.clone());
        }
    }

    /// The agents' condition, if any. Every index but the transaction id's holds `agent_ref`,
    /// so it is checked without reading the table.
    fn push_agents(&self, sql: &mut Sql) {
        if let Some(agents) = &self.agents {
            sql.push(" AND agent_ref IN (");
            for (n, agent) in agents.iter().enumerate() {
                sql.bind(if n == 0 { "?" } else { ", ?" }, *agent);
            }
            sql.push(")");
        }
    }

    /// Every condition, after a leading `WHERE 1`; the agents' only when `with_agents`.
    fn push_conditions(&self, sql: &mut Sql, with_agents: bool) {
        self.push_range(sql);
        if with_agents {
            self.push_agents(sql);
        }
        for (column, m) in &self.matches {
            sql.push(" AND ");
            push_match(sql, column, m);
        }
    }

    /// The page's query: `limit` rows after `after`, newest first. The rows are chosen by id
    /// from the driver's index (where every condition it holds is checked without the
    /// table), and only the page's rows are then read whole.
    fn page_sql(&self, after: Option<&Cursor>, limit: usize) -> Sql {
        let mut sql = Sql::default();
        let branch = |sql: &mut Sql, index: &str, agent: Option<i64>| {
            sql.push(&format!(
                "SELECT id, answered_at FROM recordings INDEXED BY {index} WHERE 1"
            ));
            if let Some(agent) = agent {
                sql.bind(" AND agent_ref = ?", agent);
            }
            self.push_conditions(sql, agent.is_none());
            if let Some(after) = after {
                after.push_after(sql, "answered_at");
            }
            sql.bind(" ORDER BY answered_at DESC, id DESC LIMIT ?", limit as i64);
        };
        sql.push(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM recordings WHERE id IN (SELECT id FROM ("
        ));
        match &self.driver {
            Driver::Time => branch(&mut sql, TIME_INDEX, None),
            Driver::Column { column, .. } => branch(&mut sql, column.index, None),
            Driver::Agents => {
                // Each agent's newest rows, merged.
                let agents = self.agents.as_deref().unwrap_or_default();
                for (n, agent) in agents.iter().enumerate() {
                    if n > 0 {
                        sql.push(" UNION ALL ");
                    }
                    sql.push("SELECT * FROM (");
                    branch(&mut sql, AGENT_INDEX, Some(*agent));
                    sql.push(")");
                }
                sql.bind(" ORDER BY answered_at DESC, id DESC LIMIT ?", limit as i64);
            }
        }
        sql.push(")) ORDER BY answered_at DESC, id DESC");
        sql
    }

    /// The number of matches, when it costs at most [`ESTIMATE_CAP`] index entries or rows.
    fn total(&self, conn: &Connection) -> rusqlite::Result<Option<Total>> {
        let only_driver = match &self.driver {
            Driver::Time => self.agents.is_none() && self.matches.is_empty(),
            Driver::Agents => self.matches.is_empty(),
            Driver::Column { .. } => self.agents.is_none() && self.matches.len() == 1,
        };
        if self.driver_estimate >= ESTIMATE_CAP {
            return Ok(only_driver.then_some(Total::MoreThan(ESTIMATE_CAP)));
        }
        if only_driver {
            return Ok(Some(Total::Exact(self.driver_estimate)));
        }
        let index = match &self.driver {
            Driver::Time => TIME_INDEX,
            Driver::Agents => AGENT_INDEX,
            Driver::Column { column, .. } => column.index,
        };
        let mut sql = Sql::default();
        sql.push("1");
        self.push_conditions(&mut sql, true);
        Ok(Some(Total::Exact(capped_count_in(
            conn,
            index,
            sql,
            ESTIMATE_CAP,
        )?)))
    }
}

fn push_match(sql: &mut Sql, column: &Column, m: &Match) {
    match m {
        Match::Exact(value) => sql.bind(&format!("{} = ?", column.name), value.clone()),
        Match::Prefix(prefix) => {
            // A range, not LIKE: it reads only the matching stretch of the index, and needs
            // no escaping. U+10FFFF sorts after every character a stored value may hold next.
            sql.bind(&format!("{} >= ?", column.name), prefix.clone());
            sql.bind(
                &format!(" AND {} < ?", column.name),
                format!("{prefix}\u{10FFFF}"),
            );
        }
    }
}

/// Rows of `recordings` matching `condition`, read through `index`, counted up to `cap`.
fn capped_count_in(
    conn: &Connection,
    index: &str,
    condition: Sql,
    cap: u64,
) -> rusqlite::Result<u64> {
    tapline_store::sql::capped_count(conn, "recordings", index, condition, cap)
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open_in(dir.path()).expect("database");
        (dir, store)
    }

    /// A call's searchable fields; the rest are filled with what the recorder would write.
    #[derive(Debug, Clone, Default)]
    struct Call {
        answered_at: &'static str,
        agent_ref: Option<i64>,
        agent_name: Option<&'static str>,
        customer_number: Option<&'static str>,
        called_number: Option<&'static str>,
        queue_name: Option<&'static str>,
        case_id: Option<&'static str>,
    }

    fn insert(store: &Store, calls: &[Call]) -> Vec<i64> {
        store
            .write(|tx| {
                let mut insert = tx.prepare(
                    "INSERT INTO recordings (file_name, directory, status, source, answered_at,
                         transaction_id, sip_call_id, sample_rate, channels, format, agent_ref,
                         agent_name, customer_number, called_number, queue_name, case_id)
                     VALUES (?1, 'S20261121', 'complete', 'span', ?2, ?3, ?3, 8000, 2, 'pcm16',
                             ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                let mut ids = Vec::new();
                for call in calls {
                    let n = tx.query_row("SELECT count(*) FROM recordings", [], |row| {
                        row.get::<_, i64>(0)
                    })?;
                    insert.execute(rusqlite::params![
                        format!("R20261121000000{n:04}.wav"),
                        call.answered_at,
                        format!("tx-{n:06}"),
                        call.agent_ref,
                        call.agent_name,
                        call.customer_number,
                        call.called_number,
                        call.queue_name,
                        call.case_id,
                    ])?;
                    ids.push(tx.last_insert_rowid());
                }
                Ok::<_, rusqlite::Error>(ids)
            })
            .expect("insert")
    }

    fn page(store: &Store, filter: &Filter, scope: Option<&[i64]>, after: Option<Cursor>) -> Page {
        let request = Request {
            filter,
            allowed_agents: scope,
            after,
            page_size: 2,
        };
        search(store, &request).expect("search")
    }

    /// Every id the filter finds, page after page.
    fn all_ids(store: &Store, filter: &Filter, scope: Option<&[i64]>) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let found = page(store, filter, scope, after);
            ids.extend(found.rows.iter().map(|row| row.id));
            match found.next {
                // Through the token, as a browser would send it back.
                Some(next) => after = Some(next.to_string().parse().expect("own token")),
                None => return ids,
            }
        }
    }

    fn calls() -> Vec<Call> {
        let at = |answered_at| Call {
            answered_at,
            ..Call::default()
        };
        vec![
            Call {
                agent_ref: Some(1),
                agent_name: Some("Maria Garcia"),
                customer_number: Some("+12125550100"),
                queue_name: Some("Sales"),
                case_id: Some("CASE-1"),
                ..at("2026-11-20T14:00:00.000000Z")
            },
            Call {
                agent_ref: Some(2),
                agent_name: Some("James Smith"),
                customer_number: Some("+12125550199"),
                called_number: Some("+18005550100"),
                queue_name: Some("Billing"),
                ..at("2026-11-21T04:30:00.000000Z")
            },
            // Three calls answered in the same microsecond: ties broken by id.
            Call {
                agent_ref: Some(1),
                customer_number: Some("+14155550123"),
                queue_name: Some("Sales"),
                ..at("2026-11-21T15:00:00.000000Z")
            },
            Call {
                agent_ref: Some(2),
                customer_number: Some("+12125550100"),
                ..at("2026-11-21T15:00:00.000000Z")
            },
            Call {
                agent_ref: Some(3),
                customer_number: Some("+12125550100"),
                case_id: Some("CASE-2"),
                ..at("2026-11-21T15:00:00.000000Z")
            },
            Call {
                agent_name: Some("Unknown Phone"),
                ..at("2026-11-22T01:00:00.000000Z")
            },
        ]
    }

    #[test]
    fn pages_walk_every_call_once_newest_first_ties_by_id() {
        let (_dir, store) = store();
        let ids = insert(&store, &calls());
        assert_eq!(
            all_ids(&store, &Filter::default(), None),
            vec![ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]
        );
        let first = page(&store, &Filter::default(), None, None);
        assert_eq!(first.total, Some(Total::Exact(6)));
        assert_eq!(first.rows.len(), 2);
    }

    #[test]
    fn filters_match_exactly_or_by_prefix() {
        let (_dir, store) = store();
        let ids = insert(&store, &calls());
        let check = |filter: Filter, expected: Vec<i64>| {
            assert_eq!(all_ids(&store, &filter, None), expected, "{filter:?}");
        };
        check(
            Filter {
                customer_number: Match::number("+1 (212) 555-01"),
                ..Filter::default()
            },
            vec![ids[4], ids[3], ids[1], ids[0]],
        );
        check(
            Filter {
                customer_number: Match::number("+12125550100="),
                ..Filter::default()
            },
            vec![ids[4], ids[3], ids[0]],
        );
        check(
            Filter {
                called_number: Match::number("800"),
                ..Filter::default()
            },
            vec![],
        );
        check(
            Filter {
                called_number: Match::number("+1800"),
                ..Filter::default()
            },
            vec![ids[1]],
        );
        check(
            Filter {
                queue: Match::text("Sales"),
                agents: vec![1],
                ..Filter::default()
            },
            vec![ids[2], ids[0]],
        );
        check(
            Filter {
                case_id: Match::text("CASE-*"),
                ..Filter::default()
            },
            vec![ids[4], ids[0]],
        );
        check(
            Filter {
                transaction_id: Match::text("tx-000003"),
                ..Filter::default()
            },
            vec![ids[3]],
        );
        check(
            Filter {
                agent_name: Match::text("Maria*"),
                ..Filter::default()
            },
            vec![ids[0]],
        );
        check(
            Filter {
                agents: vec![2, 3],
                ..Filter::default()
            },
            vec![ids[4], ids[3], ids[1]],
        );
    }

    #[test]
    fn local_days_follow_the_tenant_time_zone() {
        let (_dir, store) = store();
        let ids = insert(&store, &calls());
        let tz = TimeZone::get("America/New_York").expect("zone");
        // 2026-11-21 in New York is 05:00 UTC that day to 05:00 UTC the next.
        let filter = Filter {
            answered: TimeRange::local_days(date(2026, 11, 21), date(2026, 11, 21), &tz)
                .expect("range"),
            ..Filter::default()
        };
        assert_eq!(
            all_ids(&store, &filter, None),
            vec![ids[5], ids[4], ids[3], ids[2]]
        );
        let filter = Filter {
            answered: TimeRange::local(
                Some(date(2026, 11, 20).at(23, 0, 0, 0)),
                Some(date(2026, 11, 21).at(10, 1, 0, 0)),
                &tz,
            )
            .expect("range"),
            ..Filter::default()
        };
        assert_eq!(
            all_ids(&store, &filter, None),
            vec![ids[4], ids[3], ids[2], ids[1]]
        );
    }

    #[test]
    fn scope_hides_other_agents_and_calls_without_one() {
        let (_dir, store) = store();
        let ids = insert(&store, &calls());
        let scope = [1, 3];
        assert_eq!(
            all_ids(&store, &Filter::default(), Some(&scope)),
            vec![ids[4], ids[2], ids[0]]
        );
        // Asking for an agent out of scope finds nothing, not that agent's calls.
        let filter = Filter {
            agents: vec![2],
            ..Filter::default()
        };
        let found = page(&store, &filter, Some(&scope), None);
        assert_eq!(found.rows, vec![]);
        assert_eq!(found.total, Some(Total::Exact(0)));
        // The detail view too.
        assert!(
            by_id(&store, ids[1], Some(&scope))
                .expect("by id")
                .is_none()
        );
        assert!(
            by_id(&store, ids[5], Some(&scope))
                .expect("by id")
                .is_none()
        );
        let detail = by_id(&store, ids[0], Some(&scope))
            .expect("by id")
            .expect("in scope");
        assert_eq!(detail.agent_name.as_deref(), Some("Maria Garcia"));
        assert_eq!(detail.case_id.as_deref(), Some("CASE-1"));
        assert!(by_id(&store, ids[1], None).expect("by id").is_some());
    }

    #[test]
    fn matches_parse_as_users_type_them() {
        assert_eq!(
            Match::number(" +1 (212) 555-0100 "),
            Some(Match::Prefix("+12125550100".to_owned()))
        );
        assert_eq!(
            Match::number("2125550100="),
            Some(Match::Exact("2125550100".to_owned()))
        );
        assert_eq!(Match::number(" - "), None);
        assert_eq!(
            Match::text("CASE-9"),
            Some(Match::Exact("CASE-9".to_owned()))
        );
        assert_eq!(
            Match::text("CASE-*"),
            Some(Match::Prefix("CASE-".to_owned()))
        );
        assert_eq!(Match::text("*"), None);
        assert_eq!(Match::text("  "), None);
    }

    /// SQLite's plan for `sql`, one line per step.
    fn explain(store: &Store, sql: &Sql) -> Vec<String> {
        store
            .read(|conn| {
                let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?;
                statement
                    .query_map(rusqlite::params_from_iter(sql.params.iter()), |row| {
                        row.get::<_, String>(3)
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .expect("explain")
    }

    /// Every shape a user would try, planned with every index the search may choose for it:
    /// each reads `recordings` through an index (never the whole table), and a driver that
    /// yields rows in page order needs no sort.
    #[test]
    fn every_shape_reads_through_an_index() {
        let (_dir, store) = store();
        insert(&store, &calls());
        let tz = TimeZone::get("America/New_York").expect("zone");
        let day =
            TimeRange::local_days(date(2026, 11, 21), date(2026, 11, 21), &tz).expect("range");
        let shapes = [
            Filter::default(),
            Filter {
                answered: day,
                ..Filter::default()
            },
            Filter {
                agents: vec![1],
                ..Filter::default()
            },
            Filter {
                agents: vec![1, 2, 3],
                answered: day,
                queue: Match::text("Sales"),
                ..Filter::default()
            },
            Filter {
                agent_name: Match::text("Maria Garcia"),
                answered: day,
                ..Filter::default()
            },
            Filter {
                customer_number: Match::number("+1212"),
                ..Filter::default()
            },
            Filter {
                customer_number: Match::number("+12125550100="),
                answered: day,
                ..Filter::default()
            },
            Filter {
                called_number: Match::number("+1800"),
                queue: Match::text("Billing"),
                ..Filter::default()
            },
            Filter {
                case_id: Match::text("CASE-1"),
                ..Filter::default()
            },
            Filter {
                transaction_id: Match::text("tx-000001"),
                ..Filter::default()
            },
            Filter {
                transaction_id: Match::text("tx-*"),
                customer_number: Match::number("+1"),
                ..Filter::default()
            },
        ];
        let cursor: Cursor = "1763737200000000.3".parse().expect("token");
        for filter in &shapes {
            for scope in [None, Some(&[1, 2][..])] {
                let request = Request {
                    filter,
                    allowed_agents: scope,
                    after: Some(cursor),
                    page_size: 50,
                };
                let mut plan = store
                    .read(|conn| Plan::new(conn, &request))
                    .expect("plan")
                    .expect("agents left");
                let mut drivers = vec![Driver::Time];
                if plan.agents.is_some() {
                    drivers.push(Driver::Agents);
                }
                for (match_index, (column, _)) in plan.matches.iter().enumerate() {
                    drivers.push(Driver::Column {
                        column: *column,
                        match_index,
                    });
                }
                for driver in drivers {
                    plan.driver = driver.clone();
                    let ordered = plan.is_ordered(&driver);
                    let steps = explain(&store, &plan.page_sql(Some(&cursor), 51));
                    let context = format!("{filter:?} {scope:?} {driver:?}: {steps:#?}");
                    for step in steps.iter().filter(|step| step.contains("recordings")) {
                        assert!(
                            step.contains("USING INDEX")
                                || step.contains("USING COVERING INDEX")
                                || step.contains("USING INTEGER PRIMARY KEY"),
                            "{context}"
                        );
                    }
                    if ordered && driver != Driver::Agents {
                        // The index yields rows in page order; only the page's rows, read
                        // back by id, are sorted.
                        let sorts = steps
                            .iter()
                            .filter(|step| step.contains("TEMP B-TREE"))
                            .count();
                        assert_eq!(sorts, 1, "{context}");
                    }
                    if driver == Driver::Agents {
                        // Each agent's branch reads its newest entries from the agents'
                        // index alone (what is sorted is the LIMITed branches and the
                        // page); only the page's rows are read from the table, by rowid.
                        for step in steps.iter().filter(|step| step.contains("recordings")) {
                            assert!(
                                step.contains("INDEX recordings_by_agent (agent_ref=?")
                                    || step.contains("INTEGER PRIMARY KEY (rowid=?)"),
                                "{context}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// With thousands of calls, the search reads the narrowest filter's index.
    #[test]
    fn the_narrowest_filter_drives() {
        let (_dir, store) = store();
        let mut calls = Vec::new();
        for n in 0..6_000 {
            calls.push(Call {
                answered_at: if n % 2 == 0 {
                    "2026-11-21T15:00:00.000000Z"
                } else {
                    "2026-11-20T15:00:00.000000Z"
                },
                agent_ref: Some(n % 3),
                customer_number: Some(if n == 7 {
                    "+14155550123"
                } else {
                    "+12125550100"
                }),
                queue_name: Some("Sales"),
                ..Call::default()
            });
        }
        insert(&store, &calls);
        let plan_of = |filter: &Filter| {
            let request = Request {
                filter,
                allowed_agents: None,
                after: None,
                page_size: 50,
            };
            store
                .read(|conn| {
                    let plan = Plan::new(conn, &request)?.expect("agents left");
                    let total = plan.total(conn)?;
                    Ok::<_, SearchError>((plan.driver, total))
                })
                .expect("plan")
        };
        // The rare number: its own index, counted exactly.
        let (driver, total) = plan_of(&Filter {
            customer_number: Match::number("+1415"),
            queue: Match::text("Sales"),
            ..Filter::default()
        });
        assert_eq!(
            driver,
            Driver::Column {
                column: CUSTOMER_NUMBER,
                match_index: 0
            }
        );
        assert_eq!(total, Some(Total::Exact(1)));
        // Everything wide: an index in page order, no total.
        let (driver, total) = plan_of(&Filter {
            customer_number: Match::number("+1212"),
            queue: Match::text("Sales"),
            ..Filter::default()
        });
        assert_eq!(
            driver,
            Driver::Column {
                column: QUEUE_NAME,
                match_index: 1
            }
        );
        assert_eq!(total, None);
        // A narrow time range beats a wide filter.
        let (driver, total) = plan_of(&Filter {
            answered: TimeRange {
                from: Some("2026-11-20T00:00:00Z".parse().expect("time")),
                to: Some("2026-11-21T00:00:00Z".parse().expect("time")),
            },
            ..Filter::default()
        });
        assert_eq!(driver, Driver::Time);
        assert_eq!(total, Some(Total::Exact(3_000)));
        let (_, total) = plan_of(&Filter::default());
        assert_eq!(total, Some(Total::MoreThan(ESTIMATE_CAP)));
    }
}
