//! Reading one whole STUN message.

use std::net::SocketAddr;

use super::attribute::{self, ErrorCode, attribute_type};
use super::integrity::{self, IntegrityCheck};
use super::{Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, split_message_type};

/// Why bytes are not a STUN message this crate will look at. Every case means "drop it".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("shorter than a STUN header")]
    TooShort,
    #[error("the first two bits are not zero")]
    NotStun,
    #[error("no magic cookie (an RFC 3489 message)")]
    NoMagicCookie,
    #[error("the length field is not a multiple of 4")]
    UnalignedLength,
    #[error("the length field says {declared} bytes of attributes, {present} are present")]
    LengthMismatch { declared: usize, present: usize },
    #[error("attribute {attribute_type:#06x} runs past the end of the message")]
    TruncatedAttribute { attribute_type: u16 },
    #[error("an attribute follows FINGERPRINT")]
    AttributeAfterFingerprint,
    #[error("FINGERPRINT does not match the message")]
    BadFingerprint,
}

/// One attribute as it appears in the message: its type and its unpadded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub attribute_type: u16,
    pub value: &'a [u8],
}

/// Where an integrity attribute sits, so it can be checked against a key later.
#[derive(Debug, Clone, Copy)]
struct IntegrityPosition {
    /// Offset of the attribute's header: the HMAC covers everything before it.
    offset: usize,
    value_len: usize,
}

/// A decoded STUN message borrowing from its bytes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub class: Class,
    pub method: Method,
    pub transaction_id: TransactionId,
    bytes: &'a [u8],
    /// Attributes in order, without the integrity attributes and FINGERPRINT, and without
    /// what RFC 8489 §14.5 says to ignore after MESSAGE-INTEGRITY.
    attributes: Vec<RawAttribute<'a>>,
    message_integrity: Option<IntegrityPosition>,
    message_integrity_sha256: Option<IntegrityPosition>,
    has_fingerprint: bool,
}

