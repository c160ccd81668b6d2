//! The recorder: the call tracker's events become WAV files and database rows.
//!
//! A call's file is `<recordings>/Syyyymmdd/Ryyyymmddhhmmssssss.wav`: the UTC day and second
//! of the answer, and a four-digit sequence that separates calls answered in the same second.
//! Its row is written when the call is answered (status `recording`) and completed when it
//! ends, with the file's size and SHA-256.
//!
//! **Crash safety.** Every open recording's WAV header is brought up to date and the file
//! fsynced about once a second ([`SYNC_INTERVAL`]), so a power cut loses at most that much
//! audio; at start, [`Recorder::new`] repairs every file whose row still says `recording` and
//! marks it `recovered`.
//!
//! **Disk full.** A full disk must cost the calls that cannot be recorded, and nothing else:
//! not the audio already on disk, not the rows, not the recorder. See [`space`] for when
//! recording stops and starts again; while it is stopped ([`Recorder::disk_full`]):
//!
//! - a call that would be recorded is refused: no file, a `call_decisions` row with
//!   `recorded = 0` and a reason starting `disk full`, and [`Totals::refused_disk_full`];
//! - when the disk actually fills (`ENOSPC` or `EDQUOT` on a write, a creation or a sync),
//!   every open recording is finalised at once with the whole frames that reached the disk
//!   (its file repaired if the failed write left a partial frame or a stale header) and its
//!   row completed at the next sync: status `complete`, `end_reason` [`CUT_SHORT`], the size
//!   and SHA-256 of the file as it is. `complete` because the file is a valid recording of the
//!   call up to the cut, which is what the status promises; the end reason says it is not the
//!   whole call. The call's codec and stream statistics are filled in when it ends;
//! - one error is logged when the state is entered, and one line when it is left; refused
//!   calls are logged one line each, packets never.
//!
//! Recording resumes by itself: the free space is measured at every sync, and the first call
//! answered after it is back above the resume mark is recorded normally.
//!
//! Every call here blocks (files, SQLite); the daemon runs the recorder on a thread of its own.

mod layout;
pub mod space;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use sha2::{Digest, Sha256};
use tapline_calls::{CallSummary, Event, Tracker};
use tapline_config::{RecordingConfig, RecordingFormat};
use tapline_directory::device_map::{self, Attribution, CallParty, CallView, DeviceMap};
use tapline_media::g711;
use tapline_media::wav::{self, SampleFormat, WavSpec, WavWriter};
use tapline_runtime::supervisor::error_chain as chain;
use tapline_store::Store;
use tapline_store::rusqlite;

pub use layout::{day_directory, file_name};
pub use space::{FreeSpace, SpacePolicy};

/// The `end_reason` of a recording a full disk ended before its call did.
pub const CUT_SHORT: &str = "disk full: recording cut short";

/// How often open recordings are made durable.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot create recording {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write recording {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: wav::WavError,
    },
    #[error("cannot repair recording {}", path.display())]
    Repair {
        path: PathBuf,
        #[source]
        source: wav::WavError,
    },
    #[error("cannot keep undecodable media in {}", path.display())]
    Raw {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sync recordings in {} to disk", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read back recording {} to hash it", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the recordings database failed")]
    Database(#[from] rusqlite::Error),
}

impl RecorderError {
    /// Whether the recordings' file system (or the quota on it) is full: `ENOSPC` or
    /// `EDQUOT` anywhere in the chain. A full database is not counted: it may live elsewhere,
    /// and its errors are reported as they are.
    pub fn is_disk_full(&self) -> bool {
        !matches!(self, RecorderError::Database(_)) && space::is_disk_full(self)
    }
}

/// Where and how recordings are written.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// `<data_dir>/recordings`.
    pub root: PathBuf,
    /// What the frames come from, stored with each recording: `span`, `replay`, `pcap`.
    pub source: &'static str,
    /// Format, recording percentage and metadata headers (`[recording]`).
    pub recording: RecordingConfig,
}

/// What happened to the calls seen, for summaries and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub unrecordable: u64,
    pub recovered_at_start: u64,
    /// Answered calls the recording percentage left out.
    pub not_selected: u64,
    /// Answered calls not recorded because the disk was full or below the low-water mark.
    pub refused_disk_full: u64,
    /// Recordings a full disk ended before their call; each is also counted once its row is
    /// settled, as `completed` (the file holds what was recorded) or `failed`.
    pub cut_short: u64,
    /// Connections of SIP over TLS seen, whose calls cannot be recorded.
    pub encrypted_signalling: u64,
}

/// See the crate documentation.
pub struct Recorder {
    tracker: Tracker,
    config: RecorderConfig,
    store: Arc<Store>,
    open: HashMap<u64, Open>,
    last_sync: Duration,
    sequences: layout::Sequences,
    finishing: Vec<Finishing>,
    /// Calls whose recording a full disk cut short, and their rows: when the call ends, its
    /// codec and stream statistics are added to the row.
    cut: HashMap<u64, i64>,
    space: Space,
    /// The latest time the recorder was given: when a recording is cut short.
    now: Duration,
    directory: Directory,
    pub totals: Totals,
}

/// The agent directory as of its `version`: rebuilt when the version read at an answer
/// differs, so a change made in the web UI applies from the next call.
#[derive(Debug, Default)]
struct Directory {
    version: Option<i64>,
    map: DeviceMap,
    /// The latest refresh failed (logged once, until one works again); the map kept is the
    /// last one read.
    unreadable: bool,
}

