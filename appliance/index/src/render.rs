//! A day's rows, as the bytes of its two index files. Pure: the same rows, checks and time
//! zone always give the same bytes, which is what makes regenerating a day idempotent.
//!
//! The files are RFC 4180 CSV in UTF-8 without a byte-order mark: CRLF after every line, a
//! field quoted when it holds a comma, a double quote, CR or LF, and a double quote inside a
//! quoted field written twice. Names like `Smith, "Jo"` come back unchanged from Python's
//! `csv` module, LibreOffice and Excel.

use std::borrow::Cow;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::check::{FileCheck, FileStatus};
use crate::query::{Recording, Status};

/// The brief index's header row, in its column order. The detailed index starts with the
/// same columns.
pub const BRIEF_HEADER: [&str; 21] = [
    "CALL TYPE",
    "START TIME",
    "STOP TIME",
    "AGENT NAME",
    "CUSTOMER NUMBER",
    "PHONE CHANNEL",
    "CALLED NUMBER",
    "CASEID",
    "DURATION",
    "FILENAME",
    "DIRECTORY",
    "ACCOUNT",
    "START TIME UTC",
    "STOP TIME UTC",
    "QUEUE",
    "QUEUE NAME",
    "TRANSACTION ID",
    "EXTERNAL VARIABLE 1",
    "EXTERNAL VARIABLE 2",
    "OUTDIAL CODE",
    "WRAP UP CODE",
];

/// The columns the detailed index adds after [`BRIEF_HEADER`].
pub const DETAILED_EXTRA_HEADER: [&str; 19] = [
    "SIZE BYTES",
    "SHA256",
    "CODEC",
    "SAMPLE RATE",
    "CHANNELS",
    "FORMAT",
    "CALLER PACKETS",
    "CALLER LOST",
    "CALLER JITTER MS",
    "CALLEE PACKETS",
    "CALLEE LOST",
    "CALLEE JITTER MS",
    "SOURCE",
    "RAW MEDIA FILE",
    "END REASON",
    "HOLDS",
    "HOLD TIME",
    "LEGAL HOLD",
    "STATUS",
];

/// The two files of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub brief: Vec<u8>,
    pub detailed: Vec<u8>,
}

/// Renders a day's recordings, each with its file check, in the order given. Complete and
/// recovered recordings go in both files, failed ones in the detailed file only, and those
/// still being recorded in neither. `day_held` says the whole day is under a legal hold.
pub(crate) fn render(lines: &[(&Recording, FileCheck)], tz: &TimeZone, day_held: bool) -> Rendered {
    // About 250 and 450 bytes a line.
    let mut brief = writer(lines.len() * 256);
    let mut detailed = writer(lines.len() * 512);
    write(&mut brief, BRIEF_HEADER);
    write(
        &mut detailed,
        BRIEF_HEADER.iter().chain(&DETAILED_EXTRA_HEADER).copied(),
    );
    for (recording, check) in lines {
        if recording.status == Status::Recording {
            continue;
        }
        let common = brief_cells(recording, *check, tz);
        if matches!(recording.status, Status::Complete | Status::Recovered) {
            write(&mut brief, common.iter().map(AsRef::as_ref));
        }
        let extra = detailed_cells(recording, *check, day_held);
        write(
            &mut detailed,
            common.iter().chain(&extra).map(AsRef::as_ref),
        );
    }
    Rendered {
        brief: finish(brief),
        detailed: finish(detailed),
    }
}

fn writer(capacity: usize) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::with_capacity(capacity))
}

fn write<'a>(writer: &mut csv::Writer<Vec<u8>>, record: impl IntoIterator<Item = &'a str>) {
    // A Vec takes every write, and every line has its header's number of cells.
    writer
        .write_record(record)
        .expect("a CSV line of the header's width, written to memory");
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Vec<u8> {
    writer
        .into_inner()
        .expect("flushing CSV into memory cannot fail")
}

/// The cells of [`BRIEF_HEADER`] for one recording.
fn brief_cells<'a>(r: &'a Recording, check: FileCheck, tz: &TimeZone) -> [Cow<'a, str>; 21] {
    let stop = stop_time(r, check);
    let duration = match (r.duration_ms, stop) {
        (Some(ms), _) => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        (None, Some(stop)) => Some(stop.duration_since(r.answered_at).unsigned_abs()),
        (None, None) => None,
    };
    [
        text(&r.call_type),
        local_time(r.answered_at, tz).into(),
        stop.map(|t| local_time(t, tz)).unwrap_or_default().into(),
        text(&r.agent_name),
        text(customer_number(r)),
        text(&r.phone_channel),
        text(&r.called_number),
        text(&r.case_id),
        duration
            .map(hours_minutes_seconds)
            .unwrap_or_default()
            .into(),
        Cow::Borrowed(&r.file_name),
        Cow::Borrowed(&r.directory),
        text(&r.account),
        local_time(r.answered_at, &TimeZone::UTC).into(),
        stop.map(|t| local_time(t, &TimeZone::UTC))
            .unwrap_or_default()
            .into(),
        text(&r.queue),
        text(&r.queue_name),
        Cow::Borrowed(&r.transaction_id),
        text(&r.external_variable_1),
        text(&r.external_variable_2),
        text(&r.outdial_code),
        text(&r.wrap_up_code),
    ]
}

