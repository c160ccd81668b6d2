//! The STUN/TURN relay through coturn's clients: `turnutils_stunclient` for a STUN Binding,
//! and `turnutils_uclient` relaying through us to `turnutils_peer`, an echo peer, and counting
//! what comes back. `uclient` runs in its default mode (an RTP allocation asking for a
//! reserved port pair, an RTCP allocation claiming it with the RESERVATION-TOKEN, channels
//! anywhere in 0x4000-0x7FFF) over UDP, TCP and TLS, with Send indications, with a static
//! user and with the TURN REST API secret, and with `-T` (RFC 6062 TCP allocations, clients
//! relaying to each other through Connect, ConnectionAttempt and ConnectionBind), over TCP
//! and over TLS (`-T -S`). Also: `tapline run` serves TURN and keeps a row
//! per allocation; refused credentials and peers; the TURN REST secret is generated on first
//! start, kept in the data directory readable by its owner only.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tapline_tests::{Appliance, Daemon, eventually, peer, tapline_bin};

const USER: &str = "alice";
const PASSWORD: &str = "alice password 1";
const SECRET: &str = "a shared secret for the relay tests";

/// `[turn]` keys for a relay on loopback: a static user, the REST secret, loopback peers
/// allowed (the echo peer is on loopback), and a relay port range of the test's own, so that
/// tests running side by side never race for a port.
fn turn_config(relay_ports: &str, loopback: bool) -> String {
    format!(
        "users = [\"{USER}:{PASSWORD}\"]\nsecret = \"{SECRET}\"\n\
         danger_allow_loopback_peers = {loopback}\nrelay_ports = \"{relay_ports}\"\n"
    )
}

