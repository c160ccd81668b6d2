//! Local tenant days: the UTC instants each spans, and the names of their files.
//!
//! A local day is [local 00:00, local 00:00 of the next day), converted with the tenant's time
//! zone, so it lasts 23 or 25 hours on the days daylight saving starts or ends. Where a zone
//! skips midnight itself, the day starts at its first instant that exists. Nothing here does
//! I/O or reads a clock.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::IndexError;

/// A local tenant day and the UTC instants it covers: `start` included, `end` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaySpan {
    pub day: Date,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl DaySpan {
    /// The span of local `day` in `tz`.
    pub fn of(day: Date, tz: &TimeZone) -> Result<DaySpan, IndexError> {
        let out_of_range = |source| IndexError::DayOutOfRange {
            day,
            time_zone: tz.iana_name().unwrap_or("(unnamed)").to_owned(),
            source,
        };
        let next = day.tomorrow().map_err(out_of_range)?;
        Ok(DaySpan {
            day,
            start: start_of(day, tz).map_err(out_of_range)?,
            end: start_of(next, tz).map_err(out_of_range)?,
        })
    }

    /// Whether `at` falls on this day.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// How long the day lasts: 24 hours, or 23 or 25 on a daylight-saving change.
    pub fn length(&self) -> jiff::SignedDuration {
        self.end.duration_since(self.start)
    }
}

/// The first instant of local `day`. jiff's "compatible" choice for a wall time that falls
/// in a gap is the instant just after the gap, and for a repeated wall time the earlier
/// instant: both the first instant of the day.
fn start_of(day: Date, tz: &TimeZone) -> Result<Timestamp, jiff::Error> {
    Ok(day.to_zoned(tz.clone())?.timestamp())
}

/// The local day `at` falls on.
pub fn local_day(at: Timestamp, tz: &TimeZone) -> Date {
    tz.to_datetime(at).date()
}

/// Whether local `day` is over at `now`: only then is its index complete.
pub fn has_ended(day: Date, tz: &TimeZone, now: Timestamp) -> bool {
    local_day(now, tz) > day
}

/// `Iyyyymmdd.csv`, the brief index of local `day`.
pub fn brief_file_name(day: Date) -> String {
    format!("I{}.csv", compact(day))
}

/// `Iyyyymmdd_detailed.csv`, the detailed index of local `day`.
pub fn detailed_file_name(day: Date) -> String {
    format!("I{}_detailed.csv", compact(day))
}

/// `Syyyymmdd`, the directory of recordings answered on UTC `day`, which also holds a copy of
/// the index files of local `day`.
pub fn day_directory(day: Date) -> String {
    format!("S{}", compact(day))
}

/// The local day a brief index file is for, if `name` is one (`Iyyyymmdd.csv`).
pub fn parse_brief_file_name(name: &str) -> Option<Date> {
    name.strip_prefix('I')?
        .strip_suffix(".csv")
        .and_then(parse_compact)
}

/// The local day an index file of either kind is for.
pub fn parse_index_file_name(name: &str) -> Option<Date> {
    let stem = name.strip_prefix('I')?.strip_suffix(".csv")?;
    parse_compact(stem.strip_suffix("_detailed").unwrap_or(stem))
}

/// The UTC day an `S` directory is for, if `name` is one (`Syyyymmdd`).
pub fn parse_day_directory(name: &str) -> Option<Date> {
    name.strip_prefix('S').and_then(parse_compact)
}

fn compact(day: Date) -> String {
    format!("{:04}{:02}{:02}", day.year(), day.month(), day.day())
}

fn parse_compact(digits: &str) -> Option<Date> {
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| digits[range].parse::<i16>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// ISO 8601 in UTC with microseconds: the form `recordings` rows store times in, so that
/// comparing the text compares the instants.
pub(crate) fn iso_utc(at: Timestamp) -> String {
    tapline_store::utc_text(at)
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use jiff::civil::date;

    use super::*;

    fn check_span(zone: &str, day: Date, start_utc: &str, hours: i64) {
        let tz = TimeZone::get(zone).expect("zone in the system database");
        let span = DaySpan::of(day, &tz).expect("span");
        assert_eq!(span.start.to_string(), start_utc, "{zone} {day}");
        assert_eq!(
            span.length(),
            SignedDuration::from_hours(hours),
            "{zone} {day}"
        );
    }

    #[test]
    fn days_span_the_utc_instants_of_local_midnights() {
        check_span("UTC", date(2026, 6, 6), "2026-06-06T00:00:00Z", 24);
        check_span(
            "America/Los_Angeles",
            date(2026, 6, 6),
            "2026-06-06T07:00:00Z",
            24,
        );
        check_span("Asia/Kolkata", date(2026, 6, 6), "2026-06-05T18:30:00Z", 24);
        check_span(
            "Australia/Sydney",
            date(2026, 6, 6),
            "2026-06-05T14:00:00Z",
            24,
        );
        // Daylight saving starts (2 a.m. becomes 3 a.m.) and ends (2 a.m. becomes 1 a.m.).
        check_span(
            "America/New_York",
            date(2026, 3, 8),
            "2026-03-08T05:00:00Z",
            23,
        );
        check_span(
            "America/New_York",
            date(2026, 11, 1),
            "2026-11-01T04:00:00Z",
            25,
        );
        // Southern hemisphere: ends in April, starts in October.
        check_span(
            "Australia/Sydney",
            date(2026, 4, 5),
            "2026-04-04T13:00:00Z",
            25,
        );
        check_span(
            "Australia/Sydney",
            date(2026, 10, 4),
            "2026-10-03T14:00:00Z",
            23,
        );
        // Santiago moves its clocks at midnight: 2026-09-06 begins at 01:00, skipping 00:00.
        check_span(
            "America/Santiago",
            date(2026, 9, 6),
            "2026-09-06T04:00:00Z",
            23,
        );
    }

    #[test]
    fn names_round_trip() {
        let day = date(2026, 3, 8);
        assert_eq!(brief_file_name(day), "I20260308.csv");
        assert_eq!(detailed_file_name(day), "I20260308_detailed.csv");
        assert_eq!(day_directory(day), "S20260308");
        assert_eq!(parse_brief_file_name("I20260308.csv"), Some(day));
        assert_eq!(parse_brief_file_name("I20260308_detailed.csv"), None);
        assert_eq!(parse_index_file_name("I20260308_detailed.csv"), Some(day));
        assert_eq!(parse_day_directory("S20260308"), Some(day));
        for not_ours in [
            "I20261308.csv",
            "I2026030.csv",
            "S2026030x",
            ".I20260308.csv.1.tmp",
        ] {
            assert_eq!(parse_index_file_name(not_ours), None, "{not_ours}");
            assert_eq!(parse_day_directory(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn times_are_written_as_rows_store_them() {
        let at: Timestamp = "2026-11-21T23:59:59.5Z".parse().expect("timestamp");
        assert_eq!(iso_utc(at), "2026-11-21T23:59:59.500000Z");
        assert_eq!(
            iso_utc("2026-03-08T05:00:00Z".parse().expect("timestamp")),
            "2026-03-08T05:00:00.000000Z"
        );
    }
}
