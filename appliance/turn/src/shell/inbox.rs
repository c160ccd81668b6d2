//! How tokio tasks reach the datagram loop, which runs on a thread of its own and sleeps in
//! `epoll_wait` rather than in the async runtime: bounded tokio channels, read with
//! `try_recv`, and an eventfd in the loop's epoll set that the senders write to.
//!
//! A send writes the eventfd only when the loop has not been woken since it last looked, so
//! a burst of events costs one write and one wakeup, not one each.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{EventfdFlags, eventfd};
use tokio::sync::mpsc;

/// The eventfd that wakes the datagram loop.
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
    /// Set from the first wake after the loop last looked until it looks again.
    armed: AtomicBool,
}

impl Waker {
    pub(crate) fn new() -> std::io::Result<Waker> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Waker {
            fd,
            armed: AtomicBool::new(false),
        })
    }

    /// What the loop registers in its epoll set.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Wakes the loop unless it has been woken already and not looked yet.
    pub(crate) fn wake(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            // The counter cannot overflow: the loop reads it back to zero before another
            // write can happen (armed stays set until then). A failed write leaves the loop
            // to find the events at its next wakeup, at the latest its next tick.
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// Called by the loop before it reads its channels: anything sent after this wakes it
    /// again, anything sent before is in the channels already.
    pub(crate) fn reset(&self) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut counter);
        self.armed.store(false, Ordering::SeqCst);
    }
}

/// The sending side of a channel to the datagram loop.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    tx: mpsc::Sender<T>,
    waker: Arc<Waker>,
}

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Inbox<T> {
        Inbox {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

/// The loop has stopped; nothing more will be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed;

impl<T> Inbox<T> {
    /// A channel of `capacity` waiting items; its receiver is read by the loop `waker` wakes.
    pub(crate) fn channel(capacity: usize, waker: &Arc<Waker>) -> (Inbox<T>, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        let inbox = Inbox {
            tx,
            waker: waker.clone(),
        };
        (inbox, rx)
    }

    /// Queues `item`, waiting while the queue is full (the sender is held back while the
    /// loop is busy), and wakes the loop.
    pub(crate) async fn send(&self, item: T) -> Result<(), Closed> {
        self.tx.send(item).await.map_err(|_| Closed)?;
        self.waker.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_sends_writes_the_eventfd_once_and_every_item_arrives() {
        let waker = Arc::new(Waker::new().expect("eventfd"));
        let (inbox, mut rx) = Inbox::channel(8, &waker);
        for n in 0..3u32 {
            inbox.send(n).await.expect("open");
        }
        let mut counter = [0u8; 8];
        rustix::io::read(waker.fd(), &mut counter).expect("woken");
        assert_eq!(u64::from_ne_bytes(counter), 1);
        waker.reset();
        assert_eq!(
            [rx.try_recv().ok(), rx.try_recv().ok(), rx.try_recv().ok()],
            [Some(0), Some(1), Some(2)]
        );
        inbox.send(3).await.expect("open");
        assert!(
            rustix::io::read(waker.fd(), &mut counter).is_ok(),
            "woken again"
        );
    }
}