/// The disk-full state and what it was decided on.
#[derive(Debug, Default)]
struct Space {
    /// `None`: [`SpacePolicy::for_file_system`] of the file system measured.
    policy: Option<SpacePolicy>,
    /// New recordings are refused.
    full: bool,
    /// When they started to be: the state lasts at least [`SYNC_INTERVAL`], so that the
    /// alarm shows in the metrics even when a quota (which `statvfs` cannot see) makes the
    /// next measure look fine.
    full_since: Duration,
    /// The latest measure.
    free: Option<FreeSpace>,
    /// The latest measure failed (logged once, until one works again).
    unmeasurable: bool,
}

/// A recording whose call has ended, waiting for the next sync to be marked complete.
struct Finishing {
    row: i64,
    path: PathBuf,
    written: bool,
    summary: CallSummary,
    /// The undecodable media kept beside it: file name and packets.
    raw: Option<(String, u64)>,
    /// The end reason to store instead of the call's: [`CUT_SHORT`].
    note: Option<&'static str>,
    /// Cut short while the call went on: `summary` is from the answer, so the row's codec
    /// and stream statistics are left for the call's end to fill in.
    cut: bool,
}

struct Open {
    row: i64,
    path: PathBuf,
    /// The call as answered, for a row completed before the call ends.
    summary: CallSummary,
    /// `None` once a write failed (for a reason other than a full disk): the file was
    /// repaired then, and the recording is `failed` when the call ends.
    writer: Option<WavWriter<File>>,
    /// Reused for G.711 output.
    encoded: Vec<u8>,
    /// Media that could not be decoded, as captured, beside the recording.
    raw: Option<RawMedia>,
}

struct RawMedia {
    name: String,
    path: PathBuf,
    /// Unbuffered: each packet is one write, so what a sync makes durable is every packet
    /// seen (undecodable media is at most some 50 packets a second per call). `None` once a
    /// write failed: the file was cut back to its last whole packet and is kept as it is.
    writer: Option<PcapWriter<File>>,
    packets: u64,
    /// Bytes of the file header and the whole packets after it.
    len: u64,
}

/// Bytes of a pcap file header.
const PCAP_HEADER_LEN: u64 = 24;

impl RawMedia {
    /// After a failed write, part of a packet may be in the file: cut it off, so the file
    /// reads to its end, and write no more to it.
    fn cut_back(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(err) = writer.into_writer().set_len(self.len)
        {
            tracing::error!(file = %self.path.display(), error = %err, "cannot cut undecodable media back to its last whole packet");
        }
    }
}

impl Recorder {
    /// A recorder writing under `config.root`; first repairs what a crash left open. Free
    /// space is judged by [`SpacePolicy::for_file_system`].
    pub fn new(store: Arc<Store>, config: RecorderConfig) -> Result<Recorder, RecorderError> {
        Recorder::open(store, config, None)
    }

    /// [`Recorder::new`] with fixed free-space marks instead of ones derived from the size of
    /// the file system.
    pub fn with_space_policy(
        store: Arc<Store>,
        config: RecorderConfig,
        policy: SpacePolicy,
    ) -> Result<Recorder, RecorderError> {
        Recorder::open(store, config, Some(policy))
    }

    fn open(
        store: Arc<Store>,
        config: RecorderConfig,
        policy: Option<SpacePolicy>,
    ) -> Result<Recorder, RecorderError> {
        let mut recorder = Recorder {
            tracker: Tracker::new(),
            config,
            store,
            open: HashMap::new(),
            last_sync: Duration::ZERO,
            sequences: layout::Sequences::default(),
            finishing: Vec::new(),
            cut: HashMap::new(),
            space: Space {
                policy,
                ..Space::default()
            },
            now: Duration::ZERO,
            directory: Directory::default(),
            totals: Totals::default(),
        };
        recorder.repair_unfinished()?;
        recorder.refresh_directory();
        // A restart on a full disk refuses from the first call.
        recorder.measure_space(Duration::ZERO);
        Ok(recorder)
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// One captured frame.
    pub fn handle_frame(&mut self, now: Duration, link_type: u32, frame: &[u8]) {
        self.now = now;
        self.tracker.handle_frame(now, link_type, frame);
        self.catch_up(now);
    }

    /// Time passes without frames (call at least once a second).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = now;
        self.tracker.handle_timeout(now);
        self.catch_up(now);
    }

    /// Acts on what the tracker said, and syncs when a second has passed.
    fn catch_up(&mut self, now: Duration) {
        self.drain();
        if now >= self.last_sync + SYNC_INTERVAL {
            self.sync(now);
        }
    }

    /// The source has ended (file done, or shutdown): every open recording is finalised.
    pub fn finish(&mut self, now: Duration) {
        self.now = now;
        self.tracker.finish(now);
        self.drain();
        self.sync(now);
    }

    /// Recordings being written now.
    pub fn open_recordings(&self) -> usize {
        self.open.len()
    }

    /// The disk-full alarm: new calls are not recorded until free space returns.
    pub fn disk_full(&self) -> bool {
        self.space.full
    }

    /// The recordings' file system as last measured (at the latest sync).
    pub fn free_space(&self) -> Option<FreeSpace> {
        self.space.free
    }

