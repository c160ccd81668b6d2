//! `tapline turn`, the relay alone, through coturn's clients: `turnutils_stunclient` for a
//! STUN Binding, and `turnutils_uclient` relaying through us to `turnutils_peer`, an echo
//! peer, and counting what comes back. Also: the TURN REST secret is generated on first
//! start, kept in the data directory readable by its owner only.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tapline_tests::{Appliance, Daemon, peer, tapline_bin};

const TURN: &str = "users = [\"alice:alice password 1\"]\n\
                    danger_allow_loopback_peers = true\n\
                    relay_ports = \"50000-50100\"\n";

/// Starts `tapline turn` and returns it with its UDP port.
fn start(appliance: &Appliance) -> (Daemon, u16) {
    let mut command = Command::new(tapline_bin());
    command
        .args(["turn", "--config"])
        .arg(&appliance.config)
        .env_remove("TAPLINE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env("TAPLINE_LOG", "info");
    let mut daemon = Daemon::spawn(command);
    let endpoint = daemon.wait_for_stdout("listening: turn turn:", Duration::from_secs(30));
    let addr: std::net::SocketAddr = endpoint.trim().parse().unwrap();
    (daemon, addr.port())
}

/// A UDP port free on loopback a moment ago.
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// coturn's echo peer, killed when dropped.
struct EchoPeer(Child);

impl Drop for EchoPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stun_binding_from_coturns_client() {
    let appliance = Appliance::new(TURN);
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
fn relays_to_a_peer_and_back_without_loss() {
    let appliance = Appliance::new(TURN);
    let (mut daemon, port) = start(&appliance);
    let peer_port = free_udp_port();
    let _echo = EchoPeer(
        peer("turnutils_peer", "coturn")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    // -c: no RTCP allocation (it would ask for a reserved port pair, which is refused);
    // -s: Send and Data indications (coturn picks channel numbers RFC 8656 no longer allows).
    let out = peer("turnutils_uclient", "coturn")
        .args([
            "-c",
            "-s",
            "-n",
            "50",
            "-u",
            "alice",
            "-w",
            "alice password 1",
        ])
        .args(["-p", &port.to_string(), "-e", "127.0.0.1", "-r"])
        .arg(peer_port.to_string())
        .arg("127.0.0.1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\nstderr:\n{}", daemon.stderr());
    assert!(
        stdout.contains("tot_send_msgs=50, tot_recv_msgs=50"),
        "not every message came back:\n{report}"
    );
    assert!(
        stdout.contains("Total lost packets 0 (0.000000%)"),
        "packets were lost:\n{report}"
    );
    assert!(
        daemon.stderr().contains("turn allocation started"),
        "{report}"
    );
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn generates_the_rest_secret_once_and_keeps_it_private() {
    let appliance = Appliance::new(TURN);
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
