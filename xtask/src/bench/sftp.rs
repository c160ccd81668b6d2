//! SFTP downloads: a 200 MB file over loopback with OpenSSH's `sftp` client, from Tapline's
//! server (`tapline run`) and from OpenSSH's own `sftp-server` behind a throwaway `sshd`, with
//! the same cipher and the same request settings; then [`PARALLEL`] downloads at once from
//! each, none of which may stall.
//!
//! The `sshd` is the benchmark's own: its configuration, host key and client key live in
//! `target/bench/sftp/openssh`, made afresh each time; it listens on a loopback port of its own
//! and runs in the foreground for the measurement only. The system's `ssh` service is masked
//! and told not to run before `openssh-server` is installed ([`keep_system_sshd_off`]), so
//! installing the package for this benchmark never starts or enables it.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{RUNS, median};
use crate::cargo;

/// The file of the throughput runs: 200 MB.
const BIG_FILE_BYTES: usize = 200_000_000;
/// A transfer of it takes a fraction of a second; each run times several, so that one
/// scheduling hiccup on a shared machine does not decide the result.
const DOWNLOADS_PER_RUN: u32 = 5;
/// Downloads at once in the parallel run, and the size of each file.
const PARALLEL: usize = 50;
const PARALLEL_FILE_BYTES: usize = 20_000_000;
/// Both servers are asked for the same: AES-GCM (AES-NI on both sides) and OpenSSH's default
/// request size and depth, given explicitly so that neither server's `limits@openssh.com`
/// changes what the client asks.
const CIPHER: &str = "aes128-gcm@openssh.com";
const REQUEST_BYTES: &str = "32768";
const REQUESTS_IN_FLIGHT: &str = "64";
/// Each server runs on one core and every client on the other (`taskset`), so that the
/// servers are compared on what one core of theirs can send, with the same client receiving.
const SERVER_CORE: &str = "0";
const CLIENT_CORE: &str = "1";
/// A download that has not finished by then has stalled.
const STALL: Duration = Duration::from_secs(120);

const DAY: &str = "S20261121";
const BIG: &str = "R202611211200000001.wav";
const SMALL: &str = "R202611211200000003.wav";
const ACCOUNT: &str = "auditor";
const PASSWORD: &str = "benchmark password";

/// What the runs measured.
pub(super) struct Sftp {
    ours: Vec<Run>,
    theirs: Vec<Run>,
    parallel_ours: Parallel,
    parallel_theirs: Parallel,
    openssh: String,
}

/// One download of the big file.
struct Run {
    /// MB/s, from the first byte written to the last.
    rate: f64,
    /// The server's CPU time for the whole session (key exchange and login included).
    cpu: Duration,
}

struct Parallel {
    downloads: Vec<Duration>,
    wall: Duration,
}

/// Masks the system's `ssh` service and creates `/etc/ssh/sshd_not_to_be_run` (which Debian's
/// unit and init script both honour) when `openssh-server` is not installed yet, so that
/// installing it for the benchmark leaves no system `sshd` enabled or running.
pub(super) fn keep_system_sshd_off() -> anyhow::Result<()> {
    let installed = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", "openssh-server"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"));
    if installed {
        return Ok(());
    }
    std::fs::create_dir_all("/etc/ssh")?;
    std::fs::write(
        "/etc/ssh/sshd_not_to_be_run",
        "cargo xtask bench: no system sshd\n",
    )?;
    std::fs::create_dir_all("/etc/systemd/system")?;
    for unit in ["ssh.service", "ssh.socket", "sshd.service"] {
        let path = Path::new("/etc/systemd/system").join(unit);
        if std::fs::symlink_metadata(&path).is_err() {
            std::os::unix::fs::symlink("/dev/null", &path)
                .with_context(|| format!("cannot mask {}", path.display()))?;
        }
    }
    Ok(())
}

