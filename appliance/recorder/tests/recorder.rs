//! The recorder on made-up calls: what lands on disk and in the database.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tapline_calls::synth::{self, Call, Endpoint};
use tapline_config::{Config, RecordingConfig};
use tapline_media::wav::{self, SampleFormat};
use tapline_recorder::{CUT_SHORT, Recorder, RecorderConfig, SpacePolicy};
use tapline_store::{Store, rusqlite};

const T0: Duration = Duration::from_secs(1_795_305_600);

fn recording_config(extra: &str) -> RecordingConfig {
    let text = format!("[tenant]\nname = \"t\"\n{extra}");
    Config::parse(&text, "test", std::path::Path::new("/"))
        .unwrap()
        .recording
}

/// What the recorder was fed, to feed another the same.
#[derive(Clone)]
enum Input {
    Frame(Duration, Vec<u8>),
    Timeout(Duration),
}

struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<Store>,
    recorder: Recorder,
    fed: Vec<Input>,
}

impl Rig {
    fn new(extra_config: &str) -> Rig {
        Rig::build(extra_config, None, None)
    }

    /// Recordings under `root` (the database stays in a temporary directory), judged by
    /// `policy`.
    fn on(root: PathBuf, policy: SpacePolicy) -> Rig {
        Rig::build("", Some(root), Some(policy))
    }

    fn build(extra_config: &str, root: Option<PathBuf>, policy: Option<SpacePolicy>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let root = root.unwrap_or_else(|| dir.path().join("recordings"));
        let config = RecorderConfig {
            root: root.clone(),
            source: "pcap",
            recording: recording_config(extra_config),
        };
        let recorder = match policy {
            Some(policy) => Recorder::with_space_policy(store.clone(), config, policy),
            None => Recorder::new(store.clone(), config),
        }
        .unwrap();
        Rig {
            _dir: dir,
            root,
            store,
            recorder,
            fed: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) {
        match &input {
            Input::Frame(at, frame) => self.recorder.handle_frame(*at, 1, frame),
            Input::Timeout(at) => self.recorder.handle_timeout(*at),
        }
        self.fed.push(input);
    }

    fn frame(&mut self, at: Duration, frame: Vec<u8>) {
        self.feed(Input::Frame(at, frame));
    }

    /// INVITE and 200 OK: the call is answered at `at`.
    fn answer(&mut self, call: &Call, at: Duration) {
        self.frame(at, sip(call.caller, call.callee, call.invite()));
        self.frame(at, sip(call.callee, call.caller, call.ok()));
    }

    /// The caller's `i`th 20 ms packet of tone, at `answered + 20 ms × (i + 1)`.
    fn media(&mut self, call: &Call, answered: Duration, i: u16) {
        let at = answered + Duration::from_millis(20 + u64::from(i) * 20);
        self.frame(at, media(call, i));
    }

    fn bye(&mut self, call: &Call, at: Duration) {
        self.frame(at, sip(call.caller, call.callee, call.bye_from_caller()));
    }

    /// A call with 1 s of tone from the caller, answered at `start`.
    fn call(&mut self, call: &Call, start: Duration) {
        self.answer(call, start);
        for i in 0..50u16 {
            self.media(call, start, i);
        }
        self.bye(call, start + Duration::from_millis(1100));
        // A finished recording is marked complete at the next sync, within a second.
        self.feed(Input::Timeout(start + Duration::from_millis(2200)));
    }

    fn query<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        self.store
            .read(|c| {
                let mut statement = c.prepare(sql)?;
                let rows = statement.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<Vec<T>>>()
            })
            .unwrap()
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = walk(&self.root);
        files.sort();
        files
    }

    /// The recording of a call, by its row.
    fn file_of(&self, call: &Call) -> PathBuf {
        let sql = format!(
            "SELECT directory || '/' || file_name FROM recordings WHERE sip_call_id = '{}'",
            call.call_id
        );
        self.root.join(&self.query::<String>(&sql)[0])
    }

    /// One column of a call's recording row.
    fn column<T: rusqlite::types::FromSql>(&self, call: &Call, column: &str) -> T {
        let sql = format!(
            "SELECT {column} FROM recordings WHERE sip_call_id = '{}'",
            call.call_id
        );
        self.query::<T>(&sql).pop().unwrap()
    }

    /// The recording decision for a call: recorded, and why.
    fn decision(&self, call: &Call) -> (i64, String) {
        let sql = format!(
            "SELECT recorded, reason FROM call_decisions WHERE sip_call_id = '{}'",
            call.call_id
        );
        let recorded = self.query::<i64>(&sql.replace(", reason", ""));
        let reason = self.query::<String>(&sql.replace("recorded, ", ""));
        assert_eq!(recorded.len(), 1, "one decision for {}", call.call_id);
        (recorded[0], reason[0].clone())
    }
}

fn sip(from: Endpoint, to: Endpoint, message: Vec<u8>) -> Vec<u8> {
    synth::udp_frame(from.sip, to.sip, &message)
}

