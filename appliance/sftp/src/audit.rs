//! Rows for the activity audit log: what a logged-in session did (listings, downloads,
//! refused writes), written by one task in batches so that sessions never wait on SQLite.
//!
//! Logins, failed logins and lockouts are not queued here: they are appended in the same
//! transaction as the lockout bookkeeping they go with (see `auth.rs`).

use std::sync::Arc;

use tapline_audit::{Entry, events};
use tapline_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Rows waiting to be written; a session that gets this far ahead of the database waits.
const QUEUE: usize = 4096;
/// Rows written per transaction: one `fsync` for many rows.
const BATCH: usize = 256;

/// Who did something, from where: the fields every row of a session shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Who {
    /// The login name as stored (the tenant's name as configured, or the account's).
    pub username: String,
    pub ip: String,
    /// Random, per SSH connection: ties a session's rows together.
    pub session: String,
    /// The client's SSH identification, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`.
    pub client: String,
}

impl Who {
    /// An audit entry under the `SFTP` event. `params` must be a JSON object; the session
    /// and client are added to it.
    pub(crate) fn entry<'a>(
        &'a self,
        sub_event: &'a str,
        object: &'a str,
        comments: &'a str,
        mut params: serde_json::Value,
    ) -> Entry<'a> {
        if let Some(map) = params.as_object_mut() {
            map.insert("session".to_owned(), self.session.clone().into());
            map.insert("client".to_owned(), self.client.clone().into());
        }
        Entry {
            username: &self.username,
            user_ip: &self.ip,
            event: events::SFTP,
            sub_event,
            event_object: object,
            comments,
            request_uri: "",
            params,
        }
    }
}

/// A row to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub who: Arc<Who>,
    pub sub_event: &'static str,
    pub object: String,
    pub params: serde_json::Value,
}

/// The queue to the writer. Cloned into every session; the writer finishes once every clone
/// is gone and the queue is empty.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    sender: mpsc::Sender<Record>,
}

impl AuditLog {
    pub(crate) fn start(store: Arc<Store>) -> (AuditLog, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_all(store, receiver));
        (AuditLog { sender }, writer)
    }

    /// Queues a row, waiting while the queue is full.
    pub(crate) async fn record(&self, record: Record) {
        if self.sender.send(record).await.is_err() {
            tracing::error!("the SFTP audit writer has stopped; an audit row was lost");
        }
    }

    /// Queues a row from a thread outside the runtime (a channel's thread), waiting while
    /// the queue is full.
    pub(crate) fn blocking_record(&self, record: Record) {
        if self.sender.blocking_send(record).is_err() {
            tracing::error!("the SFTP audit writer has stopped; an audit row was lost");
        }
    }
}

async fn write_all(store: Arc<Store>, receiver: mpsc::Receiver<Record>) {
    tapline_runtime::batch::write_in_batches(receiver, BATCH, "SFTP audit rows", move |rows| {
        write_batch(&store, rows)
    })
    .await;
}

fn write_batch(store: &Store, rows: &[Record]) -> Result<(), tapline_store::rusqlite::Error> {
    store.write(|tx| {
        for row in rows {
            let entry = row
                .who
                .entry(row.sub_event, &row.object, "", row.params.clone());
            tapline_audit::append(tx, &entry)?;
        }
        Ok(())
    })
}
