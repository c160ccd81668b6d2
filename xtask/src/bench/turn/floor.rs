//! The forwarding floor: what moving the benchmark's datagrams costs a relay that does nothing
//! else. No STUN, no credentials, no permissions, no counting: a client's first datagram gets
//! it a socket of its own, what it sends goes out of that socket to the echo peer without its
//! 4-byte ChannelData header, and what comes back goes to the client with the header put back.
//!
//! It makes the same system calls as Tapline's datagram path (`appliance/turn/src/shell.rs`),
//! in the same pattern, from a thread of a multi-threaded process as Tapline's and coturn's
//! are: one `epoll_wait` per wakeup; up to [`READ_BATCH`] `recvfrom` calls on the listening
//! socket, then a `sendto` for each of those datagrams; one `recvfrom` per ready relayed
//! socket; and at the end of the wakeup the datagrams to clients, together, with `sendmmsg`. Its CPU time per datagram
//! is therefore what the kernel charges for the datagrams alone, and the ratio of coturn's to
//! it is the most that any relay built on these system calls could show on this machine.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrAny};

use super::load::CHANNEL;
use super::relay::SERVER_CORE;

/// Where the floor listens and relays from: a loopback address of its own, as each relay has.
pub(super) const LISTEN: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 4)),
    3478,
);
/// As in Tapline's datagram path.
const READ_BATCH: usize = 64;
const SEND_BATCH: usize = 32;
const EPOLL_EVENTS: usize = 256;
/// How often the thread looks whether it is to stop, when nothing arrives.
const STOP_POLL: Duration = Duration::from_millis(50);
const LISTEN_TOKEN: u64 = u64::MAX;

/// The forwarder, running on its thread pinned to the relays' core until dropped.
pub(super) struct Floor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// The thread's ID, for its CPU time.
    tid: i32,
}

impl Floor {
    /// Starts forwarding datagrams from clients on [`LISTEN`] to `peer`, and back.
    pub(super) fn start(peer: SocketAddr) -> anyhow::Result<Floor> {
        let listen = UdpSocket::bind(LISTEN).with_context(|| format!("cannot bind {LISTEN}"))?;
        listen.set_nonblocking(true)?;
        rustix::net::sockopt::set_socket_recv_buffer_size_force(&listen, 8 << 20)
            .or_else(|_| rustix::net::sockopt::set_socket_recv_buffer_size(&listen, 8 << 20))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tid_tx, tid_rx) = mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut cores = rustix::thread::CpuSet::new();
            cores.set(SERVER_CORE);
            rustix::thread::sched_setaffinity(None, &cores)?;
            let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get());
            Forwarder::new(listen, peer)?.run(&stopping)
        });
        let tid = tid_rx
            .recv_timeout(Duration::from_secs(5))
            .context("the forwarding floor did not start")?;
        Ok(Floor {
            stop,
            thread: Some(thread),
            tid,
        })
    }

    /// The time its thread has spent on a CPU so far.
    pub(super) fn cpu_time(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/self/task/{}/schedstat", self.tid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let nanos: u64 = stat
            .split_whitespace()
            .next()
            .with_context(|| format!("{path} is empty"))?
            .parse()
            .with_context(|| format!("{path} is unreadable"))?;
        Ok(Duration::from_nanos(nanos))
    }

    /// Stops the thread, with what made it stop early if anything did.
    pub(super) fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the forwarding floor panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client's relayed socket.
struct Relayed {
    socket: UdpSocket,
    client: SocketAddrAny,
}

struct Forwarder {
    epoll: OwnedFd,
    listen: UdpSocket,
    peer: SocketAddrAny,
    by_client: HashMap<SocketAddr, usize>,
    relayed: Vec<Relayed>,
    to_peer: Vec<(usize, Vec<u8>)>,
    to_clients: Vec<(SocketAddrAny, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

impl Forwarder {
    fn new(listen: UdpSocket, peer: SocketAddr) -> io::Result<Forwarder> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &listen,
            epoll::EventData::new_u64(LISTEN_TOKEN),
            epoll::EventFlags::IN,
        )?;
        Ok(Forwarder {
            epoll,
            listen,
            peer: SocketAddrAny::from(peer),
            by_client: HashMap::new(),
            relayed: Vec::new(),
            to_peer: Vec::new(),
            to_clients: Vec::new(),
            spare: Vec::new(),
        })
    }

