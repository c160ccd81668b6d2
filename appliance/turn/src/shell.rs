//! The network shell around [`Server`]: real sockets, the clock and the operating system's
//! randomness.
//!
//! The datagram path runs on a thread of its own ([`tokio::task::spawn_blocking`]), the
//! owner: it holds the server, the UDP listening socket and every allocation's relayed UDP
//! socket, all in one epoll set, and sleeps in `epoll_wait` until one of them is readable or
//! the server's next deadline. Each wakeup reads what is waiting on the ready sockets (up to
//! a batch from the listening socket, one datagram from each ready relayed socket; the epoll
//! set is level-triggered, so what is left is read at the next wakeup and no socket starves
//! the others), hands it to the server with one reading of the clock, sends what the server
//! asks at once to peers and, batched with `sendmmsg`, to clients, and gives the buffers
//! back to the server for the next datagrams. A relayed datagram thus costs its receive,
//! its send and a share of one `epoll_wait`: no task wakeup, channel, lock or allocation.
//!
//! TCP and TLS stay on the async runtime: the listeners' accept loops, a task per client
//! connection ([`stream`], capped at [`MAX_STREAM_CLIENTS`]) and RFC 6062's TCP allocations
//! ([`tcp`]). They reach the owner through bounded channels that wake it by an eventfd in
//! its epoll set ([`inbox`]); the owner answers through the connections' own queues, and
//! starts their tasks on the runtime. Everything the server asks for happens on the owner,
//! so the core is never shared.
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
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrAny, sendmmsg};
use tapline_runtime::{BoxError, CancellationToken, ServiceContext};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::allocation::{AllocationId, FastMap, FiveTuple, Summary, Transport};
use crate::auth::{Credentials, StaticUser};
use crate::entropy::Entropy;
use crate::framing;
use crate::policy::{Network, PeerPolicy};
use crate::ports::PortPool;
use crate::server::{Action, ConnectionId, Event, Server, ServerConfig, Stats};

mod inbox;
mod metrics;
mod stream;
mod tcp;

use inbox::{Inbox, Waker};
pub use metrics::Metrics;
/// The TLS library the relay speaks through, for callers building its `ServerConfig`.
pub use rustls;
use stream::{Outgoing, StreamEvent};
use tcp::{Pipe, PipeCounters, PipeStart, TcpEvent, TcpRelay};

/// How often the server is told the Unix time again (REST usernames expire by it) and the
/// metrics catch up with its counts.
const TICK_EVERY: Duration = Duration::from_secs(1);
/// TCP and TLS client connections at once; more are closed as they are accepted.
pub const MAX_STREAM_CLIENTS: usize = 1024;
/// Frames from stream clients waiting for the owner; their readers wait when it is full.
const STREAM_QUEUE: usize = 1024;
/// Ended allocations waiting for the summary writer; more are dropped and counted.
pub const RECORD_QUEUE: usize = 4096;
/// Peer connections accepted or dialled waiting for the owner.
const TCP_EVENT_QUEUE: usize = 256;
/// Accepted TCP and TLS clients waiting for the owner; the accept loops wait when it is full.
const ACCEPT_QUEUE: usize = 64;
/// The largest UDP payload.
const DATAGRAM_MAX: usize = 65_535;
/// Ready sockets taken from one `epoll_wait`.
const EPOLL_EVENTS: usize = 256;
/// Datagrams read from the listening socket before the others get their turn; what is left
/// is read at the next wakeup (the epoll set is level-triggered).
const READ_BATCH: usize = 64;
/// Datagrams to clients given to one `sendmmsg`.
const SEND_BATCH: usize = 32;
/// Tokens of the epoll set besides relayed sockets, whose token is their allocation's number
/// (counted up from 1, so never one of these).
const LISTEN_TOKEN: u64 = u64::MAX;
const WAKE_TOKEN: u64 = u64::MAX - 1;

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

