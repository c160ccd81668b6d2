//! The daily index files on disk: which calls each local day holds, in which columns, and how
//! the files are written.

mod common;

use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use tapline_index::day::DaySpan;
use tapline_index::{BRIEF_HEADER, DETAILED_EXTRA_HEADER};

use common::{Call, Rig, column};

const BRIEF_HEADER_LINE: &str = "CALL TYPE,START TIME,STOP TIME,AGENT NAME,CUSTOMER NUMBER,\
     PHONE CHANNEL,CALLED NUMBER,CASEID,DURATION,FILENAME,DIRECTORY,ACCOUNT,START TIME UTC,\
     STOP TIME UTC,QUEUE,QUEUE NAME,TRANSACTION ID,EXTERNAL VARIABLE 1,EXTERNAL VARIABLE 2,\
     OUTDIAL CODE,WRAP UP CODE";

/// (START TIME, START TIME UTC, DIRECTORY) of every line of `day`'s brief index.
fn starts(rig: &Rig, day: Date) -> Vec<(String, String, String)> {
    let rows = rig.brief_rows(day);
    let (local, utc, dir) = (
        column(&rows, "START TIME"),
        column(&rows, "START TIME UTC"),
        column(&rows, "DIRECTORY"),
    );
    rows[1..]
        .iter()
        .map(|r| (r[local].clone(), r[utc].clone(), r[dir].clone()))
        .collect()
}

