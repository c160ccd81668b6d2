//! The supervised service: once a minute, the index files that are due, then retention.
//!
//! The work blocks (SQLite, files) and runs on `spawn_blocking`; the [`Schedule`] decides,
//! this shell only reads the clock, looks up what the schedule asks about and sleeps. On
//! shutdown the pass under way stops at its next day (or, removing files, within a few
//! hundred files) and the service returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tapline_runtime::supervisor::error_chain;
use tapline_runtime::{BoxError, CancellationToken, ServiceContext};
use tapline_store::Store;

use crate::day::DaySpan;
use crate::schedule::{Known, Schedule};
use crate::{
    DayIndex, IndexError, RetentionReport, apply_retention, generate_day, publish, query,
    recordings_root,
};

/// How long the service sleeps between passes.
pub const WAKE_INTERVAL: Duration = Duration::from_secs(60);

/// What the service works on.
#[derive(Debug, Clone)]
pub struct IndexJob {
    pub store: Arc<Store>,
    /// The SFTP root, `<data_dir>/recordings`.
    pub root: PathBuf,
    /// The tenant's time zone: what a day is.
    pub time_zone: TimeZone,
    /// `storage.retention_days`; 0 keeps recordings for ever.
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

    /// One pass at `now`: every index due, then retention if it has not run today. A day
    /// that fails is logged and does not stop the others or retention.
    pub fn run_pass(
        &self,
        now: Timestamp,
        schedule: &mut Schedule,
        cancel: &CancellationToken,
    ) -> PassReport {
        let mut report = PassReport::default();
        match self.known(now, schedule) {
            Ok(known) => {
                for day in schedule.poll_due(now, &self.time_zone, &known) {
                    if cancel.is_cancelled() {
                        return report;
                    }
                    match generate_day(&self.store, &self.root, &self.time_zone, day) {
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
        let Some(today) = schedule.poll_retention(now, &self.time_zone) else {
            return report;
        };
        match apply_retention(
            &self.store,
            &self.root,
            &self.time_zone,
            self.retention_days,
            today,
            cancel,
        ) {
            Ok(retention) => {
                if !retention.interrupted {
                    schedule.handle_retention_done(today);
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
    fn known(&self, now: Timestamp, schedule: &Schedule) -> Result<Known, IndexError> {
        let window = schedule.candidates(now, &self.time_zone);
        let indexed = publish::indexed_days(&self.root)?;
        let unindexed: Vec<DaySpan> = window
            .into_iter()
            .filter(|day| !indexed.contains(day))
            .map(|day| DaySpan::of(day, &self.time_zone))
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

/// The daily index service: ready at once, a pass now and then every [`WAKE_INTERVAL`],
/// until shutdown.
pub async fn run(ctx: ServiceContext, job: IndexJob) -> Result<(), BoxError> {
    ctx.set_ready();
    let mut schedule = Schedule::default();
    loop {
        let pass_job = job.clone();
        let cancel = ctx.shutdown().clone();
        // The pass watches the token itself, so awaiting it on shutdown is short.
        schedule = tokio::task::spawn_blocking(move || {
            pass_job.run_pass(Timestamp::now(), &mut schedule, &cancel);
            schedule
        })
        .await?;
        tokio::select! {
            () = ctx.shutdown().cancelled() => return Ok(()),
            () = tokio::time::sleep(WAKE_INTERVAL) => {}
        }
    }
}
