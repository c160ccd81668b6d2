//! When each day's index is written and when retention runs: decisions only, no I/O and no
//! clock. The service drives it once a minute:
//!
//! ```text
//! let window = schedule.candidates(now, tz);        // days that may be due
//! let known = Known { indexed, with_recordings };   // looked up for those days
//! for day in schedule.poll_due(now, tz, &known) {
//!     let report = generate_day(..day..);
//!     schedule.handle_indexed(now, day, report.in_progress.len());
//! }
//! if let Some(today) = schedule.poll_retention(now, tz, retention_days) {
//!     apply_retention(..today..);
//!     schedule.handle_retention_done(today, retention_days);
//! }
//! ```
//!
//! - A day is indexed once it has ended: in the first hour of the next local day, when the
//!   service wakes after local midnight.
//! - Catching up after the appliance was off: the day just ended is due whenever it has no
//!   index (header-only if it had no calls); the [`CATCH_UP_DAYS`] before it are due when they
//!   have recordings but no index. Older days wait for `tapline index --date`.
//! - A day indexed while some of its calls were still being recorded (a call across
//!   midnight) is indexed again every [`RETRY_IN_PROGRESS`] until none is, for at most
//!   [`RETRY_FOR`].
//! - Retention runs once a local day, after the indexes, and at start-up; and again at once
//!   when the retention days in force change (an administrator saved another value).

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::day::local_day;

/// Days before yesterday that start-up catches up on.
pub const CATCH_UP_DAYS: i32 = 7;
/// How often a day with calls still being recorded is indexed again.
pub const RETRY_IN_PROGRESS: SignedDuration = SignedDuration::from_mins(10);
/// How long after its first index a day is indexed again for calls still being recorded.
/// Longer calls are not calls but recordings a crash left open; the recorder's repair at the
/// next start settles them, and `tapline index --date` writes the day again.
pub const RETRY_FOR: SignedDuration = SignedDuration::from_hours(24);

/// What the I/O side found out about the [`Schedule::candidates`] days.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Local days whose brief index file exists.
    pub indexed: BTreeSet<Date>,
    /// Local days with at least one recording.
    pub with_recordings: BTreeSet<Date>,
}

/// The service's memory between wakes. Lost on restart, which costs at most one more
/// retention run and the retries of a day with calls across midnight.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Days indexed while calls were in progress: when first indexed, when to look again.
    unsettled: BTreeMap<Date, (Timestamp, Timestamp)>,
    /// The local day retention last ran on, and with how many days.
    retention_ran: Option<(Date, u32)>,
}

impl Schedule {
    /// The days [`poll_due`](Self::poll_due) may return at `now`, oldest first: the
    /// [`CATCH_UP_DAYS`] before yesterday, and yesterday.
    pub fn candidates(&self, now: Timestamp, tz: &TimeZone) -> Vec<Date> {
        let yesterday = yesterday(now, tz);
        (0..=CATCH_UP_DAYS)
            .rev()
            .filter_map(|back| yesterday.checked_sub(back.days()).ok())
            .collect()
    }

    /// The local days whose index is due at `now`, oldest first.
    pub fn poll_due(&self, now: Timestamp, tz: &TimeZone, known: &Known) -> Vec<Date> {
        let yesterday = yesterday(now, tz);
        let mut due = BTreeSet::new();
        for day in self.candidates(now, tz) {
            let missing = !known.indexed.contains(&day);
            if missing && (day == yesterday || known.with_recordings.contains(&day)) {
                due.insert(day);
            }
        }
        for (day, (_, next)) in &self.unsettled {
            if *next <= now {
                due.insert(*day);
            }
        }
        due.into_iter().collect()
    }

    /// A day was indexed at `now` with `in_progress` calls left out as still being recorded.
    pub fn handle_indexed(&mut self, now: Timestamp, day: Date, in_progress: usize) {
        if in_progress == 0 {
            self.unsettled.remove(&day);
            return;
        }
        let first = self.unsettled.get(&day).map_or(now, |(first, _)| *first);
        if now.duration_since(first) >= RETRY_FOR {
            tracing::warn!(
                day = %day,
                calls = in_progress,
                "calls still marked as being recorded a day later are left out of the index"
            );
            self.unsettled.remove(&day);
            return;
        }
        let next = now.checked_add(RETRY_IN_PROGRESS).unwrap_or(now);
        self.unsettled.insert(day, (first, next));
    }

    /// The local day to apply retention for, if it has not run yet today with
    /// `retention_days`.
    pub fn poll_retention(
        &self,
        now: Timestamp,
        tz: &TimeZone,
        retention_days: u32,
    ) -> Option<Date> {
        let today = local_day(now, tz);
        (self.retention_ran != Some((today, retention_days))).then_some(today)
    }

    /// Retention ran for local day `today` with `retention_days`.
    pub fn handle_retention_done(&mut self, today: Date, retention_days: u32) {
        self.retention_ran = Some((today, retention_days));
    }
}

