//! Frames from the SPAN source become recordings: the capture service and `tapline record`.
//!
//! The recorder blocks (files, SQLite, fsync), so it runs on a thread of its own, fed through
//! a bounded channel. The capture side never waits on it: a frame that finds the channel full
//! is dropped and counted (`tapline_capture_dropped_frames_total`), exactly as a kernel ring
//! drops when its reader falls behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};

use tapline_capture::{CaptureFile, Frame, LiveCapture, LiveError, LiveOptions};
use tapline_config::RecordingConfig;
use tapline_recorder::{Recorder, RecorderConfig, Totals};
use tapline_runtime::{BoxError, ServiceContext};
use tapline_store::Store;

/// Frames in flight between capture and the recorder thread.
const QUEUE: usize = 16_384;

/// How often the recorder hears the time when no frames arrive.
const TICK: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// The capture and recording metrics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    frames: Counter,
    bytes: Counter,
    dropped: Counter,
    recordings: Family<StatusLabel, Counter>,
    open: Gauge,
    disk_full: Gauge,
    free_bytes: Gauge,
    sip_messages: Counter,
    rtp_packets: Counter,
    malformed: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry, source: &str) -> Metrics {
        let m = Metrics::default();
        let sub = registry.sub_registry_with_label(("source".into(), source.to_owned().into()));
        sub.register(
            "capture_frames",
            "Link-layer frames received",
            m.frames.clone(),
        );
        sub.register("capture_bytes", "Bytes of frames received", m.bytes.clone());
        sub.register(
            "capture_dropped_frames",
            "Frames dropped because the recorder fell behind",
            m.dropped.clone(),
        );
        registry.register(
            "recordings",
            "Recordings by how they ended",
            m.recordings.clone(),
        );
        registry.register(
            "recordings_open",
            "Recordings being written now",
            m.open.clone(),
        );
        registry.register(
            "recordings_disk_full",
            "1 while new calls are not recorded because the recordings disk is full or below its low-water mark",
            m.disk_full.clone(),
        );
        registry.register(
            "recordings_free_bytes",
            "Bytes free for recordings on their file system, as last measured",
            m.free_bytes.clone(),
        );
        registry.register("sip_messages", "SIP messages seen", m.sip_messages.clone());
        registry.register("rtp_packets", "RTP packets seen", m.rtp_packets.clone());
        registry.register(
            "malformed_packets",
            "Frames or messages that could not be parsed, by reason",
            m.malformed.clone(),
        );
        m
    }

    /// Brings the counters up to the recorder's totals (which only grow).
    fn update(&self, recorder: &Recorder, seen: &mut Seen) {
        let totals = recorder.totals;
        for (status, now, before) in [
            ("started", totals.started, seen.totals.started),
            ("complete", totals.completed, seen.totals.completed),
            ("failed", totals.failed, seen.totals.failed),
            (
                "unrecordable",
                totals.unrecordable,
                seen.totals.unrecordable,
            ),
            (
                "recovered",
                totals.recovered_at_start,
                seen.totals.recovered_at_start,
            ),
            (
                "not_selected",
                totals.not_selected,
                seen.totals.not_selected,
            ),
            (
                "refused_disk_full",
                totals.refused_disk_full,
                seen.totals.refused_disk_full,
            ),
            (
                "cut_short_disk_full",
                totals.cut_short,
                seen.totals.cut_short,
            ),
        ] {
            self.recordings
                .get_or_create(&StatusLabel { status })
                .inc_by(now - before);
        }
        seen.totals = totals;
        self.open.set(recorder.open_recordings() as i64);
        self.disk_full.set(i64::from(recorder.disk_full()));
        if let Some(free) = recorder.free_space() {
            self.free_bytes
                .set(i64::try_from(free.available).unwrap_or(i64::MAX));
        }
        let stats = &recorder.tracker().stats;
        self.sip_messages
            .inc_by(stats.sip_messages - seen.sip_messages);
        self.rtp_packets
            .inc_by(stats.rtp_packets - seen.rtp_packets);
        seen.sip_messages = stats.sip_messages;
        seen.rtp_packets = stats.rtp_packets;
        for (reason, &count) in &stats.malformed {
            let before = seen
                .malformed
                .iter()
                .find(|(r, _)| r == reason)
                .map_or(0, |(_, c)| *c);
            self.malformed
                .get_or_create(&ReasonLabel {
                    reason: (*reason).to_owned(),
                })
                .inc_by(count - before);
        }
        seen.malformed = stats.malformed.iter().map(|(r, c)| (*r, *c)).collect();
    }
}