pub(super) fn measure() -> anyhow::Result<Sftp> {
    cargo(&["build", "--release", "--locked", "--package", "tapline"])?;
    let dir = std::env::current_dir()?.join("target/bench/sftp");
    // The files are kept between invocations; everything else starts afresh.
    let data = dir.join("data");
    for stale in [
        "openssh",
        "downloads",
        "data/ssh",
        "data/tapline.db",
        "data/tapline.db-wal",
        "data/tapline.db-shm",
    ] {
        let path = dir.join(stale);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
    }
    let day = data.join("recordings").join(DAY);
    std::fs::create_dir_all(&day)?;
    std::fs::create_dir_all(dir.join("downloads"))?;
    make_file(&day.join(BIG), BIG_FILE_BYTES)?;
    make_file(&day.join(SMALL), PARALLEL_FILE_BYTES)?;

    let tapline = Tapline::start(&dir)?;
    let openssh = OpenSsh::start(&dir, &day)?;
    let version = openssh.version()?;
    eprintln!(
        "xtask: Tapline on {}, {version} on {}",
        tapline.addr, openssh.addr
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 1..=RUNS {
        // Each server's first session also warms the page cache and the client's binary.
        let (rate_ours, cpu_ours) = throughput(&tapline, &dir)?;
        let (rate_theirs, cpu_theirs) = throughput(&openssh, &dir)?;
        eprintln!(
            "xtask: run {run}: Tapline {rate_ours:.0} MB/s ({:.2} CPU-s), OpenSSH \
             {rate_theirs:.0} MB/s ({:.2} CPU-s)",
            cpu_ours.as_secs_f64(),
            cpu_theirs.as_secs_f64()
        );
        ours.push(Run {
            rate: rate_ours,
            cpu: cpu_ours,
        });
        theirs.push(Run {
            rate: rate_theirs,
            cpu: cpu_theirs,
        });
    }
    let parallel_ours = parallel(&tapline, &dir)?;
    let parallel_theirs = parallel(&openssh, &dir)?;
    Ok(Sftp {
        ours,
        theirs,
        parallel_ours,
        parallel_theirs,
        openssh: version,
    })
}

/// A file of `len` pseudo-random bytes (nothing compresses), kept between invocations.
fn make_file(path: &Path, len: usize) -> anyhow::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == len as u64) {
        return Ok(());
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        out.write_all(&block[..n])?;
        left -= n;
    }
    out.flush()?;
    Ok(())
}

/// A server the benchmark downloads from, and how OpenSSH's client reaches it.
trait Server: Sync {
    fn addr(&self) -> SocketAddr;
    /// CPU time the server's processes have used so far.
    fn cpu_time(&self) -> anyhow::Result<Duration>;
    /// The client with its login options, without its destination.
    fn client(&self) -> Command;
    /// `user@host`.
    fn destination(&self) -> String;
    /// The remote path of `file`, a name in the day's directory.
    fn remote(&self, file: &str) -> String;
}

/// How long one download took.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// From starting the client to its exit: connection, key exchange, login, transfer.
    whole: Duration,
    /// From the first byte written to the local file to the last, when watched.
    transfer: Option<Duration>,
}

/// Downloads `file` (`expected` bytes) with OpenSSH's client into `to`. With `watch`, the
/// local file is watched as it grows, to time the transfer alone.
fn download(
    server: &dyn Server,
    file: &str,
    to: &Path,
    expected: u64,
    watch: bool,
) -> anyhow::Result<Timing> {
    let _ = std::fs::remove_file(to);
    let mut client = server.client();
    client
        .args(["-c", CIPHER, "-B", REQUEST_BYTES, "-R", REQUESTS_IN_FLIGHT])
        .args(["-o", "Compression=no", "-P"])
        .arg(server.addr().port().to_string())
        .arg(server.destination());
    let started = Instant::now();
    let mut child = client
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run sftp (apt-get install openssh-client)")?;
    let mut stdin = child.stdin.take().context("sftp's input")?;
    writeln!(stdin, "get {} {}", server.remote(file), to.display())?;
    writeln!(stdin, "bye")?;
    drop(stdin);
    let (mut first_byte, mut last_byte) = (None, None);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > STALL {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "a download from {} stalled: not done after {STALL:?}",
                server.addr()
            );
        }
        if watch && last_byte.is_none() {
            let len = std::fs::metadata(to).map_or(0, |m| m.len());
            let now = Instant::now();
            if len > 0 && first_byte.is_none() {
                first_byte = Some(now);
            }
            if len >= expected {
                last_byte = Some(now);
            }
            std::thread::sleep(Duration::from_micros(500));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let whole = started.elapsed();
    let got = std::fs::metadata(to).map_or(0, |m| m.len());
    if !status.success() || got != expected {
        bail!(
            "sftp got {got} bytes of {expected} of {file} from {} ({status})",
            server.addr()
        );
    }
    let transfer = match (first_byte, last_byte) {
        (Some(first), Some(last)) => Some(last.duration_since(first)),
        _ => None,
    };
    Ok(Timing { whole, transfer })
}

