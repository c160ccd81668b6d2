//! Retention and legal holds: what goes, what stays, what the audit log says, and a run cut
//! short finished by the next.

mod common;

use jiff::civil::{Date, date};
use tapline_audit::events;
use tapline_index::retention::{DayRemoved, RetentionReport};
use tapline_index::{Actor, HoldChange, HoldError, apply_retention, hold_call, hold_day};
use tapline_runtime::CancellationToken;

use common::{Call, Rig};

const ADMIN: Actor<'static> = Actor {
    username: "admin",
    user_ip: "192.0.2.7",
    request_uri: "/api/recordings/hold",
};

/// 30 days kept on 2026-06-10: 2026-05-11 is the first day kept.
const TODAY: Date = date(2026, 6, 10);
const RETENTION_DAYS: u32 = 30;

fn retain(rig: &Rig) -> RetentionReport {
    apply_retention(
        &rig.store,
        &rig.root,
        &rig.tz,
        RETENTION_DAYS,
        TODAY,
        &CancellationToken::new(),
    )
    .expect("retention")
}

/// (username, sub event, event object, params) of every audit row, in order.
fn audit_rows(rig: &Rig) -> Vec<(String, String, String, serde_json::Value)> {
    rig.store
        .read(|conn| {
            let verification = tapline_audit::verify(conn, None).expect("verify");
            assert_eq!(verification.broken, None, "the chain holds");
            let mut statement = conn.prepare(&format!(
                "SELECT {} FROM audit_log ORDER BY id",
                tapline_audit::COLUMNS
            ))?;
            let rows = statement.query_map([], tapline_audit::read_row)?;
            rows.map(|row| {
                row.map(|row| {
                    assert_eq!(row.event, events::RECORDINGS);
                    (
                        row.username,
                        row.sub_event,
                        row.event_object,
                        serde_json::from_str(&row.params).expect("JSON params"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("audit rows")
}

fn exists(path: &std::path::Path) -> bool {
    path.exists()
}

#[test]
fn expired_days_go_except_held_calls_and_held_days() {
    // Los Angeles: a local day runs into the next UTC day from 17:00 (PDT).
    let rig = Rig::new("America/Los_Angeles");
    // 2026-05-01: three calls, one held, one with raw media; one of them in S20260502.
    let may1_held = rig.record(&Call::at("2026-05-01T16:00:00Z").held());
    let may1_raw = rig.record(&Call::at("2026-05-01T17:00:00Z").with_raw_media());
    let may1_late = rig.record(&Call::at("2026-05-02T03:00:00Z"));
    // 2026-05-02: a held day.
    let may2 = rig.record(&Call::at("2026-05-02T20:00:00Z"));
    // 2026-05-05: nothing held; its calls fill S20260505 and S20260506.
    let may5 = [
        rig.record(&Call::at("2026-05-05T20:00:00Z")),
        rig.record(&Call::at("2026-05-06T01:00:00Z").status("failed")),
    ];
    // The last second of the last expired day, and the first of the first day kept.
    let last_expired = rig.record(&Call::at("2026-05-11T06:59:59Z"));
    let first_kept = rig.record(&Call::at("2026-05-11T07:00:00Z"));
    // An expired day with no calls, but header-only index files.
    let empty_day = date(2026, 4, 20);
    for day in [
        empty_day,
        date(2026, 5, 1),
        date(2026, 5, 2),
        date(2026, 5, 5),
        date(2026, 5, 10),
        date(2026, 5, 11),
    ] {
        rig.generate(day);
    }
    assert_eq!(
        hold_day(&rig.store, date(2026, 5, 2), "litigation 7", &ADMIN).expect("hold"),
        HoldChange::Changed
    );
    let may2_index = std::fs::read(rig.brief_path(date(2026, 5, 2))).expect("index");

    let report = retain(&rig);

    assert_eq!(report.cutoff, Some(date(2026, 5, 11)));
    assert!(!report.interrupted);
    let removed: Vec<(Date, usize)> = report.days.iter().map(|d| (d.day, d.recordings)).collect();
    assert_eq!(
        removed,
        [
            (date(2026, 5, 1), 2),
            (date(2026, 5, 5), 2),
            (date(2026, 5, 10), 1)
        ]
    );
    assert_eq!(
        report.days[0],
        DayRemoved {
            day: date(2026, 5, 1),
            recordings: 2,
            wav_files: 2,
            raw_media_files: 1,
            files_already_missing: 0,
            bytes: 2 * std::fs::metadata(&may1_held.path).expect("kept").len(),
            held_kept: 1,
            undeletable: 0,
        }
    );

    // Files and rows: the held call, the held day and the first day kept stay.
    for kept in [&may1_held, &may2, &first_kept] {
        assert!(exists(&kept.path), "{} kept", kept.file_name);
    }
    for gone in [&may1_raw, &may1_late, &may5[0], &may5[1], &last_expired] {
        assert!(!exists(&gone.path), "{} removed", gone.file_name);
    }
    assert!(!exists(may1_raw.raw_media.as_ref().expect("raw media")));
    assert_eq!(rig.row_count(), 3);

    // Indexes: written again for the held call left, untouched for the held day, gone for
    // days with nothing left (in Index/ and in the S directory), kept for the first day kept.
    assert_eq!(report.indexes_rewritten, [date(2026, 5, 1)]);
    let may1 = rig.brief_rows(date(2026, 5, 1));
    assert_eq!(may1.len(), 2);
    assert!(may1[1].contains(&may1_held.file_name));
    assert_eq!(
        std::fs::read(rig.brief_path(date(2026, 5, 2))).expect("index"),
        may2_index
    );
    for day in [empty_day, date(2026, 5, 5), date(2026, 5, 10)] {
        assert!(!exists(&rig.brief_path(day)), "{day}");
        assert!(!exists(&rig.detailed_path(day)), "{day}");
    }
    assert_eq!(report.index_files_removed.len(), 3 * 4);
    assert!(exists(&rig.brief_path(date(2026, 5, 11))));

    // Directories: the emptied S directories are gone; those with something left stay.
    let directories: Vec<String> = report
        .directories_removed
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        directories,
        ["S20260420", "S20260505", "S20260506", "S20260510"]
    );
    for kept in ["S20260501", "S20260502", "S20260511"] {
        assert!(rig.root.join(kept).is_dir(), "{kept}");
    }

    // One audit row for the hold, and one per day removed, by "system", with the counts.
    let audit = audit_rows(&rig);
    assert_eq!(audit.len(), 4);
    assert_eq!(audit[0].0, "admin");
    assert_eq!(audit[0].1, events::LEGAL_HOLD);
    assert_eq!(audit[0].2, "2026-05-02");
    for (row, day) in audit[1..]
        .iter()
        .zip(["2026-05-01", "2026-05-05", "2026-05-10"])
    {
        assert_eq!(row.0, "system");
        assert_eq!(row.1, events::RETENTION_REMOVED);
        assert_eq!(row.2, day);
        assert_eq!(row.3["day"], day);
        assert_eq!(row.3["retention_days"], 30);
    }
    assert_eq!(audit[1].3["recordings"], 2);
    assert_eq!(audit[1].3["raw_media_files"], 1);
    assert_eq!(audit[1].3["held_kept"], 1);

    // A second run finds nothing more to do.
    let again = retain(&rig);
    assert!(again.days.is_empty());
    assert!(again.index_files_removed.is_empty());
    assert!(again.indexes_rewritten.is_empty());
    assert_eq!(audit_rows(&rig).len(), 4);
}

#[test]
fn retention_of_zero_days_keeps_everything() {
    let rig = Rig::new("UTC");
    let old = rig.record(&Call::at("2001-01-01T12:00:00Z"));
    rig.generate(date(2001, 1, 1));
    let report = apply_retention(
        &rig.store,
        &rig.root,
        &rig.tz,
        0,
        TODAY,
        &CancellationToken::new(),
    )
    .expect("retention");
    assert_eq!(report, RetentionReport::default());
    assert!(old.path.exists());
    assert!(rig.brief_path(date(2001, 1, 1)).exists());
}

#[test]
fn a_run_cut_short_after_the_files_went_is_finished_by_the_next() {
    let rig = Rig::new("UTC");
    let calls = [
        rig.record(&Call::at("2026-05-01T10:00:00Z").with_raw_media()),
        rig.record(&Call::at("2026-05-01T11:00:00Z")),
    ];
    rig.generate(date(2026, 5, 1));
    // A crash after the files were deleted, before their rows were.
    std::fs::remove_file(&calls[0].path).expect("remove");
    std::fs::remove_file(calls[0].raw_media.as_ref().expect("raw")).expect("remove");
    std::fs::remove_file(&calls[1].path).expect("remove");

    let report = retain(&rig);
    assert_eq!(report.days.len(), 1);
    assert_eq!(report.days[0].recordings, 2);
    assert_eq!(report.days[0].files_already_missing, 3);
    assert_eq!(rig.row_count(), 0);
    assert!(!rig.brief_path(date(2026, 5, 1)).exists());
    assert!(!rig.root.join("S20260501").exists());
    assert_eq!(audit_rows(&rig)[0].3["files_already_missing"], 3);
}

#[test]
fn a_run_cut_short_after_the_rows_went_is_finished_by_the_next() {
    let rig = Rig::new("UTC");
    let call = rig.record(&Call::at("2026-05-01T10:00:00Z"));
    rig.generate(date(2026, 5, 1));
    // A crash after the rows were deleted, before the index was brought in line.
    std::fs::remove_file(&call.path).expect("remove");
    rig.store
        .write(|tx| tx.execute("DELETE FROM recordings", []))
        .expect("delete");
    let report = retain(&rig);
    assert!(report.days.is_empty());
    assert_eq!(report.index_files_removed.len(), 4);
    assert!(!rig.root.join("S20260501").exists());
}

#[test]
fn a_file_that_cannot_be_deleted_keeps_its_row() {
    let rig = Rig::new("UTC");
    let call = rig.record(&Call::at("2026-05-01T10:00:00Z"));
    // A directory where the file should be: remove_file refuses it, as it would refuse a
    // file on a read-only or failing disk.
    std::fs::remove_file(&call.path).expect("remove");
    std::fs::create_dir(&call.path).expect("directory in its place");
    let report = retain(&rig);
    assert_eq!(report.days[0].recordings, 0);
    assert_eq!(report.days[0].undeletable, 1);
    assert_eq!(rig.row_count(), 1);
}

#[test]
fn shutdown_stops_retention_between_days() {
    let rig = Rig::new("UTC");
    rig.record(&Call::at("2026-05-01T10:00:00Z"));
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report =
        apply_retention(&rig.store, &rig.root, &rig.tz, 30, TODAY, &cancel).expect("retention");
    assert!(report.interrupted);
    assert_eq!(rig.row_count(), 1);
}

#[test]
fn holds_are_changed_and_audited() {
    let rig = Rig::new("UTC");
    let call = rig.record(&Call::at("2026-05-01T10:00:00Z"));
    let hold = |held: bool| {
        if held {
            hold_call(&rig.store, &call.file_name, "case 9", &ADMIN)
        } else {
            tapline_index::release_call(&rig.store, &call.file_name, "case closed", &ADMIN)
        }
        .expect("hold change")
    };
    assert_eq!(hold(true), HoldChange::Changed);
    assert_eq!(hold(true), HoldChange::AlreadySo);
    assert_eq!(hold(false), HoldChange::Changed);
    assert_eq!(hold(false), HoldChange::AlreadySo);
    let day = date(2026, 5, 1);
    assert_eq!(
        hold_day(&rig.store, day, "case 9", &ADMIN).expect("hold"),
        HoldChange::Changed
    );
    assert_eq!(
        hold_day(&rig.store, day, "case 9", &ADMIN).expect("hold"),
        HoldChange::AlreadySo
    );
    let held = tapline_index::holds::held_days(&rig.store).expect("list");
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].day.as_str(),
            held[0].reason.as_str(),
            held[0].set_by.as_str()
        ),
        ("2026-05-01", "case 9", "admin")
    );
    assert_eq!(
        tapline_index::release_day(&rig.store, day, "case closed", &ADMIN).expect("release"),
        HoldChange::Changed
    );
    assert!(matches!(
        hold_call(&rig.store, "R200001010000000000.wav", "typo", &ADMIN),
        Err(HoldError::NoSuchRecording(name)) if name == "R200001010000000000.wav"
    ));

    let audit = audit_rows(&rig);
    let summary: Vec<(&str, bool, bool)> = audit
        .iter()
        .map(|(user, sub_event, _, params)| {
            assert_eq!(
                (user.as_str(), sub_event.as_str()),
                ("admin", events::LEGAL_HOLD)
            );
            (
                params["scope"].as_str().expect("scope"),
                params["held"].as_bool().expect("held"),
                params["changed"].as_bool().expect("changed"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("call", true, true),
            ("call", true, false),
            ("call", false, true),
            ("call", false, false),
            ("day", true, true),
            ("day", true, false),
            ("day", false, true),
        ]
    );
    assert_eq!(audit[0].2, call.file_name);

    // Released, the call and its day are removed by retention like any other.
    retain(&rig);
    assert_eq!(rig.row_count(), 0);
}
