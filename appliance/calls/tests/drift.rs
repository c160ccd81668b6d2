//! Senders whose clocks are not the capture clock: an hour-long call whose two phones run
//! 200 ppm fast and 200 ppm slow, over a network that delays and reorders, on a virtual clock.
//! Each side plays tone bursts that start at known moments; the recording must keep every burst
//! where it was sent (both sides together), stay exactly as long as the call, and never click.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddrV4;
use std::time::Duration;

use tapline_calls::synth::{self, Call, Endpoint};
use tapline_calls::{Event, Tracker};
use tapline_media::g711;

const ETHERNET: u32 = 1;
const T0: Duration = Duration::from_secs(1_795_305_600);
const RATE: f64 = 8000.0;
/// The tones' amplitude, in 16-bit linear units.
const AMPLITUDE: f64 = 8000.0;
/// Bursts start every this many seconds (of real time) and last `BURST_S`.
const BURST_EVERY_S: f64 = 10.0;
const BURST_S: f64 = 4.0;
/// Fade in and out of each burst, so that its edges are no steps either.
const FADE_S: f64 = 0.02;
/// The least one-way delay of the network, and how much more some packets take.
const BASE_DELAY: Duration = Duration::from_millis(10);
const MAX_EXTRA_DELAY_MS: u64 = 40;

/// One side of the call: where it sends from and to, its tone, and its clock's error.
struct Sender {
    from: Endpoint,
    to: Endpoint,
    hz: f64,
    ppm: f64,
    ssrc: u32,
}

impl Sender {
    /// Seconds of real time from the first packet to sample `n` of this sender's clock.
    fn real_time(&self, n: f64) -> f64 {
        n / (RATE * (1.0 + self.ppm * 1e-6))
    }

    /// Sample `n` of what this side plays: a burst at every `BURST_EVERY_S` of real time.
    fn signal(&self, n: u64) -> f64 {
        let t = self.real_time(n as f64) % BURST_EVERY_S;
        if t >= BURST_S {
            return 0.0;
        }
        let edge = t.min(BURST_S - t) / FADE_S;
        let envelope = if edge >= 1.0 {
            1.0
        } else {
            0.5 - 0.5 * (edge * std::f64::consts::PI).cos()
        };
        envelope * AMPLITUDE * (std::f64::consts::TAU * self.hz * n as f64 / RATE).sin()
    }

    /// Packet `k` (20 ms of this sender's clock) as an RTP payload.
    fn packet(&self, k: u64) -> Vec<u8> {
        let payload: Vec<u8> = (k * 160..(k + 1) * 160)
            .map(|n| g711::linear_to_ulaw(self.signal(n) as i16))
            .collect();
        synth::rtp(
            0,
            (1000 + k) as u16,
            (8000 + k * 160) as u32,
            self.ssrc,
            &payload,
        )
    }

    /// Where, in samples of real time since the first packet was sent, each burst's sound
    /// first exceeds half the amplitude (as decoded).
    fn onsets(&self, seconds: f64) -> Vec<f64> {
        let per_burst = BURST_EVERY_S * RATE * (1.0 + self.ppm * 1e-6);
        (0..)
            .map(|j| (f64::from(j) * per_burst).floor() as u64)
            .take_while(|&start| self.real_time(start as f64) < seconds)
            .filter_map(|start| {
                // The fade-in is 160 samples long: the threshold is crossed within it.
                (start.saturating_sub(2)..start + 400).find_map(|n| {
                    let value = g711::ulaw_to_linear(g711::linear_to_ulaw(self.signal(n) as i16));
                    (f64::from(value).abs() > AMPLITUDE / 2.0)
                        .then(|| self.real_time(n as f64) * RATE)
                })
            })
            .collect()
    }
}

/// What is learnt of one channel of the recording while it streams past.
struct Channel {
    samples: u64,
    previous: Option<i16>,
    max_step: i32,
    max_step_at: u64,
    /// Consecutive silent samples seen just now.
    silent_run: u64,
    onsets: Vec<u64>,
}

impl Channel {
    /// A recording starts in silence: a burst at its start is an onset too.
    fn new() -> Channel {
        Channel {
            samples: 0,
            previous: None,
            max_step: 0,
            max_step_at: 0,
            silent_run: 800,
            onsets: Vec::new(),
        }
    }

