-- Indexes for the Recordings page and the Activity audit log page: every filter a user picks
-- is an equality or a prefix on one column, and results come newest first (by time, then id).
-- Each index leads with the filtered column and goes on with the time and the id, so an exact
-- match is read already in page order, a time range narrows it further, and a prefix is one
-- range scan. The search code picks the index (INDEXED BY) from capped counts; these are
-- the ones it may pick, checked with EXPLAIN QUERY PLAN in its tests.
--
-- The recordings indexes end with agent_ref, the directory's agent, because nearly every
-- search is also limited to the agents of the user's scope: with the agent in the index, that
-- check (and the count that chooses the index) costs no table read.

-- recordings already has (answered_at), (transaction_id) and (agent_ref, answered_at).
CREATE INDEX recordings_by_answer_agent ON recordings (answered_at, id, agent_ref);
CREATE INDEX recordings_by_agent_name ON recordings (agent_name, answered_at, id, agent_ref);
CREATE INDEX recordings_by_customer ON recordings (customer_number, answered_at, id, agent_ref);
CREATE INDEX recordings_by_called ON recordings (called_number, answered_at, id, agent_ref);
CREATE INDEX recordings_by_queue ON recordings (queue_name, answered_at, id, agent_ref);
CREATE INDEX recordings_by_case ON recordings (case_id, answered_at, id, agent_ref);

-- audit_log already has (created_at), (username, created_at) and
-- (event, sub_event, created_at); the rowid follows each implicitly.
CREATE INDEX audit_log_by_event_only ON audit_log (event, created_at);
CREATE INDEX audit_log_by_sub_event  ON audit_log (sub_event, created_at);
CREATE INDEX audit_log_by_object     ON audit_log (event_object, created_at);
-- Few rows carry comments; a search in them reads only those.
CREATE INDEX audit_log_with_comments ON audit_log (created_at) WHERE comments <> '';
