//! The network shell around [`Server`]: real sockets, the clock and the operating system's
//! randomness.
//!
//! One task owns the server, the UDP listening socket and the TCP and TLS listeners (on the
//! same `listen` port, and on `tls_listen`). Each allocation's relayed socket has a reader
//! task of its own that passes what peers send back to the owner over a bounded channel;
//! when the owner falls behind, peer datagrams are dropped and counted rather than queued
//! without bound. Each TCP or TLS client has a task of its own too ([`stream`]), capped at
//! [`MAX_STREAM_CLIENTS`]. Everything the server asks for (replies, relayed sends, opening
//! and closing relayed sockets) happens on the owner task, so the core is never shared.
//!
//! Relayed sockets are bound on the relay address, which is also the address clients are
//! told: `relay_address` when configured, otherwise the listening address, otherwise (when
//! listening on an unspecified address) the address the kernel would send from on the
//! default route ([`relay_ip`]).
//!
//! RFC 6062 TCP allocations ([`tcp`]) listen on their relayed address, dial peers from it,
//! and turn a client data connection into a pipe to its peer connection after ConnectionBind.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tapline_runtime::{BoxError, CancellationToken, ServiceContext};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::allocation::{AllocationId, FiveTuple, Summary, Transport};
use crate::auth::{Credentials, StaticUser};
use crate::entropy::Entropy;
use crate::framing;
use crate::policy::{Network, PeerPolicy};
use crate::ports::PortPool;
use crate::server::{Action, ConnectionId, Event, Server, ServerConfig, Stats};

mod metrics;
mod stream;
mod tcp;

pub use metrics::Metrics;
/// The TLS library the relay speaks through, for callers building its `ServerConfig`.
pub use rustls;
use stream::{Outgoing, StreamEvent};
use tcp::{Pipe, PipeCounters, PipeStart, TcpEvent, TcpRelay};

/// Peer datagrams waiting for the owner task; more are dropped and counted.
const PEER_QUEUE: usize = 1024;
/// How often the server is told the Unix time again (REST usernames expire by it) and the
/// metrics catch up with its counts.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// TCP and TLS client connections at once; more are closed as they are accepted.
pub const MAX_STREAM_CLIENTS: usize = 1024;
/// Frames from stream clients waiting for the owner task; their readers wait when it is full.
const STREAM_QUEUE: usize = 1024;
/// Ended allocations waiting for the summary writer; more are dropped and counted.
pub const RECORD_QUEUE: usize = 4096;
/// Peer connections accepted or dialled waiting for the owner task.
const TCP_EVENT_QUEUE: usize = 256;
/// The largest UDP payload.
const DATAGRAM_MAX: usize = 65_535;

/// What the shell needs from configuration. The daemon builds it from its `[turn]` section.
#[derive(Clone)]
pub struct ShellConfig {
    /// The UDP and TCP listening address.
    pub listen: SocketAddr,
    /// TURN over TLS: where, and with which certificate.
    pub tls: Option<TlsListener>,
    /// Where relayed sockets are bound and what clients are told; see [`relay_ip`].
    pub relay_address: Option<IpAddr>,
    pub realm: String,
    /// TURN REST API shared secrets, the current one first.
    pub rest_secrets: Vec<Vec<u8>>,
    pub static_users: Vec<StaticUser>,
    /// When not empty, peers must be inside one of these.
    pub allowed_peers: Vec<Network>,
    /// Lets loopback peers through, for test rigs and benchmarks only.
    pub danger_allow_loopback_peers: bool,
    pub relay_ports: RangeInclusive<u16>,
    /// Allocations alive at once, in total and per user name.
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    pub metrics: Metrics,
    /// Where each ended allocation's summary goes, for the audit trail.
    pub records: Option<mpsc::Sender<AllocationRecord>>,
}

/// TURN over TLS on its own port.
#[derive(Clone)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub config: Arc<rustls::ServerConfig>,
}