    fn push(&mut self, sample: i16) {
        if let Some(previous) = self.previous {
            let step = (i32::from(sample) - i32::from(previous)).abs();
            if step > self.max_step {
                self.max_step = step;
                self.max_step_at = self.samples;
            }
        }
        if f64::from(sample).abs() > AMPLITUDE / 2.0 && self.silent_run >= 800 {
            self.onsets.push(self.samples);
        }
        if sample == 0 {
            self.silent_run += 1;
        } else if f64::from(sample).abs() > AMPLITUDE / 2.0 {
            self.silent_run = 0;
        }
        self.previous = Some(sample);
        self.samples += 1;
    }
}

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

/// A deterministic source of network delays (xorshift).
struct Network(u64);

impl Network {
    /// Most packets take the least delay; one in four is held up to `MAX_EXTRA_DELAY_MS`
    /// more, which reorders it behind the packets sent after it.
    fn delay(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let extra = if self.0.is_multiple_of(4) {
            (self.0 >> 8) % (MAX_EXTRA_DELAY_MS * 1000)
        } else {
            0
        };
        BASE_DELAY + Duration::from_micros(extra)
    }
}

/// Runs a call of `talk_s` seconds whose caller's clock is `caller_ppm` off and callee's
/// `callee_ppm`, and checks its recording.
fn drifting_call(talk_s: u64, caller_ppm: f64, callee_ppm: f64) {
    let phone = Endpoint {
        sip: addr("198.51.100.20:5060"),
        rtp: addr("198.51.100.20:16384"),
        user: "1001",
    };
    let pbx = Endpoint {
        sip: addr("198.51.100.10:5060"),
        rtp: addr("198.51.100.10:10000"),
        user: "15550100",
    };
    let call = Call::new("call-drift@198.51.100.20", phone, pbx);
    let senders = [
        Sender {
            from: phone,
            to: pbx,
            hz: 440.0,
            ppm: caller_ppm,
            ssrc: 0xAAAA,
        },
        Sender {
            from: pbx,
            to: phone,
            hz: 770.0,
            ppm: callee_ppm,
            ssrc: 0xBBBB,
        },
    ];
    let answered = T0 + Duration::from_millis(1000);
    // Both sides start sending 20 ms after the answer and stop 20 ms before the BYE.
    let media_start = answered + Duration::from_millis(20);
    let bye = answered + Duration::from_secs(talk_s);

    let mut tracker = Tracker::new();
    let mut channels = [Channel::new(), Channel::new()];
    let mut feed = |tracker: &mut Tracker, at: Duration, frame: &[u8]| {
        tracker.handle_frame(at, ETHERNET, frame);
        while let Some(event) = tracker.poll_event() {
            if let Event::Audio { samples, .. } = event {
                for frame in samples.chunks_exact(2) {
                    channels[0].push(frame[0]);
                    channels[1].push(frame[1]);
                }
            }
        }
    };
    for (at, from, to, message) in [
        (T0, phone, pbx, call.invite()),
        (T0 + Duration::from_millis(10), pbx, phone, call.ringing()),
        (answered, pbx, phone, call.ok()),
        (answered + Duration::from_millis(10), phone, pbx, call.ack()),
    ] {
        feed(
            &mut tracker,
            at,
            &synth::udp_frame(from.sip, to.sip, &message),
        );
    }

    // Packets in the order they are sent, each captured after its own delay: a heap holds
    // those still in flight, and hands each out once nothing sent later can overtake it.
    let mut network = Network(0x9E37_79B9_7F4A_7C15);
    let mut next = [0u64; 2];
    let mut in_flight = BinaryHeap::new();
    let sent_at =
        |s: &Sender, k: u64| media_start + Duration::from_secs_f64(s.real_time(k as f64 * 160.0));
    let last_send = bye - Duration::from_millis(20);
    loop {
        let side = (0..2)
            .filter(|&i| sent_at(&senders[i], next[i]) <= last_send)
            .min_by_key(|&i| sent_at(&senders[i], next[i]));
        let now = side.map_or(bye, |i| sent_at(&senders[i], next[i]));
        while let Some(&Reverse((at, i, k))) = in_flight.peek() {
            if at > now {
                break;
            }
            in_flight.pop();
            let s: &Sender = &senders[i];
            feed(
                &mut tracker,
                at,
                &synth::udp_frame(s.from.rtp, s.to.rtp, &s.packet(k)),
            );
        }
        let Some(i) = side else {
            break;
        };
        // The first packet of each side is not held up: the anchor is exact, so the bursts'
        // places can be predicted to the sample.
        let delay = if next[i] == 0 {
            BASE_DELAY
        } else {
            network.delay()
        };
        in_flight.push(Reverse((now + delay, i, next[i])));
        next[i] += 1;
    }
    feed(
        &mut tracker,
        bye,
        &synth::udp_frame(phone.sip, pbx.sip, &call.bye_from_caller()),
    );
    let ended = tracker.stats.clone();
    assert_eq!(tracker.open_calls(), 0, "the BYE ended the call: {ended:?}");

    let expected_frames = talk_s as f64 * RATE;
    for channel in &channels {
        assert!(
            (channel.samples as f64 - expected_frames).abs() <= 1.0,
            "the recording is as long as the call: {} frames for {talk_s} s",
            channel.samples
        );
    }

    // Where each burst should be: its time of sending, plus the least delay the first packet
    // was anchored on, in samples since the answer.
    let lead = (media_start - answered + BASE_DELAY).as_secs_f64() * RATE;
    // Slewing keeps each side within a few milliseconds of where it was sent, and so within
    // twice that of the other side; without it, they would be 0.7 s apart after an hour at
    // 200 ppm each way.
    let tolerance = 0.015 * RATE;
    let mut offsets = Vec::new();
    for (side, (sender, channel)) in senders.iter().zip(&channels).enumerate() {
        let expected = sender.onsets(talk_s as f64 - 0.1);
        assert_eq!(
            channel.onsets.len(),
            expected.len(),
            "side {side}: every burst is heard once"
        );
        let side_offsets: Vec<f64> = channel
            .onsets
            .iter()
            .zip(&expected)
            .map(|(&heard, &sent)| heard as f64 - (sent + lead))
            .collect();
        let worst = side_offsets.iter().fold(0.0f64, |w, o| w.max(o.abs()));
        eprintln!(
            "side {side} ({} ppm): {} bursts, worst offset {:.1} ms, last {:.1} ms, max step {} \
             at sample {}",
            sender.ppm,
            side_offsets.len(),
            worst / RATE * 1000.0,
            side_offsets.last().copied().unwrap_or_default() / RATE * 1000.0,
            channel.max_step,
            channel.max_step_at
        );
        assert!(
            worst <= tolerance,
            "side {side} ({} ppm): a burst is {:.1} ms from where it was sent",
            sender.ppm,
            worst / RATE * 1000.0
        );
        // A clean tone moves at most 2·A·sin(π·f/8000) from one sample to the next; G.711
        // adds up to half a quantisation step (256 near the peak) to each sample. A sample
        // dropped or repeated carelessly, or a gap, steps further.
        let allowed = 2.0 * AMPLITUDE * (std::f64::consts::PI * sender.hz / RATE).sin() + 512.0;
        assert!(
            f64::from(channel.max_step) <= allowed,
            "side {side}: a click: a step of {} at sample {}, where the tone moves at most \
             {allowed:.0}",
            channel.max_step,
            channel.max_step_at
        );
        offsets.push(side_offsets);
    }
    let apart = offsets[0]
        .iter()
        .zip(&offsets[1])
        .fold(0.0f64, |w, (a, b)| w.max((a - b).abs()));
    eprintln!(
        "the sides are at most {:.1} ms apart",
        apart / RATE * 1000.0
    );
    assert!(
        apart <= 2.0 * tolerance,
        "the two sides drift apart by {:.1} ms",
        apart / RATE * 1000.0
    );
}

#[test]
fn an_hour_with_clocks_200_ppm_apart_either_way_stays_aligned_without_clicks() {
    drifting_call(3600, 200.0, -200.0);
}

#[test]
fn clocks_1000_ppm_off_are_followed_too() {
    drifting_call(600, -1000.0, 1000.0);
}

#[test]
fn exact_clocks_are_left_alone() {
    drifting_call(120, 0.0, 0.0);
}
