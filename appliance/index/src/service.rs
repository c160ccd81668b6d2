//! The supervised service: once a minute, the index files that are due, then retention.
//!
//! The work blocks (SQLite, files) and runs on `spawn_blocking`; the [`Schedule`] decides,
//! this shell only reads the clock, looks up what the schedule asks about and sleeps. On
//! shutdown the pass under way stops at its next day (or, removing files, within a few
//! hundred files) and the service returns.
//!
//! Each pass works with the settings in force ([`InForce`]): the tenant's time zone and the
//! retention days of the configuration file, unless the settings page overrides them
//! (`tapline_store::settings`). Between passes the service looks at them every
//! [`SETTINGS_INTERVAL`] and starts a pass at once when they change, so a shorter retention
//! saved in the web UI is applied within seconds, not at the next local midnight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tapline_runtime::supervisor::error_chain;
use tapline_runtime::{BoxError, CancellationToken, ServiceContext};
use tapline_store::{Store, settings};

use crate::day::DaySpan;
use crate::schedule::{Known, Schedule};
use crate::{
    DayIndex, IndexError, RetentionReport, apply_retention, generate_day, publish, query,
    recordings_root,
};

/// How long the service sleeps between passes.
pub const WAKE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the settings in force are looked at between passes (one small read).
pub const SETTINGS_INTERVAL: Duration = Duration::from_secs(2);

/// What the service works on.
#[derive(Debug, Clone)]
pub struct IndexJob {
    pub store: Arc<Store>,
    /// The SFTP root, `<data_dir>/recordings`.
    pub root: PathBuf,
    /// The configuration file's `tenant.timezone`: what a day is, unless overridden.
    pub time_zone: TimeZone,
    /// The configuration file's `storage.retention_days` (0 keeps recordings for ever),
    /// unless overridden.
    pub retention_days: u32,
}

/// The settings a pass works with: the file's, or the settings page's overrides of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    /// What a local day is.
    pub time_zone: TimeZone,
    /// 0 keeps recordings for ever.
    pub retention_days: u32,
}

impl IndexJob {
    /// The job for the appliance `config` describes, on its open database.
    pub fn new(store: Arc<Store>, config: &tapline_config::Config) -> IndexJob {
        IndexJob {
            store,
            root: recordings_root(&config.storage.data_dir),
            time_zone: config.tenant.timezone.clone(),
            retention_days: config.storage.retention_days,
        }
    }

    /// The settings in force now.
    pub fn in_force(&self) -> Result<InForce, IndexError> {
        self.store.read(|conn| {
            Ok(InForce {
                time_zone: settings::time_zone(conn, &self.time_zone)?,
                retention_days: settings::retention_days(conn, self.retention_days)?,
            })
        })
    }

    /// The settings in force, or the file's when the database cannot say (logged).
    fn in_force_or_file(&self) -> InForce {
        self.in_force().unwrap_or_else(|err| {
            tracing::error!(
                error = %error_chain(&err),
                "cannot read the settings in force; using the configuration file's"
            );
            InForce {
                time_zone: self.time_zone.clone(),
                retention_days: self.retention_days,
            }
        })
    }

    /// One pass at `now` with the settings in force: every index due, then retention if it
    /// has not run today with these settings. A day that fails is logged and does not stop
    /// the others or retention.
    pub fn run_pass(
        &self,
        now: Timestamp,
        schedule: &mut Schedule,
        cancel: &CancellationToken,
    ) -> PassReport {
        self.run_pass_with(now, &self.in_force_or_file(), schedule, cancel)
    }

