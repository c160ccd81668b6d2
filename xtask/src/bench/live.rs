//! Live capture: frames from a network interface into the `AF_PACKET` ring of
//! `tapline_capture::LiveCapture`, against the goal of [`TARGET_RATE`] packets a second with
//! no frame dropped by the kernel.
//!
//! The benchmark makes its own network: two network namespaces joined by a veth pair, so the
//! traffic never leaves them. In one, a sender pinned to core [`SENDER_CORE`] sends G.711-sized
//! RTP datagrams with `sendmmsg`, paced to the target rate. They go to a TEST-NET address
//! whose static neighbour entry points at a MAC address no interface has, like traffic
//! mirrored from elsewhere. In the other namespace the veth end has no address, like a SPAN
//! port, and a capture thread pinned to core [`CAPTURE_CORE`] opens `LiveCapture` on it with
//! the appliance's default ring and walks every block. Each run is done once with the walk
//! alone and once with every frame also handed to `Tracker::handle_frame`.

use std::fmt::Write as _;
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use rustix::io::Errno;
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags};
use tapline_calls::{Event, Tracker, synth};
use tapline_capture::{LiveCapture, LiveOptions, LiveStats};

use super::reconstruction::{CALLS, bench_call};
use super::{RUNS, median};

/// The goal: datagrams a second into the ring, with none dropped.
pub(super) const TARGET_RATE: u64 = 500_000;
/// How long each run sends for.
const SECONDS: u64 = 10;
/// Datagrams per `sendmmsg` call.
const BATCH: usize = 64;
const SENDER_CORE: usize = 0;
const CAPTURE_CORE: usize = 1;
/// A sender reaching this share of the target rate counts as sending at it: pacing ends each
/// run a little after its last batch was due.
const RATE_TOLERANCE: f64 = 0.99;
/// A 12-byte RTP header and 20 ms of G.711: 160 bytes.
const PAYLOAD_LEN: usize = 172;
/// The datagram as captured: Ethernet, IPv4 and UDP headers in front of the payload.
const FRAME_LEN: usize = 14 + 20 + 8 + PAYLOAD_LEN;

/// The veth end the capture opens, and the one the sender sends from.
const SPAN: &str = "span0";
const SENDER_LINK: &str = "send0";
const SENDER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Where the datagrams go: an even port, as RTP uses.
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 20_000);
/// Sent until the capture sees one, to know the link carries frames before the run starts.
const PROBE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 9);
/// The pcap link type of the frames `synth::udp_frame` makes.
const LINKTYPE_ETHERNET: u32 = 1;
/// The peer's MAC address: locally administered, and no interface has it.
const PEER_MAC: [u8; 6] = [0x02, 0x54, 0x4c, 0x00, 0x00, 0x02];

/// What the capture thread does with each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Walk the ring and count the frames: the capture path alone.
    Walk,
    /// Also hand every frame to a call tracker following [`CALLS`] calls, which parses it
    /// down to the call lookup.
    Parse,
}

impl Work {
    fn describe(self) -> &'static str {
        match self {
            Work::Walk => "walk the ring, count frames",
            Work::Parse => "walk the ring, `Tracker::handle_frame` on each frame",
        }
    }
}

/// One run, as the sender and the capture saw it.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Datagrams sent, and how long sending them took.
    sent: u64,
    send_time: Duration,
    /// Datagrams the capture walked past.
    captured: u64,
    /// The kernel's stamps on the first and last of them.
    first_last: Option<(SystemTime, SystemTime)>,
    stats: LiveStats,
    /// CPU time the sender thread used while sending, its softirqs included.
    sender_cpu: Duration,
    /// CPU time the capture thread used from the opened ring to the end.
    capture_cpu: Duration,
}

impl Run {
    fn send_rate(&self) -> f64 {
        self.sent as f64 / self.send_time.as_secs_f64()
    }