/// What the metrics have already counted.
#[derive(Default)]
struct Seen {
    totals: Totals,
    sip_messages: u64,
    rtp_packets: u64,
    malformed: Vec<(&'static str, u64)>,
}

/// What a capture service needs to record: where, into which database, and how.
#[derive(Clone, Debug)]
pub(crate) struct RecorderSetup {
    pub(crate) store: Arc<Store>,
    pub(crate) data_dir: PathBuf,
    pub(crate) recording: RecordingConfig,
}

enum Input {
    Frame {
        at: Duration,
        link_type: u32,
        data: Vec<u8>,
    },
    Tick(Duration),
}

/// The capture service on a replayed file: frames paced in real time, recorded as they come.
pub(crate) async fn replay(
    ctx: ServiceContext,
    path: PathBuf,
    setup: RecorderSetup,
    metrics: Metrics,
) -> Result<(), BoxError> {
    // Ready only once the file is known to hold frames: a damaged replay file shows as a
    // failing capture service, not as one that serves nothing.
    let probe = path.clone();
    tokio::task::spawn_blocking(move || CaptureFile::open(&probe)?.next_frame(|_| {})).await??;

    let (input, thread) = start_recorder(setup, "replay", metrics.clone()).await?;
    ctx.set_ready_at(vec![format!("replay of {}", path.display())]);
    let ticker = spawn_ticker(input.clone(), ctx.shutdown().clone());
    let result = tapline_capture::replay(&path, ctx.shutdown(), |frame| {
        offer(&input, &metrics, frame);
    })
    .await;
    ticker.abort();
    // Closing the channel tells the recorder to finalise every open recording.
    drop(input);
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| "the recorder thread panicked")?;
    result?;
    Ok(())
}

