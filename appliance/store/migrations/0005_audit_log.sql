-- The activity audit log: every user action in the web UI, the API and SFTP, with the fields an
-- auditor filters on. Append-only and hash-chained: each row carries the SHA-256 of the row
-- before it and of its own canonical content (see tapline-audit), and the triggers below
-- refuse any UPDATE or DELETE, so rewriting history means rewriting the database file, which
-- the chain head logged to the system journal every hour then exposes.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    created_at   TEXT    NOT NULL,   -- UTC, ISO 8601 with microseconds
    username     TEXT    NOT NULL,
    user_ip      TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    sub_event    TEXT    NOT NULL,
    event_object TEXT    NOT NULL,
    comments     TEXT    NOT NULL,
    request_uri  TEXT    NOT NULL,
    params       TEXT    NOT NULL,   -- a JSON object ("Show Params")
    prev_hash    TEXT    NOT NULL,   -- row_hash of the row before, 64 zeros for the first
    row_hash     TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_by_created ON audit_log (created_at);
CREATE INDEX audit_log_by_user ON audit_log (username, created_at);
CREATE INDEX audit_log_by_event ON audit_log (event, sub_event, created_at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
