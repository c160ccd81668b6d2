//! The network shell around [`Server`]: real sockets, the clock and the operating system's
//! randomness, for UDP.
//!
//! One task owns the server and the listening socket. Each allocation's relayed socket has a
//! reader task of its own that passes what peers send back to the owner over a bounded
//! channel; when the owner falls behind, peer datagrams are dropped and counted rather than
//! queued without bound. Everything the server asks for (replies, relayed sends, opening and
//! closing relayed sockets) happens on the owner task, so the core is never shared.
//!
//! Not here yet: TURN over TCP and TLS, an advertised address distinct from the listening one
//! (listening on an unspecified address relays from it but cannot tell clients where), and
//! metrics.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tapline_runtime::{BoxError, ServiceContext};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::allocation::{AllocationId, FiveTuple, Transport};
use crate::auth::{Credentials, StaticUser};
use crate::entropy::Entropy;
use crate::policy::{Network, PeerPolicy};
use crate::ports::PortPool;
use crate::server::{Action, Event, Server, ServerConfig};

/// Peer datagrams waiting for the owner task; more are dropped and counted.
const PEER_QUEUE: usize = 1024;
/// How often the server is told the Unix time again (REST usernames expire by it).
const WALL_CLOCK_EVERY: Duration = Duration::from_secs(5);
/// The largest UDP payload.
const DATAGRAM_MAX: usize = 65_535;

/// What the shell needs from configuration. The daemon builds it from its `[turn]` section.
#[derive(Clone)]
pub struct ShellConfig {
    /// The UDP listening address; relayed sockets are bound on the same IP.
    pub listen: SocketAddr,
    pub realm: String,
    /// TURN REST API shared secrets, the current one first.
    pub rest_secrets: Vec<Vec<u8>>,
    pub static_users: Vec<StaticUser>,
    /// When not empty, peers must be inside one of these.
    pub allowed_peers: Vec<Network>,
    /// Lets loopback peers through, for test rigs and benchmarks only.
    pub danger_allow_loopback_peers: bool,
    pub relay_ports: RangeInclusive<u16>,
}

impl std::fmt::Debug for ShellConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and passwords are never shown; only how many there are and who.
        let users: Vec<&str> = self
            .static_users
            .iter()
            .map(|u| u.username.as_str())
            .collect();
        f.debug_struct("ShellConfig")
            .field("listen", &self.listen)
            .field("realm", &self.realm)
            .field("rest_secrets", &self.rest_secrets.len())
            .field("static_users", &users)
            .field("allowed_peers", &self.allowed_peers)
            .field(
                "danger_allow_loopback_peers",
                &self.danger_allow_loopback_peers,
            )
            .field("relay_ports", &self.relay_ports)
            .finish()
    }
}

/// Randomness from the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, destination: &mut [u8]) {
        // getrandom(2) blocks until the kernel's pool is seeded and then does not fail; a
        // failure here means the system cannot give any process randomness, and the relay
        // must not go on with predictable nonces.
        getrandom::fill(destination).expect("the operating system's random source failed");
    }
}

/// Where the generated TURN REST secret is kept, under the data directory.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("turn").join("secret")
}

/// The TURN REST secret kept in `<data_dir>/turn/secret`, made on first use: 32 random
/// bytes, hex-encoded, in a file only the owner may read (0600).
pub fn load_or_create_secret(data_dir: &Path) -> io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    let path = secret_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is empty", path.display()),
            ));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(secret)
}

/// A datagram a peer sent to an allocation's relayed socket.
struct PeerDatagram {
    allocation: AllocationId,
    peer: SocketAddr,
    bytes: Vec<u8>,
}

