//! `tapline run` as systemd runs it: notifications on a socket of our own, the watchdog, the
//! health and metrics endpoints over HTTPS, supervision, and a clean stop on SIGTERM.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;
use tapline_store::{LATEST_VERSION, Store, rusqlite};
use tapline_tests::{Appliance, Daemon, NotifySocket, eventually, https_get};

const STARTUP: Duration = Duration::from_secs(30);

/// Every sample of an OpenMetrics text, as parsed by the Prometheus project's own Python client.
fn parse_metrics(text: &str) -> Vec<String> {
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
        for family in parse(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
        \x20       print(f'{s.name}{{{labels}}} {s.value}')\n";
    // Debian's python3 with Debian's python3-prometheus-client.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 is missing: apt-get install python3 python3-prometheus-client");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics (apt-get install python3-prometheus-client \
         if it is missing):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_full_lifecycle_under_a_notify_socket() {
    let appliance = Appliance::new("");
    let mut notify = NotifySocket::new();
    let mut daemon = appliance.start(Some(&notify), Some(Duration::from_millis(600)));

    // READY=1 comes once every listener is bound, with a status line saying what runs.
    let ready = notify.wait_for(STARTUP, |m| m.lines().any(|l| l == "READY=1"));
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=serving: web, sftp, index, audit-head, turn"),
        "{ready}"
    );
    assert_eq!(
        notify.messages.first().map(String::as_str),
        Some("STATUS=starting")
    );
    let url = daemon.web_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The watchdog is fed every half interval while healthy.
    let beats = notify.collect_for(Duration::from_millis(1500));
    let count = beats.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
    assert!(
        count >= 3,
        "expected ~5 WATCHDOG=1 in 1.5 s at a 600 ms interval, got {beats:?}"
    );

    // Health and metrics, over HTTPS, trusting only the certificate the daemon made.
    let (code, body) = https_get(&format!("{url}health"), &appliance.cert());
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        concat!(
            r#"{"status":"ok","database":"ok","services":["#,
            r#"{"name":"web","state":"running","ready":true,"restarts":0},"#,
            r#"{"name":"sftp","state":"running","ready":true,"restarts":0},"#,
            r#"{"name":"index","state":"running","ready":true,"restarts":0},"#,
            r#"{"name":"audit-head","state":"running","ready":true,"restarts":0},"#,
            r#"{"name":"turn","state":"running","ready":true,"restarts":0}]}"#
        )
    );
    let (code, metrics) = https_get(&format!("{url}metrics"), &appliance.cert());
    assert_eq!(code, 200);
    let samples = parse_metrics(&metrics);
    for expected in [
        "tapline_service_up{service=web} 1",
        "tapline_service_restarts_total{service=web} 0",
        "tapline_build_info{version=0.1.0} 1",
    ] {
        assert!(
            samples.iter().any(|s| s == expected),
            "no {expected} in {samples:?}"
        );
    }

    // The database was created and migrated at start.
    let db = appliance.data_dir().join("tapline.db");
    assert!(db.exists());

    // SIGTERM: STOPPING=1, services drain, the database is checkpointed, exit 0.
    daemon.signal(Signal::TERM);
    let stopping = notify.wait_for(Duration::from_secs(10), |m| m.contains("STOPPING=1"));
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let status = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    let log = daemon.stderr();
    for line in ["service stopped service=\"web\"", "stopped cleanly"] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    let wal = appliance.data_dir().join("tapline.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        wal_len, 0,
        "the write-ahead log was folded into the database"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
}

#[test]
fn sigint_before_anything_else_still_stops_cleanly() {
    let appliance = Appliance::new("");
    let mut daemon = appliance.start(None, None);
    daemon.web_url();
    daemon.stop(Signal::INT);
}

#[test]
fn a_database_from_a_newer_release_is_refused_untouched() {
    let appliance = Appliance::new("");
    std::fs::create_dir_all(appliance.data_dir()).unwrap();
    let db = appliance.data_dir().join("tapline.db");
    drop(Store::open(&db).unwrap());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 7)
            .unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let mut daemon = appliance.start(None, None);
    let status = daemon.wait_exit(STARTUP);
    assert_eq!(
        status.code(),
        Some(78),
        "EX_CONFIG: restarting cannot fix this"
    );
    let expected = format!(
        "tapline: database {} has schema version {}, newer than this Tapline understands ({}); \
         it was written by a newer release and is left untouched",
        db.display(),
        LATEST_VERSION + 7,
        LATEST_VERSION
    );
    assert!(daemon.stderr().contains(&expected), "{}", daemon.stderr());
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file was altered"
    );
}