fn owned(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn a_day_west_of_utc_takes_its_calls_from_two_s_directories() {
    let rig = Rig::new("America/Los_Angeles");
    // 2026-06-06 in Los Angeles (UTC-7) is 07:00 UTC on the 6th to 07:00 UTC on the 7th.
    for utc in [
        "2026-06-06T06:59:59Z", // 23:59:59 on the 5th: the day before
        "2026-06-06T07:00:00Z", // local midnight
        "2026-06-06T23:59:59Z",
        "2026-06-07T00:00:00Z", // 17:00 local, the next UTC day
        "2026-06-07T06:59:59.999Z",
        "2026-06-07T07:00:00Z", // the next local day
    ] {
        rig.record(&Call::at(utc));
    }
    let report = rig.generate(date(2026, 6, 6));
    assert_eq!(report.brief_lines, 4);
    assert_eq!(
        starts(&rig, date(2026, 6, 6)),
        owned(&[
            ("2026-06-06 00:00:00", "2026-06-06 07:00:00", "S20260606"),
            ("2026-06-06 16:59:59", "2026-06-06 23:59:59", "S20260606"),
            ("2026-06-06 17:00:00", "2026-06-07 00:00:00", "S20260607"),
            ("2026-06-06 23:59:59", "2026-06-07 06:59:59", "S20260607"),
        ])
    );
    // The copy beside the recordings, in the S directory of the local date.
    for name in ["I20260606.csv", "I20260606_detailed.csv"] {
        assert_eq!(
            std::fs::read(rig.root.join("S20260606").join(name)).expect("copy"),
            std::fs::read(rig.root.join("Index").join(name)).expect("index"),
            "{name}"
        );
    }
}

#[test]
fn a_day_east_of_utc_starts_on_the_utc_day_before() {
    let rig = Rig::new("Asia/Kolkata");
    // 2026-06-06 in Kolkata (UTC+5:30) is 18:30 UTC on the 5th to 18:30 UTC on the 6th.
    for utc in [
        "2026-06-05T18:29:59Z",
        "2026-06-05T18:30:00Z",
        "2026-06-05T23:59:59Z",
        "2026-06-06T18:29:59Z",
        "2026-06-06T18:30:00Z",
    ] {
        rig.record(&Call::at(utc));
    }
    rig.generate(date(2026, 6, 6));
    assert_eq!(
        starts(&rig, date(2026, 6, 6)),
        owned(&[
            ("2026-06-06 00:00:00", "2026-06-05 18:30:00", "S20260605"),
            ("2026-06-06 05:29:59", "2026-06-05 23:59:59", "S20260605"),
            ("2026-06-06 23:59:59", "2026-06-06 18:29:59", "S20260606"),
        ])
    );
    // The next day (the call at 18:30 UTC) has a copy in S20260607, created for it, though no
    // recording of UTC 2026-06-07 exists.
    rig.generate(date(2026, 6, 7));
    assert_eq!(starts(&rig, date(2026, 6, 7)).len(), 1);
    assert!(rig.root.join("S20260607/I20260607.csv").exists());
}

#[test]
fn sydney_in_summer_is_eleven_hours_ahead() {
    let rig = Rig::new("Australia/Sydney");
    rig.record(&Call::at("2026-01-14T13:00:00Z")); // 00:00 on the 15th, AEDT
    rig.record(&Call::at("2026-01-15T12:59:59Z")); // 23:59:59 on the 15th
    rig.record(&Call::at("2026-01-15T13:00:00Z")); // the 16th
    rig.generate(date(2026, 1, 15));
    assert_eq!(
        starts(&rig, date(2026, 1, 15)),
        owned(&[
            ("2026-01-15 00:00:00", "2026-01-14 13:00:00", "S20260114"),
            ("2026-01-15 23:59:59", "2026-01-15 12:59:59", "S20260115"),
        ])
    );
}

/// Records a call at the start of every hour of local `day` and one a second either side,
/// and returns the local START TIMEs its index lists.
fn hourly_calls(rig: &Rig, day: Date) -> Vec<String> {
    let span = DaySpan::of(day, &rig.tz).expect("span");
    let second = SignedDuration::from_secs(1);
    rig.record(&Call {
        answered: span.start - second,
        ..Call::at("2026-01-01T00:00:00Z")
    });
    rig.record(&Call {
        answered: span.end,
        ..Call::at("2026-01-01T00:00:00Z")
    });
    let mut at: Timestamp = span.start;
    while at < span.end {
        rig.record(&Call {
            answered: at,
            ..Call::at("2026-01-01T00:00:00Z")
        });
        at += SignedDuration::from_hours(1);
    }
    rig.generate(day);
    let rows = rig.brief_rows(day);
    let start = column(&rows, "START TIME");
    rows[1..]
        .iter()
        .map(|r| r[start][11..].to_owned())
        .collect()
}

#[test]
fn the_day_daylight_saving_starts_has_23_hours_of_calls() {
    let rig = Rig::new("America/New_York");
    let starts = hourly_calls(&rig, date(2026, 3, 8));
    assert_eq!(starts.len(), 23);
    // 02:00 does not exist that night.
    let mut expected = vec!["00:00:00".to_owned(), "01:00:00".to_owned()];
    expected.extend((3..24).map(|h| format!("{h:02}:00:00")));
    assert_eq!(starts, expected);
    let rows = rig.brief_rows(date(2026, 3, 8));
    let utc = column(&rows, "START TIME UTC");
    assert_eq!(rows[1][utc], "2026-03-08 05:00:00");
    assert_eq!(rows[2][utc], "2026-03-08 06:00:00");
    assert_eq!(rows[3][utc], "2026-03-08 07:00:00");
    assert_eq!(rows[23][utc], "2026-03-09 03:00:00");
}

#[test]
fn the_day_daylight_saving_ends_has_25_hours_of_calls() {
    let rig = Rig::new("America/New_York");
    let starts = hourly_calls(&rig, date(2026, 11, 1));
    assert_eq!(starts.len(), 25);
    // 01:00 happens twice: first in EDT, then in EST.
    let mut expected = vec![
        "00:00:00".to_owned(),
        "01:00:00".to_owned(),
        "01:00:00".to_owned(),
    ];
    expected.extend((2..24).map(|h| format!("{h:02}:00:00")));
    assert_eq!(starts, expected);
    let rows = rig.brief_rows(date(2026, 11, 1));
    let utc = column(&rows, "START TIME UTC");
    assert_eq!(rows[2][utc], "2026-11-01 05:00:00");
    assert_eq!(rows[3][utc], "2026-11-01 06:00:00");
    assert_eq!(rows[25][utc], "2026-11-02 04:00:00");
}

#[test]
fn a_day_without_calls_has_header_only_files() {
    let rig = Rig::new("America/Los_Angeles");
    let report = rig.generate(date(2026, 6, 6));
    assert_eq!((report.brief_lines, report.detailed_lines), (0, 0));
    let brief = std::fs::read_to_string(rig.brief_path(date(2026, 6, 6))).expect("brief");
    assert_eq!(brief, format!("{BRIEF_HEADER_LINE}\r\n"));
    let detailed = std::fs::read_to_string(rig.detailed_path(date(2026, 6, 6))).expect("detailed");
    assert_eq!(detailed.lines().count(), 1);
    // The S directory of the day is made for the copy.
    assert!(rig.root.join("S20260606/I20260606.csv").is_file());
    assert!(rig.root.join("S20260606/I20260606_detailed.csv").is_file());
}

#[test]
fn header_rows_are_exact() {
    let rig = Rig::new("UTC");
    rig.generate(date(2026, 6, 6));
    let brief = std::fs::read_to_string(rig.brief_path(date(2026, 6, 6))).expect("brief");
    assert_eq!(brief.split("\r\n").next(), Some(BRIEF_HEADER_LINE));
    assert_eq!(BRIEF_HEADER.join(","), BRIEF_HEADER_LINE);
    let detailed = std::fs::read_to_string(rig.detailed_path(date(2026, 6, 6))).expect("detailed");
    let expected = format!(
        "{BRIEF_HEADER_LINE},SIZE BYTES,SHA256,CODEC,SAMPLE RATE,CHANNELS,FORMAT,\
         CALLER PACKETS,CALLER LOST,CALLER JITTER MS,CALLEE PACKETS,CALLEE LOST,\
         CALLEE JITTER MS,SOURCE,RAW MEDIA FILE,END REASON,HOLDS,HOLD TIME,LEGAL HOLD,STATUS"
    );
    assert_eq!(detailed.split("\r\n").next(), Some(expected.as_str()));
    assert_eq!(DETAILED_EXTRA_HEADER.len(), 19);
}

#[test]
fn a_line_holds_the_call_s_metadata_in_order() {
    let rig = Rig::new("America/Los_Angeles");
    let call = rig.record(&Call::at("2026-06-06T17:30:05.250Z").with_raw_media());
    rig.generate(date(2026, 6, 6));
    let text = std::fs::read_to_string(rig.brief_path(date(2026, 6, 6))).expect("brief");
    let line = text.split("\r\n").nth(1).expect("a line");
    assert_eq!(
        line,
        format!(
            "Inbound,2026-06-06 10:30:05,2026-06-06 10:31:35,Ada Agent,+14155550100,,8005550199,,\
             00:01:30,{file},S20260606,,2026-06-06 17:30:05,2026-06-06 17:31:35,,,\
             {file}@example.com,,,,",
            file = call.file_name
        )
    );
    let detailed = rig.detailed_rows(date(2026, 6, 6));
    let extra = &detailed[1][BRIEF_HEADER.len()..];
    let size = std::fs::metadata(&call.path)
        .expect("file")
        .len()
        .to_string();
    assert_eq!(extra[0], size);
    assert_eq!(extra[1].len(), 64, "SHA-256 in hex");
    assert_eq!(
        extra[2..],
        [
            "PCMU",
            "8000",
            "2",
            "pcm16",
            "4500",
            "3",
            "1.25",
            "4498",
            "0",
            "0.50",
            "span",
            &call.file_name.replace(".wav", ".rtp.pcap"),
            "bye",
            "1",
            "00:01:05",
            "no",
            "ok",
        ]
    );
}

#[test]
fn file_problems_are_reported_in_status_not_raised() {
    let rig = Rig::new("UTC");
    let day = date(2026, 6, 6);
    let ok = rig.record(&Call::at("2026-06-06T10:00:00Z"));
    let missing = rig.record(&Call::at("2026-06-06T10:00:01Z"));
    let truncated = rig.record(&Call::at("2026-06-06T10:00:02Z"));
    let garbled = rig.record(&Call::at("2026-06-06T10:00:03Z"));
    let no_raw = rig.record(&Call::at("2026-06-06T10:00:04Z").with_raw_media());
    let failed = rig.record(&Call::at("2026-06-06T10:00:05Z").status("failed"));
    std::fs::remove_file(&missing.path).expect("remove");
    let bytes = std::fs::read(&truncated.path).expect("read");
    std::fs::write(&truncated.path, &bytes[..bytes.len() - 100]).expect("truncate");
    let mut bytes = std::fs::read(&garbled.path).expect("read");
    bytes[..4].copy_from_slice(b"JUNK");
    std::fs::write(&garbled.path, &bytes).expect("garble");
    std::fs::remove_file(no_raw.raw_media.as_ref().expect("raw media")).expect("remove");

    let report = rig.generate(day);
    assert_eq!(
        report.brief_lines, 5,
        "a problem file still has its call listed"
    );
    assert_eq!(report.detailed_lines, 6);
    let rows = rig.detailed_rows(day);
    let (file, status) = (column(&rows, "FILENAME"), column(&rows, "STATUS"));
    let statuses: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[file].as_str(), r[status].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (ok.file_name.as_str(), "ok"),
            (missing.file_name.as_str(), "file missing"),
            (truncated.file_name.as_str(), "size differs"),
            (garbled.file_name.as_str(), "wav header unreadable"),
            (no_raw.file_name.as_str(), "raw media file missing"),
            (failed.file_name.as_str(), "failed"),
        ]
    );
    assert_eq!(report.problems.len(), 4);
    assert_eq!(
        report.problems[0],
        (format!("S20260606/{}", missing.file_name), "file missing")
    );
    // The failed recording is in the detailed index only.
    let brief = std::fs::read_to_string(rig.brief_path(day)).expect("brief");
    assert!(!brief.contains(&failed.file_name));
}

