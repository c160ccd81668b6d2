//! Read-only, jailed SFTP server.