/// One throughput run: [`DOWNLOADS_PER_RUN`] downloads of the big file, each in a session of
/// its own; MB/s over their transfers together, and the server's CPU time per download.
fn throughput(server: &dyn Server, dir: &Path) -> anyhow::Result<(f64, Duration)> {
    let to = dir.join("downloads").join("big");
    let cpu_before = server.cpu_time()?;
    let mut transfers = Duration::ZERO;
    for _ in 0..DOWNLOADS_PER_RUN {
        let timing = download(server, BIG, &to, BIG_FILE_BYTES as u64, true)?;
        transfers += timing
            .transfer
            .context("the download ended before it could be timed")?;
        std::fs::remove_file(&to)?;
    }
    // A server process reaped just after its client exits has its time counted a moment
    // later.
    std::thread::sleep(Duration::from_millis(200));
    let cpu = server.cpu_time()?.saturating_sub(cpu_before) / DOWNLOADS_PER_RUN;
    let bytes = BIG_FILE_BYTES as f64 * f64::from(DOWNLOADS_PER_RUN);
    Ok((bytes / 1e6 / transfers.as_secs_f64().max(1e-3), cpu))
}

/// User and system time of `pid`, and of its children already reaped when `children`.
fn process_cpu(pid: u32, children: bool) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces; the first is field 3 (state).
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .context("an unreadable /proc stat")?
        .1
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17.
    let field = |n: usize| fields.get(n - 4).copied().unwrap_or(0);
    let mut ticks = field(14) + field(15);
    if children {
        ticks += field(16) + field(17);
    }
    // Linux reports these in USER_HZ, 100 a second on every architecture it runs on.
    Ok(Duration::from_millis(ticks * 10))
}

/// [`PARALLEL`] clients at once, each timed from start to exit.
fn parallel(server: &dyn Server, dir: &Path) -> anyhow::Result<Parallel> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<Timing>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PARALLEL)
            .map(|n| {
                let to = dir.join("downloads").join(format!("parallel-{n}"));
                scope.spawn(move || {
                    let timing = download(server, SMALL, &to, PARALLEL_FILE_BYTES as u64, false);
                    let _ = std::fs::remove_file(&to);
                    timing
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut downloads = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        downloads.push(
            result
                .with_context(|| format!("parallel download {n}"))?
                .whole,
        );
    }
    downloads.sort();
    eprintln!(
        "xtask: {PARALLEL} parallel downloads from {}: {:.2} s to {:.2} s each, {:.2} s in all",
        server.addr(),
        downloads[0].as_secs_f64(),
        downloads[PARALLEL - 1].as_secs_f64(),
        wall.as_secs_f64()
    );
    Ok(Parallel { downloads, wall })
}

/// Options every client gets: no configuration, no host key prompts (the servers are ours,
/// on loopback), no agent.
fn client_base() -> Command {
    let mut sftp = Command::new("taskset");
    sftp.args(["-c", CLIENT_CORE, "sftp"]);
    sftp.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentityAgent=none",
    ]);
    sftp
}