    /// Datagrams a second between the first captured and the last, by the kernel's stamps.
    fn capture_rate(&self) -> f64 {
        let span = self
            .first_last
            .and_then(|(first, last)| last.duration_since(first).ok())
            .filter(|span| !span.is_zero());
        match span {
            Some(span) => (self.captured - 1) as f64 / span.as_secs_f64(),
            None => 0.0,
        }
    }

    /// The share of one core that `cpu` is over the time sending took.
    fn core_share(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.send_time.as_secs_f64()
    }

    /// Sent at the target rate and captured without a kernel drop.
    fn met_goal(&self) -> bool {
        self.send_rate() >= TARGET_RATE as f64 * RATE_TOLERANCE && self.stats.drops == 0
    }
}

/// Every run of every kind of work.
pub(super) struct Live {
    variants: Vec<(Work, Vec<Run>)>,
}

pub(super) fn measure() -> anyhow::Result<Live> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        bail!(
            "the live-capture benchmark pins the sender to core {SENDER_CORE} and the capture \
             to core {CAPTURE_CORE}, but only {cores} core(s) are available"
        );
    }
    let net = Net::create()?;
    let mut variants = Vec::new();
    for work in [Work::Walk, Work::Parse] {
        let mut runs = Vec::new();
        for number in 1..=RUNS {
            let run = run_once(&net, work)
                .with_context(|| format!("live capture ({}), run {number}", work.describe()))?;
            eprintln!(
                "xtask: live capture ({}), run {number}: sent {} at {:.0}/s, captured {} at \
                 {:.0}/s, kernel drops {}, freezes {}, CPU: sender {:.0}%, capture {:.0}%",
                work.describe(),
                run.sent,
                run.send_rate(),
                run.captured,
                run.capture_rate(),
                run.stats.drops,
                run.stats.freezes,
                run.core_share(run.sender_cpu) * 100.0,
                run.core_share(run.capture_cpu) * 100.0
            );
            runs.push(run);
        }
        variants.push((work, runs));
    }
    Ok(Live { variants })
}

/// What the capture thread hands back.
struct Captured {
    captured: u64,
    first_last: Option<(SystemTime, SystemTime)>,
    stats: LiveStats,
    cpu: Duration,
}

/// What the sender thread hands back.
struct Sent {
    sent: u64,
    send_time: Duration,
    cpu: Duration,
}

fn run_once(net: &Net, work: Work) -> anyhow::Result<Run> {
    let (opened_tx, opened_rx) = mpsc::channel();
    let probe_seen = Arc::new(AtomicBool::new(false));
    let all_sent = Arc::new(AtomicBool::new(false));

    let capture = {
        let namespace = net.capture_ns.clone();
        let (probe_seen, all_sent) = (probe_seen.clone(), all_sent.clone());
        thread::Builder::new().name("capture".to_owned()).spawn(
            move || -> anyhow::Result<Captured> {
                enter(&namespace)?;
                pin(CAPTURE_CORE)?;
                let tracker = match work {
                    Work::Walk => None,
                    Work::Parse => Some(tracker_with_calls()?),
                };
                let live = LiveCapture::open(SPAN, &LiveOptions::default())?;
                opened_tx.send(()).context("the sender is gone")?;
                capture(live, tracker, &probe_seen, &all_sent)
            },
        )?
    };
    let sender = {
        let namespace = net.sender_ns.clone();
        thread::Builder::new().name("sender".to_owned()).spawn(
            move || -> anyhow::Result<Sent> {
                enter(&namespace)?;
                pin(SENDER_CORE)?;
                let probe = UdpSocket::bind((SENDER_IP, 0))?;
                let socket = UdpSocket::bind((SENDER_IP, 0))?;
                socket.connect(PEER)?;
                opened_rx
                    .recv_timeout(Duration::from_secs(30))
                    .context("the capture did not open")?;
                probe_until_seen(&probe, &probe_seen)?;
                let cpu_before = thread_cpu();
                let (sent, send_time) = send(&socket)?;
                Ok(Sent {
                    sent,
                    send_time,
                    cpu: thread_cpu().saturating_sub(cpu_before),
                })
            },
        )?
    };
    let sent = sender.join();
    // Whatever became of the sender, the capture may stop once the ring is empty.
    all_sent.store(true, Ordering::Release);
    let captured = capture
        .join()
        .map_err(|_| anyhow::anyhow!("the capture thread panicked"))??;
    let sent = sent.map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    Ok(Run {
        sent: sent.sent,
        send_time: sent.send_time,
        captured: captured.captured,
        first_last: captured.first_last,
        stats: captured.stats,
        sender_cpu: sent.cpu,
        capture_cpu: captured.cpu,
    })
}

