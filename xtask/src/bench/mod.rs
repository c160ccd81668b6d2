//! `cargo xtask bench`: Tapline's speed, measured beside an anchor on the same input in the
//! same run or against a stated goal, reported as medians in `docs/benchmarks.md`.
//!
//! - [`reconstruction`]: calls rebuilt from a capture file, beside tshark.
//! - [`live`]: frames captured from an interface into the `AF_PACKET` ring, against the goal
//!   of [`live::TARGET_RATE`] packets a second with no kernel drops.
//! - [`sftp`]: downloads from the SFTP server, beside OpenSSH's `sftp-server`.
//! - [`index`]: a day's index files for [`index::CALLS`] calls, against the goal of
//!   [`index::GOAL_SECONDS`].
//! - [`turn`]: the STUN/TURN relay, beside coturn's `turnserver`.
//! - [`web`]: the web UI's searches over a million rows, under [`web::CONNECTIONS`]
//!   concurrent users, against the goal of [`web::GOAL_P99_MS`].

mod index;
mod live;
mod reconstruction;
mod sftp;
mod turn;
mod web;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Runs of each measurement; the report gives their median.
const RUNS: usize = 3;

pub(crate) fn run() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "`cargo xtask bench` needs root: the live-capture benchmark creates two network \
             namespaces joined by a veth pair (CAP_NET_ADMIN, CAP_SYS_ADMIN) and captures on \
             it (CAP_NET_RAW). Run it again as root."
        );
    }
    crate::deps::ensure(crate::deps::BUILD)?;
    sftp::keep_system_sshd_off()?;
    crate::deps::ensure(crate::deps::BENCH)?;
    // The live benchmark's sender and capture loop run in this process and are what it times,
    // so they must be optimised, as the appliance is: a debug build of this program hands the
    // whole benchmark over to a release build of itself.
    if cfg!(debug_assertions) {
        crate::cargo(&["build", "--release", "--locked", "--package", "xtask"])?;
        let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        let release = Path::new(&target).join("release/xtask");
        let status = Command::new(&release)
            .arg("bench")
            .status()
            .with_context(|| format!("cannot start {}", release.display()))?;
        if !status.success() {
            bail!("the release build of `cargo xtask bench` failed ({status})");
        }
        return Ok(());
    }
    // The live capture first: if the network namespaces cannot be made, it fails before the
    // minutes of reconstruction rather than after.
    let live = live::measure()?;
    let reconstruction = reconstruction::measure()?;
    let sftp = sftp::measure()?;
    let index = index::measure()?;
    let turn = turn::measure()?;
    let web = web::measure()?;

    let mut report = header()?;
    reconstruction.write_section(&mut report)?;
    live.write_section(&mut report)?;
    sftp.write_section(&mut report)?;
    index.write_section(&mut report)?;
    turn.write_section(&mut report)?;
    web.write_section(&mut report)?;
    print!("{report}");
    std::fs::create_dir_all("docs")?;
    std::fs::write("docs/benchmarks.md", report)?;
    eprintln!("xtask: wrote docs/benchmarks.md");
    Ok(())
}

fn header() -> anyhow::Result<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|k| !k.is_empty());
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Made by `cargo xtask bench`; every figure is the median of {RUNS} runs in one"
    )?;
    writeln!(out, "invocation.")?;
    match kernel {
        Some(kernel) => writeln!(out, "Machine: {cpu}, {cores} cores, Linux {kernel}.\n")?,
        None => writeln!(out, "Machine: {cpu}, {cores} cores.\n")?,
    }
    Ok(out)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