/// The capture service on the SPAN port(s): one reader thread per interface, every frame
/// recorded. Kernel drops are counted in `tapline_capture_kernel_drops_total`.
pub(crate) async fn live(
    ctx: ServiceContext,
    interfaces: Vec<String>,
    setup: RecorderSetup,
    metrics: LiveMetrics,
) -> Result<(), BoxError> {
    // Open every interface before saying ready: a missing or unpermitted one fails the
    // service (and is retried with backoff), loudly, instead of capturing half the traffic.
    let names = interfaces.clone();
    let captures = tokio::task::spawn_blocking(move || {
        names
            .iter()
            .map(|name| LiveCapture::open(name, &LiveOptions::default()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let (input, recorder) = start_recorder(setup, "span", metrics.recording.clone()).await?;
    ctx.set_ready_at(
        interfaces
            .iter()
            .map(|i| format!("SPAN capture on {i}"))
            .collect(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (failed_tx, mut failed) = tokio::sync::mpsc::channel::<LiveError>(interfaces.len());
    let readers: Vec<_> = captures
        .into_iter()
        .map(|capture| {
            let (input, stop, failed, metrics) = (
                input.clone(),
                stop.clone(),
                failed_tx.clone(),
                metrics.clone(),
            );
            std::thread::Builder::new()
                .name(format!("capture {}", capture.interface()))
                .spawn(move || {
                    if let Err(err) = read_interface(capture, &input, &stop, &metrics) {
                        let _ = failed.blocking_send(err);
                    }
                })
        })
        .collect::<Result<_, _>>()?;
    drop(failed_tx);
    let ticker = spawn_ticker(input.clone(), ctx.shutdown().clone());
    let outcome = tokio::select! {
        () = ctx.shutdown().cancelled() => Ok(()),
        Some(err) = failed.recv() => Err(err),
    };
    stop.store(true, Ordering::Relaxed);
    ticker.abort();
    drop(input);
    tokio::task::spawn_blocking(move || {
        for reader in readers {
            let _ = reader.join();
        }
        recorder.join()
    })
    .await?
    .map_err(|_| "the recorder thread panicked")?;
    outcome?;
    Ok(())
}

/// Live capture metrics: per interface, plus the recorder's.
#[derive(Clone, Debug)]
pub(crate) struct LiveMetrics {
    recording: Metrics,
    kernel_drops: Family<InterfaceLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabel {
    interface: String,
}

impl LiveMetrics {
    pub(crate) fn register(registry: &mut Registry) -> LiveMetrics {
        let kernel_drops = Family::<InterfaceLabel, Counter>::default();
        registry.register(
            "capture_kernel_drops",
            "Frames the kernel dropped because the capture ring was full",
            kernel_drops.clone(),
        );
        LiveMetrics {
            recording: Metrics::register(registry, "span"),
            kernel_drops,
        }
    }
}

/// Reads one interface until `stop`, handing frames to the recorder.
fn read_interface(
    mut capture: LiveCapture,
    input: &SyncSender<Input>,
    stop: &AtomicBool,
    metrics: &LiveMetrics,
) -> Result<(), LiveError> {
    let label = InterfaceLabel {
        interface: capture.interface().to_owned(),
    };
    let mut dropped_seen = 0;
    let mut last_stats = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let result = capture.next_block(Duration::from_millis(200), |frame| {
            offer(input, &metrics.recording, frame);
        });
        match result {
            Ok(_) => {}
            // The link went down (cable pulled, switch port reset): keep waiting for it.
            Err(LiveError::Interrupted { .. }) => std::thread::sleep(Duration::from_millis(200)),
            Err(err) => return Err(err),
        }
        if last_stats.elapsed() >= TICK {
            last_stats = std::time::Instant::now();
            let stats = capture.stats()?;
            metrics
                .kernel_drops
                .get_or_create(&label)
                .inc_by(stats.drops - dropped_seen);
            dropped_seen = stats.drops;
        }
    }
    Ok(())
}

/// Hands a frame to the recorder thread, counting it. Never waits: a full queue drops the
/// frame and counts the drop.
fn offer(input: &SyncSender<Input>, metrics: &Metrics, frame: Frame<'_>) {
    metrics.frames.inc();
    metrics.bytes.inc_by(frame.data.len() as u64);
    let at = frame
        .timestamp
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let message = Input::Frame {
        at,
        link_type: frame.link_type,
        data: frame.data.to_vec(),
    };
    if let Err(TrySendError::Full(_)) = input.try_send(message) {
        metrics.dropped.inc();
    }
}

fn spawn_ticker(
    input: SyncSender<Input>,
    shutdown: tapline_runtime::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => return,
            }
            // A full channel carries time in its frames; a closed one means we are stopping.
            let _ = input.try_send(Input::Tick(wall_clock()));
        }
    })
}

async fn start_recorder(
    setup: RecorderSetup,
    source: &'static str,
    metrics: Metrics,
) -> Result<(SyncSender<Input>, std::thread::JoinHandle<()>), BoxError> {
    let store = setup.store;
    let config = RecorderConfig {
        root: setup.data_dir.join("recordings"),
        source,
        recording: setup.recording,
    };
    // Opening the recorder repairs what a crash left open; that reads and writes files.
    let recorder = tokio::task::spawn_blocking(move || Recorder::new(store, config)).await??;
    let (input, frames) = sync_channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("recorder".to_owned())
        .spawn(move || record(recorder, frames, metrics))?;
    Ok((input, thread))
}

/// The recorder thread: until the channel closes, then every open recording is finalised.
fn record(mut recorder: Recorder, frames: Receiver<Input>, metrics: Metrics) {
    let mut seen = Seen::default();
    metrics.update(&recorder, &mut seen);
    let mut last_update = Duration::ZERO;
    while let Ok(input) = frames.recv() {
        let now = match input {
            Input::Frame {
                at,
                link_type,
                data,
            } => {
                recorder.handle_frame(at, link_type, &data);
                at
            }
            Input::Tick(now) => {
                recorder.handle_timeout(now);
                now
            }
        };
        if now >= last_update + TICK {
            last_update = now;
            metrics.update(&recorder, &mut seen);
        }
    }
    recorder.finish(wall_clock());
    metrics.update(&recorder, &mut seen);
}

fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `tapline record --pcap FILE`: the same path as live traffic, as fast as the file reads.
pub(crate) fn record_file(config_path: &Path, capture: &Path) -> anyhow::Result<()> {
    let config = tapline_config::Config::load(config_path)?;
    tapline_provisioning::prepare_data_dir(&config.storage.data_dir)?;
    let store = Arc::new(Store::open_in(&config.storage.data_dir)?);
    let recorder_config = RecorderConfig {
        root: config.storage.data_dir.join("recordings"),
        source: "pcap",
        recording: config.recording.clone(),
    };
    let mut recorder = Recorder::new(store, recorder_config)?;
    let mut file = CaptureFile::open(capture)?;
    let mut last = Duration::ZERO;
    let outcome = loop {
        let more = file.next_frame(|frame| {
            let at = frame
                .timestamp
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            last = last.max(at);
            recorder.handle_frame(at, frame.link_type, frame.data);
        });
        match more {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    // Whatever happened, keep every call that could be completed.
    recorder.finish(last);
    print_summary(capture, &recorder, file.frames());
    outcome.with_context(|| {
        format!(
            "stopped reading {} early; the calls before that point were kept",
            capture.display()
        )
    })
}

fn print_summary(capture: &Path, recorder: &Recorder, frames: u64) {
    let totals = recorder.totals;
    let stats = &recorder.tracker().stats;
    println!("{}:", capture.display());
    println!("  frames           {frames}");
    println!("  SIP messages     {}", stats.sip_messages);
    println!("  RTP packets      {}", stats.rtp_packets);
    println!("  calls answered   {}", stats.calls_answered);
    println!("  recorded         {}", totals.completed);
    println!("  failed           {}", totals.failed);
    println!(
        "  not recorded     {} unanswered, {} encrypted, {} left out by the recording percentage, \
         {} for lack of disk space",
        stats.calls_unanswered, totals.unrecordable, totals.not_selected, totals.refused_disk_full
    );
    if totals.encrypted_signalling > 0 {
        println!(
            "  SIP over TLS     {} connections, their calls not recordable (listed in \
             encrypted_signalling)",
            totals.encrypted_signalling
        );
    }
    let mut malformed: Vec<_> = stats.malformed.iter().collect();
    malformed.sort();
    let malformed: Vec<String> = malformed
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    println!(
        "  skipped          {}",
        if malformed.is_empty() {
            "none".to_owned()
        } else {
            malformed.join(", ")
        }
    );
}
