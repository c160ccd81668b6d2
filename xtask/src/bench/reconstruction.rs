//! Reconstruction: a generated capture of [`CALLS`] concurrent G.711 calls goes through
//! `tapline record --pcap` (the whole path: parse, track, decode, write WAV to disk) and
//! through `tshark -q -z rtp,streams` (parse and RTP stream analysis, no audio), each pinned
//! to one core, [`RUNS`] times.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use tapline_calls::synth::{self, Call, Endpoint};

use super::{RUNS, median, met};
use crate::cargo;

/// Concurrent calls in the generated capture.
pub(super) const CALLS: usize = 2_000;
/// Seconds of two-way audio per call.
const TALK_SECONDS: u64 = 8;
/// The core both contenders are pinned to.
const CORE: &str = "1";
/// The goals: packets a second on one core for the whole path, and memory per call.
const GOAL_PACKETS_PER_CPU_SECOND: f64 = 1_000_000.0;
const GOAL_MIB_PER_CALL: f64 = 2.0;

/// What the runs measured.
pub(super) struct Reconstruction {
    packets: u64,
    capture: PathBuf,
    ours: Vec<Measurement>,
    theirs: Vec<Measurement>,
}

pub(super) fn measure() -> anyhow::Result<Reconstruction> {
    cargo(&["build", "--release", "--locked", "--package", "tapline"])?;
    let dir = PathBuf::from("target/bench");
    std::fs::create_dir_all(&dir)?;
    let capture = dir.join(format!("calls-{CALLS}x{TALK_SECONDS}s.pcap"));
    let packets = if capture.exists() {
        count_packets(&capture)?
    } else {
        generate(&capture)?
    };
    eprintln!("xtask: {} ({packets} packets)", capture.display());

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 1..=RUNS {
        // A new directory each run: deleting thousands of files and creating them again at
        // once makes ext4 search its recently freed inodes, which no appliance does.
        let data = dir.join(format!("data-{run}"));
        let _ = std::fs::remove_dir_all(&data);
        let config = dir.join("bench.toml");
        let text = format!("[tenant]\nname = \"Bench\"\n[storage]\ndata_dir = \"data-{run}\"\n");
        std::fs::write(&config, text)?;
        let tapline = run_timed(
            Command::new("taskset")
                .args(["-c", CORE, "target/release/tapline", "record", "--pcap"])
                .arg(&capture)
                .arg("--config")
                .arg(&config)
                .env("TAPLINE_LOG", "warn"),
        )?;
        let recorded = std::fs::read_dir(data.join("recordings"))?
            .flatten()
            .flat_map(|day| {
                std::fs::read_dir(day.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .count();
        if recorded != CALLS {
            bail!("run {run}: tapline wrote {recorded} recordings, expected {CALLS}");
        }
        let tshark = run_timed(
            Command::new("taskset")
                .args(["-c", CORE, "tshark", "-q", "-n", "-z", "rtp,streams", "-r"])
                .arg(&capture),
        )?;
        eprintln!(
            "xtask: run {run}: tapline {:.2} s ({:.2} s CPU, {} MiB), tshark {:.2} s ({:.2} s CPU, {} MiB)",
            tapline.elapsed.as_secs_f64(),
            tapline.cpu.as_secs_f64(),
            tapline.peak_rss_kib / 1024,
            tshark.elapsed.as_secs_f64(),
            tshark.cpu.as_secs_f64(),
            tshark.peak_rss_kib / 1024
        );
        ours.push(tapline);
        theirs.push(tshark);
    }
    for run in 1..=RUNS {
        let _ = std::fs::remove_dir_all(dir.join(format!("data-{run}")));
    }
    Ok(Reconstruction {
        packets,
        capture,
        ours,
        theirs,
    })
}

#[derive(Debug, Clone, Copy)]
struct Measurement {
    elapsed: Duration,
    /// User plus system time: what the work cost the core, whatever else the machine did.
    cpu: Duration,
    peak_rss_kib: u64,
}

/// Runs `command` to completion, timing it and reading its peak memory from `wait4`'s
/// resource usage (through GNU time's `%M`, which reports exactly that).
fn run_timed(command: &mut Command) -> anyhow::Result<Measurement> {
    let program = command.get_program().to_owned();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M %U %S"])
        .arg(program)
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let started = Instant::now();
    let out = timed
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run /usr/bin/time")?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{command:?} failed: {stderr}");
    }
    let fields: Vec<f64> = stderr
        .lines()
        .last()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [rss, user, system] = fields[..] else {
        bail!("unexpected output from /usr/bin/time: {stderr}")
    };
    Ok(Measurement {
        elapsed,
        cpu: Duration::from_secs_f64(user + system),
        peak_rss_kib: rss as u64,
    })
}

impl Reconstruction {
    /// The report's section on reconstruction.
    pub(super) fn write_section(&self, out: &mut String) -> anyhow::Result<()> {
        let Reconstruction {
            packets,
            capture,
            ours,
            theirs,
        } = self;
        let per_second = |m: &[Measurement], time: fn(&Measurement) -> Duration| {
            median(
                &mut m
                    .iter()
                    .map(|m| *packets as f64 / time(m).as_secs_f64())
                    .collect::<Vec<_>>(),
            )
        };
        let memory = |m: &[Measurement]| {
            median(
                &mut m
                    .iter()
                    .map(|m| m.peak_rss_kib as f64 / 1024.0)
                    .collect::<Vec<_>>(),
            )
        };
        let (our_rate, their_rate) = (
            per_second(ours, |m| m.elapsed),
            per_second(theirs, |m| m.elapsed),
        );
        let (our_cpu_rate, their_cpu_rate) =
            (per_second(ours, |m| m.cpu), per_second(theirs, |m| m.cpu));
        let (our_memory, their_memory) = (memory(ours), memory(theirs));
        let tshark_version = Command::new("tshark")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                // "TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as ...)." to its first part.
                let text = String::from_utf8_lossy(&o.stdout);
                text.lines()
                    .next()
                    .and_then(|l| l.split(" (Git").next())
                    .map(str::to_owned)
            });
        let name = capture.file_name().and_then(|n| n.to_str()).unwrap_or("");
        writeln!(out, "## Call reconstruction from a capture\n")?;
        writeln!(
            out,
            "Input: `{name}`, generated by the benchmark: {CALLS} concurrent G.711 calls (SIP over \
             UDP, {TALK_SECONDS} s of RTP each way at 50 packets/s), {packets} packets. Each \
             contender is pinned to one core (`taskset -c {CORE}`).\n"
        )?;
        writeln!(
            out,
            "| | packets/s, wall clock | packets per CPU-second | peak memory | per call |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        writeln!(
            out,
            "| Tapline: `tapline record --pcap` (parse, track, decode, write {CALLS} WAV files) \
             | {our_rate:.0} | {our_cpu_rate:.0} | {our_memory:.0} MiB | {:.1} KiB |",
            our_memory * 1024.0 / CALLS as f64
        )?;
        writeln!(
            out,
            "| {}: `tshark -q -z rtp,streams` (parse, RTP stream statistics, no audio) \
             | {their_rate:.0} | {their_cpu_rate:.0} | {their_memory:.0} MiB | {:.1} KiB |",
            tshark_version.as_deref().unwrap_or("tshark"),
            their_memory * 1024.0 / CALLS as f64
        )?;
        writeln!(
            out,
            "| **Tapline / tshark** | **{:.2}×** | **{:.2}×** | {:.2}× | |",
            our_rate / their_rate,
            our_cpu_rate / their_cpu_rate,
            our_memory / their_memory
        )?;
        let mib_per_call = our_memory / CALLS as f64;
        writeln!(
            out,
            "\nGoals: at least {GOAL_PACKETS_PER_CPU_SECOND:.0} packets per CPU-second: {} \
             ({our_cpu_rate:.0}); under {GOAL_MIB_PER_CALL} MiB per concurrent call: {} \
             ({:.0} KiB).",
            met(our_cpu_rate >= GOAL_PACKETS_PER_CPU_SECOND),
            met(mib_per_call < GOAL_MIB_PER_CALL),
            mib_per_call * 1024.0
        )?;
        writeln!(
            out,
            "\nWall-clock figures include waiting for the disk: Tapline makes every recording \
             durable once a second (one `syncfs`) and hashes each finished file; tshark writes \
             nothing.\n\nReproduce: `cargo xtask bench` (installs tshark; the capture is cached in \
             `target/bench/`). The benchmark deletes its recordings at the end; run it again \
             within a few minutes and creating files costs more, as ext4 passes over inodes \
             freed in the last minutes when it has no journal.\n"
        )?;
        Ok(())
    }
}

