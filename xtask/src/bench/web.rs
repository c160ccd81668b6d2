//! The web UI under load: the Recordings search and the Activity audit log filter, through
//! the daemon's HTTPS API, over [`ROWS`] recordings and [`ROWS`] audit rows, with
//! [`CONNECTIONS`] concurrent users driven by `wrk` from a second process; and sign-in,
//! whose cost is the Argon2id hash. Goal: search and filter p99 under [`GOAL_P99_MS`].
//!
//! The database is made once by `tapline-index`'s `fill_catalog` example and kept, like the
//! reconstruction's capture. Each wrk connection walks a fixed list of searches a supervisor
//! or auditor would make (a day, an agent, a number prefix, a queue, a case id; users, events,
//! objects), so the server sees many different queries, not one cached answer.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use super::{RUNS, median};
use crate::cargo;

/// Recordings rows, and as many audit log rows.
pub(super) const ROWS: usize = 1_000_000;
/// Concurrent users, each one wrk connection.
pub(super) const CONNECTIONS: usize = 50;
/// The goal for the searches' 99th percentile.
pub(super) const GOAL_P99_MS: f64 = 50.0;
/// How long each wrk run lasts.
const SECONDS: u32 = 10;
/// Sign-ins run with few connections: each costs one Argon2id hash (19 MiB, 2 passes), and
/// more connections than cores only queue.
const SIGN_IN_CONNECTIONS: usize = 2;
const ACCOUNT: &str = "bench-admin";
const PASSWORD: &str = "benchmark password";

/// Searches the Recordings page makes, as its API requests.
const RECORDING_SEARCHES: &[&str] = &[
    "/api/v1/recordings",
    "/api/v1/recordings?from=2026-11-02T00:00&to=2026-11-03T00:00",
    "/api/v1/recordings?from=2026-11-13T00:00&to=2026-11-20T00:00",
    "/api/v1/recordings?agent=agent017",
    "/api/v1/recordings?agent=agent233&from=2026-10-21T00:00&to=2026-11-20T00:00",
    "/api/v1/recordings?customer=%2B1212",
    "/api/v1/recordings?customer=%2B1415555",
    "/api/v1/recordings?queue=Billing",
    "/api/v1/recordings?queue=Support%20Tier%201&from=2026-11-13T00:00&to=2026-11-20T00:00",
    "/api/v1/recordings?case_id=CASE-00420",
    "/api/v1/recordings?size=200",
];

/// Filters the Activity audit log page makes.
const AUDIT_FILTERS: &[&str] = &[
    "/api/v1/audit-log",
    "/api/v1/audit-log?from=2026-11-02T00:00&to=2026-11-03T00:00",
    "/api/v1/audit-log?users=auditor1",
    "/api/v1/audit-log?users=admin,auditor2,auditor3",
    "/api/v1/audit-log?event=Recordings",
    "/api/v1/audit-log?event=Recordings&sub_event=Download",
    "/api/v1/audit-log?object=S202610*",
    "/api/v1/audit-log?comments=matter%201042&from=2026-10-21T00:00&to=2026-11-20T00:00",
    "/api/v1/audit-log/events",
];

/// One wrk run's figures.
struct Load {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// What the runs measured.
pub(super) struct WebLoad {
    recordings: Vec<Load>,
    audit: Vec<Load>,
    sign_in: Vec<Load>,
    /// `/proc/loadavg`'s three averages when the first run began: the server shares the
    /// machine, so other work shows in every figure.
    load_average: String,
}

pub(super) fn measure() -> anyhow::Result<WebLoad> {
    cargo(&["build", "--release", "--locked", "--package", "tapline"])?;
    cargo(&[
        "build",
        "--release",
        "--locked",
        "--package",
        "tapline-index",
        "--example",
        "fill_catalog",
    ])?;
    let target =
        PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into()));
    let dir = PathBuf::from(format!("target/bench/web-{ROWS}"));
    std::fs::create_dir_all(&dir)?;
    fill(&target.join("release/examples/fill_catalog"), &dir)?;

    let daemon = Daemon::start(&target.join("release/tapline"), &dir)?;
    let cookie = daemon.sign_in()?;
    let load_average = std::fs::read_to_string("/proc/loadavg")?
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", ");
    let mut measured = WebLoad {
        recordings: Vec::new(),
        audit: Vec::new(),
        sign_in: Vec::new(),
        load_average,
    };
    for run in 1..=RUNS {
        let load = wrk(
            &dir,
            daemon.addr,
            CONNECTIONS,
            &get_script(RECORDING_SEARCHES, &cookie),
        )?;
        eprintln!("xtask: web run {run}: recordings {}", load.describe());
        measured.recordings.push(load);
        let load = wrk(
            &dir,
            daemon.addr,
            CONNECTIONS,
            &get_script(AUDIT_FILTERS, &cookie),
        )?;
        eprintln!("xtask: web run {run}: audit log {}", load.describe());
        measured.audit.push(load);
        let load = wrk(&dir, daemon.addr, SIGN_IN_CONNECTIONS, &sign_in_script())?;
        eprintln!("xtask: web run {run}: sign-in {}", load.describe());
        measured.sign_in.push(load);
    }
    Ok(measured)
}

