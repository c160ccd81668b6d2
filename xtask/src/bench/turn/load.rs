//! The benchmark's TURN clients and echo peer, written with Tapline's STUN codec
//! (`tapline_turn::stun`) and driven by one epoll loop on one thread.
//!
//! Each client is a UDP socket of its own on a loopback address of its own (`127.B.x.y`), as
//! each browser is a host of its own: a relay that budgets 401 replies per source address
//! treats them as it would real clients. A client allocates with long-term credentials of the
//! TURN REST API scheme (one username per client, so no per-user quota is hit), taking the
//! 401 round trip, and optionally binds channel [`CHANNEL`] to the echo peer.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rustix::event::epoll;
use tapline_turn::framing::ChannelData;
use tapline_turn::stun::{
    Class, IntegrityKind, Message, MessageBuilder, Method, TransactionId, attribute_type,
    long_term_key_md5,
};

use super::SECRET;

/// The channel every client binds to the echo peer.
pub(super) const CHANNEL: u16 = 0x4000;
/// A request unanswered this long is sent again, at most [`SENDS`] times in all.
const RETRANSMIT: Duration = Duration::from_millis(500);
const SENDS: u32 = 6;
/// REQUESTED-TRANSPORT: UDP.
const UDP: [u8; 4] = [17, 0, 0, 0];
/// The epoll token of the echo peer; clients use their index.
const PEER_TOKEN: u64 = u64::MAX;

/// The address of client `index` in address block `block`: `127.block.x.y`, x and y in 1..=250.
pub(super) fn client_ip(block: u8, index: usize) -> Ipv4Addr {
    // Callers ask for at most 62,500 clients a block, which fits: the casts cannot truncate.
    assert!(index < 250 * 250, "at most 62,500 clients a block");
    let x = u8::try_from(1 + index / 250).expect("at most 250");
    let y = u8::try_from(1 + index % 250).expect("at most 250");
    Ipv4Addr::new(127, block, x, y)
}

/// Where a client is in setting up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Allocate without credentials sent; a 401 with realm and nonce is expected.
    Challenge,
    /// Allocate with credentials sent.
    Allocate,
    ChannelBind,
    Ready,
    Failed(String),
}

/// One TURN client.
pub(super) struct Client {
    pub(super) socket: UdpSocket,
    index: usize,
    username: String,
    password: String,
    /// Realm, nonce and long-term key, once the server has challenged.
    challenge: Option<(String, String, Vec<u8>)>,
    step: Step,
    /// Where to bind [`CHANNEL`], if anywhere.
    peer: Option<SocketAddr>,
    transaction: TransactionId,
    transactions: u32,
    request: Vec<u8>,
    sent_at: Instant,
    sends: u32,
    pub(super) relayed: Option<SocketAddr>,
}

