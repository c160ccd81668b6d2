//! Reading the log back for the Activity audit log page: filters, newest-first pages, the
//! values the filter lists offer, and the CSV export.
//!
//! Results come newest first, by creation time then id; a [`Cursor`] names where the next
//! page starts (keyset pagination: every page costs the same, however deep).
//!
//! **Every page reads a bounded number of rows.** The filter that narrows most differs from
//! one search to the next, so the index to read is chosen per search: each indexed filter's
//! matches are counted up to [`ESTIMATE_CAP`] in its index alone, and the narrowest is read
//! (forced with `INDEXED BY`). When every filter matches many rows, an index already in
//! newest-first order is walked until the page is full, which is quick precisely because
//! matches are dense; when there are several such filters, or one whose index is not in page
//! order, they are counted further, up to [`CHOICE_CAP`], to pick the one to read. Several
//! users are read user by user, each already in order, and merged.
//! The creation-time index carries the event object, so an object prefix matching many rows
//! is checked in that walk without reading the rows it skips.
//!
//! Free text in comments is always checked with `LIKE` on the row, which alone decides what
//! matches. A text of three characters or more is first looked up in the trigram index of
//! the comments (`audit_log_comments`): the rows holding every one of its rarest
//! three-character pieces, a superset of the matching rows. When those are few, only they are
//! read. Otherwise the rows that have comments are checked one by one, in page order.
//!
//! Nothing the user sends is spliced into SQL: filters and the cursor are parsed, then bound.

use std::io::Write;

use jiff::Timestamp;
use tapline_store::Store;
use tapline_store::rusqlite::{self, Connection, OptionalExtension};
use tapline_store::sql::{BadCursor, Sql, capped_count_from};
/// Pages go newest first by creation time, then id.
pub use tapline_store::sql::{Cursor, Total};

use crate::{COLUMNS, Row, read_row};

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The largest page served, whatever the caller asks.
pub const MAX_PAGE_SIZE: usize = 200;
/// Matches counted per filter when choosing the index, and the most a total counts: every
/// search pays for these counts, so they stay small, and a page says "more than" past them.
pub const ESTIMATE_CAP: u64 = 1_000;
/// Matches counted, when every filter has at least [`ESTIMATE_CAP`], to choose between
/// several filters, or whether to sort the matches of one whose index is not in page order;
/// what such a filter may read whole.
pub const CHOICE_CAP: u64 = 5_000;
/// Rows the trigram index may name for it to be read: each is read and checked from the
/// table, and the page sorted, so this is kept well below [`CHOICE_CAP`].
pub const TEXT_CAP: u64 = 1_000;
/// Characters of comment text the trigram index can look up: it knows nothing shorter.
const TRIGRAM: usize = 3;
/// A piece of text held by fewer rows than this is rare: a lookup intersects the rare pieces
/// alone, and checking a piece costs at most this many index entries.
const RARE_PIECE: u64 = 200;
/// Rows per read of the CSV export: memory stays flat however long the export.
pub const EXPORT_CHUNK_ROWS: usize = 1_000;
/// The CSV export's header: the fields of the log as auditors know them, then the chain.
pub const CSV_HEADER: [&str; 11] = [
    "Created (UTC)",
    "Username",
    "User IP",
    "Event",
    "Sub Event",
    "Event Object",
    "Comments",
    "Request URI",
    "Params",
    "Previous Row Hash",
    "Row Hash",
];
/// Users read one by one and merged; a longer list is checked row by row instead.
const MAX_MERGED_USERS: usize = 32;
/// Event and sub-event pairs listed for the filters, at most.
const MAX_EVENT_PAIRS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("audit log database error")]
    Store(#[from] rusqlite::Error),
    #[error("not a page cursor")]
    BadCursor,
    #[error("cannot write the CSV export")]
    Csv(#[from] csv::Error),
    #[error("cannot write the CSV export")]
    Io(#[from] std::io::Error),
}

impl From<BadCursor> for QueryError {
    fn from(_: BadCursor) -> QueryError {
        QueryError::BadCursor
    }
}

/// How the event object filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Prefix(String),
}

impl Match {
    /// Exact, or a prefix when it ends with `*`. `None` when blank.
    pub fn parse(input: &str) -> Option<Match> {
        let input = input.trim();
        match input.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => Some(Match::Prefix(prefix.to_owned())),
            Some(_) => None,
            None if input.is_empty() => None,
            None => Some(Match::Exact(input.to_owned())),
        }
    }
}

/// What the auditor searches for. Every field narrows the result; an empty filter lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    /// Rows of any of these users. Empty: any user.
    pub usernames: Vec<String>,
    pub event: Option<String>,
    pub sub_event: Option<String>,
    pub event_object: Option<Match>,
    /// Text the comments contain, ignoring ASCII case.
    pub comments: Option<String>,
}

/// One page of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<Row>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<Cursor>,
    /// `None` when counting would have meant reading too many rows.
    pub total: Option<Total>,
}

