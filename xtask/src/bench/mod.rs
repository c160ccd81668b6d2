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

/// The parts, in the order the report lists them.
const PARTS: &[&str] = &["reconstruction", "live", "sftp", "index", "turn", "web"];

/// Runs the parts named in `parts` (all of them when empty). A full run writes the whole
/// report; a partial one replaces only its parts' sections of `docs/benchmarks.md`.
pub(crate) fn run(parts: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        bail!(
            "unknown benchmark {unknown:?}: the parts are {}",
            PARTS.join(", ")
        );
    }
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if !rustix::process::geteuid().is_root() {
        bail!(
            "`cargo xtask bench` needs root: the live-capture benchmark creates two network \
             namespaces joined by a veth pair (CAP_NET_ADMIN, CAP_SYS_ADMIN) and captures on \
             it (CAP_NET_RAW), and the others pin processes to cores. Run it again as root."
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
            .args(parts)
            .status()
            .with_context(|| format!("cannot start {}", release.display()))?;
        if !status.success() {
            bail!("the release build of `cargo xtask bench` failed ({status})");
        }
        return Ok(());
    }
    let mut sections: Vec<(&str, String)> = Vec::new();
    let mut section = |part: &'static str, write: &dyn Fn(&mut String) -> anyhow::Result<()>| {
        let mut text = String::new();
        write(&mut text)?;
        sections.push((part, text));
        anyhow::Ok(())
    };
    // The live capture first: if the network namespaces cannot be made, it fails before the
    // minutes of reconstruction rather than after.
    if wanted("live") {
        let live = live::measure()?;
        section("live", &|out| live.write_section(out))?;
    }
    if wanted("reconstruction") {
        let reconstruction = reconstruction::measure()?;
        section("reconstruction", &|out| reconstruction.write_section(out))?;
    }
    if wanted("sftp") {
        let sftp = sftp::measure()?;
        section("sftp", &|out| sftp.write_section(out))?;
    }
    if wanted("index") {
        let index = index::measure()?;
        section("index", &|out| index.write_section(out))?;
    }
    if wanted("turn") {
        let turn = turn::measure()?;
        section("turn", &|out| turn.write_section(out))?;
    }
    if wanted("web") {
        let web = web::measure()?;
        section("web", &|out| web.write_section(out))?;
    }
    sections.sort_by_key(|(part, _)| PARTS.iter().position(|p| p == part));

    let path = Path::new("docs/benchmarks.md");
    let report = if parts.is_empty() {
        let mut report = header()?;
        for (_, text) in &sections {
            report.push_str(text);
        }
        report
    } else {
        let mut document = std::fs::read_to_string(path).unwrap_or_default();
        for (_, text) in &sections {
            document = replace_section(&document, text);
        }
        document
    };
    for (_, text) in &sections {
        print!("{text}");
    }
    std::fs::create_dir_all("docs")?;
    std::fs::write(path, report)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Replaces the section of `document` with the same `## ` heading as `section` (its first
/// line) by `section`, or appends it.
fn replace_section(document: &str, section: &str) -> String {
    let heading = section.lines().next().unwrap_or_default();
    let found = document
        .match_indices(heading)
        .map(|(at, _)| at)
        .find(|&at| (at == 0 || document[..at].ends_with('\n')) && heading.starts_with("## "));
    let Some(start) = found else {
        let mut out = document.to_owned();
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
        return out;
    };
    let rest = &document[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map_or(document.len(), |at| start + heading.len() + at + 1);
    format!("{}{section}{}", &document[..start], &document[end..])
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

/// How a goal fares, as the report says it.
fn met(yes: bool) -> &'static str {
    if yes { "**met**" } else { "**missed**" }
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn a_section_replaces_its_predecessor_and_nothing_else() {
        let section = "## STUN/TURN relay\n\nnew\n\n";
        for (document, expected) in [
            (
                "# B\n\n## A\n\na\n",
                "# B\n\n## A\n\na\n\n## STUN/TURN relay\n\nnew\n\n",
            ),
            (
                "# B\n\n## A\n\na\n\n",
                "# B\n\n## A\n\na\n\n## STUN/TURN relay\n\nnew\n\n",
            ),
            (
                "# B\n\n## STUN/TURN relay\n\nold\n\n## C\n\nc\n",
                "# B\n\n## STUN/TURN relay\n\nnew\n\n## C\n\nc\n",
            ),
            (
                "# B\n\n## A\n\n## STUN/TURN relay\n\nold\nolder\n",
                "# B\n\n## A\n\n## STUN/TURN relay\n\nnew\n\n",
            ),
        ] {
            assert_eq!(replace_section(document, section), expected, "{document:?}");
        }
    }
}