impl Load {
    fn describe(&self) -> String {
        format!(
            "{:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            self.requests_per_second, self.p50_ms, self.p99_ms, self.errors
        )
    }
}

impl WebLoad {
    pub(super) fn write_section(&self, out: &mut String) -> anyhow::Result<()> {
        writeln!(out, "## Web UI under load\n")?;
        writeln!(
            out,
            "{ROWS} recordings and {ROWS} audit log rows (`fill_catalog`), `tapline run` serving \
             its HTTPS API; `wrk` in a second process, {CONNECTIONS} connections (one per \
             concurrent user) for {SECONDS} s, each walking {} recordings searches or {} audit \
             log filters; sign-in with {SIGN_IN_CONNECTIONS} connections. Server and wrk share \
             the machine's cores. Load average when the runs began: {} (this machine has {} \
             cores; other work on it shows in every figure). Goal: search and filter p99 under \
             {GOAL_P99_MS} ms.\n",
            RECORDING_SEARCHES.len(),
            AUDIT_FILTERS.len(),
            self.load_average,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        )?;
        writeln!(out, "| | requests/s | p50 | p99 | errors | goal |")?;
        writeln!(out, "|---|---:|---:|---:|---:|---|")?;
        for (name, loads, goal) in [
            ("Recordings search", &self.recordings, true),
            ("Activity audit log filter", &self.audit, true),
            ("Sign-in (Argon2id, 19 MiB, 2 passes)", &self.sign_in, false),
        ] {
            let rate = median(
                &mut loads
                    .iter()
                    .map(|l| l.requests_per_second)
                    .collect::<Vec<_>>(),
            );
            let p50 = median(&mut loads.iter().map(|l| l.p50_ms).collect::<Vec<_>>());
            let p99 = median(&mut loads.iter().map(|l| l.p99_ms).collect::<Vec<_>>());
            let errors: u64 = loads.iter().map(|l| l.errors).sum();
            let verdict = match (goal, p99 < GOAL_P99_MS && errors == 0) {
                (false, _) => "cost of the hash",
                (true, true) => "met",
                (true, false) => "**missed**",
            };
            writeln!(
                out,
                "| {name} | {rate:.0} | {p50:.2} ms | {p99:.2} ms | {errors} | {verdict} |"
            )?;
        }
        writeln!(
            out,
            "\nReproduce with `cargo xtask bench`, or only this part with `cargo xtask bench web`; \
             the data set is kept in \
             `target/bench/web-{ROWS}`.\n"
        )?;
        Ok(())
    }
}

/// Fills the database once; `fill_catalog` keeps a marker and skips the filling next time.
fn fill(program: &Path, dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(program)
        .arg(dir.join("data"))
        .arg(ROWS.to_string())
        .arg("1")
        .env("TAPLINE_LOG", "warn")
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{} failed ({})", program.display(), out.status);
    }
    Ok(())
}