/// An ended allocation with its times on the wall clock.
#[derive(Debug, Clone)]
pub struct AllocationRecord {
    pub summary: Summary,
    pub started: SystemTime,
    pub ended: SystemTime,
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
            .field("tls_listen", &self.tls.as_ref().map(|tls| tls.listen))
            .field("relay_address", &self.relay_address)
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

/// The address relayed sockets are bound on and clients are told (XOR-RELAYED-ADDRESS):
/// `configured` when set; otherwise the listening address unless it is unspecified; otherwise
/// the address the kernel would send from on the default route of `listen`'s family. That
/// choice is the interface most clients reach, and is made by the kernel's routing table
/// rather than by guessing among interfaces; set `relay_address` when it is not the right one.
pub fn relay_ip(listen: IpAddr, configured: Option<IpAddr>) -> io::Result<IpAddr> {
    if let Some(ip) = configured {
        return Ok(ip);
    }
    if !listen.is_unspecified() {
        return Ok(listen);
    }
    // Connecting a UDP socket sends nothing; it only asks the routing table for a source
    // address. The destinations are documentation addresses, never real hosts.
    let (bind, probe): (SocketAddr, SocketAddr) = match listen {
        IpAddr::V4(_) => (([0, 0, 0, 0], 0).into(), ([192, 0, 2, 1], 3478).into()),
        IpAddr::V6(_) => (
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            (
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                3478,
            )
                .into(),
        ),
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(probe).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!(
                "turn.listen is {listen}, and no default route names an interface to relay \
                 from ({err}); set turn.relay_address"
            ),
        )
    })?;
    Ok(socket.local_addr()?.ip())
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
    /// Frames for a stream client whose outgoing queue was full.
    stream_queue_full: AtomicU64,
    /// Summaries not recorded because the writer fell behind.
    records_lost: AtomicU64,
}

/// A TCP or TLS client connection: the queue to its writer.
struct StreamClient {
    outgoing: mpsc::Sender<Outgoing>,
}

/// The listening sockets.
struct Listeners {
    udp: UdpSocket,
    udp_local: SocketAddr,
    tcp: TcpListener,
    tcp_local: SocketAddr,
    tls: Option<(TcpListener, SocketAddr, tokio_rustls::TlsAcceptor)>,
}

/// Everything the owner task keeps besides the server.
struct Owner {
    relays: HashMap<AllocationId, Relay>,
    tcp_relays: HashMap<AllocationId, TcpRelay>,
    /// RFC 6062 peer connections waiting for their ConnectionBind.
    peer_connections: HashMap<ConnectionId, tokio::net::TcpStream>,
    pipes: HashMap<ConnectionId, Pipe>,
    tcp_tx: mpsc::Sender<TcpEvent>,
    streams: HashMap<FiveTuple, StreamClient>,
    peer_tx: mpsc::Sender<PeerDatagram>,
    failed_tx: mpsc::UnboundedSender<AllocationId>,
    stream_tx: mpsc::Sender<StreamEvent>,
    drops: Arc<Drops>,
    metrics: Metrics,
    records: Option<mpsc::Sender<AllocationRecord>>,
    /// A moment on both clocks, to put summaries on the wall clock.
    epoch: (Instant, SystemTime),
    seen: Stats,
    shutdown: CancellationToken,
}

