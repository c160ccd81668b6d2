//! The tracker on whole calls, built frame by frame on a virtual clock.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use tapline_calls::synth::{self, Call, Endpoint};
use tapline_calls::tracker::TRANSFER_WINDOW;
use tapline_calls::{EndReason, Event, Tracker};

const ETHERNET: u32 = 1;
/// Capture times start at an arbitrary, realistic epoch time.
const T0: Duration = Duration::from_secs(1_795_305_600);

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn phone() -> Endpoint {
    Endpoint {
        sip: addr("198.51.100.20:5060"),
        rtp: addr("198.51.100.20:16384"),
        user: "1001",
    }
}

fn pbx() -> Endpoint {
    Endpoint {
        sip: addr("198.51.100.10:5060"),
        rtp: addr("198.51.100.10:10000"),
        user: "15550100",
    }
}

fn ms(n: u64) -> Duration {
    T0 + Duration::from_millis(n)
}

/// A scripted capture: frames at virtual times, fed in time order.
#[derive(Default)]
struct Capture {
    frames: Vec<(Duration, Vec<u8>)>,
}

impl Capture {
    fn sip(&mut self, at: Duration, from: Endpoint, to: Endpoint, message: Vec<u8>) {
        self.frames
            .push((at, synth::udp_frame(from.sip, to.sip, &message)));
    }

    /// 20 ms RTP packets of a tone from `from` to `to`, `count` of them starting at `start`.
    fn tone(
        &mut self,
        start: Duration,
        from: Endpoint,
        to: Endpoint,
        hz: f64,
        ssrc: u32,
        count: u16,
    ) {
        for i in 0..count {
            let payload = synth::ulaw_tone(hz, u64::from(i) * 160, 160);
            let packet = synth::rtp(0, 1000 + i, 8000 + u32::from(i) * 160, ssrc, &payload);
            let at = start + Duration::from_millis(u64::from(i) * 20);
            self.frames
                .push((at, synth::udp_frame(from.rtp, to.rtp, &packet)));
        }
    }

    /// A whole call: answered at 1 s, `talk_packets` of audio each way, BYE from the caller.
    fn call(call: &Call, talk_packets: u16) -> (Capture, Duration) {
        let mut c = Capture::default();
        c.sip(ms(0), call.caller, call.callee, call.invite());
        c.sip(ms(10), call.callee, call.caller, call.ringing());
        c.sip(ms(1000), call.callee, call.caller, call.ok());
        c.sip(ms(1010), call.caller, call.callee, call.ack());
        c.tone(
            ms(1020),
            call.caller,
            call.callee,
            440.0,
            0xAAAA,
            talk_packets,
        );
        c.tone(
            ms(1025),
            call.callee,
            call.caller,
            1000.0,
            0xBBBB,
            talk_packets,
        );
        let bye = ms(1020 + u64::from(talk_packets) * 20 + 100);
        c.sip(bye, call.caller, call.callee, call.bye_from_caller());
        (c, bye)
    }

    fn run(mut self, tracker: &mut Tracker) -> Vec<Event> {
        self.frames.sort_by_key(|(at, _)| *at);
        let mut events = Vec::new();
        for (at, frame) in &self.frames {
            tracker.handle_frame(*at, ETHERNET, frame);
            events.extend(std::iter::from_fn(|| tracker.poll_event()));
        }
        events
    }
}

/// Interleaved stereo of one call, from its Audio events.
fn audio(events: &[Event]) -> (Vec<i16>, Vec<i16>) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for event in events {
        if let Event::Audio { samples, .. } = event {
            for frame in samples.chunks(2) {
                left.push(frame[0]);
                right.push(frame[1]);
            }
        }
    }
    (left, right)
}

/// Relative power of `hz` in `samples` (Goertzel), normalised by total power.
fn tone_share(samples: &[i16], rate: f64, hz: f64) -> f64 {
    let w = std::f64::consts::TAU * hz / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    power / (total * samples.len() as f64 / 2.0).max(1.0)
}

