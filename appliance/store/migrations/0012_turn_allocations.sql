-- One row per TURN allocation, written when it ends: who relayed, from where, to whom, how
-- much, and why it ended. The audit trail of the relay; live counts are in the metrics.
CREATE TABLE turn_allocations (
    id                  INTEGER PRIMARY KEY,
    username            TEXT    NOT NULL,   -- static user, or the REST `expiry:user` name
    client              TEXT    NOT NULL,   -- IP:port the client reached the relay from
    client_transport    TEXT    NOT NULL,   -- udp, tcp, tls
    relayed             TEXT    NOT NULL,   -- relayed IP:port, comma-separated when dual-stack
    peers               TEXT    NOT NULL,   -- peer IPs permitted, comma-separated (first 64)
    permissions_created INTEGER NOT NULL,
    channels_bound      INTEGER NOT NULL,
    bytes_to_peers      INTEGER NOT NULL,
    datagrams_to_peers  INTEGER NOT NULL,
    bytes_from_peers    INTEGER NOT NULL,
    datagrams_from_peers INTEGER NOT NULL,
    dropped_to_peers    INTEGER NOT NULL,
    dropped_from_peers  INTEGER NOT NULL,
    started_at          TEXT    NOT NULL,   -- UTC, ISO 8601 with microseconds
    ended_at            TEXT    NOT NULL,   -- UTC, ISO 8601 with microseconds
    end_reason          TEXT    NOT NULL    -- expired, deleted, relay_failed,
                                            -- connection_closed, shutdown
) STRICT;

CREATE INDEX turn_allocations_by_start ON turn_allocations (started_at);
CREATE INDEX turn_allocations_by_user ON turn_allocations (username, started_at);