/// `tapline run` with an SFTP account, its recordings the benchmark's files.
struct Tapline {
    daemon: Child,
    addr: SocketAddr,
    askpass: PathBuf,
}

impl Tapline {
    /// Serves `<dir>/data`, whose recordings are the benchmark's files.
    fn start(dir: &Path) -> anyhow::Result<Tapline> {
        let config = dir.join("tapline.toml");
        std::fs::write(
            &config,
            "[tenant]\nname = \"Bench\"\n[storage]\ndata_dir = \"data\"\n\
             [web]\nlisten = \"127.0.0.1:0\"\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\nmax_connections = 64\n\
             max_connections_per_account = 64\n\
             [turn]\nlisten = \"127.0.0.1:0\"\n",
        )?;
        let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        let tapline = &Path::new(&target).join("release/tapline");
        let mut add = Command::new(tapline)
            .args([
                "account",
                "add",
                ACCOUNT,
                "--role",
                "Auditor",
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
        let askpass = dir.join("askpass");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{PASSWORD}'\n"))?;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700))?;

        let mut daemon = Command::new("taskset")
            .args(["-c", SERVER_CORE])
            .arg(tapline)
            .args(["run", "--config"])
            .arg(&config)
            .env("TAPLINE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start tapline run")?;
        let stdout = daemon.stdout.take().context("tapline's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                bail!("tapline run exited before its SFTP service listened");
            };
            if let Some(url) = line?.strip_prefix("listening: sftp sftp://") {
                break url.parse()?;
            }
        };
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Tapline {
            daemon,
            addr,
            askpass,
        })
    }
}

impl Server for Tapline {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The daemon, every thread of it.
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        process_cpu(self.daemon.id(), false)
    }

    fn client(&self) -> Command {
        // Logged in by password through SSH_ASKPASS: `sftp -b` would forbid asking for one,
        // so commands go to its standard input.
        let mut sftp = client_base();
        sftp.args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
        ])
        .env("SSH_ASKPASS", &self.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force");
        sftp
    }

    fn destination(&self) -> String {
        format!("{ACCOUNT}@127.0.0.1")
    }

    fn remote(&self, file: &str) -> String {
        format!("/{DAY}/{file}")
    }
}

impl Drop for Tapline {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.daemon.id().to_string()])
            .status();
        let _ = self.daemon.wait();
    }
}

/// A throwaway `sshd` running OpenSSH's `sftp-server`, as root by key, on a loopback port.
struct OpenSsh {
    sshd: Child,
    addr: SocketAddr,
    key: PathBuf,
    files: PathBuf,
}

impl OpenSsh {
    fn start(dir: &Path, files: &Path) -> anyhow::Result<OpenSsh> {
        let home = dir.join("openssh");
        std::fs::create_dir_all(&home)?;
        let keygen = |path: &Path| -> anyhow::Result<()> {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .context("cannot run ssh-keygen (apt-get install openssh-client)")?;
            if !status.success() {
                bail!("ssh-keygen failed");
            }
            Ok(())
        };
        let host_key = home.join("host_ed25519_key");
        let key = home.join("client_ed25519_key");
        keygen(&host_key)?;
        keygen(&key)?;
        std::fs::copy(key.with_extension("pub"), home.join("authorized_keys"))?;
        // sshd insists on its privilege separation directory, which its service unit would
        // have made.
        std::fs::create_dir_all("/run/sshd")?;
        let port = free_port()?;
        let config = home.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\n\
                 AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPidFile none\n\
                 MaxStartups 100\nMaxSessions 100\nCompression no\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n",
                host = host_key.display(),
                authorized = home.join("authorized_keys").display(),
            ),
        )?;
        let sshd = Command::new("taskset")
            .args(["-c", SERVER_CORE, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start /usr/sbin/sshd (apt-get install openssh-server)")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("sshd did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(OpenSsh {
            sshd,
            addr,
            key,
            files: files.to_path_buf(),
        })
    }

    /// `OpenSSH_9.2p1 Debian-2+deb12u3`, from the server's identification line.
    fn version(&self) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new(&mut stream).read_line(&mut line)?;
        Ok(line.trim().trim_start_matches("SSH-2.0-").to_owned())
    }
}

