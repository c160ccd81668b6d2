//! Project tasks, run as `cargo xtask <task>` (a cargo alias in .cargo/config.toml).
//!
//! Each task installs what it needs first, so that on a fresh Debian 12 machine with only the
//! Rust toolchain the two commands of the README are all there is to it.

mod bench;
mod deps;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  demo [-- ARGS]   install build dependencies, build in release mode, run `tapline demo ARGS`
  test             install test peers, then fmt check, clippy -D warnings, every test
  check            fmt check and clippy only
  bench [PART...]  measure against the anchors (tshark, OpenSSH, coturn), write
                   docs/benchmarks.md; PART is reconstruction, live, sftp, index, turn
                   or web, and a partial run rewrites only those sections
";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.skip_while(|a| a == "--").collect();
    std::env::set_current_dir(workspace_root()).context("cannot enter the workspace")?;
    match task.as_str() {
        "demo" => demo(&rest),
        "test" => test(),
        "check" => check(),
        "bench" => bench::run(&rest),
        "" | "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

fn demo(args: &[String]) -> anyhow::Result<()> {
    deps::ensure(deps::BUILD)?;
    cargo(&["build", "--release", "--locked", "--package", "tapline"])?;
    let status = Command::new(Path::new("target/release/tapline"))
        .arg("demo")
        .args(args)
        .status()
        .context("cannot start target/release/tapline")?;
    // Ctrl-C reaches the demo too; a clean stop is success.
    if !status.success() {
        bail!("tapline demo exited with {status}");
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    deps::ensure(deps::BUILD)?;
    deps::ensure(deps::TEST)?;
    check()?;
    fuzz_targets_build()?;
    // The end-to-end tests run the real daemon binary; build it first so they test this tree.
    cargo(&["build", "--locked", "--package", "tapline"])?;
    cargo_test(&["test", "--workspace", "--locked", "--no-fail-fast"])
}

/// Runs `cargo test`, echoing its output, and ends with one line totalling every test binary's
/// results, so the outcome does not hinge on whichever binary happened to run last.
fn cargo_test(args: &[&str]) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run cargo")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut totals = TestTotals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait().context("waiting for cargo")?;
    println!(
        "\ntests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !status.success() || totals.failed > 0 {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    if totals.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// Sums cargo's `test result: ok. 5 passed; 0 failed; 1 ignored; ...` lines.
#[derive(Debug, Default, PartialEq)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            let (Some(count), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

fn check() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    Ok(())
}

/// Every wire parser has a cargo-fuzz project beside it (`<crate>/fuzz`), outside the main
/// workspace. Running a fuzzer needs nightly; checking that every target still builds does
/// not, so a parser change cannot quietly break its fuzzer.
fn fuzz_targets_build() -> anyhow::Result<()> {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir("appliance")
        .context("cannot list appliance/")?
        .filter_map(|entry| Some(entry.ok()?.path().join("fuzz/Cargo.toml")))
        .filter(|manifest| manifest.exists())
        .collect();
    manifests.sort();
    for manifest in &manifests {
        let manifest = manifest
            .to_str()
            .context("a non-UTF-8 path under appliance/")?;
        cargo(&[
            "check",
            "--locked",
            "--quiet",
            "--manifest-path",
            manifest,
            "--target-dir",
            "target/fuzz-check",
        ])?;
    }
    Ok(())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::TestTotals;

    #[test]
    fn totals_add_up_every_binary() {
        let mut totals = TestTotals::default();
        for line in [
            "test result: ok. 13 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; \
             finished in 0.00s",
            "running 1 test",
            "test result: FAILED. 6 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            totals.add(line);
        }
        assert_eq!(
            totals,
            TestTotals {
                passed: 19,
                failed: 1,
                ignored: 2
            }
        );
    }
}
