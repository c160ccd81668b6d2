//! The harness for Tapline's end-to-end tests.
//!
//! Each test gets an appliance of its own in a temporary directory ([`Appliance`]): a config
//! whose listeners are on loopback port 0, its own data directory, and a `NOTIFY_SOCKET` of its
//! own ([`NotifySocket`]) that plays systemd's part. The daemon is the real binary, built by
//! `cargo xtask test` before the tests run (or by `cargo build -p tapline`).
//!
//! Peers are real programs we did not write: curl for HTTPS, Python's `prometheus_client` for
//! the metrics format, `systemd-analyze` for the unit file. A missing peer fails the test with
//! the command that installs it; nothing is skipped quietly.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `tapline` binary under test.
pub fn tapline_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TAPLINE_BIN") {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("tapline");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p tapline` (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// Runs `tapline ARGS` to completion.
pub fn tapline(args: &[&str]) -> Output {
    Command::new(tapline_bin())
        .args(args)
        .env_remove("TAPLINE_CONFIG")
        .output()
        .unwrap()
}

/// A peer program the tests need; fails loudly, naming the package, when it is missing.
pub fn peer(program: &str, debian_package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "test peer `{program}` is not installed: `apt-get install {debian_package}` \
         (`cargo xtask test` installs every peer)"
    );
    Command::new(program)
}