/// Starts `tapline turn` and returns it with its port (UDP and TCP).
fn start(appliance: &Appliance) -> (Daemon, u16) {
    let mut command = Command::new(tapline_bin());
    command
        .args(["turn", "--config"])
        .arg(&appliance.config)
        .env_remove("TAPLINE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("TAPLINE_LOG", "info");
    let mut daemon = Daemon::spawn(command);
    let port = turn_port(&mut daemon);
    (daemon, port)
}

/// The port of the `listening: turn turn:IP:PORT` line.
fn turn_port(daemon: &mut Daemon) -> u16 {
    let endpoint = daemon.wait_for_stdout("listening: turn turn:", Duration::from_secs(30));
    let addr: std::net::SocketAddr = endpoint.trim().parse().unwrap();
    addr.port()
}

/// A UDP port free on loopback a moment ago, with the next one free too (uclient's RTCP
/// goes to the peer's port + 1).
fn free_udp_pair() -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if port < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// coturn's echo peer, killed when dropped.
struct EchoPeer(Child);

impl EchoPeer {
    fn start() -> (EchoPeer, u16) {
        let port = free_udp_pair();
        let child = peer("turnutils_peer", "coturn")
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        (EchoPeer(child), port)
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `turnutils_uclient FLAGS -n 50 -p PORT -e 127.0.0.1 -r PEER 127.0.0.1`.
fn uclient(flags: &[&str], port: u16, peer_port: u16) -> Output {
    peer("turnutils_uclient", "coturn")
        .args(flags)
        .args(["-n", "50", "-p", &port.to_string(), "-e", "127.0.0.1", "-r"])
        .arg(peer_port.to_string())
        .arg("127.0.0.1")
        .output()
        .unwrap()
}

/// What uclient reported: messages sent, messages received, packets lost.
fn tally(stdout: &str) -> Option<(u64, u64, u64)> {
    let number = |after: &str| -> Option<u64> {
        let at = stdout.rfind(after)? + after.len();
        let digits: String = stdout[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some((
        number("tot_send_msgs=")?,
        number("tot_recv_msgs=")?,
        number("Total lost packets ")?,
    ))
}

/// Runs uclient with `flags` and asserts that every message came back.
fn relays_without_loss(daemon: &Daemon, flags: &[&str], port: u16) -> (u64, u64, u64) {
    let (_echo, peer_port) = EchoPeer::start();
    let out = uclient(flags, port, peer_port);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "uclient {flags:?}:\n{stdout}\nuclient stderr:\n{}\nrelay stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.stderr()
    );
    let (sent, received, lost) = tally(&stdout).unwrap_or_else(|| panic!("no totals:\n{report}"));
    assert!(sent >= 50, "sent {sent}:\n{report}");
    assert_eq!(sent, received, "not every message came back:\n{report}");
    assert_eq!(lost, 0, "packets were lost:\n{report}");
    eprintln!("uclient {flags:?}: sent {sent}, received {received}, lost {lost}");
    (sent, received, lost)
}

fn static_user() -> Vec<&'static str> {
    vec!["-u", USER, "-w", PASSWORD]
}

#[test]
fn stun_binding_from_coturns_client() {
    let appliance = Appliance::new(&turn_config("50000-50019", true));
    let (mut daemon, port) = start(&appliance);
    let out = peer("turnutils_stunclient", "coturn")
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stunclient failed:\n{stdout}");
    assert!(
        stdout.contains("UDP reflexive addr: 127.0.0.1:"),
        "no mapped address:\n{stdout}\nstderr:\n{}",
        daemon.stderr()
    );
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn uclient_over_udp_with_channels_reserved_ports_and_send_indications() {
    let appliance = Appliance::new(&turn_config("50020-50119", true));
    let (mut daemon, port) = start(&appliance);
    // The default mode: RTP and RTCP allocations (EVEN-PORT with the R bit, then the
    // RESERVATION-TOKEN), ChannelBind and ChannelData.
    relays_without_loss(&daemon, &static_user(), port);
    // -s: Send and Data indications instead of channels.
    let mut send = static_user();
    send.push("-s");
    relays_without_loss(&daemon, &send, port);
    // -g: DONT-FRAGMENT in every Allocate; the relayed sockets then set DF.
    let mut dont_fragment = static_user();
    dont_fragment.push("-g");
    relays_without_loss(&daemon, &dont_fragment, port);
    let log = daemon.stderr();
    assert!(log.contains("turn allocation started"), "{log}");
    assert!(log.contains("transport=\"udp\""), "{log}");
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn uclient_over_tcp_with_channels_and_send_indications() {
    let appliance = Appliance::new(&turn_config("50120-50219", true));
    let (mut daemon, port) = start(&appliance);
    let mut tcp = static_user();
    tcp.push("-t");
    relays_without_loss(&daemon, &tcp, port);
    tcp.push("-s");
    relays_without_loss(&daemon, &tcp, port);
    let log = daemon.stderr();
    assert!(log.contains("transport=\"tcp\""), "{log}");
    assert!(
        log.contains("reason=\"connection_closed\""),
        "a TCP client's allocation ends with its connection:\n{log}"
    );
    daemon.stop(rustix::process::Signal::TERM);
}

/// `turnutils_uclient -T`: RFC 6062 TCP allocations over TCP, the clients relaying to each
/// other's relayed addresses (`-T` implies `-y`): each Connects to the other's relayed
/// address, the other hears of it by ConnectionAttempt, both bind a data connection with
/// ConnectionBind, and the messages flow through the piped connections.
#[test]
fn uclient_with_tcp_allocations_between_clients() {
    let appliance = Appliance::new(&turn_config("50580-50619", true));
    let (mut daemon, port) = start(&appliance);
    tcp_allocations_between_clients(&mut daemon, &[], port, "tcp");
}

/// `turnutils_uclient -T -S`: the same RFC 6062 TCP allocations with every connection to
/// the relay, control and data, over TLS to `tls_listen`.
#[test]
fn uclient_with_tcp_allocations_over_tls() {
    let mut config = turn_config("50620-50659", true);
    config += "tls_listen = \"127.0.0.1:0\"\n";
    let appliance = Appliance::new(&config);
    let (mut daemon, _) = start(&appliance);
    let endpoint = daemon.wait_for_stdout("listening: turn turns:", Duration::from_secs(30));
    let tls: std::net::SocketAddr = endpoint.trim().parse().unwrap();
    tcp_allocations_between_clients(&mut daemon, &["-S"], tls.port(), "tls");
}

/// Runs `turnutils_uclient -T` with `extra` flags against `port`, asserts that every
/// message came back over `transport` connections, stops the relay and asserts that the
/// piped bytes are counted in the allocations' summaries.
fn tcp_allocations_between_clients(
    daemon: &mut Daemon,
    extra: &[&str],
    port: u16,
    transport: &str,
) {
    let mut flags = static_user();
    flags.extend(["-T", "-m", "2"]);
    flags.extend(extra);
    let out = peer("turnutils_uclient", "coturn")
        .args(&flags)
        .args(["-n", "50", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "uclient {flags:?}:\n{stdout}\nuclient stderr:\n{}\nrelay stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.stderr()
    );
    let (sent, received, lost) = tally(&stdout).unwrap_or_else(|| panic!("no totals:\n{report}"));
    assert!(sent >= 100, "sent {sent}:\n{report}");
    assert_eq!(sent, received, "not every message came back:\n{report}");
    assert_eq!(lost, 0, "packets were lost:\n{report}");
    eprintln!("uclient {flags:?}: sent {sent}, received {received}, lost {lost}");
    let log = daemon.stderr();
    assert!(log.contains(&format!("transport=\"{transport}\"")), "{log}");
    daemon.stop(rustix::process::Signal::TERM);
    // The piped bytes are counted in each allocation's summary.
    let log = daemon.stderr();
    assert!(
        log.lines()
            .any(|line| line.contains("turn allocation ended")
                && !line.contains("to_peers_bytes=0 ")),
        "no relayed bytes in the summaries:\n{log}"
    );
}

#[test]
fn uclient_with_the_rest_api_secret_over_udp_and_tcp() {
    let appliance = Appliance::new(&turn_config("50220-50319", true));
    let (mut daemon, port) = start(&appliance);
    relays_without_loss(&daemon, &["-u", "bob", "-W", SECRET], port);
    relays_without_loss(&daemon, &["-t", "-u", "bob", "-W", SECRET], port);
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn uclient_over_tls_with_the_web_certificate() {
    let mut config = turn_config("50320-50419", true);
    config += "tls_listen = \"127.0.0.1:0\"\n";
    let appliance = Appliance::new(&config);
    let (mut daemon, _) = start(&appliance);
    let endpoint = daemon.wait_for_stdout("listening: turn turns:", Duration::from_secs(30));
    let tls: std::net::SocketAddr = endpoint.trim().parse().unwrap();
    assert!(
        appliance.cert().exists(),
        "the web UI's certificate is made and used"
    );
    let mut flags = static_user();
    flags.extend(["-t", "-S"]);
    relays_without_loss(&daemon, &flags, tls.port());
    flags.push("-s");
    relays_without_loss(&daemon, &flags, tls.port());
    let log = daemon.stderr();
    assert!(log.contains("transport=\"tls\""), "{log}");
    daemon.stop(rustix::process::Signal::TERM);
}

/// `turnutils_uclient` with credentials or a peer we refuse: it must not get through, and the
/// relay must say why. Returns uclient's output.
fn refused(daemon: &Daemon, flags: &[&str], port: u16, peer_ip: &str, server: &str) -> String {
    let (_echo, peer_port) = EchoPeer::start();
    let out = peer("turnutils_uclient", "coturn")
        .args(flags)
        .args(["-n", "5", "-p", &port.to_string(), "-e", peer_ip, "-r"])
        .arg(peer_port.to_string())
        .arg(server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let received = tally(&stdout).map_or(0, |(_, received, _)| received);
    assert_eq!(
        received,
        0,
        "uclient {flags:?} to {peer_ip} got through:\n{stdout}\n{stderr}\nrelay:\n{}",
        daemon.stderr()
    );
    format!("{stdout}\n{stderr}")
}

/// Waits for the relay to log `line` (its log is read as it comes).
fn logged(daemon: &Daemon, line: &str) {
    eventually(Duration::from_secs(5), line, || {
        daemon.stderr().contains(line).then_some(())
    });
}

/// `base64(HMAC-SHA1(secret, username))`, the TURN REST password, through openssl.
fn rest_password(username: &str) -> String {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "openssl dgst -sha1 -hmac \"$0\" -binary | openssl base64 -A",
        ])
        .arg(SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(username.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn wrong_passwords_and_expired_rest_names_are_refused() {
    let appliance = Appliance::new(&turn_config("50420-50439", true));
    let (mut daemon, port) = start(&appliance);

    let out = refused(
        &daemon,
        &["-c", "-u", USER, "-w", "not the password"],
        port,
        "127.0.0.1",
        "127.0.0.1",
    );
    assert!(out.contains("Cannot complete Allocation"), "{out}");

    // A REST name whose time has passed, with the password the secret gives it, is refused;
    // the same user with a time ahead is let in (so the refusal is the expiry).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = format!("{}:carol", now - 60);
    let out = refused(
        &daemon,
        &["-c", "-u", &expired, "-w", &rest_password(&expired)],
        port,
        "127.0.0.1",
        "127.0.0.1",
    );
    assert!(out.contains("Cannot complete Allocation"), "{out}");
    let valid = format!("{}:carol", now + 600);
    relays_without_loss(
        &daemon,
        &["-c", "-u", &valid, "-w", &rest_password(&valid)],
        port,
    );
    let log = daemon.stderr();
    assert!(
        log.contains(&format!("username={valid}")) && !log.contains(&format!("username={expired}")),
        "an allocation for the valid name only:\n{log}"
    );
    assert!(
        !log.contains("username=alice"),
        "no allocation for the wrong password:\n{log}"
    );
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn loopback_and_unspecified_peers_are_refused_in_every_spelling() {
    // Loopback peers are not allowed here (the default).
    let appliance = Appliance::new(&turn_config("50440-50459", false));
    let (mut daemon, port) = start(&appliance);
    for peer_ip in ["127.0.0.1", "0.0.0.0"] {
        refused(
            &daemon,
            &["-c", "-u", USER, "-w", PASSWORD],
            port,
            peer_ip,
            "127.0.0.1",
        );
    }
    logged(&daemon, "peer=127.0.0.1 reason=\"loopback\"");
    logged(&daemon, "peer=0.0.0.0 reason=\"always_denied\"");
    daemon.stop(rustix::process::Signal::TERM);

    // ::ffff:127.0.0.1 needs an IPv6 relay: the same, listening on ::1.
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback here, so the ::ffff:127.0.0.1 peer is not tried");
        return;
    }
    let appliance = Appliance::new(&turn_config("50460-50479", false));
    let text = std::fs::read_to_string(&appliance.config).unwrap();
    let text = text.replace(
        "[turn]\nlisten = \"127.0.0.1:0\"",
        "[turn]\nlisten = \"[::1]:0\"",
    );
    std::fs::write(&appliance.config, text).unwrap();
    let (mut daemon, port) = start(&appliance);
    refused(
        &daemon,
        &["-c", "-x", "-u", USER, "-w", PASSWORD],
        port,
        "::ffff:127.0.0.1",
        "::1",
    );
    logged(&daemon, "peer=::ffff:127.0.0.1 reason=\"embedded_ipv4\"");
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn tapline_run_serves_turn_and_keeps_a_row_per_allocation() {
    let appliance = Appliance::new(&turn_config("50480-50579", true));
    let mut daemon = appliance.start(None, None);
    let port = turn_port(&mut daemon);
    let out = peer("turnutils_stunclient", "coturn")
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("UDP reflexive addr: 127.0.0.1:"),
        "no Binding from the daemon:\n{stdout}\n{}",
        daemon.stderr()
    );
    let (sent, ..) = relays_without_loss(&daemon, &static_user(), port);
    let web = daemon.web_url();
    let metrics = eventually(Duration::from_secs(10), "TURN metrics", || {
        let (_, body) = tapline_tests::https_get(&format!("{web}metrics"), &appliance.cert());
        body.contains("tapline_turn_relayed_datagrams_total{direction=\"from_peers\"}")
            .then_some(body)
    });
    // uclient's allocations: a first one with EVEN-PORT's R bit, one claiming the reserved
    // port with its token, and one more; it deletes the last two and leaves the first.
    let started: u64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("tapline_turn_allocations_started_total{transport=\"udp\"} ")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no allocations counted:\n{metrics}"));
    assert!(started >= 2, "{metrics}");
    assert!(
        metrics.contains("tapline_turn_challenges_total "),
        "{metrics}"
    );
    daemon.stop(rustix::process::Signal::TERM);

    let rows: Vec<(String, String, String, i64, i64, String)> = appliance
        .store()
        .read(|conn| -> Result<_, tapline_store::rusqlite::Error> {
            let mut statement = conn.prepare(
                "SELECT username, client_transport, peers, datagrams_to_peers,
                        datagrams_from_peers, end_reason
                 FROM turn_allocations ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    assert_eq!(rows.len() as u64, started, "a row per allocation: {rows:?}");
    let relayed: i64 = rows.iter().map(|row| row.3).sum();
    assert_eq!(u64::try_from(relayed).unwrap(), sent, "{rows:?}");
    for (username, transport, peers, to_peers, from_peers, reason) in &rows {
        assert_eq!((username.as_str(), transport.as_str()), (USER, "udp"));
        if *to_peers > 0 {
            assert_eq!(peers, "127.0.0.1");
        }
        assert_eq!(to_peers, from_peers, "every datagram came back");
        assert!(
            ["deleted", "shutdown"].contains(&reason.as_str()),
            "{reason}"
        );
    }
}

#[test]
fn generates_the_rest_secret_once_and_keeps_it_private() {
    let appliance =
        Appliance::new("users = [\"alice:alice password 1\"]\nrelay_ports = \"50580-50599\"\n");
    let secret = appliance.data_dir().join("turn/secret");
    let (mut daemon, _) = start(&appliance);
    let first = std::fs::read_to_string(&secret).unwrap();
    assert_eq!(first.trim().len(), 64, "32 bytes, hex");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !daemon.stderr().contains(first.trim()),
        "the secret was logged"
    );
    daemon.stop(rustix::process::Signal::TERM);

    let (mut daemon, _) = start(&appliance);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), first);
    daemon.stop(rustix::process::Signal::TERM);
}
