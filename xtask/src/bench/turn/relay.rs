//! The two relays under test, each started afresh in the foreground, pinned to
//! [`SERVER_CORE`], and stopped (SIGTERM, then SIGKILL) when dropped, so that no run leaves a
//! server behind, whatever fails.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tapline_turn::stun::{Class, MessageBuilder, Method};

use super::{REALM, RELAY_PORTS, SECRET};

/// Each relay runs on this core, and the load on the other.
pub(super) const SERVER_CORE: usize = 1;
/// How long a relay may take to answer its first Binding request.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a relay may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Tapline,
    Coturn,
}

impl Kind {
    pub(super) const BOTH: [Kind; 2] = [Kind::Tapline, Kind::Coturn];

    /// Where it listens. Each has a loopback address of its own, and relays from it, so the two
    /// never contend for a relayed port, and neither do the clients, which send from other
    /// loopback addresses.
    pub(super) fn listen(self) -> SocketAddr {
        match self {
            Kind::Tapline => SocketAddr::from(([127, 0, 0, 2], 3478)),
            Kind::Coturn => SocketAddr::from(([127, 0, 0, 3], 3478)),
        }
    }
}

/// A relay process; stopped when dropped.
pub(super) struct Relay {
    child: Child,
    pub(super) kind: Kind,
    pub(super) addr: SocketAddr,
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Memory {
    /// VmRSS: resident now, in KiB.
    pub(super) rss_kib: u64,
    /// VmHWM: the most ever resident, in KiB.
    pub(super) hwm_kib: u64,
}

impl Relay {
    /// Starts `kind` with the benchmark's configuration under `dir`, and waits until it answers
    /// a STUN Binding request.
    pub(super) fn start(kind: Kind, dir: &Path) -> anyhow::Result<Relay> {
        refuse_if_taken(kind.listen())?;
        let child = match kind {
            Kind::Tapline => start_tapline(dir)?,
            Kind::Coturn => start_coturn(dir)?,
        };
        let mut relay = Relay {
            child,
            kind,
            addr: kind.listen(),
        };
        relay.wait_until_answering()?;
        Ok(relay)
    }

    /// Time every living thread of the relay has spent on a CPU so far, to the nanosecond:
    /// the scheduler's own count (`/proc/PID/task/TID/schedstat`), rather than `/proc/PID/stat`,
    /// which samples at each 10 ms tick and moves a run of a few tenths of a second by ±10%.
    pub(super) fn cpu_time(&self) -> anyhow::Result<Duration> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut total = Duration::ZERO;
        for task in std::fs::read_dir(&tasks).with_context(|| format!("cannot list {tasks}"))? {
            let path = task?.path().join("schedstat");
            // A thread that ended since the listing took its time with it.
            let Ok(stat) = std::fs::read_to_string(&path) else {
                continue;
            };
            let on_cpu: u64 = stat
                .split_whitespace()
                .next()
                .with_context(|| format!("{} is empty", path.display()))?
                .parse()
                .with_context(|| format!("{} is unreadable", path.display()))?;
            total += Duration::from_nanos(on_cpu);
        }
        Ok(total)
    }