/// Writes the benchmark capture: calls answered one after another over the first two
/// seconds, then talking concurrently, then hanging up; frames in time order.
fn generate(path: &Path) -> anyhow::Result<u64> {
    eprintln!("xtask: generating {}", path.display());
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut writer = PcapWriter::with_header(file, header)?;
    let start = Duration::from_secs(1_800_000_000);
    let calls: Vec<Call> = (0..CALLS).map(bench_call).collect();
    let setup_spacing = Duration::from_micros(2_000_000 / CALLS as u64);
    let mut packets = 0u64;
    let mut write = |at: Duration, frame: &[u8]| -> anyhow::Result<()> {
        let packet = PcapPacket {
            timestamp: at,
            orig_len: frame.len() as u32,
            data: Cow::Borrowed(frame),
        };
        writer.write_packet(&packet)?;
        packets += 1;
        Ok(())
    };
    for (i, call) in calls.iter().enumerate() {
        let at = start + setup_spacing * i as u32;
        write(
            at,
            &synth::udp_frame(call.caller.sip, call.callee.sip, &call.invite()),
        )?;
        write(
            at,
            &synth::udp_frame(call.callee.sip, call.caller.sip, &call.ok()),
        )?;
        write(
            at,
            &synth::udp_frame(call.caller.sip, call.callee.sip, &call.ack()),
        )?;
    }
    let talk_start = start + Duration::from_secs(2);
    let ticks = TALK_SECONDS * 50;
    let payload_caller = synth::ulaw_tone(440.0, 0, 160);
    let payload_callee = synth::ulaw_tone(1000.0, 0, 160);
    for tick in 0..ticks {
        let at = talk_start + Duration::from_millis(tick * 20);
        for (i, call) in calls.iter().enumerate() {
            let (sequence, timestamp) = (tick as u16, tick as u32 * 160);
            let up = synth::rtp(
                0,
                sequence,
                timestamp,
                0x1000_0000 + i as u32,
                &payload_caller,
            );
            let down = synth::rtp(
                0,
                sequence,
                timestamp,
                0x2000_0000 + i as u32,
                &payload_callee,
            );
            write(at, &synth::udp_frame(call.caller.rtp, call.callee.rtp, &up))?;
            write(
                at,
                &synth::udp_frame(call.callee.rtp, call.caller.rtp, &down),
            )?;
        }
    }
    let end = talk_start + Duration::from_millis(ticks * 20);
    for call in &calls {
        write(
            end,
            &synth::udp_frame(call.caller.sip, call.callee.sip, &call.bye_from_caller()),
        )?;
    }
    Ok(packets)
}

/// Call `i`: its own phone and a shared PBX, as on a real voice VLAN, with addresses from the
/// range set aside for benchmarks (198.18.0.0/15, RFC 2544).
pub(super) fn bench_call(i: usize) -> Call {
    let phone = std::net::Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8);
    let pbx = std::net::Ipv4Addr::new(198, 19, 0, 10);
    let caller = Endpoint {
        sip: std::net::SocketAddrV4::new(phone, 5060),
        rtp: std::net::SocketAddrV4::new(phone, 16384),
        user: "1001",
    };
    let callee = Endpoint {
        sip: std::net::SocketAddrV4::new(pbx, 5060),
        rtp: std::net::SocketAddrV4::new(pbx, 10_000 + 2 * i as u16),
        user: "15550100",
    };
    Call::new(&format!("bench-{i}@198.19.0.10"), caller, callee)
}

fn count_packets(path: &Path) -> anyhow::Result<u64> {
    let mut reader =
        pcap_file::pcap::PcapReader::new(std::io::BufReader::new(std::fs::File::open(path)?))?;
    let mut packets = 0;
    while let Some(packet) = reader.next_packet() {
        packet?;
        packets += 1;
    }
    Ok(packets)
}
