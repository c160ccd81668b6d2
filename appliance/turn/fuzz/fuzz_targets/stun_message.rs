//! Any bytes as a STUN message, a ChannelData message or the front of a TCP stream: decoding
//! and every accessor must return without panicking, and what decodes must re-encode to
//! something that decodes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_turn::framing::{self, ChannelData, FrameLen};
use tapline_turn::stun::{Message, MessageBuilder, attribute_type as attr};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let _ = message.check_integrity(b"key");
        let _ = message.unknown_required(|_| false);
        let _ = message.error_code();
        for t in [
            attr::XOR_MAPPED_ADDRESS,
            attr::XOR_PEER_ADDRESS,
            attr::XOR_RELAYED_ADDRESS,
        ] {
            let _ = message.xor_address(t);
        }
        let _ = (
            message.text(attr::USERNAME),
            message.u32_value(attr::LIFETIME),
        );
        let mut builder =
            MessageBuilder::new(message.class, message.method, &message.transaction_id);
        for attribute in message.attributes() {
            builder.add(attribute.attribute_type, attribute.value);
        }
        let bytes = builder.finish(None, true);
        assert!(Message::decode(&bytes).is_ok());
    }
    let _ = ChannelData::decode(data);
    let mut rest = data;
    while let FrameLen::Complete(len) = framing::frame_len(rest) {
        assert!(len > 0 && len <= rest.len());
        rest = &rest[len..];
    }
});
