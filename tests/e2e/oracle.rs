//! Tapline's decoded audio against a decoder we did not write: GStreamer takes each direction of
//! each call straight from the bundled capture (`pcapparse`, `rtppcmudepay`, `mulawdec`), and
//! every sample it decodes must be in the recording's channel for that direction, in order and
//! unchanged, with silence everywhere else in the channel.
//!
//! G.711 decoding is a fixed table and the capture loses and reorders nothing, so the two
//! decoders must agree exactly: no tolerance.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use tapline_store::rusqlite;
use tapline_tests::{Appliance, peer, tapline};

const CALLS_PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../provisioning/demo/calls.pcap"
);

/// The agent phone, which places every call (the caller: left channel).
const PHONE: &str = "198.51.100.20";
/// The PBX, which answers every call (the callee: right channel).
const PBX: &str = "198.51.100.10";

/// The bundled capture's calls: Call-ID and the RTP ports of the phone and of the PBX, as the
/// SDP offer and answer in the capture give them (provisioning/demo/README.md lists them too).
const CALLS: [(&str, u16, u16); 3] = [
    ("tapline-demo-1@198.51.100.20", 16384, 10000),
    ("tapline-demo-2@198.51.100.20", 16388, 10004),
    ("tapline-demo-3@198.51.100.20", 16392, 10008),
];

/// Samples in one 20 ms PCMU packet at 8 kHz; GStreamer's first packet is what we align on.
const PACKET_SAMPLES: usize = 160;

/// A recording's row: where its file is and how many packets each direction had.
struct Row {
    path: PathBuf,
    caller_packets: i64,
    callee_packets: i64,
}

fn row(data_dir: &Path, sip_call_id: &str) -> Row {
    let conn = rusqlite::Connection::open(data_dir.join("tapline.db")).unwrap();
    conn.query_row(
        "SELECT directory, file_name, caller_packets, callee_packets \
         FROM recordings WHERE sip_call_id = ?1",
        [sip_call_id],
        |r| {
            let directory: String = r.get(0)?;
            let file_name: String = r.get(1)?;
            Ok(Row {
                path: data_dir.join("recordings").join(directory).join(file_name),
                caller_packets: r.get(2)?,
                callee_packets: r.get(3)?,
            })
        },
    )
    .unwrap_or_else(|err| panic!("no recording row for {sip_call_id}: {err}"))
}

/// A 16-bit stereo PCM WAV at 8 kHz, split into its left and right channels.
fn read_stereo_wav(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    let what = path.display();
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{what} is not a RIFF WAVE file"
    );
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut format = None;
    let mut data = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4) as usize;
        let body = at + 8;
        assert!(
            body + size <= bytes.len(),
            "{what}: chunk {:?} at byte {at} runs past the end of the file",
            String::from_utf8_lossy(id)
        );
        match id {
            b"fmt " => {
                // Format tag, channels, sample rate, bits per sample.
                format = Some((
                    u16_at(body),
                    u16_at(body + 2),
                    u32_at(body + 4),
                    u16_at(body + 14),
                ));
            }
            b"data" => data = Some(&bytes[body..body + size]),
            _ => {}
        }
        at = body + size + size % 2;
    }
    assert_eq!(
        format,
        Some((1, 2, 8000, 16)),
        "{what}: (format tag, channels, rate, bits) is not 16-bit stereo PCM at 8 kHz"
    );
    let data = data.unwrap_or_else(|| panic!("{what} has no data chunk"));
    assert_eq!(data.len() % 4, 0, "{what}: data is not whole stereo frames");
    data.chunks_exact(4)
        .map(|frame| {
            (
                i16::from_le_bytes([frame[0], frame[1]]),
                i16::from_le_bytes([frame[2], frame[3]]),
            )
        })
        .unzip()
}

