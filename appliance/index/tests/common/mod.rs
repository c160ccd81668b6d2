//! The rig the index tests share: a data directory, its database, and calls recorded into
//! both as the recorder leaves them (a WAV file in `Syyyymmdd/` and its row).

// Each test binary uses only part of this rig.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};
use tapline_index::{DayIndex, generate_day};
use tapline_media::wav::{SampleFormat, WavSpec, WavWriter};
use tapline_store::{Store, rusqlite};

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    /// The SFTP root, `<data_dir>/recordings`.
    pub root: PathBuf,
    pub tz: TimeZone,
    sequences: Mutex<HashMap<String, u32>>,
}

/// A call to record; [`Call::at`] gives a plain complete one.
#[derive(Debug, Clone)]
pub struct Call {
    pub answered: Timestamp,
    pub seconds: i64,
    pub status: &'static str,
    pub call_type: Option<&'static str>,
    pub agent_name: Option<String>,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    pub queue_name: Option<String>,
    pub external_variable_1: Option<String>,
    /// Frames of audio in the file (8 kHz stereo).
    pub frames: usize,
    pub raw_media: bool,
    pub legal_hold: bool,
}

impl Call {
    /// A complete 90-second inbound call answered at `utc` (RFC 3339).
    pub fn at(utc: &str) -> Call {
        Call {
            answered: utc.parse().expect("RFC 3339 time"),
            seconds: 90,
            status: "complete",
            call_type: Some("Inbound"),
            agent_name: Some("Ada Agent".to_owned()),
            caller_number: Some("+14155550100".to_owned()),
            called_number: Some("8005550199".to_owned()),
            queue_name: None,
            external_variable_1: None,
            frames: 800,
            raw_media: false,
            legal_hold: false,
        }
    }

    pub fn agent(mut self, name: &str) -> Call {
        self.agent_name = Some(name.to_owned());
        self
    }

    pub fn status(mut self, status: &'static str) -> Call {
        self.status = status;
        self
    }

    pub fn held(mut self) -> Call {
        self.legal_hold = true;
        self
    }

    pub fn with_raw_media(mut self) -> Call {
        self.raw_media = true;
        self
    }
}

/// Where a recorded call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub file_name: String,
    pub directory: String,
    pub path: PathBuf,
    pub raw_media: Option<PathBuf>,
}

impl Rig {
    pub fn new(zone: &str) -> Rig {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(Store::open_in(dir.path()).expect("database"));
        let root = tapline_index::recordings_root(dir.path());
        std::fs::create_dir_all(&root).expect("recordings directory");
        Rig {
            dir,
            store,
            root,
            tz: TimeZone::get(zone).expect("zone in the system database"),
            sequences: Mutex::new(HashMap::new()),
        }
    }

