//! One local day's index files: read the day's rows, check each file, render, publish.

use std::path::{Path, PathBuf};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use tapline_store::Store;

use crate::check::{self, FileCheck};
use crate::day::DaySpan;
use crate::query::{self, Status};
use crate::{IndexError, publish, render};

/// File problems named one by one in the log; beyond this only their number is.
const PROBLEMS_LOGGED: usize = 20;

/// What [`generate_day`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayIndex {
    pub day: Date,
    /// Lines in the brief index: complete and recovered recordings.
    pub brief_lines: usize,
    /// Lines in the detailed index: those and the failed ones.
    pub detailed_lines: usize,
    /// Recordings of the day still being recorded, left out of both files.
    pub in_progress: Vec<String>,
    /// Recordings whose files did not pass the cheap check, with what was found.
    pub problems: Vec<(String, &'static str)>,
    /// Rows left out because their answer time is not a time.
    pub unreadable_rows: Vec<String>,
    /// Files replaced or created.
    pub written: Vec<PathBuf>,
    /// Files that already held these bytes.
    pub unchanged: Vec<PathBuf>,
}

/// Writes the brief and detailed index files of local `day` in `tz` under the SFTP `root`,
/// replacing any there. Safe to run again at any time: the same database and files give the
/// same bytes.
pub fn generate_day(
    store: &Store,
    root: &Path,
    tz: &TimeZone,
    day: Date,
) -> Result<DayIndex, IndexError> {
    let span = DaySpan::of(day, tz)?;
    let (answered, day_held) = store.read(|conn| {
        Ok::<_, IndexError>((
            query::answered_in(conn, &span)?,
            query::is_day_held(conn, day)?,
        ))
    })?;
    let (in_progress, finished): (Vec<_>, Vec<_>) = answered
        .recordings
        .iter()
        .partition(|r| r.status == Status::Recording);
    let checks = check::check_all(root, &finished);
    let lines: Vec<_> = finished.iter().copied().zip(checks).collect();
    let rendered = render::render(&lines, tz, day_held);
    let published = publish::publish_day(root, day, &rendered.brief, &rendered.detailed)?;

    let report = DayIndex {
        day,
        brief_lines: lines
            .iter()
            .filter(|(r, _)| matches!(r.status, Status::Complete | Status::Recovered))
            .count(),
        detailed_lines: lines.len(),
        in_progress: in_progress.iter().map(|r| r.file_name.clone()).collect(),
        problems: problems(&lines),
        unreadable_rows: answered.unreadable,
        written: published.written,
        unchanged: published.unchanged,
    };
    log(&report);
    Ok(report)
}

fn problems(lines: &[(&query::Recording, FileCheck)]) -> Vec<(String, &'static str)> {
    lines
        .iter()
        .filter(|(_, check)| check.status.is_problem())
        .map(|(r, check)| {
            (
                format!("{}/{}", r.directory, r.file_name),
                check.status.as_str(),
            )
        })
        .collect()
}

fn log(report: &DayIndex) {
    let day = report.day.to_string();
    for (file, problem) in report.problems.iter().take(PROBLEMS_LOGGED) {
        tracing::warn!(
            day,
            file,
            problem,
            "recording failed the index's file check"
        );
    }
    if report.problems.len() > PROBLEMS_LOGGED {
        tracing::warn!(
            day,
            more = report.problems.len() - PROBLEMS_LOGGED,
            "more recordings failed the index's file check; the detailed index lists them all"
        );
    }
    if !report.in_progress.is_empty() {
        tracing::info!(
            day,
            calls = report.in_progress.len(),
            first = report.in_progress[0],
            "calls still being recorded are left out of the index until it is written again"
        );
    }
    if !report.unreadable_rows.is_empty() {
        tracing::error!(
            day,
            rows = report.unreadable_rows.len(),
            first = report.unreadable_rows[0],
            "recordings whose answer time cannot be read are left out of the index"
        );
    }
    tracing::info!(
        day,
        brief_lines = report.brief_lines,
        detailed_lines = report.detailed_lines,
        written = report.written.len(),
        unchanged = report.unchanged.len(),
        "daily index generated"
    );
}
