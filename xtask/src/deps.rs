//! System packages the tasks need, installed from Debian's archive.
//!
//! As root the missing ones are installed with apt-get; otherwise the exact command is printed
//! and the task stops, because a half-equipped machine gives confusing failures later.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Building Tapline: a C compiler for SQLite (bundled) and ring; libopus, the reference
/// Opus codec, found through pkg-config.
pub(crate) const BUILD: &[&str] = &["build-essential", "pkg-config", "libopus-dev"];

/// The peers the tests talk to, none of them ours:
/// - systemd: `systemd-analyze verify` and `security` on the unit file, sysusers, tmpfiles;
/// - curl: an independent HTTPS client for /health and /metrics;
/// - python3-prometheus-client: the Prometheus project's own OpenMetrics parser;
/// - python3: the standard `wave` module reads recordings back;
/// - GStreamer: an independent RTP depayloader and G.711 decoder, the oracle for audio;
/// - iproute2, ethtool: network namespaces, veth pairs and `tc` mirroring for capture tests;
/// - sip-tester (SIPp) and sox: real calls with real audio across those namespaces;
/// - openssh-client (`sftp`, `ssh-keygen`), lftp and python3-paramiko: three SFTP clients;
/// - libreoffice-calc-nogui: a spreadsheet reading the index files back;
/// - chromium and chromium-driver: a real browser for the web UI and WebRTC through the relay.
pub(crate) const TEST: &[&str] = &[
    "systemd",
    "curl",
    "ca-certificates",
    "python3",
    "python3-prometheus-client",
    "gstreamer1.0-tools",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "iproute2",
    "ethtool",
    "sip-tester",
    "sox",
    "coreutils",
    "openssh-client",
    "lftp",
    "python3-paramiko",
    "libreoffice-calc-nogui",
    // turnutils_stunclient, turnutils_uclient and turnutils_peer: STUN and TURN clients and
    // an echo peer for the relay. Its own server is masked before installing, so it never
    // starts (see `mask_services`).
    "coturn",
    "chromium",
    "chromium-driver",
    "fonts-dejavu-core",
];

/// The anchors the benchmarks compare against (tshark; OpenSSH's `sftp-server` behind its
/// own `sshd`, with its `sftp` client; coturn's `turnserver` and its `turnutils_uclient` load),
/// wrk for HTTP load, GNU time for peak memory, taskset to pin them,
/// and iproute2 for the network namespaces and veth pair the live capture runs across.
pub(crate) const BENCH: &[&str] = &[
    "tshark",
    "time",
    "util-linux",
    "iproute2",
    "openssh-client",
    "openssh-sftp-server",
    "openssh-server",
    "coturn",
    "wrk",
];

pub(crate) fn ensure(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root()? {
        bail!(
            "missing Debian packages: {}\nInstall them with:\n  sudo apt-get install -y {}\nthen run \
             this command again.",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    mask_services(&missing)?;
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing))?;
    let still: Vec<&str> = missing.into_iter().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt-get did not install: {}", still.join(" "));
    }
    Ok(())
}

/// Packages installed only for their clients whose servers must not start: their systemd
/// units are masked (linked to /dev/null) before the package is installed, so its scripts
/// cannot start them. A unit already masked or present is left as it is.
fn mask_services(missing: &[&str]) -> anyhow::Result<()> {
    const SERVICES: &[(&str, &str)] = &[("coturn", "coturn.service")];
    let dir = Path::new("/etc/systemd/system");
    for (package, unit) in SERVICES {
        if !missing.contains(package) {
            continue;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let link = dir.join(unit);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/dev/null", &link)
                .with_context(|| format!("cannot mask {unit}"))?;
        }
    }
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .map(|out| out.status.success() && out.stdout.ends_with(b" installed"))
        .unwrap_or(false)
}

fn is_root() -> anyhow::Result<bool> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u`")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
