//! What the index and retention read from the database.

use jiff::Timestamp;
use jiff::civil::Date;
use tapline_store::rusqlite::{self, Connection, OptionalExtension};

use crate::day::{DaySpan, iso_utc};

/// A recording's row, as the index needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Recording {
    pub file_name: String,
    pub directory: String,
    pub status: Status,
    pub source: String,
    pub call_type: Option<String>,
    pub answered_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub transaction_id: String,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
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
    pub raw_media_file: Option<String>,
    pub legal_hold: bool,
    pub hold_count: Option<i64>,
    pub hold_ms: Option<i64>,
}

/// A row's `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Status {
    /// The call is still being recorded (or a crash left it so until the recorder's repair).
    Recording,
    #[default]
    Complete,
    /// Repaired after a crash.
    Recovered,
    Failed,
}

impl Status {
    fn parse(text: &str) -> Status {
        match text {
            "recording" => Status::Recording,
            "complete" => Status::Complete,
            "recovered" => Status::Recovered,
            // The schema allows no other value; a failed recording is the safe reading.
            _ => Status::Failed,
        }
    }
}

const RECORDING_COLUMNS: &str = "file_name, directory, status, source, call_type, answered_at, \
     ended_at, duration_ms, end_reason, transaction_id, caller_number, called_number, agent_name, \
     customer_number, phone_channel, queue, queue_name, case_id, account, external_variable_1, \
     external_variable_2, outdial_code, wrap_up_code, codec, sample_rate, channels, format, \
     size_bytes, sha256, caller_packets, caller_lost, caller_jitter_ms, callee_packets, \
     callee_lost, callee_jitter_ms, raw_media_file, legal_hold, hold_count, hold_ms";

/// What [`answered_in`] found.
#[derive(Debug, Default)]
pub(crate) struct Answered {
    /// In order of answer, then file name.
    pub recordings: Vec<Recording>,
    /// Rows whose answer time could not be read, by file name: left out of the index.
    pub unreadable: Vec<String>,
}

/// Every recording answered within `span`, whatever its status.
pub(crate) fn answered_in(conn: &Connection, span: &DaySpan) -> rusqlite::Result<Answered> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings
         WHERE answered_at >= ?1 AND answered_at < ?2
         ORDER BY answered_at, file_name"
    ))?;
    let mut rows = statement.query((iso_utc(span.start), iso_utc(span.end)))?;
    let mut answered = Answered::default();
    while let Some(row) = rows.next()? {
        match read_recording(row)? {
            Ok(recording) => answered.recordings.push(recording),
            Err(file_name) => answered.unreadable.push(file_name),
        }
    }
    Ok(answered)
}

/// One row, or its file name when its answer time is not a time.
fn read_recording(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Recording, String>> {
    let file_name: String = row.get(0)?;
    let Some(answered_at) = parse_time(row.get_ref(5)?.as_str()?) else {
        return Ok(Err(file_name));
    };
    let ended_at: Option<String> = row.get(6)?;
    Ok(Ok(Recording {
        file_name,
        directory: row.get(1)?,
        status: Status::parse(row.get_ref(2)?.as_str()?),
        source: row.get(3)?,
        call_type: row.get(4)?,
        answered_at,
        ended_at: ended_at.as_deref().and_then(parse_time),
        duration_ms: row.get(7)?,
        end_reason: row.get(8)?,
        transaction_id: row.get(9)?,
        caller_number: row.get(10)?,
        called_number: row.get(11)?,
        agent_name: row.get(12)?,
        customer_number: row.get(13)?,
        phone_channel: row.get(14)?,
        queue: row.get(15)?,
        queue_name: row.get(16)?,
        case_id: row.get(17)?,
        account: row.get(18)?,
        external_variable_1: row.get(19)?,
        external_variable_2: row.get(20)?,
        outdial_code: row.get(21)?,
        wrap_up_code: row.get(22)?,
        codec: row.get(23)?,
        sample_rate: row.get(24)?,
        channels: row.get(25)?,
        format: row.get(26)?,
        size_bytes: row.get(27)?,
        sha256: row.get(28)?,
        caller_packets: row.get(29)?,
        caller_lost: row.get(30)?,
        caller_jitter_ms: row.get(31)?,
        callee_packets: row.get(32)?,
        callee_lost: row.get(33)?,
        callee_jitter_ms: row.get(34)?,
        raw_media_file: row.get(35)?,
        legal_hold: row.get::<_, i64>(36)? != 0,
        hold_count: row.get(37)?,
        hold_ms: row.get(38)?,
    }))
}

fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// Whether any recording was answered within `span`.
pub(crate) fn any_answered_in(conn: &Connection, span: &DaySpan) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM recordings WHERE answered_at >= ?1 AND answered_at < ?2)",
    )?
    .query_row((iso_utc(span.start), iso_utc(span.end)), |row| row.get(0))
}

/// Whether local `day` is under a legal hold.
pub(crate) fn is_day_held(conn: &Connection, day: Date) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM legal_hold_days WHERE day = ?1")?
        .query_row([day.to_string()], |_| Ok(()))
        .optional()?
        .is_some())
}
