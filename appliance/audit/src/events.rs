//! Event and sub-event names, so that every writer spells them the same way and the audit
//! log's filters list a small, stable set.

/// Actions over SFTP.
pub const SFTP: &str = "SFTP";
/// Account management, from the console or the web UI.
pub const ACCOUNT: &str = "Account";
/// Recordings and index files: holds and retention.
pub const RECORDINGS: &str = "Recordings";

pub const LOGIN: &str = "Login";
pub const LOGIN_FAILED: &str = "Login failed";
pub const LOCKOUT: &str = "Lockout";
pub const LOCKOUT_LIFTED: &str = "Lockout lifted";
pub const LIST_DIRECTORY: &str = "List directory";
pub const DOWNLOAD: &str = "Download";
/// A file opened for download: written at once, so a download cut short by a crash of the
/// appliance still leaves a trace of who began it.
pub const DOWNLOAD_STARTED: &str = "Download started";
pub const WRITE_REFUSED: &str = "Write refused";
pub const CREATED: &str = "Created";
pub const UPDATED: &str = "Updated";
pub const PASSWORD_SET: &str = "Password set";
pub const KEY_ADDED: &str = "Key added";
pub const LEGAL_HOLD: &str = "Legal hold";
pub const RETENTION_REMOVED: &str = "Removed by retention";