impl Client {
    /// A client on `ip` for `server`, not started.
    fn new(
        index: usize,
        ip: Ipv4Addr,
        server: SocketAddr,
        peer: Option<SocketAddr>,
    ) -> anyhow::Result<Client> {
        let socket = UdpSocket::bind((ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
        socket.connect(server)?;
        socket.set_nonblocking(true)?;
        // REST usernames are `expiry:name`; an hour outlasts every run.
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        let username = format!("{expiry}:bench{index}");
        let password = tapline_turn::Credentials::rest_password(SECRET.as_bytes(), &username);
        Ok(Client {
            socket,
            index,
            username,
            password,
            challenge: None,
            step: Step::Challenge,
            peer,
            transaction: [0; 12],
            transactions: 0,
            request: Vec::new(),
            sent_at: Instant::now(),
            sends: 0,
            relayed: None,
        })
    }

    fn in_progress(&self) -> bool {
        !matches!(self.step, Step::Ready | Step::Failed(_))
    }

    fn start(&mut self, now: Instant) {
        let mut builder = self.builder(Method::Allocate);
        builder.add(attribute_type::REQUESTED_TRANSPORT, &UDP);
        self.send(builder.finish(None, false), now);
    }

    /// A request with a transaction ID not used before by this client.
    fn builder(&mut self, method: Method) -> MessageBuilder {
        self.transactions += 1;
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&(self.index as u64 ^ 0x7461_706c_696e_6521).to_be_bytes());
        id[8..].copy_from_slice(&self.transactions.to_be_bytes());
        self.transaction = id;
        MessageBuilder::new(Class::Request, method, &id)
    }

    /// Adds USERNAME, REALM and NONCE, signs with MESSAGE-INTEGRITY and sends.
    fn send_signed(&mut self, mut builder: MessageBuilder, now: Instant) {
        let Some((realm, nonce, key)) = &self.challenge else {
            self.step = Step::Failed("no realm and nonce to sign with".to_owned());
            return;
        };
        builder
            .add(attribute_type::USERNAME, self.username.as_bytes())
            .add(attribute_type::REALM, realm.as_bytes())
            .add(attribute_type::NONCE, nonce.as_bytes());
        let bytes = builder.finish(Some((IntegrityKind::Sha1, key)), true);
        self.send(bytes, now);
    }

    fn send(&mut self, bytes: Vec<u8>, now: Instant) {
        self.request = bytes;
        self.sends = 0;
        self.transmit(now);
    }

    fn transmit(&mut self, now: Instant) {
        // A full socket buffer is a lost datagram, which the retransmission covers.
        let _ = self.socket.send(&self.request);
        self.sends += 1;
        self.sent_at = now;
    }

    fn send_allocate(&mut self, now: Instant) {
        let mut builder = self.builder(Method::Allocate);
        builder.add(attribute_type::REQUESTED_TRANSPORT, &UDP);
        self.send_signed(builder, now);
    }

    fn send_channel_bind(&mut self, peer: SocketAddr, now: Instant) {
        let mut builder = self.builder(Method::ChannelBind);
        builder
            .add(
                attribute_type::CHANNEL_NUMBER,
                &[(CHANNEL >> 8) as u8, CHANNEL as u8, 0, 0],
            )
            .add_xor_address(attribute_type::XOR_PEER_ADDRESS, peer);
        self.send_signed(builder, now);
    }

    /// Takes a datagram from the server.
    fn handle(&mut self, bytes: &[u8], now: Instant) {
        let Ok(message) = Message::decode(bytes) else {
            return;
        };
        if message.transaction_id != self.transaction || !self.in_progress() {
            return;
        }
        let error = message.error_code();
        let code = error.as_ref().map(|e| e.code);
        match (&self.step, message.class, code) {
            (Step::Challenge | Step::Allocate, Class::ErrorResponse, Some(401 | 438)) => {
                let (Some(realm), Some(nonce)) = (
                    message.text(attribute_type::REALM),
                    message.text(attribute_type::NONCE),
                ) else {
                    self.step = Step::Failed("a 401 without realm or nonce".to_owned());
                    return;
                };
                if self.step == Step::Allocate && code == Some(401) {
                    self.step = Step::Failed("401 with credentials".to_owned());
                    return;
                }
                let key = long_term_key_md5(&self.username, realm, &self.password);
                self.challenge = Some((realm.to_owned(), nonce.to_owned(), key));
                self.step = Step::Allocate;
                self.send_allocate(now);
            }
            (Step::Challenge | Step::Allocate, Class::SuccessResponse, _) => {
                self.relayed = message.xor_address(attribute_type::XOR_RELAYED_ADDRESS);
                if self.relayed.is_none() {
                    self.step = Step::Failed("no XOR-RELAYED-ADDRESS".to_owned());
                    return;
                }
                match self.peer {
                    Some(peer) => {
                        self.step = Step::ChannelBind;
                        self.send_channel_bind(peer, now);
                    }
                    None => self.step = Step::Ready,
                }
            }
            (Step::ChannelBind, Class::SuccessResponse, _) => self.step = Step::Ready,
            (_, Class::ErrorResponse, _) => {
                let reason = error.map_or_else(
                    || "an error without ERROR-CODE".to_owned(),
                    |e| format!("{} {}", e.code, e.reason),
                );
                self.step = Step::Failed(format!("{:?}: {reason}", self.method()));
            }
            _ => {}
        }
    }

    fn method(&self) -> Method {
        match self.step {
            Step::ChannelBind => Method::ChannelBind,
            _ => Method::Allocate,
        }
    }

    /// Retransmits or gives up.
    fn tick(&mut self, now: Instant) {
        if !self.in_progress() || now.duration_since(self.sent_at) < RETRANSMIT {
            return;
        }
        if self.sends >= SENDS {
            self.step = Step::Failed(format!("{:?}: no answer", self.method()));
        } else {
            self.transmit(now);
        }
    }
}

/// epoll over the clients' sockets and the echo peer's.
struct Poller {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
}

impl Poller {
    fn new() -> anyhow::Result<Poller> {
        Ok(Poller {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(256),
        })
    }

