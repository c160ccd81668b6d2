//! The service: what one pass does at a given time, and the supervised loop.

mod common;

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::date;
use prometheus_client::registry::Registry;
use tapline_index::day::local_day;
use tapline_index::{IndexJob, Schedule};
use tapline_runtime::{CancellationToken, RestartPolicy, Supervisor};

use common::{Call, Rig};

fn job(rig: &Rig, retention_days: u32) -> IndexJob {
    IndexJob {
        store: rig.store.clone(),
        root: rig.root.clone(),
        time_zone: rig.tz.clone(),
        retention_days,
    }
}

#[test]
fn a_pass_at_start_up_catches_up_then_the_next_finds_nothing_due() {
    let rig = Rig::new("America/Los_Angeles");
    // Back on 2026-06-10 at 10:00 PDT after nine days off.
    let now: Timestamp = "2026-06-10T17:00:00Z".parse().expect("time");
    rig.record(&Call::at("2026-06-01T20:00:00Z")); // 9 days ago: beyond catch-up
    rig.record(&Call::at("2026-06-04T20:00:00Z"));
    rig.record(&Call::at("2026-06-09T05:00:00Z")); // 22:00 on the 8th, local
    rig.generate(date(2026, 6, 4)); // written before the appliance went off
    rig.record(&Call::at("2026-06-04T21:00:00Z")); // not in that index: it is not redone
    let expired = rig.record(&Call::at("2026-04-01T20:00:00Z"));

    let job = job(&rig, 60);
    let mut schedule = Schedule::default();
    let cancel = CancellationToken::new();
    let report = job.run_pass(now, &mut schedule, &cancel);
    let days: Vec<_> = report.indexed.iter().map(|d| d.day).collect();
    // The 8th had calls; the 9th, the day just ended, had none but still gets its file.
    assert_eq!(days, [date(2026, 6, 8), date(2026, 6, 9)]);
    assert_eq!(report.indexed[1].brief_lines, 0);
    assert!(!rig.brief_path(date(2026, 6, 1)).exists());
    assert_eq!(rig.brief_rows(date(2026, 6, 4)).len(), 2);
    // Retention ran too: the call of April is older than 60 days.
    let retention = report.retention.expect("retention ran at start-up");
    assert_eq!(retention.days.len(), 1);
    assert!(!expired.path.exists());

    // A minute later there is nothing to do, and retention waits for tomorrow.
    let later = now + jiff::SignedDuration::from_mins(1);
    let report = job.run_pass(later, &mut schedule, &cancel);
    assert!(report.indexed.is_empty());
    assert!(report.retention.is_none());

    // Just after the next local midnight: the 10th is due, and retention runs again.
    let midnight: Timestamp = "2026-06-11T07:00:30Z".parse().expect("time");
    let report = job.run_pass(midnight, &mut schedule, &cancel);
    let days: Vec<_> = report.indexed.iter().map(|d| d.day).collect();
    assert_eq!(days, [date(2026, 6, 10)]);
    assert!(report.retention.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_writes_yesterday_s_index_and_stops_promptly_on_shutdown() {
    let rig = Rig::new("Australia/Sydney");
    let yesterday_before = yesterday(&rig);
    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(RestartPolicy::default(), &mut registry);
    let index_job = job(&rig, 0);
    supervisor.add("index", move |ctx| {
        tapline_index::run(ctx, index_job.clone())
    });
    let handle = supervisor.handle();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(10), handle.wait_all_ready())
        .await
        .expect("the service says it is ready");

    // The first pass runs at once; wait for its file (or the next day's, should local
    // midnight pass meanwhile).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let written = [yesterday_before, yesterday(&rig)]
            .iter()
            .any(|day| rig.brief_path(*day).exists());
        if written {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no index for yesterday after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Asleep until the next pass, a minute away: shutdown must not wait for it.
    let asked = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the service stops promptly")
        .expect("the supervisor ends cleanly");
    assert!(asked.elapsed() < Duration::from_secs(5));
    let status = &handle.statuses()[0];
    assert_eq!(status.restarts, 0, "{:?}", status.last_error);
}

fn yesterday(rig: &Rig) -> jiff::civil::Date {
    local_day(Timestamp::now(), &rig.tz)
        .yesterday()
        .expect("not the first day")
}
