//! Rows written in batches by one task, off the path that produces them: the SFTP audit rows
//! and the TURN allocation summaries go through [`write_in_batches`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::supervisor::error_chain;

/// A batch the database refuses (busy, a full disk) is tried again this often before the loss
/// is logged.
pub const WRITE_ATTEMPTS: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Takes up to `batch` items at a time off `receiver` and hands each lot to `write` on a
/// blocking thread (one transaction, one `fsync`, for many rows), retrying a refused lot.
/// Ends once every sender is gone and the queue is written. `what` names the rows in logs.
pub async fn write_in_batches<T, E, W>(
    mut receiver: mpsc::Receiver<T>,
    batch: usize,
    what: &'static str,
    write: W,
) where
    T: Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    W: Fn(&[T]) -> Result<(), E> + Send + Sync + 'static,
{
    let write = Arc::new(write);
    let mut taken = Vec::with_capacity(batch);
    while receiver.recv_many(&mut taken, batch).await > 0 {
        let rows = Arc::new(std::mem::take(&mut taken));
        for attempt in 1..=WRITE_ATTEMPTS {
            let (write, lot) = (write.clone(), rows.clone());
            let written = tokio::task::spawn_blocking(move || write(&lot)).await;
            let error = match written {
                Ok(Ok(())) => break,
                Ok(Err(error)) => error_chain(&error),
                Err(error) => error.to_string(),
            };
            if attempt == WRITE_ATTEMPTS {
                tracing::error!(rows = rows.len(), %error, "{what} were lost");
            } else {
                tracing::warn!(rows = rows.len(), %error, "cannot write {what}; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