    fn drain(&mut self) {
        while let Some(event) = self.tracker.poll_event() {
            match event {
                Event::Answered(summary) => {
                    if let Err(err) = self.start(&summary) {
                        self.totals.failed += 1;
                        tracing::error!(error = %chain(&err), call_id = %summary.sip_call_id, "cannot start a recording");
                    }
                }
                Event::Audio { call, samples } => {
                    self.write(call, &samples);
                    self.tracker.recycle_audio(samples);
                }
                Event::RawMedia {
                    call,
                    at,
                    link_type,
                    frame,
                } => self.keep_raw(call, at, link_type, &frame),
                Event::Ended(summary) => self.complete(&summary),
                Event::Unrecordable { summary, reason } => self.unrecordable(&summary, reason),
                Event::EncryptedSignalling { client, server, at } => {
                    self.encrypted_signalling(client, server, at);
                }
            }
        }
    }

    /// A call that cannot be recorded (its media is encrypted) is still listed, with the
    /// reason, among the decisions: an auditor sees every answered call.
    fn unrecordable(&mut self, summary: &CallSummary, reason: &str) {
        self.totals.unrecordable += 1;
        tracing::warn!(call_id = %summary.sip_call_id, reason, "call cannot be recorded");
        let answered = summary.answered_at.unwrap_or(summary.invited_at);
        let stored = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO call_decisions (sip_call_id, answered_at, recorded, reason)
                 VALUES (?1, ?2, 0, ?3)",
                (&summary.sip_call_id, layout::iso_utc(answered), reason),
            )
        });
        if let Err(err) = stored {
            tracing::error!(error = %chain(&err), call_id = %summary.sip_call_id, "cannot list a call that cannot be recorded");
        }
    }

    /// A connection of SIP over TLS: its calls cannot be recorded, so it is listed.
    fn encrypted_signalling(&mut self, client: SocketAddr, server: SocketAddr, at: Duration) {
        self.totals.encrypted_signalling += 1;
        let reason =
            "SIP over TLS: calls signalled on this connection cannot be recorded passively";
        tracing::warn!(%client, %server, "{reason}");
        let stored = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO encrypted_signalling (first_seen, client, server, source, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                (
                    layout::iso_utc(at),
                    client.to_string(),
                    server.to_string(),
                    self.config.source,
                    reason,
                ),
            )
        });
        if let Err(err) = stored {
            tracing::error!(error = %chain(&err), %client, %server, "cannot list a SIP-over-TLS connection");
        }
    }

    /// Rebuilds the device map if the directory changed since it was read. A database
    /// error keeps the map as it was: calls are still recorded, attributed as before.
    fn refresh_directory(&mut self) {
        let version = self.store.read(device_map::version);
        let loaded = match version {
            Ok(version) if Some(version) == self.directory.version => Ok(None),
            Ok(version) => self
                .store
                .read(DeviceMap::load)
                .map(|map| Some((version, map))),
            Err(err) => Err(err),
        };
        match loaded {
            Ok(fresh) => {
                if let Some((version, map)) = fresh {
                    tracing::info!(agents = map.agents(), version, "agent directory loaded");
                    self.directory.version = Some(version);
                    self.directory.map = map;
                }
                self.directory.unreadable = false;
            }
            Err(err) => {
                if !self.directory.unreadable {
                    tracing::error!(error = %chain(&err), "cannot read the agent directory: calls are attributed by the directory as last read");
                }
                self.directory.unreadable = true;
            }
        }
    }

    fn start(&mut self, summary: &CallSummary) -> Result<(), RecorderError> {
        let answered = summary.answered_at.unwrap_or(summary.invited_at);
        self.refresh_directory();
        let caller_addresses = summary.caller.addresses();
        let callee_addresses = summary.callee.addresses();
        let view = CallView {
            caller: CallParty {
                uri: Some(summary.caller.uri.as_str()),
                user: summary.caller.user.as_deref(),
                addresses: &caller_addresses,
                mac: summary.caller.mac,
            },
            callee: CallParty {
                uri: Some(summary.callee.uri.as_str()),
                user: summary.callee.user.as_deref(),
                addresses: &callee_addresses,
                mac: summary.callee.mac,
            },
            dialled: summary.dialled.as_deref(),
        };
        let attribution = self.directory.map.attribute(&view);
        let agent = AgentColumns::of(attribution.as_ref());
        let (record, reason) = match attribution
            .as_ref()
            .and_then(|a| a.matched.agent.recording_percentage.map(|p| (a, p)))
        {
            Some((a, percentage)) => decide(
                &summary.sip_call_id,
                percentage,
                &format!("agent {}'s recording percentage", a.matched.agent.agent_id),
            ),
            None => decide(
                &summary.sip_call_id,
                self.config.recording.percentage,
                "recording percentage",
            ),
        };
        if !record {
            self.totals.not_selected += 1;
            self.store.write(|tx| {
                tx.execute(
                    "INSERT INTO call_decisions (sip_call_id, answered_at, recorded, reason)
                     VALUES (?1, ?2, 0, ?3)",
                    (&summary.sip_call_id, layout::iso_utc(answered), &reason),
                )
            })?;
            tracing::info!(call_id = %summary.sip_call_id, reason, "call not recorded");
            return Ok(());
        }
        if self.space.full {
            self.refuse(summary, answered);
            return Ok(());
        }
        let Created {
            directory,
            name,
            path,
            writer,
        } = match self.create_file(summary, answered) {
            Ok(created) => created,
            Err(err) if err.is_disk_full() => {
                self.disk_filled(&err);
                self.refuse(summary, answered);
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let row = self.store.write(|tx| {
            self.insert_row(
                tx,
                summary,
                &RowStart {
                    answered,
                    directory: &directory,
                    name: &name,
                    reason: &reason,
                    agent: &agent,
                },
            )
        });
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                // No row, no recording: remove the empty file rather than leave an orphan.
                drop(writer);
                let _ = std::fs::remove_file(&path);
                return Err(err.into());
            }
        };
        tracing::info!(file = %name, call_id = %summary.sip_call_id, "recording started");
        self.totals.started += 1;
        self.open.insert(
            summary.id,
            Open {
                row,
                path,
                summary: summary.clone(),
                writer: Some(writer),
                encoded: Vec::new(),
                raw: None,
            },
        );
        Ok(())
    }

    /// Inserts a recorded call's row, with the metadata its INVITE's headers carry, and its
    /// decision.
    fn insert_row(
        &self,
        tx: &rusqlite::Transaction<'_>,
        summary: &CallSummary,
        start: &RowStart<'_>,
    ) -> rusqlite::Result<i64> {
        let agent = start.agent;
        tx.prepare_cached(
            "INSERT INTO recordings (file_name, directory, status, source, answered_at,
                 transaction_id, sip_call_id, parent_transaction_id, caller_uri, caller_number,
                 caller_name, callee_uri, called_number, sample_rate, channels, format,
                 record_reason, agent_ref, agent_id, agent_name, agent_extension, call_type,
                 customer_number)
             VALUES (?1, ?2, 'recording', ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 2, ?13,
                     ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?
        .execute(rusqlite::params![
            start.name,
            start.directory,
            self.config.source,
            layout::iso_utc(start.answered),
            summary.sip_call_id,
            // The leg this one continues: the call it replaced (attended transfer), or
            // the one whose REFER sent it here (blind transfer).
            summary
                .replaces
                .as_ref()
                .or(summary.transferred_from.as_ref()),
            summary.caller.uri,
            summary.caller.user,
            summary.caller.display_name,
            summary.callee.uri,
            summary.dialled.as_ref().or(summary.callee.user.as_ref()),
            summary.sample_rate,
            self.config.recording.format.as_str(),
            start.reason,
            agent.agent_ref,
            agent.agent_id,
            agent.agent_name,
            agent.agent_extension,
            agent.call_type,
            agent.customer_number,
        ])?;
        let row = tx.last_insert_rowid();
        // The metadata columns are named as the [recording.headers] fields, a fixed list
        // (HeaderMap::FIELDS), so the column name in this statement is never input.
        for (field, header) in
            tapline_store::settings::sip_headers(tx, self.config.recording.headers.iter())?
        {
            if let Some(value) = invite_header(summary, &header) {
                tx.prepare_cached(&format!("UPDATE recordings SET {field} = ?2 WHERE id = ?1"))?
                    .execute((row, value))?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO call_decisions (sip_call_id, answered_at, recorded, reason, file_name)
             VALUES (?1, ?2, 1, ?3, ?4)",
        )?
        .execute((
            &summary.sip_call_id,
            layout::iso_utc(start.answered),
            start.reason,
            start.name,
        ))?;
        Ok(row)
    }

    /// Creates a call's file, its header durable: directory, name, path and writer. On error
    /// no file is left behind.
    fn create_file(
        &mut self,
        summary: &CallSummary,
        answered: Duration,
    ) -> Result<Created, RecorderError> {
        let directory = day_directory(answered);
        let dir_path = self.config.root.join(&directory);
        let create_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecorderError::Create { path, source }
        };
        // The day's directory is made by its first call: trying the file first saves two
        // system calls on every other call of the day.
        let (name, file) = match self.sequences.create_unique(&dir_path, answered) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir_path).map_err(create_err(&dir_path))?;
                self.sequences.create_unique(&dir_path, answered)
            }
            created => created,
        }
        .map_err(create_err(&dir_path))?;
        let path = dir_path.join(&name);
        let format = match self.config.recording.format {
            RecordingFormat::Pcm16 => SampleFormat::Pcm16,
            RecordingFormat::MuLaw => SampleFormat::MuLaw,
            RecordingFormat::ALaw => SampleFormat::ALaw,
        };
        let spec = WavSpec {
            format,
            channels: 2,
            sample_rate: summary.sample_rate,
        };
        let written = WavWriter::with_buffer(file, spec, write_buffer(spec))
            .and_then(|mut writer| writer.sync_header().map(|()| writer))
            .map_err(|source| RecorderError::Write {
                path: path.clone(),
                source,
            })
            .and_then(|writer| {
                layout::sync_directory(&dir_path).map_err(create_err(&dir_path))?;
                Ok(writer)
            });
        match written {
            Ok(writer) => Ok(Created {
                directory,
                name,
                path,
                writer,
            }),
            Err(err) => {
                // The writer, dropped, has closed the file.
                let _ = std::fs::remove_file(&path);
                Err(err)
            }
        }
    }

    /// A call that would be recorded, not recorded because the disk is full: counted, and
    /// the decision stored so that an auditor sees the call that was missed.
    fn refuse(&mut self, summary: &CallSummary, answered: Duration) {
        self.totals.refused_disk_full += 1;
        let reason = match self.space.free {
            Some(free) => format!(
                "disk full: {} bytes free for recordings, recording resumes at {}",
                free.available,
                self.policy_for(&free).resume
            ),
            None => "disk full".to_owned(),
        };
        let stored = self.store.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO call_decisions (sip_call_id, answered_at, recorded, reason)
                 VALUES (?1, ?2, 0, ?3)",
            )?
            .execute((&summary.sip_call_id, layout::iso_utc(answered), &reason))
        });
        match stored {
            Ok(_) => tracing::warn!(call_id = %summary.sip_call_id, reason, "call not recorded"),
            Err(err) => {
                tracing::error!(call_id = %summary.sip_call_id, reason, error = %chain(&err), "call not recorded, and the decision cannot be stored")
            }
        }
    }

    fn write(&mut self, call: u64, samples: &[i16]) {
        let Some(open) = self.open.get_mut(&call) else {
            return;
        };
        let Some(writer) = open.writer.as_mut() else {
            return;
        };
        let written = match writer.spec().format {
            SampleFormat::Pcm16 => writer.write_frames_i16(samples),
            SampleFormat::MuLaw => {
                open.encoded.clear();
                open.encoded
                    .extend(samples.iter().map(|&s| g711::linear_to_ulaw(s)));
                writer.write_frames_u8(&open.encoded)
            }
            SampleFormat::ALaw => {
                open.encoded.clear();
                open.encoded
                    .extend(samples.iter().map(|&s| g711::linear_to_alaw(s)));
                writer.write_frames_u8(&open.encoded)
            }
        };
        let Err(source) = written else {
            return;
        };
        let err = RecorderError::Write {
            path: open.path.clone(),
            source,
        };
        if err.is_disk_full() {
            self.disk_filled(&err);
        } else {
            tracing::error!(file = %open.path.display(), error = %chain(&err), "cannot write recording; keeping what was written");
            // Stop writing this call, and make what is on disk consistent.
            open.writer = None;
            repair_logged(&open.path);
        }
    }

    /// Keeps a packet this call's recording cannot hold (its codec is not decoded) in
    /// `Ryyyymmddhhmmssssss.rtp.pcap` beside the WAV.
    fn keep_raw(&mut self, call: u64, at: Duration, link_type: u32, frame: &[u8]) {
        let Some(open) = self.open.get_mut(&call) else {
            return;
        };
        if open.raw.is_none() {
            match create_raw(&open.path, link_type) {
                Ok(raw) => open.raw = Some(raw),
                Err(err) if err.is_disk_full() => {
                    self.disk_filled(&err);
                    return;
                }
                Err(err) => {
                    tracing::error!(error = %chain(&err), "cannot keep undecodable media");
                    return;
                }
            }
        }
        let Some(raw) = open.raw.as_mut() else {
            return;
        };
        let Some(writer) = raw.writer.as_mut() else {
            return;
        };
        let packet = PcapPacket {
            timestamp: at,
            orig_len: frame.len() as u32,
            data: Cow::Borrowed(frame),
        };
        match writer.write_packet(&packet) {
            Ok(written) => {
                raw.packets += 1;
                raw.len += written as u64;
            }
            Err(pcap_file::PcapError::IoError(source)) => {
                let err = RecorderError::Raw {
                    path: raw.path.clone(),
                    source,
                };
                raw.cut_back();
                if err.is_disk_full() {
                    self.disk_filled(&err);
                } else {
                    tracing::error!(error = %chain(&err), "cannot keep undecodable media; keeping what was written");
                }
            }
            // Refused before anything was written.
            Err(err) => {
                tracing::error!(file = %raw.name, error = %err, "cannot keep undecodable media")
            }
        }
    }

    /// Makes every open recording durable up to now, then measures the free space.
    /// Each file's header is brought up to date (a write into the page cache), then one
    /// `syncfs` makes every file on the recordings' file system durable at once: the same
    /// guarantee as an fsync per file, in one system call however many calls are open.
    fn sync(&mut self, now: Duration) {
        self.last_sync = now;
        let mut any = false;
        let mut full = None;
        for open in self.open.values_mut() {
            let Some(writer) = open.writer.as_mut() else {
                continue;
            };
            match writer.sync_header() {
                Ok(()) => any = true,
                Err(source) => {
                    let err = RecorderError::Write {
                        path: open.path.clone(),
                        source,
                    };
                    if err.is_disk_full() {
                        full.get_or_insert(err);
                    } else {
                        tracing::error!(file = %open.path.display(), error = %chain(&err), "cannot update a recording's header; keeping what was written");
                        open.writer = None;
                        repair_logged(&open.path);
                    }
                }
            }
        }
        if let Some(err) = full {
            // Every open recording is finalised now, and settled by the sync below.
            self.disk_filled(&err);
        }
        if any || !self.finishing.is_empty() {
            let synced = File::open(&self.config.root)
                .and_then(|root| rustix::fs::syncfs(&root).map_err(std::io::Error::from))
                .map_err(|source| RecorderError::Sync {
                    path: self.config.root.clone(),
                    source,
                });
            match synced {
                Ok(()) => self.settle(),
                Err(err) if err.is_disk_full() => self.disk_filled(&err),
                Err(err) => tracing::error!(error = %chain(&err), "cannot sync recordings to disk"),
            }
        }
        self.measure_space(now);
    }

    /// The disk (or the quota) is full: refuse new calls, and finalise every open recording
    /// with what reached the disk rather than let each fail write after write. Logs one error.
    ///
    /// A recording whose writing failed earlier for another reason writes nothing more; it
    /// stays open, to be marked `failed` when its call ends.
    fn disk_filled(&mut self, cause: &RecorderError) {
        let cut: Vec<(u64, Open)> = self
            .open
            .extract_if(|_, open| open.writer.is_some())
            .collect();
        let open = cut.len();
        if !self.space.full {
            self.space.full = true;
            self.space.full_since = self.now;
            tracing::error!(
                path = %self.config.root.display(),
                error = %chain(cause),
                open,
                "recordings disk full: new calls are not recorded and open recordings are finalised until space returns"
            );
        } else if open > 0 {
            tracing::error!(
                path = %self.config.root.display(),
                error = %chain(cause),
                open,
                "recordings disk full: open recordings finalised"
            );
        }
        // For the reason stored with refused calls; the state is left only at a sync.
        if let Ok(free) = FreeSpace::of(&self.config.root) {
            self.space.free = Some(free);
        }
        let now = self.now;
        for (call, mut open) in cut {
            let written = match open.writer.take().map(|w| finish_file(&open.path, w)) {
                Some(Ok(())) => true,
                Some(Err(unfinished)) => unfinished.repaired,
                None => false,
            };
            let mut summary = open.summary;
            summary.ended_at = Some(now);
            self.cut.insert(call, open.row);
            self.totals.cut_short += 1;
            tracing::warn!(file = %open.path.display(), "recording cut short by a full disk");
            self.finishing.push(Finishing {
                row: open.row,
                path: open.path,
                written,
                summary,
                raw: open.raw.map(|raw| (raw.name, raw.packets)),
                note: Some(CUT_SHORT),
                cut: true,
            });
        }
    }

    /// Measures the free space and enters or leaves the disk-full state by the policy.
    fn measure_space(&mut self, now: Duration) {
        let free = match FreeSpace::of(&self.config.root) {
            Ok(free) => free,
            Err(err) => {
                if !self.space.unmeasurable {
                    tracing::warn!(path = %self.config.root.display(), error = %err, "cannot measure the free space for recordings");
                }
                self.space.unmeasurable = true;
                return;
            }
        };
        self.space.unmeasurable = false;
        self.space.free = Some(free);
        let policy = self.policy_for(&free);
        let refuse = policy.refuse(self.space.full, &free);
        if refuse && !self.space.full {
            self.space.full = true;
            self.space.full_since = now;
            tracing::error!(
                path = %self.config.root.display(),
                available = free.available,
                low_water = policy.low_water,
                available_inodes = free.available_inodes,
                "recordings disk nearly full: new calls are not recorded until space returns"
            );
        } else if !refuse && self.space.full && now >= self.space.full_since + SYNC_INTERVAL {
            self.space.full = false;
            tracing::info!(
                path = %self.config.root.display(),
                available = free.available,
                "recording resumed: space returned on the recordings disk"
            );
        }
    }

    fn policy_for(&self, free: &FreeSpace) -> SpacePolicy {
        self.space
            .policy
            .unwrap_or_else(|| SpacePolicy::for_file_system(free.total))
    }

    /// A call ended: its file is finished now, and made durable, hashed and marked
    /// complete at the next sync point with every other call that ended meanwhile.
    fn complete(&mut self, summary: &CallSummary) {
        if let Some(row) = self.cut.remove(&summary.id) {
            self.add_call_statistics(row, summary);
            return;
        }
        let Some(mut open) = self.open.remove(&summary.id) else {
            return;
        };
        let mut note = None;
        let mut full = None;
        let written = match open.writer.take() {
            Some(writer) => match finish_file(&open.path, writer) {
                Ok(()) => true,
                Err(Unfinished { cause, repaired }) if cause.is_disk_full() => {
                    // The last buffered audio did not fit: the file holds the call up to it.
                    tracing::warn!(file = %open.path.display(), "recording cut short by a full disk");
                    note = Some(CUT_SHORT);
                    self.totals.cut_short += 1;
                    full = Some(cause);
                    repaired
                }
                Err(Unfinished { cause, .. }) => {
                    tracing::error!(file = %open.path.display(), error = %chain(&cause), "cannot finish recording");
                    false
                }
            },
            None => {
                tracing::error!(file = %open.path.display(), "cannot finish recording: writing had already failed");
                false
            }
        };
        let raw = open.raw.take().map(|raw| (raw.name, raw.packets));
        self.finishing.push(Finishing {
            row: open.row,
            path: open.path,
            written,
            summary: summary.clone(),
            raw,
            note,
            cut: false,
        });
        if let Some(cause) = full {
            self.disk_filled(&cause);
        }
    }

    /// A call whose recording was cut short has ended: its row gets the codec, the stream
    /// statistics, the holds and where it was transferred to, which only the end of the call
    /// knows.
    fn add_call_statistics(&self, row: i64, summary: &CallSummary) {
        let [caller, callee] = summary.streams;
        let updated = self.store.write(|tx| {
            tx.execute(
                "UPDATE recordings SET codec = ?2,
                     caller_packets = ?3, caller_lost = ?4, caller_jitter_ms = ?5,
                     callee_packets = ?6, callee_lost = ?7, callee_jitter_ms = ?8,
                     hold_count = ?9, hold_ms = ?10, referred_to = ?11
                 WHERE id = ?1",
                rusqlite::params![
                    row,
                    summary.codecs.iter().flatten().next(),
                    caller.packets as i64,
                    caller.lost as i64,
                    caller.jitter_ms,
                    callee.packets as i64,
                    callee.lost as i64,
                    callee.jitter_ms,
                    summary.holds,
                    summary.on_hold.as_millis() as i64,
                    summary.referred_to,
                ],
            )
        });
        if let Err(err) = updated {
            tracing::warn!(call_id = %summary.sip_call_id, error = %chain(&err), "cannot add the call's statistics to a recording cut short");
        }
    }

    /// After a sync: every finished file is on disk, so hash it and complete its row, all in
    /// one transaction.
    fn settle(&mut self) {
        if self.finishing.is_empty() {
            return;
        }
        let done: Vec<(Finishing, FileDigest)> = std::mem::take(&mut self.finishing)
            .into_iter()
            .map(|f| {
                let digest = hash_file(&f.path);
                (f, digest)
            })
            .collect();
        let result = self.store.write(|tx| {
            for (f, digest) in &done {
                let (size, sha256) = match digest {
                    Ok((size, sha)) => (Some(*size as i64), Some(sha.as_str())),
                    Err(_) => (None, None),
                };
                let status = if f.written && digest.is_ok() {
                    "complete"
                } else {
                    "failed"
                };
                let summary = &f.summary;
                let answered = summary.answered_at.unwrap_or(summary.invited_at);
                let ended = summary.ended_at.unwrap_or(answered);
                let end_reason = f.note.or(summary.end_reason.map(|r| r.as_str()));
                let raw_file = f.raw.as_ref().map(|(name, _)| name);
                let raw_packets = f.raw.as_ref().map(|(_, packets)| *packets as i64);
                if f.cut {
                    tx.prepare_cached(
                        "UPDATE recordings SET status = ?2, ended_at = ?3, duration_ms = ?4,
                             end_reason = ?5, size_bytes = ?6, sha256 = ?7,
                             raw_media_file = ?8, raw_media_packets = ?9
                         WHERE id = ?1",
                    )?
                    .execute(rusqlite::params![
                        f.row,
                        status,
                        layout::iso_utc(ended),
                        ended.saturating_sub(answered).as_millis() as i64,
                        end_reason,
                        size,
                        sha256,
                        raw_file,
                        raw_packets,
                    ])?;
                    continue;
                }
                let [caller, callee] = summary.streams;
                tx.prepare_cached(
                    "UPDATE recordings SET status = ?2, ended_at = ?3, duration_ms = ?4,
                         end_reason = ?5, codec = ?6, size_bytes = ?7, sha256 = ?8,
                         caller_packets = ?9, caller_lost = ?10, caller_jitter_ms = ?11,
                         callee_packets = ?12, callee_lost = ?13, callee_jitter_ms = ?14,
                         raw_media_file = ?15, raw_media_packets = ?16,
                         hold_count = ?17, hold_ms = ?18, referred_to = ?19
                     WHERE id = ?1",
                )?
                .execute(rusqlite::params![
                    f.row,
                    status,
                    layout::iso_utc(ended),
                    ended.saturating_sub(answered).as_millis() as i64,
                    end_reason,
                    summary.codecs.iter().flatten().next(),
                    size,
                    sha256,
                    caller.packets as i64,
                    caller.lost as i64,
                    caller.jitter_ms,
                    callee.packets as i64,
                    callee.lost as i64,
                    callee.jitter_ms,
                    raw_file,
                    raw_packets,
                    summary.holds,
                    summary.on_hold.as_millis() as i64,
                    summary.referred_to,
                ])?;
            }
            Ok::<_, rusqlite::Error>(())
        });
        if let Err(err) = result {
            tracing::error!(error = %chain(&err), "cannot complete the rows of finished recordings");
            return;
        }
        for (f, digest) in &done {
            if f.written && digest.is_ok() {
                self.totals.completed += 1;
                tracing::info!(file = %f.path.display(), "recording complete");
            } else {
                self.totals.failed += 1;
                if let Err(err) = digest {
                    tracing::error!(file = %f.path.display(), error = %chain(err), "recording failed");
                }
            }
        }
    }

    /// Rows still `recording` belong to files a crash or power cut left open.
    fn repair_unfinished(&mut self) -> Result<(), RecorderError> {
        let unfinished: Vec<(i64, String, String)> = self.store.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, directory, file_name FROM recordings WHERE status = 'recording'",
            )?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        for (row, directory, name) in unfinished {
            let path = self.config.root.join(&directory).join(&name);
            let outcome = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(wav::WavError::from)
                .and_then(|mut file| wav::repair(&mut file));
            let (status, size, sha) = match outcome.map(|_| hash_file(&path)) {
                Ok(Ok((size, sha))) => ("recovered", Some(size as i64), Some(sha)),
                Ok(Err(err)) => {
                    tracing::error!(file = %path.display(), error = %chain(&err), "cannot hash a repaired recording");
                    ("failed", None, None)
                }
                Err(err) => {
                    tracing::error!(file = %path.display(), error = %chain(&err), "cannot repair a recording left open");
                    ("failed", None, None)
                }
            };
            self.store.write(|tx| {
                tx.execute(
                    "UPDATE recordings SET status = ?2, size_bytes = ?3, sha256 = ?4,
                         end_reason = 'interrupted: recovered at start' WHERE id = ?1",
                    rusqlite::params![row, status, size, sha],
                )
            })?;
            tracing::warn!(file = %path.display(), status, "recording left open by a crash");
            self.totals.recovered_at_start += 1;
        }
        Ok(())
    }
}