#[test]
fn a_plain_call_becomes_one_stereo_recording_as_long_as_the_call() {
    let call = Call::new("call-1@198.51.100.20", phone(), pbx());
    let (capture, bye) = Capture::call(&call, 150);
    let mut tracker = Tracker::new();
    let events = capture.run(&mut tracker);

    let Event::Answered(answered) = &events[0] else {
        panic!("first event: {:?}", events[0])
    };
    assert_eq!(answered.sip_call_id, "call-1@198.51.100.20");
    assert_eq!(answered.caller.user.as_deref(), Some("1001"));
    assert_eq!(answered.dialled.as_deref(), Some("15550100"));
    assert_eq!(answered.answered_at, Some(ms(1000)));
    assert_eq!(answered.sample_rate, 8000);

    let Some(Event::Ended(ended)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(ended.end_reason, Some(EndReason::ByeFromCaller));
    assert_eq!(ended.ended_at, Some(bye));
    assert_eq!(
        ended.codecs,
        [Some("PCMU".to_owned()), Some("PCMU".to_owned())]
    );
    for stream in ended.streams {
        assert_eq!(
            (stream.packets, stream.lost, stream.duplicates),
            (150, 0, 0)
        );
        assert!(stream.jitter_ms < 1.0, "{stream:?}");
    }

    let (left, right) = audio(&events);
    let expected = (bye - ms(1000)).as_secs_f64() * 8000.0;
    assert_eq!(
        left.len() as f64,
        expected.round(),
        "the recording is as long as the call"
    );
    // Caller on the left at 440 Hz, callee on the right at 1 kHz; while both talk.
    let talk = 400..20_000;
    assert!(tone_share(&left[talk.clone()], 8000.0, 440.0) > 0.9);
    assert!(tone_share(&right[talk.clone()], 8000.0, 1000.0) > 0.9);
    assert!(
        tone_share(&left[talk.clone()], 8000.0, 1000.0) < 0.01,
        "no crosstalk"
    );
    assert!(
        tone_share(&right[talk], 8000.0, 440.0) < 0.01,
        "no crosstalk"
    );
    assert_eq!(tracker.open_calls(), 0);
}

#[test]
fn lost_packets_are_counted_and_become_silence() {
    let call = Call::new("call-loss", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 100);
    // Drop caller packets 10..15 (5 packets = 100 ms).
    let caller_rtp = synth::udp_frame(call.caller.rtp, call.callee.rtp, &[]);
    let mut seen = 0;
    capture.frames.retain(|(_, f)| {
        if f[26..38] == caller_rtp[26..38] && f.len() > 100 && f[42] == 0x80 {
            seen += 1;
            !(11..=15).contains(&seen)
        } else {
            true
        }
    });
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(ended.streams[0].packets, 95);
    assert_eq!(ended.streams[0].lost, 5);
    let (left, _) = audio(&events);
    // Samples of packets 10..15 sit at 20 ms + 10 * 20 ms after the answer, i.e. 1760..2560.
    assert!(
        left[1760 + 8..2560 - 8].iter().all(|&s| s == 0),
        "the gap is silence"
    );
}

#[test]
fn reordered_and_duplicated_packets_land_in_place() {
    let call = Call::new("call-reorder", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 50);
    let (straight, _) = {
        let (c, _) = Capture::call(&call, 50);
        (audio(&c.run(&mut Tracker::new())), ())
    };
    // Swap two caller packets' capture times (20 ms apart) and send one twice.
    let rtp_index: Vec<usize> = capture
        .frames
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| f.len() > 100 && f[42] == 0x80 && f[26..30] == [198, 51, 100, 20])
        .map(|(i, _)| i)
        .collect();
    let (a, b) = (rtp_index[20], rtp_index[21]);
    let time_a = capture.frames[a].0;
    capture.frames[a].0 = capture.frames[b].0;
    capture.frames[b].0 = time_a;
    let duplicate = capture.frames[rtp_index[30]].clone();
    capture
        .frames
        .push((duplicate.0 + Duration::from_millis(3), duplicate.1));
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(
        (
            ended.streams[0].packets,
            ended.streams[0].duplicates,
            ended.streams[0].lost
        ),
        (50, 1, 0)
    );
    assert_eq!(audio(&events), straight, "same audio as without reordering");
}

