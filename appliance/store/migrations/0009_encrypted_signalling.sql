-- Connections carrying SIP over TLS, seen on the SPAN port. Their calls cannot be followed
-- passively, so they are listed here, with the reason, instead of being silently missing.
CREATE TABLE encrypted_signalling (
    id          INTEGER PRIMARY KEY,
    first_seen  TEXT    NOT NULL,   -- UTC, ISO 8601 with microseconds
    client      TEXT    NOT NULL,   -- IP:port of the phone or trunk that connected
    server      TEXT    NOT NULL,   -- IP:port it connected to (port 5061)
    source      TEXT    NOT NULL,   -- span, replay, pcap
    reason      TEXT    NOT NULL
) STRICT;

CREATE INDEX encrypted_signalling_by_time ON encrypted_signalling (first_seen);