/// Counts of what the shell itself dropped, until the next tick reports them.
#[derive(Debug, Default)]
struct Drops {
    /// Sends that would have blocked or failed.
    send_failed: u64,
    /// Frames for a stream client whose outgoing queue was full.
    stream_queue_full: u64,
    /// Summaries not recorded because the writer fell behind.
    records_lost: u64,
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

/// A TCP or TLS client accepted, before its handshake.
struct Accepted {
    tuple: FiveTuple,
    stream: TcpStream,
    /// Set for TLS.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What the owner reads from the async side when its eventfd fires.
struct Inputs {
    waker: Arc<Waker>,
    streams: mpsc::Receiver<StreamEvent>,
    tcp: mpsc::Receiver<TcpEvent>,
    accepted: mpsc::Receiver<Accepted>,
}

/// Datagrams for UDP clients, sent together at the end of a wakeup.
#[derive(Default)]
struct ClientBatch {
    to: Vec<SocketAddrAny>,
    bytes: Vec<Vec<u8>>,
}

/// Everything the owner keeps besides the server.
struct Owner {
    epoll: OwnedFd,
    udp: UdpSocket,
    udp_local: SocketAddr,
    relays: FastMap<AllocationId, UdpSocket>,
    to_clients: ClientBatch,
    tcp_relays: HashMap<AllocationId, TcpRelay>,
    /// RFC 6062 peer connections waiting for their ConnectionBind.
    peer_connections: HashMap<ConnectionId, TcpStream>,
    pipes: HashMap<ConnectionId, Pipe>,
    tcp_tx: Inbox<TcpEvent>,
    streams: HashMap<FiveTuple, StreamClient>,
    stream_tx: Inbox<StreamEvent>,
    drops: Drops,
    metrics: Metrics,
    records: Option<mpsc::Sender<AllocationRecord>>,
    /// A moment on both clocks, to put summaries on the wall clock.
    epoch: (Instant, SystemTime),
    seen: Stats,
    /// Cancelled when the relay is to stop, and by the owner when it has stopped: stream
    /// and TCP tasks end with it.
    shutdown: CancellationToken,
}

/// Aborts a task when dropped, so that no accept loop or watcher outlives the relay.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stops the owner when dropped: `run` returning, or its future being dropped by the
/// supervisor, always ends the thread too.
struct StopOwner {
    shutdown: CancellationToken,
    waker: Arc<Waker>,
}

impl Drop for StopOwner {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.waker.wake();
    }
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
    UdpSocket::bind((relay, 0)).map_err(|err| {
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
    let server = Server::new(
        server_config,
        credentials,
        Box::new(ports),
        Box::new(entropy),
        Instant::now(),
        unix_now(),
    );

    let waker = Arc::new(Waker::new()?);
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &epoll,
        &listeners.udp,
        epoll::EventData::new_u64(LISTEN_TOKEN),
        epoll::EventFlags::IN,
    )?;
    epoll::add(
        &epoll,
        waker.fd(),
        epoll::EventData::new_u64(WAKE_TOKEN),
        epoll::EventFlags::IN,
    )?;

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

    let (stream_tx, stream_rx) = Inbox::channel(STREAM_QUEUE, &waker);
    let (tcp_tx, tcp_rx) = Inbox::channel(TCP_EVENT_QUEUE, &waker);
    let (accepted_tx, accepted_rx) = Inbox::channel(ACCEPT_QUEUE, &waker);
    let shutdown = ctx.shutdown().child_token();
    let _stop = StopOwner {
        shutdown: shutdown.clone(),
        waker: waker.clone(),
    };
    let Listeners {
        udp,
        udp_local,
        tcp,
        tcp_local,
        tls,
    } = listeners;
    // The owner sleeps in epoll_wait, not on the token: wake it when the relay is to stop.
    let stopping = shutdown.clone();
    let stop_waker = waker.clone();
    let mut tasks = vec![AbortOnDrop(tokio::spawn(async move {
        stopping.cancelled().await;
        stop_waker.wake();
    }))];
    tasks.push(AbortOnDrop(tokio::spawn(accept_clients(
        tcp,
        tcp_local,
        None,
        accepted_tx.clone(),
    ))));
    if let Some((listener, local, acceptor)) = tls {
        tasks.push(AbortOnDrop(tokio::spawn(accept_clients(
            listener,
            local,
            Some(acceptor),
            accepted_tx,
        ))));
    }
    let owner = Owner {
        epoll,
        udp,
        udp_local,
        relays: FastMap::default(),
        to_clients: ClientBatch::default(),
        tcp_relays: HashMap::new(),
        peer_connections: HashMap::new(),
        pipes: HashMap::new(),
        tcp_tx,
        streams: HashMap::new(),
        stream_tx,
        drops: Drops::default(),
        metrics: config.metrics.clone(),
        records: config.records.clone(),
        epoch: (Instant::now(), SystemTime::now()),
        seen: Stats::default(),
        shutdown,
    };
    let inputs = Inputs {
        waker,
        streams: stream_rx,
        tcp: tcp_rx,
        accepted: accepted_rx,
    };
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The owner starts stream and TCP tasks on the runtime.
        let _runtime = runtime.enter();
        owner.serve(server, inputs)
    })
    .await??;
    drop(tasks);
    Ok(())
}

