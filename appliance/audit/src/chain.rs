//! The hash that links each row to the one before it.

use sha2::{Digest, Sha256};

use crate::Row;

/// The previous-row hash of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256, in lower-case hex, over a version tag, the previous row's hash and every field of
/// the row (its id included), each prefixed with its length so that no two different rows
/// can give the same input by moving text from one field to the next.
pub fn row_hash(row: &Row) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tapline-audit-v1\0");
    let id = row.id.to_string();
    let fields: [&str; 11] = [
        &row.prev_hash,
        &id,
        &row.created_at,
        &row.username,
        &row.user_ip,
        &row.event,
        &row.sub_event,
        &row.event_object,
        &row.comments,
        &row.request_uri,
        &row.params,
    ];
    for field in fields {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
