//! RFC 6062 TCP allocations on real sockets: a listener on each TCP allocation's relayed
//! address, peer connections dialled from that same address, and the pipe between a peer
//! connection and the client data connection bound to it.
//!
//! The listener and the dialled connections share the relayed address with `SO_REUSEADDR`
//! and `SO_REUSEPORT`, as a peer sees one address for the allocation either way. Bounds: a
//! dial gives up after [`DIAL_WITHIN`]; a pipe holds one [`PIPE_BUFFER`] per direction, and
//! a side that does not read holds the other back through TCP's own flow control.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tapline_runtime::CancellationToken;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::inbox::Inbox;
use crate::allocation::AllocationId;
use crate::server::ConnectionId;

/// How long dialling a peer for Connect may take before the client gets 447.
pub(crate) const DIAL_WITHIN: Duration = Duration::from_secs(10);
/// Bytes read at once in each direction of a pipe.
const PIPE_BUFFER: usize = 16 * 1024;
/// Peer connections waiting in the kernel's accept queue of one relayed address.
const LISTEN_BACKLOG: u32 = 64;
/// A pause after a failed accept (out of descriptors, say), so the loop does not spin.
pub(crate) const ACCEPT_RETRY_AFTER: Duration = Duration::from_millis(100);

/// What the TCP relay tasks tell the owner.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A peer connected to a TCP allocation's relayed address.
    Incoming {
        allocation: AllocationId,
        peer: SocketAddr,
        stream: TcpStream,
    },
    /// A dial for Connect finished.
    Dialled {
        connection: ConnectionId,
        result: io::Result<TcpStream>,
    },
}

/// A TCP allocation's listener task.
pub(crate) struct TcpRelay {
    accept: JoinHandle<()>,
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Bytes a pipe has carried, read by the owner to count them in the allocation.
#[derive(Debug, Default)]
pub(crate) struct PipeCounters {
    pub(crate) to_peer: AtomicU64,
    pub(crate) from_peer: AtomicU64,
}

/// What a client connection task needs to become a pipe.
#[derive(Debug)]
pub(crate) struct PipeStart {
    pub(crate) peer: TcpStream,
    pub(crate) counters: Arc<PipeCounters>,
    /// Fired when the server closes the connection (allocation ended).
    pub(crate) close: CancellationToken,
}

/// A pipe as the owner keeps it: what it has reported, and how to stop it.
pub(crate) struct Pipe {
    pub(crate) counters: Arc<PipeCounters>,
    pub(crate) reported: (u64, u64),
    pub(crate) close: CancellationToken,
}

impl Pipe {
    /// Bytes carried each way since the last call.
    pub(crate) fn take_new_bytes(&mut self) -> (u64, u64) {
        let to_peer = self.counters.to_peer.load(Ordering::Relaxed);
        let from_peer = self.counters.from_peer.load(Ordering::Relaxed);
        let delta = (to_peer - self.reported.0, from_peer - self.reported.1);
        self.reported = (to_peer, from_peer);
        delta
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close.cancel();
    }
}

/// A TCP socket on `local` that shares the address with the allocation's other sockets.
fn shared_socket(local: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(local)?;
    Ok(socket)
}

/// Listens on `relayed` and passes each peer that connects to the owner.
pub(crate) fn open_tcp_relay(
    allocation: AllocationId,
    relayed: SocketAddr,
    events: &Inbox<TcpEvent>,
) -> io::Result<TcpRelay> {
    let listener = shared_socket(relayed)?.listen(LISTEN_BACKLOG)?;
    let accept = tokio::spawn(accept_peers(allocation, listener, events.clone()));
    Ok(TcpRelay { accept })
}

async fn accept_peers(allocation: AllocationId, listener: TcpListener, events: Inbox<TcpEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let incoming = TcpEvent::Incoming {
                    allocation,
                    peer,
                    stream,
                };
                if events.send(incoming).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::debug!(allocation = allocation.0, error = %err, "turn: peer accept failed");
                tokio::time::sleep(ACCEPT_RETRY_AFTER).await;
            }
        }
    }
}

/// Dials `peer` from `relayed` for Connect and reports the outcome.
pub(crate) fn dial(
    connection: ConnectionId,
    relayed: SocketAddr,
    peer: SocketAddr,
    events: &Inbox<TcpEvent>,
    shutdown: CancellationToken,
) {
    let events = events.clone();
    tokio::spawn(async move {
        let attempt = async {
            let socket = shared_socket(relayed)?;
            tokio::time::timeout(DIAL_WITHIN, socket.connect(peer))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer did not answer"))?
        };
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = attempt => result,
        };
        let _ = events.send(TcpEvent::Dialled { connection, result }).await;
    });
}

/// Pipes a client data connection and its peer connection until either side is done (both
/// directions end) or the connection is closed; `leftover` is what the client sent right
/// after ConnectionBind, already read.
pub(crate) async fn pipe<S>(
    client: S,
    leftover: Vec<u8>,
    start: PipeStart,
    shutdown: &CancellationToken,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let PipeStart {
        peer,
        counters,
        close,
    } = start;
    let _ = peer.set_nodelay(true);
    let (client_reader, client_writer) = tokio::io::split(client);
    let (peer_reader, mut peer_writer) = peer.into_split();
    let both = async {
        if !leftover.is_empty() {
            peer_writer.write_all(&leftover).await?;
            counters
                .to_peer
                .fetch_add(leftover.len() as u64, Ordering::Relaxed);
        }
        tokio::try_join!(
            copy_counted(client_reader, peer_writer, &counters.to_peer),
            copy_counted(peer_reader, client_writer, &counters.from_peer),
        )
        .map(|_| ())
    };
    tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        () = close.cancelled() => Ok(()),
        result = both => result,
    }
}

/// Copies until `reader` ends, then shuts `writer` down (half-close, as TCP allows).
async fn copy_counted<R, W>(mut reader: R, mut writer: W, counter: &AtomicU64) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; PIPE_BUFFER];
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            return writer.shutdown().await;
        }
        writer.write_all(&buffer[..n]).await?;
        // TLS keeps records until flushed.
        writer.flush().await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