    pub(super) fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("the relay's /proc status")?;
        let kib = |key: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .with_context(|| format!("no {key} in /proc status"))?;
            Ok(line
                .trim_start_matches([':', ' ', '\t'])
                .trim_end_matches(" kB")
                .parse()?)
        };
        Ok(Memory {
            rss_kib: kib("VmRSS")?,
            hwm_kib: kib("VmHWM")?,
        })
    }

    /// Datagrams the kernel dropped because a receive buffer of one of the relay's sockets
    /// (listening or relayed, all on its address) was full: the `drops` column of
    /// `/proc/net/udp`, summed over the sockets bound to the relay's address.
    pub(super) fn socket_drops(&self) -> anyhow::Result<u64> {
        let table = std::fs::read_to_string("/proc/net/udp").context("/proc/net/udp")?;
        let mut drops = 0;
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(count)) = (fields.get(1), fields.last()) else {
                continue;
            };
            let Some((ip, _port)) = local.split_once(':') else {
                continue;
            };
            // The kernel prints the address as the 32-bit word it keeps in network order,
            // read as a native (little-endian here) integer.
            let Ok(word) = u32::from_str_radix(ip, 16) else {
                continue;
            };
            if std::net::IpAddr::from(word.to_le_bytes()) == self.addr.ip() {
                drops += count.parse::<u64>().unwrap_or(0);
            }
        }
        Ok(drops)
    }

    /// Whether the process is still running.
    pub(super) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_until_answering(&mut self) -> anyhow::Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(self.addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let request =
            MessageBuilder::new(Class::Request, Method::Binding, &[7; 12]).finish(None, false);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if !self.is_running() {
                bail!("{:?} exited before it answered on {}", self.kind, self.addr);
            }
            let _ = socket.send(&request);
            if socket.recv(&mut buf).is_ok() {
                return Ok(());
            }
        }
        bail!(
            "{:?} did not answer a Binding request on {} in {START_TIMEOUT:?}",
            self.kind,
            self.addr
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay left over from an interrupted run, or anything else on the port, would answer in
/// place of the one under test.
fn refuse_if_taken(addr: SocketAddr) -> anyhow::Result<()> {
    UdpSocket::bind(addr).map(drop).with_context(|| {
        format!("UDP {addr} is taken; is a relay from an earlier run still running?")
    })
}

/// The command, pinned to the server core.
fn pinned(program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", &SERVER_CORE.to_string()]).arg(program);
    command
}

/// `tapline turn`, built in release mode by the caller.
fn start_tapline(dir: &Path) -> anyhow::Result<Child> {
    let home = dir.join("tapline");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)?;
    let config = home.join("tapline.toml");
    std::fs::write(
        &config,
        format!(
            "[tenant]\nname = \"Bench\"\n[storage]\ndata_dir = \"data\"\n\
             [web]\nlisten = \"127.0.0.1:0\"\n[sftp]\nlisten = \"127.0.0.1:0\"\n\
             [turn]\nlisten = \"{listen}\"\nrelay_ports = \"{first}-{last}\"\n\
             realm = \"{REALM}\"\nsecret = \"{SECRET}\"\n\
             allowed_peers = [\"127.0.0.0/8\"]\ndanger_allow_loopback_peers = true\n",
            listen = Kind::Tapline.listen(),
            first = RELAY_PORTS.start(),
            last = RELAY_PORTS.end(),
        ),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    let tapline = PathBuf::from(target).join("release/tapline");
    let mut child = pinned(&tapline)
        .args(["turn", "--config"])
        .arg(&config)
        .env("TAPLINE_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} turn", tapline.display()))?;
    let stdout = child.stdout.take().context("tapline's output")?;
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || BufReader::new(stdout).lines().for_each(drop));
    Ok(child)
}

/// coturn's `turnserver` in the foreground with a configuration of its own: REST secret, no
/// CLI, no TLS or DTLS, loopback peers allowed, its database and log under `dir`.
fn start_coturn(dir: &Path) -> anyhow::Result<Child> {
    let home = dir.join("coturn");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)?;
    let config = home.join("turnserver.conf");
    let listen = Kind::Coturn.listen();
    std::fs::write(
        &config,
        format!(
            "listening-ip={ip}\nlistening-port={port}\nrelay-ip={ip}\n\
             min-port={first}\nmax-port={last}\nrealm={REALM}\n\
             use-auth-secret\nstatic-auth-secret={SECRET}\n\
             allow-loopback-peers\nno-cli\nno-tls\nno-dtls\nno-tcp-relay\n\
             pidfile={home}/turnserver.pid\nuserdb={home}/turndb\n\
             log-file=stdout\nsimple-log\n",
            ip = listen.ip(),
            port = listen.port(),
            first = RELAY_PORTS.start(),
            last = RELAY_PORTS.end(),
            home = home.display(),
        ),
    )?;
    let log = std::fs::File::create(home.join("turnserver.log"))?;
    pinned(Path::new("/usr/bin/turnserver"))
        .arg("-c")
        .arg(&config)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start /usr/bin/turnserver (apt-get install coturn)")
}

/// `4.6.1`, from `turnserver --version`.
pub(super) fn coturn_version() -> anyhow::Result<String> {
    let out = Command::new("/usr/bin/turnserver")
        .arg("--version")
        .output()
        .context("cannot run turnserver --version")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