/// The caller's `i`th 20 ms RTP packet of tone.
fn media(call: &Call, i: u16) -> Vec<u8> {
    let tone = synth::ulaw_tone(440.0, u64::from(i) * 160, 160);
    let rtp = synth::rtp(0, i, u32::from(i) * 160, 7, &tone);
    synth::udp_frame(call.caller.rtp, call.callee.rtp, &rtp)
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

/// Call `n`, with media ports of its own so that calls can overlap.
fn call(n: usize) -> Call {
    let port = |base: usize| u16::try_from(base + 2 * n).unwrap();
    let phone = Endpoint {
        sip: "198.51.100.20:5060".parse().unwrap(),
        rtp: format!("198.51.100.20:{}", port(16384)).parse().unwrap(),
        user: "1001",
    };
    let pbx = Endpoint {
        sip: "198.51.100.10:5060".parse().unwrap(),
        rtp: format!("198.51.100.10:{}", port(10000)).parse().unwrap(),
        user: "15550100",
    };
    Call::new(&format!("call-{n}@198.51.100.20"), phone, pbx)
}

#[test]
fn invite_headers_fill_the_metadata_the_config_names() {
    let mut rig = Rig::new("[recording.headers]\nqueue_name = \"X-Genesys-Queue\"\n");
    let mut c = call(1);
    c.invite_headers = vec![
        "X-Genesys-Queue: Premium Support".to_owned(),
        "x-case-id: 4711".to_owned(),
        "X-Queue-Name: ignored, the config names another header".to_owned(),
    ];
    rig.call(&c, T0);
    assert_eq!(
        rig.query::<String>("SELECT queue_name FROM recordings"),
        ["Premium Support"]
    );
    assert_eq!(
        rig.query::<String>("SELECT case_id FROM recordings"),
        ["4711"],
        "names match without regard to case"
    );
    assert_eq!(
        rig.query::<Option<String>>("SELECT account FROM recordings"),
        [None]
    );
    assert_eq!(
        rig.query::<String>("SELECT record_reason FROM recordings"),
        ["recording percentage 100: every call"]
    );
    assert_eq!(
        rig.query::<String>("SELECT status FROM recordings"),
        ["complete"]
    );
}

#[test]
fn hold_time_is_in_the_row() {
    let mut rig = Rig::new("");
    let c = call(1);
    rig.answer(&c, T0);
    for i in 0..10u16 {
        rig.media(&c, T0, i);
    }
    let at = |ms: u64| T0 + Duration::from_millis(ms);
    rig.frame(at(300), sip(c.caller, c.callee, c.hold()));
    rig.frame(at(310), sip(c.callee, c.caller, c.hold_accepted()));
    rig.frame(at(1050), sip(c.caller, c.callee, c.resume()));
    rig.frame(at(1060), sip(c.callee, c.caller, c.resume_accepted()));
    rig.bye(&c, at(1500));
    rig.feed(Input::Timeout(at(2600)));
    assert_eq!(rig.column::<i64>(&c, "hold_count"), 1);
    assert_eq!(rig.column::<i64>(&c, "hold_ms"), 750);
    assert_eq!(rig.column::<i64>(&c, "duration_ms"), 1500);
}

#[test]
fn a_call_with_encrypted_media_is_listed_with_its_reason() {
    let mut rig = Rig::new("");
    let c = call(1);
    // The same INVITE with a secure profile (RTP/SAVP), its Content-Length one longer.
    let invite = String::from_utf8(c.invite()).unwrap();
    let body = invite.split("\r\n\r\n").nth(1).unwrap().len();
    let invite = invite.replace("RTP/AVP", "RTP/SAVP").replace(
        &format!("Content-Length: {body}"),
        &format!("Content-Length: {}", body + 1),
    );
    rig.frame(T0, sip(c.caller, c.callee, invite.into_bytes()));
    rig.frame(T0, sip(c.callee, c.caller, c.ok()));
    for i in 0..10u16 {
        rig.media(&c, T0, i);
    }
    rig.bye(&c, T0 + Duration::from_millis(400));
    rig.feed(Input::Timeout(T0 + Duration::from_millis(1500)));
    assert_eq!(rig.query::<i64>("SELECT count(*) FROM recordings"), [0]);
    assert_eq!(
        rig.query::<String>("SELECT reason FROM call_decisions WHERE recorded = 0"),
        ["media is encrypted (SRTP)"]
    );
    assert!(rig.files().is_empty());
}

#[test]
fn an_attended_transfer_links_the_new_leg_to_the_one_it_replaces() {
    let mut rig = Rig::new("");
    // The customer's call to the agent, the agent's consultation call, then the REFER with
    // Replaces and the customer's new INVITE that takes over the consultation's dialog.
    let customer = call(1);
    let consultation = call(2);
    let mut transferred = call(3);
    transferred.invite_headers = vec![format!(
        "Replaces: {};to-tag={};from-tag={}",
        consultation.call_id, consultation.callee_tag, consultation.caller_tag
    )];
    let at = |ms: u64| T0 + Duration::from_millis(ms);
    rig.answer(&customer, at(0));
    rig.answer(&consultation, at(200));
    rig.frame(
        at(400),
        sip(
            customer.callee,
            customer.caller,
            customer.refer("sip:2002@198.51.100.30", Some(&consultation)),
        ),
    );
    rig.answer(&transferred, at(600));
    rig.bye(&customer, at(700));
    rig.bye(&consultation, at(800));
    rig.bye(&transferred, at(1500));
    rig.feed(Input::Timeout(at(2600)));
    assert_eq!(
        rig.column::<Option<String>>(&transferred, "parent_transaction_id"),
        Some(consultation.call_id.clone())
    );
    assert_eq!(
        rig.column::<Option<String>>(&customer, "parent_transaction_id"),
        None
    );
    assert_eq!(
        rig.column::<Option<String>>(&customer, "referred_to")
            .as_deref(),
        Some("sip:2002@198.51.100.30")
    );
    assert_eq!(
        rig.query::<String>("SELECT status FROM recordings"),
        ["complete", "complete", "complete"]
    );
}

#[test]
fn a_blind_transfer_links_the_new_call_to_the_one_that_referred_it() {
    let mut rig = Rig::new("");
    // The agent refers the customer to 15550100 (the number call 2 dials), and the customer
    // calls it at once, naming the referrer.
    let customer = call(1);
    let mut transferred = call(2);
    transferred.invite_headers = vec!["Referred-By: <sip:1001@198.51.100.20>".into()];
    let at = |ms: u64| T0 + Duration::from_millis(ms);
    rig.answer(&customer, at(0));
    rig.frame(
        at(400),
        sip(
            customer.callee,
            customer.caller,
            customer.refer("sip:15550100@198.51.100.10", None),
        ),
    );
    rig.bye(&customer, at(500));
    rig.answer(&transferred, at(600));
    rig.bye(&transferred, at(1500));
    rig.feed(Input::Timeout(at(2600)));
    assert_eq!(
        rig.column::<Option<String>>(&customer, "referred_to")
            .as_deref(),
        Some("sip:15550100@198.51.100.10")
    );
    assert_eq!(
        rig.column::<Option<String>>(&transferred, "parent_transaction_id"),
        Some(customer.call_id.clone())
    );
    assert_eq!(
        rig.column::<Option<String>>(&transferred, "referred_to"),
        None
    );
}

#[test]
fn a_percentage_of_zero_records_nothing_but_says_why() {
    let mut rig = Rig::new("[recording]\npercentage = 0\n");
    rig.call(&call(1), T0);
    assert!(rig.files().is_empty());
    assert!(
        rig.query::<String>("SELECT file_name FROM recordings")
            .is_empty()
    );
    assert_eq!(rig.query::<i64>("SELECT recorded FROM call_decisions"), [0]);
    assert_eq!(
        rig.query::<String>("SELECT reason FROM call_decisions"),
        ["recording percentage 0: no call"]
    );
    assert_eq!(rig.recorder.totals.not_selected, 1);
}

#[test]
fn a_percentage_picks_the_same_calls_every_time_and_about_that_share() {
    let chosen = |rig: &Rig| {
        rig.query::<String>("SELECT sip_call_id FROM call_decisions WHERE recorded = 1")
    };
    let mut first = Rig::new("[recording]\npercentage = 30\n");
    let mut second = Rig::new("[recording]\npercentage = 30\n");
    for n in 0..200 {
        first.call(&call(n), T0 + Duration::from_secs(2 * n as u64));
        second.call(&call(n), T0 + Duration::from_secs(2 * n as u64));
    }
    let picked = chosen(&first);
    assert_eq!(picked, chosen(&second), "deterministic for a given call");
    assert!(
        (40..=80).contains(&picked.len()),
        "about 30% of 200: {}",
        picked.len()
    );
    assert_eq!(first.files().len(), picked.len());
    let reasons =
        first.query::<String>("SELECT reason FROM call_decisions WHERE recorded = 0 LIMIT 1");
    assert!(
        reasons[0].starts_with("recording percentage 30: not selected (bucket "),
        "{reasons:?}"
    );
}

#[test]
fn mulaw_recordings_are_half_the_size_and_declare_their_format() {
    let mut pcm = Rig::new("");
    let mut mulaw = Rig::new("[recording]\nformat = \"mulaw\"\n");
    pcm.call(&call(1), T0);
    mulaw.call(&call(1), T0);
    let (pcm_file, mulaw_file) = (&pcm.files()[0], &mulaw.files()[0]);
    let pcm_info = wav::read_info(std::fs::File::open(pcm_file).unwrap()).unwrap();
    let mulaw_info = wav::read_info(std::fs::File::open(mulaw_file).unwrap()).unwrap();
    assert_eq!(mulaw_info.spec.format, SampleFormat::MuLaw);
    assert_eq!(
        (mulaw_info.spec.channels, mulaw_info.spec.sample_rate),
        (2, 8000)
    );
    assert_eq!(mulaw_info.frames, pcm_info.frames);
    assert_eq!(mulaw_info.data_len * 2, pcm_info.data_len);
    assert_eq!(
        mulaw.query::<String>("SELECT format FROM recordings"),
        ["mulaw"]
    );
}

#[test]
fn media_in_a_codec_not_decoded_is_kept_as_captured_beside_the_recording() {
    let mut rig = Rig::new("");
    let c = call(1);
    let frame = |from: Endpoint, to: Endpoint, m: Vec<u8>| synth::udp_frame(from.sip, to.sip, &m);
    rig.recorder
        .handle_frame(T0, 1, &frame(c.caller, c.callee, c.invite()));
    rig.recorder
        .handle_frame(T0, 1, &frame(c.callee, c.caller, c.ok()));
    // The caller sends G.729 (static payload type 18); the callee PCMU.
    let mut sent = Vec::new();
    for i in 0..40u16 {
        let at = T0 + Duration::from_millis(20 + u64::from(i) * 20);
        let g729 = synth::rtp(18, i, u32::from(i) * 160, 9, &[0x5A; 20]);
        let g729_frame = synth::udp_frame(c.caller.rtp, c.callee.rtp, &g729);
        rig.recorder.handle_frame(at, 1, &g729_frame);
        sent.push(g729_frame);
        let pcmu = synth::rtp(
            0,
            i,
            u32::from(i) * 160,
            8,
            &synth::ulaw_tone(1000.0, u64::from(i) * 160, 160),
        );
        rig.recorder
            .handle_frame(at, 1, &synth::udp_frame(c.callee.rtp, c.caller.rtp, &pcmu));
    }
    rig.recorder.handle_frame(
        T0 + Duration::from_millis(900),
        1,
        &frame(c.caller, c.callee, c.bye_from_caller()),
    );
    rig.recorder.handle_timeout(T0 + Duration::from_secs(2));

    let raw_name = rig.query::<String>("SELECT raw_media_file FROM recordings");
    assert_eq!(
        rig.query::<i64>("SELECT raw_media_packets FROM recordings"),
        [40]
    );
    let wav = rig
        .files()
        .into_iter()
        .find(|f| f.extension().is_some_and(|e| e == "wav"))
        .unwrap();
    let raw_path = wav.with_file_name(&raw_name[0]);
    assert_eq!(
        raw_name[0],
        wav.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace(".wav", ".rtp.pcap")
    );
    let mut reader =
        pcap_file::pcap::PcapReader::new(std::fs::File::open(&raw_path).unwrap()).unwrap();
    let mut kept = Vec::new();
    while let Some(packet) = reader.next_packet() {
        kept.push(packet.unwrap().data.into_owned());
    }
    assert_eq!(kept, sent, "every G.729 packet, byte for byte");
    assert_eq!(
        rig.query::<String>("SELECT status FROM recordings"),
        ["complete"]
    );
}

/// A tmpfs of a few MiB mounted for one test, unmounted when dropped: a file system that
/// really fills up. Mounting needs root (CAP_SYS_ADMIN).
struct SmallFs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    /// `None` when the test is to be skipped: not root, and `TAPLINE_SKIP_PRIVILEGED=1`.
    fn mount(test: &str, kib: u64) -> Option<SmallFs> {
        let refuse = |why: String| {
            if std::env::var_os("TAPLINE_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
                // Straight to the process's stderr: the test harness keeps what `eprintln!`
                // prints from a passing test to itself.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {test}: {why} (TAPLINE_SKIP_PRIVILEGED=1)"
                );
                return None;
            }
            panic!(
                "{test}: {why}. This test mounts a small tmpfs to fill it up: run it as root \
                 (with CAP_SYS_ADMIN), or set TAPLINE_SKIP_PRIVILEGED=1 to skip it"
            );
        };
        if !rustix::process::geteuid().is_root() {
            return refuse("not running as root".to_owned());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={kib}k,mode=0700"))
            .arg("tapline-test")
            .arg(&path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallFs { path, _dir: dir }),
            Ok(output) => refuse(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(err) => refuse(format!("cannot run mount: {err}")),
        }
    }

    fn available(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.path).unwrap();
        stat.f_bavail * stat.f_frsize
    }

    /// Fills the file system with a file of pattern bytes until `free` bytes are left, and
    /// returns the file's SHA-256.
    fn ballast(&self, name: &str, free: u64) -> (PathBuf, String) {
        let path = self.path.join(name);
        let size = self.available().checked_sub(free).unwrap();
        let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
        let mut file = std::fs::File::create(&path).unwrap();
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        file.sync_all().unwrap();
        assert_eq!(self.available(), free, "tmpfs counts whole pages");
        (path.clone(), sha256_of(&path))
    }

    /// Fills the file system to the last byte.
    fn fill(&self, name: &str) {
        let mut file = std::fs::File::create(self.path.join(name)).unwrap();
        let page = [0xA5u8; 4096];
        loop {
            match file.write(&page) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::StorageFull => break,
                Err(err) => panic!("{err}"),
            }
        }
        assert_eq!(self.available(), 0);
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Busy (a file still open after a failed test): detach it now, gone when closed.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn sha256_of(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// A recording as it must be after any ending: a valid WAV file of whole stereo 16-bit
/// frames that ends with its audio, and a row with the size and SHA-256 of the file as it
/// is. Returns the audio.
fn assert_consistent(rig: &Rig, call: &Call) -> Vec<u8> {
    let path = rig.file_of(call);
    let bytes = std::fs::read(&path).unwrap();
    let info = wav::read_info(std::io::Cursor::new(&bytes))
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert_eq!(info.spec.format, SampleFormat::Pcm16);
    assert_eq!(info.spec.channels, 2);
    assert_eq!(info.data_len % 4, 0, "whole frames");
    assert_eq!(info.frames * 4, info.data_len);
    assert_eq!(
        info.data_offset + info.data_len,
        bytes.len() as u64,
        "{}: the header counts every byte after it",
        path.display()
    );
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
        bytes.len() - 8,
        "RIFF size"
    );
    assert_eq!(
        rig.column::<i64>(call, "size_bytes"),
        bytes.len() as i64,
        "size in the row"
    );
    assert_eq!(
        rig.column::<String>(call, "sha256"),
        format!("{:x}", Sha256::digest(&bytes)),
        "SHA-256 in the row"
    );
    bytes[info.data_offset as usize..].to_vec()
}

