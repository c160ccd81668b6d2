//! Writing a STUN message.

use std::net::SocketAddr;

use super::attribute::{self, ErrorCode, attribute_type};
use super::integrity;
use super::{Class, HEADER_LEN, MAGIC_COOKIE, Method, TransactionId, message_type};

/// Which integrity attribute to sign a message with. A reply uses the kind its request came
/// with, so a client that only knows MESSAGE-INTEGRITY can check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityKind {
    Sha1,
    Sha256,
}

/// Builds one message: attributes in order, then [`MessageBuilder::finish`] signs it and adds
/// FINGERPRINT if asked.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    bytes: Vec<u8>,
}

impl MessageBuilder {
    pub fn new(class: Class, method: Method, transaction_id: &TransactionId) -> MessageBuilder {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&message_type(class, method).to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(transaction_id);
        MessageBuilder { bytes }
    }

    /// Appends an attribute, padded to 4 bytes with zeros. Values longer than 65,535 bytes
    /// cannot be written; the server never builds one (DATA is bounded by its input, a UDP
    /// datagram, and the rest are short).
    pub fn add(&mut self, attribute_type: u16, value: &[u8]) -> &mut MessageBuilder {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&attribute_type.to_be_bytes());
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(&value[..usize::from(len)]);
        let padding = usize::from(len).next_multiple_of(4) - usize::from(len);
        self.bytes.extend(std::iter::repeat_n(0, padding));
        self.set_length(self.bytes.len());
        self
    }

    pub fn add_xor_address(&mut self, attribute_type: u16, address: SocketAddr) -> &mut Self {
        let transaction_id = self.transaction_id();
        self.add(
            attribute_type,
            &attribute::encode_xor_address(address, &transaction_id),
        )
    }

    pub fn add_u32(&mut self, attribute_type: u16, value: u32) -> &mut MessageBuilder {
        self.add(attribute_type, &value.to_be_bytes())
    }

    pub fn add_error(&mut self, code: u16, reason: &str) -> &mut MessageBuilder {
        self.add(attribute_type::ERROR_CODE, &ErrorCode::encode(code, reason))
    }

    /// Signs the message with `key` (if any) and appends FINGERPRINT (if asked), returning the
    /// bytes to send.
    pub fn finish(
        mut self,
        integrity: Option<(IntegrityKind, &[u8])>,
        with_fingerprint: bool,
    ) -> Vec<u8> {
        if let Some((kind, key)) = integrity {
            match kind {
                IntegrityKind::Sha1 => {
                    let mac = integrity::hmac_sha1(&self.bytes, key);
                    self.add(attribute_type::MESSAGE_INTEGRITY, &mac);
                }
                IntegrityKind::Sha256 => {
                    let mac = integrity::hmac_sha256(&self.bytes, key, 32);
                    self.add(attribute_type::MESSAGE_INTEGRITY_SHA256, &mac);
                }
            }
        }
        if with_fingerprint {
            let crc = integrity::fingerprint(&self.bytes, self.bytes.len() + 8);
            self.add(attribute_type::FINGERPRINT, &crc.to_be_bytes());
        }
        self.bytes
    }

    fn transaction_id(&self) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&self.bytes[8..HEADER_LEN]);
        id
    }

    fn set_length(&mut self, total_len: usize) {
        let length = u16::try_from(total_len - HEADER_LEN).unwrap_or(u16::MAX);
        self.bytes[2..4].copy_from_slice(&length.to_be_bytes());
    }
}
