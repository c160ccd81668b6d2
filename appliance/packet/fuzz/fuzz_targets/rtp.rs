//! Any bytes as an RTP packet: a parsed payload is always inside the packet.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_packet::rtp;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = rtp::parse(data) {
        assert!(packet.payload.len() + 12 <= data.len());
        assert!(packet.payload_type < 128);
    }
});
