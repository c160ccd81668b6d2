//! `tapline index --date` on recordings made by `tapline record`: the files an SFTP user
//! downloads, read back by Python's csv module, with checksums that match the recordings.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tapline_tests::{Appliance, TENANT, peer, recording_rows, sha256sum, tapline};

const BRIEF_HEADER: &str = "CALL TYPE,START TIME,STOP TIME,AGENT NAME,CUSTOMER NUMBER,PHONE CHANNEL,\
CALLED NUMBER,CASEID,DURATION,FILENAME,DIRECTORY,ACCOUNT,START TIME UTC,STOP TIME UTC,QUEUE,\
QUEUE NAME,TRANSACTION ID,EXTERNAL VARIABLE 1,EXTERNAL VARIABLE 2,OUTDIAL CODE,WRAP UP CODE";

/// The local date (in `tz`) of a UTC time stamp, as coreutils' `date` sees it.
fn local_date(utc: &str, tz: &str) -> String {
    let out = peer("date", "coreutils")
        .env("TZ", tz)
        .args(["-d", utc, "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The rows of a CSV file as Python's csv module reads them.
fn python_csv(path: &Path) -> Vec<Vec<String>> {
    // Cells come back joined by ASCII unit separators, rows by record separators.
    let out = peer("python3", "python3")
        .args([
            "-c",
            "import csv, sys\n\
             with open(sys.argv[1], newline='') as f:\n\
             \x20   sys.stdout.write('\\x1e'.join('\\x1f'.join(r) for r in csv.reader(f)))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\x1e')
        .map(|row| row.split('\x1f').map(str::to_owned).collect())
        .collect()
}

/// Starts the daemon, downloads `remote` paths over SFTP with lftp as the tenant login, stops
/// the daemon, and returns where the files landed.
fn sftp_download(appliance: &Appliance, remote: &[&str]) -> Vec<PathBuf> {
    const PASSWORD: &str = "tenant sftp password";
    appliance.set_tenant_sftp_password(PASSWORD);
    let mut daemon = appliance.start(None, None);
    let addr = daemon.sftp_addr();
    let downloads = appliance.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let targets: Vec<PathBuf> = (0..remote.len())
        .map(|n| downloads.join(format!("file{n}")))
        .collect();
    let gets: String = remote
        .iter()
        .zip(&targets)
        .map(|(from, to)| format!("get {from} -o {}; ", to.display()))
        .collect();
    // The host key is checked in the SFTP tests; here any key will do.
    let script = format!(
        "set sftp:connect-program \"ssh -a -x -F /dev/null -o StrictHostKeyChecking=no \
         -o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no\"; set cmd:fail-exit yes; \
         set net:max-retries 1; set net:timeout 20; \
         open -u \"{TENANT},{PASSWORD}\" -p {port} sftp://127.0.0.1; {gets}bye",
        port = addr.port(),
    );
    let out = peer("lftp", "lftp").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "lftp failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.stop(rustix::process::Signal::TERM);
    targets
}

#[test]
fn a_recorded_day_is_indexed_with_checksums_that_match() {
    let appliance = Appliance::new("");
    // The bundled capture's calls were answered at 00:16 UTC; one hour west of UTC their day
    // is already over, so it can be indexed whenever this runs.
    let text = std::fs::read_to_string(&appliance.config).unwrap();
    std::fs::write(
        &appliance.config,
        text.replace("America/Los_Angeles", "Etc/GMT+1"),
    )
    .unwrap();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioning/demo/calls.pcap");
    let config = appliance.config.to_str().unwrap();
    let out = tapline(&[
        "record",
        "--pcap",
        capture.to_str().unwrap(),
        "--config",
        config,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = recording_rows(&appliance.data_dir());
    assert_eq!(rows.len(), 3);
    let db =
        tapline_store::rusqlite::Connection::open(appliance.data_dir().join("tapline.db")).unwrap();
    let answered: String = db
        .query_row("SELECT min(answered_at) FROM recordings", [], |r| r.get(0))
        .unwrap();
    let day = local_date(&answered, "Etc/GMT+1");

    let out = tapline(&["index", "--date", &day, "--config", config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "index of {day} (Etc/GMT+1): 3 calls in the brief index, 3 in the \
             detailed index"
        )),
        "{stdout}"
    );

    let compact = day.replace('-', "");
    let index_dir = appliance.data_dir().join("recordings/Index");
    let brief = index_dir.join(format!("I{compact}.csv"));
    let detailed = index_dir.join(format!("I{compact}_detailed.csv"));
    let copy = appliance
        .data_dir()
        .join(format!("recordings/S{compact}/I{compact}.csv"));
    assert_eq!(
        std::fs::read(&brief).unwrap(),
        std::fs::read(&copy).unwrap()
    );

    let brief_rows = python_csv(&brief);
    assert_eq!(brief_rows[0].join(","), BRIEF_HEADER);
    assert_eq!(brief_rows.len(), 4, "{brief_rows:?}");

    let detailed_rows = python_csv(&detailed);
    let header = &detailed_rows[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (file, directory, sha, status) = (
        column("FILENAME"),
        column("DIRECTORY"),
        column("SHA256"),
        column("STATUS"),
    );
    for row in &detailed_rows[1..] {
        let wav = appliance
            .data_dir()
            .join("recordings")
            .join(&row[directory])
            .join(&row[file]);
        assert_eq!(row[sha], sha256sum(&wav), "{row:?}");
        assert_eq!(row[status], "ok");
    }

    // What an administrator downloads over SFTP matches the detailed index.
    let first = &detailed_rows[1];
    let remote_recording = format!("/{}/{}", first[directory], first[file]);
    let remote_index = format!("/Index/I{compact}_detailed.csv");
    let downloaded = sftp_download(&appliance, &[&remote_recording, &remote_index]);
    assert_eq!(sha256sum(&downloaded[0]), first[sha]);
    assert_eq!(
        std::fs::read(&downloaded[1]).unwrap(),
        std::fs::read(&detailed).unwrap()
    );

    // The host key the server made is the one `tapline account list` tells administrators to
    // compare with their client's.
    let list = tapline(&["account", "list", "--config", config]);
    let list = String::from_utf8_lossy(&list.stdout);
    let shown = list
        .lines()
        .find_map(|l| l.strip_prefix("SSH host key: "))
        .unwrap();
    let keygen = peer("ssh-keygen", "openssh-client")
        .arg("-lf")
        .arg(appliance.data_dir().join("ssh/host_ed25519_key"))
        .output()
        .unwrap();
    let keygen = String::from_utf8_lossy(&keygen.stdout);
    assert_eq!(Some(shown), keygen.split(' ').nth(1), "{list}\n{keygen}");

    // Again: the same bytes, and nothing rewritten.
    let before = std::fs::read(&detailed).unwrap();
    let out = tapline(&["index", "--date", &day, "--config", config]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unchanged"));
    assert_eq!(std::fs::read(&detailed).unwrap(), before);

    // A day without calls gets a header-only file.
    let out = tapline(&["index", "--date", "2020-01-01", "--config", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = std::fs::read_to_string(index_dir.join("I20200101.csv")).unwrap();
    assert_eq!(empty, format!("{BRIEF_HEADER}\r\n"));

    // A day that is not over is refused.
    let out = tapline(&["index", "--date", "2999-01-01", "--config", config]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("tapline: 2999-01-01 is not over yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
