-- Legal hold on a whole local tenant day: retention removes nothing answered on that day.
-- (Holds on single calls are recordings.legal_hold.)
CREATE TABLE legal_hold_days (
    day     TEXT PRIMARY KEY,   -- YYYY-MM-DD, local tenant day
    reason  TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  TEXT NOT NULL
) STRICT;

-- Retention removes recordings by answer time; this index keeps that scan short.
CREATE INDEX recordings_by_hold ON recordings (legal_hold) WHERE legal_hold = 1;
