//! The agent directory: who the agents are, the groups and teams they belong to, the devices
//! that are theirs, and which of them each account may see and act on.
//!
//! - **Agents** ([`agents`]) have an Agent Id (their login), a name, an email address, an
//!   extension, a Direct Agent Access number, at most one group and one team, an automatic
//!   recording percentage (none: the `[recording]` default) and, optionally, the account they
//!   sign in with.
//! - **Groups and teams** ([`groupings`]) are named sets of agents; a supervisor's scope is
//!   made of them.
//! - **Device associations** ([`devices`]) map an extension, a SIP URI, a phone's IP or MAC
//!   address, or a USB telephony port to one agent, with its recording group and recording
//!   type (SPAN or USB). Values are stored normalised ([`device`]).
//! - **Scope** ([`scope`]) answers whether an account may see or act on an agent, and gives
//!   the one SQL condition every query of agents or recordings is restricted by.
//! - **CSV** ([`csv_file`]): export, and an all-or-nothing, idempotent import.
//! - **The device map** ([`device_map`]): an in-memory snapshot the recorder consults when a
//!   call is answered, to find its agent, call type and customer number.
//!
//! **Every change and its audit row are written in one transaction**, with the acting
//! [`Actor`]; a change that changes nothing writes nothing, not even an audit row.

pub mod agents;
pub mod csv_file;
pub mod device;
pub mod device_map;
pub mod devices;
pub mod groupings;
pub mod scope;

use tapline_store::rusqlite::{self, OptionalExtension, Transaction};

pub use agents::{Agent, AgentFields};
pub use device::{DeviceKind, RecordingType};
pub use device_map::{Attribution, CallParty, CallType, CallView, DeviceMap};
pub use devices::{Device, DeviceFields};
pub use groupings::Grouping;
pub use scope::Scope;
#[doc(no_inline)]
pub use tapline_audit::Actor;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{field} \"{value}\" {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} \"{key}\" does not exist")]
    NotFound { what: &'static str, key: String },
    #[error("{field} \"{value}\" is already used by {owner}")]
    Taken {
        field: &'static str,
        value: String,
        owner: String,
    },
    #[error("only an account that sees every agent may {0}")]
    OutOfScope(&'static str),
    #[error("{} problem(s) in the CSV file, nothing was imported: {}", .0.len(), csv_file::join(.0))]
    Import(Vec<csv_file::LineError>),
    #[error("cannot write the CSV file")]
    Csv(#[source] csv::Error),
    #[error("agent directory database error")]
    Store(#[from] rusqlite::Error),
}

impl DirectoryError {
    pub(crate) fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        DirectoryError::Invalid {
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The time rows are stamped with.
pub(crate) fn now_text() -> String {
    tapline_store::utc_text(jiff::Timestamp::now())
}

/// The `accounts` row of an account name.
pub(crate) fn account_row(tx: &Transaction<'_>, name: &str) -> Result<i64, DirectoryError> {
    tx.query_row("SELECT id FROM accounts WHERE name = ?1", [name], |row| {
        row.get(0)
    })
    .optional()?
    .ok_or_else(|| DirectoryError::NotFound {
        what: "account",
        key: name.to_owned(),
    })
}

/// A free-text name (of an agent, a group, a team, a recording group): trimmed, 1 to `max`
/// characters, no control characters.
pub(crate) fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<String, DirectoryError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DirectoryError::invalid(field, value, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(DirectoryError::invalid(
            field,
            value,
            format!("is longer than {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DirectoryError::invalid(
            field,
            value,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// An optional text field: empty means none.
pub(crate) fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, DirectoryError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(_) => check_text(field, value.unwrap_or_default(), max).map(Some),
    }
}

#[cfg(test)]
mod tests;
