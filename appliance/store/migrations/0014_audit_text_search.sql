-- Two Activity audit log filters that 0013_search left reading a table row per candidate.
--
-- The creation-time index now carries the event object too. A prefix that matches many rows
-- (`S202610*`, a month of recordings) is read newest first through it, and the object is
-- checked in the index entry, so only the rows of the page are read from the table. It takes
-- the place of audit_log_by_created, whose every use it serves.
CREATE INDEX audit_log_by_created_object ON audit_log (created_at, id, event_object);
DROP INDEX audit_log_by_created;

-- Text in comments: a trigram index (every three-character piece of each comment), so a
-- search for some text reads the rows holding a few of its rarest pieces, not every row with
-- comments. It only narrows: the search still checks each row with LIKE, which alone decides
-- what matches (its case folding is ASCII only, the index's is Unicode). A text shorter than
-- three characters has no piece and is searched without it. Which rows hold a piece is all
-- the search asks, so the index keeps no positions (detail none) and no sizes.
--
-- External content: the text stays in audit_log alone. Only rows with comments are indexed
-- (an empty comment has no piece to index), by the trigger below as they are appended;
-- audit_log refuses UPDATE and DELETE, so nothing else ever needs keeping in step, and the
-- hash chain covers audit_log only.
CREATE VIRTUAL TABLE audit_log_comments USING fts5 (
    comments,
    content = 'audit_log',
    content_rowid = 'id',
    tokenize = 'trigram',
    detail = 'none',
    columnsize = 0
);
INSERT INTO audit_log_comments (rowid, comments)
    SELECT id, comments FROM audit_log WHERE comments <> '';

CREATE TRIGGER audit_log_comments_insert AFTER INSERT ON audit_log
WHEN new.comments <> ''
BEGIN
    INSERT INTO audit_log_comments (rowid, comments) VALUES (new.id, new.comments);
END;