/// What a recording's row starts with, beside its call.
struct RowStart<'a> {
    answered: Duration,
    directory: &'a str,
    name: &'a str,
    reason: &'a str,
    agent: &'a AgentColumns,
}

/// The `recordings` columns the agent directory fills: all empty for a call no agent's
/// device took part in. Headers named in `[recording.headers]` (`agent_name`, `call_type`)
/// are applied after these and win, as the phone system knows its own calls best.
#[derive(Debug, Default)]
struct AgentColumns {
    agent_ref: Option<i64>,
    agent_id: Option<String>,
    agent_name: Option<String>,
    agent_extension: Option<String>,
    call_type: Option<&'static str>,
    customer_number: Option<String>,
}

impl AgentColumns {
    fn of(attribution: Option<&Attribution<'_>>) -> AgentColumns {
        let Some(a) = attribution else {
            return AgentColumns::default();
        };
        let agent = a.matched.agent;
        AgentColumns {
            agent_ref: Some(agent.id),
            agent_id: Some(agent.agent_id.clone()),
            agent_name: Some(agent.name.clone()),
            agent_extension: a.matched.extension().map(str::to_owned),
            call_type: Some(a.call_type.as_str()),
            customer_number: a.customer_number.clone(),
        }
    }
}

/// Whether to record a call, and why; `whose` names the percentage in the reason (the
/// default's, or an agent's). The choice hangs on the Call-ID alone, so the same call always
/// gets the same answer (replaying a capture records the same calls), and calls fall evenly
/// into the 100 buckets.
fn decide(sip_call_id: &str, percentage: u8, whose: &str) -> (bool, String) {
    match percentage {
        100 => (true, format!("{whose} 100: every call")),
        0 => (false, format!("{whose} 0: no call")),
        _ => {
            let digest = Sha256::digest(sip_call_id.as_bytes());
            let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
            if bucket < u16::from(percentage) {
                (
                    true,
                    format!("{whose} {percentage}: selected (bucket {bucket})"),
                )
            } else {
                (
                    false,
                    format!("{whose} {percentage}: not selected (bucket {bucket})"),
                )
            }
        }
    }
}