/// GStreamer's decoding of one RTP stream in the capture: mono 16-bit samples, in capture order.
fn gstreamer_decode(out_dir: &Path, from: (&str, u16), to: (&str, u16)) -> Vec<i16> {
    let raw = out_dir.join(format!("{}-{}.raw", from.1, to.1));
    let out = peer("gst-launch-1.0", "gstreamer1.0-tools")
        .arg("-q")
        .args(["filesrc", &format!("location={CALLS_PCAP}"), "!"])
        .args([
            "pcapparse",
            &format!("src-ip={}", from.0),
            &format!("src-port={}", from.1),
            &format!("dst-ip={}", to.0),
            &format!("dst-port={}", to.1),
            "!",
        ])
        .args([
            "application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0",
            "!",
            "rtppcmudepay",
            "!",
            "mulawdec",
            "!",
            "audioconvert",
            "!",
            "audio/x-raw,format=S16LE,channels=1,rate=8000",
            "!",
            "filesink",
            &format!("location={}", raw.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gst-launch-1.0 failed on {}:{} -> {}:{} (pcapparse is in gstreamer1.0-plugins-bad, \
         rtppcmudepay and mulawdec in gstreamer1.0-plugins-good, audioconvert in \
         gstreamer1.0-plugins-base):\n{}{}",
        from.0,
        from.1,
        to.0,
        to.1,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&raw).unwrap();
    bytes
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect()
}

/// Checks one direction: GStreamer's samples appear in `channel` exactly once, unchanged, and the
/// rest of the channel is silence. Returns the offset in the channel, or what went wrong.
fn compare(decoded: &[i16], channel: &[i16], packets: i64) -> Result<usize, String> {
    let expected = usize::try_from(packets).unwrap() * PACKET_SAMPLES;
    if decoded.len() != expected {
        return Err(format!(
            "GStreamer decoded {} samples, but Tapline counted {packets} packets ({expected} samples)",
            decoded.len()
        ));
    }
    let head = &decoded[..PACKET_SAMPLES];
    if head.iter().all(|&s| s == 0) {
        return Err("GStreamer's first packet is silence; there is nothing to align on".to_owned());
    }
    let found: Vec<usize> = channel
        .windows(PACKET_SAMPLES)
        .enumerate()
        .filter(|(_, window)| *window == head)
        .map(|(at, _)| at)
        .collect();
    let &[offset] = found.as_slice() else {
        return Err(format!(
            "GStreamer's first packet ({PACKET_SAMPLES} samples) occurs {} times in the channel \
             of {} samples, at {found:?}; expected exactly once",
            found.len(),
            channel.len()
        ));
    };
    let end = offset + decoded.len();
    if end > channel.len() {
        return Err(format!(
            "the stream starts at channel sample {offset} and runs {} samples, past the \
             channel's end at {}",
            decoded.len(),
            channel.len()
        ));
    }
    let mismatches: Vec<usize> = decoded
        .iter()
        .zip(&channel[offset..end])
        .enumerate()
        .filter(|(_, (ours, theirs))| ours != theirs)
        .map(|(at, _)| at)
        .collect();
    if let Some(&first) = mismatches.first() {
        return Err(format!(
            "{} of {} samples differ, the first at stream sample {first} (channel sample {}, \
             packet {}): GStreamer {}, Tapline {}",
            mismatches.len(),
            decoded.len(),
            offset + first,
            first / PACKET_SAMPLES,
            decoded[first],
            channel[offset + first]
        ));
    }
    let noise: Vec<usize> = channel
        .iter()
        .enumerate()
        .filter(|&(at, &s)| (at < offset || at >= end) && s != 0)
        .map(|(at, _)| at)
        .collect();
    if let Some(&first) = noise.first() {
        return Err(format!(
            "{} samples outside the stream (channel samples {offset}..{end} of {}) are not \
             silence, the first at channel sample {first}: {}",
            noise.len(),
            channel.len(),
            channel[first]
        ));
    }
    Ok(offset)
}

#[test]
fn every_decoded_sample_matches_gstreamer() {
    let started = Instant::now();
    let appliance = Appliance::new("");
    let out = tapline(&[
        "record",
        "--pcap",
        CALLS_PCAP,
        "--config",
        appliance.config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "tapline record failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut failures = Vec::new();
    for (call_id, phone_port, pbx_port) in CALLS {
        let row = row(&appliance.data_dir(), call_id);
        let (left, right) = read_stereo_wav(&row.path);
        for (direction, from, to, channel, packets) in [
            (
                "caller -> callee, left",
                (PHONE, phone_port),
                (PBX, pbx_port),
                &left,
                row.caller_packets,
            ),
            (
                "callee -> caller, right",
                (PBX, pbx_port),
                (PHONE, phone_port),
                &right,
                row.callee_packets,
            ),
        ] {
            let decoded = gstreamer_decode(appliance.path(), from, to);
            let what = format!(
                "{call_id} ({direction}; {}:{} -> {}:{}; {})",
                from.0,
                from.1,
                to.0,
                to.1,
                row.path.display()
            );
            match compare(&decoded, channel, packets) {
                Ok(offset) => println!(
                    "{what}: {} samples equal from channel sample {offset}, and the other {} \
                     of {} are silence",
                    decoded.len(),
                    channel.len() - decoded.len(),
                    channel.len()
                ),
                Err(err) => failures.push(format!("{what}: {err}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "Tapline's audio differs from GStreamer's decoding of the same RTP:\n{}",
        failures.join("\n")
    );
    println!("compared in {:?}", started.elapsed());
}
