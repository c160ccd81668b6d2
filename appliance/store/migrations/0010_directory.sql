-- The agent directory: who the agents are, how they are grouped, which devices are theirs,
-- and which groups and teams each supervisor's account may see and act on.
-- Device values are stored normalised (see tapline-directory), so a lookup is an equality.

CREATE TABLE agent_groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

CREATE TABLE agent_teams (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

-- An agent belongs to at most one group and one team. `agent_id` is the agent's login, the
-- "Agent Id" of reports; `daa_number` the number a caller dials to reach this agent directly
-- (Direct Agent Access). `recording_percentage` NULL means the default of [recording].
CREATE TABLE agents (
    -- AUTOINCREMENT: a deleted agent's id is never given to another, since recordings keep it.
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name                 TEXT    NOT NULL,
    email                TEXT,
    extension            TEXT    UNIQUE,
    daa_number           TEXT    UNIQUE,
    group_id             INTEGER REFERENCES agent_groups (id) ON DELETE SET NULL,
    team_id              INTEGER REFERENCES agent_teams (id) ON DELETE SET NULL,
    recording_percentage INTEGER CHECK (recording_percentage BETWEEN 0 AND 100),
    -- The sign-in account of the agent, which sees only this agent.
    account_id           INTEGER UNIQUE REFERENCES accounts (id) ON DELETE SET NULL,
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) STRICT;

CREATE INDEX agents_by_group ON agents (group_id);
CREATE INDEX agents_by_team ON agents (team_id);

-- Device associations: a phone (extension, SIP URI, IP or MAC address) or a USB telephony
-- port, mapped to one agent, with its recording group and how it is recorded.
CREATE TABLE agent_devices (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('extension', 'sip_uri', 'phone_ip', 'mac', 'usb_port')),
    value           TEXT    NOT NULL,
    agent           INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    recording_group TEXT,
    recording_type  TEXT    NOT NULL CHECK (recording_type IN ('SPAN', 'USB')),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    UNIQUE (kind, value)
) STRICT;

CREATE INDEX agent_devices_by_agent ON agent_devices (agent);

-- Supervisor scope: the groups and teams an account may see and act on.
CREATE TABLE scope_groups (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES agent_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, group_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE scope_teams (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    team_id    INTEGER NOT NULL REFERENCES agent_teams (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, team_id)
) STRICT, WITHOUT ROWID;

-- Bumped by every change to the rows the recorder's device map is built from, in the same
-- transaction, so the recorder sees a change by reading one number.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO directory_version (id, version) VALUES (1, 0);

CREATE TRIGGER agents_inserted AFTER INSERT ON agents
BEGIN UPDATE directory_version SET version = version + 1; END;
CREATE TRIGGER agents_updated AFTER UPDATE ON agents
BEGIN UPDATE directory_version SET version = version + 1; END;
CREATE TRIGGER agents_deleted AFTER DELETE ON agents
BEGIN UPDATE directory_version SET version = version + 1; END;
CREATE TRIGGER agent_devices_inserted AFTER INSERT ON agent_devices
BEGIN UPDATE directory_version SET version = version + 1; END;
CREATE TRIGGER agent_devices_updated AFTER UPDATE ON agent_devices
BEGIN UPDATE directory_version SET version = version + 1; END;
CREATE TRIGGER agent_devices_deleted AFTER DELETE ON agent_devices
BEGIN UPDATE directory_version SET version = version + 1; END;

-- Who each recording's agent was, as the directory said at the answer. `agent_ref` is the
-- agents row (not a foreign key: a recording outlives its agent), which scope filters on.
ALTER TABLE recordings ADD COLUMN agent_ref INTEGER;
ALTER TABLE recordings ADD COLUMN agent_id TEXT;
ALTER TABLE recordings ADD COLUMN agent_extension TEXT;
CREATE INDEX recordings_by_agent ON recordings (agent_ref, answered_at);