    fn add(&self, socket: &UdpSocket, token: u64) -> anyhow::Result<()> {
        epoll::add(
            &self.epoll,
            socket,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    /// Tokens of the sockets with something to read, waiting at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> anyhow::Result<impl Iterator<Item = u64> + '_> {
        self.events.clear();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            Some(&timeout),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
        Ok(self.events.iter().map(|e| e.data.u64()))
    }
}

/// What setting up a set of clients gave.
#[derive(Debug, Default)]
pub(super) struct Setup {
    pub(super) ready: usize,
    /// Why the others failed, and how many for each reason.
    pub(super) failures: BTreeMap<String, usize>,
    /// From the first request to the last client ready or failed.
    pub(super) elapsed: Duration,
}

/// Sets up `count` clients on `server`, at most `window` at a time, each from its own address
/// in block `block`, binding a channel to `peer` if given. Gives up on what is unfinished
/// after `limit`.
pub(super) fn set_up(
    server: SocketAddr,
    block: u8,
    count: usize,
    window: usize,
    peer: Option<SocketAddr>,
    limit: Duration,
) -> anyhow::Result<(Vec<Client>, Setup)> {
    let mut poller = Poller::new()?;
    let mut clients: Vec<Client> = Vec::with_capacity(count);
    let mut active: Vec<usize> = Vec::with_capacity(window);
    let mut buf = [0u8; 2048];
    let started = Instant::now();
    let mut last_done = started;
    while (clients.len() < count || !active.is_empty()) && started.elapsed() < limit {
        let now = Instant::now();
        while active.len() < window && clients.len() < count {
            let index = clients.len();
            let mut client = Client::new(index, client_ip(block, index), server, peer)?;
            poller.add(&client.socket, index as u64)?;
            client.start(now);
            clients.push(client);
            active.push(index);
        }
        for token in poller.wait(Duration::from_millis(5))? {
            let Some(client) = usize::try_from(token).ok().and_then(|i| clients.get_mut(i)) else {
                continue;
            };
            // Connected sockets: everything read is the server's.
            while let Ok(len) = client.socket.recv(&mut buf) {
                client.handle(&buf[..len], Instant::now());
            }
        }
        let now = Instant::now();
        active.retain(|&index| {
            let client = &mut clients[index];
            client.tick(now);
            if !client.in_progress() {
                last_done = now;
            }
            client.in_progress()
        });
    }
    let mut setup = Setup {
        elapsed: last_done.duration_since(started),
        ..Setup::default()
    };
    for client in &mut clients {
        match &client.step {
            Step::Ready => setup.ready += 1,
            Step::Failed(reason) => *setup.failures.entry(reason.clone()).or_default() += 1,
            _ => *setup.failures.entry("unfinished".to_owned()).or_default() += 1,
        }
    }
    let unstarted = count - clients.len();
    if unstarted > 0 {
        *setup.failures.entry("not started".to_owned()).or_default() += unstarted;
    }
    Ok((clients, setup))
}

/// `count` clients of a forwarder that needs no setting up (the forwarding floor), each from its
/// own address in block `block`, ready to send.
pub(super) fn ready_clients(
    server: SocketAddr,
    block: u8,
    count: usize,
) -> anyhow::Result<Vec<Client>> {
    (0..count)
        .map(|index| {
            let mut client = Client::new(index, client_ip(block, index), server, None)?;
            client.step = Step::Ready;
            Ok(client)
        })
        .collect()
}

/// The echo peer: a socket that sends every datagram back where it came from, with a receive
/// buffer deep enough that the benchmark's own scheduling does not lose what a relay sent.
pub(super) fn echo_peer() -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.5:0")?;
    socket.set_nonblocking(true)?;
    rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, 16 << 20)
        .or_else(|_| rustix::net::sockopt::set_socket_recv_buffer_size(&socket, 16 << 20))?;
    rustix::net::sockopt::set_socket_send_buffer_size_force(&socket, 16 << 20)
        .or_else(|_| rustix::net::sockopt::set_socket_send_buffer_size(&socket, 16 << 20))?;
    Ok(socket)
}

/// What one stretch of relayed traffic gave.
#[derive(Debug, Clone)]
pub(super) struct Traffic {
    /// ChannelData messages the clients sent.
    pub(super) sent: u64,
    /// Of those, how many reached the echo peer.
    pub(super) at_peer: u64,
    /// And how many came back to their client.
    pub(super) echoed: u64,
    /// Round trips of the messages that came back, sorted.
    pub(super) round_trips: Vec<Duration>,
    /// The time the messages were sent over.
    pub(super) sending: Duration,
    /// From the first message to the last back, or to the end of the drain.
    pub(super) elapsed: Duration,
}