/// Walks the ring until everything is sent and a wait then comes up empty.
fn capture(
    mut live: LiveCapture,
    mut tracker: Option<Tracker>,
    probe_seen: &AtomicBool,
    all_sent: &AtomicBool,
) -> anyhow::Result<Captured> {
    let cpu_before = thread_cpu();
    let mut captured = 0u64;
    let mut first_last: Option<(SystemTime, SystemTime)> = None;
    let give_up = Instant::now() + Duration::from_secs(SECONDS + 60);
    loop {
        if Instant::now() > give_up {
            bail!("the traffic did not end within {} s", SECONDS + 60);
        }
        let sent_before = all_sent.load(Ordering::Acquire);
        // A block with frames in it is handed over at most 10 ms after its first frame, so an
        // empty wait this long after the sender finished means the ring is drained.
        let frames = live.next_block(Duration::from_millis(100), |frame| {
            if let Some(tracker) = tracker.as_mut() {
                let now = frame
                    .timestamp
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                tracker.handle_frame(now, frame.link_type, frame.data);
                while tracker.poll_event().is_some() {}
            }
            match udp_destination_port(frame.data) {
                Some(port) if port == PEER.port() && frame.data.len() == FRAME_LEN => {
                    captured += 1;
                    let first = first_last.map_or(frame.timestamp, |(first, _)| first);
                    first_last = Some((first, frame.timestamp));
                }
                Some(port) if port == PROBE.port() => probe_seen.store(true, Ordering::Release),
                _ => {}
            }
        })?;
        if frames == 0 && sent_before {
            break;
        }
    }
    Ok(Captured {
        captured,
        first_last,
        stats: live.stats()?,
        cpu: thread_cpu().saturating_sub(cpu_before),
    })
}

/// A tracker in the middle of [`CALLS`] answered calls, set up as in the reconstruction
/// benchmark's capture (none of them on the addresses the sender uses), so that every
/// datagram is looked up among their media addresses.
fn tracker_with_calls() -> anyhow::Result<Tracker> {
    let mut tracker = Tracker::new();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?;
    for call in (0..CALLS).map(bench_call) {
        for (from, to, message) in [
            (call.caller.sip, call.callee.sip, call.invite()),
            (call.callee.sip, call.caller.sip, call.ok()),
            (call.caller.sip, call.callee.sip, call.ack()),
        ] {
            tracker.handle_frame(
                now,
                LINKTYPE_ETHERNET,
                &synth::udp_frame(from, to, &message),
            );
        }
    }
    let mut answered = 0;
    while let Some(event) = tracker.poll_event() {
        if matches!(event, Event::Answered(_)) {
            answered += 1;
        }
    }
    if answered != CALLS {
        bail!("the tracker answered {answered} of {CALLS} calls set up");
    }
    Ok(tracker)
}