impl Server for OpenSsh {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening `sshd` and the session processes it has reaped: `sshd` for the
    /// connection and `sftp-server` for the subsystem.
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        process_cpu(self.sshd.id(), true)
    }

    fn client(&self) -> Command {
        let mut sftp = client_base();
        sftp.arg("-i").arg(&self.key).args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
        ]);
        sftp
    }

    fn destination(&self) -> String {
        "root@127.0.0.1".to_owned()
    }

    fn remote(&self, file: &str) -> String {
        self.files.join(file).display().to_string()
    }
}

impl Drop for OpenSsh {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Sftp {
    pub(super) fn write_section(&self, out: &mut String) -> anyhow::Result<()> {
        let rate = |runs: &[Run]| median(&mut runs.iter().map(|r| r.rate).collect::<Vec<_>>());
        // CPU-seconds per GB downloaded, from the session's CPU time.
        let cpu = |runs: &[Run]| {
            let per_gb = 1e9 / BIG_FILE_BYTES as f64;
            median(
                &mut runs
                    .iter()
                    .map(|r| r.cpu.as_secs_f64() * per_gb)
                    .collect::<Vec<_>>(),
            )
        };
        let (ours, theirs) = (rate(&self.ours), rate(&self.theirs));
        let (ours_cpu, theirs_cpu) = (cpu(&self.ours), cpu(&self.theirs));
        writeln!(out, "## SFTP downloads\n")?;
        writeln!(
            out,
            "A {} MB file over loopback with OpenSSH's `sftp` client (`-c {CIPHER} -B \
             {REQUEST_BYTES} -R {REQUESTS_IN_FLIGHT}`), from Tapline's server (`tapline run`) \
             and from OpenSSH's own `sftp-server` behind a throwaway `sshd` ({}), each server \
             pinned to core {SERVER_CORE} and the client to core {CLIENT_CORE} (`taskset`). Each run downloads it {DOWNLOADS_PER_RUN} times, each \
             in a session of its own; throughput is the bytes over the time from the first byte \
             written to the local file to the last, and the server's CPU time covers the whole \
             sessions (key exchange and login included).\n",
            BIG_FILE_BYTES / 1_000_000,
            self.openssh
        )?;
        writeln!(out, "| | MB/s | server CPU-seconds per GB |")?;
        writeln!(out, "|---|---:|---:|")?;
        writeln!(out, "| Tapline | {ours:.0} | {ours_cpu:.2} |")?;
        writeln!(
            out,
            "| OpenSSH `sftp-server` (with its `sshd`) | {theirs:.0} | {theirs_cpu:.2} |"
        )?;
        writeln!(
            out,
            "| Tapline ÷ OpenSSH | {:.2} | {:.2} |\n",
            ours / theirs,
            ours_cpu / theirs_cpu
        )?;
        writeln!(
            out,
            "{PARALLEL} downloads at once of a {} MB file each, every client timed from start \
             to exit (login included); none may take longer than {} s:\n",
            PARALLEL_FILE_BYTES / 1_000_000,
            STALL.as_secs()
        )?;
        writeln!(out, "| | fastest | median | slowest | all {PARALLEL} |")?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        for (name, run) in [
            ("Tapline", &self.parallel_ours),
            ("OpenSSH `sftp-server`", &self.parallel_theirs),
        ] {
            let seconds = |d: &Duration| d.as_secs_f64();
            writeln!(
                out,
                "| {name} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
                seconds(&run.downloads[0]),
                seconds(&run.downloads[PARALLEL / 2]),
                seconds(&run.downloads[PARALLEL - 1]),
                seconds(&run.wall)
            )?;
        }
        writeln!(
            out,
            "\nReproduce: `cargo xtask bench` as root (it pins processes and, when `openssh-server` \
             is not installed yet, installs it with the system `sshd` masked).\n"
        )?;
        Ok(())
    }
}