/// One page of the rows matching `filter` after `after`, newest first; `page_size` is capped
/// at [`MAX_PAGE_SIZE`], 0 meaning [`DEFAULT_PAGE_SIZE`].
pub fn search(
    store: &Store,
    filter: &Filter,
    after: Option<Cursor>,
    page_size: usize,
) -> Result<Page, QueryError> {
    store.read(|conn| search_in(conn, filter, after, page_size))
}

/// [`search`] on a connection the caller holds.
pub fn search_in(
    conn: &Connection,
    filter: &Filter,
    after: Option<Cursor>,
    page_size: usize,
) -> Result<Page, QueryError> {
    let size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let plan = Plan::new(conn, filter)?;
    let (rows, next) = plan.rows(conn, after.as_ref(), size)?;
    // A first page that is not full holds every match: that is the count, for nothing.
    let total = if after.is_none() && rows.len() < size {
        Some(Total::Exact(rows.len() as u64))
    } else {
        plan.total(conn)?
    };
    Ok(Page { rows, next, total })
}

/// The row with id `id`, for "Show Params".
pub fn by_id(store: &Store, id: i64) -> Result<Option<Row>, QueryError> {
    store.read(|conn| {
        Ok(conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM audit_log WHERE id = ?1"))?
            .query_row([id], read_row)
            .optional()?)
    })
}

/// Every distinct (event, sub event) pair in the log, sorted, for the filter lists. Read by
/// seeking from one pair to the next in the (event, sub event) index, so it costs one seek a
/// pair however many rows there are.
pub fn event_pairs(store: &Store) -> Result<Vec<(String, String)>, QueryError> {
    store.read(|conn| {
        let mut next_event = conn.prepare_cached(
            "SELECT event FROM audit_log INDEXED BY audit_log_by_event
             WHERE event > ?1 ORDER BY event LIMIT 1",
        )?;
        let mut next_sub_event = conn.prepare_cached(
            "SELECT sub_event FROM audit_log INDEXED BY audit_log_by_event
             WHERE event = ?1 AND sub_event > ?2 ORDER BY sub_event LIMIT 1",
        )?;
        let mut pairs = Vec::new();
        let mut event = String::new();
        // Seeks start from '' (less than every text but '' itself), so a row with an empty
        // event or sub event is looked for first, exactly.
        let mut first_event = true;
        loop {
            let found: Option<String> = if first_event {
                first_event = false;
                conn.query_row(
                    "SELECT event FROM audit_log INDEXED BY audit_log_by_event
                     WHERE event >= '' ORDER BY event LIMIT 1",
                    [],
                    |row| row.get(0),
                )
                .optional()?
            } else {
                next_event
                    .query_row([&event], |row| row.get(0))
                    .optional()?
            };
            let Some(found) = found else { break };
            event = found;
            let mut sub_event: Option<String> = conn
                .query_row(
                    "SELECT sub_event FROM audit_log INDEXED BY audit_log_by_event
                     WHERE event = ?1 ORDER BY sub_event LIMIT 1",
                    [&event],
                    |row| row.get(0),
                )
                .optional()?;
            while let Some(current) = sub_event {
                pairs.push((event.clone(), current.clone()));
                if pairs.len() >= MAX_EVENT_PAIRS {
                    return Ok(pairs);
                }
                sub_event = next_sub_event
                    .query_row((&event, &current), |row| row.get(0))
                    .optional()?;
            }
        }
        Ok(pairs)
    })
}

/// The CSV export of every row matching a filter, newest first, read [`EXPORT_CHUNK_ROWS`]
/// at a time so that memory stays flat: call [`CsvExport::next_chunk`] until it returns
/// `None`, sending each chunk on (a streamed HTTP body, a file). Each chunk is read in a read
/// transaction of its own, so the export never holds back the writer for long; rows added
/// meanwhile are newer than the export's first row and are not included.
#[derive(Debug)]
pub struct CsvExport {
    filter: Filter,
    after: Option<Cursor>,
    started: bool,
    done: bool,
}

impl CsvExport {
    pub fn new(filter: Filter) -> CsvExport {
        CsvExport {
            filter,
            after: None,
            started: false,
            done: false,
        }
    }

    /// The next part of the file (the header first), or `None` once all was given.
    pub fn next_chunk(&mut self, store: &Store) -> Result<Option<Vec<u8>>, QueryError> {
        if self.done {
            return Ok(None);
        }
        let (rows, next) = store.read(|conn| {
            let plan = Plan::new(conn, &self.filter)?;
            plan.rows(conn, self.after.as_ref(), EXPORT_CHUNK_ROWS)
        })?;
        let mut writer = csv::Writer::from_writer(Vec::new());
        if !self.started {
            writer.write_record(CSV_HEADER)?;
            self.started = true;
        }
        for row in &rows {
            writer.write_record(csv_record(row))?;
        }
        self.after = next;
        self.done = next.is_none();
        let bytes = writer
            .into_inner()
            .map_err(|err| QueryError::Io(err.into_error()))?;
        Ok(Some(bytes))
    }