#[test]
fn a_fragmented_invite_is_reassembled() {
    let mut call = Call::new("call-fragmented", phone(), pbx());
    // Enough extra headers to push the INVITE past a 576-byte MTU.
    call.invite_headers = (0..12)
        .map(|i| format!("X-Padding-{i}: {}", "x".repeat(60)))
        .collect();
    let (mut capture, _) = Capture::call(&call, 10);
    let invite_frame = capture
        .frames
        .iter()
        .position(|(at, _)| *at == ms(0))
        .unwrap();
    capture.frames.remove(invite_frame);
    let pieces =
        synth::fragmented_udp_frames(call.caller.sip, call.callee.sip, &call.invite(), 576, 7);
    assert!(pieces.len() >= 2);
    for (i, piece) in pieces.into_iter().enumerate().rev() {
        capture
            .frames
            .push((ms(0) + Duration::from_micros(i as u64), piece));
    }
    let events = capture.run(&mut Tracker::new());
    let Event::Answered(answered) = &events[0] else {
        panic!("{events:?}")
    };
    let padding: Vec<&str> = answered
        .invite_headers
        .iter()
        .filter(|(name, _)| name.starts_with("X-Padding"))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(padding.len(), 12);
    assert_eq!(padding[0], "X-Padding-0");
}

#[test]
fn rtp_from_behind_nat_is_matched_by_its_destination() {
    let call = Call::new("call-nat", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 50);
    // The phone's packets leave a NAT from another port than its SDP says.
    let natted = addr("203.0.113.5:40000");
    for (_, frame) in capture.frames.iter_mut() {
        if frame.len() > 100 && frame[42] == 0x80 && frame[26..30] == [198, 51, 100, 20] {
            let payload = frame[42..].to_vec();
            *frame = synth::udp_frame(natted, call.callee.rtp, &payload);
        }
    }
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(
        ended.streams[0].packets, 50,
        "caller's voice found by where it was going"
    );
    let (left, _) = audio(&events);
    assert!(tone_share(&left[400..7000], 8000.0, 440.0) > 0.9);
}

#[test]
fn an_ssrc_change_mid_call_keeps_the_audio_in_place() {
    let call = Call::new("call-ssrc", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 0);
    capture.tone(ms(1020), call.caller, call.callee, 440.0, 0x1111, 50);
    // A second source (after a transfer or re-INVITE) with unrelated numbering, 1 s later.
    let mut c2 = Capture::default();
    c2.tone(ms(2020), call.caller, call.callee, 440.0, 0x2222, 50);
    for (i, (at, mut frame)) in c2.frames.into_iter().enumerate() {
        let (sequence, timestamp) = (40_000 + i as u16, 3_000_000_000 + i as u32 * 160);
        frame[44..46].copy_from_slice(&sequence.to_be_bytes());
        frame[46..50].copy_from_slice(&timestamp.to_be_bytes());
        capture.frames.push((at, frame));
    }
    capture.frames.retain(|(_, f)| !f[42..].starts_with(b"BYE"));
    capture.sip(ms(3200), call.caller, call.callee, call.bye_from_caller());
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(ended.streams[0].ssrc_changes, 1);
    assert_eq!(ended.streams[0].packets, 100);
    let (left, _) = audio(&events);
    // The second source starts 1 s after the first: at sample 8160 (1020 ms after answer).
    assert!(
        left[8180..8300].iter().any(|&s| s.abs() > 1000),
        "second source's audio is placed by capture time"
    );
}

#[test]
fn unanswered_and_cancelled_calls_make_no_recording() {
    let call = Call::new("call-cancel", phone(), pbx());
    let mut capture = Capture::default();
    capture.sip(ms(0), call.caller, call.callee, call.invite());
    capture.sip(ms(10), call.callee, call.caller, call.ringing());
    let cancel = String::from_utf8(call.bye_from_caller())
        .unwrap()
        .replacen("BYE", "CANCEL", 1)
        .replace("3 BYE", "1 CANCEL");
    capture.sip(ms(3000), call.caller, call.callee, cancel.into_bytes());
    let mut tracker = Tracker::new();
    let events = capture.run(&mut tracker);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(tracker.open_calls(), 0);
    assert_eq!(tracker.stats.calls_unanswered, 1);
}

#[test]
fn a_call_whose_bye_was_missed_ends_after_going_quiet() {
    let call = Call::new("call-quiet", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 50);
    capture.frames.retain(|(_, f)| !f[42..].starts_with(b"BYE"));
    let mut tracker = Tracker::new();
    let mut events = capture.run(&mut tracker);
    assert!(matches!(events.last(), Some(Event::Audio { .. })));
    let last_rtp = ms(1025 + 49 * 20);
    tracker.handle_timeout(last_rtp + Duration::from_secs(61));
    events.extend(std::iter::from_fn(|| tracker.poll_event()));
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(ended.end_reason, Some(EndReason::Idle));
    assert_eq!(ended.ended_at, Some(last_rtp));
}

