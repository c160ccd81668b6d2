//! A sequence of frames (each prefixed by a 2-byte length) at advancing times, mixed with a
//! well-formed call so the fuzzer reaches the dialog and media paths: the tracker must never
//! panic, and every call it reports must be consistent.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tapline_calls::synth::{self, Call, Endpoint};
use tapline_calls::{Event, Tracker};

fuzz_target!(|data: &[u8]| {
    let phone = Endpoint { sip: "198.51.100.20:5060".parse().unwrap(), rtp: "198.51.100.20:16384".parse().unwrap(), user: "1001" };
    let pbx = Endpoint { sip: "198.51.100.10:5060".parse().unwrap(), rtp: "198.51.100.10:10000".parse().unwrap(), user: "2002" };
    let call = Call::new("fuzz", phone, pbx);
    let mut tracker = Tracker::new();
    let t0 = Duration::from_secs(1_800_000_000);
    let setup = [(phone, pbx, call.invite()), (pbx, phone, call.ok())];
    for (i, (from, to, message)) in setup.into_iter().enumerate() {
        tracker.handle_frame(t0 + Duration::from_millis(i as u64), 1, &synth::udp_frame(from.sip, to.sip, &message));
    }
    let mut rest = data;
    let mut at = t0 + Duration::from_millis(10);
    while rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (frame, after) = rest[2..].split_at(len);
        // Alternate raw frames with the same bytes as RTP or SIP payload on the call's routes.
        match frame.first().map(|b| b % 3) {
            Some(0) => tracker.handle_frame(at, 1, frame),
            Some(1) => tracker.handle_frame(at, 1, &synth::udp_frame(phone.rtp, pbx.rtp, frame)),
            _ => tracker.handle_frame(at, 1, &synth::udp_frame(pbx.sip, phone.sip, frame)),
        }
        at += Duration::from_millis(u64::from(frame.len() as u8));
        rest = after;
    }
    tracker.finish(at);
    while let Some(event) = tracker.poll_event() {
        match event {
            Event::Audio { samples, .. } => assert!(samples.len() % 2 == 0),
            Event::Ended(summary) => assert!(summary.ended_at >= summary.answered_at),
            _ => {}
        }
    }
    assert_eq!(tracker.open_calls(), 0);
});