/// Sends probes until the capture says it saw one: then the link is known to carry frames.
fn probe_until_seen(socket: &UdpSocket, seen: &AtomicBool) -> anyhow::Result<()> {
    let started = Instant::now();
    while !seen.load(Ordering::Acquire) {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("no probe reached the capture in 10 s");
        }
        socket.send_to(b"probe", PROBE)?;
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Sends `TARGET_RATE * SECONDS` datagrams on the connected `socket`, [`BATCH`] to a system
/// call, each batch once its last datagram is due. A sender that cannot keep up sends
/// batches back to back, so the rate it reaches is what this machine can do. Returns the
/// datagrams sent and how long that took.
fn send(socket: &UdpSocket) -> anyhow::Result<(u64, Duration)> {
    let total = TARGET_RATE * SECONDS;
    let audio = synth::ulaw_tone(440.0, 0, PAYLOAD_LEN - 12);
    let mut payloads = synth::rtp(0, 0, 0, 0x7a91_0001, &audio).repeat(BATCH);
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
        (0..BATCH).map(|_| SendAncillaryBuffer::default()).collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let batch = (total - sent).min(BATCH as u64) as usize;
        let due =
            started + Duration::from_nanos((sent + batch as u64) * 1_000_000_000 / TARGET_RATE);
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // Sequence numbers and timestamps go up from datagram to datagram, as in a stream.
        for (i, rtp) in payloads.chunks_exact_mut(PAYLOAD_LEN).enumerate() {
            let number = sent + i as u64;
            rtp[2..4].copy_from_slice(&(number as u16).to_be_bytes());
            rtp[4..8].copy_from_slice(&((number as u32).wrapping_mul(160)).to_be_bytes());
        }
        let slices: Vec<[IoSlice<'_>; 1]> = payloads
            .chunks_exact(PAYLOAD_LEN)
            .take(batch)
            .map(|rtp| [IoSlice::new(rtp)])
            .collect();
        let mut messages: Vec<MMsgHdr<'_>> = slices
            .iter()
            .zip(controls.iter_mut())
            .map(|(slice, control)| MMsgHdr::new(slice, control))
            .collect();
        let mut done = 0;
        while done < messages.len() {
            match rustix::net::sendmmsg(socket, &mut messages[done..], SendFlags::empty()) {
                Ok(n) => done += n,
                Err(Errno::INTR | Errno::AGAIN | Errno::NOBUFS) => {}
                Err(errno) => return Err(errno).context("sendmmsg"),
            }
        }
        sent += batch as u64;
    }
    Ok((sent, started.elapsed()))
}

/// The UDP destination port of an Ethernet frame holding an IPv4 datagram.
fn udp_destination_port(frame: &[u8]) -> Option<u16> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    if *ip.get(9)? != 17 {
        return None;
    }
    let udp = ip.get(usize::from(ip.first()? & 0x0f) * 4..)?;
    Some(u16::from_be_bytes(udp.get(2..4)?.try_into().ok()?))
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// Moves the calling thread onto one core.
fn pin(core: usize) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(core);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("cannot pin a thread to core {core}"))
}

/// Moves the calling thread, and only it, into a namespace made by `ip netns add`.
fn enter(namespace: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new("/run/netns").join(namespace);
    let file = std::fs::File::open(&path)
        .with_context(|| format!("cannot open network namespace {namespace}"))?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("cannot enter network namespace {namespace}"))
}

/// Two network namespaces of the benchmark's own joined by a veth pair: the sender's, where
/// `send0` has 192.0.2.1/24 and a permanent neighbour entry for the peer, and the capture's,
/// where `span0` has no address. Both namespaces, and the veth pair with them, are deleted
/// on drop.
struct Net {
    capture_ns: String,
    sender_ns: String,
    /// The namespaces made so far, deleted on drop.
    made: Vec<String>,
}

