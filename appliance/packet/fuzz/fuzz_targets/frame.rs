//! Any bytes as a captured frame of any link type, through every layer and the fragment
//! reassembler: nothing may panic, and the reassembler must stay within its bounds.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tapline_packet::{ip, link, rtp, transport};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else { return };
    let link_type = [1, 101, 113, 276, 228, 229, 147][usize::from(selector) % 7];
    let mut reassembler = ip::Reassembler::default();
    // The same bytes as several frames, so fragments can meet their siblings.
    for (i, chunk) in frame.chunks(frame.len() / 3 + 1).chain([frame]).enumerate() {
        let Ok(network) = link::network(link_type, chunk) else { continue };
        let Ok(packet) = ip::parse(network.packet) else { continue };
        let Some(payload) = reassembler.handle(Duration::from_millis(i as u64), &packet) else { continue };
        assert!(payload.len() <= 65_535);
        match packet.protocol {
            ip::PROTO_UDP => {
                if let Ok(udp) = transport::udp(&payload) {
                    let _ = rtp::parse(udp.payload);
                }
            }
            ip::PROTO_TCP => {
                let _ = transport::tcp(&payload);
            }
            _ => {}
        }
    }
    assert!(reassembler.pending() <= ip::Reassembler::MAX_PENDING);
    reassembler.expire(Duration::from_secs(3600));
    assert_eq!(reassembler.pending(), 0);
});
