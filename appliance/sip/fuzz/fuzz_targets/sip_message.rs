//! Any bytes, as a datagram or the front of a stream: `parse` and every accessor must return
//! without panicking, and a parsed message must account for bytes that exist.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_sip::message::{self, NameAddr, Replaces};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((message, consumed)) = message::parse(rest) {
        assert!(consumed > 0 && consumed <= rest.len());
        assert!(message.body.len() <= consumed);
        let _ = (message.is_request(), message.method(), message.status());
        let _ = (message.call_id(), message.cseq(), message.content_length());
        let _ = (
            message.content_type(),
            message.is_sdp(),
            message.contact_uri(),
        );
        let _ = (message.via_branch(), message.via_branches().count());
        let _ = (message.header("Max-Forwards"), message.headers("v").count());
        let _ = message.fields().count();
        let _ = message.replaces().map(Replaces::into_owned);
        for address in [message.from(), message.to(), message.refer_to()]
            .into_iter()
            .flatten()
        {
            let _ = (address.user(), address.embedded_replaces());
        }
        if message.is_sdp() {
            let _ = tapline_sip::sdp::parse(message.body);
        }
        rest = &rest[consumed..];
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tapline_sip::user_part(text);
        let _ = tapline_sip::host_ip(text);
        let _ = NameAddr::parse(text).map(|address| address.embedded_replaces());
        let _ = Replaces::parse(text);
    }
});