/// Accepts TCP or TLS clients on `listener` and hands them to the owner.
async fn accept_clients(
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    owner: Inbox<Accepted>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let tuple = FiveTuple {
                    client,
                    server: local,
                    transport,
                };
                let accepted = Accepted {
                    tuple,
                    stream,
                    tls: tls.clone(),
                };
                if owner.send(accepted).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "turn: {} accept failed", transport.name());
                tokio::time::sleep(tcp::ACCEPT_RETRY_AFTER).await;
            }
        }
    }
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
        let udp = UdpSocket::bind(config.listen)?;
        udp.set_nonblocking(true)?;
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

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(stream::HANDSHAKE_WITHIN, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake took too long"))?
}

impl Owner {
    /// The owner's loop, until the relay is to stop; then every allocation ends.
    fn serve(mut self, mut server: Server, mut inputs: Inputs) -> Result<(), BoxError> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EPOLL_EVENTS);
        let mut buf = vec![0u8; DATAGRAM_MAX];
        let mut next_tick = Instant::now() + TICK_EVERY;
        while !self.shutdown.is_cancelled() {
            let due = server
                .poll_timeout()
                .map_or(next_tick, |deadline| deadline.min(next_tick));
            let wait =
                rustix::event::Timespec::try_from(due.saturating_duration_since(Instant::now()))
                    .unwrap_or(rustix::event::Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    });
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&wait),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(io::Error::from(err).into()),
            }
            let now = Instant::now();
            for event in &events {
                match event.data.u64() {
                    LISTEN_TOKEN => self.read_clients(&mut server, now, &mut buf),
                    WAKE_TOKEN => self.read_inputs(&mut server, &mut inputs),
                    id => self.read_peer(&mut server, now, AllocationId(id), &mut buf),
                }
                self.perform(&mut server);
            }
            if server
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                self.report_pipe_bytes(&mut server);
                server.handle_timeout(now);
            }
            if now >= next_tick {
                next_tick = now + TICK_EVERY;
                self.report_pipe_bytes(&mut server);
                server.handle_wall_clock(now, unix_now());
                self.sync_metrics(&server);
            }
            self.perform(&mut server);
            self.flush_to_clients(&mut server);
        }

        self.shutdown.cancel();
        self.report_pipe_bytes(&mut server);
        server.finish(Instant::now());
        self.perform(&mut server);
        self.flush_to_clients(&mut server);
        self.sync_metrics(&server);
        self.relays.clear();
        self.tcp_relays.clear();
        self.pipes.clear();
        let stats = server.stats();
        tracing::info!(
            binding_requests = stats.binding_requests,
            turn_requests = stats.turn_requests,
            dropped = stats.dropped,
            malformed = stats.malformed,
            "turn relay stopped"
        );
        Ok(())
    }

    /// Datagrams from clients on the listening socket.
    fn read_clients(&mut self, server: &mut Server, now: Instant, buf: &mut [u8]) {
        for _ in 0..READ_BATCH {
            match receive(&self.udp, buf) {
                Ok(Some((len, client))) => {
                    let tuple = FiveTuple {
                        client,
                        server: self.udp_local,
                        transport: Transport::Udp,
                    };
                    server.handle_client(now, tuple, &buf[..len]);
                }
                Ok(None) => {}
                Err(Errno::AGAIN) => return,
                // Errors on an unconnected UDP socket concern one datagram, not the socket.
                Err(err) => tracing::debug!(error = %err, "turn: receive failed"),
            }
        }
    }

    /// A datagram from a peer on an allocation's relayed socket. One per wakeup: a peer
    /// rarely has more than one waiting, so trying for a second would mostly cost a system
    /// call that finds nothing; whatever is left keeps the socket ready for the next wakeup
    /// (the epoll set is level-triggered).
    fn read_peer(&mut self, server: &mut Server, now: Instant, id: AllocationId, buf: &mut [u8]) {
        // Gone already when its allocation ended earlier in this wakeup.
        let Some(socket) = self.relays.get(&id) else {
            return;
        };
        match receive(socket, buf) {
            Ok(Some((len, peer))) => server.handle_peer_data(now, id, peer, &buf[..len]),
            // ICMP errors for earlier sends show up here on some systems; they concern one
            // peer, not the socket.
            Ok(None) | Err(Errno::AGAIN | Errno::CONNREFUSED) => {}
            Err(err) => {
                tracing::warn!(allocation = id.0, error = %err, "turn: relayed socket failed");
                self.relays.remove(&id);
                server.handle_relay_failed(now, id);
            }
        }
    }

    /// What the async side sent: stream frames, peer connections, accepted clients.
    fn read_inputs(&mut self, server: &mut Server, inputs: &mut Inputs) {
        inputs.waker.reset();
        while let Ok(accepted) = inputs.accepted.try_recv() {
            let Accepted { tuple, stream, tls } = accepted;
            match tls {
                Some(acceptor) => self.accept(tuple, handshake(acceptor, stream)),
                None => self.accept(tuple, std::future::ready(Ok::<_, io::Error>(stream))),
            }
        }
        while let Ok(event) = inputs.tcp.try_recv() {
            self.peer_connection(server, event);
        }
        while let Ok(event) = inputs.streams.try_recv() {
            match event {
                StreamEvent::Frames { tuple, bytes } => {
                    self.report_pipe_bytes(server);
                    let now = Instant::now();
                    for frame in framing::frames(&bytes) {
                        server.handle_client(now, tuple, frame);
                    }
                }
                StreamEvent::Closed { tuple } => {
                    self.report_pipe_bytes(server);
                    self.streams.remove(&tuple);
                    self.metrics.set_stream_clients(self.streams.len());
                    server.handle_connection_closed(Instant::now(), tuple);
                }
            }
            // Replies go out in order with the frames that caused them.
            self.perform(server);
        }
    }

    /// Sends the datagrams queued for UDP clients, `SEND_BATCH` to a system call.
    fn flush_to_clients(&mut self, server: &mut Server) {
        let batch = &mut self.to_clients;
        if let ([to], [bytes]) = (batch.to.as_slice(), batch.bytes.as_slice()) {
            if let Err(err) = rustix::net::sendto(&self.udp, bytes, SendFlags::empty(), to) {
                self.drops.send_failed += 1;
                tracing::debug!(error = %err, "turn: datagram to a client not sent");
            }
        } else {
            let mut start = 0;
            while start < batch.to.len() {
                let end = batch.to.len().min(start + SEND_BATCH);
                match send_batch(&self.udp, &batch.to[start..end], &batch.bytes[start..end]) {
                    Ok(sent) if sent > 0 => start += sent,
                    result => {
                        // The first datagram of the rest could not go; skip it, try the others.
                        self.drops.send_failed += 1;
                        if let Err(err) = result {
                            tracing::debug!(error = %err, "turn: datagram to a client not sent");
                        }
                        start += 1;
                    }
                }
            }
        }
        batch.to.clear();
        for bytes in batch.bytes.drain(..) {
            server.recycle(bytes);
        }
    }

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
        let drops = std::mem::take(&mut self.drops);
        for (reason, count) in [
            ("send_failed", drops.send_failed),
            ("stream_queue_full", drops.stream_queue_full),
            ("records_lost", drops.records_lost),
        ] {
            self.metrics.dropped(reason, count);
        }
    }

    fn wall_clock(&self, at: Instant) -> SystemTime {
        let (instant, system) = self.epoch;
        if at >= instant {
            system + (at - instant)
        } else {
            system.checked_sub(instant - at).unwrap_or(UNIX_EPOCH)
        }
    }

    /// Does what the server asked, then reports what happened.
    fn perform(&mut self, server: &mut Server) {
        while let Some(action) = server.poll_action() {
            match action {
                Action::Transmit { tuple, bytes } => self.transmit(tuple, bytes),
                Action::OpenRelay {
                    allocation,
                    relayed,
                    dont_fragment,
                } => match open_relay(&self.epoll, allocation, relayed, dont_fragment) {
                    Ok(socket) => {
                        self.relays.insert(allocation, socket);
                    }
                    Err(err) => {
                        tracing::warn!(%relayed, error = %err, "turn: cannot open a relayed socket");
                        server.handle_relay_failed(Instant::now(), allocation);
                    }
                },
                Action::RelayTo {
                    allocation,
                    peer,
                    bytes,
                    ..
                } => {
                    let sent = self.relays.get(&allocation).map(|socket| {
                        rustix::net::sendto(socket, &bytes, SendFlags::empty(), &peer)
                    });
                    if !matches!(sent, Some(Ok(_))) {
                        self.drops.send_failed += 1;
                    }
                    server.recycle(bytes);
                }
                Action::CloseRelay { allocation, .. } => {
                    // Closing the socket takes it out of the epoll set.
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
                        server.handle_relay_failed(Instant::now(), allocation);
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

    /// Queues a datagram for a UDP client (sent with the others at the end of the wakeup),
    /// or a frame for a stream client.
    fn transmit(&mut self, tuple: FiveTuple, bytes: Vec<u8>) {
        if tuple.transport == Transport::Udp {
            self.to_clients.to.push(SocketAddrAny::from(tuple.client));
            self.to_clients.bytes.push(bytes);
            return;
        }
        let Some(client) = self.streams.get(&tuple) else {
            self.drops.send_failed += 1;
            return;
        };
        if client.outgoing.try_send(Outgoing::Frame(bytes)).is_err() {
            self.drops.stream_queue_full += 1;
        }
    }

    /// A peer connection accepted on, or dialled from, a TCP allocation's relayed address.
    fn peer_connection(&mut self, server: &mut Server, event: TcpEvent) {
        let now = Instant::now();
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
            server.handle_connection_closed(Instant::now(), tuple);
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
            self.drops.stream_queue_full += 1;
            server.handle_connection_closed(Instant::now(), tuple);
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
                        self.drops.records_lost += 1;
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

/// One datagram into `buf`: its length and sender (`None` for a sender that is not an IP
/// address, which a UDP socket never has). rustix makes the system call directly, without
/// the C library's cancellation bookkeeping around each.
fn receive(socket: &UdpSocket, buf: &mut [u8]) -> Result<Option<(usize, SocketAddr)>, Errno> {
    let (len, _, from) = rustix::net::recvfrom(socket, buf, RecvFlags::empty())?;
    Ok(from
        .and_then(|from| SocketAddr::try_from(from).ok())
        .map(|from| (len, from)))
}

/// One `sendmmsg` of `bytes[i]` to `to[i]` (at most [`SEND_BATCH`]); how many went.
fn send_batch(socket: &UdpSocket, to: &[SocketAddrAny], bytes: &[Vec<u8>]) -> io::Result<usize> {
    let count = to.len().min(bytes.len()).min(SEND_BATCH);
    let iovs: [[io::IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
        [io::IoSlice::new(
            bytes.get(i).map_or(&[][..], Vec::as_slice),
        )]
    });
    let mut controls: [rustix::net::SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] =
        std::array::from_fn(|_| rustix::net::SendAncillaryBuffer::default());
    let mut controls = controls.iter_mut();
    let mut messages: [rustix::net::MMsgHdr<'_>; SEND_BATCH] = std::array::from_fn(|i| {
        // `controls` has SEND_BATCH entries, one taken per message.
        #[allow(clippy::expect_used)]
        let control = controls.next().expect("one control buffer per message");
        match to.get(i).filter(|_| i < count) {
            Some(to) => rustix::net::MMsgHdr::new_with_addr(to, &iovs[i], control),
            None => rustix::net::MMsgHdr::new(&iovs[i], control),
        }
    });
    Ok(sendmmsg(
        socket,
        &mut messages[..count],
        rustix::net::SendFlags::empty(),
    )?)
}

/// Binds `relayed` for an allocation and adds it to the owner's epoll set. With
/// `dont_fragment`, the kernel sets DF on every datagram and refuses, rather than fragments,
/// one larger than the path allows (`IP_PMTUDISC_DO`; for IPv6, which has no DF bit, it only
/// stops the relay fragmenting).
fn open_relay(
    epoll: &OwnedFd,
    allocation: AllocationId,
    relayed: SocketAddr,
    dont_fragment: bool,
) -> io::Result<UdpSocket> {
    use rustix::net::sockopt;
    let socket = UdpSocket::bind(relayed)?;
    socket.set_nonblocking(true)?;
    if dont_fragment {
        match relayed {
            SocketAddr::V4(_) => {
                sockopt::set_ip_mtu_discover(&socket, sockopt::Ipv4PathMtuDiscovery::DO)?;
            }
            SocketAddr::V6(_) => {
                sockopt::set_ipv6_mtu_discover(&socket, sockopt::Ipv6PathMtuDiscovery::DO)?;
            }
        }
    }
    epoll::add(
        epoll,
        &socket,
        epoll::EventData::new_u64(allocation.0),
        epoll::EventFlags::IN,
    )?;
    Ok(socket)
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

    #[test]
    fn a_relayed_socket_sets_df_only_when_the_client_asked() {
        use rustix::net::sockopt::{self, Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery};
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        let v4: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        let asked = open_relay(&epoll, AllocationId(1), v4, true).expect("binds");
        assert_eq!(
            sockopt::ip_mtu_discover(&asked).ok(),
            Some(Ipv4PathMtuDiscovery::DO)
        );
        let default = open_relay(&epoll, AllocationId(2), v4, false).expect("binds");
        assert_ne!(
            sockopt::ip_mtu_discover(&default).ok(),
            Some(Ipv4PathMtuDiscovery::DO)
        );
        // A host without IPv6 on loopback cannot check the IPv6 option; say so.
        let v6: SocketAddr = "[::1]:0".parse().expect("literal");
        match open_relay(&epoll, AllocationId(3), v6, true) {
            Ok(asked) => assert_eq!(
                sockopt::ipv6_mtu_discover(&asked).ok(),
                Some(Ipv6PathMtuDiscovery::DO)
            ),
            Err(err) => eprintln!("SKIPPED the IPv6 half: cannot bind [::1] ({err})"),
        }
    }
}
