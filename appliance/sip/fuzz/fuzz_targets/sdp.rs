//! Any bytes as a session description: `parse` and every derived value must return without
//! panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_sip::sdp;

fuzz_target!(|data: &[u8]| {
    let Ok(session) = sdp::parse(data) else {
        return;
    };
    for media in &session.media {
        let _ = media.effective_connection(&session);
        let _ = media.effective_direction(&session);
        let _ = media.is_on_hold(&session);
        let _ = media.is_srtp();
        let _ = media.payload_type_for("telephone-event");
        for &payload_type in &media.formats {
            let _ = media.encoding(payload_type);
        }
        for map in &media.rtpmap {
            let _ = map.encoding_is("opus");
        }
    }
});