#[test]
fn calls_still_being_recorded_are_left_out_and_named() {
    let rig = Rig::new("UTC");
    let day = date(2026, 6, 6);
    rig.record(&Call::at("2026-06-06T23:50:00Z"));
    let open = rig.record(&Call::at("2026-06-06T23:59:00Z").status("recording"));
    let report = rig.generate(day);
    assert_eq!(report.in_progress, std::slice::from_ref(&open.file_name));
    assert_eq!((report.brief_lines, report.detailed_lines), (1, 1));
    let detailed = std::fs::read_to_string(rig.detailed_path(day)).expect("detailed");
    assert!(!detailed.contains(&open.file_name));

    // Once the call is over, writing the day again adds it.
    rig.set_status(&open.file_name, "complete");
    let report = rig.generate(day);
    assert!(report.in_progress.is_empty());
    assert_eq!(report.brief_lines, 2);
}

#[test]
fn a_recording_recovered_after_a_crash_ends_where_its_audio_does() {
    let rig = Rig::new("UTC");
    let day = date(2026, 6, 6);
    let call = rig.record(&Call {
        frames: 8000 * 75 / 10, // 7.5 s
        ..Call::at("2026-06-06T12:00:00Z").status("recovered")
    });
    rig.store
        .write(|tx| {
            tx.execute(
                "UPDATE recordings SET ended_at = NULL, duration_ms = NULL WHERE file_name = ?1",
                [&call.file_name],
            )
        })
        .expect("as the recorder's repair leaves it");
    rig.generate(day);
    let rows = rig.brief_rows(day);
    assert_eq!(rows[1][column(&rows, "STOP TIME")], "2026-06-06 12:00:07");
    assert_eq!(rows[1][column(&rows, "DURATION")], "00:00:07");
}