/// An open relayed socket and the task reading it.
struct Relay {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Counts of what the shell itself dropped.
#[derive(Debug, Default)]
struct Drops {
    /// Peer datagrams dropped because the owner task's queue was full.
    peer_queue_full: AtomicU64,
    /// Sends that would have blocked or failed.
    send_failed: AtomicU64,
}

/// Runs the relay on UDP until `ctx` says to stop.
pub async fn run(ctx: ServiceContext, config: ShellConfig) -> Result<(), BoxError> {
    if config.danger_allow_loopback_peers {
        tracing::warn!(
            "turn.danger_allow_loopback_peers is on: clients may relay to this host's \
             loopback services; for test rigs and benchmarks only"
        );
    }
    let socket = UdpSocket::bind(config.listen).await?;
    let local = socket.local_addr()?;
    if local.ip().is_unspecified() {
        tracing::warn!(
            %local,
            "turn listens on an unspecified address: relayed addresses will not be \
             reachable by clients until an advertised address can be configured"
        );
    }

    let mut entropy = OsEntropy;
    let ports = PortPool::new(config.relay_ports.clone(), &mut entropy);
    let mut server_config = ServerConfig {
        realm: config.realm.clone(),
        policy: PeerPolicy {
            allow: config.allowed_peers.clone(),
            deny: Vec::new(),
            own_addresses: vec![local],
            relay_addresses: vec![local.ip()],
            relay_ports: Some(config.relay_ports.clone()),
            danger_allow_loopback_peers: config.danger_allow_loopback_peers,
        },
        ..ServerConfig::default()
    };
    match local.ip() {
        IpAddr::V4(ip) => server_config.relay_ipv4 = Some(ip),
        IpAddr::V6(ip) => server_config.relay_ipv6 = Some(ip),
    }
    let credentials = Credentials {
        rest_secrets: config.rest_secrets.clone(),
        static_users: config.static_users.clone(),
    };
    let mut server = Server::new(
        server_config,
        credentials,
        Box::new(ports),
        Box::new(entropy),
        Instant::now().into_std(),
        unix_now(),
    );

    ctx.set_ready_at(vec![format!("turn:{local}")]);
    tracing::info!(%local, relay_ports = ?config.relay_ports, "turn relay listening (UDP)");

    let drops = Arc::new(Drops::default());
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerDatagram>(PEER_QUEUE);
    // At most one failure per allocation, so this cannot grow beyond the allocation cap.
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<AllocationId>();
    let mut relays: HashMap<AllocationId, Relay> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut wall_clock = tokio::time::interval(WALL_CLOCK_EVERY);
    wall_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let deadline = server.poll_timeout();
        tokio::select! {
            () = ctx.shutdown().cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, client)) => {
                    let tuple = FiveTuple { client, server: local, transport: Transport::Udp };
                    server.handle_client(Instant::now().into_std(), tuple, &buf[..len]);
                }
                // Errors on an unconnected UDP socket concern one datagram, not the socket.
                Err(err) => tracing::debug!(error = %err, "turn: receive failed"),
            },
            Some(datagram) = peer_rx.recv() => {
                server.handle_peer_data(
                    Instant::now().into_std(),
                    datagram.allocation,
                    datagram.peer,
                    &datagram.bytes,
                );
            }
            Some(allocation) = failed_rx.recv() => {
                if relays.remove(&allocation).is_some() {
                    server.handle_relay_failed(Instant::now().into_std(), allocation);
                }
            }
            () = sleep_until(deadline) => server.handle_timeout(Instant::now().into_std()),
            _ = wall_clock.tick() => {
                server.handle_wall_clock(Instant::now().into_std(), unix_now());
            }
        }
        perform(
            &mut server,
            &socket,
            &mut relays,
            &peer_tx,
            &failed_tx,
            &drops,
        );
    }

    server.finish(Instant::now().into_std());
    perform(
        &mut server,
        &socket,
        &mut relays,
        &peer_tx,
        &failed_tx,
        &drops,
    );
    relays.clear();
    let stats = server.stats();
    tracing::info!(
        binding_requests = stats.binding_requests,
        turn_requests = stats.turn_requests,
        dropped = stats.dropped,
        malformed = stats.malformed,
        peer_queue_full = drops.peer_queue_full.load(Ordering::Relaxed),
        send_failed = drops.send_failed.load(Ordering::Relaxed),
        "turn relay stopped"
    );
    Ok(())
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Does what the server asked, then reports what happened.
fn perform(
    server: &mut Server,
    socket: &UdpSocket,
    relays: &mut HashMap<AllocationId, Relay>,
    peer_tx: &mpsc::Sender<PeerDatagram>,
    failed_tx: &mpsc::UnboundedSender<AllocationId>,
    drops: &Arc<Drops>,
) {
    while let Some(action) = server.poll_action() {
        match action {
            Action::Transmit { tuple, bytes } => {
                if let Err(err) = socket.try_send_to(&bytes, tuple.client) {
                    drops.send_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = %tuple.client, error = %err, "turn: reply not sent");
                }
            }
            Action::OpenRelay {
                allocation,
                relayed,
            } => match open_relay(allocation, relayed, peer_tx, failed_tx, drops) {
                Ok(relay) => {
                    relays.insert(allocation, relay);
                }
                Err(err) => {
                    tracing::warn!(%relayed, error = %err, "turn: cannot open a relayed socket");
                    server.handle_relay_failed(Instant::now().into_std(), allocation);
                }
            },
            Action::RelayTo {
                allocation,
                peer,
                bytes,
                ..
            } => {
                let sent = relays
                    .get(&allocation)
                    .map(|relay| relay.socket.try_send_to(&bytes, peer));
                if !matches!(sent, Some(Ok(_))) {
                    drops.send_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Action::CloseRelay { allocation, .. } => {
                relays.remove(&allocation);
            }
        }
    }
    while let Some(event) = server.poll_event() {
        match event {
            Event::AllocationStarted {
                allocation,
                username,
                client,
                relayed,
            } => tracing::info!(
                allocation = allocation.0,
                %username,
                client = %client.client,
                ?relayed,
                "turn allocation started"
            ),
            Event::AllocationEnded(summary) => tracing::info!(
                allocation = summary.allocation.0,
                username = %summary.username,
                reason = ?summary.reason,
                to_peers_bytes = summary.to_peers.bytes,
                from_peers_bytes = summary.from_peers.bytes,
                dropped = summary.to_peers.dropped_packets + summary.from_peers.dropped_packets,
                "turn allocation ended"
            ),
            Event::PeerRefused {
                allocation,
                peer,
                reason,
            } => tracing::info!(
                allocation = allocation.0,
                %peer,
                ?reason,
                "turn peer refused"
            ),
        }
    }
}

/// Binds `relayed` and starts the task that reads it.
fn open_relay(
    allocation: AllocationId,
    relayed: SocketAddr,
    peer_tx: &mpsc::Sender<PeerDatagram>,
    failed_tx: &mpsc::UnboundedSender<AllocationId>,
    drops: &Arc<Drops>,
) -> io::Result<Relay> {
    let std_socket = std::net::UdpSocket::bind(relayed)?;
    std_socket.set_nonblocking(true)?;
    let socket = Arc::new(UdpSocket::from_std(std_socket)?);
    let reader = tokio::spawn(read_relay(
        allocation,
        socket.clone(),
        peer_tx.clone(),
        failed_tx.clone(),
        drops.clone(),
    ));
    Ok(Relay { socket, reader })
}

async fn read_relay(
    allocation: AllocationId,
    socket: Arc<UdpSocket>,
    peer_tx: mpsc::Sender<PeerDatagram>,
    failed_tx: mpsc::UnboundedSender<AllocationId>,
    drops: Arc<Drops>,
) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, peer)) => {
                let datagram = PeerDatagram {
                    allocation,
                    peer,
                    bytes: buf[..len].to_vec(),
                };
                match peer_tx.try_send(datagram) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        drops.peer_queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // ICMP errors for earlier sends show up here on some systems; they concern one
            // peer, not the socket.
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(err) => {
                tracing::warn!(allocation = allocation.0, error = %err, "turn: relayed socket failed");
                let _ = failed_tx.send(allocation);
                return;
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