impl Net {
    fn create() -> anyhow::Result<Net> {
        let pid = std::process::id();
        let mut net = Net {
            capture_ns: format!("tapline-bench-{pid}-capture"),
            sender_ns: format!("tapline-bench-{pid}-sender"),
            made: Vec::new(),
        };
        for namespace in [net.capture_ns.clone(), net.sender_ns.clone()] {
            ip(&["netns", "add", &namespace])?;
            net.made.push(namespace);
        }
        let (capture, sender) = (net.capture_ns.as_str(), net.sender_ns.as_str());
        let peer_mac = PEER_MAC.map(|byte| format!("{byte:02x}")).join(":");
        let sender_address = format!("{SENDER_IP}/24");
        let peer = PEER.ip().to_string();
        ip(&[
            "-n",
            capture,
            "link",
            "add",
            SPAN,
            "type",
            "veth",
            "peer",
            "name",
            SENDER_LINK,
            "netns",
            sender,
        ])?;
        // No IPv6 link-local addresses, so neither end sends frames of its own accord.
        ip(&[
            "-n",
            capture,
            "link",
            "set",
            SPAN,
            "addrgenmode",
            "none",
            "up",
        ])?;
        ip(&[
            "-n",
            sender,
            "address",
            "add",
            &sender_address,
            "dev",
            SENDER_LINK,
        ])?;
        ip(&[
            "-n",
            sender,
            "link",
            "set",
            SENDER_LINK,
            "addrgenmode",
            "none",
            "up",
        ])?;
        ip(&[
            "-n",
            sender,
            "neighbour",
            "add",
            &peer,
            "lladdr",
            &peer_mac,
            "dev",
            SENDER_LINK,
            "nud",
            "permanent",
        ])?;
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for namespace in &self.made {
            if let Err(err) = ip(&["netns", "delete", namespace]) {
                eprintln!("xtask: could not delete network namespace {namespace}: {err:#}");
            }
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run iproute2's ip")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

impl Live {
    /// The report's section on live capture.
    pub(super) fn write_section(&self, out: &mut String) -> anyhow::Result<()> {
        let target = TARGET_RATE as f64;
        writeln!(out, "## Live capture into the ring\n")?;
        writeln!(
            out,
            "Goal: **{} packets/s into the capture ring with 0 kernel drops** on this machine.\n",
            thousands(TARGET_RATE)
        )?;
        let walk = self
            .variants
            .iter()
            .find(|(work, _)| *work == Work::Walk)
            .map(|(_, runs)| runs.as_slice())
            .unwrap_or_default();
        let median_of = |runs: &[Run], value: fn(&Run) -> f64| {
            median(&mut runs.iter().map(value).collect::<Vec<_>>())
        };
        let walk_rate = median_of(walk, Run::send_rate);
        let walk_drops = walk.iter().map(|r| r.stats.drops).sum::<u64>();
        if !walk.is_empty() && walk.iter().all(Run::met_goal) {
            writeln!(
                out,
                "**Met**: in each of the {} runs with the walk alone the sender reached the \
                 rate (median {:.0} packets/s) and the kernel dropped no frame.\n",
                walk.len(),
                walk_rate
            )?;
        } else if walk_rate < target * RATE_TOLERANCE {
            writeln!(
                out,
                "**Not met**: this machine's sender reached {:.0} packets/s (median), short of \
                 the goal; at that rate the kernel dropped {walk_drops} frames over {} runs.\n",
                walk_rate,
                walk.len()
            )?;
        } else {
            writeln!(
                out,
                "**Not met**: the sender reached the rate (median {:.0} packets/s), but the \
                 kernel dropped {walk_drops} frames over {} runs.\n",
                walk_rate,
                walk.len()
            )?;
        }
        writeln!(
            out,
            "Traffic made by the benchmark in two network namespaces of its own, joined by a \
             veth pair. The sender, pinned to core {SENDER_CORE}, sends G.711-sized RTP \
             datagrams ({PAYLOAD_LEN}-byte UDP payloads: a 12-byte RTP header and 160 bytes of \
             audio; {FRAME_LEN}-byte frames) in one stream with `sendmmsg`, {BATCH} to a call, \
             paced to {} packets/s for {SECONDS} s. They go to a TEST-NET address whose static \
             neighbour entry points at a MAC address no interface has, like mirrored traffic. \
             The capture opens `LiveCapture` on the other end of the veth (no address, \
             promiscuous, the appliance's default ring of {} blocks of 1 MiB) on a thread \
             pinned to core {CAPTURE_CORE}. Run {RUNS} times for each kind of work on the \
             capture thread; the median row takes the median of each column.\n",
            thousands(TARGET_RATE),
            LiveOptions::default().block_count
        )?;
        writeln!(
            out,
            "| capture thread | run | sent, packets/s | sent | captured | kernel drops | ring \
             freezes | captured, packets/s | sender CPU | capture thread CPU |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for (work, runs) in &self.variants {
            for (i, run) in runs.iter().enumerate() {
                writeln!(
                    out,
                    "| {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.0}% | {:.0}% |",
                    work.describe(),
                    i + 1,
                    run.send_rate(),
                    run.sent,
                    run.captured,
                    run.stats.drops,
                    run.stats.freezes,
                    run.capture_rate(),
                    run.core_share(run.sender_cpu) * 100.0,
                    run.core_share(run.capture_cpu) * 100.0
                )?;
            }
            writeln!(
                out,
                "| {} | **median** | **{:.0}** | {:.0} | {:.0} | **{:.0}** | {:.0} | {:.0} | \
                 {:.0}% | {:.0}% |",
                work.describe(),
                median_of(runs, Run::send_rate),
                median_of(runs, |r| r.sent as f64),
                median_of(runs, |r| r.captured as f64),
                median_of(runs, |r| r.stats.drops as f64),
                median_of(runs, |r| r.stats.freezes as f64),
                median_of(runs, Run::capture_rate),
                median_of(runs, |r| r.core_share(r.sender_cpu) * 100.0),
                median_of(runs, |r| r.core_share(r.capture_cpu) * 100.0)
            )?;
        }
        let lost: Vec<String> = self
            .variants
            .iter()
            .flat_map(|(work, runs)| runs.iter().enumerate().map(move |(i, r)| (work, i, r)))
            .filter(|(_, _, r)| r.captured + r.stats.drops < r.sent)
            .map(|(work, i, r)| {
                format!(
                    "{} in run {} ({})",
                    r.sent - r.captured - r.stats.drops,
                    i + 1,
                    work.describe()
                )
            })
            .collect();
        if !lost.is_empty() {
            writeln!(
                out,
                "\nDatagrams sent but neither captured nor counted as kernel drops, so lost \
                 before the ring: {}.",
                lost.join("; ")
            )?;
        }
        writeln!(
            out,
            "\nSent, packets/s: datagrams sent over the time from the first `sendmmsg` to the \
             return of the last. Captured, packets/s: datagrams captured over the time between \
             the kernel's stamps on the first and the last. Ring freezes: times the ring was \
             full and capture stopped until a block came back. CPU: the thread's CPU time over \
             the sending time, as a share of one core. The kernel's work for each frame (the \
             veth, the copy into the ring) runs on the sending core, in the softirq that \
             follows each send, and counts as the sender's; on the appliance it runs on the \
             core taking the NIC's interrupts. The capture thread's is the walk of the ring \
             and, in the second kind of run, `Tracker::handle_frame` on every frame: link, IPv4 \
             and UDP parsing and the lookup among the media addresses of {CALLS} answered \
             calls set up before the run (the datagrams belong to none of them, so nothing is \
             decoded), and the tracker's once-a-second round of its calls.\n"
        )?;
        writeln!(
            out,
            "Reproduce: `cargo xtask bench` as root (it makes the network namespaces).\n"
        )?;
        Ok(())
    }
}

/// 500000 as "500,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_udp_over_ipv4_has_a_destination_port() {
        let rtp = synth::rtp(0, 1, 160, 7, &[0xff; 160]);
        let frame = synth::udp_frame(SocketAddrV4::new(SENDER_IP, 40_000), PEER, &rtp);
        assert_eq!(frame.len(), FRAME_LEN);
        assert_eq!(udp_destination_port(&frame), Some(PEER.port()));
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(udp_destination_port(&arp), None);
        assert_eq!(udp_destination_port(&frame[..30]), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(500_000), "500,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