    /// [`run_pass`](Self::run_pass) with the settings `in_force`.
    pub fn run_pass_with(
        &self,
        now: Timestamp,
        in_force: &InForce,
        schedule: &mut Schedule,
        cancel: &CancellationToken,
    ) -> PassReport {
        let tz = &in_force.time_zone;
        let mut report = PassReport::default();
        match self.known(now, tz, schedule) {
            Ok(known) => {
                for day in schedule.poll_due(now, tz, &known) {
                    if cancel.is_cancelled() {
                        return report;
                    }
                    match generate_day(&self.store, &self.root, tz, day) {
                        Ok(index) => {
                            schedule.handle_indexed(now, day, index.in_progress.len());
                            report.indexed.push(index);
                        }
                        Err(err) => tracing::error!(
                            day = %day,
                            error = %error_chain(&err),
                            "cannot write the daily index; trying again in a minute"
                        ),
                    }
                }
            }
            Err(err) => tracing::error!(
                error = %error_chain(&err),
                "cannot tell which daily indexes are due; trying again in a minute"
            ),
        }
        if cancel.is_cancelled() {
            return report;
        }
        let days = in_force.retention_days;
        let Some(today) = schedule.poll_retention(now, tz, days) else {
            return report;
        };
        match apply_retention(&self.store, &self.root, tz, days, today, cancel) {
            Ok(retention) => {
                if !retention.interrupted {
                    schedule.handle_retention_done(today, days);
                }
                report.retention = Some(retention);
            }
            Err(err) => tracing::error!(
                error = %error_chain(&err),
                "retention failed; trying again in a minute"
            ),
        }
        report
    }

    /// What the schedule needs to know about the days it may find due.
    fn known(
        &self,
        now: Timestamp,
        tz: &TimeZone,
        schedule: &Schedule,
    ) -> Result<Known, IndexError> {
        let window = schedule.candidates(now, tz);
        let indexed = publish::indexed_days(&self.root)?;
        let unindexed: Vec<DaySpan> = window
            .into_iter()
            .filter(|day| !indexed.contains(day))
            .map(|day| DaySpan::of(day, tz))
            .collect::<Result<_, _>>()?;
        // Usually empty: every day of the window already has its index.
        let with_recordings = self.store.read(|conn| {
            let mut days = std::collections::BTreeSet::new();
            for span in &unindexed {
                if query::any_answered_in(conn, span)? {
                    days.insert(span.day);
                }
            }
            Ok::<_, IndexError>(days)
        })?;
        Ok(Known {
            indexed,
            with_recordings,
        })
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// The days indexed, oldest first.
    pub indexed: Vec<DayIndex>,
    /// Retention's run, when it ran.
    pub retention: Option<RetentionReport>,
}

/// The daily index service: ready at once, a pass now and then every [`WAKE_INTERVAL`], or
/// sooner when the settings in force change, until shutdown.
pub async fn run(ctx: ServiceContext, job: IndexJob) -> Result<(), BoxError> {
    ctx.set_ready();
    let mut schedule = Schedule::default();
    loop {
        let pass_job = job.clone();
        let cancel = ctx.shutdown().clone();
        // The pass watches the token itself, so awaiting it on shutdown is short.
        let (returned, used) = tokio::task::spawn_blocking(move || {
            let in_force = pass_job.in_force_or_file();
            pass_job.run_pass_with(Timestamp::now(), &in_force, &mut schedule, &cancel);
            (schedule, in_force)
        })
        .await?;
        schedule = returned;
        let next_pass = tokio::time::Instant::now() + WAKE_INTERVAL;
        loop {
            let wake = next_pass.min(tokio::time::Instant::now() + SETTINGS_INTERVAL);
            tokio::select! {
                () = ctx.shutdown().cancelled() => return Ok(()),
                () = tokio::time::sleep_until(wake) => {}
            }
            if wake >= next_pass {
                break;
            }
            let check_job = job.clone();
            let now_in_force = tokio::task::spawn_blocking(move || check_job.in_force()).await?;
            // An unreadable database is logged by the pass itself, a minute on at most.
            if now_in_force.is_ok_and(|now| now != used) {
                tracing::info!("settings changed in the web UI; indexing and retention run now");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_use_the_settings_pages_overrides_of_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(Store::open_in(dir.path()).expect("database"));
        let job = IndexJob {
            store: store.clone(),
            root: dir.path().join("recordings"),
            time_zone: TimeZone::UTC,
            retention_days: 90,
        };
        let file = InForce {
            time_zone: TimeZone::UTC,
            retention_days: 90,
        };
        assert_eq!(job.in_force().expect("readable"), file);
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES
                     ('storage.retention_days', '7', '2026-01-01T00:00:00.000Z', 'root'),
                     ('tenant.timezone', 'Asia/Tokyo', '2026-01-01T00:00:00.000Z', 'root')",
                    [],
                )
            })
            .expect("saved");
        let in_force = job.in_force().expect("readable");
        assert_eq!(in_force.retention_days, 7);
        assert_eq!(in_force.time_zone.iana_name(), Some("Asia/Tokyo"));
    }
}
