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
//! Every call here blocks (files, SQLite); the daemon runs the recorder on a thread of its own.

mod layout;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use sha2::{Digest, Sha256};
use tapline_calls::{CallSummary, Event, Tracker};
use tapline_config::{RecordingConfig, RecordingFormat};
use tapline_media::g711;
use tapline_media::wav::{self, SampleFormat, WavSpec, WavWriter};
use tapline_runtime::supervisor::error_chain as chain;
use tapline_store::Store;
use tapline_store::rusqlite;

pub use layout::{day_directory, file_name};

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
    #[error("cannot read back recording {} to hash it", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the recordings database failed")]
    Database(#[from] rusqlite::Error),
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
    pub totals: Totals,
}

/// A recording whose call has ended, waiting for the next sync to be marked complete.
struct Finishing {
    row: i64,
    path: PathBuf,
    written: bool,
    summary: CallSummary,
    /// The undecodable media kept beside it: file name and packets.
    raw: Option<(String, u64)>,
}

struct Open {
    row: i64,
    path: PathBuf,
    writer: Option<WavWriter<BufWriter<File>>>,
    /// Reused for G.711 output.
    encoded: Vec<u8>,
    /// Media that could not be decoded, as captured, beside the recording.
    raw: Option<RawMedia>,
}

struct RawMedia {
    name: String,
    /// Unbuffered: each packet is one write, so what a sync makes durable is every packet
    /// seen (undecodable media is at most some 50 packets a second per call).
    writer: PcapWriter<File>,
    packets: u64,
}

impl Recorder {
    /// A recorder writing under `config.root`; first repairs what a crash left open.
    pub fn new(store: Arc<Store>, config: RecorderConfig) -> Result<Recorder, RecorderError> {
        let mut recorder = Recorder {
            tracker: Tracker::new(),
            config,
            store,
            open: HashMap::new(),
            last_sync: Duration::ZERO,
            sequences: layout::Sequences::default(),
            finishing: Vec::new(),
            totals: Totals::default(),
        };
        recorder.repair_unfinished()?;
        Ok(recorder)
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// One captured frame.
    pub fn handle_frame(&mut self, now: Duration, link_type: u32, frame: &[u8]) {
        self.tracker.handle_frame(now, link_type, frame);
        self.drain();
        if now >= self.last_sync + SYNC_INTERVAL {
            self.sync(now);
        }
    }

    /// Time passes without frames (call at least once a second).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.tracker.handle_timeout(now);
        self.drain();
        if now >= self.last_sync + SYNC_INTERVAL {
            self.sync(now);
        }
    }

    /// The source has ended (file done, or shutdown): every open recording is finalised.
    pub fn finish(&mut self, now: Duration) {
        self.tracker.finish(now);
        self.drain();
        self.sync(now);
    }

