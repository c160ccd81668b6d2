-- How often and how long a call was on hold (SDP sendonly, inactive or 0.0.0.0), so an
-- auditor can tell silence on hold from silence on the line.
ALTER TABLE recordings ADD COLUMN hold_count INTEGER;
ALTER TABLE recordings ADD COLUMN hold_ms INTEGER;
