-- SFTP access. The tenant login (user name = the tenant's name) has a password of its own,
-- set by an administrator; local accounts may add public keys. Failed logins are counted per
-- login name, known or not, so that a lockout behaves the same for names that do not exist.
CREATE TABLE tenant_login (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    password_hash TEXT    NOT NULL,   -- Argon2id PHC string
    updated_at    TEXT    NOT NULL
) STRICT;

CREATE TABLE account_keys (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    public_key  TEXT    NOT NULL,     -- OpenSSH one-line form: "ssh-ed25519 AAAA… comment"
    fingerprint TEXT    NOT NULL,     -- SHA256:…, as ssh-keygen -l prints it
    added_at    TEXT    NOT NULL,
    UNIQUE (account_id, fingerprint)
) STRICT;

CREATE TABLE login_lockouts (
    name         TEXT    PRIMARY KEY COLLATE NOCASE,
    failures     INTEGER NOT NULL,
    last_failure TEXT    NOT NULL,
    locked_until TEXT                 -- UTC; NULL while under the threshold
) STRICT;
