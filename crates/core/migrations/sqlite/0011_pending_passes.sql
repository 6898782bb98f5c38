-- A pass written but not yet usable: its value is being shown (a terminal,
-- a file of letters) outside any transaction. It becomes a pass when the
-- showing succeeds (pending_until set back to NULL); one whose showing
-- failed is deleted, and one left behind by a crash is ignored once this
-- time (Unix seconds) has passed.
ALTER TABLE passes ADD COLUMN pending_until BIGINT;
