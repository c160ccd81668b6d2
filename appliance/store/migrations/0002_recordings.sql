-- One row per recorded call. Written when the call is answered (status 'recording') and
-- completed when it ends, so a crash leaves a row that the start-up repair pass finds.
-- Times are UTC, ISO 8601 with microseconds; the daily index converts to tenant time.
CREATE TABLE recordings (
    id                    INTEGER PRIMARY KEY,
    file_name             TEXT    NOT NULL UNIQUE,   -- Ryyyymmddhhmmssssss.wav
    directory             TEXT    NOT NULL,          -- Syyyymmdd (UTC day of the answer)
    status                TEXT    NOT NULL CHECK (status IN ('recording', 'complete', 'recovered', 'failed')),
    source                TEXT    NOT NULL,          -- span, replay, pcap, usb
    call_type             TEXT,                      -- Inbound, Outbound, Direct Agent Access
    answered_at           TEXT    NOT NULL,
    ended_at              TEXT,
    duration_ms           INTEGER,
    end_reason            TEXT,
    transaction_id        TEXT    NOT NULL,          -- from the SIP Call-ID
    sip_call_id           TEXT    NOT NULL,
    parent_transaction_id TEXT,                      -- the leg this one replaced (transfers)
    caller_uri            TEXT,
    caller_number         TEXT,
    caller_name           TEXT,
    callee_uri            TEXT,
    called_number         TEXT,
    agent_name            TEXT,
    customer_number       TEXT,
    phone_channel         TEXT,
    queue                 TEXT,
    queue_name            TEXT,
    case_id               TEXT,
    account               TEXT,
    external_variable_1   TEXT,
    external_variable_2   TEXT,
    outdial_code          TEXT,
    wrap_up_code          TEXT,
    codec                 TEXT,
    sample_rate           INTEGER NOT NULL,
    channels              INTEGER NOT NULL,
    format                TEXT    NOT NULL,          -- pcm16, mulaw, alaw
    size_bytes            INTEGER,
    sha256                TEXT,
    caller_packets        INTEGER,
    caller_lost           INTEGER,
    caller_jitter_ms      REAL,
    callee_packets        INTEGER,
    callee_lost           INTEGER,
    callee_jitter_ms      REAL,
    record_reason         TEXT,                      -- why this call was recorded
    legal_hold            INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1))
) STRICT;

CREATE INDEX recordings_by_answer ON recordings (answered_at);
CREATE INDEX recordings_by_status ON recordings (status) WHERE status = 'recording';
CREATE INDEX recordings_by_transaction ON recordings (transaction_id);