/// The cells of [`DETAILED_EXTRA_HEADER`] for one recording.
fn detailed_cells(r: &Recording, check: FileCheck, day_held: bool) -> [Cow<'_, str>; 19] {
    let held = if r.legal_hold || day_held {
        "yes"
    } else {
        "no"
    };
    [
        number(r.size_bytes),
        text(&r.sha256),
        text(&r.codec),
        r.sample_rate.to_string().into(),
        r.channels.to_string().into(),
        Cow::Borrowed(&r.format),
        number(r.caller_packets),
        number(r.caller_lost),
        milliseconds(r.caller_jitter_ms),
        number(r.callee_packets),
        number(r.callee_lost),
        milliseconds(r.callee_jitter_ms),
        Cow::Borrowed(&r.source),
        text(&r.raw_media_file),
        text(&r.end_reason),
        number(r.hold_count),
        match r.hold_ms {
            Some(ms) => {
                hours_minutes_seconds(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).into()
            }
            None => Cow::Borrowed(""),
        },
        Cow::Borrowed(held),
        Cow::Borrowed(check.status.as_str()),
    ]
}

/// When the call ended: its row's end, or for a recording recovered after a crash (whose row
/// has none) the answer plus the audio its header counts.
fn stop_time(r: &Recording, check: FileCheck) -> Option<Timestamp> {
    if let Some(ended) = r.ended_at {
        return Some(ended);
    }
    let audio = check.audio.filter(|_| check.status != FileStatus::Failed)?;
    r.answered_at
        .checked_add(jiff::SignedDuration::try_from(audio).ok()?)
        .ok()
}

/// The customer's number: the metadata field when a header filled it, otherwise the party
/// that is not the agent, the caller of an inbound call or the number an outbound call
/// dialled.
fn customer_number(r: &Recording) -> &Option<String> {
    if r.customer_number.is_some() {
        return &r.customer_number;
    }
    let outbound = r
        .call_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("outbound"));
    if outbound {
        &r.called_number
    } else {
        &r.caller_number
    }
}

fn text(value: &Option<String>) -> Cow<'_, str> {
    Cow::Borrowed(value.as_deref().unwrap_or(""))
}

fn number(value: Option<i64>) -> Cow<'static, str> {
    value.map(|n| n.to_string()).unwrap_or_default().into()
}

fn milliseconds(value: Option<f64>) -> Cow<'static, str> {
    value
        .map(|ms| format!("{ms:.2}"))
        .unwrap_or_default()
        .into()
}