/// Runs the relay until `ctx` says to stop.
pub async fn run(ctx: ServiceContext, config: ShellConfig) -> Result<(), BoxError> {
    if config.danger_allow_loopback_peers {
        tracing::warn!(
            "turn.danger_allow_loopback_peers is on: clients may relay to this host's \
             loopback services; for test rigs and benchmarks only"
        );
    }
    let relay = relay_ip(config.listen.ip(), config.relay_address)?;
    // Fails now, with the reason, when the relay address is not one of this machine's.
    std::net::UdpSocket::bind((relay, 0)).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot relay from {relay} (turn.relay_address): {err}"),
        )
    })?;
    let listeners = bind_listeners(&config).await?;

    let mut entropy = OsEntropy;
    let ports = PortPool::new(config.relay_ports.clone(), &mut entropy);
    let mut own_addresses = vec![listeners.udp_local, listeners.tcp_local];
    own_addresses.extend(listeners.tls.as_ref().map(|(_, local, _)| *local));
    let mut server_config = ServerConfig {
        realm: config.realm.clone(),
        policy: PeerPolicy {
            allow: config.allowed_peers.clone(),
            deny: Vec::new(),
            own_addresses,
            danger_allow_loopback_peers: config.danger_allow_loopback_peers,
        },
        max_allocations: config.max_allocations,
        max_allocations_per_user: config.max_allocations_per_user,
        ..ServerConfig::default()
    };
    match relay {
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

    let mut endpoints = vec![format!("turn:{}", listeners.udp_local)];
    if let Some((_, local, _)) = &listeners.tls {
        endpoints.push(format!("turns:{local}"));
    }
    ctx.set_ready_at(endpoints);
    tracing::info!(
        udp_and_tcp = %listeners.udp_local,
        tls = ?listeners.tls.as_ref().map(|(_, local, _)| *local),
        %relay,
        relay_ports = ?config.relay_ports,
        "turn relay listening"
    );

    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerDatagram>(PEER_QUEUE);
    // At most one failure per allocation, so this cannot grow beyond the allocation cap.
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<AllocationId>();
    let (stream_tx, mut stream_rx) = mpsc::channel::<StreamEvent>(STREAM_QUEUE);
    let (tcp_tx, mut tcp_rx) = mpsc::channel::<TcpEvent>(TCP_EVENT_QUEUE);
    let mut owner = Owner {
        relays: HashMap::new(),
        tcp_relays: HashMap::new(),
        peer_connections: HashMap::new(),
        pipes: HashMap::new(),
        tcp_tx,
        streams: HashMap::new(),
        peer_tx,
        failed_tx,
        stream_tx,
        drops: Arc::new(Drops::default()),
        metrics: config.metrics.clone(),
        records: config.records.clone(),
        epoch: (Instant::now(), SystemTime::now()),
        seen: Stats::default(),
        shutdown: ctx.shutdown().child_token(),
    };
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut tick = tokio::time::interval(TICK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tls = listeners.tls.as_ref();

    loop {
        let deadline = server.poll_timeout();
        tokio::select! {
            () = ctx.shutdown().cancelled() => break,
            received = listeners.udp.recv_from(&mut buf) => match received {
                Ok((len, client)) => {
                    let tuple = FiveTuple {
                        client,
                        server: listeners.udp_local,
                        transport: Transport::Udp,
                    };
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
            Some(event) = stream_rx.recv() => match event {
                StreamEvent::Frames { tuple, bytes } => {
                    owner.report_pipe_bytes(&mut server);
                    let now = Instant::now().into_std();
                    for frame in framing::frames(&bytes) {
                        server.handle_client(now, tuple, frame);
                    }
                }
                StreamEvent::Closed { tuple } => {
                    owner.report_pipe_bytes(&mut server);
                    owner.streams.remove(&tuple);
                    owner.metrics.set_stream_clients(owner.streams.len());
                    server.handle_connection_closed(Instant::now().into_std(), tuple);
                }
            },
            accepted = listeners.tcp.accept() => match accepted {
                Ok((stream, client)) => {
                    let tuple = FiveTuple {
                        client,
                        server: listeners.tcp_local,
                        transport: Transport::Tcp,
                    };
                    owner.accept(tuple, async move { Ok::<_, io::Error>(stream) });
                }
                Err(err) => tracing::debug!(error = %err, "turn: TCP accept failed"),
            },
            accepted = accept_tls(tls) => match accepted {
                Ok((stream, client, local, acceptor)) => {
                    let tuple = FiveTuple { client, server: local, transport: Transport::Tls };
                    owner.accept(tuple, handshake(acceptor, stream));
                }
                Err(err) => tracing::debug!(error = %err, "turn: TLS accept failed"),
            },
            Some(allocation) = failed_rx.recv() => {
                if owner.relays.remove(&allocation).is_some() {
                    server.handle_relay_failed(Instant::now().into_std(), allocation);
                }
            }
            Some(event) = tcp_rx.recv() => owner.peer_connection(&mut server, event),
            () = sleep_until(deadline) => {
                owner.report_pipe_bytes(&mut server);
                server.handle_timeout(Instant::now().into_std());
            }
            _ = tick.tick() => {
                owner.report_pipe_bytes(&mut server);
                server.handle_wall_clock(Instant::now().into_std(), unix_now());
                owner.sync_metrics(&server);
            }
        }
        owner.perform(&mut server, &listeners.udp);
    }

    owner.shutdown.cancel();
    owner.report_pipe_bytes(&mut server);
    server.finish(Instant::now().into_std());
    owner.perform(&mut server, &listeners.udp);
    owner.sync_metrics(&server);
    owner.relays.clear();
    owner.tcp_relays.clear();
    owner.pipes.clear();
    let stats = server.stats();
    let drops = &owner.drops;
    tracing::info!(
        binding_requests = stats.binding_requests,
        turn_requests = stats.turn_requests,
        dropped = stats.dropped,
        malformed = stats.malformed,
        peer_queue_full = drops.peer_queue_full.load(Ordering::Relaxed),
        send_failed = drops.send_failed.load(Ordering::Relaxed),
        stream_queue_full = drops.stream_queue_full.load(Ordering::Relaxed),
        records_lost = drops.records_lost.load(Ordering::Relaxed),
        "turn relay stopped"
    );
    Ok(())
}

/// How much the kernel may queue for the listening UDP socket while the relay is off the CPU.
/// Every client's datagrams arrive on that one socket, and the default (about 200 KiB, some
/// 1,000 small datagrams) overflows within milliseconds under load when the relay shares a
/// busy core: the kernel then drops them silently.
const LISTEN_RECEIVE_BUFFER: usize = 8 << 20;

/// Asks for `LISTEN_RECEIVE_BUFFER`, beyond `net.core.rmem_max` where the process may
/// (CAP_NET_ADMIN), else as much as that limit allows. A refusal only costs headroom, so it is
/// logged, not fatal.
fn enlarge_receive_buffer(socket: &UdpSocket) {
    use rustix::net::sockopt;
    if sockopt::set_socket_recv_buffer_size_force(socket, LISTEN_RECEIVE_BUFFER).is_ok() {
        return;
    }
    if let Err(err) = sockopt::set_socket_recv_buffer_size(socket, LISTEN_RECEIVE_BUFFER) {
        tracing::warn!(error = %err, "turn: cannot enlarge the UDP receive buffer");
    }
}

/// Binds UDP and TCP on the same `listen` port (a port 0 is chosen for UDP, then taken for
/// TCP too, trying again if another program holds it for TCP), and TLS on `tls_listen`.
async fn bind_listeners(config: &ShellConfig) -> io::Result<Listeners> {
    let mut attempts = 0;
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind(config.listen).await?;
        enlarge_receive_buffer(&udp);
        let udp_local = udp.local_addr()?;
        match TcpListener::bind(udp_local).await {
            Ok(tcp) => break (udp, tcp),
            Err(err) if config.listen.port() == 0 && attempts < 8 => {
                attempts += 1;
                tracing::debug!(error = %err, "turn: TCP port taken, choosing another");
            }
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("cannot listen on TCP {udp_local} (turn.listen): {err}"),
                ));
            }
        }
    };
    let tls = match &config.tls {
        None => None,
        Some(tls) => {
            let listener = TcpListener::bind(tls.listen).await.map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot listen on {} (turn.tls_listen): {err}", tls.listen),
                )
            })?;
            let local = listener.local_addr()?;
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            Some((listener, local, acceptor))
        }
    };
    Ok(Listeners {
        udp_local: udp.local_addr()?,
        udp,
        tcp_local: tcp.local_addr()?,
        tcp,
        tls,
    })
}