fn yesterday(now: Timestamp, tz: &TimeZone) -> Date {
    let today = local_day(now, tz);
    today.yesterday().unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn new_york() -> TimeZone {
        TimeZone::get("America/New_York").expect("zone")
    }

    /// `local` (a wall time in New York) as an instant.
    fn at(local: &str) -> Timestamp {
        let civil: jiff::civil::DateTime = local.parse().expect("civil time");
        civil.to_zoned(new_york()).expect("exists").timestamp()
    }

    fn known(indexed: &[Date], with_recordings: &[Date]) -> Known {
        Known {
            indexed: indexed.iter().copied().collect(),
            with_recordings: with_recordings.iter().copied().collect(),
        }
    }

    fn check(schedule: &Schedule, now: &str, known: &Known, expected: &[Date]) {
        assert_eq!(
            schedule.poll_due(at(now), &new_york(), known),
            expected,
            "at {now}"
        );
    }

    #[test]
    fn the_day_just_ended_is_due_in_the_first_hour_of_the_next() {
        let schedule = Schedule::default();
        let day = date(2026, 3, 7);
        let nothing = known(&[], &[]);
        // Not before it has ended, even a second before midnight.
        check(
            &schedule,
            "2026-03-07T23:59:59",
            &known(&[date(2026, 3, 6)], &[day]),
            &[],
        );
        // Right after midnight, with or without calls (an empty day gets a header-only file).
        check(
            &schedule,
            "2026-03-08T00:00:30",
            &known(&[date(2026, 3, 6)], &[day]),
            &[day],
        );
        check(&schedule, "2026-03-08T00:00:30", &nothing, &[day]);
        // Once written, nothing more is due.
        check(
            &schedule,
            "2026-03-08T00:01:30",
            &known(&[day], &[day]),
            &[],
        );
    }

    #[test]
    fn the_first_hour_follows_local_midnight_across_daylight_saving() {
        let schedule = Schedule::default();
        // 2026-03-08 lasts 23 hours in New York; 2026-11-01 lasts 25.
        check(
            &schedule,
            "2026-03-09T00:00:10",
            &known(&[], &[]),
            &[date(2026, 3, 8)],
        );
        check(
            &schedule,
            "2026-03-08T23:59:50",
            &known(&[date(2026, 3, 7)], &[]),
            &[],
        );
        check(
            &schedule,
            "2026-11-02T00:00:10",
            &known(&[], &[]),
            &[date(2026, 11, 1)],
        );
        check(
            &schedule,
            "2026-11-01T23:59:50",
            &known(&[date(2026, 10, 31)], &[]),
            &[],
        );
    }

    #[test]
    fn start_up_catches_up_on_days_with_recordings_but_no_index() {
        let schedule = Schedule::default();
        let now = "2026-03-20T09:30:00";
        let known = known(
            &[date(2026, 3, 15)],
            &[
                date(2026, 3, 11), // too old: 8 days before yesterday
                date(2026, 3, 12), // the oldest caught up
                date(2026, 3, 15), // already indexed
                date(2026, 3, 18),
                date(2026, 3, 20), // today: not over yet
            ],
        );
        // Yesterday has no recordings but is still due: the day just ended always gets a file.
        check(
            &schedule,
            now,
            &known,
            &[date(2026, 3, 12), date(2026, 3, 18), date(2026, 3, 19)],
        );
        let window = schedule.candidates(at(now), &new_york());
        assert_eq!(window.first(), Some(&date(2026, 3, 12)));
        assert_eq!(window.last(), Some(&date(2026, 3, 19)));
        assert_eq!(window.len(), 8);
    }

    #[test]
    fn days_with_calls_in_progress_are_written_again_until_they_are_settled() {
        let mut schedule = Schedule::default();
        let day = date(2026, 3, 7);
        let indexed = known(&[day], &[day]);
        schedule.handle_indexed(at("2026-03-08T00:00:30"), day, 2);
        check(&schedule, "2026-03-08T00:05:00", &indexed, &[]);
        check(&schedule, "2026-03-08T00:10:30", &indexed, &[day]);
        schedule.handle_indexed(at("2026-03-08T00:10:30"), day, 1);
        check(&schedule, "2026-03-08T00:15:00", &indexed, &[]);
        schedule.handle_indexed(at("2026-03-08T00:20:30"), day, 0);
        check(&schedule, "2026-03-08T05:00:00", &indexed, &[]);

        // A call left "recording" by a crash is given up on after a day (24 hours; this
        // Sunday has 23).
        let both = known(&[day, date(2026, 3, 8)], &[day]);
        schedule.handle_indexed(at("2026-03-08T00:00:30"), day, 1);
        schedule.handle_indexed(at("2026-03-09T00:00:40"), day, 1);
        check(&schedule, "2026-03-09T00:10:50", &both, &[day]);
        schedule.handle_indexed(at("2026-03-09T01:00:40"), day, 1);
        check(&schedule, "2026-03-09T12:00:00", &both, &[]);
    }

    #[test]
    fn retention_runs_at_start_up_and_then_once_a_local_day() {
        let mut schedule = Schedule::default();
        let tz = new_york();
        let today = date(2026, 3, 8);
        assert_eq!(
            schedule.poll_retention(at("2026-03-08T14:00:00"), &tz, 30),
            Some(today)
        );
        schedule.handle_retention_done(today, 30);
        assert_eq!(
            schedule.poll_retention(at("2026-03-08T23:59:00"), &tz, 30),
            None
        );
        assert_eq!(
            schedule.poll_retention(at("2026-03-09T00:00:30"), &tz, 30),
            Some(date(2026, 3, 9))
        );
    }

    #[test]
    fn retention_runs_again_when_its_days_change() {
        let mut schedule = Schedule::default();
        let tz = new_york();
        let today = date(2026, 3, 8);
        schedule.handle_retention_done(today, 30);
        let later = at("2026-03-08T15:00:00");
        assert_eq!(schedule.poll_retention(later, &tz, 30), None);
        assert_eq!(schedule.poll_retention(later, &tz, 7), Some(today));
        schedule.handle_retention_done(today, 7);
        assert_eq!(schedule.poll_retention(later, &tz, 7), None);
        assert_eq!(
            schedule.poll_retention(later, &tz, 0),
            Some(today),
            "keeping for ever is a change too"
        );
    }
}