#[test]
fn writing_a_day_again_gives_the_same_bytes_and_leaves_the_files_alone() {
    let rig = Rig::new("America/Los_Angeles");
    let day = date(2026, 6, 6);
    for second in 0..50 {
        rig.record(&Call::at(&format!("2026-06-06T20:00:{second:02}Z")).agent("Smith, \"Jo\""));
    }
    let first = rig.generate(day);
    assert_eq!(first.written.len(), 4);
    let paths = [
        rig.brief_path(day),
        rig.detailed_path(day),
        rig.root.join("S20260606/I20260606.csv"),
        rig.root.join("S20260606/I20260606_detailed.csv"),
    ];
    let before: Vec<_> = paths
        .iter()
        .map(|p| std::fs::read(p).expect("file"))
        .collect();
    let modified: Vec<_> = paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .collect();

    let second = rig.generate(day);
    assert!(second.written.is_empty(), "{:?}", second.written);
    assert_eq!(second.unchanged.len(), 4);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(std::fs::read(path).expect("file"), before[i]);
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(mtime, modified[i], "{} untouched", path.display());
    }

    // A lost copy, or one replaced by hand, is put back; the result is the same bytes.
    std::fs::remove_file(&paths[2]).expect("remove");
    std::fs::remove_file(&paths[3]).expect("remove");
    std::fs::write(&paths[3], b"tampered").expect("replace");
    let third = rig.generate(day);
    assert_eq!(third.written, [paths[2].clone(), paths[3].clone()]);
    for (i, path) in paths.iter().enumerate() {
        assert_eq!(std::fs::read(path).expect("file"), before[i]);
    }

    // No temporary file is left behind.
    for dir in [rig.root.join("Index"), rig.root.join("S20260606")] {
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn a_held_day_and_a_held_call_show_in_the_detailed_index() {
    let rig = Rig::new("UTC");
    let actor = tapline_index::Actor {
        username: "admin",
        user_ip: "192.0.2.1",
        request_uri: "/api/holds",
    };
    rig.record(&Call::at("2026-06-06T10:00:00Z").held());
    rig.record(&Call::at("2026-06-06T11:00:00Z"));
    rig.record(&Call::at("2026-06-07T11:00:00Z"));
    tapline_index::hold_day(&rig.store, date(2026, 6, 7), "case 42", &actor).expect("hold");
    rig.generate(date(2026, 6, 6));
    rig.generate(date(2026, 6, 7));
    let held = |day| {
        let rows = rig.detailed_rows(day);
        let column = column(&rows, "LEGAL HOLD");
        rows[1..]
            .iter()
            .map(|r| r[column].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(held(date(2026, 6, 6)), ["yes", "no"]);
    assert_eq!(held(date(2026, 6, 7)), ["yes"]);
}