type TlsAccepted = (TcpStream, SocketAddr, SocketAddr, tokio_rustls::TlsAcceptor);

/// The next TLS client, or never when TLS is off.
async fn accept_tls(
    tls: Option<&(TcpListener, SocketAddr, tokio_rustls::TlsAcceptor)>,
) -> io::Result<TlsAccepted> {
    match tls {
        Some((listener, local, acceptor)) => {
            let (stream, client) = listener.accept().await?;
            Ok((stream, client, *local, acceptor.clone()))
        }
        None => std::future::pending().await,
    }
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(stream::HANDSHAKE_WITHIN, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake took too long"))?
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

impl Owner {
    /// Starts serving a stream client once `open` (a TLS handshake, or nothing) is done, if
    /// there is room for it.
    fn accept<S, F>(&mut self, tuple: FiveTuple, open: F)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        F: std::future::Future<Output = io::Result<S>> + Send + 'static,
    {
        if self.streams.len() >= MAX_STREAM_CLIENTS {
            self.metrics.dropped("stream_clients_full", 1);
            tracing::debug!(client = %tuple.client, "turn: too many stream clients; closed");
            return;
        }
        let (outgoing_tx, outgoing_rx) = mpsc::channel(stream::OUTGOING_QUEUE);
        self.streams.insert(
            tuple,
            StreamClient {
                outgoing: outgoing_tx,
            },
        );
        self.metrics.set_stream_clients(self.streams.len());
        let events = self.stream_tx.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match open.await {
                Ok(stream) => stream::serve(stream, tuple, events, outgoing_rx, shutdown).await,
                Err(err) => {
                    tracing::debug!(client = %tuple.client, error = %err, "turn: TLS handshake failed");
                    let _ = events.send(StreamEvent::Closed { tuple }).await;
                }
            }
        });
    }

    fn sync_metrics(&mut self, server: &Server) {
        self.metrics.sync(&server.stats(), &mut self.seen);
        let drops = &self.drops;
        for (reason, counter) in [
            ("peer_queue_full", &drops.peer_queue_full),
            ("send_failed", &drops.send_failed),
            ("stream_queue_full", &drops.stream_queue_full),
            ("records_lost", &drops.records_lost),
        ] {
            self.metrics
                .dropped(reason, counter.swap(0, Ordering::Relaxed));
        }
    }

    fn wall_clock(&self, at: std::time::Instant) -> SystemTime {
        let (instant, system) = self.epoch;
        let instant = instant.into_std();
        if at >= instant {
            system + (at - instant)
        } else {
            system.checked_sub(instant - at).unwrap_or(UNIX_EPOCH)
        }
    }

    /// Does what the server asked, then reports what happened.
    fn perform(&mut self, server: &mut Server, socket: &UdpSocket) {
        while let Some(action) = server.poll_action() {
            match action {
                Action::Transmit { tuple, bytes } => self.transmit(socket, tuple, bytes),
                Action::OpenRelay {
                    allocation,
                    relayed,
                } => match open_relay(
                    allocation,
                    relayed,
                    &self.peer_tx,
                    &self.failed_tx,
                    &self.drops,
                ) {
                    Ok(relay) => {
                        self.relays.insert(allocation, relay);
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
                    let sent = self
                        .relays
                        .get(&allocation)
                        .map(|relay| relay.socket.try_send_to(&bytes, peer));
                    if !matches!(sent, Some(Ok(_))) {
                        self.drops.send_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Action::CloseRelay { allocation, .. } => {
                    self.relays.remove(&allocation);
                    self.tcp_relays.remove(&allocation);
                }
                Action::OpenTcpRelay {
                    allocation,
                    relayed,
                } => match tcp::open_tcp_relay(allocation, relayed, &self.tcp_tx) {
                    Ok(relay) => {
                        self.tcp_relays.insert(allocation, relay);
                    }
                    Err(err) => {
                        tracing::warn!(%relayed, error = %err, "turn: cannot listen on a relayed address");
                        server.handle_relay_failed(Instant::now().into_std(), allocation);
                    }
                },
                Action::ConnectPeer {
                    connection,
                    relayed,
                    peer,
                    ..
                } => tcp::dial(
                    connection,
                    relayed,
                    peer,
                    &self.tcp_tx,
                    self.shutdown.clone(),
                ),
                Action::BindData { connection, tuple } => self.bind_data(server, connection, tuple),
                Action::CloseConnection { connection } => {
                    self.peer_connections.remove(&connection);
                    // Dropping the pipe closes it.
                    self.pipes.remove(&connection);
                }
            }
        }
        while let Some(event) = server.poll_event() {
            self.report(event);
        }
    }

    fn transmit(&mut self, socket: &UdpSocket, tuple: FiveTuple, bytes: Vec<u8>) {
        if tuple.transport == Transport::Udp {
            if let Err(err) = socket.try_send_to(&bytes, tuple.client) {
                self.drops.send_failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %tuple.client, error = %err, "turn: reply not sent");
            }
            return;
        }
        let Some(client) = self.streams.get(&tuple) else {
            self.drops.send_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if client.outgoing.try_send(Outgoing::Frame(bytes)).is_err() {
            self.drops.stream_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A peer connection accepted on, or dialled from, a TCP allocation's relayed address.
    fn peer_connection(&mut self, server: &mut Server, event: TcpEvent) {
        let now = Instant::now().into_std();
        match event {
            TcpEvent::Incoming {
                allocation,
                peer,
                stream,
            } => {
                if let Some(connection) = server.handle_peer_connection(now, allocation, peer) {
                    self.peer_connections.insert(connection, stream);
                }
            }
            TcpEvent::Dialled {
                connection,
                result: Ok(stream),
            } => {
                if server.handle_peer_connected(now, connection) {
                    self.peer_connections.insert(connection, stream);
                }
            }
            TcpEvent::Dialled {
                connection,
                result: Err(err),
            } => {
                tracing::debug!(connection = connection.0, error = %err, "turn: peer dial failed");
                server.handle_peer_connect_failed(now, connection);
            }
        }
    }

    /// Turns the client connection `tuple` into a pipe to the peer connection.
    fn bind_data(&mut self, server: &mut Server, connection: ConnectionId, tuple: FiveTuple) {
        let (Some(peer), Some(client)) = (
            self.peer_connections.remove(&connection),
            self.streams.get(&tuple),
        ) else {
            server.handle_connection_closed(Instant::now().into_std(), tuple);
            return;
        };
        let counters = Arc::new(PipeCounters::default());
        let close = self.shutdown.child_token();
        let start = PipeStart {
            peer,
            counters: counters.clone(),
            close: close.clone(),
        };
        if client.outgoing.try_send(Outgoing::Pipe(start)).is_err() {
            self.drops.stream_queue_full.fetch_add(1, Ordering::Relaxed);
            server.handle_connection_closed(Instant::now().into_std(), tuple);
            return;
        }
        self.pipes.insert(
            connection,
            Pipe {
                counters,
                reported: (0, 0),
                close,
            },
        );
    }

    /// Tells the server what the pipes carried since last time, before it may end their
    /// allocations and write the summaries.
    fn report_pipe_bytes(&mut self, server: &mut Server) {
        for (connection, pipe) in &mut self.pipes {
            let (to_peer, from_peer) = pipe.take_new_bytes();
            if to_peer > 0 || from_peer > 0 {
                server.handle_connection_bytes(*connection, to_peer, from_peer);
            }
        }
    }

    fn report(&mut self, event: Event) {
        match event {
            Event::AllocationStarted {
                allocation,
                username,
                client,
                relayed,
            } => {
                self.metrics.allocation_started(client.transport.name());
                tracing::info!(
                    allocation = allocation.0,
                    %username,
                    client = %client.client,
                    transport = client.transport.name(),
                    ?relayed,
                    "turn allocation started"
                );
            }
            Event::AllocationEnded(summary) => {
                self.metrics.allocation_ended(summary.reason.name());
                tracing::info!(
                    allocation = summary.allocation.0,
                    username = %summary.username,
                    reason = summary.reason.name(),
                    to_peers_bytes = summary.to_peers.bytes,
                    from_peers_bytes = summary.from_peers.bytes,
                    dropped = summary.to_peers.dropped_packets + summary.from_peers.dropped_packets,
                    "turn allocation ended"
                );
                if let Some(records) = &self.records {
                    let record = AllocationRecord {
                        started: self.wall_clock(summary.started),
                        ended: self.wall_clock(summary.ended),
                        summary,
                    };
                    if records.try_send(record).is_err() {
                        self.drops.records_lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Event::PeerRefused {
                allocation,
                peer,
                reason,
            } => {
                self.metrics.peer_refused(reason.label());
                tracing::info!(
                    allocation = allocation.0,
                    %peer,
                    reason = reason.label(),
                    "turn peer refused"
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_address_is_the_configured_one_then_the_listening_one() {
        let configured: IpAddr = "192.0.2.10".parse().expect("literal");
        let listen: IpAddr = "127.0.0.1".parse().expect("literal");
        let unspecified: IpAddr = "0.0.0.0".parse().expect("literal");
        assert_eq!(
            relay_ip(unspecified, Some(configured)).ok(),
            Some(configured)
        );
        assert_eq!(relay_ip(listen, None).ok(), Some(listen));
        // Unspecified and unconfigured: the default route's source address, when there is
        // one; never the unspecified address itself.
        if let Ok(chosen) = relay_ip(unspecified, None) {
            assert!(!chosen.is_unspecified(), "{chosen}");
        }
    }
}
