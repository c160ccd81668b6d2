//! STUN messages (RFC 8489, read compatibly with RFC 5389): the header, the attributes and the
//! integrity and fingerprint checks.
//!
//! [`Message::decode`] checks the framing of one whole message and borrows its attributes;
//! [`MessageBuilder`] writes one, with MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and
//! FINGERPRINT computed as the last steps. Neither keeps state between calls.
//!
//! **Invariant:** no input makes [`Message::decode`] or any accessor panic, and decoding
//! allocates at most one small entry per attribute present in the input.

mod attribute;
mod decode;
mod encode;
mod integrity;

pub use attribute::{
    AddressFamily, ErrorCode, PasswordAlgorithm, attribute_type, decode_address,
    decode_xor_address, encode_address, encode_xor_address, is_comprehension_required,
};
pub use decode::{DecodeError, Message, RawAttribute};
pub use encode::{IntegrityKind, MessageBuilder};
pub use integrity::{
    IntegrityCheck, fingerprint, long_term_key_md5, long_term_key_sha256, userhash,
};

/// The fixed value in every RFC 5389/8489 header; RFC 3489 messages (without it) are not
/// answered.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Bytes in a STUN header.
pub const HEADER_LEN: usize = 20;

/// The 96-bit transaction ID that pairs a response with its request.
pub type TransactionId = [u8; 12];

/// The class bits of a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

/// The STUN and TURN methods this crate knows by name; any other 12-bit value decodes as
/// `Other` so that an unknown method can be answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Binding,
    Allocate,
    Refresh,
    Send,
    Data,
    CreatePermission,
    ChannelBind,
    /// RFC 6062 TCP allocations: recognised, not yet served.
    Connect,
    ConnectionBind,
    ConnectionAttempt,
    Other(u16),
}

impl Method {
    pub fn from_code(code: u16) -> Method {
        match code {
            0x001 => Method::Binding,
            0x003 => Method::Allocate,
            0x004 => Method::Refresh,
            0x006 => Method::Send,
            0x007 => Method::Data,
            0x008 => Method::CreatePermission,
            0x009 => Method::ChannelBind,
            0x00A => Method::Connect,
            0x00B => Method::ConnectionBind,
            0x00C => Method::ConnectionAttempt,
            other => Method::Other(other & 0x0FFF),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Method::Binding => 0x001,
            Method::Allocate => 0x003,
            Method::Refresh => 0x004,
            Method::Send => 0x006,
            Method::Data => 0x007,
            Method::CreatePermission => 0x008,
            Method::ChannelBind => 0x009,
            Method::Connect => 0x00A,
            Method::ConnectionBind => 0x00B,
            Method::ConnectionAttempt => 0x00C,
            Method::Other(code) => code & 0x0FFF,
        }
    }
}

/// The 14-bit message type: method bits interleaved with the two class bits (C1 at bit 8,
/// C0 at bit 4).
pub fn message_type(class: Class, method: Method) -> u16 {
    let m = method.code();
    let c: u16 = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::SuccessResponse => 0b10,
        Class::ErrorResponse => 0b11,
    };
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// Splits a message type into class and method.
pub fn split_message_type(message_type: u16) -> (Class, Method) {
    let class = match ((message_type >> 7) & 0b10) | ((message_type >> 4) & 0b01) {
        0b00 => Class::Request,
        0b01 => Class::Indication,
        0b10 => Class::SuccessResponse,
        _ => Class::ErrorResponse,
    };
    let method =
        (message_type & 0x000F) | ((message_type >> 1) & 0x0070) | ((message_type >> 2) & 0x0F80);
    (class, Method::from_code(method))
}

#[cfg(test)]
mod tests;
