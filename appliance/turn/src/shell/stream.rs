//! TURN over TCP and TLS to the server (RFC 8656 §7.5 framing): one task per client
//! connection reads whole frames into a fixed [`FrameBuffer`] and hands them to the owner
//! task; frames the server sends go back through a small bounded queue.
//!
//! Bounds: the input buffer is one largest frame; the queue of frames waiting to be written
//! is [`OUTGOING_QUEUE`] frames (a client that does not read loses frames, whole ones, as a
//! UDP client would lose datagrams); a connection must send its first frame within
//! [`FIRST_FRAME_WITHIN`] and never fall silent longer than [`SILENCE_LIMIT`].
//!
//! A connection bound to a peer connection by RFC 6062's ConnectionBind stops being framed:
//! once the reply is written, [`Outgoing::Pipe`] turns the task into a pipe ([`super::tcp`]).

use std::time::Duration;

use tapline_runtime::CancellationToken;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::inbox::Inbox;
use super::tcp::{PipeStart, pipe};
use crate::allocation::FiveTuple;
use crate::framing::{FrameBuffer, InvalidStream};

/// Frames waiting to be written to one client.
pub(crate) const OUTGOING_QUEUE: usize = 256;
/// A connection that has sent nothing this long after it opened is closed.
pub(crate) const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(10);
/// The longest silence on a connection: longer than the longest allocation lifetime (an
/// allocation's client must refresh within it), so only abandoned connections hit it.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(3600 + 60);
/// How long a TLS handshake may take.
pub(crate) const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// What a connection task tells the owner.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// Whole frames, back to back, as read (one allocation per read, not per frame).
    Frames { tuple: FiveTuple, bytes: Vec<u8> },
    /// The connection is gone (closed, failed, timed out or invalid).
    Closed { tuple: FiveTuple },
}

/// What the owner sends a connection task, in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// One whole frame to write.
    Frame(Vec<u8>),
    /// After the frames before it, pipe raw bytes with this peer connection.
    Pipe(PipeStart),
}

/// Serves one client connection until it closes or `shutdown` fires, then says so.
pub(crate) async fn serve<S>(
    stream: S,
    tuple: FiveTuple,
    events: Inbox<StreamEvent>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buffer = FrameBuffer::new();
    let outcome = tokio::select! {
        () = shutdown.cancelled() => Ok(None),
        read = read_frames(&mut reader, &mut buffer, tuple, &events) => read.map(|()| None),
        written = write_frames(&mut writer, &mut outgoing) => written.map_err(StreamError::Io),
    };
    let outcome = match outcome {
        Ok(Some(start)) => {
            let leftover = buffer.pending().to_vec();
            pipe(reader.unsplit(writer), leftover, start, &shutdown)
                .await
                .map_err(StreamError::Io)
        }
        Ok(None) => Ok(()),
        Err(err) => Err(err),
    };
    if let Err(err) = outcome {
        tracing::debug!(client = %tuple.client, error = %err, "turn: stream client closed");
    }
    let _ = events.send(StreamEvent::Closed { tuple }).await;
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] InvalidStream),
    #[error("silent for too long")]
    Silent,
}

async fn read_frames<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut FrameBuffer,
    tuple: FiveTuple,
    events: &Inbox<StreamEvent>,
) -> Result<(), StreamError> {
    let mut wait = FIRST_FRAME_WITHIN;
    loop {
        let read = tokio::time::timeout(wait, reader.read(buffer.unfilled())).await;
        let n = read.map_err(|_| StreamError::Silent)??;
        if n == 0 {
            return Ok(());
        }
        buffer.filled(n);
        let frames = buffer.take_frames()?;
        if frames.is_empty() {
            continue;
        }
        wait = SILENCE_LIMIT;
        let bytes = frames.to_vec();
        // Waiting here holds the client back while the owner is busy: TCP's own flow control.
        if events
            .send(StreamEvent::Frames { tuple, bytes })
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

/// Writes frames until the queue closes (then shuts the connection down) or a pipe starts.
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    outgoing: &mut mpsc::Receiver<Outgoing>,
) -> std::io::Result<Option<PipeStart>> {
    while let Some(item) = outgoing.recv().await {
        let mut item = Some(item);
        // Send what is queued together, then flush once (TLS buffers records).
        while let Some(next) = item.take() {
            match next {
                Outgoing::Frame(frame) => writer.write_all(&frame).await?,
                Outgoing::Pipe(start) => {
                    writer.flush().await?;
                    return Ok(Some(start));
                }
            }
            item = outgoing.try_recv().ok();
        }
        writer.flush().await?;
    }
    writer.shutdown().await?;
    Ok(None)
}
