//! The RFC 5769 test vectors, round trips and malformed input.

use std::net::SocketAddr;

use super::*;

/// Hex with whitespace, as the RFC prints its vectors.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|d| match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        })
        .collect();
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// RFC 5769 §2.1.
fn sample_request() -> Vec<u8> {
    hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
         00 24 00 04 6e 00 01 ff
         80 29 00 08 93 2f f9 b1 51 26 3b 36
         00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
         00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
         80 28 00 04 e5 7a 3b cf")
}

/// RFC 5769 §2.2.
fn sample_ipv4_response() -> Vec<u8> {
    hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 08 00 01 a1 47 e1 12 a6 43
         00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
         80 28 00 04 c0 7d 4c 96")
}

/// RFC 5769 §2.3.
fn sample_ipv6_response() -> Vec<u8> {
    hex("01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
         00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
         80 28 00 04 c8 fb 0b 4c")
}

/// RFC 5769 §2.4.
fn sample_long_term_request() -> Vec<u8> {
    hex("00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
         00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
         00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46
                     53 54 76 79 36 34 73 41
         00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
         00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66")
}

#[test]
fn rfc5769_sample_request_decodes_and_verifies() {
    let bytes = sample_request();
    let message = Message::decode(&bytes).expect("the RFC's request decodes");
    assert_eq!(message.class, Class::Request);
    assert_eq!(message.method, Method::Binding);
    assert!(message.has_fingerprint());
    assert_eq!(
        message.text(attribute_type::SOFTWARE),
        Some("STUN test client")
    );
    assert_eq!(message.text(attribute_type::USERNAME), Some("evtj:h6vY"));
    assert_eq!(
        message.check_integrity(SHORT_TERM_PASSWORD.as_bytes()),
        IntegrityCheck::Valid
    );
    assert_eq!(
        message.check_integrity(b"not the password"),
        IntegrityCheck::Invalid
    );
}

#[test]
fn rfc5769_ipv4_response_decodes_verifies_and_reencodes() {
    let bytes = sample_ipv4_response();
    let message = Message::decode(&bytes).expect("the RFC's response decodes");
    assert_eq!(message.class, Class::SuccessResponse);
    let mapped: SocketAddr = "192.0.2.1:32853".parse().expect("literal");
    assert_eq!(
        message.xor_address(attribute_type::XOR_MAPPED_ADDRESS),
        Some(mapped)
    );
    assert_eq!(
        message.check_integrity(SHORT_TERM_PASSWORD.as_bytes()),
        IntegrityCheck::Valid
    );
    // The RFC pads SOFTWARE with a space where this encoder writes a zero, so the padding
    // byte is patched before signing; everything else must come out bit for bit.
    let mut builder = MessageBuilder::new(
        Class::SuccessResponse,
        Method::Binding,
        &message.transaction_id,
    );
    builder.add(attribute_type::SOFTWARE, b"test vector");
    builder.add_xor_address(attribute_type::XOR_MAPPED_ADDRESS, mapped);
    let mut encoded = builder.finish(None, false);
    encoded[35] = 0x20;
    assert_eq!(encoded[4..], bytes[4..48]);
    let mac = integrity::hmac_sha1(&encoded, SHORT_TERM_PASSWORD.as_bytes());
    assert_eq!(mac[..], bytes[52..72]);
    let crc = fingerprint(&bytes[..72], bytes.len());
    assert_eq!(crc.to_be_bytes(), bytes[bytes.len() - 4..]);
}

#[test]
fn rfc5769_ipv6_response_decodes_and_verifies() {
    let bytes = sample_ipv6_response();
    let message = Message::decode(&bytes).expect("the RFC's response decodes");
    let mapped: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .expect("literal");
    assert_eq!(
        message.xor_address(attribute_type::XOR_MAPPED_ADDRESS),
        Some(mapped)
    );
    assert_eq!(
        message.check_integrity(SHORT_TERM_PASSWORD.as_bytes()),
        IntegrityCheck::Valid
    );
    let reencoded = encode_xor_address(mapped, &message.transaction_id);
    assert_eq!(
        Some(&reencoded[..]),
        message.attribute(attribute_type::XOR_MAPPED_ADDRESS)
    );
}

#[test]
fn rfc5769_long_term_request_verifies_with_the_md5_key() {
    let bytes = sample_long_term_request();
    let message = Message::decode(&bytes).expect("the RFC's request decodes");
    let username = message.text(attribute_type::USERNAME).expect("USERNAME");
    assert_eq!(username, "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}");
    assert_eq!(
        message.text(attribute_type::NONCE),
        Some("f//499k954d6OL34oL9FSTvy64sA")
    );
    let realm = message.text(attribute_type::REALM).expect("REALM");
    assert_eq!(realm, "example.org");
    // "The\u{AD}M\u{AA}tr\u{2168}" after SASLprep.
    let key = long_term_key_md5(username, realm, "TheMatrIX");
    assert_eq!(message.check_integrity(&key), IntegrityCheck::Valid);
    let wrong = long_term_key_md5(username, realm, "TheMatrix");
    assert_eq!(message.check_integrity(&wrong), IntegrityCheck::Invalid);
}

#[test]
fn rfc8489_userhash_matches_appendix_b() {
    let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    let expected = hex("4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f
                        24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04");
    assert_eq!(userhash(username, "example.org")[..], expected[..]);
}

#[test]
fn message_types_round_trip() {
    for method in [
        Method::Binding,
        Method::Allocate,
        Method::Refresh,
        Method::Send,
        Method::Data,
        Method::CreatePermission,
        Method::ChannelBind,
        Method::Connect,
        Method::Other(0xABC),
    ] {
        for class in [
            Class::Request,
            Class::Indication,
            Class::SuccessResponse,
            Class::ErrorResponse,
        ] {
            assert_eq!(
                split_message_type(message_type(class, method)),
                (class, method)
            );
        }
    }
    assert_eq!(message_type(Class::Request, Method::Allocate), 0x0003);
    assert_eq!(
        message_type(Class::SuccessResponse, Method::Binding),
        0x0101
    );
    assert_eq!(message_type(Class::ErrorResponse, Method::Allocate), 0x0113);
    assert_eq!(message_type(Class::Indication, Method::Data), 0x0017);
}

#[test]
fn sha256_integrity_round_trips_and_may_be_truncated() {
    let id = [7u8; 12];
    let mut builder = MessageBuilder::new(Class::Request, Method::Allocate, &id);
    builder.add(attribute_type::USERNAME, b"alice");
    let bytes = builder.finish(Some((IntegrityKind::Sha256, b"key")), true);
    let message = Message::decode(&bytes).expect("own encoding decodes");
    assert!(message.has_integrity_sha256());
    assert_eq!(message.check_integrity(b"key"), IntegrityCheck::Valid);
    assert_eq!(message.check_integrity(b"yek"), IntegrityCheck::Invalid);
}

#[test]
fn attributes_after_message_integrity_are_ignored_but_fingerprint_is_kept() {
    let id = [1u8; 12];
    let mut builder = MessageBuilder::new(Class::Request, Method::Binding, &id);
    builder.add(attribute_type::USERNAME, b"alice");
    let mut bytes = builder.finish(Some((IntegrityKind::Sha1, b"key")), false);
    // A REALM smuggled in after MESSAGE-INTEGRITY.
    bytes.extend_from_slice(&[0x00, 0x14, 0x00, 0x04, b'e', b'v', b'i', b'l']);
    let length = u16::try_from(bytes.len() - HEADER_LEN).expect("small");
    bytes[2..4].copy_from_slice(&length.to_be_bytes());
    let message = Message::decode(&bytes).expect("decodes");
    assert_eq!(message.attribute(attribute_type::REALM), None);
    assert_eq!(message.check_integrity(b"key"), IntegrityCheck::Valid);
}

#[test]
fn malformed_messages_are_refused() {
    let good = sample_request();
    assert_eq!(
        Message::decode(&good[..19]).err(),
        Some(DecodeError::TooShort)
    );
    let mut bad_cookie = good.clone();
    bad_cookie[4] = 0;
    assert_eq!(
        Message::decode(&bad_cookie).err(),
        Some(DecodeError::NoMagicCookie)
    );
    let mut bad_fingerprint = good.clone();
    bad_fingerprint[107] ^= 1;
    assert_eq!(
        Message::decode(&bad_fingerprint).err(),
        Some(DecodeError::BadFingerprint)
    );
    assert!(matches!(
        Message::decode(&good[..good.len() - 4]),
        Err(DecodeError::LengthMismatch { .. })
    ));
    let mut channel_data = good.clone();
    channel_data[0] = 0x40;
    assert_eq!(
        Message::decode(&channel_data).err(),
        Some(DecodeError::NotStun)
    );
}

#[test]
fn every_prefix_and_every_bit_flip_of_the_vectors_decodes_without_panicking() {
    for vector in [
        sample_request(),
        sample_ipv4_response(),
        sample_ipv6_response(),
        sample_long_term_request(),
    ] {
        for end in 0..=vector.len() {
            let _ = Message::decode(&vector[..end]);
        }
        for bit in 0..vector.len() * 8 {
            let mut flipped = vector.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(message) = Message::decode(&flipped) {
                let _ = message.check_integrity(b"k");
                let _ = message.xor_address(attribute_type::XOR_MAPPED_ADDRESS);
                let _ = message.error_code();
                let _ = message.unknown_required(|_| false);
            }
        }
    }
}