#[test]
fn encrypted_media_is_listed_as_unrecordable() {
    let call = Call::new("call-srtp", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 5);
    for (_, frame) in capture.frames.iter_mut() {
        if frame[42..].starts_with(b"INVITE") {
            let text = String::from_utf8(frame[42..].to_vec()).unwrap();
            let body_len = text.split("\r\n\r\n").nth(1).unwrap().len();
            let text = text.replace("RTP/AVP", "RTP/SAVP").replace(
                &format!("Content-Length: {body_len}"),
                &format!("Content-Length: {}", body_len + 1),
            );
            *frame = synth::udp_frame(call.caller.sip, call.callee.sip, text.as_bytes());
        }
    }
    let events = capture.run(&mut Tracker::new());
    assert!(
        matches!(&events[0], Event::Unrecordable { reason, .. } if reason.contains("SRTP")),
        "{events:?}"
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn hostile_bytes_never_panic_and_are_counted() {
    let mut tracker = Tracker::new();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let call = Call::new("call-fuzz", phone(), pbx());
    let good = synth::udp_frame(call.caller.sip, call.callee.sip, &call.invite());
    for i in 0..20_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut frame = good.clone();
        let at = (seed as usize) % frame.len();
        frame[at] = (seed >> 32) as u8;
        frame.truncate((seed >> 40) as usize % (frame.len() + 1));
        tracker.handle_frame(T0 + Duration::from_millis(i), ETHERNET, &frame);
        while tracker.poll_event().is_some() {}
    }
    assert!(tracker.stats.malformed.values().sum::<u64>() > 0);
}

#[test]
fn sip_over_tcp_is_framed_across_split_merged_resent_and_reordered_segments() {
    let call = Call::new("call-tcp", phone(), pbx());
    let (udp, bye) = Capture::call(&call, 25);
    // The same call, its SIP over one TCP connection each way instead of UDP.
    let mut capture = Capture::default();
    capture
        .frames
        .extend(udp.frames.into_iter().filter(|(_, f)| f[42] == 0x80));
    let (invite, ringing, ok, ack) = (call.invite(), call.ringing(), call.ok(), call.ack());
    let (a, b) = invite.split_at(invite.len() / 3);
    let (b, c) = b.split_at(b.len() / 2);
    let up = |seq: usize, bytes: &[u8]| {
        synth::tcp_frame(call.caller.sip, call.callee.sip, 5000 + seq as u32, bytes)
    };
    let down = |seq: usize, bytes: &[u8]| {
        synth::tcp_frame(call.callee.sip, call.caller.sip, 9000 + seq as u32, bytes)
    };
    // The INVITE in three segments: the last arrives before the middle one, and the first
    // is sent twice.
    capture.frames.push((ms(0), up(0, a)));
    capture.frames.push((ms(1), up(a.len() + b.len(), c)));
    capture.frames.push((ms(2), up(0, a)));
    capture.frames.push((ms(3), up(a.len(), b)));
    // 180 and 200 in one segment.
    capture
        .frames
        .push((ms(1000), down(0, &[ringing.as_slice(), &ok].concat())));
    capture.frames.push((ms(1010), up(invite.len(), &ack)));
    capture
        .frames
        .push((bye, up(invite.len() + ack.len(), &call.bye_from_caller())));
    let mut tracker = Tracker::new();
    let events = capture.run(&mut tracker);
    let Event::Answered(answered) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(answered.answered_at, Some(ms(1000)));
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(ended.end_reason, Some(EndReason::ByeFromCaller));
    assert_eq!(ended.streams[0].packets, 25);
    assert_eq!(tracker.stats.sip_messages, 5);
}

#[test]
fn garbage_on_a_sip_tcp_stream_is_skipped_to_the_next_message() {
    let call = Call::new("call-tcp-junk", phone(), pbx());
    let invite = call.invite();
    let junk = b"INVITE this is not a request line\r\n\r\n".to_vec();
    let stream = [junk.as_slice(), &invite].concat();
    let mut tracker = Tracker::new();
    tracker.handle_frame(
        ms(0),
        ETHERNET,
        &synth::tcp_frame(call.caller.sip, call.callee.sip, 1, &stream),
    );
    tracker.handle_frame(
        ms(500),
        ETHERNET,
        &synth::udp_frame(call.callee.sip, call.caller.sip, &call.ok()),
    );
    let Some(Event::Answered(answered)) = tracker.poll_event() else {
        panic!()
    };
    assert_eq!(answered.sip_call_id, "call-tcp-junk");
}

/// `message` with its SDP offering `rtpmap` on payload type `pt` instead of PCMU.
fn with_codec(message: Vec<u8>, pt: u8, rtpmap: &str) -> Vec<u8> {
    let text = String::from_utf8(message).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = body
        .replace("RTP/AVP 0 101", &format!("RTP/AVP {pt} 101"))
        .replace("a=rtpmap:0 PCMU/8000", &format!("a=rtpmap:{pt} {rtpmap}"));
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.starts_with("Content-Length:") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
}

#[test]
fn an_opus_call_is_recorded_at_48_khz() {
    let call = Call::new("call-opus", phone(), pbx());
    let mut capture = Capture::default();
    capture.sip(
        ms(0),
        call.caller,
        call.callee,
        with_codec(call.invite(), 111, "opus/48000/2"),
    );
    capture.sip(
        ms(1000),
        call.callee,
        call.caller,
        with_codec(call.ok(), 111, "opus/48000/2"),
    );
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    for i in 0..100u32 {
        let pcm: Vec<i16> = (0..960)
            .map(|n| {
                (((i * 960 + n) as f64 / 48_000.0 * 440.0 * std::f64::consts::TAU).sin() * 8000.0)
                    as i16
            })
            .collect();
        let payload = encoder.encode_vec(&pcm, 4000).unwrap();
        let packet = synth::rtp(111, i as u16, i * 960, 0xABC, &payload);
        let at = ms(1020 + u64::from(i) * 20);
        capture.frames.push((
            at,
            synth::udp_frame(call.caller.rtp, call.callee.rtp, &packet),
        ));
    }
    capture.sip(ms(3100), call.caller, call.callee, call.bye_from_caller());
    let events = capture.run(&mut Tracker::new());
    let Event::Answered(answered) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(answered.sample_rate, 48_000);
    let Some(Event::Ended(ended)) = events.last() else {
        panic!()
    };
    assert_eq!(ended.codecs[0].as_deref(), Some("opus"));
    assert_eq!(ended.streams[0].packets, 100);
    let (left, right) = audio(&events);
    assert_eq!(left.len(), 2100 * 48, "2.1 s at 48 kHz");
    assert!(tone_share(&left[24_000..90_000], 48_000.0, 440.0) > 0.9);
    assert!(right.iter().all(|&s| s == 0), "the callee sent nothing");
}

#[test]
fn hold_and_resume_are_counted_and_timed() {
    let call = Call::new("call-hold@198.51.100.20", phone(), pbx());
    let (mut capture, bye) = Capture::call(&call, 400);
    // On hold from 3 s to 5.5 s: the caller's sendonly offer, the callee's recvonly answer
    // (which must not end the hold), then a sendrecv re-INVITE and its answer.
    capture.sip(ms(3000), call.caller, call.callee, call.hold());
    capture.sip(ms(3020), call.callee, call.caller, call.hold_accepted());
    capture.sip(ms(5500), call.caller, call.callee, call.resume());
    capture.sip(ms(5520), call.callee, call.caller, call.resume_accepted());
    let mut tracker = Tracker::new();
    let events = capture.run(&mut tracker);
    let Some(Event::Ended(ended)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(ended.holds, 1);
    assert_eq!(ended.on_hold, Duration::from_millis(2500));
    assert_eq!(ended.ended_at, Some(bye));

    // A hold still on at the hang-up counts up to the hang-up.
    let call = Call::new("call-held-up@198.51.100.20", phone(), pbx());
    let (mut capture, bye) = Capture::call(&call, 200);
    capture.sip(ms(2000), call.caller, call.callee, call.hold());
    capture.sip(ms(2010), call.callee, call.caller, call.hold_accepted());
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(ended.holds, 1);
    assert_eq!(ended.on_hold, bye - ms(2000));
}

#[test]
fn early_media_sets_up_the_streams_and_the_recording_starts_at_the_answer() {
    // The callee's SDP comes only in the 183; the 200 OK has none. Ringback flows from the
    // callee before the answer and is not part of the recording, which, like the index's
    // START TIME, begins when the call is answered.
    let call = Call::new("call-early@198.51.100.20", phone(), pbx());
    let mut c = Capture::default();
    c.sip(ms(0), call.caller, call.callee, call.invite());
    c.sip(ms(10), call.callee, call.caller, call.session_progress());
    c.tone(ms(20), call.callee, call.caller, 425.0, 0xCCCC, 45);
    c.sip(ms(1000), call.callee, call.caller, call.ok_without_sdp());
    c.sip(ms(1010), call.caller, call.callee, call.ack());
    c.tone(ms(1020), call.caller, call.callee, 440.0, 0xAAAA, 100);
    c.tone(ms(1025), call.callee, call.caller, 1000.0, 0xBBBB, 100);
    let bye = ms(3200);
    c.sip(bye, call.caller, call.callee, call.bye_from_caller());
    let events = c.run(&mut Tracker::new());

    let Event::Answered(answered) = &events[0] else {
        panic!("first event: {:?}", events[0])
    };
    assert_eq!(answered.answered_at, Some(ms(1000)));
    let (left, right) = audio(&events);
    assert_eq!(
        left.len() as f64,
        ((bye - ms(1000)).as_secs_f64() * 8000.0).round()
    );
    let talk = 400..15_000;
    assert!(tone_share(&left[talk.clone()], 8000.0, 440.0) > 0.9);
    assert!(
        tone_share(&right[talk.clone()], 8000.0, 1000.0) > 0.9,
        "the callee's media, announced only in the 183, is matched"
    );
    assert!(
        tone_share(&right[talk], 8000.0, 425.0) < 0.01,
        "no ringback in the recording"
    );
    let Some(Event::Ended(ended)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(
        ended.streams[1].packets, 100,
        "early packets are not counted as the call's"
    );
}

#[test]
fn sip_over_tls_connections_are_listed_once_each() {
    let phone_tls = addr("198.51.100.20:40100");
    let other_phone_tls = addr("198.51.100.21:40200");
    let pbx_tls = addr("198.51.100.10:5061");
    let web = addr("198.51.100.10:443");
    // A ClientHello's record header and the start of its body, then application data.
    let hello = [0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c];
    let data = [0x17, 0x03, 0x03, 0x00, 0x20, 0xde, 0xad, 0xbe, 0xef];
    let mut capture = Capture::default();
    capture
        .frames
        .push((ms(0), synth::tcp_frame(phone_tls, pbx_tls, 1, &hello)));
    capture
        .frames
        .push((ms(5), synth::tcp_frame(pbx_tls, phone_tls, 1, &data)));
    capture
        .frames
        .push((ms(10), synth::tcp_frame(phone_tls, pbx_tls, 70, &data)));
    capture.frames.push((
        ms(20),
        synth::tcp_frame(other_phone_tls, pbx_tls, 1, &hello),
    ));
    // HTTPS to the same host is not SIP and is not listed.
    capture
        .frames
        .push((ms(30), synth::tcp_frame(phone_tls, web, 1, &hello)));
    let mut tracker = Tracker::new();
    let events = capture.run(&mut tracker);
    let listed: Vec<(SocketAddr, SocketAddr)> = events
        .iter()
        .filter_map(|e| match e {
            Event::EncryptedSignalling { client, server, .. } => Some((*client, *server)),
            _ => None,
        })
        .collect();
    assert_eq!(
        listed,
        [
            (phone_tls.into(), pbx_tls.into()),
            (other_phone_tls.into(), pbx_tls.into())
        ]
    );
    assert_eq!(tracker.stats.tls_segments, 4);
}

#[test]
fn a_refer_names_where_the_call_was_transferred() {
    let call = Call::new("call-refer@198.51.100.20", phone(), pbx());
    let (mut capture, _) = Capture::call(&call, 50);
    capture.sip(
        ms(1500),
        call.callee,
        call.caller,
        call.refer("sip:2002@198.51.100.30", None),
    );
    let events = capture.run(&mut Tracker::new());
    let Some(Event::Ended(ended)) = events.last() else {
        panic!("last event: {:?}", events.last())
    };
    assert_eq!(ended.referred_to.as_deref(), Some("sip:2002@198.51.100.30"));
}

/// The summary in the `Answered` event of the call `call_id`.
fn answered<'e>(events: &'e [Event], call_id: &str) -> &'e tapline_calls::CallSummary {
    events
        .iter()
        .find_map(|e| match e {
            Event::Answered(summary) if summary.sip_call_id == call_id => Some(summary),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer for {call_id}"))
}

#[test]
fn each_party_is_known_by_its_addresses_and_mac() {
    let mut call = Call::new("call-where@198.51.100.20", phone(), pbx());
    call.invite_headers = vec!["Contact: <sip:1001@10.20.30.40:5060;transport=udp>".into()];
    let (mut capture, _) = Capture::call(&call, 10);
    // The 200 OK comes from the desk phone's own MAC.
    let desk_phone = [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e];
    let ok = capture
        .frames
        .iter_mut()
        .find(|(at, _)| *at == ms(1000))
        .unwrap();
    ok.1[6..12].copy_from_slice(&desk_phone);
    let events = capture.run(&mut Tracker::new());
    let summary = answered(&events, &call.call_id);

    let caller = &summary.caller;
    assert_eq!(caller.signalling, Some("198.51.100.20".parse().unwrap()));
    assert_eq!(caller.contact, Some("10.20.30.40".parse().unwrap()));
    assert_eq!(caller.media, Some("198.51.100.20".parse().unwrap()));
    assert_eq!(caller.mac, Some([0x02, 0, 0, 0, 0, 1]));
    assert_eq!(
        caller.addresses(),
        [
            "198.51.100.20".parse::<std::net::IpAddr>().unwrap(),
            "10.20.30.40".parse().unwrap()
        ],
        "each address once"
    );

    let callee = &summary.callee;
    assert_eq!(callee.signalling, Some("198.51.100.10".parse().unwrap()));
    assert_eq!(callee.contact, None, "its responses carry no Contact");
    assert_eq!(callee.media, Some("198.51.100.10".parse().unwrap()));
    assert_eq!(callee.mac, Some(desk_phone), "the answer's sender");
}

#[test]
fn a_blind_transfer_links_the_new_call_to_the_one_that_referred_it() {
    let first = Call::new("call-first@198.51.100.20", phone(), pbx());
    let (mut capture, bye) = Capture::call(&first, 100);
    capture.sip(
        ms(1500),
        first.callee,
        first.caller,
        first.refer("sip:2002@198.51.100.30", None),
    );
    let colleague = Endpoint {
        sip: addr("198.51.100.30:5060"),
        rtp: addr("198.51.100.30:20000"),
        user: "2002",
    };
    // The transferee calls the target, naming the referrer.
    let mut transferred = Call::new("call-second@198.51.100.20", phone(), colleague);
    transferred.invite_headers = vec!["Referred-By: <sip:1001@198.51.100.20>".into()];
    // Another call to the same number afterwards is not a transfer: the REFER was used.
    let later = Call::new("call-third@198.51.100.20", phone(), colleague);
    // Nor is one after the transfer window, even to a number a REFER named.
    let mut capture_late = Capture::default();
    for (call, at) in [(&transferred, 1600), (&later, 1700)] {
        capture.sip(ms(at), call.caller, call.callee, call.invite());
        capture.sip(ms(at + 100), call.callee, call.caller, call.ok());
    }
    capture.sip(
        ms(1550),
        first.callee,
        first.caller,
        first.refer("sip:2003@198.51.100.31", None),
    );
    let too_late = Call::new(
        "call-fourth@198.51.100.20",
        phone(),
        Endpoint {
            user: "2003",
            ..colleague
        },
    );
    let late_at = ms(1550) + TRANSFER_WINDOW + Duration::from_secs(1);
    assert!(late_at > bye);
    capture_late.sip(late_at, too_late.caller, too_late.callee, too_late.invite());
    capture_late.sip(
        late_at + Duration::from_millis(100),
        too_late.callee,
        too_late.caller,
        too_late.ok(),
    );
    capture.frames.extend(capture_late.frames);
    let events = capture.run(&mut Tracker::new());

    assert_eq!(
        answered(&events, &transferred.call_id)
            .transferred_from
            .as_deref(),
        Some(first.call_id.as_str())
    );
    assert_eq!(answered(&events, &later.call_id).transferred_from, None);
    assert_eq!(answered(&events, &too_late.call_id).transferred_from, None);
    assert_eq!(answered(&events, &first.call_id).transferred_from, None);
}