/// 440 Hz from each caller, 20 ms packets from packet `first` on, calls side by side, until
/// `stop` says so after a step or ten seconds are sent. Returns the next packet's number and
/// the time of the last one sent.
fn talk(
    rig: &mut Rig,
    calls: &[Call],
    answered: Duration,
    first: u16,
    mut stop: impl FnMut(&mut Rig, Duration) -> bool,
) -> (u16, Duration) {
    let mut at = answered;
    for i in first..500u16 {
        for call in calls {
            rig.media(call, answered, i);
        }
        at = answered + Duration::from_millis(20 + u64::from(i) * 20);
        if stop(rig, at) {
            return (i + 1, at);
        }
    }
    (500, at)
}

#[test]
fn a_full_disk_stops_recording_keeps_what_was_written_and_recording_resumes_by_itself() {
    let Some(small) = SmallFs::mount("disk full", 4096) else {
        return;
    };
    const KIB: u64 = 1024;
    // Three calls write 3 × 32 kB/s: with 320 KiB free they pass the 160 KiB low-water mark
    // after about 1.7 s, and fill the disk 1.7 s later.
    let policy = SpacePolicy {
        low_water: 160 * KIB,
        resume: 1024 * KIB,
    };
    let mut rig = Rig::on(small.path.join("recordings"), policy);

    // A recording made before the disk fills, which nothing may touch.
    let before = call(0);
    rig.call(&before, T0);
    let before_audio = assert_consistent(&rig, &before);
    assert_eq!(rig.column::<String>(&before, "status"), "complete");

    let (ballast, ballast_sha) = small.ballast("ballast", 320 * KIB);
    let talking = [call(1), call(2), call(3)];
    let answered = T0 + Duration::from_secs(10);
    for c in &talking {
        rig.answer(c, answered);
    }
    assert_eq!(rig.recorder.open_recordings(), 3);
    assert!(!rig.recorder.disk_full());

    // Below the low-water mark: the alarm goes up, a new call is refused, the calls being
    // recorded carry on; then the disk fills and they are finalised.
    let late = call(4);
    let (mut refused_at, mut cut_at) = (None, None);
    let (next_packet, last) = talk(&mut rig, &talking, answered, 0, |rig, at| {
        if rig.recorder.disk_full() && refused_at.is_none() {
            assert_eq!(rig.recorder.open_recordings(), 3, "open calls carry on");
            rig.answer(&late, at);
            assert_eq!(rig.recorder.open_recordings(), 3, "the new call is refused");
            refused_at = Some(at);
        }
        if rig.recorder.open_recordings() == 0 {
            cut_at = Some(at);
            return true;
        }
        false
    });
    let refused_at = refused_at.expect("the low-water mark raised the alarm");
    let cut_at = cut_at.expect("the disk filled within ten seconds of three calls");
    assert!(refused_at < cut_at, "{refused_at:?} then {cut_at:?}");
    assert!(rig.recorder.disk_full());
    assert_eq!(rig.recorder.totals.cut_short, 3);

    // The calls go on for a while, then end; a call answered meanwhile is refused too.
    let still = call(5);
    rig.answer(&still, last + Duration::from_millis(10));
    let (sent, _) = talk(&mut rig, &talking, answered, next_packet, |_, at| {
        at > last + Duration::from_secs(2)
    });
    let end = last + Duration::from_secs(3);
    // The first call is transferred after its recording was cut: its row still says where.
    rig.frame(
        end - Duration::from_millis(500),
        sip(
            talking[0].callee,
            talking[0].caller,
            talking[0].refer("sip:2002@198.51.100.30", None),
        ),
    );
    for c in &talking {
        rig.bye(c, end);
    }
    rig.bye(&still, end);
    rig.bye(&late, end);
    rig.feed(Input::Timeout(end + Duration::from_millis(1100)));

    // What was on the disk is intact: the ballast, the earlier recording and its row.
    assert_eq!(sha256_of(&ballast), ballast_sha);
    assert_eq!(assert_consistent(&rig, &before), before_audio);
    // The cut recordings are finalised: valid files of what reached the disk, complete
    // rows that say why they are short, the call's statistics added at its end.
    let mut reference = Rig::new("");
    for input in rig.fed.clone() {
        reference.feed(input);
    }
    for c in &talking {
        let audio = assert_consistent(&rig, c);
        assert_eq!(rig.column::<String>(c, "status"), "complete");
        assert_eq!(rig.column::<String>(c, "end_reason"), CUT_SHORT);
        assert!(
            audio.len() >= 32_000,
            "at least the second before the low-water mark: {} bytes",
            audio.len()
        );
        let whole = assert_consistent(&reference, c);
        assert!(audio.len() < whole.len(), "cut short");
        assert!(
            audio == whole[..audio.len()],
            "the cut recording is the start of the whole one"
        );
        assert_eq!(rig.column::<String>(c, "codec"), "PCMU");
        assert_eq!(rig.column::<i64>(c, "caller_packets"), i64::from(sent));
        let referred_to = (c.call_id == talking[0].call_id).then_some("sip:2002@198.51.100.30");
        assert_eq!(
            rig.column::<Option<String>>(c, "referred_to").as_deref(),
            referred_to
        );
        let duration = rig.column::<i64>(c, "duration_ms");
        assert!(
            (3000..cut_at.saturating_sub(answered).as_millis() as i64 + 1).contains(&duration),
            "the recording's length, not the call's: {duration} ms"
        );
    }
    // The calls answered while the disk was full were not recorded, and say why.
    for c in [&late, &still] {
        let (recorded, reason) = rig.decision(c);
        assert_eq!(recorded, 0);
        assert!(reason.starts_with("disk full: "), "{reason}");
        assert!(
            rig.query::<String>(&format!(
                "SELECT file_name FROM recordings WHERE sip_call_id = '{}'",
                c.call_id
            ))
            .is_empty()
        );
    }
    assert_eq!(rig.recorder.totals.refused_disk_full, 2);
    assert_eq!(rig.recorder.totals.completed, 4);
    assert_eq!(rig.recorder.totals.failed, 0);
    assert_eq!(
        rig.files().len(),
        4,
        "no file beside the recordings with rows: {:?}",
        rig.files()
    );
    assert!(rig.recorder.disk_full(), "no space has returned");

    // Space returns: within a sync the alarm is down, and the next call is recorded.
    std::fs::remove_file(&ballast).unwrap();
    let resumed = end + Duration::from_secs(3);
    rig.feed(Input::Timeout(resumed));
    assert!(!rig.recorder.disk_full());
    let next = call(6);
    rig.call(&next, resumed + Duration::from_secs(1));
    assert_eq!(rig.column::<String>(&next, "status"), "complete");
    assert_eq!(rig.column::<String>(&next, "end_reason"), "bye from caller");
    assert_eq!(rig.decision(&next).0, 1);
    assert_eq!(
        assert_consistent(&rig, &next),
        assert_consistent(&reference_of(&next), &next),
        "a whole recording"
    );
    assert_eq!(rig.recorder.totals.refused_disk_full, 2);
    drop(rig);
}

