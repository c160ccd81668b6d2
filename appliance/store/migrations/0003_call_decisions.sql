-- Whether each answered call was recorded, and why: the recording percentage is applied per
-- call, and an auditor can see the decision for every call, recorded or not.
CREATE TABLE call_decisions (
    id          INTEGER PRIMARY KEY,
    sip_call_id TEXT    NOT NULL,
    answered_at TEXT    NOT NULL,
    recorded    INTEGER NOT NULL CHECK (recorded IN (0, 1)),
    reason      TEXT    NOT NULL,
    file_name   TEXT                                   -- the recording, when there is one
) STRICT;

CREATE INDEX call_decisions_by_answer ON call_decisions (answered_at);
