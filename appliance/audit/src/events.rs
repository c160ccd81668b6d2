//! Event and sub-event names, so that every writer spells them the same way and the audit
//! log's filters list a small, stable set.

/// Actions over SFTP.
pub const SFTP: &str = "SFTP";
/// Account management, from the console or the web UI.
pub const ACCOUNT: &str = "Account";
/// Recordings and index files: holds and retention.
pub const RECORDINGS: &str = "Recordings";
/// The agent directory: agents, groups, teams, device associations and supervisor scope.
pub const DIRECTORY: &str = "Agent directory";
/// Sign-in, sign-out and sessions in the web UI and the API.
pub const WEB: &str = "Web";
/// Custom roles.
pub const ROLE: &str = "Role";
/// Settings changed in the web UI, and the TLS certificate.
pub const SETTINGS: &str = "Settings";
/// The activity audit log itself, read out of the appliance.
pub const ACTIVITY_AUDIT_LOG: &str = "Activity audit log";

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
/// A recording streamed to the web UI's player; a download of the file is [`DOWNLOAD`].
pub const PLAY: &str = "Play";
/// The activity audit log's rows that a filter selects, exported as CSV.
pub const EXPORTED: &str = "Exported";
pub const CREATED: &str = "Created";
pub const UPDATED: &str = "Updated";
pub const DELETED: &str = "Deleted";
/// A CSV file applied to the agent directory, as one row for the whole file.
pub const IMPORTED: &str = "Imported";
pub const SCOPE_SET: &str = "Scope set";
pub const PASSWORD_SET: &str = "Password set";
pub const ROLE_CHANGED: &str = "Role changed";
pub const DISABLED: &str = "Disabled";
pub const ENABLED: &str = "Enabled";
pub const LOGOUT: &str = "Logout";
pub const LOGOUT_EVERYWHERE: &str = "Logout everywhere";
pub const CERTIFICATE_REPLACED: &str = "Certificate replaced";
pub const KEY_ADDED: &str = "Key added";
pub const LEGAL_HOLD: &str = "Legal hold";
pub const RETENTION_REMOVED: &str = "Removed by retention";