/// The same call recorded on a disk with room to spare.
fn reference_of(c: &Call) -> Rig {
    let mut rig = Rig::new("");
    rig.call(c, T0);
    rig
}

#[test]
fn without_a_low_water_mark_a_write_that_finds_the_disk_full_still_loses_nothing_written() {
    let Some(small) = SmallFs::mount("disk full without a low-water mark", 1024) else {
        return;
    };
    // No low-water mark: the disk fills in the middle of the calls, and the recorder finds
    // out from ENOSPC; recording is tried again at the first sync with any room at all.
    let mut rig = Rig::on(
        small.path.join("recordings"),
        SpacePolicy {
            low_water: 0,
            resume: 0,
        },
    );
    let (_ballast, _) = small.ballast("ballast", 100 * 1024);
    let talking = [call(1), call(2)];
    for c in &talking {
        rig.answer(c, T0);
    }
    let mut alarm_before_cut = false;
    let mut cut_at = None;
    talk(&mut rig, &talking, T0, 0, |rig, at| {
        if rig.recorder.open_recordings() == 2 && rig.recorder.disk_full() {
            alarm_before_cut = true;
        }
        if rig.recorder.open_recordings() == 0 {
            cut_at = Some(at);
            return true;
        }
        false
    });
    let cut_at = cut_at.expect("the disk filled");
    assert!(!alarm_before_cut, "nothing warned before ENOSPC");
    assert!(rig.recorder.disk_full(), "ENOSPC raised the alarm");
    assert_eq!(small.available(), 0, "the disk is really full");

    // A call in the same second is refused by the alarm.
    let same_second = call(3);
    rig.answer(&same_second, cut_at);
    // After the next sync the state is left (any room counts); the next call's file finds no
    // room for its header, is removed, and the call is refused with the alarm raised again.
    rig.feed(Input::Timeout(cut_at + Duration::from_millis(1500)));
    assert!(!rig.recorder.disk_full(), "any room counts");
    let after_sync = call(4);
    rig.answer(&after_sync, cut_at + Duration::from_millis(1600));
    assert!(rig.recorder.disk_full());
    for c in talking.iter().chain([&same_second, &after_sync]) {
        rig.bye(c, cut_at + Duration::from_secs(2));
    }
    rig.feed(Input::Timeout(cut_at + Duration::from_secs(4)));

    for c in &talking {
        let audio = assert_consistent(&rig, c);
        assert!(!audio.is_empty());
        assert_eq!(rig.column::<String>(c, "status"), "complete");
        assert_eq!(rig.column::<String>(c, "end_reason"), CUT_SHORT);
    }
    for c in [&same_second, &after_sync] {
        let (recorded, reason) = rig.decision(c);
        assert_eq!(recorded, 0);
        assert!(reason.starts_with("disk full"), "{reason}");
    }
    assert_eq!(rig.recorder.totals.refused_disk_full, 2);
    assert_eq!(rig.files().len(), 2, "no orphan file: {:?}", rig.files());
    drop(rig);
}