impl Traffic {
    pub(super) fn round_trip_quantile(&self, q: f64) -> Duration {
        if self.round_trips.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.round_trips.len() as f64 * q).ceil() as usize).max(1);
        self.round_trips[rank.min(self.round_trips.len()) - 1]
    }
}

/// The payload of every message: the client's index, a sequence number and the time sent
/// (nanoseconds since the stretch began), then zeros up to `size`.
const STAMP: usize = 20;

/// Each client sends ChannelData of `size` bytes on [`CHANNEL`] to the echo peer, together
/// `rate` messages a second spread evenly over the clients, for `duration`; then what is still
/// on its way has `drain` to come back. One thread does everything: sending, echoing and
/// receiving.
pub(super) fn relay_traffic(
    clients: &[Client],
    peer: &UdpSocket,
    size: usize,
    rate: u64,
    duration: Duration,
    drain: Duration,
) -> anyhow::Result<Traffic> {
    if clients.is_empty() || size < STAMP {
        bail!("no clients, or messages too small to stamp");
    }
    let mut poller = Poller::new()?;
    poller.add(peer, PEER_TOKEN)?;
    for (index, client) in clients.iter().enumerate() {
        poller.add(&client.socket, index as u64)?;
    }
    let size_field = u16::try_from(size).context("message size")?;
    let mut message = vec![0u8; 4 + size];
    message[..2].copy_from_slice(&CHANNEL.to_be_bytes());
    message[2..4].copy_from_slice(&size_field.to_be_bytes());
    let mut buf = [0u8; 2048];
    let mut traffic = Traffic {
        sent: 0,
        at_peer: 0,
        echoed: 0,
        round_trips: Vec::with_capacity(usize::try_from(rate * duration.as_secs() + 1)?),
        sending: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    let stop_sending = started + duration;
    let give_up = stop_sending + drain;
    loop {
        let now = Instant::now();
        if now < stop_sending {
            let due = (now.duration_since(started).as_secs_f64() * rate as f64) as u64;
            while traffic.sent < due {
                let index = (traffic.sent % clients.len() as u64) as usize;
                let stamp = Instant::now().duration_since(started).as_nanos() as u64;
                message[4..8].copy_from_slice(&(index as u32).to_be_bytes());
                message[8..16].copy_from_slice(&traffic.sent.to_be_bytes());
                message[16..24].copy_from_slice(&stamp.to_be_bytes());
                // A full socket buffer counts as a loss like any other.
                let _ = clients[index].socket.send(&message);
                traffic.sent += 1;
            }
        } else {
            if traffic.sending.is_zero() {
                traffic.sending = now.duration_since(started);
            }
            if traffic.echoed >= traffic.sent || now >= give_up {
                traffic.elapsed = now.duration_since(started);
                break;
            }
        }
        for token in poller.wait(Duration::from_millis(1))? {
            if token == PEER_TOKEN {
                while let Ok((len, from)) = peer.recv_from(&mut buf) {
                    traffic.at_peer += 1;
                    let _ = peer.send_to(&buf[..len], from);
                }
                continue;
            }
            let Some(client) = usize::try_from(token).ok().and_then(|i| clients.get(i)) else {
                continue;
            };
            while let Ok(len) = client.socket.recv(&mut buf) {
                let Some(data) = ChannelData::decode(&buf[..len]) else {
                    continue;
                };
                if data.channel != CHANNEL || data.data.len() != size {
                    continue;
                }
                let mut stamp = [0u8; 8];
                stamp.copy_from_slice(&data.data[12..20]);
                let sent_at = Duration::from_nanos(u64::from_be_bytes(stamp));
                traffic.round_trips.push(
                    Instant::now()
                        .duration_since(started)
                        .saturating_sub(sent_at),
                );
                traffic.echoed += 1;
            }
        }
    }
    traffic.round_trips.sort();
    Ok(traffic)
}

/// Sends one message from every client and waits until each has come back, so that a path
/// that does not work fails the benchmark before it measures anything.
pub(super) fn check_path(clients: &[Client], peer: &UdpSocket, size: usize) -> anyhow::Result<()> {
    // One message per client over a tenth of a second.
    let rate = clients.len() as u64 * 10;
    let traffic = relay_traffic(
        clients,
        peer,
        size,
        rate,
        Duration::from_millis(100),
        Duration::from_secs(3),
    )?;
    if traffic.sent == 0 || traffic.echoed < traffic.sent {
        bail!(
            "the relay returned {} of {} probe messages ({} reached the peer)",
            traffic.echoed,
            traffic.sent,
            traffic.at_peer
        );
    }
    Ok(())
}