/// A temporary appliance: a directory with a config file and a data directory.
pub struct Appliance {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Appliance {
    /// A valid config on loopback port 0, plus `extra` TOML appended (sections that are not
    /// in the base: `[capture]`).
    pub fn new(extra: &str) -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tapline.toml");
        let text = format!(
            "[tenant]\nname = \"AcmeJets\"\ntimezone = \"America/Los_Angeles\"\n\
             [storage]\ndata_dir = \"data\"\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\n\
             [turn]\nlisten = \"127.0.0.1:0\"\n{extra}"
        );
        std::fs::write(&config, text).unwrap();
        Appliance { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cert(&self) -> PathBuf {
        self.data_dir().join("tls/cert.pem")
    }

    /// Starts `tapline run` with systemd's environment pointed at `notify`.
    pub fn start(&self, notify: Option<&NotifySocket>, watchdog: Option<Duration>) -> Daemon {
        // systemd names the process its watchdog applies to; `exec` keeps the shell's PID, so
        // `$$` is the daemon's own, as it would be under systemd.
        let mut command = Command::new("sh");
        command
            .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
            .arg(tapline_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .env_remove("TAPLINE_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env("TAPLINE_LOG", "info");
        if let Some(notify) = notify {
            command.env("NOTIFY_SOCKET", &notify.path);
        }
        if let Some(interval) = watchdog {
            command.env("WATCHDOG_USEC", interval.as_micros().to_string());
        }
        Daemon::spawn(command)
    }
}

/// A running daemon, its output collected as it comes.
pub struct Daemon {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stdout_seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `command` (a `tapline` invocation) with its output captured.
    pub fn spawn(mut command: Command) -> Daemon {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Daemon {
            child,
            stdout,
            stdout_seen: Vec::new(),
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest of it.
    pub fn wait_for_stdout(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.stdout_seen.iter().find(|l| l.starts_with(prefix)) {
            return line[prefix.len()..].to_owned();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!(
                    "no stdout line starting {prefix:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout_seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// The web listener's base URL, e.g. `https://127.0.0.1:41234/`.
    pub fn web_url(&mut self) -> String {
        self.wait_for_stdout("listening: web ", Duration::from_secs(30))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Sends `signal` and checks that the daemon drains and exits 0 within 30 s.
    pub fn stop(&mut self, signal: rustix::process::Signal) {
        self.signal(signal);
        let status = self.wait_exit(Duration::from_secs(30));
        assert_eq!(
            status.code(),
            Some(0),
            "after {signal:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Waits for the process to exit; panics (after killing it) if it does not in time.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain what is left.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tapline did not exit within {timeout:?}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A datagram socket standing in for systemd's notification socket.
pub struct NotifySocket {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    socket: UnixDatagram,
    /// Every message received so far, in order.
    pub messages: Vec<String>,
}

impl NotifySocket {
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            path,
            socket,
            messages: Vec::new(),
        }
    }

    /// Receives messages until one satisfies `done` (returned), or panics after `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching notification within {timeout:?}; got {:?}",
                self.messages
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = notification(&buf[..n]);
                self.messages.push(message.clone());
                if done(&message) {
                    return message;
                }
            }
        }
    }

    /// Collects every message that arrives within `period`.
    pub fn collect_for(&mut self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = notification(&buf[..n]);
                self.messages.push(message.clone());
                got.push(message);
            }
        }
    }
}

/// One datagram's assignments, newline-separated, without the final newline.
fn notification(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\n')
        .to_owned()
}

impl Default for NotifySocket {
    fn default() -> NotifySocket {
        NotifySocket::new()
    }
}

/// An HTTPS GET with curl, trusting only `cacert`; returns the status code and body.
pub fn https_get(url: &str, cacert: &Path) -> (u16, String) {
    let out = peer("curl", "curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(cacert)
        .args(["--write-out", "\n%{http_code}", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One row of the `recordings` table, as the end-to-end tests check it.
#[derive(Debug)]
pub struct RecordingRow {
    pub sip_call_id: String,
    pub status: String,
    /// The WAV file, from the row's directory and file name.
    pub path: PathBuf,
    pub duration_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    /// Packets from the caller and from the callee.
    pub packets: (Option<i64>, Option<i64>),
    pub lost: (Option<i64>, Option<i64>),
    pub source: String,
}

/// Every recording's row in the appliance at `data_dir`, in the order the calls were answered.
pub fn recording_rows(data_dir: &Path) -> Vec<RecordingRow> {
    let conn = tapline_store::rusqlite::Connection::open(data_dir.join("tapline.db")).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT sip_call_id, status, directory, file_name, duration_ms, end_reason, size_bytes,
                    sha256, caller_packets, callee_packets, caller_lost, callee_lost, source
             FROM recordings ORDER BY answered_at",
        )
        .unwrap();
    statement
        .query_map([], |r| {
            let directory: String = r.get(2)?;
            let file: String = r.get(3)?;
            Ok(RecordingRow {
                sip_call_id: r.get(0)?,
                status: r.get(1)?,
                path: data_dir.join("recordings").join(directory).join(file),
                duration_ms: r.get(4)?,
                end_reason: r.get(5)?,
                size: r.get(6)?,
                sha256: r.get(7)?,
                packets: (r.get(8)?, r.get(9)?),
                lost: (r.get(10)?, r.get(11)?),
                source: r.get(12)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A file's SHA-256 as coreutils' `sha256sum` computes it.
pub fn sha256sum(path: &Path) -> String {
    let out = peer("sha256sum", "coreutils").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// The tenant's name in [`Appliance::new`]'s config: also the tenant's SFTP login.
pub const TENANT: &str = "AcmeJets";

/// SFTP logins, made straight in an appliance's database through `tapline-accounts` before its
/// daemon starts (as the `tapline account` commands would make them).
impl Appliance {
    /// The appliance's database, created and migrated if it is not yet.
    pub fn store(&self) -> tapline_store::Store {
        tapline_provisioning::prepare_data_dir(&self.data_dir()).unwrap();
        tapline_store::Store::open_in(&self.data_dir()).unwrap()
    }

    /// Sets the tenant login's SFTP password.
    pub fn set_tenant_sftp_password(&self, password: &str) {
        tapline_accounts::login::set_tenant_password(
            &self.store(),
            TENANT,
            password,
            &tapline_audit::Actor::SYSTEM,
        )
        .unwrap();
    }

    /// Creates a local account with `role` (any case) and `password`.
    pub fn add_account(&self, name: &str, role: &str, password: &str) {
        tapline_accounts::upsert(
            &self.store(),
            name,
            role.parse().unwrap(),
            password,
            false,
            &tapline_audit::Actor::SYSTEM,
        )
        .unwrap();
    }

    /// Lets account `name` log in with the public key on `openssh_line`.
    pub fn add_account_key(&self, name: &str, openssh_line: &str) {
        tapline_accounts::keys::add_key(
            &self.store(),
            name,
            openssh_line,
            &tapline_audit::Actor::SYSTEM,
        )
        .unwrap();
    }
}

impl Daemon {
    /// The SFTP listener's address, from its `listening: sftp sftp://…` line.
    pub fn sftp_addr(&mut self) -> std::net::SocketAddr {
        let url = self.wait_for_stdout("listening: sftp ", Duration::from_secs(30));
        url.trim_start_matches("sftp://").parse().unwrap()
    }

    /// The daemon's resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}