    /// Recordings being written now.
    pub fn open_recordings(&self) -> usize {
        self.open.len()
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
                Event::Audio { call, samples } => self.write(call, &samples),
                Event::RawMedia {
                    call,
                    at,
                    link_type,
                    frame,
                } => self.keep_raw(call, at, link_type, &frame),
                Event::Ended(summary) => self.complete(&summary),
                Event::Unrecordable { summary, reason } => {
                    self.totals.unrecordable += 1;
                    tracing::warn!(call_id = %summary.sip_call_id, reason, "call cannot be recorded");
                }
            }
        }
    }

    fn start(&mut self, summary: &CallSummary) -> Result<(), RecorderError> {
        let answered = summary.answered_at.unwrap_or(summary.invited_at);
        let (record, reason) = decide(&summary.sip_call_id, self.config.recording.percentage);
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
        let directory = day_directory(answered);
        let dir_path = self.config.root.join(&directory);
        let create_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecorderError::Create { path, source }
        };
        std::fs::create_dir_all(&dir_path).map_err(create_err(&dir_path))?;
        let (name, file) = self
            .sequences
            .create_unique(&dir_path, answered)
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
        let mut writer =
            WavWriter::new(BufWriter::new(file), spec).map_err(|source| RecorderError::Write {
                path: path.clone(),
                source,
            })?;
        writer
            .sync_header()
            .map_err(|source| RecorderError::Write {
                path: path.clone(),
                source,
            })?;
        layout::sync_directory(&dir_path).map_err(create_err(&dir_path))?;
        let metadata: Vec<Option<&str>> = self
            .config
            .recording
            .headers
            .iter()
            .map(|(_, header)| invite_header(summary, header))
            .collect();
        let row = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO recordings (file_name, directory, status, source, answered_at,
                     transaction_id, sip_call_id, parent_transaction_id, caller_uri, caller_number,
                     caller_name, callee_uri, called_number, sample_rate, channels, format,
                     record_reason)
                 VALUES (?1, ?2, 'recording', ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 2, ?13, ?14)",
                rusqlite::params![
                    name,
                    directory,
                    self.config.source,
                    layout::iso_utc(answered),
                    summary.sip_call_id,
                    summary.replaces,
                    summary.caller.uri,
                    summary.caller.user,
                    summary.caller.display_name,
                    summary.callee.uri,
                    summary.dialled.as_ref().or(summary.callee.user.as_ref()),
                    summary.sample_rate,
                    self.config.recording.format.as_str(),
                    reason,
                ],
            )?;
            let row = tx.last_insert_rowid();
            // The metadata columns are named as the [recording.headers] fields, a fixed list
            // (HeaderMap::FIELDS), so the column name in this statement is never input.
            for ((field, _), value) in self.config.recording.headers.iter().zip(&metadata) {
                if let Some(value) = value {
                    tx.execute(&format!("UPDATE recordings SET {field} = ?2 WHERE id = ?1"), (row, value))?;
                }
            }
            tx.execute(
                "INSERT INTO call_decisions (sip_call_id, answered_at, recorded, reason, file_name)
                 VALUES (?1, ?2, 1, ?3, ?4)",
                (&summary.sip_call_id, layout::iso_utc(answered), &reason, &name),
            )?;
            Ok::<_, rusqlite::Error>(row)
        });
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                // No row, no recording: remove the empty file rather than leave an orphan.
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
                writer: Some(writer),
                encoded: Vec::new(),
                raw: None,
            },
        );
        Ok(())
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
        if let Err(err) = written {
            tracing::error!(file = %open.path.display(), error = %chain(&err), "cannot write recording; keeping what was written");
            // Keep what is on disk consistent, then stop writing this call.
            let _ = writer.sync_header();
            open.writer = None;
        }
    }

    /// Keeps a packet this call's recording cannot hold (its codec is not decoded) in
    /// `Ryyyymmddhhmmssssss.rtp.pcap` beside the WAV.
    fn keep_raw(&mut self, call: u64, at: Duration, link_type: u32, frame: &[u8]) {
        let Some(open) = self.open.get_mut(&call) else {
            return;
        };
        if open.raw.is_none() {
            let name = open
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .replace(".wav", ".rtp.pcap");
            let path = open.path.with_file_name(&name);
            let header = PcapHeader {
                datalink: DataLink::from(link_type),
                ..PcapHeader::default()
            };
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(pcap_file::PcapError::IoError)
                .and_then(|file| PcapWriter::with_header(file, header));
            match created {
                Ok(writer) => {
                    open.raw = Some(RawMedia {
                        name,
                        writer,
                        packets: 0,
                    })
                }
                Err(err) => {
                    tracing::error!(file = %path.display(), error = %err, "cannot keep undecodable media");
                    return;
                }
            }
        }
        let Some(raw) = open.raw.as_mut() else {
            return;
        };
        let packet = PcapPacket {
            timestamp: at,
            orig_len: frame.len() as u32,
            data: Cow::Borrowed(frame),
        };
        match raw.writer.write_packet(&packet) {
            Ok(_) => raw.packets += 1,
            Err(err) => {
                tracing::error!(file = %raw.name, error = %err, "cannot keep undecodable media")
            }
        }
    }

    /// Makes every open recording durable up to now.
    /// Each file's header is brought up to date (a write into the page cache), then one
    /// `syncfs` makes every file on the recordings' file system durable at once: the same
    /// guarantee as an fsync per file, in one system call however many calls are open.
    fn sync(&mut self, now: Duration) {
        self.last_sync = now;
        let mut any = false;
        for open in self.open.values_mut() {
            let Some(writer) = open.writer.as_mut() else {
                continue;
            };
            match writer.sync_header() {
                Ok(()) => any = true,
                Err(err) => {
                    tracing::error!(file = %open.path.display(), error = %chain(&err), "cannot update a recording's header")
                }
            }
        }
        if any || !self.finishing.is_empty() {
            let synced = File::open(&self.config.root)
                .and_then(|root| rustix::fs::syncfs(&root).map_err(std::io::Error::from));
            match synced {
                Ok(()) => self.settle(),
                Err(err) => {
                    tracing::error!(path = %self.config.root.display(), error = %err, "cannot sync recordings to disk")
                }
            }
        }
    }

    /// A call ended: its file is finished now, and made durable, hashed and marked
    /// complete at the next sync point with every other call that ended meanwhile.
    fn complete(&mut self, summary: &CallSummary) {
        let Some(mut open) = self.open.remove(&summary.id) else {
            return;
        };
        let finished = match open.writer.take() {
            Some(writer) => writer
                .finish()
                .map_err(|source| RecorderError::Write {
                    path: open.path.clone(),
                    source,
                })
                .and_then(|inner| {
                    inner
                        .into_inner()
                        .map(drop)
                        .map_err(|e| RecorderError::Create {
                            path: open.path.clone(),
                            source: e.into_error(),
                        })
                }),
            None => Err(RecorderError::Create {
                path: open.path.clone(),
                source: std::io::Error::other("writing had already failed"),
            }),
        };
        if let Err(err) = &finished {
            tracing::error!(file = %open.path.display(), error = %chain(err), "cannot finish recording");
        }
        let raw = open.raw.take().map(|raw| (raw.name, raw.packets));
        self.finishing.push(Finishing {
            row: open.row,
            path: open.path,
            written: finished.is_ok(),
            summary: summary.clone(),
            raw,
        });
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
                let status = if f.written && digest.is_ok() { "complete" } else { "failed" };
                let summary = &f.summary;
                let answered = summary.answered_at.unwrap_or(summary.invited_at);
                let ended = summary.ended_at.unwrap_or(answered);
                let [caller, callee] = summary.streams;
                tx.execute(
                    "UPDATE recordings SET status = ?2, ended_at = ?3, duration_ms = ?4, end_reason = ?5,
                         codec = ?6, size_bytes = ?7, sha256 = ?8,
                         caller_packets = ?9, caller_lost = ?10, caller_jitter_ms = ?11,
                         callee_packets = ?12, callee_lost = ?13, callee_jitter_ms = ?14,
                         raw_media_file = ?15, raw_media_packets = ?16
                     WHERE id = ?1",
                    rusqlite::params![
                        f.row,
                        status,
                        layout::iso_utc(ended),
                        ended.saturating_sub(answered).as_millis() as i64,
                        summary.end_reason.map(|r| r.as_str()),
                        summary.codecs.iter().flatten().next(),
                        size,
                        sha256,
                        caller.packets as i64,
                        caller.lost as i64,
                        caller.jitter_ms,
                        callee.packets as i64,
                        callee.lost as i64,
                        callee.jitter_ms,
                        f.raw.as_ref().map(|(name, _)| name),
                        f.raw.as_ref().map(|(_, packets)| *packets as i64),
                    ],
                )?;
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

/// Whether to record a call, and why. The choice hangs on the Call-ID alone, so the same
/// call always gets the same answer (replaying a capture records the same calls), and calls
/// fall evenly into the 100 buckets.
fn decide(sip_call_id: &str, percentage: u8) -> (bool, String) {
    match percentage {
        100 => (true, "recording percentage 100: every call".to_owned()),
        0 => (false, "recording percentage 0: no call".to_owned()),
        _ => {
            let digest = Sha256::digest(sip_call_id.as_bytes());
            let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
            if bucket < u16::from(percentage) {
                (
                    true,
                    format!("recording percentage {percentage}: selected (bucket {bucket})"),
                )
            } else {
                (
                    false,
                    format!("recording percentage {percentage}: not selected (bucket {bucket})"),
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