/// `YYYY-MM-DD HH:MM:SS` in `tz`, to the second (truncated, as the file names are).
fn local_time(at: Timestamp, tz: &TimeZone) -> String {
    let t = tz.to_datetime(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `HH:MM:SS`, whole seconds; the hours go past 24 for a call that long.
fn hours_minutes_seconds(length: Duration) -> String {
    let seconds = length.as_secs();
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(file_name: &str, answered: &str) -> Recording {
        Recording {
            file_name: file_name.to_owned(),
            directory: "S20260606".to_owned(),
            source: "span".to_owned(),
            format: "pcm16".to_owned(),
            sample_rate: 8000,
            channels: 2,
            transaction_id: "abc@host".to_owned(),
            answered_at: answered.parse().expect("timestamp"),
            ..Recording::default()
        }
    }

    fn ok() -> FileCheck {
        FileCheck {
            status: FileStatus::Ok,
            audio: None,
        }
    }

    /// Renders `recordings` in Los Angeles time and returns the brief file's lines.
    fn brief_lines(recordings: &[Recording]) -> Vec<String> {
        let tz = TimeZone::get("America/Los_Angeles").expect("zone");
        let lines: Vec<_> = recordings.iter().map(|r| (r, ok())).collect();
        let rendered = render(&lines, &tz, false);
        let text = String::from_utf8(rendered.brief).expect("UTF-8");
        assert!(text.ends_with("\r\n"));
        text.split_terminator("\r\n").map(str::to_owned).collect()
    }

    #[test]
    fn header_rows_are_exact() {
        let lines = brief_lines(&[]);
        assert_eq!(
            lines,
            [
                "CALL TYPE,START TIME,STOP TIME,AGENT NAME,CUSTOMER NUMBER,PHONE CHANNEL,\
              CALLED NUMBER,CASEID,DURATION,FILENAME,DIRECTORY,ACCOUNT,START TIME UTC,\
              STOP TIME UTC,QUEUE,QUEUE NAME,TRANSACTION ID,EXTERNAL VARIABLE 1,\
              EXTERNAL VARIABLE 2,OUTDIAL CODE,WRAP UP CODE"
            ]
        );
    }

    #[test]
    fn cells_are_quoted_only_when_they_must_be() {
        let check = |agent: &str, expected_cell: &str| {
            let mut r = recording("R202606061700000000.wav", "2026-06-06T17:00:00Z");
            r.agent_name = Some(agent.to_owned());
            let lines = brief_lines(&[r]);
            let line = lines[1..].join("\r\n");
            let expected = format!(
                ",2026-06-06 10:00:00,,{expected_cell},,,,,,R202606061700000000.wav,S20260606,,\
                 2026-06-06 17:00:00,,,,abc@host,,,,"
            );
            assert_eq!(line, expected, "agent {agent:?}");
        };
        check("Jo Smith", "Jo Smith");
        check("Smith, Jo", "\"Smith, Jo\"");
        check("Jo \"JJ\" Smith", "\"Jo \"\"JJ\"\" Smith\"");
        check("two\r\nlines", "\"two\r\nlines\"");
        check("José Müller", "José Müller");
        check(" padded ", " padded ");
    }

    #[test]
    fn times_durations_and_the_customer() {
        let mut inbound = recording("R202606061700000000.wav", "2026-06-06T17:00:00.900Z");
        inbound.ended_at = Some("2026-06-07T19:01:02.100Z".parse().expect("timestamp"));
        inbound.duration_ms = Some(93_662_200);
        inbound.call_type = Some("Inbound".to_owned());
        inbound.caller_number = Some("+14155550100".to_owned());
        inbound.called_number = Some("8005550199".to_owned());
        let mut outbound = inbound.clone();
        outbound.call_type = Some("Outbound".to_owned());
        let lines = brief_lines(&[inbound, outbound]);
        let cells = |line: &str| line.split(',').map(str::to_owned).collect::<Vec<_>>();
        let inbound = cells(&lines[1]);
        assert_eq!(inbound[1], "2026-06-06 10:00:00");
        assert_eq!(inbound[2], "2026-06-07 12:01:02");
        assert_eq!(inbound[8], "26:01:02");
        assert_eq!(inbound[4], "+14155550100");
        assert_eq!(inbound[12], "2026-06-06 17:00:00");
        assert_eq!(inbound[13], "2026-06-07 19:01:02");
        assert_eq!(cells(&lines[2])[4], "8005550199");
    }

    #[test]
    fn a_recovered_recording_stops_where_its_audio_does() {
        let mut r = recording("R202606061700000000.wav", "2026-06-06T17:00:00Z");
        r.status = Status::Recovered;
        let check = FileCheck {
            status: FileStatus::Ok,
            audio: Some(Duration::from_millis(61_500)),
        };
        let tz = TimeZone::get("America/Los_Angeles").expect("zone");
        let rendered = render(&[(&r, check)], &tz, false);
        let text = String::from_utf8(rendered.brief).expect("UTF-8");
        let line = text.split("\r\n").nth(1).expect("one line");
        assert!(
            line.starts_with(",2026-06-06 10:00:00,2026-06-06 10:01:01,,,,,,00:01:01,"),
            "{line}"
        );
    }

    #[test]
    fn statuses_decide_the_file() {
        let tz = TimeZone::UTC;
        let mut failed = recording("R202606061700000001.wav", "2026-06-06T17:00:00Z");
        failed.status = Status::Failed;
        let mut in_progress = recording("R202606061700000002.wav", "2026-06-06T17:00:00Z");
        in_progress.status = Status::Recording;
        let complete = recording("R202606061700000000.wav", "2026-06-06T17:00:00Z");
        let failed_check = FileCheck {
            status: FileStatus::Failed,
            audio: None,
        };
        let rendered = render(
            &[
                (&complete, ok()),
                (&failed, failed_check),
                (&in_progress, ok()),
            ],
            &tz,
            true,
        );
        let brief = String::from_utf8(rendered.brief).expect("UTF-8");
        let detailed = String::from_utf8(rendered.detailed).expect("UTF-8");
        assert_eq!(brief.lines().count(), 2);
        let detailed: Vec<&str> = detailed.split_terminator("\r\n").collect();
        assert_eq!(detailed.len(), 3);
        assert!(
            detailed[0]
                .ends_with(",SOURCE,RAW MEDIA FILE,END REASON,HOLDS,HOLD TIME,LEGAL HOLD,STATUS")
        );
        assert!(detailed[1].ends_with(",span,,,,,yes,ok"), "{}", detailed[1]);
        assert!(
            detailed[2].ends_with(",span,,,,,yes,failed"),
            "{}",
            detailed[2]
        );
    }
}
