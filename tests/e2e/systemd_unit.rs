//! The unit file, as systemd itself reads it.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use tapline_tests::{peer, tapline_bin};

/// The unit with ExecStart= pointing at the binary under test (systemd-analyze checks that
/// the program exists), in a directory of its own.
fn unit_under_test() -> (tempfile::TempDir, std::path::PathBuf) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/systemd/tapline.service");
    let text = std::fs::read_to_string(source).unwrap();
    assert!(
        text.contains("ExecStart=/usr/bin/tapline run"),
        "the unit runs the daemon"
    );
    let text = text.replace("/usr/bin/tapline", tapline_bin().to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("tapline.service");
    std::fs::write(&unit, text).unwrap();
    (dir, unit)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let (_dir, unit) = unit_under_test();
    let out = peer("systemd-analyze", "systemd")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

#[test]
fn the_sandbox_rates_ok_in_systemd_analyze_security() {
    let (_dir, unit) = unit_under_test();
    // Exposure is 0.0 (locked down) to 10.0 (wide open); systemd calls up to 3.9 "OK".
    // The threshold is in tenths: fail above 2.5.
    let out = peer("systemd-analyze", "systemd")
        .args(["security", "--offline=yes", "--no-pager", "--threshold=25"])
        .arg(&unit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall rating in:\n{stdout}"));
    assert!(out.status.success(), "exposure above 2.5: {overall}");
    for must_hold in [
        "✓ PrivateTmp=",
        "✓ NoNewPrivileges=",
        "✓ ProtectSystem=",
        "✓ ProtectHome=",
        "✓ SystemCallArchitectures=",
        "✓ RestrictSUIDSGID=",
        "✓ CapabilityBoundingSet=~CAP_SYS_ADMIN",
    ] {
        assert!(
            stdout.contains(must_hold),
            "{must_hold} does not hold:\n{stdout}"
        );
    }
}

#[test]
fn the_unit_keeps_the_promises_the_daemon_relies_on() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/systemd/tapline.service"),
    )
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "RestartPreventExitStatus=78",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "StateDirectory=tapline",
        "SystemCallFilter=@system-service",
        "User=tapline",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}`");
    }
}

#[test]
fn sysusers_and_tmpfiles_give_the_daemon_its_user_and_a_config_dir_it_only_reads() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/systemd");
    let root = tempfile::tempdir().unwrap();
    for (source, dir) in [
        ("tapline.sysusers", "usr/lib/sysusers.d"),
        ("tapline.tmpfiles", "usr/lib/tmpfiles.d"),
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
        std::fs::copy(
            image.join(source),
            root.path().join(dir).join("tapline.conf"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    for (program, args) in [
        ("systemd-sysusers", vec![]),
        ("systemd-tmpfiles", vec!["--create"]),
    ] {
        let out = peer(program, "systemd")
            .arg(format!("--root={}", root.path().display()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("tapline:"))
        .expect("a tapline user");
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[5], "/var/lib/tapline");
    assert!(fields[6].ends_with("nologin"), "no login shell: {user}");
    let gid: u32 = fields[3].parse().unwrap();

    let config_dir = std::fs::metadata(root.path().join("etc/tapline")).unwrap();
    assert_eq!(config_dir.permissions().mode() & 0o777, 0o750);
    assert_eq!(
        (config_dir.uid(), config_dir.gid()),
        (0, gid),
        "root:tapline"
    );
}
