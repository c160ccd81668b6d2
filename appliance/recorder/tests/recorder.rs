//! The recorder on made-up calls: what lands on disk and in the database.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tapline_calls::synth::{self, Call, Endpoint};
use tapline_config::{Config, RecordingConfig};
use tapline_media::wav::{self, SampleFormat};
use tapline_recorder::{Recorder, RecorderConfig};
use tapline_store::{Store, rusqlite};

const T0: Duration = Duration::from_secs(1_795_305_600);

fn recording_config(extra: &str) -> RecordingConfig {
    let text = format!("[tenant]\nname = \"t\"\n{extra}");
    Config::parse(&text, "test", std::path::Path::new("/"))
        .unwrap()
        .recording
}

struct Rig {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    recorder: Recorder,
}

impl Rig {
    fn new(extra_config: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let config = RecorderConfig {
            root: dir.path().join("recordings"),
            source: "pcap",
            recording: recording_config(extra_config),
        };
        let recorder = Recorder::new(store.clone(), config).unwrap();
        Rig {
            dir,
            store,
            recorder,
        }
    }

    /// A call with 1 s of tones each way, answered at `start`.
    fn call(&mut self, call: &Call, start: Duration) {
        let frame =
            |from: Endpoint, to: Endpoint, m: Vec<u8>| synth::udp_frame(from.sip, to.sip, &m);
        self.recorder
            .handle_frame(start, 1, &frame(call.caller, call.callee, call.invite()));
        self.recorder
            .handle_frame(start, 1, &frame(call.callee, call.caller, call.ok()));
        for i in 0..50u16 {
            let at = start + Duration::from_millis(20 + u64::from(i) * 20);
            let tone = synth::ulaw_tone(440.0, u64::from(i) * 160, 160);
            let rtp = synth::rtp(0, i, u32::from(i) * 160, 7, &tone);
            self.recorder.handle_frame(
                at,
                1,
                &synth::udp_frame(call.caller.rtp, call.callee.rtp, &rtp),
            );
        }
        let bye = frame(call.caller, call.callee, call.bye_from_caller());
        self.recorder
            .handle_frame(start + Duration::from_millis(1100), 1, &bye);
        // A finished recording is marked complete at the next sync, within a second.
        self.recorder
            .handle_timeout(start + Duration::from_millis(2200));
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
        let mut files: Vec<PathBuf> = walk(&self.dir.path().join("recordings"));
        files.sort();
        files
    }
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

fn call(n: usize) -> Call {
    let phone = Endpoint {
        sip: "198.51.100.20:5060".parse().unwrap(),
        rtp: "198.51.100.20:16384".parse().unwrap(),
        user: "1001",
    };
    let pbx = Endpoint {
        sip: "198.51.100.10:5060".parse().unwrap(),
        rtp: "198.51.100.10:10000".parse().unwrap(),
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
