//! MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT and the long-term
//! credential keys.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// XORed into the CRC so that a FINGERPRINT tells STUN from other protocols whose packets
/// happen to carry a CRC-32 of themselves.
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The outcome of checking a message's integrity attribute against a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    Valid,
    Invalid,
    Missing,
}

/// FINGERPRINT over `before` (the message up to the attribute), with the header's length
/// field replaced as it reads once FINGERPRINT is appended: `total_len` is the message's
/// whole size then.
pub fn fingerprint(before: &[u8], total_len: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    hash_with_length(before, total_len, |part| crc.update(part));
    crc.finalize() ^ FINGERPRINT_XOR
}

/// Feeds `before` to `update` with its length field replaced by `total_len - 20`, which is
/// how both the HMACs and the CRC see the header (RFC 8489 §14.5, §14.7).
fn hash_with_length(before: &[u8], total_len: usize, mut update: impl FnMut(&[u8])) {
    // Callers only pass prefixes of decoded messages (at least a header) or of messages
    // being built, whose length fits 16 bits by construction.
    let length = u16::try_from(total_len.saturating_sub(super::HEADER_LEN)).unwrap_or(u16::MAX);
    if before.len() < super::HEADER_LEN {
        update(before);
        return;
    }
    update(&before[..2]);
    update(&length.to_be_bytes());
    update(&before[4..]);
}

pub(crate) fn hmac_sha1(before: &[u8], key: &[u8]) -> [u8; 20] {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    hash_with_length(before, before.len() + 24, |part| mac.update(part));
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac_sha256(before: &[u8], key: &[u8], value_len: usize) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    hash_with_length(before, before.len() + 4 + value_len, |part| {
        mac.update(part)
    });
    mac.finalize().into_bytes().into()
}

pub(crate) fn verify_sha1(before: &[u8], value: &[u8], key: &[u8]) -> IntegrityCheck {
    if value.len() != 20 {
        return IntegrityCheck::Invalid;
    }
    verdict(constant_time_eq(&hmac_sha1(before, key), value))
}

pub(crate) fn verify_sha256(before: &[u8], value: &[u8], key: &[u8]) -> IntegrityCheck {
    // RFC 8489 §14.6: it may be truncated to 16 bytes or more, in steps of 4.
    if value.len() < 16 || value.len() > 32 || !value.len().is_multiple_of(4) {
        return IntegrityCheck::Invalid;
    }
    let full = hmac_sha256(before, key, value.len());
    verdict(constant_time_eq(&full[..value.len()], value))
}

fn verdict(valid: bool) -> IntegrityCheck {
    if valid {
        IntegrityCheck::Valid
    } else {
        IntegrityCheck::Invalid
    }
}

/// Compares without stopping at the first difference, so timing does not reveal how much of
/// a forged HMAC was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The long-term key of RFC 5389 and RFC 8489 with PASSWORD-ALGORITHM MD5:
/// MD5(username ":" realm ":" password). The password is used as given: Tapline's passwords
/// are ASCII (generated, or base64 for the REST scheme), where OpaqueString changes nothing.
pub fn long_term_key_md5(username: &str, realm: &str, password: &str) -> Vec<u8> {
    let mut hasher = Md5::new();
    hasher.update(username.as_bytes());
    hasher.update(b":");
    hasher.update(realm.as_bytes());
    hasher.update(b":");
    hasher.update(password.as_bytes());
    hasher.finalize().to_vec()
}

/// The long-term key with PASSWORD-ALGORITHM SHA-256 (RFC 8489 §9.2.2).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(username.as_bytes());
    hasher.update(b":");
    hasher.update(realm.as_bytes());
    hasher.update(b":");
    hasher.update(password.as_bytes());
    hasher.finalize().to_vec()
}

/// USERHASH: SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(username.as_bytes());
    hasher.update(b":");
    hasher.update(realm.as_bytes());
    hasher.finalize().into()
}