    /// Writes the whole export to `out`, chunk by chunk.
    pub fn write_all(mut self, store: &Store, out: &mut impl Write) -> Result<(), QueryError> {
        while let Some(chunk) = self.next_chunk(store)? {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// A row's fields in the order of [`CSV_HEADER`], exactly as stored (so that the hashes in
/// the file can be checked against them).
fn csv_record(row: &Row) -> [&str; 11] {
    [
        &row.created_at,
        &row.username,
        &row.user_ip,
        &row.event,
        &row.sub_event,
        &row.event_object,
        &row.comments,
        &row.request_uri,
        &row.params,
        &row.prev_hash,
        &row.row_hash,
    ]
}

/// An indexed filter and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// (created_at, id, event_object), newest first; an object filter is checked in it.
    Time,
    /// (username, created_at), user by user, merged.
    Users,
    /// (event, created_at).
    Event,
    /// (event, sub_event, created_at).
    EventAndSubEvent,
    /// (sub_event, created_at).
    SubEvent,
    /// (event_object, created_at): in order for an exact match, sorted for a prefix.
    Object,
    /// (created_at) of the rows that have comments.
    Comments,
    /// The trigram index of the comments: the rows it names, read by id and sorted.
    Text,
}

impl Driver {
    /// The index read, `None` for [`Driver::Text`], which reads rows by id.
    fn index(self) -> Option<&'static str> {
        match self {
            Driver::Time => Some("audit_log_by_created_object"),
            Driver::Users => Some("audit_log_by_user"),
            Driver::Event => Some("audit_log_by_event_only"),
            Driver::EventAndSubEvent => Some("audit_log_by_event"),
            Driver::SubEvent => Some("audit_log_by_sub_event"),
            Driver::Object => Some("audit_log_by_object"),
            Driver::Comments => Some("audit_log_with_comments"),
            Driver::Text => None,
        }
    }

    /// `audit_log` read through the driver's index only, or for [`Driver::Text`] through no
    /// index: `NOT INDEXED` still looks rows up by id.
    fn source(self) -> String {
        match self.index() {
            Some(index) => format!("audit_log INDEXED BY {index}"),
            None => "audit_log NOT INDEXED".to_owned(),
        }
    }

    /// Matches at which the driver counts as wide, when first counted.
    fn cap(self) -> u64 {
        match self {
            Driver::Text => TEXT_CAP,
            _ => ESTIMATE_CAP,
        }
    }
}

/// A filter, resolved: conditions ready to bind, and the index to read.
#[derive(Debug)]
struct Plan<'f> {
    filter: &'f Filter,
    from: Option<String>,
    to: Option<String>,
    usernames: Vec<String>,
    driver: Driver,
    /// Matches of the driver's own condition (and the time range), counted up to
    /// `driver_cap`.
    driver_estimate: u64,
    driver_cap: u64,
    /// The rows the trigram index named for the comment text (up to [`TEXT_CAP`]), when
    /// [`Driver::Text`] was a candidate. All of them only when fewer than the cap.
    text_ids: Vec<i64>,
}

