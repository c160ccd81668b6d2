//! A capture file played back in real time, in a loop, as a stand-in for the SPAN port.
//!
//! Frames are delivered when they are due, keeping the gaps of the original capture, and are
//! stamped with the wall-clock time of delivery so that what is recorded from them is dated
//! today. Each pass starts [`LOOP_GAP`] after the previous one ended.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{CaptureError, CaptureFile, Frame};

/// Pause between the end of one pass over the file and the start of the next.
pub const LOOP_GAP: Duration = Duration::from_secs(2);

/// Replay files are read whole into memory; larger ones are refused.
const MAX_REPLAY_BYTES: u64 = 512 << 20;

/// Plays `path` in a loop until `shutdown`, handing each frame to `deliver` when it is due.
/// Returns `Ok(())` on shutdown, or the error that stopped the replay.
pub async fn replay(
    path: &Path,
    shutdown: &CancellationToken,
    mut deliver: impl FnMut(Frame<'_>),
) -> Result<(), CaptureError> {
    let open_err = |source| CaptureError::Open {
        path: path.to_path_buf(),
        source,
    };
    let size = tokio::fs::metadata(path).await.map_err(open_err)?.len();
    if size > MAX_REPLAY_BYTES {
        return Err(open_err(std::io::Error::other(format!(
            "{size} bytes is over the replay limit of {MAX_REPLAY_BYTES}"
        ))));
    }
    let bytes: Arc<[u8]> = tokio::fs::read(path).await.map_err(open_err)?.into();

    let mut pass_start = (Instant::now(), SystemTime::now());
    let mut frame = Vec::with_capacity(2048);
    loop {
        let mut file = CaptureFile::from_bytes(path, bytes.clone())?;
        let mut first_seen: Option<SystemTime> = None;
        let mut offset = Duration::ZERO;
        loop {
            let mut link_type = 0;
            let mut captured_at = SystemTime::UNIX_EPOCH;
            let more = file.next_frame(|f| {
                frame.clear();
                frame.extend_from_slice(f.data);
                link_type = f.link_type;
                captured_at = f.timestamp;
            })?;
            if !more {
                break;
            }
            let first = *first_seen.get_or_insert(captured_at);
            // A frame stamped earlier than the one before it is played at once.
            offset = offset.max(captured_at.duration_since(first).unwrap_or_default());
            let due = pass_start.0 + offset;
            if due > Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
            } else if shutdown.is_cancelled() {
                return Ok(());
            }
            deliver(Frame {
                timestamp: pass_start.1 + offset,
                link_type,
                data: &frame,
            });
        }
        if file.frames() == 0 {
            return Err(CaptureError::Open {
                path: path.to_path_buf(),
                source: std::io::Error::other("the capture holds no frames to replay"),
            });
        }
        let next = offset + LOOP_GAP;
        pass_start = (pass_start.0 + next, pass_start.1 + next);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Mutex;

    use pcap_file::DataLink;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

    use super::*;

    fn write_pcap(path: &Path, frames: &[(u64, &[u8])]) {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..Default::default()
        };
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (micros, data) in frames {
            writer
                .write_packet(&PcapPacket {
                    timestamp: Duration::from_micros(1_700_000_000_000_000 + micros),
                    orig_len: data.len() as u32,
                    data: Cow::Borrowed(data),
                })
                .unwrap();
        }
        std::fs::write(path, writer.into_writer()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn frames_come_when_due_and_the_file_loops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.pcap");
        write_pcap(&path, &[(0, b"a"), (20_000, b"b"), (1_000_000, b"c")]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn({
            let (seen, shutdown) = (seen.clone(), shutdown.clone());
            async move {
                replay(&path, &shutdown, |f| {
                    let at = Instant::now().duration_since(started).as_millis();
                    seen.lock()
                        .unwrap()
                        .push((at, f.timestamp, f.data.to_vec()));
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(4500)).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();

        let seen = seen.lock().unwrap().clone();
        let arrivals: Vec<(u128, &[u8])> = seen
            .iter()
            .map(|(at, _, data)| (*at, data.as_slice()))
            .collect();
        // Second pass starts 1 s (capture length) + 2 s (gap) after the first.
        assert_eq!(
            arrivals,
            [
                (0, &b"a"[..]),
                (20, b"b"),
                (1000, b"c"),
                (3000, b"a"),
                (3020, b"b"),
                (4000, b"c")
            ]
        );
        // Stamps keep the capture's spacing, and the second pass is dated 3 s later.
        let stamp = |i: usize| seen[i].1.duration_since(seen[0].1).unwrap().as_millis();
        assert_eq!((stamp(1), stamp(2), stamp(3)), (20, 1000, 3000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_capture_is_an_error_not_a_busy_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pcap");
        write_pcap(&path, &[]);
        let err = replay(&path, &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("cannot open capture file"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_named() {
        let err = replay(
            Path::new("/nonexistent.pcap"),
            &CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot open capture file /nonexistent.pcap"
        );
    }
}