#[test]
fn undecodable_media_kept_beside_a_recording_is_cut_back_to_whole_packets_when_the_disk_fills() {
    let Some(small) = SmallFs::mount("disk full with undecodable media", 1024) else {
        return;
    };
    let mut rig = Rig::on(
        small.path.join("recordings"),
        SpacePolicy {
            low_water: 0,
            resume: 0,
        },
    );
    let talking = [call(1), call(2)];
    for c in &talking {
        rig.answer(c, T0);
    }
    let wav_bytes = |rig: &Rig| -> u64 {
        rig.files()
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "wav"))
            .map(|f| f.metadata().unwrap().len())
            .sum()
    };
    // The callers send media in a codec that is not decoded, kept as captured beside the
    // recordings; the callees nothing. The recordings get their audio (silence) once a
    // second; just after the second such write the disk is filled to the last page, so that
    // the next write to fail is one of the kept packets, part way through.
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); talking.len()];
    let (mut wav_writes, mut filled_at, mut cut_at) = (0, None, None);
    for i in 0..500u16 {
        let at = T0 + Duration::from_millis(20 + u64::from(i) * 20);
        let before = wav_bytes(&rig);
        for (c, sent) in talking.iter().zip(&mut sent) {
            let rtp = synth::rtp(18, i, u32::from(i) * 160, 9, &[0x5A; 200]);
            let frame = synth::udp_frame(c.caller.rtp, c.callee.rtp, &rtp);
            rig.frame(at, frame.clone());
            sent.push(frame);
        }
        if rig.recorder.open_recordings() == 0 {
            cut_at = Some(at);
            break;
        }
        if filled_at.is_none() && wav_bytes(&rig) > before {
            wav_writes += 1;
            if wav_writes == 2 {
                small.fill("filler");
                filled_at = Some(at);
            }
        }
    }
    let filled_at = filled_at.expect("the recordings were written to");
    let cut_at = cut_at.expect("the disk filled");
    assert!(
        cut_at < filled_at + Duration::from_millis(900),
        "a kept packet met the full disk before the recordings' next write: {filled_at:?}, {cut_at:?}"
    );
    assert!(rig.recorder.disk_full());
    let end = cut_at + Duration::from_secs(1);
    for c in &talking {
        rig.bye(c, end);
    }
    rig.feed(Input::Timeout(end + Duration::from_secs(2)));

    for (c, sent) in talking.iter().zip(&sent) {
        assert_consistent(&rig, c);
        assert_eq!(rig.column::<String>(c, "status"), "complete");
        assert_eq!(rig.column::<String>(c, "end_reason"), CUT_SHORT);
        let raw = rig
            .file_of(c)
            .with_file_name(rig.column::<String>(c, "raw_media_file"));
        let mut reader =
            pcap_file::pcap::PcapReader::new(std::fs::File::open(&raw).unwrap()).unwrap();
        let mut kept = Vec::new();
        while let Some(packet) = reader.next_packet() {
            kept.push(packet.expect("whole packets to the end").data.into_owned());
        }
        assert_eq!(rig.column::<i64>(c, "raw_media_packets"), kept.len() as i64);
        assert!(kept.len() >= 50, "{} packets", kept.len());
        assert!(kept.len() < sent.len());
        assert_eq!(kept[..], sent[..kept.len()], "what was kept, byte for byte");
    }
    drop(rig);
}