impl<'f> Plan<'f> {
    fn new(conn: &Connection, filter: &'f Filter) -> rusqlite::Result<Plan<'f>> {
        let mut usernames = filter.usernames.clone();
        usernames.sort_unstable();
        usernames.dedup();
        let mut plan = Plan {
            filter,
            from: filter.from.map(tapline_store::utc_text),
            to: filter.to.map(tapline_store::utc_text),
            usernames,
            driver: Driver::Time,
            driver_estimate: 0,
            driver_cap: ESTIMATE_CAP,
            text_ids: Vec::new(),
        };
        plan.choose_driver(conn)?;
        Ok(plan)
    }

    /// Counts, up to [`ESTIMATE_CAP`] and in each index alone, the rows each indexed filter
    /// and the time range let through, and reads the narrowest. When all are wide, an index
    /// already in page order is read, and stops as soon as the page is full: the one filter
    /// with such an index, or, when choosing needs it (several filters, or one whose index is
    /// not in page order), the narrowest under [`CHOICE_CAP`].
    fn choose_driver(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let candidates = self.candidates();
        let mut estimated = Vec::with_capacity(candidates.len());
        for driver in candidates {
            let estimate = if driver == Driver::Text {
                self.text_ids = self.text_lookup(conn)?;
                self.text_ids.len() as u64
            } else {
                self.estimate(conn, driver, driver.cap())?
            };
            estimated.push((driver, estimate));
        }
        let narrowest = estimated
            .iter()
            .filter(|(driver, estimate)| *estimate < driver.cap())
            .min_by_key(|(_, estimate)| *estimate);
        if let Some(&(driver, estimate)) = narrowest {
            self.drive(driver, estimate, driver.cap());
            return Ok(());
        }
        // Every filter is wide. The rows the trigram index named are too many to read by id,
        // and the time range alone is what an ordered walk falls back on.
        let wide: Vec<Driver> = estimated
            .iter()
            .map(|(driver, _)| *driver)
            .filter(|driver| !matches!(driver, Driver::Time | Driver::Text))
            .collect();
        if wide.len() > 1 || wide.iter().any(|driver| !self.is_ordered(*driver)) {
            let mut recounted = Vec::with_capacity(wide.len());
            for driver in wide {
                recounted.push((driver, self.estimate(conn, driver, CHOICE_CAP)?));
            }
            let narrowest = recounted
                .iter()
                .filter(|(_, estimate)| *estimate < CHOICE_CAP)
                .min_by_key(|(_, estimate)| *estimate);
            if let Some(&(driver, estimate)) = narrowest {
                self.drive(driver, estimate, CHOICE_CAP);
                return Ok(());
            }
        }
        let (driver, estimate) = *estimated
            .iter()
            .rev()
            .find(|(driver, _)| self.is_ordered(*driver) && *driver != Driver::Time)
            .unwrap_or(&estimated[0]);
        self.drive(driver, estimate, driver.cap());
        Ok(())
    }

    /// Reads the rows through `driver`, whose matches were counted up to `cap`.
    fn drive(&mut self, driver: Driver, estimate: u64, cap: u64) {
        self.driver = driver;
        self.driver_estimate = estimate;
        self.driver_cap = cap;
    }

    /// The drivers that may read this filter, [`Driver::Time`] first.
    fn candidates(&self) -> Vec<Driver> {
        let filter = self.filter;
        let mut candidates = vec![Driver::Time];
        if !self.usernames.is_empty() && self.usernames.len() <= MAX_MERGED_USERS {
            candidates.push(Driver::Users);
        }
        match (&filter.event, &filter.sub_event) {
            (Some(_), Some(_)) => candidates.push(Driver::EventAndSubEvent),
            (Some(_), None) => candidates.push(Driver::Event),
            (None, Some(_)) => candidates.push(Driver::SubEvent),
            (None, None) => {}
        }
        if filter.event_object.is_some() {
            candidates.push(Driver::Object);
        }
        if let Some(text) = &filter.comments {
            candidates.push(Driver::Comments);
            if text.chars().count() >= TRIGRAM {
                candidates.push(Driver::Text);
            }
        }
        candidates
    }

    /// Whether `driver` yields rows already newest first, so that it can stop at a page.
    fn is_ordered(&self, driver: Driver) -> bool {
        match driver {
            Driver::Object => matches!(self.filter.event_object, Some(Match::Exact(_))),
            Driver::Text => false,
            _ => true,
        }
    }

    /// Up to [`TEXT_CAP`] ids of rows whose comments may hold the filter's text, in any
    /// time: every row holding it is among them. The trigram index is asked for the rows
    /// holding every rare piece of the text, found by counting, up to [`RARE_PIECE`], the rows
    /// that hold each; when no piece is rare, every piece. The pieces do not overlap (and the
    /// last three characters end them): a piece common to many comments costs as much as the
    /// rows holding it, and those that overlap add little.
    fn text_lookup(&self, conn: &Connection) -> rusqlite::Result<Vec<i64>> {
        let text: Vec<char> = self
            .filter
            .comments
            .as_deref()
            .unwrap_or_default()
            .chars()
            .collect();
        let Some(last) = text.len().checked_sub(TRIGRAM) else {
            return Ok(Vec::new());
        };
        let mut starts: Vec<usize> = (0..=last).step_by(TRIGRAM).collect();
        if starts.last() != Some(&last) {
            starts.push(last);
        }
        // A quoted string is one term of a full-text query, literal but for its quotes,
        // doubled; the tokenizer makes the one trigram of it, case folded as the index is.
        let pieces: Vec<String> = starts
            .into_iter()
            .map(|start| {
                let piece: String = text[start..start + TRIGRAM].iter().collect();
                format!("\"{}\"", piece.replace('"', "\"\""))
            })
            .collect();
        let mut holders = conn.prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM audit_log_comments
             WHERE audit_log_comments MATCH ?1 LIMIT ?2)",
        )?;
        let mut rare = Vec::new();
        for piece in &pieces {
            let held: i64 = holders.query_row((piece, RARE_PIECE as i64), |row| row.get(0))?;
            if held == 0 {
                return Ok(Vec::new());
            }
            if held.unsigned_abs() < RARE_PIECE {
                rare.push(piece.as_str());
            }
        }
        let query = if rare.is_empty() {
            pieces.join(" AND ")
        } else {
            rare.join(" AND ")
        };
        conn.prepare_cached(
            "SELECT rowid FROM audit_log_comments WHERE audit_log_comments MATCH ?1 LIMIT ?2",
        )?
        .query_map((query, TEXT_CAP as i64), |row| row.get(0))?
        .collect()
    }

    /// Rows `driver`'s condition and the time range let through, counted in its index up to
    /// `cap`.
    fn estimate(&self, conn: &Connection, driver: Driver, cap: u64) -> rusqlite::Result<u64> {
        if driver == Driver::Users {
            let mut total = 0;
            for username in &self.usernames {
                let mut sql = Sql::default();
                sql.bind("username = ?", username.clone());
                self.push_range(&mut sql);
                total += capped_count_from(conn, &driver.source(), sql, cap - total)?;
                if total >= cap {
                    break;
                }
            }
            return Ok(total);
        }
        let mut sql = Sql::default();
        sql.push("1");
        self.push_driver_condition(&mut sql, driver);
        self.push_range(&mut sql);
        capped_count_from(conn, &driver.source(), sql, cap)
    }

    /// The conditions `driver`'s index serves, but the time range (for [`Self::estimate`]).
    fn push_driver_condition(&self, sql: &mut Sql, driver: Driver) {
        let filter = self.filter;
        match driver {
            Driver::Time | Driver::Users | Driver::Text => {}
            Driver::Comments => sql.push(" AND comments <> ''"),
            Driver::Event | Driver::EventAndSubEvent | Driver::SubEvent => {
                if let (Some(event), true) = (&filter.event, driver != Driver::SubEvent) {
                    sql.bind(" AND event = ?", event.clone());
                }
                if let (Some(sub_event), true) = (&filter.sub_event, driver != Driver::Event) {
                    sql.bind(" AND sub_event = ?", sub_event.clone());
                }
            }
            Driver::Object => {
                if let Some(object) = &filter.event_object {
                    sql.push(" AND ");
                    push_object(sql, object);
                }
            }
        }
    }

    fn push_range(&self, sql: &mut Sql) {
        if let Some(from) = &self.from {
            sql.bind(" AND created_at >= ?", from.clone());
        }
        if let Some(to) = &self.to {
            sql.bind(" AND created_at < ?", to.clone());
        }
    }

    /// Every condition, after a leading `WHERE 1`; the users' only when `with_users`.
    fn push_conditions(&self, sql: &mut Sql, with_users: bool) {
        let filter = self.filter;
        self.push_range(sql);
        if with_users && !self.usernames.is_empty() {
            sql.push(" AND username IN (");
            for (n, username) in self.usernames.iter().enumerate() {
                sql.bind(if n == 0 { "?" } else { ", ?" }, username.clone());
            }
            sql.push(")");
        }
        if let Some(event) = &filter.event {
            sql.bind(" AND event = ?", event.clone());
        }
        if let Some(sub_event) = &filter.sub_event {
            sql.bind(" AND sub_event = ?", sub_event.clone());
        }
        if let Some(object) = &filter.event_object {
            sql.push(" AND ");
            push_object(sql, object);
        }
        if let Some(text) = &filter.comments {
            // The first condition lets the index of rows with comments serve.
            sql.push(" AND comments <> ''");
            sql.bind(
                " AND comments LIKE ? ESCAPE '\\'",
                format!("%{}%", escape_like(text)),
            );
        }
    }

    /// Up to `limit` rows after `after`, newest first, and the cursor after the last when
    /// there are more.
    fn rows(
        &self,
        conn: &Connection,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<Cursor>), QueryError> {
        let sql = self.page_sql(after, limit + 1);
        let mut statement = conn.prepare_cached(&sql.text)?;
        let mut rows: Vec<Row> = statement
            .query_map(rusqlite::params_from_iter(sql.params.iter()), read_row)?
            .collect::<rusqlite::Result<_>>()?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        // The cursor after the last row, if its time reads (a row edited behind the log's
        // back may not).
        let next = more
            .then(|| rows.last())
            .flatten()
            .and_then(|row| Some(Cursor::new(row.created_at.parse().ok()?, row.id)));
        Ok((rows, next))
    }

    fn page_sql(&self, after: Option<&Cursor>, limit: usize) -> Sql {
        let mut sql = Sql::default();
        let branch = |sql: &mut Sql, username: Option<&str>| {
            sql.push(&format!(
                "SELECT {COLUMNS} FROM {} WHERE 1",
                self.driver.source()
            ));
            if let Some(username) = username {
                sql.bind(" AND username = ?", username.to_owned());
            }
            self.push_driver_lookup(sql);
            self.push_conditions(sql, username.is_none());
            if let Some(after) = after {
                after.push_after(sql, "created_at");
            }
            sql.bind(" ORDER BY created_at DESC, id DESC LIMIT ?", limit as i64);
        };
        if self.driver == Driver::Users {
            for (n, username) in self.usernames.iter().enumerate() {
                if n > 0 {
                    sql.push(" UNION ALL ");
                }
                sql.push("SELECT * FROM (");
                branch(&mut sql, Some(username));
                sql.push(")");
            }
            sql.bind(" ORDER BY created_at DESC, id DESC LIMIT ?", limit as i64);
        } else {
            branch(&mut sql, None);
        }
        sql
    }

    /// The number of matches, when it costs at most [`ESTIMATE_CAP`] index entries or rows.
    fn total(&self, conn: &Connection) -> rusqlite::Result<Option<Total>> {
        let filter = self.filter;
        let conditions = usize::from(!self.usernames.is_empty())
            + usize::from(filter.event.is_some())
            + usize::from(filter.sub_event.is_some())
            + usize::from(filter.event_object.is_some())
            + usize::from(filter.comments.is_some());
        let served = match self.driver {
            // The comments' index holds the rows with comments, not those with the text, and
            // the trigram index a superset of those with it.
            Driver::Time | Driver::Comments | Driver::Text => 0,
            Driver::EventAndSubEvent => 2,
            _ => 1,
        };
        let only_driver = conditions == served;
        if self.driver_estimate >= self.driver_cap {
            return Ok(only_driver.then_some(Total::MoreThan(self.driver_cap)));
        }
        if only_driver {
            return Ok(Some(Total::Exact(self.driver_estimate)));
        }
        if self.driver_estimate >= ESTIMATE_CAP {
            // Counting would read that many rows.
            return Ok(None);
        }
        let mut sql = Sql::default();
        sql.push("1");
        self.push_driver_lookup(&mut sql);
        self.push_conditions(&mut sql, true);
        Ok(Some(Total::Exact(capped_count_from(
            conn,
            &self.driver.source(),
            sql,
            ESTIMATE_CAP,
        )?)))
    }

    /// For [`Driver::Text`], the ids the trigram index named, which the rows are read by.
    fn push_driver_lookup(&self, sql: &mut Sql) {
        if self.driver == Driver::Text {
            // A JSON array of integers, `[1, 2]`: one parameter, whatever the number of ids.
            sql.bind(
                " AND id IN (SELECT value FROM json_each(?))",
                format!("{:?}", self.text_ids),
            );
        }
    }
}

