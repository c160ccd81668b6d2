-- The web UI: sign-in sessions, custom roles, disabled accounts, settings changed in the UI,
-- and the Whisper/Barge/Listen log.

-- A signed-in browser or API client. Only the SHA-256 of the session id is kept, so a copy of
-- the database does not let anyone sign in as the session's account.
CREATE TABLE web_sessions (
    id_hash      TEXT    PRIMARY KEY,  -- hex SHA-256 of the id in the cookie
    account      TEXT    NOT NULL COLLATE NOCASE,
    created_at   TEXT    NOT NULL,     -- UTC; the absolute timeout counts from here
    last_seen_at TEXT    NOT NULL,     -- UTC; the idle timeout counts from here
    user_agent   TEXT    NOT NULL,
    ip           TEXT    NOT NULL
) STRICT;

CREATE INDEX web_sessions_by_account ON web_sessions (account);

-- Roles an administrator defines: named sets of permissions. The built-in roles
-- (Administrator, Supervisor, Auditor, Agent) are not stored here: their permissions are fixed
-- in the code, and a custom role may not take one of their names.
CREATE TABLE custom_roles (
    name        TEXT PRIMARY KEY COLLATE NOCASE,
    permissions TEXT NOT NULL,  -- JSON array of permission names, as the catalogue spells them
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- A disabled account keeps its row (and its name in the audit log) but cannot sign in.
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;

-- Settings changed in the web UI. Each row overrides the configuration file's value of the
-- same key until it is removed.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;

-- Listen, Whisper and Barge actions of supervisors on agents' calls, written by live
-- monitoring.
CREATE TABLE whisper_log (
    id               INTEGER PRIMARY KEY,
    started_at       TEXT    NOT NULL,  -- UTC
    duration_ms      INTEGER NOT NULL CHECK (duration_ms >= 0),
    supervisor       TEXT    NOT NULL,
    agent_name       TEXT    NOT NULL,
    agent_extension  TEXT    NOT NULL,
    action           TEXT    NOT NULL CHECK (action IN ('Listen', 'Whisper', 'Barge')),
    call_id          TEXT    NOT NULL
) STRICT;

CREATE INDEX whisper_log_by_started ON whisper_log (started_at);