impl<'a> Message<'a> {
    /// Decodes exactly one message: `bytes` must be the whole datagram, or one frame cut from
    /// a stream by [`crate::framing::frame_len`]. A FINGERPRINT, when present, must match.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let header: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::TooShort)?;
        if header[0] & 0xC0 != 0 {
            return Err(DecodeError::NotStun);
        }
        if u32::from_be_bytes([header[4], header[5], header[6], header[7]]) != MAGIC_COOKIE {
            return Err(DecodeError::NoMagicCookie);
        }
        let declared = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if declared % 4 != 0 {
            return Err(DecodeError::UnalignedLength);
        }
        let present = bytes.len() - HEADER_LEN;
        if declared != present {
            return Err(DecodeError::LengthMismatch { declared, present });
        }
        let (class, method) = split_message_type(u16::from_be_bytes([header[0], header[1]]));
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&header[8..20]);

        let mut message = Message {
            class,
            method,
            transaction_id,
            bytes,
            attributes: Vec::new(),
            message_integrity: None,
            message_integrity_sha256: None,
            has_fingerprint: false,
        };
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            if message.has_fingerprint {
                return Err(DecodeError::AttributeAfterFingerprint);
            }
            let head = bytes
                .get(offset..offset + 4)
                .ok_or(DecodeError::TruncatedAttribute { attribute_type: 0 })?;
            let attribute_type = u16::from_be_bytes([head[0], head[1]]);
            let value_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value_start = offset + 4;
            let value = bytes
                .get(value_start..value_start + value_len)
                .ok_or(DecodeError::TruncatedAttribute { attribute_type })?;
            let padded_end = value_start + value_len.next_multiple_of(4);
            if padded_end > bytes.len() {
                return Err(DecodeError::TruncatedAttribute { attribute_type });
            }
            let position = IntegrityPosition { offset, value_len };
            match attribute_type {
                attribute_type::FINGERPRINT => {
                    if value_len != 4 {
                        return Err(DecodeError::BadFingerprint);
                    }
                    let expected = integrity::fingerprint(&bytes[..offset], offset + 8);
                    if value != expected.to_be_bytes() {
                        return Err(DecodeError::BadFingerprint);
                    }
                    message.has_fingerprint = true;
                }
                attribute_type::MESSAGE_INTEGRITY_SHA256 => {
                    if message.message_integrity_sha256.is_none() {
                        message.message_integrity_sha256 = Some(position);
                    }
                }
                attribute_type::MESSAGE_INTEGRITY => {
                    // Only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow it; a second
                    // MESSAGE-INTEGRITY, like anything else after the first, is ignored.
                    if message.message_integrity.is_none()
                        && message.message_integrity_sha256.is_none()
                    {
                        message.message_integrity = Some(position);
                    }
                }
                _ => {
                    let after_integrity = message.message_integrity.is_some()
                        || message.message_integrity_sha256.is_some();
                    if !after_integrity {
                        message.attributes.push(RawAttribute {
                            attribute_type,
                            value,
                        });
                    }
                }
            }
            offset = padded_end;
        }
        Ok(message)
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every attribute that counts, in order (integrity attributes and FINGERPRINT excluded).
    pub fn attributes(&self) -> &[RawAttribute<'a>] {
        &self.attributes
    }

    /// The first attribute of this type, as RFC 8489 §14 asks receivers to use.
    pub fn attribute(&self, attribute_type: u16) -> Option<&'a [u8]> {
        self.attributes
            .iter()
            .find(|a| a.attribute_type == attribute_type)
            .map(|a| a.value)
    }

    /// Every attribute of this type, in order (CreatePermission takes several peers).
    pub fn attributes_of(&self, attribute_type: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |a| a.attribute_type == attribute_type)
            .map(|a| a.value)
    }

    pub fn has(&self, attribute_type: u16) -> bool {
        self.attribute(attribute_type).is_some()
    }

    pub fn has_fingerprint(&self) -> bool {
        self.has_fingerprint
    }

    pub fn has_integrity(&self) -> bool {
        self.message_integrity.is_some() || self.message_integrity_sha256.is_some()
    }

    pub fn has_integrity_sha256(&self) -> bool {
        self.message_integrity_sha256.is_some()
    }

    /// The comprehension-required attribute types that `known` does not accept, without
    /// repeats, for a 420 reply.
    pub fn unknown_required(&self, known: impl Fn(u16) -> bool) -> Vec<u16> {
        let mut unknown: Vec<u16> = Vec::new();
        for attribute in &self.attributes {
            let t = attribute.attribute_type;
            if attribute::is_comprehension_required(t) && !known(t) && !unknown.contains(&t) {
                unknown.push(t);
            }
        }
        unknown
    }

    /// Checks the integrity attributes against `key`. MESSAGE-INTEGRITY-SHA256 wins when both
    /// are present (RFC 8489 §9.2.4 lets the receiver choose the stronger).
    pub fn check_integrity(&self, key: &[u8]) -> IntegrityCheck {
        if let Some(position) = self.message_integrity_sha256 {
            let value = &self.bytes[position.offset + 4..position.offset + 4 + position.value_len];
            return integrity::verify_sha256(&self.bytes[..position.offset], value, key);
        }
        if let Some(position) = self.message_integrity {
            let value = &self.bytes[position.offset + 4..position.offset + 4 + position.value_len];
            return integrity::verify_sha1(&self.bytes[..position.offset], value, key);
        }
        IntegrityCheck::Missing
    }

    /// The value of a text attribute (USERNAME, REALM, NONCE, SOFTWARE), if it is UTF-8.
    pub fn text(&self, attribute_type: u16) -> Option<&'a str> {
        std::str::from_utf8(self.attribute(attribute_type)?).ok()
    }

    pub fn xor_address(&self, attribute_type: u16) -> Option<SocketAddr> {
        attribute::decode_xor_address(self.attribute(attribute_type)?, &self.transaction_id)
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::decode(self.attribute(attribute_type::ERROR_CODE)?)
    }

    /// A four-byte attribute read as a number (LIFETIME).
    pub fn u32_value(&self, attribute_type: u16) -> Option<u32> {
        let value: [u8; 4] = self.attribute(attribute_type)?.try_into().ok()?;
        Some(u32::from_be_bytes(value))
    }
}