fn push_object(sql: &mut Sql, object: &Match) {
    match object {
        Match::Exact(value) => sql.bind("event_object = ?", value.clone()),
        Match::Prefix(prefix) => {
            // A range, not LIKE: it reads only the matching stretch of the index, and needs
            // no escaping. U+10FFFF sorts after every character a stored value may hold next.
            sql.bind("event_object >= ?", prefix.clone());
            sql.bind(" AND event_object < ?", format!("{prefix}\u{10FFFF}"));
        }
    }
}

/// `text` with LIKE's wildcards and the escape character escaped.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use tapline_store::Store;

    use super::*;
    use crate::{Entry, append_at, events};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open_in(dir.path()).expect("database");
        (dir, store)
    }

    /// (username, event, sub event, object, comments, created)
    type Action = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    const ACTIONS: [Action; 6] = [
        ("admin", "Web", "Login", "", "", "2026-11-20T08:00:00Z"),
        (
            "maria.garcia",
            events::RECORDINGS,
            "Play",
            "S20261120/R202611201400000000.wav",
            "",
            "2026-11-20T14:05:00Z",
        ),
        // Two rows in the same microsecond: ties broken by id.
        (
            "maria.garcia",
            events::RECORDINGS,
            events::LEGAL_HOLD,
            "S20261120/R202611201400000000.wav",
            "Litigation hold, matter 100%_A",
            "2026-11-21T09:00:00Z",
        ),
        (
            "auditor1",
            events::SFTP,
            events::DOWNLOAD,
            "S20261121/R202611210900000000.wav",
            "",
            "2026-11-21T09:00:00Z",
        ),
        (
            "admin",
            events::ACCOUNT,
            events::CREATED,
            "maria.garcia",
            "new supervisor, \"Sales\"\nfloor 2",
            "2026-11-21T10:00:00Z",
        ),
        ("auditor1", "Web", "Login", "", "", "2026-11-22T07:00:00Z"),
    ];

    fn fill(store: &Store) {
        store
            .write(|tx| {
                for (username, event, sub_event, object, comments, at) in ACTIONS {
                    let entry = Entry {
                        username,
                        user_ip: "192.0.2.7",
                        event,
                        sub_event,
                        event_object: object,
                        comments,
                        request_uri: "/recordings",
                        params: serde_json::json!({ "object": object }),
                    };
                    append_at(tx, &entry, at.parse().expect("time"))?;
                }
                Ok::<_, rusqlite::Error>(())
            })
            .expect("fill");
    }

    /// Every id the filter finds, two rows a page.
    fn all_ids(store: &Store, filter: &Filter) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = search(store, filter, after, 2).expect("search");
            ids.extend(page.rows.iter().map(|row| row.id));
            match page.next {
                Some(next) => after = Some(next.to_string().parse().expect("own token")),
                None => return ids,
            }
        }
    }

    #[test]
    fn pages_walk_every_row_once_newest_first_ties_by_id() {
        let (_dir, store) = store();
        fill(&store);
        assert_eq!(all_ids(&store, &Filter::default()), vec![6, 5, 4, 3, 2, 1]);
        let page = search(&store, &Filter::default(), None, 0).expect("search");
        assert_eq!(page.total, Some(Total::Exact(6)));
        assert_eq!(page.next, None);
    }

    #[test]
    fn filters_narrow_the_rows() {
        let (_dir, store) = store();
        fill(&store);
        let check = |filter: Filter, expected: Vec<i64>| {
            assert_eq!(all_ids(&store, &filter), expected, "{filter:?}");
            let total = search(&store, &filter, None, 0).expect("search").total;
            assert_eq!(
                total,
                Some(Total::Exact(expected.len() as u64)),
                "{filter:?}"
            );
        };
        check(
            Filter {
                usernames: vec!["maria.garcia".to_owned(), "auditor1".to_owned()],
                ..Filter::default()
            },
            vec![6, 4, 3, 2],
        );
        check(
            Filter {
                from: Some("2026-11-21T00:00:00Z".parse().expect("time")),
                to: Some("2026-11-22T00:00:00Z".parse().expect("time")),
                ..Filter::default()
            },
            vec![5, 4, 3],
        );
        check(
            Filter {
                event: Some(events::RECORDINGS.to_owned()),
                ..Filter::default()
            },
            vec![3, 2],
        );
        check(
            Filter {
                event: Some("Web".to_owned()),
                sub_event: Some("Login".to_owned()),
                usernames: vec!["admin".to_owned()],
                ..Filter::default()
            },
            vec![1],
        );
        check(
            Filter {
                sub_event: Some(events::DOWNLOAD.to_owned()),
                ..Filter::default()
            },
            vec![4],
        );
        check(
            Filter {
                event_object: Match::parse("S20261120/*"),
                ..Filter::default()
            },
            vec![3, 2],
        );
        check(
            Filter {
                event_object: Match::parse("maria.garcia"),
                ..Filter::default()
            },
            vec![5],
        );
        // LIKE's wildcards in the text are matched as themselves.
        check(
            Filter {
                comments: Some("MATTER 100%_".to_owned()),
                ..Filter::default()
            },
            vec![3],
        );
        check(
            Filter {
                comments: Some("100%x".to_owned()),
                ..Filter::default()
            },
            vec![],
        );
    }

    #[test]
    fn event_pairs_list_each_pair_once_sorted() {
        let (_dir, store) = store();
        assert_eq!(event_pairs(&store).expect("pairs"), vec![]);
        fill(&store);
        let pair = |e: &str, s: &str| (e.to_owned(), s.to_owned());
        assert_eq!(
            event_pairs(&store).expect("pairs"),
            vec![
                pair(events::ACCOUNT, events::CREATED),
                pair(events::RECORDINGS, events::LEGAL_HOLD),
                pair(events::RECORDINGS, "Play"),
                pair(events::SFTP, events::DOWNLOAD),
                pair("Web", "Login"),
            ]
        );
    }

    #[test]
    fn csv_export_carries_every_field_and_the_chain() {
        let (_dir, store) = store();
        fill(&store);
        let mut bytes = Vec::new();
        CsvExport::new(Filter::default())
            .write_all(&store, &mut bytes)
            .expect("export");
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let header: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, CSV_HEADER);
        let records: Vec<csv::StringRecord> =
            reader.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(records.len(), ACTIONS.len());
        let stored = search(&store, &Filter::default(), None, 0).expect("search");
        for (record, row) in records.iter().zip(&stored.rows) {
            assert_eq!(record.iter().collect::<Vec<_>>(), csv_record(row));
        }
        // The comment with a quote and a line break survives the round trip.
        assert_eq!(&records[1][6], "new supervisor, \"Sales\"\nfloor 2");
        // Newest first, each row's previous hash is the next line's row hash, down to
        // the first row's, which follows the genesis hash.
        for pair in records.windows(2) {
            assert_eq!(&pair[0][9], &pair[1][10]);
        }
        assert_eq!(&records[records.len() - 1][9], crate::GENESIS_HASH);
    }

    #[test]
    fn csv_export_is_read_in_chunks() {
        let (_dir, store) = store();
        store
            .write(|tx| {
                for n in 0..(EXPORT_CHUNK_ROWS + 10) {
                    let entry = Entry {
                        username: "auditor1",
                        user_ip: "192.0.2.7",
                        event: events::SFTP,
                        sub_event: events::LIST_DIRECTORY,
                        event_object: "/",
                        comments: "",
                        request_uri: "sftp://tapline/",
                        params: serde_json::json!({ "n": n }),
                    };
                    // Many rows share a time: the chunks must still not repeat or skip one.
                    let at =
                        jiff::Timestamp::from_second(1_763_700_000 + (n / 7) as i64).expect("time");
                    append_at(tx, &entry, at)?;
                }
                Ok::<_, rusqlite::Error>(())
            })
            .expect("fill");
        let mut export = CsvExport::new(Filter::default());
        let mut chunks = Vec::new();
        while let Some(chunk) = export.next_chunk(&store).expect("chunk") {
            chunks.push(chunk);
        }
        assert_eq!(chunks.len(), 2);
        let all: Vec<u8> = chunks.concat();
        let mut reader = csv::Reader::from_reader(&all[..]);
        let hashes: Vec<String> = reader
            .records()
            .map(|record| record.expect("record")[10].to_owned())
            .collect();
        assert_eq!(hashes.len(), EXPORT_CHUNK_ROWS + 10);
        let unique: std::collections::HashSet<&String> = hashes.iter().collect();
        assert_eq!(unique.len(), hashes.len());
    }

    /// Every id `filter` finds when `driver` reads it, walking pages of `size`.
    fn ids_through(store: &Store, filter: &Filter, driver: Driver, size: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let (rows, next) = store
                .read(|conn| {
                    let mut plan = Plan::new(conn, filter)?;
                    plan.driver = driver;
                    plan.rows(conn, after.as_ref(), size)
                })
                .expect("page");
            ids.extend(rows.iter().map(|row| row.id));
            match next {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    }

    /// Whichever index reads a filter, it finds the same rows in the same order: those that
    /// reading every row finds. And the index chosen is the one meant for the shape.
    #[test]
    fn every_driver_finds_the_same_rows() {
        let (_dir, store) = store();
        crate::tests::fill_varied(&store);
        for (filter, _) in crate::tests::varied_shapes() {
            let expected = crate::tests::reference(&store, &filter);
            let plan = store.read(|conn| Plan::new(conn, &filter)).expect("plan");
            for driver in plan.candidates() {
                // The trigram index's rows are read only when it named them all.
                if driver == Driver::Text && plan.text_ids.len() as u64 >= TEXT_CAP {
                    continue;
                }
                assert_eq!(
                    ids_through(&store, &filter, driver, 200),
                    expected,
                    "{filter:?} {driver:?}"
                );
            }
        }
        let chosen = |filter: Filter| {
            store
                .read(|conn| Plan::new(conn, &filter).map(|plan| plan.driver))
                .expect("plan")
        };
        let comments = |text: &str| Filter {
            comments: Some(text.to_owned()),
            ..Filter::default()
        };
        let object = |text: &str| Filter {
            event_object: Match::parse(text),
            ..Filter::default()
        };
        assert_eq!(chosen(object("S202610*")), Driver::Time);
        assert_eq!(chosen(object("S202611*")), Driver::Object);
        let two_wide = Filter {
            usernames: vec!["Émile".to_owned()],
            event: Some(crate::events::RECORDINGS.to_owned()),
            ..Filter::default()
        };
        assert_eq!(chosen(two_wide), Driver::Users);
        assert_eq!(chosen(object("S20261105/*")), Driver::Object);
        assert_eq!(chosen(comments("matter 1050")), Driver::Text);
        assert_eq!(chosen(comments("ärger")), Driver::Text);
        assert_eq!(chosen(comments("er")), Driver::Comments);
        assert_eq!(chosen(comments("wrong password")), Driver::Comments);
    }

    /// Every filter shape, planned with every index the query may choose for it, reads the
    /// log through an index, never the whole table, and an in-order driver needs no sort.
    #[test]
    fn every_shape_reads_through_an_index() {
        let (_dir, store) = store();
        fill(&store);
        let from = Some("2026-11-21T00:00:00Z".parse().expect("time"));
        let shapes = [
            Filter::default(),
            Filter {
                from,
                ..Filter::default()
            },
            Filter {
                usernames: vec!["admin".to_owned()],
                ..Filter::default()
            },
            Filter {
                usernames: vec!["admin".to_owned(), "auditor1".to_owned()],
                from,
                comments: Some("hold".to_owned()),
                ..Filter::default()
            },
            Filter {
                event: Some("Web".to_owned()),
                ..Filter::default()
            },
            Filter {
                event: Some("Web".to_owned()),
                sub_event: Some("Login".to_owned()),
                from,
                ..Filter::default()
            },
            Filter {
                sub_event: Some("Login".to_owned()),
                ..Filter::default()
            },
            Filter {
                event_object: Match::parse("S2026*"),
                ..Filter::default()
            },
            Filter {
                event_object: Match::parse("maria.garcia"),
                usernames: vec!["admin".to_owned()],
                ..Filter::default()
            },
        ];
        let cursor: Cursor = "1763737200000000.3".parse().expect("token");
        for filter in &shapes {
            let mut plan = store.read(|conn| Plan::new(conn, filter)).expect("plan");
            for driver in plan.candidates() {
                plan.driver = driver;
                let sql = plan.page_sql(Some(&cursor), 51);
                let steps: Vec<String> = store
                    .read(|conn| {
                        conn.prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?
                            .query_map(rusqlite::params_from_iter(sql.params.iter()), |row| {
                                row.get::<_, String>(3)
                            })?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .expect("explain");
                let context = format!("{filter:?} {driver:?}: {steps:#?}");
                for step in steps.iter().filter(|step| step.contains("audit_log ")) {
                    let read = match driver.index() {
                        Some(index) => format!("INDEX {index} "),
                        // Rows by id, the ids from the trigram index.
                        None => "USING INTEGER PRIMARY KEY (rowid=?)".to_owned(),
                    };
                    assert!(step.contains(&read), "{context}");
                }
                if driver == Driver::Text {
                    assert!(
                        steps
                            .iter()
                            .any(|step| step.contains("SCAN json_each VIRTUAL TABLE")),
                        "{context}"
                    );
                }
                if plan.is_ordered(driver) && driver != Driver::Users {
                    assert!(
                        !steps.iter().any(|step| step.contains("TEMP B-TREE")),
                        "{context}"
                    );
                }
            }
        }
    }
}