    fn run(mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EPOLL_EVENTS);
        let mut buf = vec![0u8; 65_536];
        let timeout = rustix::event::Timespec::try_from(STOP_POLL)?;
        while !stop.load(Ordering::Relaxed) {
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                Some(&timeout),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
            for event in &events {
                match event.data.u64() {
                    LISTEN_TOKEN => self.read_clients(&mut buf)?,
                    token => self.read_peer(token, &mut buf),
                }
            }
            self.flush_to_clients();
        }
        Ok(())
    }

    /// Reads a batch from the listening socket, then sends it on: as Tapline does, which hands
    /// the whole batch to its core before doing what the core asks.
    fn read_clients(&mut self, buf: &mut [u8]) -> anyhow::Result<()> {
        for _ in 0..READ_BATCH {
            let (len, client) =
                match rustix::net::recvfrom(&self.listen, &mut *buf, RecvFlags::empty()) {
                    Ok((len, _, Some(from))) => match SocketAddr::try_from(from) {
                        Ok(client) => (len, client),
                        Err(_) => continue,
                    },
                    Ok(_) => continue,
                    Err(Errno::AGAIN) => break,
                    Err(err) => return Err(err.into()),
                };
            let index = match self.by_client.get(&client) {
                Some(&index) => index,
                None => self.open(client)?,
            };
            // Shorter than a ChannelData header: nothing to forward.
            let Some(data) = buf.get(4..len) else {
                continue;
            };
            let mut bytes = self.spare.pop().unwrap_or_default();
            bytes.clear();
            bytes.extend_from_slice(data);
            self.to_peer.push((index, bytes));
        }
        for (index, bytes) in self.to_peer.drain(..) {
            let _ = rustix::net::sendto(
                &self.relayed[index].socket,
                &bytes,
                SendFlags::empty(),
                &self.peer,
            );
            self.spare.push(bytes);
        }
        Ok(())
    }

    fn open(&mut self, client: SocketAddr) -> anyhow::Result<usize> {
        let socket = UdpSocket::bind((LISTEN.ip(), 0))?;
        socket.set_nonblocking(true)?;
        let index = self.relayed.len();
        epoll::add(
            &self.epoll,
            &socket,
            epoll::EventData::new_u64(index as u64),
            epoll::EventFlags::IN,
        )?;
        self.relayed.push(Relayed {
            socket,
            client: SocketAddrAny::from(client),
        });
        self.by_client.insert(client, index);
        Ok(index)
    }

    fn read_peer(&mut self, token: u64, buf: &mut [u8]) {
        let Some(relayed) = usize::try_from(token)
            .ok()
            .and_then(|index| self.relayed.get(index))
        else {
            return;
        };
        let Ok((len, _, _)) = rustix::net::recvfrom(&relayed.socket, &mut *buf, RecvFlags::empty())
        else {
            return;
        };
        let Ok(length) = u16::try_from(len) else {
            return;
        };
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(&CHANNEL.to_be_bytes());
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&buf[..len]);
        self.to_clients.push((relayed.client.clone(), bytes));
    }

    fn flush_to_clients(&mut self) {
        for batch in self.to_clients.chunks(SEND_BATCH) {
            if let [(to, bytes)] = batch {
                let _ = rustix::net::sendto(&self.listen, bytes, SendFlags::empty(), to);
                continue;
            }
            // On the stack, as Tapline's are: nothing is allocated per wakeup.
            let iovs: [[io::IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
                [io::IoSlice::new(
                    batch.get(i).map_or(&[][..], |(_, bytes)| bytes),
                )]
            });
            let mut controls: [rustix::net::SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] =
                std::array::from_fn(|_| rustix::net::SendAncillaryBuffer::default());
            let mut controls = controls.iter_mut();
            let mut messages: [rustix::net::MMsgHdr<'_>; SEND_BATCH] = std::array::from_fn(|i| {
                // `controls` has SEND_BATCH entries, one taken per message.
                #[allow(clippy::expect_used)]
                let control = controls.next().expect("one control buffer per message");
                match batch.get(i) {
                    Some((to, _)) => rustix::net::MMsgHdr::new_with_addr(to, &iovs[i], control),
                    None => rustix::net::MMsgHdr::new(&iovs[i], control),
                }
            });
            let mut start = 0;
            while start < batch.len() {
                match rustix::net::sendmmsg(
                    &self.listen,
                    &mut messages[start..batch.len()],
                    SendFlags::empty(),
                ) {
                    Ok(sent) if sent > 0 => start += sent,
                    // The first of the rest could not go; the benchmark counts it as lost.
                    _ => start += 1,
                }
            }
        }
        for (_, bytes) in self.to_clients.drain(..) {
            self.spare.push(bytes);
        }
    }
}