/// `tapline run` on the filled data directory, with an administrator to sign in as.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    fn start(tapline: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let config = dir.join("tapline.toml");
        std::fs::write(
            &config,
            "[tenant]\nname = \"Bench\"\ntimezone = \"America/New_York\"\n\
             [storage]\ndata_dir = \"data\"\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\n\
             [turn]\nlisten = \"127.0.0.1:0\"\n",
        )?;
        let mut add = Command::new(tapline)
            .args([
                "account",
                "add",
                ACCOUNT,
                "--role",
                "Administrator",
                "--password-stdin",
            ])
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot run tapline account add")?;
        writeln!(add.stdin.take().context("tapline's input")?, "{PASSWORD}")?;
        if !add.wait()?.success() {
            bail!("tapline account add failed");
        }
        let mut child = Command::new(tapline)
            .args(["run", "--config"])
            .arg(&config)
            .env("TAPLINE_LOG", "warn")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start tapline run")?;
        let stdout = child.stdout.take().context("tapline's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                bail!("tapline run exited before its web service listened");
            };
            if let Some(url) = line?.strip_prefix("listening: web https://") {
                break url.trim_end_matches('/').parse()?;
            }
        };
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Daemon { child, addr })
    }

    /// Signs in through the API and returns the session cookie, `name=value`.
    fn sign_in(&self) -> anyhow::Result<String> {
        let out = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--insecure",
                "--dump-header",
                "-",
            ])
            .args([
                "--output",
                "/dev/null",
                "--header",
                "Content-Type: application/json",
            ])
            .args(["--data", &sign_in_body()])
            .arg(format!("https://{}/api/v1/session", self.addr))
            .output()
            .context("cannot run curl")?;
        let headers = String::from_utf8_lossy(&out.stdout);
        headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie").then(|| {
                    value
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
            })
            .filter(|cookie| !cookie.is_empty())
            .with_context(|| format!("sign-in gave no session cookie:\n{headers}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn sign_in_body() -> String {
    format!(r#"{{"username":"{ACCOUNT}","password":"{PASSWORD}"}}"#)
}

/// A wrk script in which each connection walks `paths` from its own starting point.
fn get_script(paths: &[&str], cookie: &str) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "local paths = {{{}}}\n\
         local i = 0\n\
         wrk.headers[\"Cookie\"] = {cookie:?}\n\
         wrk.headers[\"Accept\"] = \"application/json\"\n\
         setup = function(thread) thread:set(\"id\", i) i = i + 1 end\n\
         init = function() n = id * 7 end\n\
         request = function()\n  n = n + 1\n  return wrk.format(\"GET\", paths[(n % #paths) + 1])\nend\n",
        list.join(", ")
    )
}

fn sign_in_script() -> String {
    format!(
        "wrk.method = \"POST\"\n\
         wrk.path = \"/api/v1/session\"\n\
         wrk.body = {:?}\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
        sign_in_body()
    )
}

/// Runs wrk against `addr` with `script` and reads its latency distribution.
fn wrk(dir: &Path, addr: SocketAddr, connections: usize, script: &str) -> anyhow::Result<Load> {
    let script_path = dir.join("load.lua");
    std::fs::write(&script_path, script)?;
    let out = Command::new("wrk")
        .args(["--threads", "1", "--latency", "--timeout", "5s"])
        .arg("--connections")
        .arg(connections.to_string())
        .arg("--duration")
        .arg(format!("{SECONDS}s"))
        .arg("--script")
        .arg(&script_path)
        .arg(format!("https://{addr}"))
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// Reads `Requests/sec`, the 50% and 99% latencies, and errors (non-2xx answers, socket
/// errors) from wrk's `--latency` report.
fn parse_wrk(text: &str) -> Option<Load> {
    let mut load = Load {
        requests_per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    let (mut p50, mut p99, mut rate) = (None, None, None);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => p50 = milliseconds(value),
            ["99%", value] => p99 = milliseconds(value),
            ["Requests/sec:", value] => rate = value.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                load.errors += count.parse::<u64>().ok()?;
            }
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    load.p50_ms = p50?;
    load.p99_ms = p99?;
    load.requests_per_second = rate?;
    Some(load)
}

/// wrk's durations: `812.00us`, `4.21ms`, `1.02s`.
fn milliseconds(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    Some(number.parse::<f64>().ok()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_latency_report() {
        let report = "Running 10s test @ https://127.0.0.1:4443\n  1 threads and 50 connections\n  \
                      Latency Distribution\n     50%    3.10ms\n     75%    4.00ms\n     90%    \
                      6.00ms\n     99%   12.50ms\n  12000 requests in 10.00s, 40.00MB read\n  \
                      Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx \
                      responses: 4\nRequests/sec:   1200.50\nTransfer/sec:      4.00MB\n";
        let load = parse_wrk(report).expect("a complete report");
        assert_eq!(load.p50_ms, 3.1);
        assert_eq!(load.p99_ms, 12.5);
        assert_eq!(load.requests_per_second, 1200.5);
        assert_eq!(load.errors, 7);
        assert_eq!(milliseconds("812.00us"), Some(0.812));
        assert_eq!(milliseconds("1.50s"), Some(1500.0));
    }
}
