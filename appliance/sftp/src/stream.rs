//! The TCP stream under an SSH session, with two additions: the server can cut it at any
//! moment ([`Cut`]), whatever the session is waiting for, and the client's identification
//! line (`SSH-2.0-OpenSSH_9.2p1 …`) is kept for the audit log.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The longest identification line RFC 4253 allows, with its line ending.
const MAX_IDENT: usize = 255;

/// Ends a connection: reads and writes fail from then on, waking whoever waits on them.
pub(crate) type Cut = CancellationToken;

/// The client's identification line, once it has arrived.
pub(crate) type ClientIdent = Arc<OnceLock<String>>;

pub(crate) struct GuardedStream {
    inner: TcpStream,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    ident: ClientIdent,
    /// The identification line so far, until it is complete.
    ident_line: Option<Vec<u8>>,
}

impl GuardedStream {
    pub(crate) fn new(inner: TcpStream, cut: &Cut, ident: ClientIdent) -> GuardedStream {
        GuardedStream {
            inner,
            cut: Box::pin(cut.clone().cancelled_owned()),
            ident,
            ident_line: Some(Vec::new()),
        }
    }

    fn check_cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection",
            )),
            Poll::Pending => Ok(()),
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        let Some(line) = &mut self.ident_line else {
            return;
        };
        let (part, complete) = match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => (&bytes[..end], true),
            None => (bytes, false),
        };
        let room = MAX_IDENT.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        if complete || line.len() >= MAX_IDENT {
            let text: String = String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            // Set once: a second line never reaches here, `ident_line` being gone.
            let _ = self.ident.set(text);
            self.ident_line = None;
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_cut(cx)?;
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && self.ident_line.is_some()
        {
            let fresh = buf.filled()[before..].to_vec();
            self.observe(&fresh);
        }
        polled
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_cut(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_cut(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
