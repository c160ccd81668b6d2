//! The daily index files, legal holds and retention.
//!
//! The SFTP root is `<data_dir>/recordings`. The recorder fills one `Syyyymmdd/` directory per
//! UTC day; this crate adds, for every *local tenant* day, two index files:
//!
//! - `Index/Iyyyymmdd.csv`, the brief index: one line per call answered in
//!   [local 00:00, next local 00:00), in the column order of [`BRIEF_HEADER`];
//! - `Index/Iyyyymmdd_detailed.csv`: the same columns, then file, media and status columns
//!   ([`DETAILED_EXTRA_HEADER`]);
//!
//! and a copy of both in `Syyyymmdd/` of the same date. Because the `S` directories are UTC
//! days, an index references recordings in two of them whenever the tenant is not on UTC.
//!
//! The parts, top-down:
//!
//! - [`service::run`], the supervised service: wakes once a minute, asks the [`Schedule`]
//!   which days are due, generates them and applies retention, on `spawn_blocking`.
//! - [`generate_day`]: one day's index files, from the database and a cheap check of each
//!   file (present, right size, readable WAV header), written atomically.
//! - [`apply_retention`]: removes recordings older than `storage.retention_days`, unless held.
//! - [`holds`]: legal holds on single calls and whole local days, each audited.
//!
//! The decisions are sans-IO and tested as such: [`day`] (local days and their UTC spans),
//! `render` (rows to CSV bytes), [`Schedule`] (which days are due now) and
//! [`retention::cutoff`]. Everything that touches files or the database is in `generate`,
//! `check`, `publish`, `query`, [`retention`] and [`holds`].
//!
//! **Index files are replaced atomically**: written to a temporary file in the same
//! directory, synced, renamed over the old one, and the directory synced. A reader sees the
//! old file or the new one, never part of one; generating a day again gives the same bytes.

mod check;
pub mod day;
mod generate;
pub mod holds;
mod publish;
mod query;
mod render;
pub mod retention;
pub mod schedule;
pub mod search;
pub mod service;

use std::path::{Path, PathBuf};

pub use generate::{DayIndex, generate_day};
pub use holds::{Actor, HoldChange, HoldError, hold_call, hold_day, release_call, release_day};
pub use render::{BRIEF_HEADER, DETAILED_EXTRA_HEADER};
pub use retention::{RetentionReport, apply_retention};
pub use schedule::Schedule;
pub use service::{IndexJob, run};

/// The `jiff` this crate speaks in ([`jiff::civil::Date`] for days), for callers that do not
/// depend on it themselves.
pub use jiff;

/// Name of the index directory under the SFTP root.
pub const INDEX_DIR: &str = "Index";

/// The SFTP root inside a data directory: where the `S` directories and `Index/` are.
pub fn recordings_root(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// What can stop a day's index or a retention pass. A problem with one recording's file is
/// not an error: it is reported in the detailed index's STATUS column and the log.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("database error")]
    Store(#[from] tapline_store::rusqlite::Error),
    #[error("cannot write the audit log")]
    Audit(#[from] tapline_audit::AuditError),
    #[error("{day} cannot be placed in time zone {time_zone}")]
    DayOutOfRange {
        day: jiff::civil::Date,
        time_zone: String,
        #[source]
        source: jiff::Error,
    },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl IndexError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| IndexError::Io {
            action,
            path,
            source,
        }
    }
}
