//! The shell around [`SftpSession`] for one SSH channel running the `sftp` subsystem.
//!
//! ```text
//!  SSH session task (russh)                      channel thread
//!  Handler::data ─▶ Decoder ─▶ Inbox ──────────▶ SftpSession::handle_message (file I/O)
//!                              (bounded)                   │ replies, batched
//!  ◀── client's window ◀── Handle::data ◀──────────────────┘ (waits while the window is shut)
//! ```
//!
//! The session task only decodes and queues: it never waits for the thread, so window
//! adjustments and other traffic behind a client's requests are always read. The thread
//! answers in order and sends replies only as fast as the client's window lets them go (russh
//! stops taking data for a channel whose window is exhausted), so a client that pipelines
//! without reading replies fills only the bounded inbox: past [`MAX_QUEUED_REQUESTS`] or
//! [`MAX_QUEUED_BYTES`] it is disconnected. Each channel has its own thread, so one stuck
//! client or slow disk holds up nobody else.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use russh::ChannelId;
use russh::server::Handle;

use crate::audit::{AuditLog, Record, Who};
use crate::jail::Jail;
use crate::protocol::{Decoder, FramingError, Incoming};
use crate::session::{Activity, Flow, SftpSession};

/// Requests queued and not yet answered, per channel. A 2 GiB file read in OpenSSH-sized
/// pieces by a client that asks for all of it at once (paramiko's prefetch) fits.
pub(crate) const MAX_QUEUED_REQUESTS: usize = 65_536;
/// Their bytes on the wire.
pub(crate) const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Requests taken off the inbox at a time.
const BATCH: usize = 64;
/// Replies are gathered up to about this size before being handed to the SSH session: big
/// enough to make each hand-over cheap, small enough that russh's queue of them stays small.
const FLUSH_AT: usize = 64 * 1024;

/// Why a channel's input was refused; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("unreadable SFTP stream")]
    Framing(#[from] FramingError),
    #[error("more than {MAX_QUEUED_REQUESTS} requests or {MAX_QUEUED_BYTES} bytes waiting")]
    Overloaded,
}

/// The session task's end of a channel.
#[derive(Debug)]
pub(crate) struct ChannelInput {
    decoder: Decoder,
    inbox: Arc<Inbox>,
}

/// Everything a channel's thread needs.
pub(crate) struct ChannelContext {
    pub(crate) jail: Arc<Jail>,
    pub(crate) handle: Handle,
    pub(crate) channel: ChannelId,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) audit: AuditLog,
    pub(crate) who: Arc<Who>,
}

impl ChannelInput {
    /// Starts the channel's thread.
    pub(crate) fn start(context: ChannelContext) -> std::io::Result<ChannelInput> {
        let inbox = Arc::new(Inbox::default());
        let thread_inbox = inbox.clone();
        std::thread::Builder::new()
            .name("tapline-sftp".to_owned())
            .spawn(move || serve(context, &thread_inbox))?;
        Ok(ChannelInput {
            decoder: Decoder::new(),
            inbox,
        })
    }

    /// Queues the requests in a chunk of channel data. Never waits.
    pub(crate) fn handle_data(&mut self, data: &[u8]) -> Result<(), InputError> {
        self.decoder.handle_data(data);
        let mut decoded = Vec::new();
        while let Some(incoming) = self.decoder.poll_message()? {
            decoded.push(incoming);
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let mut state = self.inbox.lock();
        if state.finished {
            // The thread has stopped answering; the channel is being closed.
            return Ok(());
        }
        for incoming in decoded {
            state.bytes += incoming.wire_len;
            state.queue.push_back(incoming);
        }
        if state.queue.len() > MAX_QUEUED_REQUESTS || state.bytes > MAX_QUEUED_BYTES {
            return Err(InputError::Overloaded);
        }
        drop(state);
        self.inbox.wake.notify_one();
        Ok(())
    }

    /// No more requests will come (EOF, close, or the connection ended): the thread answers
    /// what is queued, closes every handle and ends.
    pub(crate) fn finish(&self) {
        self.inbox.lock().closed = true;
        self.inbox.wake.notify_one();
    }
}

impl Drop for ChannelInput {
    fn drop(&mut self) {
        self.finish();
    }
}

#[derive(Debug, Default)]
struct Inbox {
    state: Mutex<InboxState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct InboxState {
    queue: VecDeque<Incoming>,
    bytes: usize,
    /// No more input.
    closed: bool,
    /// The thread is done.
    finished: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // The state is a queue and flags, whole after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next requests, waiting for some; `None` once closed and empty.
    fn next_batch(&self) -> Option<Vec<Incoming>> {
        let mut state = self.lock();
        while state.queue.is_empty() && !state.closed {
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.queue.is_empty() {
            return None;
        }
        let take = state.queue.len().min(BATCH);
        let batch: Vec<Incoming> = state.queue.drain(..take).collect();
        state.bytes -= batch
            .iter()
            .map(|incoming| incoming.wire_len)
            .sum::<usize>();
        Some(batch)
    }
}

/// The channel's thread: answer until the input ends, the client sends something
/// unanswerable or the connection is gone; then close every handle, audited, and the channel.
fn serve(context: ChannelContext, inbox: &Inbox) {
    let mut session = SftpSession::new(context.jail.clone());
    let mut out = Vec::with_capacity(2 * FLUSH_AT);
    let mut activity = Vec::new();
    let mut connected = true;
    'serving: while let Some(batch) = inbox.next_batch() {
        let now = jiff::Timestamp::now();
        for incoming in batch {
            let flow = session.handle_message(incoming.message, now, &mut out, &mut activity);
            report(&context, &mut activity);
            if out.len() >= FLUSH_AT && !send(&context, &mut out) {
                connected = false;
                break 'serving;
            }
            if flow == Flow::End {
                tracing::debug!("unanswerable SFTP packet; closing the channel");
                break 'serving;
            }
        }
        if !out.is_empty() && !send(&context, &mut out) {
            connected = false;
            break;
        }
    }
    inbox.lock().finished = true;
    session.close_all(&mut activity);
    report(&context, &mut activity);
    if connected {
        let _ = send(&context, &mut out);
        let handle = &context.handle;
        let _ = context.runtime.block_on(async {
            handle.eof(context.channel).await?;
            handle.close(context.channel).await
        });
    }
}

/// Hands the replies gathered to the SSH session, waiting while the client's window is shut.
/// `false` when the connection is gone.
fn send(context: &ChannelContext, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let bytes = std::mem::replace(out, Vec::with_capacity(2 * FLUSH_AT));
    context
        .runtime
        .block_on(context.handle.data(context.channel, bytes))
        .is_ok()
}

fn report(context: &ChannelContext, activity: &mut Vec<Activity>) {
    for Activity {
        sub_event,
        object,
        params,
    } in activity.drain(..)
    {
        context.audit.blocking_record(Record {
            who: context.who.clone(),
            sub_event,
            object,
            params,
        });
    }
}
