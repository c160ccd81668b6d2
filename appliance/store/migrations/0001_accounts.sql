-- Local accounts for the web UI and SFTP. Passwords are Argon2id PHC strings; an account whose
-- password was generated for it (first start, demo, administrator reset) must change it.
CREATE TABLE accounts (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    role                 TEXT    NOT NULL,
    password_hash        TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) STRICT;