#[test]
fn sip_over_tls_connections_are_listed() {
    let mut rig = Rig::new("");
    let phone: std::net::SocketAddrV4 = "198.51.100.20:40100".parse().unwrap();
    let pbx: std::net::SocketAddrV4 = "198.51.100.10:5061".parse().unwrap();
    let hello = [0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    rig.frame(T0, synth::tcp_frame(phone, pbx, 1, &hello));
    rig.frame(T0, synth::tcp_frame(pbx, phone, 1, &hello));
    assert_eq!(
        rig.query::<String>(
            "SELECT client || ' ' || server || ' ' || source FROM encrypted_signalling"
        ),
        ["198.51.100.20:40100 198.51.100.10:5061 pcap"]
    );
    assert_eq!(rig.recorder.totals.encrypted_signalling, 1);
}

/// The agent directory as the tests below need it: Alice on extension 1001 (the phone of
/// [`call`]), at the default percentage; Bob on the phone at 198.51.100.30, with a Direct
/// Agent Access number and a percentage of his own.
fn with_directory(rig: &Rig, bob_percentage: u8) {
    use tapline_directory::{Actor, AgentFields, DeviceFields, DeviceKind, agents, devices};
    let store = &rig.store;
    let agent = |agent_id: &str, name: &str, extension: &str| AgentFields {
        agent_id: agent_id.into(),
        name: name.into(),
        extension: Some(extension.into()),
        ..AgentFields::default()
    };
    agents::create(
        store,
        &agent("alice", "Alice Smith", "1001"),
        &Actor::SYSTEM,
    )
    .unwrap();
    let bob = AgentFields {
        daa_number: Some("5551002".into()),
        recording_percentage: Some(bob_percentage),
        ..agent("bob", "Bob Jones", "1002")
    };
    agents::create(store, &bob, &Actor::SYSTEM).unwrap();
    let device = |kind, value: &str, agent_id: &str| DeviceFields {
        kind,
        value: value.into(),
        agent_id: agent_id.into(),
        recording_group: None,
        recording_type: None,
    };
    for fields in [
        device(DeviceKind::Extension, "1001", "alice"),
        device(DeviceKind::PhoneIp, "198.51.100.30", "bob"),
    ] {
        devices::add(store, &fields, &Actor::SYSTEM).unwrap();
    }
}

/// A customer at `number` calls `dialled` on the phone at `phone`; call `n`'s ports.
fn inbound(n: usize, number: &'static str, phone: &str, dialled: &'static str) -> Call {
    let outgoing = call(n);
    let customer = Endpoint {
        user: number,
        ..outgoing.callee
    };
    let port = u16::try_from(16384 + 2 * n).unwrap();
    let phone = Endpoint {
        sip: format!("{phone}:5060").parse().unwrap(),
        rtp: format!("{phone}:{port}").parse().unwrap(),
        user: dialled,
    };
    Call::new(&format!("in-{n}@198.51.100.10"), customer, phone)
}

/// agent_id, agent_name, agent_extension, call_type and customer_number of a call's row.
fn agent_columns(rig: &Rig, c: &Call) -> [Option<String>; 5] {
    [
        "agent_id",
        "agent_name",
        "agent_extension",
        "call_type",
        "customer_number",
    ]
    .map(|column| rig.column::<Option<String>>(c, column))
}

fn some(values: [&str; 5]) -> [Option<String>; 5] {
    values.map(|v| Some(v.to_owned()))
}

#[test]
fn the_directory_names_each_call_s_agent_type_and_customer() {
    let mut rig = Rig::new("");
    with_directory(&rig, 100);
    let outbound = call(1);
    let queued = inbound(2, "+442071234567", "198.51.100.20", "1001");
    let direct = inbound(3, "+442079876543", "198.51.100.30", "5551002");
    let stranger = inbound(4, "+15550199", "198.51.100.99", "2999");
    for (i, c) in [&outbound, &queued, &direct, &stranger]
        .into_iter()
        .enumerate()
    {
        rig.call(c, T0 + Duration::from_secs(3 * i as u64));
    }
    assert_eq!(
        agent_columns(&rig, &outbound),
        some(["alice", "Alice Smith", "1001", "Outbound", "15550100"])
    );
    assert_eq!(
        agent_columns(&rig, &queued),
        some(["alice", "Alice Smith", "1001", "Inbound", "+442071234567"])
    );
    assert_eq!(
        agent_columns(&rig, &direct),
        some([
            "bob",
            "Bob Jones",
            "1002",
            "Direct Agent Access",
            "+442079876543"
        ])
    );
    assert_eq!(
        agent_columns(&rig, &stranger),
        [None, None, None, None, None]
    );
    let alice: i64 = rig.query("SELECT id FROM agents WHERE agent_id = 'alice'")[0];
    assert_eq!(rig.column::<i64>(&outbound, "agent_ref"), alice);
    assert_eq!(
        rig.query::<String>("SELECT status FROM recordings"),
        ["complete"; 4]
    );
}

#[test]
fn a_header_the_config_names_wins_over_the_directory() {
    let mut rig = Rig::new("");
    with_directory(&rig, 100);
    let mut c = call(1);
    c.invite_headers = vec!["X-Call-Type: Outbound Campaign".to_owned()];
    rig.call(&c, T0);
    assert_eq!(rig.column::<String>(&c, "call_type"), "Outbound Campaign");
    assert_eq!(rig.column::<String>(&c, "agent_id"), "alice");
}

#[test]
fn an_agent_s_percentage_decides_for_their_calls_and_changes_apply_at_once() {
    let mut rig = Rig::new("[recording]\npercentage = 100\n");
    with_directory(&rig, 0);
    let bobs = inbound(1, "+442071234567", "198.51.100.30", "1002");
    let alices = call(2);
    rig.call(&bobs, T0);
    rig.call(&alices, T0 + Duration::from_secs(3));
    assert_eq!(
        rig.decision(&bobs),
        (0, "agent bob's recording percentage 0: no call".to_owned())
    );
    assert_eq!(
        rig.decision(&alices),
        (1, "recording percentage 100: every call".to_owned()),
        "Alice has no percentage of her own"
    );
    assert_eq!(rig.recorder.totals.not_selected, 1);

    // Raised in the directory while the recorder runs: the next call of Bob's is recorded.
    use tapline_directory::{Actor, agents};
    let bob = agents::find(&rig.store, "bob").unwrap().unwrap();
    let mut fields = bob.fields.clone();
    fields.recording_percentage = Some(100);
    agents::update(&rig.store, bob.id, &fields, &Actor::SYSTEM).unwrap();
    let again = inbound(3, "+442071234567", "198.51.100.30", "1002");
    rig.call(&again, T0 + Duration::from_secs(6));
    assert_eq!(
        rig.decision(&again),
        (
            1,
            "agent bob's recording percentage 100: every call".to_owned()
        )
    );
    assert_eq!(rig.column::<String>(&again, "agent_id"), "bob");
}
