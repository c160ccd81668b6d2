//! The tracker alone on a capture of concurrent G.711 calls built in memory: how many frames
//! a second one core takes through `handle_frame` and `poll_event` (parse, track, decode, lay
//! on the timeline; no files). `cargo xtask bench` measures the whole path; this isolates the
//! core, for comparing a change before and after on a machine that is busy.
//!
//! `cargo run --release -p tapline-calls --example tracker_throughput [CALLS] [SECONDS] [RUNS]`

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use tapline_calls::synth::{self, Call, Endpoint};
use tapline_calls::{Event, Tracker};

const ETHERNET: u32 = 1;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let mut next = |default: u64| args.next().and_then(Result::ok).unwrap_or(default);
    let calls = next(2000) as usize;
    let seconds = next(8);
    let runs = next(5);
    let frames = capture(calls, seconds);
    let rtp = frames.len() as u64;
    let mut rates = Vec::new();
    for run in 1..=runs {
        let mut tracker = Tracker::new();
        let mut audio = 0u64;
        let started = Instant::now();
        let cpu_started = thread_cpu();
        for (at, frame) in &frames {
            tracker.handle_frame(*at, ETHERNET, frame);
            while let Some(event) = tracker.poll_event() {
                if let Event::Audio { samples, .. } = event {
                    audio += samples.len() as u64;
                }
            }
        }
        let end = frames.last().map_or(Duration::ZERO, |(at, _)| *at);
        tracker.finish(end);
        while let Some(event) = tracker.poll_event() {
            if let Event::Audio { samples, .. } = event {
                audio += samples.len() as u64;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = (thread_cpu() - cpu_started).as_secs_f64();
        // Per CPU-second: what the work costs the core, whatever else the machine runs.
        let rate = rtp as f64 / cpu;
        eprintln!(
            "run {run}: {rtp} frames in {elapsed:.3} s ({cpu:.3} s CPU): {rate:.0} frames per \
             CPU-second ({audio} samples out)"
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median {:.0} frames per CPU-second over {runs} runs ({calls} calls x {seconds} s)",
        rates[rates.len() / 2]
    );
}

/// Time this thread has spent on a CPU, from the scheduler's own count.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// The frames of `calls` concurrent calls, as `cargo xtask bench` generates them.
fn capture(calls: usize, seconds: u64) -> Vec<(Duration, Vec<u8>)> {
    let start = Duration::from_secs(1_800_000_000);
    let calls: Vec<Call> = (0..calls).map(bench_call).collect();
    let spacing = Duration::from_micros(2_000_000 / calls.len().max(1) as u64);
    let mut frames = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let at = start + spacing * i as u32;
        frames.push((
            at,
            synth::udp_frame(call.caller.sip, call.callee.sip, &call.invite()),
        ));
        frames.push((
            at,
            synth::udp_frame(call.callee.sip, call.caller.sip, &call.ok()),
        ));
        frames.push((
            at,
            synth::udp_frame(call.caller.sip, call.callee.sip, &call.ack()),
        ));
    }
    let talk_start = start + Duration::from_secs(2);
    let ticks = seconds * 50;
    let up = synth::ulaw_tone(440.0, 0, 160);
    let down = synth::ulaw_tone(1000.0, 0, 160);
    for tick in 0..ticks {
        let at = talk_start + Duration::from_millis(tick * 20);
        for (i, call) in calls.iter().enumerate() {
            let (sequence, timestamp) = (tick as u16, tick as u32 * 160);
            let a = synth::rtp(0, sequence, timestamp, 0x1000_0000 + i as u32, &up);
            let b = synth::rtp(0, sequence, timestamp, 0x2000_0000 + i as u32, &down);
            frames.push((at, synth::udp_frame(call.caller.rtp, call.callee.rtp, &a)));
            frames.push((at, synth::udp_frame(call.callee.rtp, call.caller.rtp, &b)));
        }
    }
    let end = talk_start + Duration::from_millis(ticks * 20);
    for call in &calls {
        frames.push((
            end,
            synth::udp_frame(call.caller.sip, call.callee.sip, &call.bye_from_caller()),
        ));
    }
    frames
}

fn bench_call(i: usize) -> Call {
    let phone = Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8);
    let pbx = Ipv4Addr::new(198, 19, 0, 10);
    let caller = Endpoint {
        sip: SocketAddrV4::new(phone, 5060),
        rtp: SocketAddrV4::new(phone, 16384),
        user: "1001",
    };
    let callee = Endpoint {
        sip: SocketAddrV4::new(pbx, 5060),
        rtp: SocketAddrV4::new(pbx, 10_000 + 2 * i as u16),
        user: "15550100",
    };
    Call::new(&format!("bench-{i}@198.19.0.10"), caller, callee)
}