    /// Records `call` as the recorder does: file first, then its row.
    pub fn record(&self, call: &Call) -> Recorded {
        let utc = TimeZone::UTC.to_datetime(call.answered);
        let directory = utc.strftime("S%Y%m%d").to_string();
        let second = utc.strftime("R%Y%m%d%H%M%S").to_string();
        let sequence = {
            let mut sequences = self.sequences.lock().expect("not poisoned");
            let next = sequences.entry(second.clone()).or_insert(0);
            *next += 1;
            *next - 1
        };
        let file_name = format!("{second}{sequence:04}.wav");
        let dir = self.root.join(&directory);
        std::fs::create_dir_all(&dir).expect("day directory");
        let path = dir.join(&file_name);
        write_wav(&path, call.frames);
        let bytes = std::fs::read(&path).expect("just written");
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let raw_name = call
            .raw_media
            .then(|| file_name.replace(".wav", ".rtp.pcap"));
        if let Some(raw) = &raw_name {
            std::fs::write(dir.join(raw), b"raw media, as captured").expect("raw media");
        }
        let ended = call
            .answered
            .checked_add(jiff::SignedDuration::from_secs(call.seconds))
            .expect("in range");
        let finished = call.status != "recording";
        self.store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO recordings (file_name, directory, status, source, call_type,
                         answered_at, ended_at, duration_ms, end_reason, transaction_id,
                         sip_call_id, caller_number, called_number, agent_name, queue_name,
                         external_variable_1, codec, sample_rate, channels, format, size_bytes,
                         sha256, caller_packets, caller_lost, caller_jitter_ms, callee_packets,
                         callee_lost, callee_jitter_ms, raw_media_file, legal_hold, hold_count,
                         hold_ms)
                     VALUES (?1, ?2, ?3, 'span', ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13,
                             ?14, 'PCMU', 8000, 2, 'pcm16', ?15, ?16, 4500, 3, 1.25, 4498, 0,
                             0.5, ?17, ?18, 1, 65000)",
                    rusqlite::params![
                        file_name,
                        directory,
                        call.status,
                        call.call_type,
                        iso(call.answered),
                        finished.then(|| iso(ended)),
                        finished.then_some(call.seconds * 1000),
                        finished.then_some("bye"),
                        format!("{file_name}@example.com"),
                        call.caller_number,
                        call.called_number,
                        call.agent_name,
                        call.queue_name,
                        call.external_variable_1,
                        finished.then_some(bytes.len() as i64),
                        finished.then_some(sha256),
                        raw_name,
                        i64::from(call.legal_hold),
                    ],
                )
            })
            .expect("row");
        Recorded {
            raw_media: raw_name.map(|raw| dir.join(raw)),
            file_name,
            directory,
            path,
        }
    }

    pub fn generate(&self, day: Date) -> DayIndex {
        generate_day(&self.store, &self.root, &self.tz, day).expect("index written")
    }

    pub fn brief_path(&self, day: Date) -> PathBuf {
        self.root
            .join("Index")
            .join(tapline_index::day::brief_file_name(day))
    }

    pub fn detailed_path(&self, day: Date) -> PathBuf {
        self.root
            .join("Index")
            .join(tapline_index::day::detailed_file_name(day))
    }

    /// The brief index of `day`, as lines of cells (a naive split: the calls of these tests
    /// have no commas except where a test says so).
    pub fn brief_rows(&self, day: Date) -> Vec<Vec<String>> {
        rows(&self.brief_path(day))
    }

    pub fn detailed_rows(&self, day: Date) -> Vec<Vec<String>> {
        rows(&self.detailed_path(day))
    }

    pub fn set_status(&self, file_name: &str, status: &str) {
        self.store
            .write(|tx| {
                tx.execute(
                    "UPDATE recordings SET status = ?2 WHERE file_name = ?1",
                    (file_name, status),
                )
            })
            .expect("update");
    }

    pub fn row_count(&self) -> i64 {
        self.store
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM recordings", [], |row| row.get(0)))
            .expect("count")
    }
}

fn write_wav(path: &Path, frames: usize) {
    let file = BufWriter::new(File::create(path).expect("create recording"));
    let spec = WavSpec {
        format: SampleFormat::Pcm16,
        channels: 2,
        sample_rate: 8000,
    };
    let mut writer = WavWriter::new(file, spec).expect("WAV header");
    let samples: Vec<i16> = (0..frames * 2).map(|i| (i % 64) as i16 * 100).collect();
    writer.write_frames_i16(&samples).expect("audio");
    writer.finish().expect("finished");
}

/// Times as the recorder stores them.
pub fn iso(at: Timestamp) -> String {
    TimeZone::UTC
        .to_datetime(at)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("index file");
    assert!(text.ends_with("\r\n"), "{} ends with CRLF", path.display());
    text.split_terminator("\r\n")
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

/// The column of `header` in an index's first row.
pub fn column(rows: &[Vec<String>], header: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header}"))
}

/// A program a test needs; fails the test, naming the Debian package, when it is missing.
pub fn peer(program: &str, debian_package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "test peer `{program}` is not installed: `apt-get install {debian_package}` \
         (`cargo xtask test` installs every peer)"
    );
    Command::new(program)
}