/// The first value of an INVITE header, matched without regard to case.
fn invite_header<'a>(summary: &'a CallSummary, name: &str) -> Option<&'a str> {
    summary
        .invite_headers
        .iter()
        .find(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A recording's write buffer ([`WavWriter::with_buffer`]): about one [`SYNC_INTERVAL`] of
/// its audio, so that the audio between two syncs reaches the file in one write. Bounded both
/// ways: 2,000 open G.711 calls hold 80 MB of buffers.
fn write_buffer(spec: WavSpec) -> usize {
    let bytes_per_second = u64::from(spec.sample_rate)
        * u64::from(spec.channels)
        * u64::from(spec.format.bytes_per_sample());
    // A quarter more, as audio is handed out in bursts that do not line up with syncs.
    let per_interval = bytes_per_second * SYNC_INTERVAL.as_millis() as u64 * 5 / 4000;
    usize::try_from(per_interval)
        .unwrap_or(usize::MAX)
        .clamp(8 * 1024, 256 * 1024)
}

/// A file's size and hex SHA-256, or why they could not be had.
type FileDigest = Result<(u64, String), RecorderError>;

/// Size and hex SHA-256 of a file.
fn hash_file(path: &Path) -> FileDigest {
    let hash_err = |source| RecorderError::Hash {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(hash_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(hash_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

/// A new recording's file, its header durable.
struct Created {
    /// `Syyyymmdd`.
    directory: String,
    /// `Ryyyymmddhhmmssssss.wav`.
    name: String,
    path: PathBuf,
    writer: WavWriter<File>,
}

/// Why a recording's file could not be finished normally, and whether it was repaired (a
/// failed repair is logged).
struct Unfinished {
    cause: RecorderError,
    repaired: bool,
}

/// Syncs a recording's header a last time and closes the file. If that fails (the writer
/// poisoned by a failed write, or the last buffered audio not fitting on the disk) the file
/// is closed as it is and repaired: its header is made to count exactly the whole frames
/// that reached the disk, whatever the failed writes left behind.
fn finish_file(path: &Path, writer: WavWriter<File>) -> Result<(), Unfinished> {
    let write_err = |source| RecorderError::Write {
        path: path.to_path_buf(),
        source,
    };
    let cause = match writer.finish() {
        Ok(_) => return Ok(()),
        Err(source) => write_err(source),
    };
    // The writer is gone and the file closed: whatever reached the disk is final.
    let repaired = match repair_file(path) {
        Ok(_) => true,
        Err(err) => {
            tracing::error!(file = %path.display(), error = %chain(&err), "cannot repair a recording whose writing failed");
            false
        }
    };
    Err(Unfinished { cause, repaired })
}

/// Makes a recording whose writing failed consistent: see [`wav::repair`].
fn repair_file(path: &Path) -> Result<wav::RepairOutcome, RecorderError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(wav::WavError::from)
        .and_then(|mut file| wav::repair(&mut file))
        .map_err(|source| RecorderError::Repair {
            path: path.to_path_buf(),
            source,
        })
}

/// [`repair_file`], for a writer just dropped after a failed write; failures are logged.
fn repair_logged(path: &Path) {
    match repair_file(path) {
        Ok(outcome) => {
            tracing::info!(file = %path.display(), frames = outcome.frames, truncated_bytes = outcome.truncated_bytes, "recording repaired after a failed write")
        }
        Err(err) => {
            tracing::error!(file = %path.display(), error = %chain(&err), "cannot repair a recording whose writing failed")
        }
    }
}

/// Creates `Ryyyymmddhhmmssssss.rtp.pcap` beside the recording at `wav`, its header written.
/// On error no file is left behind.
fn create_raw(wav: &Path, link_type: u32) -> Result<RawMedia, RecorderError> {
    let name = wav
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .replace(".wav", ".rtp.pcap");
    let path = wav.with_file_name(&name);
    let raw_err = |source| RecorderError::Raw {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(raw_err)?;
    let header = PcapHeader {
        datalink: DataLink::from(link_type),
        ..PcapHeader::default()
    };
    match PcapWriter::with_header(file, header) {
        Ok(writer) => Ok(RawMedia {
            name,
            path,
            writer: Some(writer),
            packets: 0,
            len: PCAP_HEADER_LEN,
        }),
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            Err(raw_err(match err {
                pcap_file::PcapError::IoError(err) => err,
                other => std::io::Error::other(other),
            }))
        }
    }
}
