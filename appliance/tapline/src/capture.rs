//! The capture service: frames from the SPAN source, counted as they arrive.

use std::path::PathBuf;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tapline_capture::CaptureFile;
use tapline_runtime::{BoxError, ServiceContext};

/// Per-source counters, exported as `tapline_capture_frames_total{source=...}` and
/// `tapline_capture_bytes_total{source=...}`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    frames: Counter,
    bytes: Counter,
}

impl Counters {
    pub(crate) fn register(registry: &mut Registry, source: &str) -> Counters {
        let counters = Counters::default();
        let sub = registry.sub_registry_with_label(("source".into(), source.to_owned().into()));
        sub.register(
            "capture_frames",
            "Link-layer frames received",
            counters.frames.clone(),
        );
        sub.register(
            "capture_bytes",
            "Bytes of frames received",
            counters.bytes.clone(),
        );
        counters
    }
}

/// Replays a capture file in a loop as the SPAN source.
pub(crate) async fn replay(
    ctx: ServiceContext,
    path: PathBuf,
    counters: Counters,
) -> Result<(), BoxError> {
    // Ready only once the file is known to hold frames: a damaged replay file shows as a
    // failing capture service, not as one that serves nothing.
    let probe = path.clone();
    tokio::task::spawn_blocking(move || CaptureFile::open(&probe)?.next_frame(|_| {})).await??;
    ctx.set_ready_at(vec![format!("replay of {}", path.display())]);
    tapline_capture::replay(&path, ctx.shutdown(), |frame| {
        counters.frames.inc();
        counters.bytes.inc_by(frame.data.len() as u64);
    })
    .await?;
    Ok(())
}