#[test]
fn a_failing_service_restarts_with_backoff_while_the_web_keeps_serving() {
    let appliance = Appliance::new("[capture]\nreplay = \"calls.pcap\"\n");
    let capture = appliance.path().join("calls.pcap");
    std::fs::write(&capture, b"this is not a capture file").unwrap();
    let mut notify = NotifySocket::new();
    let mut daemon = appliance.start(Some(&notify), None);

    // One broken service does not hold the rest hostage: READY=1 still comes.
    let ready = notify.wait_for(STARTUP, |m| m.lines().any(|l| l == "READY=1"));
    assert!(
        ready.contains("STATUS=serving: web, sftp, index, audit-head, turn; restarting: capture"),
        "{ready}"
    );
    let url = daemon.web_url();

    let (code, body) = https_get(&format!("{url}health"), &appliance.cert());
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(r#""status":"degraded""#), "{body}");
    assert!(
        body.contains(&format!(
            "{} is not a pcap or pcapng file",
            capture.display()
        )),
        "{body}"
    );
    let restarts = eventually(Duration::from_secs(10), "a second restart", || {
        let (_, metrics) = https_get(&format!("{url}metrics"), &appliance.cert());
        let line = metrics
            .lines()
            .find(|l| l.starts_with("tapline_service_restarts_total{service=\"capture\"}"))?
            .to_owned();
        let count: u64 = line.rsplit(' ').next()?.parse().ok()?;
        (count >= 2).then_some(count)
    });
    assert!(restarts >= 2);

    // Mend the file: the next restart picks it up and everything is healthy again.
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../provisioning/demo/calls.pcap"
        ),
        &capture,
    )
    .unwrap();
    eventually(Duration::from_secs(20), "health to recover", || {
        let (code, body) = https_get(&format!("{url}health"), &appliance.cert());
        (code == 200 && body.contains(r#""name":"capture","state":"running""#)).then_some(())
    });
    notify.wait_for(Duration::from_secs(5), |m| {
        m == "STATUS=serving: capture, web, sftp, index, audit-head, turn"
    });
    let log = daemon.stderr();
    assert!(
        log.contains("service failed; restarting it after a pause"),
        "{log}"
    );

    daemon.stop(Signal::TERM);
}

#[test]
fn the_replayed_capture_is_counted_in_metrics() {
    let appliance = Appliance::new("[capture]\nreplay = \"calls.pcap\"\n");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../provisioning/demo/calls.pcap"
        ),
        appliance.path().join("calls.pcap"),
    )
    .unwrap();
    let mut daemon = appliance.start(None, None);
    let url = daemon.web_url();
    let frames = eventually(Duration::from_secs(10), "frames to be counted", || {
        let (_, metrics) = https_get(&format!("{url}metrics"), &appliance.cert());
        let samples = parse_metrics(&metrics);
        let frames: f64 = samples
            .iter()
            .find_map(|s| s.strip_prefix("tapline_capture_frames_total{source=replay} "))?
            .parse()
            .ok()?;
        (frames >= 100.0).then_some(frames)
    });
    assert!(frames >= 100.0);
    daemon.stop(Signal::TERM);
}

#[test]
fn the_watchdog_is_withheld_while_the_database_does_not_answer() {
    let appliance = Appliance::new("");
    let mut notify = NotifySocket::new();
    let mut daemon = appliance.start(Some(&notify), Some(Duration::from_millis(400)));
    notify.wait_for(STARTUP, |m| m.lines().any(|l| l == "READY=1"));
    daemon.web_url();
    notify.wait_for(Duration::from_secs(5), |m| m == "WATCHDOG=1");

    // Another process holds the database's write lock: nothing could be recorded now.
    let db = appliance.data_dir().join("tapline.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE;").unwrap();
    // A beat already in flight may still land; after that, silence.
    std::thread::sleep(Duration::from_millis(400));
    let during = notify.collect_for(Duration::from_millis(1600));
    assert!(
        !during.iter().any(|m| m == "WATCHDOG=1"),
        "beats while unhealthy: {during:?}"
    );

    conn.execute_batch("COMMIT;").unwrap();
    drop(conn);
    notify.wait_for(Duration::from_secs(15), |m| m == "WATCHDOG=1");
    assert!(
        daemon
            .stderr()
            .contains("unhealthy; withholding the watchdog beat")
    );

    daemon.stop(Signal::TERM);
}

#[test]
fn the_demo_runs_on_embedded_defaults_and_prints_what_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    std::fs::create_dir_all(&demo_dir).unwrap();
    // The demo keeps a config it finds; give it the embedded one with ports moved to 0, so
    // that test runs in parallel cannot clash on the demo's fixed ports.
    let config = tapline_provisioning::demo::CONFIG
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:2222", "127.0.0.1:0")
        .replace("127.0.0.1:3478", "127.0.0.1:0");
    std::fs::write(demo_dir.join("tapline.toml"), config).unwrap();

    let mut command = Command::new(tapline_tests::tapline_bin());
    command
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .env_remove("TAPLINE_CONFIG");
    let mut daemon = Daemon::spawn(command);
    let url = daemon.web_url();
    let account = daemon.wait_for_stdout("  Account       admin / ", STARTUP);
    assert_eq!(
        account.len(),
        20,
        "a 20-character one-time password: {account:?}"
    );
    let sftp = daemon.wait_for_stdout("  SFTP          ", STARTUP);
    assert!(sftp.starts_with("sftp://127.0.0.1:"), "{sftp}");
    let sftp_login = daemon.wait_for_stdout("  SFTP login    Demo / ", STARTUP);
    assert_eq!(sftp_login.len(), 20, "{sftp_login:?}");
    let source = daemon.wait_for_stdout("  SPAN source   ", STARTUP);
    assert!(
        source.ends_with("calls.pcap replayed in a loop"),
        "{source}"
    );
    let cert = demo_dir.join("data/tls/cert.pem");
    let (code, body) = https_get(&format!("{url}health"), &cert);
    assert_eq!(code, 200, "{body}");
    assert!(
        std::fs::read(demo_dir.join("calls.pcap")).unwrap()
            == tapline_provisioning::demo::CALLS_PCAP
    );

    let store = Store::open_in(&demo_dir.join("data")).unwrap();
    let must_change: bool = store
        .read(|c| {
            c.query_row(
                "SELECT must_change_password FROM accounts WHERE name = 'admin'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert!(must_change, "the printed password is one-time");
    let head = tapline_tests::eventually(STARTUP, "the audit chain head in the log", || {
        daemon
            .stderr()
            .lines()
            .find(|l| l.contains("audit log chain head"))
            .map(str::to_owned)
    });
    // Two rows so far: the demo set the administrator's and the tenant login's passwords.
    assert!(head.contains("audit_head=2:"), "{head}");
    daemon.stop(Signal::INT);
}
