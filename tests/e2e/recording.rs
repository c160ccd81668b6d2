//! Recordings made from the bundled capture of three real SIPp calls, checked with tools we
//! did not write: Python's `wave` module reads the files, `sha256sum` hashes them.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;
use tapline_tests::{Appliance, RecordingRow, eventually, recording_rows, sha256sum, tapline};

const CALLS_PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../provisioning/demo/calls.pcap"
);

/// The three calls of the bundled capture: Call-ID, seconds from answer to BYE, and the tones
/// of the caller (left) and the callee (right). See provisioning/demo/README.md.
const CALLS: [(&str, f64, u32, u32); 3] = [
    ("tapline-demo-1@198.51.100.20", 6.3, 440, 1000),
    ("tapline-demo-2@198.51.100.20", 8.3, 550, 1250),
    ("tapline-demo-3@198.51.100.20", 10.3, 660, 1500),
];

/// What Python's `wave` module makes of a file: channels, rate, frames, and the dominant
/// share of each listed tone per channel over the middle of the call.
#[derive(Debug)]
struct WavReport {
    channels: u32,
    rate: u32,
    frames: u64,
    /// (tone, share on the left, share on the right)
    tones: Vec<(u32, f64, f64)>,
}

fn inspect(path: &Path, tones: &[u32]) -> WavReport {
    let script = r#"
import math, struct, sys, wave
w = wave.open(sys.argv[1])
n, ch, rate = w.getnframes(), w.getnchannels(), w.getframerate()
data = struct.unpack('<%dh' % (n * ch), w.readframes(n))
print(ch, rate, n)
seg = slice(int(rate * 1.5), int(rate * 3.5))
for hz in map(int, sys.argv[2:]):
    shares = []
    for side in (data[0::2][seg], data[1::2][seg]):
        c = 2 * math.cos(2 * math.pi * hz / rate); s1 = s2 = 0.0
        for v in side:
            s1, s2 = v + c * s1 - s2, s1
        total = sum(v * v for v in side) or 1
        shares.append((s1 * s1 + s2 * s2 - c * s1 * s2) / (total * len(side) / 2))
    print(hz, shares[0], shares[1])
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .args(tones.iter().map(u32::to_string))
        .output()
        .expect("/usr/bin/python3 is missing: apt-get install python3");
    assert!(
        out.status.success(),
        "Python could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let head: Vec<u64> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let tones = lines
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    WavReport {
        channels: head[0] as u32,
        rate: head[1] as u32,
        frames: head[2],
        tones,
    }
}

/// Checks one finished recording against the call it should hold.
#[track_caller]
fn check_recording(row: &RecordingRow, call: (&str, f64, u32, u32)) {
    let (call_id, seconds, left_hz, right_hz) = call;
    assert_eq!(row.sip_call_id, call_id);
    assert_eq!(row.status, "complete", "{row:?}");
    assert_eq!(row.end_reason.as_deref(), Some("bye from caller"));
    let duration = row.duration_ms.unwrap() as f64 / 1000.0;
    assert!(
        (duration - seconds).abs() < 0.1,
        "duration {duration} s, expected about {seconds}"
    );
    assert_eq!(
        row.packets,
        (
            Some((seconds * 50.0) as i64 - 15),
            Some((seconds * 50.0) as i64 - 15)
        ),
        "{row:?}"
    );
    assert_eq!(row.lost, (Some(0), Some(0)));
    assert_eq!(
        row.size,
        Some(std::fs::metadata(&row.path).unwrap().len() as i64)
    );
    assert_eq!(
        row.sha256.as_deref(),
        Some(sha256sum(&row.path).as_str()),
        "the row's SHA-256 is the file's"
    );
    let report = inspect(&row.path, &[left_hz, right_hz]);
    assert_eq!((report.channels, report.rate), (2, 8000));
    assert!(
        (report.frames as f64 / 8000.0 - duration).abs() < 0.01,
        "the file is as long as the call: {report:?}"
    );
    let (_, left_on_left, left_on_right) = report.tones[0];
    let (_, right_on_left, right_on_right) = report.tones[1];
    assert!(
        left_on_left > 0.95 && right_on_right > 0.95,
        "each party on its own channel: {report:?}"
    );
    assert!(
        left_on_right < 0.01 && right_on_left < 0.01,
        "no crosstalk: {report:?}"
    );
}

#[test]
fn record_pcap_turns_the_bundled_calls_into_three_recordings() {
    let appliance = Appliance::new("");
    let out = tapline(&[
        "record",
        "--pcap",
        CALLS_PCAP,
        "--config",
        appliance.config.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "  frames           2421",
        "  SIP messages     21",
        "  RTP packets      2400",
        "  calls answered   3",
        "  recorded         3",
        "  failed           0",
        "  skipped          none",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no {line:?} in:\n{stdout}"
        );
    }
    let rows = recording_rows(&appliance.data_dir());
    assert_eq!(rows.len(), 3);
    for (row, call) in rows.iter().zip(CALLS) {
        let name = row.path.file_name().unwrap().to_str().unwrap();
        let directory = row
            .path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            name.len() == 23 && name.starts_with('R') && name.ends_with(".wav"),
            "{name}"
        );
        assert_eq!(
            &name[1..9],
            &directory[1..],
            "named for the day of its directory"
        );
        check_recording(row, call);
    }
}

#[test]
fn a_truncated_capture_fails_after_keeping_every_call_it_could() {
    let appliance = Appliance::new("");
    let bytes = std::fs::read(CALLS_PCAP).unwrap();
    // 70% of the way in: call 1 has ended, calls 2 and 3 are mid-way, and the last frame is cut.
    let cut = appliance.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let out = tapline(&[
        "record",
        "--pcap",
        cut.to_str().unwrap(),
        "--config",
        appliance.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "tapline: stopped reading {} early; the calls before that point were kept: capture file {} is damaged after",
            cut.display(),
            cut.display()
        )),
        "{stderr}"
    );
    let rows = recording_rows(&appliance.data_dir());
    assert_eq!(rows.len(), 3);
    check_recording(&rows[0], CALLS[0]);
    for row in &rows[1..] {
        assert_eq!(row.status, "complete");
        assert_eq!(row.end_reason.as_deref(), Some("capture ended"));
        assert_eq!(row.sha256.as_deref(), Some(sha256sum(&row.path).as_str()));
    }
}

#[test]
fn the_daemon_records_the_replayed_calls_and_finalises_open_ones_on_sigterm() {
    let appliance = Appliance::new("[capture]\nreplay = \"calls.pcap\"\n");
    std::fs::copy(CALLS_PCAP, appliance.path().join("calls.pcap")).unwrap();
    let mut daemon = appliance.start(None, None);
    daemon.web_url();
    // Call 1 ends 7.3 s into the capture; calls 2 and 3 are still up then.
    let first = eventually(
        Duration::from_secs(20),
        "the first recording to complete",
        || {
            recording_rows(&appliance.data_dir())
                .into_iter()
                .find(|r| r.status == "complete")
        },
    );
    check_recording(&first, CALLS[0]);
    assert!(
        recording_rows(&appliance.data_dir())
            .iter()
            .any(|r| r.status == "recording")
    );
    daemon.stop(Signal::TERM);
    let rows = recording_rows(&appliance.data_dir());
    assert_eq!(rows.len(), 3);
    for row in &rows[1..] {
        assert_eq!(row.status, "complete", "finalised on SIGTERM: {row:?}");
        assert_eq!(row.end_reason.as_deref(), Some("capture ended"));
        let report = inspect(&row.path, &[]);
        assert!(report.frames > 0);
    }
}

#[test]
fn a_recording_cut_short_by_a_crash_is_repaired_at_the_next_start() {
    let appliance = Appliance::new("[capture]\nreplay = \"calls.pcap\"\n");
    std::fs::copy(CALLS_PCAP, appliance.path().join("calls.pcap")).unwrap();
    let mut daemon = appliance.start(None, None);
    daemon.web_url();
    // Into call 1's audio, past a few header syncs.
    let open = eventually(
        Duration::from_secs(15),
        "a recording with synced audio",
        || {
            let row = recording_rows(&appliance.data_dir()).into_iter().next()?;
            (std::fs::metadata(&row.path).ok()?.len() > 44 + 2 * 32_000).then_some(row)
        },
    );
    daemon.signal(Signal::KILL);
    daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(
        recording_rows(&appliance.data_dir())[0].status,
        "recording",
        "a power cut leaves the row open"
    );
    // Even before repair, the file reads as a valid WAV holding audio up to the last sync.
    let before = inspect(&open.path, &[]);
    assert!(
        before.frames >= 8000,
        "at least a second of audio survived: {before:?}"
    );

    let mut daemon = appliance.start(None, None);
    daemon.web_url();
    let repaired = eventually(Duration::from_secs(10), "the repair pass", || {
        recording_rows(&appliance.data_dir())
            .into_iter()
            .find(|r| r.sip_call_id == open.sip_call_id && r.status != "recording")
    });
    assert_eq!(repaired.status, "recovered");
    assert_eq!(
        repaired.end_reason.as_deref(),
        Some("interrupted: recovered at start")
    );
    assert_eq!(
        repaired.sha256.as_deref(),
        Some(sha256sum(&repaired.path).as_str())
    );
    let after = inspect(&repaired.path, &[]);
    assert!(after.frames >= before.frames);
    assert!(daemon.stderr().contains("recording left open by a crash"));
    daemon.stop(Signal::TERM);
}
